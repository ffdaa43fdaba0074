"""Where the shared backbone ends: the split layer, given or found, and the backbone check.

Every task model is compared with the first one position by position (``_graph.divergence``).
Given ``--split-layer``, every layer up to it must match. Found automatically, the split is the
deepest layer whose output feeds the head alone and up to which every model matches. If that
is earlier than where some models' heads start (a layer that some models share with each other
differs in others, e.g. one model fine-tuned the top of a flat backbone), the export stops and
says which layer differs in which file, unless ``--accept-shorter-backbone``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from . import _graph
from ._errors import ExportError
from ._keras import KerasModel

SHORTER_FLAG = "--accept-shorter-backbone"


def split_candidates(model: KerasModel) -> list[int]:
    """Positions whose output every path from input to output goes through (excluding the
    input layers and the output layer), shallowest first."""
    ops = model.operations()
    candidates = []
    for position, op in enumerate(ops[:-1]):
        if type(op).__name__ == "InputLayer":
            continue
        if model.head(op) is not None:
            candidates.append(position)
    return candidates


def find_position(model: KerasModel, layer_name: str) -> int:
    ops = model.operations()
    for position, op in enumerate(ops):
        if op.name == layer_name:
            return position
    names = ", ".join(op.name for op in ops)
    raise ExportError(f"no layer named {layer_name!r} in model {model.name!r}",
                      hint=f"--split-layer takes one of: {names}")


@dataclasses.dataclass
class _Seen:
    """A task model's first difference from the first model, and a digest of its layer there."""

    label: str
    difference: _graph.Difference | None
    digest: str | None  # of its layer at difference.position
    rest: str | None  # of all its layers from difference.position on
    accepted: float  # largest weight difference accepted within --tolerance


def _digest_from(ops: list[Any], start: int) -> tuple[str | None, str | None]:
    if start >= len(ops):
        return None, None
    snapshots = [_graph.OpSnapshot.of(op).digest() for op in ops[start:]]
    return snapshots[0], "".join(snapshots)


