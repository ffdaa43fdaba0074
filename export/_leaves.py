"""The shared backbone as a list of leaf layers: recorded in every version, and the check that a
new model's backbone is that backbone, for versions built from a previous one (``--from``)
without the original model files.

Nested models (functional or Sequential) are flattened into their layers, so a new model matches
whether it nests the backbone (``features = backbone(text)``, as on the model ``headswitch
backbone`` writes) or lays the same layers out flat. Each leaf is recorded in ``headswitch.json``
(``backbone.leaves``): its name, class and configuration as the first export compares them (names
and vocabularies left out), the SHA-256 and size of each vocabulary, the SHA-256 of each asset
file, and its variables: path, shape, dtype and index among the version's saved backbone
variables, whose values (read from the version) are the reference.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _graph
from ._errors import ExportError
from ._keras import KerasModel


def _vocab_digest(vocab: list[str]) -> str:
    return hashlib.sha256("\x00".join(vocab).encode()).hexdigest()


def record(model: KerasModel, split: int, saved_variables: list[Any]) -> list[dict[str, Any]]:
    """The leaves of ``model`` up to the layer call at position ``split``, described for
    ``headswitch.json``. ``saved_variables``: the version's backbone variables, in saved order."""
    index = {id(v): i for i, v in enumerate(saved_variables)}
    described = []
    for position, leaf in model.leaves():
        if position > split:
            break
        variables, _, _ = _graph.state(leaf)
        missing = [name for name, v in variables if id(v) not in index]
        if missing:  # every variable the backbone reads is saved with it
            raise ExportError(f"backbone variable {missing[0]!r} of layer {leaf.name!r} is not "
                              "among the saved backbone variables",
                              hint="this is a headswitch bug; please report it with the models")
        described.append({
            "name": leaf.name,
            "class": type(leaf).__name__,
            "structure": _graph.structure(leaf),
            "vocabularies": [[_vocab_digest(v), len(v)] for v in _graph.vocabularies(leaf)],
            "assets": _graph.asset_digests(leaf),
            "variables": [[name, list(np.shape(v)), str(v.dtype.name), index[id(v)]]
                          for name, v in variables],
        })
    return described


def _differs(label: str, reference: str, layer: str, detail: str) -> ExportError:
    return ExportError(
        f"{label}: backbone differs from {reference}: {detail} at layer {layer!r}",
        hint=f"a new model must be built on {reference} exactly: `headswitch backbone` writes "
        "it as a Keras model; --tolerance loosens the weight check")


def _compare(leaf: Any, stored: dict[str, Any], values: list[npt.NDArray[Any]],
             tolerance: float) -> tuple[str | None, float]:
    """Why a leaf differs from a recorded one (None if it does not), and the largest weight
    difference accepted within ``tolerance``."""
    if type(leaf).__name__ != stored["class"] or _graph.structure(leaf) != stored["structure"]:
        return (f"layer {leaf.name!r} ({type(leaf).__name__}) is built differently from "
                f"{stored['name']!r} ({stored['class']})"), 0.0
    vocabs = _graph.vocabularies(leaf)
    for mine, (digest, size) in zip(vocabs, stored["vocabularies"]):
        if _vocab_digest(mine) != digest:
            return (f"vocabulary of {leaf.name!r} differs ({len(mine)} tokens, the backbone's "
                    f"has {size})"), 0.0
    if len(vocabs) != len(stored["vocabularies"]):
        return f"layer {leaf.name!r} has {len(vocabs)} vocabularies, expected " \
               f"{len(stored['vocabularies'])}", 0.0
    if _graph.asset_digests(leaf) != stored["assets"]:
        return f"the asset files (vocabularies) of {leaf.name!r} differ", 0.0
    mine_weights = _graph.weights(leaf)
    if len(mine_weights) != len(stored["variables"]):
        return (f"layer {leaf.name!r} has {len(mine_weights)} variables, expected "
                f"{len(stored['variables'])}"), 0.0
    accepted = 0.0
    for (path, value), (_, shape, _, k) in zip(mine_weights, stored["variables"]):
        ref = values[k]
        if list(value.shape) != list(shape) or value.shape != ref.shape:
            return f"variable {path!r} has shape {value.shape}, expected {tuple(shape)}", 0.0
        if np.array_equal(value, ref):
            continue
        diff = float(np.max(np.abs(value.astype(np.float64) - ref.astype(np.float64)))) \
            if value.size else 0.0
        if tolerance == 0.0 or not diff <= tolerance:
            return f"variable {path!r} differs (max abs diff {diff:.3g})", 0.0
        accepted = max(accepted, diff)
    return None, accepted


def match(model: KerasModel, stored: list[dict[str, Any]], values: list[npt.NDArray[Any]],
          tolerance: float, label: str, reference: str) -> tuple[int, float]:
    """Check that ``model`` starts with the recorded backbone; return the position of the layer
    call where it ends (the split) and the largest weight difference accepted within
    ``tolerance``. ``values``: the version's saved backbone variables."""
    ops = model.operations()
    found = model.leaves()
    accepted = 0.0
    for i, want in enumerate(stored):
        if i >= len(found):
            raise _differs(label, reference, want["name"],
                           "the model has fewer layers than the backbone")
        detail, within = _compare(found[i][1], want, values, tolerance)
        if detail is not None:
            raise _differs(label, reference, want["name"], detail)
        accepted = max(accepted, within)
    split = found[len(stored) - 1][0]
    if len(found) > len(stored) and found[len(stored)][0] == split:
        raise ExportError(
            f"{label}: the backbone of {reference} ends inside layer {ops[split].name!r}, which "
            "also holds layers of the head",
            hint="build the model as text -> backbone -> head, with the backbone as one layer "
            "or as the first layers")
    if split == len(ops) - 1 or model.head(ops[split]) is None:
        raise ExportError(f"{label}: nothing after the backbone of {reference} (layer "
                          f"{ops[split].name!r}) reads its output alone: no head to take",
                          hint="the head must read the backbone's output")
    return split, accepted
