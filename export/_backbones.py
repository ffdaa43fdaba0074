"""What a version keeps of each of its backbones: the manifest's record (where it ends, its
leaves, fingerprint and size alone) and its Keras description (``backbone.json``; with several
backbones ``backbone_<id>.json``), for a backbone read from model files or carried over from the
previous version.

A module names backbone ``id``'s function ``features`` and its variables ``_backbone_variables``
when it has one backbone, else ``features_<id>`` and ``_backbone_variables_<id>`` (the first
backbone's function is also ``features``): ``saved`` reads them.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from headswitch._manifest import BackboneRecord
from headswitch.contract import INPUT_TEXT, SIGNATURE_IDS

from . import _graph, _keras_backbone, _leaves
from ._collect import BackboneGroup
from ._keras import KerasModel
from ._module import backbone_suffix
from ._versions import folder_bytes


def saved(obj: Any, name: str, number: int, count: int) -> Any:
    """Backbone ``number``'s function (``name`` = ``features``) or variable list
    (``_backbone_variables``, ``_backbone_resources``) on a module or a loaded SavedModel."""
    return getattr(obj, f"{name}{backbone_suffix(number, count)}",
                   [] if name.startswith("_") else None)


def _description_file(number: int, count: int) -> str:
    return _keras_backbone.BACKBONE_FILE.replace(".json",
                                                 f"{backbone_suffix(number, count)}.json")


def fresh(group: BackboneGroup, backbone: KerasModel, module: Any, number: int, count: int,
          split_mode: str, assets_extra: Path, rebuilt: bool = False) -> BackboneRecord:
    """The record of a backbone read from model files; writes its Keras description.
    ``backbone``: the model the module runs (text -> features); ``rebuilt``: it is the shared
    trunk and the group's branch (``_trunk``), whose variables the record then names."""
    import tensorflow as tf

    split_op = group.split_op
    saved_variables = list(saved(module, "_backbone_variables", number, count))
    handed_out = backbone if rebuilt else _keras_backbone.handed_out_model(group.reference,
                                                                           split_op)
    keras_model = _keras_backbone.write(
        assets_extra / _description_file(number, count),
        _keras_backbone.describe(handed_out, saved_variables))
    leaves = _leaves.record(backbone, len(backbone.operations()) - 1, saved_variables) \
        if rebuilt else _leaves.record(group.reference, group.split, saved_variables)
    return BackboneRecord(
        split_layer=split_op.name, split_mode=split_mode,
        layers=tuple(op.name for op in group.split_ops),
        features_dtype=group.reference.output_dtype(split_op), features_width=backbone.width,
        fingerprint_sha256=fingerprint(group.split_ops),
        saved_bytes=saved_bytes(tf, backbone), keras_model=keras_model,
        leaves=tuple(leaves), id=number)


def carried(record: BackboneRecord, previous_assets_extra: Path, count: int,
            assets_extra: Path) -> BackboneRecord:
    """The record of a backbone carried over from the previous version (its saved function
    and variables are reused as they are); copies its Keras description."""
    import dataclasses

    entry = dict(record.keras_model)
    if "file" in entry:
        name = _description_file(record.id, count)
        shutil.copyfile(previous_assets_extra / entry["file"], assets_extra / name)
        entry["file"] = name
    return dataclasses.replace(record, keras_model=entry)


def fingerprint(ops: list[Any]) -> str:
    """SHA-256 of a backbone's layer calls: structure, vocabularies, assets and weights."""
    digest = hashlib.sha256()
    for snap in (_graph.OpSnapshot.of(op) for op in ops):
        digest.update(snap.structure.encode())
        for vocab in snap.vocabularies:
            digest.update("\x00".join(vocab).encode())
        for asset in snap.assets:
            digest.update(asset.encode())
        for path, value in snap.weights:
            digest.update(path.encode())
            digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def saved_bytes(tf: Any, backbone: KerasModel) -> int:
    """Size on disk of the backbone alone as a SavedModel: the floor for the merged model."""
    folder = tempfile.mkdtemp(prefix="headswitch-backbone-")
    try:
        module = tf.Module()
        module.variables_, module.resources_ = _graph.saved_state(backbone.model)
        fn = tf.function(lambda text: {"features": backbone(text, training=False)},
                         input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_TEXT)])
        tf.saved_model.save(module, folder, signatures={SIGNATURE_IDS: fn})
        return folder_bytes(Path(folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
