"""Reading a Keras functional model as a graph: split points, backbone and head sub-models.

Models are compared position by position in topological order (layer names may differ
between independently saved models); a position holds one layer call.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import numpy.typing as npt

from ._errors import ExportError

INFERENCE_IDENTITY = ("Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout",
                       "AlphaDropout", "ActivityRegularization")


@dataclasses.dataclass(frozen=True)
class Difference:
    """Why a model's layer at a position differs from the first model's."""

    position: int
    layer: str
    what: str  # "structure" | "config" | "vocabulary" | "variable"
    detail: str
    max_abs_diff: float | None = None


def operations(model: Any) -> list[Any]:
    """The layer calls of a functional model in topological order, inputs first."""
    if not hasattr(model, "_nodes_by_depth"):
        raise ExportError(
            f"model {model.name!r} is a {type(model).__name__}, not a functional Keras model",
            hint="rebuild it with the functional API (keras.Model(inputs, outputs)) or "
            "keras.Sequential with an Input, then save it again",
        )
    return list(model.operations)


def node_of(model: Any, op: Any) -> Any:
    """The call node of ``op`` that belongs to ``model``'s graph."""
    nodes = [n for i, n in enumerate(op._inbound_nodes) if f"{id(op)}_ib-{i}" in model._nodes]
    if len(nodes) != 1:
        raise ExportError(
            f"layer {op.name!r} is called {len(nodes)} times in model {model.name!r}; "
            "a split point must be a layer called once"
        )
    return nodes[0]


def output_tensor(model: Any, op: Any) -> Any:
    outputs = node_of(model, op).output_tensors
    if len(outputs) != 1:
        raise ExportError(f"layer {op.name!r} has {len(outputs)} outputs; a split needs one")
    return outputs[0]


def head_model(model: Any, split_op: Any) -> Any:
    """The sub-model from ``split_op``'s output to the model's output, or None if not a cut."""
    import keras

    if len(model.outputs) != 1:
        raise ExportError(f"model {model.name!r} has {len(model.outputs)} outputs; expected one")
    try:
        tensor = output_tensor(model, split_op)
        return keras.Model(tensor, model.outputs[0])
    except ExportError:
        return None
    except Exception:  # keras raises ValueError for a disconnected graph
        return None


def backbone_model(model: Any, split_op: Any) -> Any:
    import keras

    return keras.Model(model.inputs, output_tensor(model, split_op), name="backbone")


def all_layers(op: Any) -> list[Any]:
    """The op and, for a nested model or a layer with sublayers, all of them, in a fixed order."""
    layers = [op]
    if hasattr(op, "_flatten_layers"):
        layers += list(op._flatten_layers(include_self=False, recursive=True))
    return layers


def _is_container(layer: Any) -> bool:
    return hasattr(layer, "_nodes_by_depth") or type(layer).__name__ == "Sequential"


def _clean_config(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean_config(v) for k, v in sorted(value.items())
                if k not in ("name", "vocabulary", "idf_weights", "build_config", "trainable")}
    if isinstance(value, (list, tuple)):
        return [_clean_config(v) for v in value]
    return value


def structure(op: Any) -> str:
    """A name-free description of a layer call: classes and configs of its leaves."""
    parts = []
    for layer in all_layers(op):
        config: Any = {}
        if not _is_container(layer):
            try:
                config = _clean_config(layer.get_config())
            except Exception:
                config = {}
        parts.append([type(layer).__name__, config])
    return json.dumps(parts, sort_keys=True, default=str)


def vocabularies(op: Any) -> list[list[str]]:
    """Every lookup table's vocabulary in ``op`` (TextVectorization, StringLookup, ...)."""
    vocabs = []
    for layer in all_layers(op):
        if hasattr(layer, "get_vocabulary"):
            vocabs.append([str(t) for t in layer.get_vocabulary()])
    return vocabs


def weights(op: Any) -> list[tuple[str, npt.NDArray[Any]]]:
    return [(w.path, np.asarray(w.numpy())) for w in op.weights]


def compare(position: int, op: Any, reference: OpSnapshot, tolerance: float) -> Difference | None:
    """Compare a layer call with the first model's layer call at the same position."""
    name = reference.name
    if structure(op) != reference.structure:
        return Difference(position, name, "structure",
                          f"layer {op.name!r} ({type(op).__name__}) is built differently")
    vocabs = vocabularies(op)
    for mine, theirs in zip(vocabs, reference.vocabularies):
        if mine != theirs:
            first = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b),
                         min(len(mine), len(theirs)))
            return Difference(
                position, name, "vocabulary",
                f"vocabulary of {op.name!r} differs at token {first} "
                f"({_token(mine, first)} vs {_token(theirs, first)}; "
                f"sizes {len(mine)} vs {len(theirs)})")
    for (path, value), (_, ref) in zip(weights(op), reference.weights):
        if value.shape != ref.shape:
            return Difference(position, name, "variable",
                              f"variable {path!r} has shape {value.shape}, expected {ref.shape}")
        if tolerance == 0.0:
            if np.array_equal(value, ref):
                continue
        diff = float(np.max(np.abs(value.astype(np.float64) - ref.astype(np.float64)))) \
            if value.size else 0.0
        if diff > tolerance or (tolerance == 0.0 and not np.array_equal(value, ref)):
            return Difference(position, name, "variable",
                              f"variable {path!r} differs (max abs diff {diff:.3g})", diff)
    return None


def _token(vocab: list[str], index: int) -> str:
    return repr(vocab[index]) if index < len(vocab) else "<end>"


@dataclasses.dataclass
class OpSnapshot:
    """What the comparison needs of one of the first model's layer calls."""

    name: str
    structure: str
    vocabularies: list[list[str]]
    weights: list[tuple[str, npt.NDArray[Any]]]

    @classmethod
    def of(cls, op: Any) -> OpSnapshot:
        return cls(op.name, structure(op), vocabularies(op), weights(op))


def divergence(ops: list[Any], reference: list[OpSnapshot], tolerance: float,
               limit: int | None = None) -> Difference | None:
    """The first position (up to ``limit``, inclusive) where ``ops`` differ from the reference."""
    last = min(len(ops), len(reference)) - 1 if limit is None else limit
    for position in range(last + 1):
        if position >= len(ops) or position >= len(reference):
            return Difference(position, reference[min(position, len(reference) - 1)].name,
                              "structure", "the model has fewer layers than the first model")
        diff = compare(position, ops[position], reference[position], tolerance)
        if diff is not None:
            return diff
    return None


def split_candidates(model: Any) -> list[int]:
    """Positions whose output every path from input to output goes through (excluding the
    input layers and the output layer), shallowest first."""
    ops = operations(model)
    candidates = []
    for position, op in enumerate(ops[:-1]):
        if type(op).__name__ == "InputLayer":
            continue
        if head_model(model, op) is not None:
            candidates.append(position)
    return candidates


def find_position(model: Any, layer_name: str) -> int:
    ops = operations(model)
    for position, op in enumerate(ops):
        if op.name == layer_name:
            return position
    names = ", ".join(op.name for op in ops)
    raise ExportError(f"no layer named {layer_name!r} in model {model.name!r}",
                      hint=f"--split-layer takes one of: {names}")
