"""``export_models``: N Keras models in, one verified task-switching SavedModel version out."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from headswitch import __version__
from headswitch.contract import (
    ASSETS_EXTRA,
    DEFAULT_MODEL_NAME,
    INPUT_TEXT,
    MANIFEST_FILE,
    SIGNATURE_IDS,
    SIGNATURE_INPUTS,
)
from headswitch.contract import (
    DEFAULT_BASE as _DEFAULT_BASE,
)

from . import _graph, _hf, _keras_backbone, _leaves, _publish, _sources, _verify, _warmup
from ._collect import Progress, Task, collect
from ._errors import ExportError
from ._head_store import HEADS_DIR, HEADS_FILE, HeadWriter
from ._heads import DenseChainHead, Head
from ._inspect import folder_bytes, served_bytes
from ._keras import kit_of
from ._module import TaskEntry, build_module, keras_state, signatures
from ._serving_ops import SERVING_IMAGE, TF_TEXT_IN_SERVING, check_servable

DEFAULT_BASE = Path(_DEFAULT_BASE)
FORMAT_VERSION = 2  # 2: stored heads, probe texts, backbone leaves, task history


@dataclasses.dataclass(frozen=True)
class TaskResult:
    task_id: int
    name: str
    labels: list[str]
    activation: str
    head: str  # "stacked" or "generic"
    head_bytes: int
    source: str
    source_sha256: str
    source_bytes: int
    max_abs_diff: float
    source_format: str = ""  # e.g. "tf_keras SavedModel folder"
    output: str | None = None  # the output of a multi-output model this task is
    compute_dtype: str = "float32"  # the dtype the head computes in
    change: str = "added"  # what this version did to the task: "added", "replaced", "unchanged"
    since: int | None = None  # the version that first published the task
    head_since: int | None = None  # the version whose export read its head from its file
    checked_against: str = "file"  # what max_abs_diff compares with: "file" or "version N"
    stored: dict[str, Any] = dataclasses.field(default_factory=dict)  # its head-store entry
    head_sha256: str = ""  # digest of the stored head


@dataclasses.dataclass(frozen=True)
class ExportReport:
    path: Path
    version: int
    model_name: str
    split_layer: str
    split_mode: str  # "given" or "auto"
    tasks: list[TaskResult]
    originals_bytes: int
    merged_bytes: int  # the whole version folder, assets.extra included
    backbone_bytes: int
    heads_bytes: int
    backbone_fingerprint: str
    max_abs_diff: float
    seconds: float
    tensorflow_version: str
    features_dtype: str = "float32"  # the backbone output's dtype
    non_core_ops: list[str] = dataclasses.field(default_factory=list)  # TF Text ops used
    previous_version: int | None = None  # the version this one was built from (--from)
    removed: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # removed by it
    heads_store_bytes: int = 0  # the stored heads (assets.extra/heads.npy and heads/)
    served_bytes: int = 0  # what TF Serving loads: saved_model.pb, variables/, assets/

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["path"] = str(self.path)
        return data


def _labels(task: Task, head: Head) -> list[str]:
    if task.labels is None:
        return [str(i) for i in range(head.width)]
    if len(task.labels) != head.width:
        raise ExportError(f"task {task.name!r}: the manifest gives {len(task.labels)} labels "
                          f"but the model {task.source.path} outputs {head.width} values")
    return list(task.labels)


def _fingerprint(snapshots: list[_graph.OpSnapshot]) -> str:
    import hashlib

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


def _text_backbone(model: Any, rank: int) -> Any:
    """The backbone taking rank-1 text, wrapping a model whose input is (batch, 1)."""
    if rank == 1:
        return model
    kit = kit_of(model)
    text = kit.text_input(name=INPUT_TEXT)
    return kit.model(text, model(kit.expand_last(text)), name="backbone")


def _check_arguments(base: Path, version: int | None, tolerance: float) -> None:
    if tolerance < 0:
        raise ExportError(f"--tolerance must be >= 0, got {tolerance}")
    if version is not None and version < 0:
        raise ExportError(f"--version must be a non-negative integer, got {version}")
    if version is not None and (base / str(version)).exists():
        raise ExportError(f"version {version} already exists at {base / str(version)}; versions "
                          "are never overwritten", hint="omit --version to take the next number")


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
    """Merge Keras models that share a backbone into ``out/<version>/``, verified and atomic.

    Stages: sources -> load and normalize, split, heads (``_collect``) -> build (``_module``)
    -> save, op check and verification (``_serving_ops``, ``_verify``) -> publish.
    """
    from headswitch._quiet import import_tensorflow

    started = time.perf_counter()
    tf = import_tensorflow()
    base = Path(out)
    _check_arguments(base, version, tolerance)
    sources = _sources.resolve(list(models), manifest)
    with _hf.tokenizer_from(tokenizer):  # issue 21: Hugging Face models' tokenizer files
        got = collect(sources, split_layer=split_layer, tolerance=tolerance,
                      unsafe=unsafe_deserialization, accept_shorter=accept_shorter_backbone,
                      progress=progress)
    entries = [TaskEntry(i, t.name, _labels(t, t.head), t.head) for i, t in enumerate(got.tasks)]
    split_op = got.split_ops[-1]
    backbone = _text_backbone(_graph.backbone_model(got.first, split_op),
                              len(got.first.inputs[0].shape))
    module = build_module(backbone, entries)
    names = [e.name for e in entries]
    ids = [e.task_id for e in entries]
    records = _warmup.warmup_records(model_name, names, got.texts, ids)

    if version is None:
        version = _publish.next_version(base)
    with _publish.staging(base, version) as staged:
        tf.saved_model.save(module, str(staged), signatures=signatures(module))
        non_core_ops = check_servable(staged)
        assets_extra = staged / ASSETS_EXTRA
        _warmup.write_warmup(assets_extra, records)
        loaded = tf.saved_model.load(str(staged))  # the real loader, once for both checks
        worst = _verify.check_merged(loaded, names, [t.expected for t in got.tasks], got.texts,
                                     labels=[e.labels for e in entries],
                                     tolerated=[t.tolerated for t in got.tasks],
                                     tolerance=tolerance, ids=ids)
        _verify.replay_warmup(loaded, records)
        features = loaded.features(tf.constant(got.texts, tf.string))
        writer = HeadWriter(assets_extra)
        stored = [store_head(writer, e, features, unsafe_deserialization) for e in entries]
        heads_entry = writer.finish()
        saved_variables = list(module._backbone_variables)
        keras_model = _keras_backbone.write(assets_extra, _keras_backbone.describe(
            _keras_backbone.handed_out_model(got.first, split_op), saved_variables))
        backbone_bytes = _backbone_saved_bytes(tf, backbone)
        results = [
            TaskResult(e.task_id, e.name, e.labels, e.activation,
                       "stacked" if isinstance(e.head, DenseChainHead) else "generic",
                       e.head.nbytes, str(t.source.path), t.sha256, t.bytes, w,
                       t.format, t.output, e.head.compute_dtype, since=version,
                       head_since=version, stored=record, head_sha256=digest)
            for e, t, w, (record, digest) in zip(entries, got.tasks, worst, stored)
        ]
        originals = {str(t.source.path): t.bytes for t in got.tasks}
        fingerprint = _fingerprint(got.reference[: got.split + 1])
        features_dtype = _graph.output_dtype(got.first, split_op)
        report_fields = dict(
            version=version, model_name=model_name, split_layer=split_op.name,
            split_mode="given" if split_layer else "auto", tasks=results,
            originals_bytes=sum(originals.values()), backbone_bytes=backbone_bytes,
            heads_bytes=sum(e.head.nbytes for e in entries),
            backbone_fingerprint=fingerprint,
            max_abs_diff=max(worst), tensorflow_version=tf.__version__,
            features_dtype=features_dtype, non_core_ops=non_core_ops,
            heads_store_bytes=heads_store_bytes(assets_extra),
        )
        backbone_entry = {
            "split_layer": split_op.name,
            "split_mode": report_fields["split_mode"],
            "layers": [op.name for op in got.split_ops],
            "features_dtype": features_dtype,
            "features_width": int(features.shape[-1]),
            "fingerprint_sha256": fingerprint,
            "saved_bytes": backbone_bytes,
            "keras_model": keras_model,
            "leaves": _leaves.record(got.first, got.split, saved_variables),
        }
        lineage = {
            "history": [history_entry(version, None, added=ids)],
            "removed": [],
            "next_task_id": max(ids) + 1,
            "heads": heads_entry,
        }
        manifest_data = build_manifest(report_fields, got.texts, backbone_entry, lineage)
        (assets_extra / MANIFEST_FILE).write_text(json.dumps(manifest_data, separators=(",", ":")))
        merged_bytes = folder_bytes(staged)
        served = served_bytes(staged)
    return ExportReport(path=base / str(version), merged_bytes=merged_bytes, served_bytes=served,
                        seconds=time.perf_counter() - started, **report_fields)


def store_head(writer: HeadWriter, entry: TaskEntry, features: Any, unsafe: bool
               ) -> tuple[dict[str, Any], str]:
    """Store a head read from a model file: its ``stored`` entry and digest."""
    if isinstance(entry.head, DenseChainHead):
        return writer.dense(entry.head)
    return writer.keras(entry.task_id, entry.head, features, unsafe=unsafe)


def heads_store_bytes(assets_extra: Path) -> int:
    files = [assets_extra / HEADS_FILE, *(assets_extra / HEADS_DIR).glob("*")]
    return sum(f.stat().st_size for f in files if f.is_file())


def history_entry(version: int, previous: int | None, *, added: Sequence[int] = (),
                  replaced: Sequence[int] = (), removed: Sequence[int] = ()) -> dict[str, Any]:
    return {"version": version, "from": previous,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "added": list(added), "replaced": list(replaced), "removed": list(removed)}


def _backbone_saved_bytes(tf: Any, backbone: Any) -> int:
    """Size on disk of the backbone alone as a SavedModel: the floor for the merged model."""
    folder = tempfile.mkdtemp(prefix="headswitch-backbone-")
    try:
        module = tf.Module()
        module.variables_, module.resources_ = keras_state(tf, backbone)
        fn = tf.function(lambda text: {"features": backbone(text, training=False)},
                         input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_TEXT)])
        tf.saved_model.save(module, folder, signatures={SIGNATURE_IDS: fn})
        return folder_bytes(Path(folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def task_entry(t: TaskResult) -> dict[str, Any]:
    """A task's entry in ``headswitch.json``."""
    return {"id": t.task_id, "name": t.name, "labels": t.labels, "num_classes": len(t.labels),
            "activation": t.activation, "head": t.head, "head_bytes": t.head_bytes,
            "dtype": t.compute_dtype, "max_abs_diff": float(f"{t.max_abs_diff:.3g}"),
            "checked_against": t.checked_against, "since": t.since, "head_since": t.head_since,
            "source": {"file": os.path.basename(t.source), "format": t.source_format,
                       **({"output": t.output} if t.output is not None else {}),
                       "sha256": t.source_sha256, "bytes": t.source_bytes},
            "stored": t.stored, "head_sha256": t.head_sha256}


