"""``export_models``: N Keras models in, one verified task-switching SavedModel version out.

Stages, each in its own module: which files make which tasks (``_sources``) -> read every file,
find the shared backbone and read each task's head (``_collect``, which loads with ``_formats``
and splits with ``_split``) -> build the task-switching module (``_module``) -> save, check and
publish it (``_publish``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from headswitch._manifest import BackboneRecord
from headswitch.contract import DEFAULT_BASE as _DEFAULT_BASE
from headswitch.contract import DEFAULT_MODEL_NAME, INPUT_TEXT, SIGNATURE_IDS

from . import _graph, _hf, _keras_backbone, _leaves, _sources
from ._collect import Collected, Progress, collect, labels_of
from ._errors import ExportError
from ._graph import saved_state
from ._heads import TaskEntry
from ._keras import KerasModel
from ._module import build_module
from ._publish import BackboneWriter, FreshTask, Lineage, Release, publish
from ._report import ExportReport
from ._versions import folder_bytes

DEFAULT_BASE = Path(_DEFAULT_BASE)


def export_models(
    models: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] = DEFAULT_BASE,
    *,
    split_layer: str | None = None,
    version: int | None = None,
    manifest: str | os.PathLike[str] | None = None,
    tolerance: float = 0.0,
    model_name: str = DEFAULT_MODEL_NAME,
    progress: Progress | None = None,
    unsafe_deserialization: bool = False,
    accept_shorter_backbone: bool = False,
    tokenizer: str | os.PathLike[str] | None = None,
) -> ExportReport:
    """Merge Keras models that share a backbone into ``out/<version>/``, verified and atomic."""
    from headswitch._quiet import import_tensorflow

    started = time.perf_counter()
    import_tensorflow()
    base = Path(out)
    _check_arguments(base, version, tolerance)
    sources = _sources.resolve(list(models), manifest)
    with _hf.tokenizer_from(tokenizer):  # issue 21: Hugging Face models' tokenizer files
        got = collect(sources, split_layer=split_layer, tolerance=tolerance,
                      unsafe=unsafe_deserialization, accept_shorter=accept_shorter_backbone,
                      progress=progress)
    entries = [TaskEntry(i, t.name, labels_of(t), t.head) for i, t in enumerate(got.tasks)]
    backbone = got.first.up_to(got.split_op).with_text_input(INPUT_TEXT)
    module = build_module(backbone, entries)
    return publish(Release(
        base=base, version=version, model_name=model_name, module=module, texts=got.texts,
        fresh=[FreshTask(e, t) for e, t in zip(entries, got.tasks)], kept=[],
        backbone=_backbone_writer(got, backbone, module, "given" if split_layer else "auto"),
        lineage=Lineage(), tolerance=tolerance, unsafe=unsafe_deserialization,
        started=started))


def _check_arguments(base: Path, version: int | None, tolerance: float) -> None:
    if tolerance < 0:
        raise ExportError(f"--tolerance must be >= 0, got {tolerance}")
    if version is not None and version < 0:
        raise ExportError(f"--version must be a non-negative integer, got {version}")
    if version is not None and (base / str(version)).exists():
        raise ExportError(f"version {version} already exists at {base / str(version)}; versions "
                          "are never overwritten", hint="omit --version to take the next number")


def _backbone_writer(got: Collected, backbone: KerasModel, module: Any, split_mode: str
                     ) -> BackboneWriter:
    """What a first version keeps of its backbone: its Keras description (``backbone.json``),
    its leaves, fingerprint and size alone."""

    def write(assets_extra: Path, loaded: Any) -> BackboneRecord:
        import tensorflow as tf

        split_op = got.split_op
        saved_variables = list(module._backbone_variables)
        keras_model = _keras_backbone.write(assets_extra, _keras_backbone.describe(
            _keras_backbone.handed_out_model(got.first, split_op), saved_variables))
        return BackboneRecord(
            split_layer=split_op.name, split_mode=split_mode,
            layers=tuple(op.name for op in got.split_ops),
            features_dtype=got.first.output_dtype(split_op), features_width=backbone.width,
            fingerprint_sha256=_fingerprint(got.reference[: got.split + 1]),
            saved_bytes=_backbone_saved_bytes(tf, backbone), keras_model=keras_model,
            leaves=tuple(_leaves.record(got.first, got.split, saved_variables)))

    return write


def _fingerprint(snapshots: list[_graph.OpSnapshot]) -> str:
    digest = hashlib.sha256()
    for snap in snapshots:
        digest.update(snap.structure.encode())
        for vocab in snap.vocabularies:
            digest.update("\x00".join(vocab).encode())
        for asset in snap.assets:
            digest.update(asset.encode())
        for path, value in snap.weights:
            digest.update(path.encode())
            digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def _backbone_saved_bytes(tf: Any, backbone: KerasModel) -> int:
    """Size on disk of the backbone alone as a SavedModel: the floor for the merged model."""
    folder = tempfile.mkdtemp(prefix="headswitch-backbone-")
    try:
        module = tf.Module()
        module.variables_, module.resources_ = saved_state(backbone.model)
        fn = tf.function(lambda text: {"features": backbone(text, training=False)},
                         input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_TEXT)])
        tf.saved_model.save(module, folder, signatures={SIGNATURE_IDS: fn})
        return folder_bytes(Path(folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
