"""The backbone as a Keras model: its configuration kept in each version, and ``headswitch
backbone``, which rebuilds it with the version's own weights, checks it bit for bit against the
version's ``features`` function on the recorded probe texts, and writes it frozen, to train new
heads on.

``<version>/assets.extra/backbone.json`` holds no weights (they are the SavedModel's variables):
``{"keras": "keras" | "tf_keras", "config": <Keras serialization of the model>, "variables":
[index of each of the rebuilt model's variables among the version's saved backbone variables],
"vocabularies": {"<leaf index>": [tokens]}, "input_rank": 1 | 2}``. ``vocabularies`` keeps the
vocabulary of lookup layers whose configuration leaves it out (``adapt``-ed ones). The model is the
split layer itself when that layer is a nested model (so a model built on it nests it as the
original models do), else the first model up to the split.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from . import _graph
from ._errors import ExportError
from ._keras import KERAS3, TF_KERAS, KerasModel

BACKBONE_FILE = "backbone.json"
KERAS_SUFFIXES = (".keras", ".h5")


def handed_out_model(first: KerasModel, split_op: Any) -> KerasModel:
    """The Keras model ``headswitch backbone`` rebuilds: the split layer when it is a nested
    model, else ``first`` up to the split."""
    if first.children(split_op) is not None:
        return first.derived(split_op)
    return first.up_to(split_op)


def describe(backbone: KerasModel, saved_variables: list[Any]) -> dict[str, Any]:
    """``backbone.json``'s content for ``backbone``, or ``{"unavailable": reason}``."""
    kit, model = backbone.kit, backbone.model
    try:
        config = kit.keras.saving.serialize_keras_object(model)
        json.dumps(config)
    except Exception as e:
        return {"unavailable": f"{kit.name} cannot serialize the backbone: "
                f"{_culprit(backbone, e)}"}
    index = {id(v): i for i, v in enumerate(saved_variables)}
    variables = [index.get(id(v), -1) for v in _graph.saved_state(model)[0]]
    if -1 in variables:
        return {"unavailable": "the backbone reads variables its Keras layers do not hold"}
    vocabularies = {}
    for i, leaf in enumerate(backbone.flatten()):
        if not hasattr(leaf, "set_vocabulary") or not hasattr(leaf, "get_vocabulary"):
            continue
        if leaf.get_config().get("vocabulary") is None:
            vocabularies[str(i)] = [str(t) for t in leaf.get_vocabulary()]
    return {"keras": kit.name, "config": config, "variables": variables,
            "vocabularies": vocabularies, "input_rank": len(model.inputs[0].shape)}


def _culprit(backbone: KerasModel, error: Exception) -> str:
    """Which layer stops the backbone's serialization, and why."""
    for leaf in backbone.flatten():
        try:
            json.dumps(leaf.get_config())
        except Exception as e:
            text = str(e).splitlines()[0][:200] if str(e) else ""
            return (f"layer {leaf.name!r} ({type(leaf).__name__}) has no configuration "
                    f"({type(e).__name__}{': ' + text if text else ''})")
    text = str(error).splitlines()[0][:200] if str(error) else ""
    return f"{type(error).__name__}{': ' + text if text else ''}"


def write(path: Path, description: dict[str, Any]) -> dict[str, Any]:
    """Write a backbone's description to ``path`` (in ``assets.extra``); the manifest's
    ``keras_model`` entry of the backbone."""
    if "unavailable" in description:
        return {"unavailable": description["unavailable"]}
    path.write_text(json.dumps(description, separators=(",", ":")))
    return {"file": path.name, "keras": description["keras"], "bytes": path.stat().st_size}


@dataclasses.dataclass(frozen=True)
class BackboneReport:
    path: Path
    version: int
    keras: str
    layers: int
    parameters: int
    features_width: int
    probe_texts: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["path"] = str(self.path)
        return data


def _rebuild(data: dict[str, Any], unsafe: bool) -> KerasModel:
    kit = TF_KERAS if data["keras"] == TF_KERAS.name else KERAS3
    custom: dict[str, Any] = {}
    if kit is TF_KERAS and "KerasLayer" in json.dumps(data["config"]):
        try:
            import tensorflow_hub as hub

            custom["KerasLayer"] = hub.KerasLayer
        except ImportError:
            pass
    if kit is KERAS3:
        return KerasModel(kit.keras.saving.deserialize_keras_object(
            data["config"], safe_mode=not unsafe), kit)
    return KerasModel(kit.keras.saving.deserialize_keras_object(
        data["config"], custom_objects=custom), kit)


def _features(tf: Any, model: Any, texts: list[str], rank: int) -> Any:
    batch = tf.constant(texts, tf.string)
    if rank == 2:
        batch = batch[:, None]
    run = tf.function(lambda t: model(t, training=False), autograph=False)
    return np.asarray(run(batch))