def build_manifest(fields: dict[str, Any], texts: list[str], backbone: dict[str, Any],
             lineage: dict[str, Any]) -> dict[str, Any]:
    """``headswitch.json``: ``fields`` are the ExportReport's; ``backbone`` its section;
    ``lineage``: ``history``, ``removed``, ``next_task_id`` and ``heads``."""
    import sys

    import keras

    tasks = fields["tasks"]
    tf_keras = sys.modules.get("tf_keras")
    return {  # written compactly: it grows with the number of tasks
        "format_version": FORMAT_VERSION,
        "headswitch_version": __version__,
        "tensorflow_version": fields["tensorflow_version"],
        "keras_version": keras.__version__,
        **({"tf_keras_version": tf_keras.__version__} if tf_keras else {}),
        "model_name": fields["model_name"],
        "version": fields["version"],
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "backbone": backbone,
        "signatures": {
            signature: {"inputs": {name: f"{dtype}[-1]" for name, dtype in inputs.items()}}
            for signature, inputs in SIGNATURE_INPUTS.items()
        },
        "serving": {
            "image": SERVING_IMAGE,
            "non_core_ops": fields["non_core_ops"],
            "non_core_ops_from": f"TF Text {TF_TEXT_IN_SERVING}, linked by tensorflow_model_server",
        },
        "tasks": [task_entry(t) for t in tasks],
        **lineage,
        "probe_texts": texts,
        "verification": {
            "passed": True,
            "atol": _verify.ATOL,
            "probe_texts": len(texts),
            "max_abs_diff": fields["max_abs_diff"],
        },
    }
