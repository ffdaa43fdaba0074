"""What a layer call holds (classes, configurations, vocabularies, assets, variables), for
comparing models position by position.

Models are compared position by position in topological order (layer names may differ
between independently saved models); a position holds one layer call. The graph itself is
read through ``_keras.KerasModel``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import numpy as np
import numpy.typing as npt

INFERENCE_IDENTITY = ("Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout",
                       "AlphaDropout", "ActivityRegularization")
# Layers whose variables are all in ``layer.weights``; other layers (hub.KerasLayer, layers
# revived from a SavedModel, custom layers holding a tf.Module) are searched for variables.
_STOCK_MODULES = ("keras.src.layers.", "tf_keras.src.layers.")


@dataclasses.dataclass(frozen=True)
class Difference:
    """Why a model's layer at a position differs from the first model's."""

    position: int
    layer: str
    what: str  # "structure" | "config" | "vocabulary" | "asset" | "variable"
    detail: str
    max_abs_diff: float | None = None


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
        if value.get("class_name") == "__lambda__" and isinstance(value.get("config"), dict):
            config = dict(value["config"])  # Keras 3 Lambda: the function's marshalled code
            config["code"] = _code_key(config.get("code"))
            value = {**value, "config": config}
        elif value.get("function_type") == "lambda" and isinstance(value.get("function"), list):
            function = list(value["function"])  # tf_keras Lambda: [code, defaults, closure]
            function[0] = _code_key(function[0])
            value = {**value, "function": function}
        return {k: _clean_config(v) for k, v in sorted(value.items())
                if k not in ("name", "vocabulary", "idf_weights", "build_config", "trainable")}
    if isinstance(value, (list, tuple)):
        return [_clean_config(v) for v in value]
    return value


def _code_key(encoded: Any) -> Any:
    """A Lambda's function as what it computes, not as marshal wrote it: marshal's bytes
    depend on how many references the interpreter holds to each constant (running the model
    changes them), so two equal functions can marshal differently."""
    import base64
    import marshal
    import types

    if not isinstance(encoded, str):
        return encoded
    try:
        code = marshal.loads(base64.decodebytes(encoded.encode("ascii")))
    except Exception:  # not marshalled code: compared as it is
        return encoded

    def key(c: Any) -> Any:
        if not isinstance(c, types.CodeType):
            return repr(c)
        return [c.co_code.hex(), [key(k) for k in c.co_consts], list(c.co_names),
                list(c.co_varnames), c.co_argcount, c.co_kwonlyargcount, c.co_posonlyargcount,
                c.co_flags]

    return key(code)


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
            try:
                vocabs.append([str(t) for t in layer.get_vocabulary()])
            except Exception:  # a tokenizer without a vocabulary of its own
                continue
    return vocabs


def _tf_variable(weight: Any) -> Any:
    """The tf.Variable behind a Keras 3 variable, a tf_keras weight or an AutoCastVariable."""
    import tensorflow as tf

    if not isinstance(weight, tf.Variable):
        weight = weight.value
    return getattr(weight, "_variable", weight)  # AutoCastVariable wraps the real one


def _is_stock(layer: Any) -> bool:
    return type(layer).__module__.startswith(_STOCK_MODULES)


def state(op: Any) -> tuple[list[tuple[str, Any]], list[Any], list[Any]]:
    """What a layer (or model) reads when called: named tf.Variables, lookup-table resources
    and asset files. Variables a non-stock layer holds outside ``weights`` (a hub module's, a
    revived SavedModel's) are found by walking its tracked objects."""
    import tensorflow as tf
    from tensorflow.saved_model.experimental import TrackableResource

    if not hasattr(op, "weights"):  # a Keras 3 op inside a model graph (GetItem, ...): no state
        return [], [], []
    variables: list[tuple[str, Any]] = []
    seen: set[int] = set()
    for weight in op.weights:
        variable = _tf_variable(weight)
        if id(variable) not in seen:
            seen.add(id(variable))
            # Keras 3 names a variable by its path, tf_keras by its name
            variables.append((str(getattr(weight, "path", None) or weight.name), variable))
    resources: list[Any] = []
    assets: list[Any] = []
    search = [layer for layer in all_layers(op) if not _is_stock(layer) and not _is_container(
        layer)]
    for root in search:
        for obj in tf.train.TrackableView(root).descendants():
            if isinstance(obj, tf.Variable):
                variable = getattr(obj, "_variable", obj)
                if id(variable) not in seen:
                    seen.add(id(variable))
                    variables.append((f"{root.name}/{variable.name}", variable))
            elif isinstance(obj, TrackableResource) and all(obj is not r for r in resources):
                resources.append(obj)
            elif isinstance(obj, tf.saved_model.Asset) and all(obj is not a for a in assets):
                assets.append(obj)
    return variables, resources, assets


def saved_state(model: Any) -> tuple[list[Any], list[Any]]:
    """The tf.Variables and the resources and assets a model's call reads: what a tf.Module
    that calls the model must track so that ``tf.saved_model.save`` writes them."""
    import tensorflow as tf
    from tensorflow.saved_model.experimental import TrackableResource

    variables = [v for _, v in state(model)[0]]
    others: list[Any] = []
    seen = {id(v) for v in variables}
    for obj in tf.train.TrackableView(model).descendants():
        if id(obj) in seen:
            continue
        if isinstance(obj, (TrackableResource, tf.saved_model.Asset)):
            seen.add(id(obj))
            others.append(obj)
    return variables, others


def weights(op: Any) -> list[tuple[str, npt.NDArray[Any]]]:
    return [(name, np.asarray(v.numpy())) for name, v in state(op)[0]]


def asset_digests(op: Any) -> list[str]:
    """SHA-256 of every asset file a layer reads (a hub module's vocabulary, ...)."""
    digests = []
    for asset in state(op)[2]:
        digest = hashlib.sha256()
        with open(asset.asset_path.numpy().decode(), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        digests.append(digest.hexdigest())
    return digests


@dataclasses.dataclass
class OpSnapshot:
    """What the comparison needs of one of the first model's layer calls."""

    name: str
    structure: str
    vocabularies: list[list[str]]
    assets: list[str]
    weights: list[tuple[str, npt.NDArray[Any]]]

    @classmethod
    def of(cls, op: Any) -> OpSnapshot:
        return cls(op.name, structure(op), vocabularies(op), asset_digests(op), weights(op))

    def digest(self) -> str:
        """One hash of everything compared: equal digests, equal layer calls."""
        h = hashlib.sha256(self.structure.encode())
        for vocab in self.vocabularies:
            h.update("\x00".join(vocab).encode())
        for asset in self.assets:
            h.update(asset.encode())
        for path, value in self.weights:
            h.update(path.split("/")[-1].encode())
            h.update(str(value.dtype).encode() + str(value.shape).encode())
            h.update(np.ascontiguousarray(value).tobytes())
        return h.hexdigest()


def compare(position: int, op: Any, reference: OpSnapshot, tolerance: float
            ) -> tuple[Difference | None, float]:
    """Compare a layer call with the first model's layer call at the same position; also
    return the largest weight difference accepted within ``tolerance``."""
    name = reference.name
    if structure(op) != reference.structure:
        return Difference(position, name, "structure",
                          f"layer {op.name!r} ({type(op).__name__}) is built differently"), 0.0
    vocabs = vocabularies(op)
    for mine, theirs in zip(vocabs, reference.vocabularies):
        if mine != theirs:
            first = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b),
                         min(len(mine), len(theirs)))
            return Difference(
                position, name, "vocabulary",
                f"vocabulary of {op.name!r} differs at token {first} "
                f"({_token(mine, first)} vs {_token(theirs, first)}; "
                f"sizes {len(mine)} vs {len(theirs)})"), 0.0
    if asset_digests(op) != reference.assets:
        return Difference(position, name, "asset",
                          f"the asset files (vocabularies) of {op.name!r} differ"), 0.0
    mine_weights = weights(op)
    if len(mine_weights) != len(reference.weights):
        return Difference(position, name, "variable",
                          f"layer {op.name!r} has {len(mine_weights)} variables, expected "
                          f"{len(reference.weights)}"), 0.0
    accepted = 0.0
    for (path, value), (_, ref) in zip(mine_weights, reference.weights):
        if value.shape != ref.shape:
            return Difference(position, name, "variable",
                              f"variable {path!r} has shape {value.shape}, expected "
                              f"{ref.shape}"), 0.0
        if np.array_equal(value, ref):
            continue
        diff = float(np.max(np.abs(value.astype(np.float64) - ref.astype(np.float64)))) \
            if value.size else 0.0
        if tolerance == 0.0 or not diff <= tolerance:
            return Difference(position, name, "variable",
                              f"variable {path!r} differs (max abs diff {diff:.3g})", diff), 0.0
        accepted = max(accepted, diff)
    return None, accepted


def _token(vocab: list[str], index: int) -> str:
    return repr(vocab[index]) if index < len(vocab) else "<end>"


def divergence(ops: list[Any], reference: list[OpSnapshot], tolerance: float,
               limit: int | None = None) -> tuple[Difference | None, float]:
    """The first position (up to ``limit``, inclusive) where ``ops`` differ from the reference,
    and the largest weight difference accepted within ``tolerance`` before it."""
    last = min(len(ops), len(reference)) - 1 if limit is None else limit
    accepted = 0.0
    for position in range(last + 1):
        if position >= len(ops) or position >= len(reference):
            return Difference(position, reference[min(position, len(reference) - 1)].name,
                              "structure", "the model has fewer layers than the first model"
                              ), accepted
        diff, within = compare(position, ops[position], reference[position], tolerance)
        if diff is not None:
            return diff, accepted
        accepted = max(accepted, within)
    return None, accepted