def _check_out(out: Path, kit: str) -> None:
    if out.exists():
        raise ExportError(f"{out} already exists", hint="remove it or pass another --out")
    if kit == KERAS3.name and out.suffix.lower() not in KERAS_SUFFIXES:
        raise ExportError(f"--out {out}: a Keras 3 model is written as a .keras (or .h5) file",
                          hint="pass e.g. --out backbone.keras")
    if not out.parent.is_dir():
        raise ExportError(f"--out {out}: folder {out.parent} does not exist")


def export_backbone(version: str | os.PathLike[str], out: str | os.PathLike[str], *,
                    group: int | None = None, unsafe_deserialization: bool = False
                    ) -> BackboneReport:
    """Write a version's backbone (``group``: the id of one of its backbones; needed when it
    has several) as a frozen Keras model (``.keras``; a tf_keras backbone may also go to a
    SavedModel folder), checked bit for bit against the version's features."""
    from headswitch._manifest import ManifestError
    from headswitch._quiet import import_tensorflow

    from . import _previous
    from ._backbones import saved

    tf = import_tensorflow()
    previous = _previous.open_version(version)
    target = Path(out)
    records = previous.manifest.backbones
    if group is None and len(records) > 1:
        listed = "; ".join(f"{b.id}: {len(previous.manifest.tasks_of(b.id))} tasks, up to "
                           f"{b.split_layer!r}" for b in records)
        raise ExportError(f"{previous.label} has {len(records)} backbones ({listed})",
                          hint="choose one with --group ID")
    try:
        record = records[0] if group is None else previous.manifest.backbone_of(group)
    except ManifestError as e:
        raise ExportError(f"{previous.label}: {e}", hint="choose one of them with --group ID"
                          ) from e
    entry = record.keras_model
    hint = (f"train the new head on the model the tasks of {previous.label} were built from: "
            "`headswitch export --from` compares its backbone with the version's")
    if "file" not in entry:
        reason = entry.get("unavailable", "the version does not keep it")
        raise ExportError(f"{previous.label}'s backbone cannot be written as a Keras model: "
                          f"{reason}", hint=hint)
    data = json.loads((previous.assets_extra / entry["file"]).read_text())
    _check_out(target, data["keras"])
    try:
        model = _rebuild(data, unsafe_deserialization)
    except Exception as e:
        from ._formats import UNSAFE_HINT

        text = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        raise ExportError(f"cannot rebuild {previous.label}'s backbone from its Keras "
                          f"configuration: {text}",
                          hint=UNSAFE_HINT if "safe_mode" in str(e) else hint) from e
    flat = model.flatten()
    for key, vocab in data["vocabularies"].items():
        flat[int(key)].set_vocabulary(vocab)
    values = previous.variable_values(record.id)
    mine = _graph.saved_state(model.model)[0]
    if len(mine) != len(data["variables"]):
        raise ExportError(f"the rebuilt backbone has {len(mine)} variables, {previous.label} "
                          f"saved {len(data['variables'])}", hint=hint)
    for variable, k in zip(mine, data["variables"]):
        if tuple(variable.shape) != values[k].shape:
            raise ExportError(f"the rebuilt backbone's variable {variable.name!r} has shape "
                              f"{tuple(variable.shape)}, {previous.label} saved "
                              f"{values[k].shape}", hint=hint)
        variable.assign(values[k])
    model.model.trainable = False
    texts = previous.texts
    features = saved(previous.loaded, "features", record.id, len(records))
    served = np.asarray(features(tf.constant(texts, tf.string)))
    rank = int(data["input_rank"])
    if not np.array_equal(_features(tf, model, texts, rank), served):
        raise ExportError(f"the backbone rebuilt from {previous.label}'s Keras configuration "
                          "does not compute exactly the version's features on its probe texts "
                          "(a different Keras version?)", hint=hint)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}{target.suffix}")
    try:
        model.model.save(str(temp))
        again = _rebuild_from_file(temp, data["keras"])
        if not np.array_equal(_features(tf, again, texts, rank), served):
            raise ExportError(f"the backbone written to {target} and read back does not "
                              f"compute exactly {previous.label}'s features", hint=hint)
        os.replace(temp, target)
    finally:
        if temp.is_dir():
            import shutil

            shutil.rmtree(temp, ignore_errors=True)
        elif temp.exists():
            temp.unlink()
    size = target.stat().st_size if target.is_file() else sum(
        p.stat().st_size for p in target.rglob("*") if p.is_file())
    return BackboneReport(target, previous.version, data["keras"], len(flat),
                          int(sum(np.prod(v.shape) for v in mine)), int(served.shape[-1]),
                          len(texts), size)


def _rebuild_from_file(path: Path, kit: str) -> Any:
    if kit == TF_KERAS.name:
        return TF_KERAS.keras.models.load_model(str(path), compile=False)
    import keras

    return keras.models.load_model(str(path), compile=False)
