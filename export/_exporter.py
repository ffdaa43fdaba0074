"""``export_models``: N Keras models in, one verified task-switching SavedModel version out."""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

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

from . import _graph, _publish, _sources, _verify, _warmup
from ._errors import ExportError
from ._heads import DenseChainHead, Head, analyse_head
from ._inspect import folder_bytes
from ._module import TaskEntry, build_module, keras_state, signatures

DEFAULT_BASE = Path(_DEFAULT_BASE)
FORMAT_VERSION = 1

Progress = Callable[[int, int, str], None]
_GC_EVERY = 16  # models loaded between garbage collections: bounds memory, keeps export fast


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


@dataclasses.dataclass(frozen=True)
class ExportReport:
    path: Path
    version: int
    model_name: str
    split_layer: str
    split_mode: str  # "given" or "auto"
    tasks: list[TaskResult]
    originals_bytes: int
    merged_bytes: int
    backbone_bytes: int
    heads_bytes: int
    backbone_fingerprint: str
    max_abs_diff: float
    seconds: float
    tensorflow_version: str

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["path"] = str(self.path)
        return data


def _load(path: Path) -> Any:
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:
        raise ExportError(f"cannot load {path} as a Keras model: {type(e).__name__}: {e}",
                          hint="the file may be corrupt or saved by an incompatible Keras") from e


def _check_input(model: Any, path: Path) -> None:
    if len(model.inputs) != 1:
        raise ExportError(f"{path}: the model has {len(model.inputs)} inputs; a text model "
                          "takes one string input")
    spec = model.inputs[0]
    if spec.dtype != "string":
        raise ExportError(f"{path}: the model input is {spec.dtype}, not string",
                          hint="put the text preprocessing (e.g. TextVectorization) inside the "
                          "model so it takes raw text")
    if len(spec.shape) not in (1, 2) or (len(spec.shape) == 2 and spec.shape[1] != 1):
        raise ExportError(f"{path}: the model input has shape {tuple(spec.shape)}; expected "
                          "(batch,) or (batch, 1)")


def _labels(source: _sources.TaskSource, head: Head) -> list[str]:
    if source.labels is None:
        return [str(i) for i in range(head.width)]
    if len(source.labels) != head.width:
        raise ExportError(f"task {source.name!r}: the manifest gives {len(source.labels)} labels "
                          f"but the model {source.path} outputs {head.width} values")
    return list(source.labels)