class Splitter:
    """Compares each task model's backbone with the first model's; knows the split so far."""

    def __init__(self, first: KerasModel, first_label: str, split_layer: str | None,
                 tolerance: float, accept_shorter: bool) -> None:
        self.first_ops = first.operations()
        self.first_label = first_label
        self.reference = [_graph.OpSnapshot.of(op) for op in self.first_ops]
        self.given = split_layer
        self.tolerance = tolerance
        self.accept_shorter = accept_shorter
        if split_layer is not None:
            split = find_position(first, split_layer)
            if first.head(self.first_ops[split]) is None or \
                    split == len(self.first_ops) - 1:
                raise ExportError(
                    f"layer {split_layer!r} cannot be the split: the output does not depend on "
                    "the input through it alone (or it is the output layer)",
                    hint="pick the layer whose output feeds every head, e.g. the nested base "
                    "model")
            self.candidates = [split]
        else:
            self.candidates = split_candidates(first)
            if not self.candidates:
                raise ExportError(f"{first_label}: found no layer whose output feeds the head "
                                  "alone", hint="name one with --split-layer")
        self.limit = len(self.first_ops) - 1  # the deepest position shared so far
        self.seen: list[_Seen] = []

    @property
    def deepest_candidate(self) -> int:
        return self.candidates[-1]

    def add(self, model: KerasModel, label: str) -> None:
        """Compare a task model (not the first) with the first model."""
        ops = model.operations()
        if self.given is not None:
            diff, accepted = _graph.divergence(ops, self.reference, self.tolerance,
                                               limit=self.candidates[0])
            if diff is not None:
                raise ExportError(
                    f"{label}: backbone differs from {self.first_label}: {diff.detail} at layer "
                    f"{diff.layer!r}",
                    hint="every model must share the first model's backbone exactly; "
                    "--tolerance loosens the weight check")
            self.seen.append(_Seen(label, None, None, None, accepted))
            return
        diff, accepted = _graph.divergence(ops, self.reference, self.tolerance)
        digest = rest = None
        if diff is not None:
            self.limit = min(self.limit, diff.position - 1)
            digest, rest = _digest_from(ops, diff.position)
        self.seen.append(_Seen(label, diff, digest, rest, accepted))

    def current(self) -> int:
        """The split position for the models compared so far."""
        if self.given is not None:
            return self.candidates[0]
        usable = [c for c in self.candidates if c <= self.limit]
        # Prefer the layer a reader would name: step back over trailing inference-identity
        # layers (Dropout, ...), which carry no weights and do nothing at serving time.
        while len(usable) > 1 and \
                type(self.first_ops[usable[-1]]).__name__ in _graph.INFERENCE_IDENTITY:
            usable.pop()
        if not usable:
            earliest = min((s for s in self.seen if s.difference is not None),
                           key=lambda s: s.difference.position)  # type: ignore[union-attr]
            diff = earliest.difference
            assert diff is not None
            raise ExportError(
                f"{earliest.label}: nothing is shared with {self.first_label}: {diff.detail} at "
                f"layer {diff.layer!r} (position {diff.position})",
                hint="models must come from the same base model; use --tolerance for tiny "
                "numeric differences")
        return usable[-1]

    def accepted(self, index: int) -> float:
        """Largest backbone weight difference accepted for the index-th added model."""
        return self.seen[index].accepted

    def finish(self, first_model: KerasModel) -> int:
        """The final split; refuses a split that lands before some models' heads start, and a
        backbone whose output is not float features."""
        split = self.current()
        if self.given is None and not self.accept_shorter:
            self._check_not_shorter(split)
        dtype = first_model.output_dtype(self.first_ops[split])
        if not dtype.startswith(("float", "bfloat")):
            layer = self.first_ops[split].name
            why = self._why_not_deeper(split)
            raise ExportError(
                f"the shared part of these models ends at layer {layer!r}, whose output is "
                f"{dtype} (token ids): only the text preprocessing is shared, not a trained "
                f"backbone{why}",
                hint="headswitch merges models whose heads read the float features of one "
                "shared backbone; train the task models on one frozen base model")
        return split

    def _why_not_deeper(self, split: int) -> str:
        differing = [s for s in self.seen if s.difference is not None and
                     s.difference.position > split]
        if not differing:
            return ""
        first = min(differing, key=lambda s: s.difference.position)  # type: ignore[union-attr]
        assert first.difference is not None
        return (f" (the next layer, {first.difference.layer!r}, differs in {first.label}: "
                f"{first.difference.detail})")

    def _check_not_shorter(self, split: int) -> None:
        position = self.limit + 1  # the first layer not shared by every model
        if position >= len(self.first_ops) - 1 or position > self.deepest_candidate:
            return
        ref_digest = self.reference[position].digest()
        # Which models hold the same layer at that position: the first model and those whose
        # first difference is later, or models whose layers there are equal to each other.
        with_first = [s for s in self.seen if s.difference is None or
                      s.difference.position > position]
        groups: dict[str, list[_Seen]] = {}
        for s in self.seen:
            if s.difference is not None and s.difference.position == position and s.digest:
                groups.setdefault(s.digest, []).append(s)
        layer = self.first_ops[position].name
        shared_with_first = [s for s in with_first if s.difference is not None]
        split_name = self.first_ops[self.current()].name
        hint = (f"to share only up to {split_name!r}, pass --split-layer {split_name} or "
                f"{SHORTER_FLAG}; to share {layer!r} too, export those models from the same "
                f"weights")
        differing = [s for s in self.seen if s.difference is not None and
                     s.difference.position == position]
        if shared_with_first and differing:
            odd = differing[0]
            assert odd.difference is not None
            others = len(with_first) + 1
            raise ExportError(
                f"the automatic split stops at {split_name!r}, earlier than where the heads "
                f"start in {others} models: layer {layer!r} differs in {odd.label} from "
                f"{self.first_label} ({odd.difference.detail})"
                + (f" and in {len(differing) - 1} more files" if len(differing) > 1 else ""),
                hint=hint)
        for digest, members in groups.items():
            if digest == ref_digest or len(members) < 2:
                continue
            if len({m.rest for m in members}) == 1:
                continue  # identical models: no sign of where heads start
            names = ", ".join(m.label for m in members[:3])
            raise ExportError(
                f"the automatic split stops at {split_name!r}, earlier than where the heads "
                f"start in {len(members)} models: layer {layer!r} of the first model "
                f"{self.first_label} differs from {names}, which share it with each other",
                hint=hint)


def label(path: Path, output: str | None) -> str:
    return str(path) if output is None else f"{path} (output {output!r})"
