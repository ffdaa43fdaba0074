"""Where each model's backbone ends, and which models share which backbone.

Models are compared layer call by layer call, in topological order (layer names may differ
between independently saved models): a position holds one layer call, and two calls are equal
when their classes, configurations, vocabularies, asset files and weights are (weights within
``--tolerance``). ``BackboneTree`` keeps every model as a branch of a tree: a model hangs below
the model it agrees with longest, at the position where it first differs; two models' common
prefix (how many leading positions they share) is read off the tree.

- A model's split, found automatically: the deepest layer whose output feeds the head alone
  (a split candidate), before the first position the model shares with no other model (where
  its head starts), stepping back over trailing layers that do nothing at serving time
  (Dropout, ...), and giving float features. Given ``--split-layer``: that layer.
- Models form one backbone group when they split at the same position and are equal through
  it. A model that shares no float features with any other (nothing, or only the text
  preprocessing) is a group of its own; it splits where the group it is nearest to splits, when
  that layer is a split candidate of its own with float output, else at its deepest candidate.
- Without ``--backbone-groups`` there must be one group. ``--accept-shorter-backbone`` makes one
  group of all the models, split at the deepest candidate they all share.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from . import _graph
from ._errors import ExportError
from ._keras import KerasModel
from ._rewire import OUTPUT_SEPARATOR

SHORTER_FLAG = "--accept-shorter-backbone"
GROUPS_FLAG = "--backbone-groups"
_SHOWN = 4  # files listed per group in messages


def split_candidates(model: KerasModel) -> list[int]:
    """Positions whose output every path from input to output goes through (excluding the
    input layers and the output layer), shallowest first."""
    ops = model.operations()
    candidates = []
    for position, op in enumerate(ops[:-1]):
        if type(op).__name__ == "InputLayer" or model.passes_mask(op):
            continue
        if model.head(op) is not None:
            candidates.append(position)
    return candidates


def masked(model: KerasModel) -> list[int]:
    """Positions whose output carries a Keras mask to the layers after it: never a split."""
    return [p for p, op in enumerate(model.operations()) if model.passes_mask(op)]


def mask_refusal(layer: str, where: str) -> ExportError:
    return ExportError(
        f"layer {layer!r} cannot be the split: its output carries a mask (mask_zero=True or a "
        f"Masking layer, in {where}) that the layers after it read, and the heads would run "
        "without it",
        hint="split after the layer that consumes the mask (an RNN, a pooling layer): "
        f"--split-layer names it when every model has it unchanged; where the models fine-tuned "
        f"it, {GROUPS_FLAG} gives each its own backbone, or retrain the models on a frozen "
        "copy of it")


def find_position(model: KerasModel, layer_name: str) -> int:
    ops = model.operations()
    for position, op in enumerate(ops):
        if op.name == layer_name:
            return position
    # A layer with several outputs of which the model reads one (a hub encoder's dict) is the
    # layer ``NAME:OUTPUT`` (``_rewire``): its plain name names that output.
    read = [p for p, op in enumerate(ops) if op.name.startswith(layer_name + OUTPUT_SEPARATOR)]
    if len(read) == 1:
        return read[0]
    names = ", ".join(op.name for op in ops)
    raise ExportError(f"no layer named {layer_name!r} in model {model.name!r}",
                      hint=f"--split-layer takes one of: {names}")


def label(path: Path, output: str | None) -> str:
    return str(path) if output is None else f"{path} (output {output!r})"


def _is_float(dtype: str) -> bool:
    return dtype.startswith(("float", "bfloat"))


@dataclasses.dataclass
class _Member:
    """A task model as the tree keeps it (the model itself is not kept)."""

    label: str
    names: list[str]  # layer names by position
    kinds: list[str]  # layer classes by position
    candidates: list[int]
    dtypes: dict[int, str]  # output dtype of each candidate
    masks: list[int]  # positions whose output carries a mask (``masked``)
    parent: int | None  # the member it agrees with longest, seen before it
    branch: int  # the first position where it differs from ``parent``
    difference: _graph.Difference | None  # why it differs there (None: the same to the end)
    snapshots: dict[int, _graph.OpSnapshot]  # its layer calls from ``branch`` on
    accepted: float  # largest weight difference accepted within --tolerance on the way
    children: list[int] = dataclasses.field(default_factory=list)

    @property
    def length(self) -> int:
        return len(self.names)


@dataclasses.dataclass(frozen=True)
class Group:
    """Models that share one backbone: the first of them (``reference``) up to ``split``."""

    members: list[int]  # member indices, in the order they were added
    split: int  # position of the layer call where the backbone ends, in each member

    @property
    def reference(self) -> int:
        return self.members[0]


@dataclasses.dataclass(frozen=True)
class LeftLayer:
    """A layer after a group's split that every model of the group has, built alike, with
    weights that some models fine-tuned: it left the shared part and runs in each head."""

    layer: str
    files: list[str]  # the models whose weights differ from the group's first
    max_abs_diff: float


FINE_TUNED = 0.5
"""A layer two models both have, built alike, counts as fine-tuned from one start (rather than
trained apart, as heads are) when no weight differs by more than this fraction of the layer's
largest absolute weight."""


class BackboneTree:
    """Compares every task model with those seen before it; plans the backbone groups."""

    def __init__(self, split_layer: str | None, tolerance: float) -> None:
        self.given = split_layer
        self.tolerance = tolerance
        self.members: list[_Member] = []

    # ------------------------------------------------------------------------------- adding

    def add(self, model: KerasModel, where: str) -> int:
        """Compare a task model with the tree; its index."""
        ops = model.operations()
        parent, branch, difference, accepted = self._place(ops)
        snapshots = {p: _graph.OpSnapshot.of(ops[p]) for p in range(branch, len(ops))}
        if parent is not None and self._same_shape(parent, ops, snapshots, branch):
            candidates = self.members[parent].candidates
            dtypes = self.members[parent].dtypes
        else:
            candidates = self._candidates(model, where)
            dtypes = {c: model.output_dtype(ops[c]) for c in candidates}
        member = _Member(where, [op.name for op in ops], [type(op).__name__ for op in ops],
                         candidates, dtypes, masked(model), parent, branch, difference,
                         snapshots, accepted)
        self.members.append(member)
        if parent is not None:
            self.members[parent].children.append(len(self.members) - 1)
        return len(self.members) - 1

    def _candidates(self, model: KerasModel, where: str) -> list[int]:
        ops = model.operations()
        if self.given is None:
            candidates = split_candidates(model)
            if not candidates:
                raise ExportError(f"{where}: found no layer whose output feeds the head alone",
                                  hint="name one with --split-layer")
            return candidates
        split = find_position(model, self.given)
        if model.passes_mask(ops[split]):
            raise mask_refusal(ops[split].name, where)
        if model.head(ops[split]) is None or split == len(ops) - 1:
            raise ExportError(
                f"layer {self.given!r} cannot be the split: the output does not depend on the "
                "input through it alone (or it is the output layer)",
                hint="pick the layer whose output feeds every head, e.g. the nested base model")
        return [split]

    def _same_shape(self, parent: int, ops: list[Any], snapshots: dict[int, _graph.OpSnapshot],
                    branch: int) -> bool:
        """The model has the layer structure of ``parent`` (its candidates are the same)."""
        mine = self.members[parent]
        if len(ops) != mine.length or self.given is not None:
            return False
        theirs = self._layers_from(parent, branch)
        return all(snapshots[p].structure == theirs[p].structure
                   for p in range(branch, len(ops)))

    def _layers_from(self, index: int, start: int) -> dict[int, _graph.OpSnapshot]:
        """A member's layer calls from ``start`` on (read from it and its ancestors)."""
        found: dict[int, _graph.OpSnapshot] = {}
        current: int | None = index
        while current is not None and len(found) < self.members[index].length - start:
            member = self.members[current]
            for p, snap in member.snapshots.items():
                if p >= start and p not in found:
                    found[p] = snap
            current = member.parent
        return found

    def _place(self, ops: list[Any]) -> tuple[int | None, int, _graph.Difference | None, float]:
        """(parent, branch position, difference, accepted) of a new model: walk down from the
        first member, into the child that agrees at each position where the current one
        differs."""
        if not self.members:
            return None, 0, None, 0.0
        current, start, accepted = 0, 0, 0.0
        while True:
            member = self.members[current]
            reference = [member.snapshots.get(p) for p in range(member.length)]
            diff, within = _divergence(ops, reference, start, self.tolerance)
            accepted = max(accepted, within)
            if diff is None:
                return current, max(len(ops), member.length), None, accepted
            nxt = next((c for c in member.children if self.members[c].branch == diff.position
                        and diff.position in self.members[c].snapshots and _graph.compare(
                            diff.position, ops[diff.position],
                            self.members[c].snapshots[diff.position], self.tolerance)[0]
                        is None), None)
            if nxt is None:
                return current, diff.position, diff, accepted
            current, start = nxt, diff.position + 1

    # ------------------------------------------------------------------------------ reading

    def accepted(self, index: int) -> float:
        """Largest backbone weight difference accepted within --tolerance for a member."""
        return self.members[index].accepted

    def _path(self, index: int) -> list[int]:
        path = [index]
        while self.members[path[-1]].parent is not None:
            path.append(self.members[path[-1]].parent)  # type: ignore[arg-type]
        return path

    def common(self, a: int, b: int) -> int:
        """How many leading positions members ``a`` and ``b`` share."""
        if a == b:
            return self.members[a].length
        up_a, up_b = self._path(a), self._path(b)
        ancestors_b = {m: i for i, m in enumerate(up_b)}
        for i, m in enumerate(up_a):
            if m in ancestors_b:
                j = ancestors_b[m]
                ends = [self.members[up_a[i - 1]].branch] if i else []
                ends += [self.members[up_b[j - 1]].branch] if j else []
                return min(ends) if ends else self.members[a].length
        return 0

    def head_start(self, index: int) -> int:
        """The first position the member shares with no other member."""
        others = [self.common(index, j) for j in range(len(self.members)) if j != index]
        return max(others) if others else self.members[index].length

    def _deepest(self, index: int, before: int) -> int | None:
        """The member's deepest candidate before ``before``, stepping back over trailing
        inference-identity layers."""
        member = self.members[index]
        usable = [c for c in member.candidates if c < before]
        while len(usable) > 1 and member.kinds[usable[-1]] in _graph.INFERENCE_IDENTITY:
            usable.pop()
        return usable[-1] if usable else None

    # ----------------------------------------------------------------------------- planning

    def groups(self) -> list[Group]:
        """The backbone groups, in the order their first members were added."""
        n = len(self.members)
        split: dict[int, int | None] = {}
        for i in range(n):
            if self.given is not None:
                split[i] = self.members[i].candidates[0]
                continue
            s = self._deepest(i, self.head_start(i))
            split[i] = s if s is not None and _is_float(self.members[i].dtypes[s]) else None
        group_of: dict[int, int] = {}
        groups: list[list[int]] = []
        for i in range(n):
            s = split[i]
            if s is not None:
                for g, members in enumerate(groups):
                    first = members[0]
                    if split[first] == s and self.common(i, first) > s:
                        members.append(i)
                        group_of[i] = g
                        break
            if i not in group_of:
                group_of[i] = len(groups)
                groups.append([i])
        planned = []
        for members in groups:
            s = split[members[0]]
            planned.append(Group(members, s if s is not None else self._alone(members[0], split)))
        return planned

    def _alone(self, index: int, split: dict[int, int | None]) -> int:
        """The split of a model that shares no float features with any other: where its nearest
        group splits, if that layer is its own candidate with float output, else its deepest."""
        member = self.members[index]
        others = sorted((j for j in range(len(self.members)) if j != index),
                        key=lambda j: -self.common(index, j))
        for j in others:
            s = split[j]
            if s is not None and s in member.candidates and _is_float(member.dtypes[s]):
                return s
        s = self._deepest(index, member.length)
        if s is None:  # unreachable: a member has candidates
            raise ExportError(f"{member.label}: found no layer whose output feeds the head alone")
        if not _is_float(member.dtypes[s]):
            raise ExportError(
                f"{member.label}: its deepest split, layer {member.names[s]!r}, outputs "
                f"{member.dtypes[s]} (token ids): the model has no trained backbone to share",
                hint="headswitch merges models whose heads read the float features of a "
                "backbone; name another layer with --split-layer")
        return s

    def shared_split(self) -> int:
        """One split for every model (``--accept-shorter-backbone``): the first model's deepest
        candidate that all models share."""
        first = 0
        limit = min([self.common(first, j) for j in range(1, len(self.members))]
                    or [self.members[first].length])
        s = self._deepest(first, limit)
        if s is None:
            raise self._nothing_shared()
        return s

    def _nothing_shared(self) -> ExportError:
        first = self.members[0]
        odd = min((m for m in self.members[1:]), key=lambda m: self.common(0, self.members.index(
            m)))
        detail = self._why(self.members.index(odd))
        return ExportError(f"{odd.label}: nothing is shared with {first.label}: {detail}",
                           hint="models must come from the same base model; use --tolerance "
                           "for tiny numeric differences")

    def _why(self, index: int, against: int = 0) -> str:
        """How member ``index`` first differs from member ``against``."""
        position = self.common(index, against)
        mine = self.members[index]
        path = self._path(index)
        for m in path:  # the difference recorded where its branch leaves ``against``'s path
            member = self.members[m]
            if member.branch == position and member.difference is not None:
                d = member.difference
                return f"{d.detail} at layer {d.layer!r} (position {d.position})"
        theirs = self.members[against]
        layer = theirs.names[position] if position < theirs.length else "<end>"
        if position >= mine.length or position >= theirs.length:
            return f"it has {mine.length} layer calls, the other {theirs.length}"
        return f"layer {mine.names[position]!r} differs from {layer!r} (position {position})"

    def plan(self, *, grouped: bool, accept_shorter: bool) -> list[Group]:
        """The backbone groups: several with ``grouped`` (``--backbone-groups``), else exactly
        one (or a refusal that names every group)."""
        groups = self.groups()
        if grouped:
            return self._check_float(groups)
        return self.check_one_group(groups, accept_shorter)

    def provisional_split(self, index: int) -> int:
        """Where to read a member's head now, before every model is seen (``groups`` gives
        the final splits; heads read elsewhere are read again)."""
        member = self.members[index]
        if self.given is not None:
            return member.candidates[0]
        s = self._deepest(index, self.head_start(index))
        if s is None or not _is_float(member.dtypes[s]):
            s = self._deepest(index, member.length)
        assert s is not None  # a member has candidates
        return s

    def left_shared(self, group: Group) -> list[LeftLayer]:
        """The layers after an automatic split that every model of ``group`` has, built alike,
        some of them fine-tuned (the reason the shared part ends before them), in order."""
        if self.given is not None or len(group.members) < 2:
            return []
        reference = group.reference
        length = self.members[reference].length
        if any(self.members[m].length != length for m in group.members):
            return []
        theirs = self._layers_from(reference, group.split + 1)
        mine = {m: self._layers_from(m, group.split + 1) for m in group.members[1:]}
        left: list[LeftLayer] = []
        for p in range(group.split + 1, length - 1):  # the output layer is a head's own
            tuned: list[str] = []
            worst = 0.0
            for m, snaps in mine.items():
                changed = _fine_tuned(snaps[p], theirs[p])
                if changed is None:
                    return left
                if changed > 0:
                    tuned.append(self.members[m].label)
                    worst = max(worst, changed)
            if tuned:
                left.append(LeftLayer(theirs[p].name, tuned, worst))
        return left

    # ------------------------------------------------------------------------------ refusals

    def check_one_group(self, groups: list[Group], accept_shorter: bool) -> list[Group]:
        """Without --backbone-groups: the one group, or a refusal that names every group."""
        if len(groups) == 1:
            return self._check_float(groups)
        if accept_shorter and self.given is None:
            return self._check_float([Group(list(range(len(self.members))),
                                            self.shared_split())])
        raise self._groups_refusal(groups)

    def _check_float(self, groups: list[Group]) -> list[Group]:
        for group in groups:
            ref = self.members[group.reference]
            dtype = ref.dtypes[group.split]
            if not _is_float(dtype):
                raise ExportError(
                    f"the shared part of these models ends at layer {ref.names[group.split]!r}, "
                    f"whose output is {dtype} (token ids): only the text preprocessing is "
                    f"shared, not a trained backbone{self._mask_note(group.members)}"
                    f"{self._next_differs(group)}",
                    hint="headswitch merges models whose heads read the float features of one "
                    f"shared backbone; train the task models on one frozen base model, or pass "
                    f"{GROUPS_FLAG} to give each backbone its own group")
        return groups

    def _mask_note(self, members: list[int]) -> str:
        """The layers ``members`` all share that cannot end a backbone for the mask they pass
        on (say so: they are why the shared part ends before them)."""
        first = members[0]
        shared = min([self.common(first, j) for j in members[1:]]
                     or [self.members[first].length])
        names = [self.members[first].names[p] for p in self.members[first].masks if p < shared]
        if not names:
            return ""
        return (f" (the models also share {', '.join(repr(n) for n in names)}, but its output "
                "carries a mask (mask_zero=True or a Masking layer) that the layers after it "
                "read, so it cannot end the backbone)")

    def _next_differs(self, group: Group) -> str:
        deeper = [i for i in group.members[1:] if self.common(i, group.reference) > group.split]
        differing = [i for i in group.members[1:] if i not in deeper]
        if not differing:
            return ""
        first = min(differing, key=lambda i: self.common(i, group.reference))
        position = self.common(first, group.reference)
        layer = self.members[group.reference].names[position]
        return (f" (the next layer, {layer!r}, differs in {self.members[first].label}: "
                f"{self._why(first, group.reference)})")

    def _groups_refusal(self, groups: list[Group]) -> ExportError:
        lines = []
        for number, group in enumerate(groups, 1):
            ref = self.members[group.reference]
            files = [self.members[i].label for i in group.members]
            shown = ", ".join(files[:_SHOWN]) + (f", ... ({len(files)} in all)"
                                                 if len(files) > _SHOWN else "")
            line = (f"group {number}: {len(files)} model{'s' if len(files) != 1 else ''} up to "
                    f"layer {ref.names[group.split]!r}: {shown}")
            if number > 1:
                line += f"; differs from group 1: {self._why(group.reference, groups[0].reference)}"
            lines.append(line)
        ref = self.members[groups[0].reference]
        shorter = common = ""
        if self.given is None:
            try:
                s = self.shared_split()
            except ExportError:
                s = None
            if s is not None and _is_float(ref.dtypes[s]):
                name = ref.names[s]
                shorter = (f"; or share only up to {name!r}, one backbone for all: "
                           f"--split-layer {name} or {SHORTER_FLAG}")
            elif s is not None:
                common = (f". All of them share only up to layer {ref.names[s]!r}, whose output "
                          f"is {ref.dtypes[s]} (token ids): only the text preprocessing is "
                          "shared, not a trained backbone"
                          f"{self._mask_note(list(range(len(self.members))))}")
        listed = "".join(f"\n  {line}" for line in lines)
        return ExportError(
            f"these models do not share one backbone: they form {len(groups)} backbone groups"
            f"{common}:{listed}",
            hint=f"pass {GROUPS_FLAG} to export one model that stores each group's backbone once "
            f"and runs it for its own tasks{shorter}; to share one backbone, train every model "
            "on the same frozen base model (--tolerance lets tiny weight differences through)")


