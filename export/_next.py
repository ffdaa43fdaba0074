"""``export_from``: the next version built from a published one, with tasks added, replaced or
removed, and no other original model file.

Stages: the previous version (``_previous``: its SavedModel, manifest, stored heads) -> the
changes (``_changes``: what to add, replace, remove; the new models read and checked against the
previous backbone) -> build (``_module``, on the previous version's own ``features`` function and
variables) -> save, check and publish (``_publish``, as ``export_models`` does: new heads
verified against their files, kept ones against the previous version).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from headswitch._manifest import BackboneRecord
from headswitch.contract import DEFAULT_MODEL_NAME, INPUT_TEXT

from . import _backbones, _changes, _previous
from ._collect import BackboneGroup, Progress, labels_of
from ._errors import ExportError
from ._head_store import HeadReader
from ._heads import TaskEntry
from ._keras import KerasModel
from ._module import build_module
from ._publish import (
    BackboneWriter,
    FreshTask,
    KeptTask,
    Lineage,
    Release,
    publish,
    task_entries,
)
from ._report import ExportReport
from ._versions import next_version


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
    backbone_groups: bool = False,
) -> ExportReport:
    """Publish the next version of ``previous`` (``BASE``: its newest version, or
    ``BASE/VERSION``) into ``out`` (default: the same BASE): its tasks, plus ``models`` (new
    tasks, new ids), with the heads of ``replace`` (task name -> model file; same id) and
    without ``remove`` (names; their ids are never reused). New models must be built on one of
    the previous version's backbones, or, with ``backbone_groups``, on a new one that the
    version then adds (a backbone goes when its last task does); kept tasks must answer as
    before (regression check)."""
    from headswitch._quiet import import_tensorflow

    started = time.perf_counter()
    import_tensorflow()
    if tolerance < 0:
        raise ExportError(f"--tolerance must be >= 0, got {tolerance}")
    before = _previous.open_version(previous)
    base = Path(out) if out is not None else before.base
    if version is not None and (version < 0 or (base / str(version)).exists()):
        raise ExportError(f"version {version} is not free at {base / str(version)}",
                          hint="omit --version to take the next number")
    changes = _changes.plan(before, models, replace or {}, remove, manifest)
    new = _changes.collect(changes, before, tolerance=tolerance, unsafe=unsafe_deserialization,
                           grouped=backbone_groups, progress=progress)
    assigned = _changes.assign(changes, before, new.tasks)

    reader = HeadReader(before.assets_extra, before.manifest.heads, before.label)
    kept = [KeptTask(TaskEntry(t.id, t.name, list(t.labels), reader.read(
        t.name, t.stored, t.head_sha256, unsafe=unsafe_deserialization), t.backbone), t)
        for t in assigned.kept]
    fresh = [FreshTask(TaskEntry(old.id, old.name, labels_of(task, old), task.head,
                                 new.backbone_of(task)), task, old)
             for old, task in assigned.replaced]
    fresh += [FreshTask(TaskEntry(task_id, task.name, labels_of(task), task.head,
                                  new.backbone_of(task)), task)
              for task_id, task in assigned.added]
    if version is None:
        version = next_version(base)
    entries = task_entries(fresh, kept)
    used = {e.backbone for e in entries}
    carried = [b for b in before.manifest.backbones if b.id in used]
    added = [(number, group) for number, group in new.new_groups if number in used]
    backbones = [before.backbone(b.id) for b in carried] + [
        group.reference.up_to(group.split_op).with_text_input(INPUT_TEXT) for _, group in added]
    ids = [b.id for b in carried] + [number for number, _ in added]
    lineage = Lineage(before, before.manifest.history, before.removed, tuple(changes.remove),
                      before.next_id, before.manifest.next_backbone_id)
    module = build_module(backbones, entries, removed=lineage.retired(version), ids=ids)
    return publish(Release(
        base=base, version=version, model_name=model_name, module=module, texts=before.texts,
        fresh=fresh, kept=kept,
        backbone=_backbone_writer(before, carried, added, backbones[len(carried):], module),
        lineage=lineage, tolerance=tolerance, unsafe=unsafe_deserialization, started=started))


def _backbone_writer(before: _previous.PreviousVersion, carried: list[BackboneRecord],
                     added: list[tuple[int, BackboneGroup]], models: list[KerasModel],
                     module: Any) -> BackboneWriter:
    """The previous version's backbones that keep tasks, carried over as they are (the module
    reuses their saved functions and variables), then the new ones read from model files."""

    def write(assets_extra: Path, loaded: Any) -> list[BackboneRecord]:
        count = len(carried) + len(added)
        records = [_backbones.carried(b, before.assets_extra, count, assets_extra)
                   for b in carried]
        records += [_backbones.fresh(group, model, module, number, count, "auto", assets_extra)
                    for (number, group), model in zip(added, models)]
        return records

    return write
