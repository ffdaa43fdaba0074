"""``export_from``: the next version built from a published one, with tasks added, replaced or
removed, and no other original model file.

Stages: previous version (``_previous``: its SavedModel, manifest, stored heads) -> changes
(``_changes``: what to add, replace, remove; the new models read and checked against the previous
backbone) -> build (``_module`` on the previous version's own ``features`` function and
variables, carried over as saved) -> save, op check, verification of the new heads against
their files (``_verify``) and regression check of the kept ones (``_regression``) -> head store
and manifest -> publish (``_publish``), as ``export_models`` does.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from headswitch.contract import ASSETS_EXTRA, DEFAULT_MODEL_NAME, MANIFEST_FILE, TASK_REMOVED

from . import _changes, _hf, _previous, _publish, _regression, _verify, _warmup
from ._collect import Progress, Task
from ._errors import ExportError
from ._exporter import (
    ExportReport,
    TaskResult,
    build_manifest,
    heads_store_bytes,
    history_entry,
    store_head,
)
from ._head_store import HeadReader, HeadWriter
from ._heads import DenseChainHead, Head
from ._inspect import folder_bytes, served_bytes
from ._keras_backbone import BACKBONE_FILE
from ._module import TaskEntry, build_module, signatures
from ._serving_ops import check_servable


def removed_message(task_id: int, name: str, version: int) -> str:
    return f"task {task_id} ({name!r}) {TASK_REMOVED} {version}"


def _labels(task: Task, head: Head, before: dict[str, Any] | None) -> list[str]:
    if task.labels is not None:
        if len(task.labels) != head.width:
            raise ExportError(f"task {task.name!r}: the manifest gives {len(task.labels)} labels "
                              f"but the model {task.source.path} outputs {head.width} values")
        return list(task.labels)
    if before is not None:
        if len(before["labels"]) == head.width:
            return list(before["labels"])
        raise ExportError(
            f"task {task.name!r}: the new model {task.source.path} outputs {head.width} values, "
            f"but the task has {len(before['labels'])} labels",
            hint="give its labels in a manifest: {name: NAME, model: FILE, labels: [...]}")
    return [str(i) for i in range(head.width)]


def _result(entry: TaskEntry, task: Task, worst: float, version: int, since: int,
            stored: tuple[dict[str, Any], str], change: str) -> TaskResult:
    record, digest = stored
    return TaskResult(entry.task_id, entry.name, entry.labels, entry.activation,
                      "stacked" if isinstance(entry.head, DenseChainHead) else "generic",
                      entry.head.nbytes, str(task.source.path), task.sha256, task.bytes, worst,
                      task.format, task.output, entry.head.compute_dtype, change=change,
                      since=since, head_since=version, stored=record, head_sha256=digest)


def _kept_result(entry: TaskEntry, before: dict[str, Any], worst: float, previous: int,
                 stored: tuple[dict[str, Any], str]) -> TaskResult:
    record, digest = stored
    source = before["source"]
    return TaskResult(entry.task_id, entry.name, entry.labels, entry.activation, before["head"],
                      entry.head.nbytes, source["file"], source["sha256"], source["bytes"],
                      worst, source["format"], source.get("output"), before["dtype"],
                      change="unchanged", since=before["since"],
                      head_since=before["head_since"], checked_against=f"version {previous}",
                      stored=record, head_sha256=digest)


def export_from(
    previous: str | os.PathLike[str],
    models: Sequence[str | os.PathLike[str]] = (),
    out: str | os.PathLike[str] | None = None,
    *,
    replace: Mapping[str, str | os.PathLike[str]] | None = None,
    remove: Sequence[str] = (),
    version: int | None = None,
    manifest: str | os.PathLike[str] | None = None,
    tolerance: float = 0.0,
    model_name: str = DEFAULT_MODEL_NAME,
    progress: Progress | None = None,
    unsafe_deserialization: bool = False,
    tokenizer: str | os.PathLike[str] | None = None,
) -> ExportReport:
    """Publish the next version of ``previous`` (``BASE``: its newest version, or
    ``BASE/VERSION``) into ``out`` (default: the same BASE): its tasks, plus ``models`` (new
    tasks, new ids), with the heads of ``replace`` (task name -> model file; same id) and
    without ``remove`` (names; their ids are never reused). New models must share the previous
    version's backbone; kept tasks must answer as before (regression check)."""
    from headswitch._quiet import import_tensorflow

    started = time.perf_counter()
    tf = import_tensorflow()
    if tolerance < 0:
        raise ExportError(f"--tolerance must be >= 0, got {tolerance}")
    before = _previous.open_version(previous)
    base = Path(out) if out is not None else before.base
    if version is not None and (version < 0 or (base / str(version)).exists()):
        raise ExportError(f"version {version} is not free at {base / str(version)}",
                          hint="omit --version to take the next number")
    changes = _changes.plan(before, models, replace or {}, remove, manifest)
    with _hf.tokenizer_from(tokenizer):  # issue 21: Hugging Face models' tokenizer files
        new_tasks = _changes.collect(changes, before, tolerance=tolerance,
                                     unsafe=unsafe_deserialization, progress=progress)
    assigned = _changes.assign(changes, before, new_tasks)
    if version is None:
        version = _publish.next_version(base)

    reader = HeadReader(before.assets_extra, before.manifest["heads"], before.label)
    entries: dict[int, TaskEntry] = {}
    for t in assigned.kept:
        head = reader.read(t["name"], t["stored"], t["head_sha256"], unsafe=unsafe_deserialization)
        entries[t["id"]] = TaskEntry(t["id"], t["name"], list(t["labels"]), head)
    fresh: list[tuple[TaskEntry, Task, dict[str, Any] | None]] = []
    for old, task in assigned.replaced:
        entry = TaskEntry(old["id"], old["name"], _labels(task, task.head, old), task.head)
        fresh.append((entry, task, old))
    for task_id, task in assigned.added:
        fresh.append((TaskEntry(task_id, task.name, _labels(task, task.head, None), task.head),
                      task, None))
    for entry, _, _ in fresh:
        entries[entry.task_id] = entry
    ordered = [entries[k] for k in sorted(entries)]
    removed_now = [{"id": t["id"], "name": t["name"], "version": version}
                   for t in changes.remove]
    removed_all = before.removed + removed_now
    retired = {r["id"]: (r["name"], removed_message(r["id"], r["name"], r["version"]))
               for r in removed_all}
    module = build_module(before.backbone(), ordered, removed=retired)
    names = [e.name for e in ordered]
    ids = [e.task_id for e in ordered]
    texts = before.texts
    records = _warmup.warmup_records(model_name, names, texts, ids)

    with _publish.staging(base, version) as staged:
        tf.saved_model.save(module, str(staged), signatures=signatures(module))
        non_core_ops = check_servable(staged)
        assets_extra = staged / ASSETS_EXTRA
        _warmup.write_warmup(assets_extra, records)
        loaded = tf.saved_model.load(str(staged))
        worst_new = _verify.check_merged(
            loaded, [e.name for e, _, _ in fresh], [t.expected for _, t, _ in fresh], texts,
            labels=[e.labels for e, _, _ in fresh], tolerated=[t.tolerated for _, t, _ in fresh],
            tolerance=tolerance, ids=[e.task_id for e, _, _ in fresh]) if fresh else []
        kept_entries = [entries[t["id"]] for t in assigned.kept]
        worst_kept = _regression.check_kept(
            before.loaded, loaded, [(e.task_id, e.name, e.head.width) for e in kept_entries],
            texts, [(i, message) for i, (_, message) in retired.items()], before.label)
        _verify.replay_warmup(loaded, records)

        features = loaded.features(tf.constant(texts, tf.string))
        writer = HeadWriter(assets_extra)
        results: dict[int, TaskResult] = {}
        kept_by_id = {t["id"]: (t, w) for t, w in zip(assigned.kept, worst_kept)}
        fresh_by_id = {e.task_id: (e, t, old, w)
                       for (e, t, old), w in zip(fresh, worst_new)}
        for entry in ordered:  # the head store in task-id order
            if entry.task_id in kept_by_id:
                old, worst = kept_by_id[entry.task_id]
                if old["stored"]["kind"] == "dense":
                    stored = writer.dense(entry.head)  # type: ignore[arg-type]
                else:
                    stored = writer.copy(old["stored"], before.assets_extra, entry.task_id)
                if stored[1] != old["head_sha256"]:
                    raise ExportError(f"the head of kept task {entry.name!r} changed while "
                                      "being stored", hint="this is a headswitch bug; please "
                                      "report it")
                results[entry.task_id] = _kept_result(entry, old, worst, before.version, stored)
            else:
                entry, task, was, worst = fresh_by_id[entry.task_id]
                stored = store_head(writer, entry, features, unsafe_deserialization)
                since = version if was is None else was["since"]
                results[entry.task_id] = _result(entry, task, worst, version, since, stored,
                                                 "added" if was is None else "replaced")
        heads_entry = writer.finish()
        if (before.assets_extra / BACKBONE_FILE).is_file():
            shutil.copyfile(before.assets_extra / BACKBONE_FILE, assets_extra / BACKBONE_FILE)

        backbone = before.manifest["backbone"]
        tasks = [results[k] for k in sorted(results)]
        report_fields = dict(
            version=version, model_name=model_name, split_layer=backbone["split_layer"],
            split_mode=backbone["split_mode"], tasks=tasks,
            originals_bytes=sum({str(t.source.path): t.bytes for _, t, _ in fresh}.values()),
            backbone_bytes=backbone["saved_bytes"],
            heads_bytes=sum(e.head.nbytes for e in ordered),
            backbone_fingerprint=backbone["fingerprint_sha256"],
            max_abs_diff=max([0.0, *worst_new, *worst_kept]),
            tensorflow_version=tf.__version__, features_dtype=backbone["features_dtype"],
            non_core_ops=non_core_ops, previous_version=before.version, removed=removed_now,
            heads_store_bytes=heads_store_bytes(assets_extra),
        )
        lineage = {
            "history": [*before.manifest["history"], history_entry(
                version, before.version, added=[k for k, _ in assigned.added],
                replaced=[old["id"] for old, _ in assigned.replaced],
                removed=[r["id"] for r in removed_now])],
            "removed": removed_all,
            "next_task_id": max([before.next_id, *(k + 1 for k, _ in assigned.added)]),
            "heads": heads_entry,
        }
        data = build_manifest(report_fields, texts, backbone, lineage)
        (assets_extra / MANIFEST_FILE).write_text(json.dumps(data, separators=(",", ":")))
        merged_bytes = folder_bytes(staged)
        served = served_bytes(staged)
    return ExportReport(path=base / str(version), merged_bytes=merged_bytes, served_bytes=served,
                        seconds=time.perf_counter() - started, **report_fields)