def _divergence(ops: list[Any], reference: list[_graph.OpSnapshot | None], start: int,
                tolerance: float) -> tuple[_graph.Difference | None, float]:
    """The first position from ``start`` where ``ops`` differ from ``reference``, and the
    largest weight difference accepted within ``tolerance`` before it."""
    accepted = 0.0
    last = max(len(ops), len(reference))
    for position in range(start, last):
        if position >= len(ops) or position >= len(reference):
            name = ops[position].name if position < len(ops) else \
                str(getattr(reference[-1], "name", "?"))
            return _graph.Difference(position, name, "structure",
                                     "the model has another number of layers"), accepted
        snap = reference[position]
        assert snap is not None  # the walk compares a member from its branch on
        diff, within = _graph.compare(position, ops[position], snap, tolerance)
        if diff is not None:
            return diff, accepted
        accepted = max(accepted, within)
    return None, accepted


def _fine_tuned(mine: _graph.OpSnapshot, theirs: _graph.OpSnapshot) -> float | None:
    """The largest weight difference of two layer calls built alike (0.0: equal weights), or
    None when they are built differently or their weights are too far apart to come from one
    start (``FINE_TUNED``: of the largest absolute weight of the layer)."""
    if (mine.structure, mine.vocabularies, mine.assets, len(mine.weights)) != \
            (theirs.structure, theirs.vocabularies, theirs.assets, len(theirs.weights)):
        return None
    worst = scale = 0.0
    for (_, a), (_, b) in zip(mine.weights, theirs.weights):
        if a.shape != b.shape:
            return None
        if not np.issubdtype(b.dtype, np.floating) or b.size == 0:
            if not np.array_equal(a, b):
                return None
            continue
        worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b))))
        scale = max(scale, float(np.max(np.abs(b))))
    return worst if worst <= FINE_TUNED * scale else None