def _fingerprint(snapshots: list[_graph.OpSnapshot]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for snap in snapshots:
        digest.update(snap.structure.encode())
        for vocab in snap.vocabularies:
            digest.update("\x00".join(vocab).encode())
        for path, value in snap.weights:
            digest.update(path.encode())
            digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def _text_backbone(model: Any, rank: int) -> Any:
    """The backbone taking rank-1 text, wrapping a model whose input is (batch, 1)."""
    if rank == 1:
        return model
    import keras

    text = keras.Input(shape=(), dtype="string", name=INPUT_TEXT)
    return keras.Model(text, model(keras.ops.expand_dims(text, -1)), name="backbone")


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
) -> ExportReport:
    """Merge Keras models that share a backbone into ``out/<version>/``, verified and atomic."""
    from headswitch._quiet import import_tensorflow

    started = time.perf_counter()
    tf = import_tensorflow()
    if tolerance < 0:
        raise ExportError(f"--tolerance must be >= 0, got {tolerance}")
    base = Path(out)
    if version is not None and version < 0:
        raise ExportError(f"--version must be a non-negative integer, got {version}")
    if version is not None and (base / str(version)).exists():
        raise ExportError(f"version {version} already exists at {base / str(version)}; versions "
                          "are never overwritten", hint="omit --version to take the next number")
    sources = _sources.resolve(list(models), manifest)
    total = len(sources)

    first = _load(sources[0].path)
    _check_input(first, sources[0].path)
    first_ops = _graph.operations(first)
    reference = [_graph.OpSnapshot.of(op) for op in first_ops]
    if split_layer is not None:
        split = _graph.find_position(first, split_layer)
        if _graph.head_model(first, first_ops[split]) is None or split == len(first_ops) - 1:
            raise ExportError(
                f"layer {split_layer!r} cannot be the split: the output does not depend on the "
                "input through it alone (or it is the output layer)",
                hint="pick the layer whose output feeds every head, e.g. the nested base model")
        candidates = [split]
    else:
        candidates = _graph.split_candidates(first)
        if not candidates:
            raise ExportError(f"{sources[0].path}: found no layer whose output feeds the head "
                              "alone", hint="name one with --split-layer")
    texts = _verify.probe_texts(first_ops[: candidates[-1] + 1])

    limit = len(first_ops) - 1  # the deepest position shared so far
    earliest: tuple[_graph.Difference, Path] | None = None
    heads: list[Head | None] = [None] * total
    head_split: list[int] = [-1] * total
    expected: list[npt.NDArray[Any]] = []
    source_info: list[tuple[str, int]] = []

    def current_split() -> int:
        usable = [c for c in candidates if c <= limit] if split_layer is None else candidates
        # Prefer the layer a reader would name: step back over trailing inference-identity
        # layers (Dropout, ...), which carry no weights and do nothing at serving time.
        while split_layer is None and len(usable) > 1 and \
                type(first_ops[usable[-1]]).__name__ in _graph.INFERENCE_IDENTITY:
            usable.pop()
        if not usable:
            assert earliest is not None
            diff, path = earliest
            raise ExportError(
                f"{path}: nothing is shared with {sources[0].path}: {diff.detail} at layer "
                f"{diff.layer!r} (position {diff.position})",
                hint="models must come from the same base model; use --tolerance for tiny "
                "numeric differences")
        return usable[-1]

    def extract(model: Any, source: _sources.TaskSource, split: int) -> Head:
        ops = _graph.operations(model)
        head = _graph.head_model(model, ops[split]) if split < len(ops) else None
        if head is None:
            raise ExportError(f"{source.path}: layer {ops[min(split, len(ops) - 1)].name!r} does "
                              "not split this model into backbone and head")
        return analyse_head(head)

    for index, source in enumerate(sources):
        model = first if index == 0 else _load(source.path)
        if index:
            _check_input(model, source.path)
            ops = _graph.operations(model)
            if split_layer is not None:
                diff = _graph.divergence(ops, reference, tolerance, limit=candidates[0])
                if diff is not None:
                    raise ExportError(
                        f"{source.path}: backbone differs from {sources[0].path}: {diff.detail} "
                        f"at layer {diff.layer!r}",
                        hint="every model must share the first model's backbone exactly; "
                        "--tolerance loosens the weight check")
            else:
                diff = _graph.divergence(ops, reference, tolerance, limit=limit)
                if diff is not None and diff.position <= limit:
                    limit = diff.position - 1
                    if earliest is None or diff.position < earliest[0].position:
                        earliest = (diff, source.path)
        split = current_split()
        heads[index] = extract(model, source, split)
        head_split[index] = split
        expected.append(_verify.original_outputs(model, texts, source.path))
        source_info.append((_sources.sha256(source.path), source.path.stat().st_size))
        if index:
            del model
            if index % _GC_EVERY == 0:
                gc.collect()  # Keras models hold reference cycles; a full collection is slow
        if progress:
            progress(index + 1, total, source.name)

    split = current_split()
    for index, source in enumerate(sources):  # auto split moved: re-read earlier heads
        if head_split[index] != split:
            model = first if index == 0 else _load(source.path)
            heads[index] = extract(model, source, split)
            del model
            gc.collect()

    entries = [TaskEntry(s.task_id, s.name, _labels(s, h), h)
               for s, h in zip(sources, heads) if h is not None]
    backbone_ops = first_ops[: split + 1]
    backbone = _text_backbone(_graph.backbone_model(first, first_ops[split]),
                              len(first.inputs[0].shape))
    module = build_module(backbone, entries)
    names = [e.name for e in entries]
    records = _warmup.warmup_records(model_name, names, texts)

    if version is None:
        version = _publish.next_version(base)
    with _publish.staging(base, version) as staged:
        tf.saved_model.save(module, str(staged), signatures=signatures(module))
        assets_extra = staged / ASSETS_EXTRA
        _warmup.write_warmup(assets_extra, records)
        loaded = tf.saved_model.load(str(staged))  # the real loader, once for both checks
        worst = _verify.check_merged(loaded, names, expected, texts,
                                      labels=[e.labels for e in entries])
        _verify.replay_warmup(loaded, records)
        backbone_bytes = _backbone_saved_bytes(tf, backbone)
        heads_bytes = sum(e.head.nbytes for e in entries)
        results = [
            TaskResult(e.task_id, e.name, e.labels, e.activation,
                       "stacked" if isinstance(e.head, DenseChainHead) else "generic",
                       e.head.nbytes, str(s.path), sha, size, w)
            for e, s, (sha, size), w in zip(entries, sources, source_info, worst)
        ]
        fingerprint = _fingerprint([reference[i] for i in range(split + 1)])
        report_fields = dict(
            version=version, model_name=model_name, split_layer=first_ops[split].name,
            split_mode="given" if split_layer else "auto", tasks=results,
            originals_bytes=sum(size for _, size in source_info), backbone_bytes=backbone_bytes,
            heads_bytes=heads_bytes, backbone_fingerprint=fingerprint,
            max_abs_diff=max(worst), tensorflow_version=tf.__version__,
        )
        manifest_data = _manifest(report_fields, texts, backbone_ops)
        (assets_extra / MANIFEST_FILE).write_text(json.dumps(manifest_data, separators=(",", ":")))
        merged_bytes = folder_bytes(staged)
    return ExportReport(path=base / str(version), merged_bytes=merged_bytes,
                        seconds=time.perf_counter() - started, **report_fields)


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


def _manifest(fields: dict[str, Any], texts: list[str], backbone_ops: list[Any]) -> dict[str, Any]:
    import keras

    tasks = fields["tasks"]
    return {  # written compactly: it grows with the number of tasks
        "format_version": FORMAT_VERSION,
        "headswitch_version": __version__,
        "tensorflow_version": fields["tensorflow_version"],
        "keras_version": keras.__version__,
        "model_name": fields["model_name"],
        "version": fields["version"],
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "backbone": {
            "split_layer": fields["split_layer"],
            "split_mode": fields["split_mode"],
            "layers": [op.name for op in backbone_ops],
            "fingerprint_sha256": fields["backbone_fingerprint"],
            "saved_bytes": fields["backbone_bytes"],
        },
        "signatures": {
            signature: {"inputs": {name: f"{dtype}[-1]" for name, dtype in inputs.items()}}
            for signature, inputs in SIGNATURE_INPUTS.items()
        },
        "tasks": [
            {"id": t.task_id, "name": t.name, "labels": t.labels, "num_classes": len(t.labels),
             "activation": t.activation, "head": t.head, "head_bytes": t.head_bytes,
             "max_abs_diff": float(f"{t.max_abs_diff:.3g}"),
             "source": {"file": os.path.basename(t.source), "sha256": t.source_sha256,
                        "bytes": t.source_bytes}}
            for t in tasks
        ],
        "verification": {
            "passed": True,
            "atol": _verify.ATOL,
            "probe_texts": len(texts),
            "max_abs_diff": fields["max_abs_diff"],
        },
    }
