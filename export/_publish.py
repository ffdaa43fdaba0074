"""The publish stage, one path for ``export`` and ``export --from``: a built module becomes a
numbered version folder, or nothing.

In a staging folder (``_versions.staging``): save the module with its signatures -> check its
ops against the serving image (``_serving_ops``) -> write the warmup records (``_warmup``) ->
load it with TensorFlow's loader and check it: heads read from model files against those files
(``_verify``), heads kept from the previous version against that version (``_regression``), the
warmup records replayed -> store the heads (``_head_store``) and the backbone's Keras
description -> write ``headswitch.json`` (``Manifest``) -> rename into place.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from headswitch import __version__
from headswitch._manifest import (
    FORMAT_VERSION,
    BackboneRecord,
    HeadsFile,
    HistoryEntry,
    Manifest,
    RemovedTask,
    ServingRecord,
    TaskRecord,
    Verification,
)
from headswitch.contract import ASSETS_EXTRA, SIGNATURE_INPUTS, TASK_REMOVED

from . import _formats, _regression, _verify, _versions, _warmup
from ._backbones import saved
from ._collect import Task
from ._errors import ExportError
from ._head_store import HeadWriter, stored_heads_bytes
from ._heads import DenseChainHead, TaskEntry
from ._module import FEATURES, signatures
from ._report import ExportReport, TaskResult
from ._serving_ops import SERVING_IMAGE, TF_TEXT_IN_SERVING, check_servable

BackboneWriter = Callable[[Path, Any], list[BackboneRecord]]
"""Writes what the version keeps of its backbones into ``assets.extra`` (given the staged
folder's ``assets.extra`` and the loaded SavedModel) and returns their manifest entries."""


@dataclasses.dataclass(frozen=True)
class FreshTask:
    """A task whose head this version read from a model file."""

    entry: TaskEntry
    task: Task  # as collected: source file, the original's answers, tolerated difference
    replaces: TaskRecord | None = None  # the previous version's entry it replaces

    @property
    def change(self) -> str:
        return "added" if self.replaces is None else "replaced"


@dataclasses.dataclass(frozen=True)
class KeptTask:
    """A task carried over unchanged from the previous version (its head read from its store)."""

    entry: TaskEntry
    record: TaskRecord


@dataclasses.dataclass(frozen=True)
class Lineage:
    """Where the version comes from: the previous version (None for a first export) and what
    this one does to the task list."""

    previous: Any = None  # _previous.PreviousVersion
    history: tuple[HistoryEntry, ...] = ()  # the previous versions' history
    removed_before: tuple[RemovedTask, ...] = ()
    removed_now: tuple[TaskRecord, ...] = ()
    next_task_id: int = 0
    next_backbone_id: int = 0

    def retired(self, version: int) -> dict[int, tuple[str, str]]:
        """Removed task ids -> (name, the message their examples answer), as of ``version``."""
        gone = [*self.removed_before,
                *(RemovedTask(t.id, t.name, version) for t in self.removed_now)]
        return {r.id: (r.name, removed_message(r.id, r.name, r.version)) for r in gone}


@dataclasses.dataclass(frozen=True)
class Release:
    """Everything the publish stage needs; see the module docstring for what it does."""

    base: Path
    version: int | None  # None: the next free number
    model_name: str
    module: Any  # the built tf.Module (``_module.build_module``)
    texts: list[str]  # probe texts: verification, regression check, warmup, manifest
    fresh: list[FreshTask]
    kept: list[KeptTask]
    backbone: BackboneWriter
    lineage: Lineage
    tolerance: float
    unsafe: bool
    started: float  # time.perf_counter() when the export began
    trunk: tuple[str, ...] = ()  # layers all backbones share, one copy (``_trunk``)
    # layers some models fine-tuned after an automatic split (``_split.LeftLayer``), as the
    # report lists them: backbone id, layer, files, max_abs_diff
    not_shared: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def entries(self) -> list[TaskEntry]:
        return task_entries(self.fresh, self.kept)


def task_entries(fresh: list[FreshTask], kept: list[KeptTask]) -> list[TaskEntry]:
    """Every task of a version, in task-id order."""
    return sorted([f.entry for f in fresh] + [k.entry for k in kept], key=lambda e: e.task_id)


def removed_message(task_id: int, name: str, version: int) -> str:
    return f"task {task_id} ({name!r}) {TASK_REMOVED} {version}"


def publish(release: Release) -> ExportReport:
    """Save, check and publish ``release`` as ``base/<version>``; nothing is published when
    any check fails."""
    from headswitch._quiet import import_tensorflow

    tf = import_tensorflow()
    version = release.version if release.version is not None else \
        _versions.next_version(release.base)
    entries = release.entries
    records = _warmup.warmup_records(release.model_name, [e.name for e in entries],
                                     release.texts, [e.task_id for e in entries],
                                     [e.backbone for e in entries])
    with _versions.staging(release.base, version) as staged:
        tf.saved_model.save(release.module, str(staged), signatures=signatures(release.module))
        non_core_ops = check_servable(staged)
        assets_extra = staged / ASSETS_EXTRA
        _warmup.write_warmup(assets_extra, records)
        loaded = tf.saved_model.load(str(staged))  # the real loader, once for every check
        notices: list[str] = []
        worst = _check(release, loaded, version, notices)
        _verify.replay_warmup(loaded, records)
        results, heads = _store_heads(release, loaded, assets_extra, version, worst)
        backbones = release.backbone(assets_extra, loaded)
        _manifest(release, version, results, backbones, non_core_ops, heads).write(staged)
        merged, served = _versions.folder_bytes(staged), _versions.served_bytes(staged)
        heads_bytes = stored_heads_bytes(assets_extra)
    previous = release.lineage.previous
    backbone = backbones[0]
    return ExportReport(
        path=release.base / str(version), version=version, model_name=release.model_name,
        split_layer=backbone.split_layer, split_mode=backbone.split_mode, tasks=results,
        originals_bytes=sum({str(f.task.source.path): f.task.bytes for f in release.fresh}
                            .values()),
        merged_bytes=merged, backbone_bytes=sum(b.saved_bytes for b in backbones),
        heads_bytes=sum(e.head.nbytes for e in entries),
        backbone_fingerprint=backbone.fingerprint_sha256,
        max_abs_diff=max([0.0, *worst.values()]), seconds=time.perf_counter() - release.started,
        tensorflow_version=tf.__version__, features_dtype=backbone.features_dtype,
        non_core_ops=non_core_ops,
        notices=notices,
        previous_version=previous.version if previous is not None else None,
        removed=[{"id": t.id, "name": t.name, "version": version}
                 for t in release.lineage.removed_now],
        heads_store_bytes=heads_bytes, served_bytes=served, not_shared=release.not_shared,
        backbones=[{"id": b.id, "split_layer": b.split_layer,
                    "fingerprint": b.fingerprint_sha256, "saved_bytes": b.saved_bytes,
                    "features_dtype": b.features_dtype,
                    "tasks": [r.name for r in results if r.backbone == b.id]}
                   for b in backbones])


def _check(release: Release, loaded: Any, version: int, notices: list[str]
           ) -> dict[int, float]:
    """Every task's largest score difference: fresh heads against their model files, kept heads
    against the previous version (which also checks that removed ids answer so)."""
    worst: dict[int, float] = {}
    fresh = release.fresh
    if fresh:
        def variation(bad: list[int]) -> list[float]:  # read those files again: a rare path
            tasks = [fresh[t].task for t in bad]
            found: dict[int, float] = {}
            for source in {id(t.source): t.source for t in tasks}.values():
                mine = [t for t in tasks if t.source is source]
                original = _formats.load(source, unsafe=release.unsafe).original
                found.update(zip(map(id, mine), _verify.own_variation(
                    original, release.texts, [t.output_index for t in mine])))
            return [found[id(t)] for t in tasks]

        diffs = _verify.check_merged(
            loaded, [f.entry.name for f in fresh], [f.task.expected for f in fresh],
            release.texts, labels=[f.entry.labels for f in fresh],
            tolerated=[f.task.tolerated for f in fresh], tolerance=release.tolerance,
            ids=[f.entry.task_id for f in fresh], variation=variation, notices=notices)
        worst.update((f.entry.task_id, w) for f, w in zip(fresh, diffs))
    previous = release.lineage.previous
    if previous is not None:
        kept = [k.entry for k in release.kept]
        diffs = _regression.check_kept(
            previous.loaded, loaded, [(e.task_id, e.name, e.head.width) for e in kept],
            release.texts, [(i, message) for i, (_, message) in release.lineage.retired(version)
                            .items()], previous.label)
        worst.update((e.task_id, w) for e, w in zip(kept, diffs))
    return worst


def _store_heads(release: Release, loaded: Any, assets_extra: Path, version: int,
                 worst: Mapping[int, float]) -> tuple[list[TaskResult], HeadsFile]:
    """Store every head in task-id order: each task's result with its stored entry, and the
    manifest's ``heads`` entry."""
    import tensorflow as tf

    writer = HeadWriter(assets_extra)
    features: dict[int, Any] = {}  # backbone id -> its features on the probe texts
    backbones = {e.backbone for e in release.entries}
    fresh = {f.entry.task_id: f for f in release.fresh}
    kept = {k.entry.task_id: k for k in release.kept}
    results = []
    for entry in release.entries:
        if entry.task_id in kept:
            old = kept[entry.task_id].record
            previous = release.lineage.previous
            if old.stored.get("kind") == "dense":
                record, digest = writer.dense(entry.head)  # type: ignore[arg-type]
            else:
                record, digest = writer.copy(old.stored, previous.assets_extra, entry.task_id)
            if digest != old.head_sha256:
                raise ExportError(f"the head of kept task {entry.name!r} changed while being "
                                  "stored", hint="this is a headswitch bug; please report it")
            results.append(TaskResult.kept(old, entry.head.nbytes, worst[entry.task_id],
                                           previous.version, record, digest))
            continue
        f = fresh[entry.task_id]
        if isinstance(entry.head, DenseChainHead):
            record, digest = writer.dense(entry.head)
        else:
            if entry.backbone not in features:
                run = saved(loaded, FEATURES, entry.backbone, len(backbones))
                features[entry.backbone] = run(tf.constant(release.texts, tf.string))
            record, digest = writer.keras(entry.task_id, entry.head, features[entry.backbone],
                                          unsafe=release.unsafe)
        since = version if f.replaces is None else f.replaces.since
        task = f.task
        results.append(TaskResult(
            entry.task_id, entry.name, entry.labels, entry.activation,
            "stacked" if isinstance(entry.head, DenseChainHead) else "generic",
            entry.head.nbytes, str(task.source.path), task.sha256, task.bytes,
            worst[entry.task_id], task.format, task.output, entry.head.compute_dtype,
            change=f.change, since=since, head_since=version, stored=record,
            head_sha256=digest, backbone=entry.backbone))
    return results, writer.finish()


def _manifest(release: Release, version: int, results: list[TaskResult],
              backbones: list[BackboneRecord], non_core_ops: list[str], heads: HeadsFile
              ) -> Manifest:
    import sys

    import keras
    import tensorflow as tf

    lineage = release.lineage
    previous = lineage.previous
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    added = [f.entry.task_id for f in release.fresh if f.replaces is None]
    replaced = [f.entry.task_id for f in release.fresh if f.replaces is not None]
    removed_now = tuple(RemovedTask(t.id, t.name, version) for t in lineage.removed_now)
    tf_keras = sys.modules.get("tf_keras")
    return Manifest(
        format_version=FORMAT_VERSION, headswitch_version=__version__,
        tensorflow_version=tf.__version__, keras_version=keras.__version__,
        tf_keras_version=tf_keras.__version__ if tf_keras else None,
        model_name=release.model_name, version=version, created=created,
        backbones=tuple(backbones),
        next_backbone_id=max([lineage.next_backbone_id, *(b.id + 1 for b in backbones)]),
        signatures={signature: {"inputs": {name: f"{dtype}[-1]"
                                           for name, dtype in inputs.items()}}
                    for signature, inputs in SIGNATURE_INPUTS.items()},
        serving=ServingRecord(SERVING_IMAGE, tuple(non_core_ops),
                              f"TF Text {TF_TEXT_IN_SERVING}, linked by tensorflow_model_server"),
        tasks=tuple(r.record() for r in results),
        history=(*lineage.history, HistoryEntry(
            version, previous.version if previous is not None else None, created,
            added=tuple(added), replaced=tuple(replaced),
            removed=tuple(r.id for r in removed_now))),
        removed=(*lineage.removed_before, *removed_now),
        next_task_id=max([lineage.next_task_id, *(i + 1 for i in added)]),
        heads=heads, probe_texts=tuple(release.texts), trunk=release.trunk,
        verification=Verification(True, _verify.ATOL, len(release.texts),
                                  max([0.0, *(r.max_abs_diff for r in results)])))
