"""What a version built from a previous one changes: tasks added (new model files), replaced
(``--replace NAME=FILE``) and removed (``--remove NAME``), checked against the previous version
before any model is read; then the new models read, each checked against the previous version's
backbone (``_leaves.match``) and split into its head.

Task ids are stable: a kept or replaced task keeps its id and name, an added task gets the next
id never used (``next_task_id`` in ``headswitch.json``), and a removed task's id is never given
again: it answers "task N ('name') was removed in version V".
"""

from __future__ import annotations

import dataclasses
import gc
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy.typing as npt

from headswitch._manifest import TaskRecord

from . import _formats, _sources
from ._collect import BackboneGroup, Progress, Task, file_tasks, make_task
from ._collect import collect as collect_files
from ._errors import ExportError
from ._keras import TF_KERAS, KerasModel
from ._leaves import match
from ._previous import PreviousVersion
from ._split import GROUPS_FLAG

_GC_EVERY = 16


@dataclasses.dataclass
class Changes:
    sources: list[_sources.ModelSource]  # new models and replacements, in the order given
    replace: dict[str, Path]  # task name -> its new model file
    remove: list[TaskRecord]  # the previous version's entries of the tasks removed


def _by_name_or_id(previous: PreviousVersion, ref: str, flag: str) -> TaskRecord:
    live = {t.name: t for t in previous.tasks}
    if ref in live:
        return live[ref]
    if ref.isdigit():
        by_id = {t.id: t for t in previous.tasks}
        if int(ref) in by_id:
            return by_id[int(ref)]
    gone = [r for r in previous.removed if r.name == ref or str(r.id) == ref]
    if gone:
        raise ExportError(f"{flag} {ref}: task {gone[-1].id} ({gone[-1].name!r}) was "
                          f"already removed in version {gone[-1].version}")
    names = ", ".join(list(live)[:20]) + (", ..." if len(live) > 20 else "")
    raise ExportError(f"{flag} {ref}: {previous.label} has no task {ref!r}",
                      hint=f"its tasks: {names}")


def plan(previous: PreviousVersion, models: Sequence[str | os.PathLike[str]],
         replace: Mapping[str, str | os.PathLike[str]], remove: Sequence[str],
         manifest: str | os.PathLike[str] | None) -> Changes:
    """Check the requested changes against the previous version (no model is read yet)."""
    removed: list[TaskRecord] = []
    for ref in remove:
        task = _by_name_or_id(previous, str(ref), "--remove")
        if task not in removed:
            removed.append(task)
    replaced: dict[str, Path] = {}
    for ref, file in replace.items():
        task = _by_name_or_id(previous, str(ref), "--replace")
        if task in removed:
            raise ExportError(f"task {task.name!r} is both replaced and removed",
                              hint="pass it to --replace or to --remove, not both")
        replaced[task.name] = Path(file)
    if not models and manifest is None and not replaced and not removed:
        raise ExportError(f"nothing to change in {previous.label}",
                          hint="pass new model files, --replace NAME=FILE or --remove NAME")
    sources = _sources.resolve(list(models), manifest) if models or manifest else []
    for name, path in replaced.items():
        same = [s for s in sources if s.path.resolve() == path.resolve()]
        if same:
            if not any(e.name == name for e in same[0].entries):
                raise ExportError(f"{path} is given as a new model and as the replacement of "
                                  f"{name!r}", hint=f"pass it once: --replace {name}={path} (its "
                                  "labels may go in the manifest: {name: NAME, model: FILE, "
                                  "labels: [...]})")
            continue  # the manifest names its task NAME: that task is the replacement
        _sources.check_model_path(path)
        sources.append(_sources.ModelSource(len(sources), path, (_sources.Entry(
            len(sources), name, None, None),), False))
    if len(previous.tasks) - len(removed) + len(sources) == 0:
        raise ExportError("removing every task leaves no task to serve",
                          hint="a version needs at least one task")
    return Changes(sources, replaced, removed)


@dataclasses.dataclass
class NewTasks:
    """The tasks of the new and replacing models, each with the id of its backbone: one of the
    previous version's, or (with ``--backbone-groups``) a new one read from its files."""

    tasks: list[Task]  # in task order
    backbone: dict[int, int]  # id(task) -> backbone id
    new_groups: list[tuple[int, BackboneGroup]]  # (new backbone id, its group)

    def backbone_of(self, task: Task) -> int:
        return self.backbone[id(task)]


def collect(changes: Changes, previous: PreviousVersion, *, tolerance: float, unsafe: bool,
            grouped: bool = False, progress: Progress | None = None) -> NewTasks:
    """Read the new and replacing models: their tasks, heads and answers on the previous
    version's probe texts. Each model's backbone must be one of the previous version's, unless
    ``grouped``: models on other backbones then form new backbone groups."""
    texts = previous.texts
    values = {b.id: previous.variable_values(b.id) for b in previous.manifest.backbones}
    tasks: list[Task] = []
    backbone: dict[int, int] = {}
    unmatched: list[_sources.ModelSource] = []
    names: dict[str, Path] = {}
    for index, source in enumerate(changes.sources):
        loaded = _formats.load(source, unsafe=unsafe)
        answers = loaded.original(texts)
        digest = _sources.sha256(source.path), _sources.size(source.path)
        mine = []
        for t in file_tasks(source, loaded, names):
            found = _matching_backbone(loaded.tasks[t.index].model, previous, values, tolerance,
                                       t.where, grouped)
            if found is None:
                unmatched.append(source)
                break
            number, split, tolerated = found
            task = make_task(source, loaded, t, split, answers, tolerated, digest)
            backbone[id(task)] = number
            mine.append(task)
        else:
            tasks += mine
        revived = loaded.kit is TF_KERAS
        del loaded
        if revived or index % _GC_EVERY == 0:
            gc.collect()
        if progress:
            progress(index + 1, len(changes.sources), source.path.name)
    new_groups: list[tuple[int, BackboneGroup]] = []
    if unmatched:
        got = collect_files(unmatched, split_layer=None, tolerance=tolerance, unsafe=unsafe,
                            accept_shorter=False, grouped=True, texts=texts)
        first_id = previous.manifest.next_backbone_id
        for group in got.groups:
            new_groups.append((first_id + group.number, group))
            for task in group.tasks:
                backbone[id(task)] = first_id + group.number
        tasks += got.tasks
        _check_unique_names(tasks)
    tasks.sort(key=lambda t: t.order)
    return NewTasks(tasks, backbone, new_groups)


def _matching_backbone(model: KerasModel, previous: PreviousVersion,
                       values: dict[int, list[npt.NDArray[Any]]], tolerance: float, where: str,
                       grouped: bool) -> tuple[int, int, float] | None:
    """(backbone id, split, accepted difference) of the previous version's first backbone the
    model is built on; None if none (``grouped``), else the refusal of the first backbone."""
    refusals: list[ExportError] = []
    for record in previous.manifest.backbones:
        try:
            split, tolerated = match(model, list(record.leaves), values[record.id], tolerance,
                                     where, previous.label)
        except ExportError as e:
            refusals.append(e)
            continue
        return record.id, split, tolerated
    if grouped:
        return None
    first = refusals[0]
    many = len(previous.manifest.backbones)
    also = f" (nor on any of its other {many - 1} backbones)" if many > 1 else ""
    raise ExportError(f"{first.message}{also}",
                      hint=f"{first.hint}; or pass {GROUPS_FLAG} to add it on its own backbone")


def _check_unique_names(tasks: list[Task]) -> None:
    seen: dict[str, Path] = {}
    for task in tasks:
        _sources.check_name(task.name, task.source.path, seen)


@dataclasses.dataclass
class Assigned:
    """The new version's tasks: the previous version's kept ones and the new tasks with ids."""

    kept: list[TaskRecord]  # previous entries, unchanged
    replaced: list[tuple[TaskRecord, Task]]  # (previous entry, its new model's task)
    added: list[tuple[int, Task]]  # (new id, task)


def assign(changes: Changes, previous: PreviousVersion, tasks: list[Task]) -> Assigned:
    """Give each new task its id: a replacement keeps its task's id, an addition takes the next
    id never used. Refuses a new task named like a kept one."""
    live = {t.name: t for t in previous.tasks}
    removed = {t.name for t in changes.remove}
    got = {t.name for t in tasks}
    for name, path in changes.replace.items():
        if name not in got:
            raise ExportError(f"--replace {name}={path}: the model gives no task named {name!r}",
                              hint="a model with several outputs needs a manifest entry "
                              "{name: NAME, model: FILE, output: OUTPUT}")
    replaced: list[tuple[TaskRecord, Task]] = []
    added: list[tuple[int, Task]] = []
    next_id = previous.next_id
    for task in tasks:
        if task.name in changes.replace:
            replaced.append((live[task.name], task))
        elif task.name in live and task.name not in removed:
            raise ExportError(
                f"task {task.name!r} (from {task.source.path}) already exists in "
                f"{previous.label} (id {live[task.name].id})",
                hint=f"to give it a new head: --replace {task.name}={task.source.path}; to add "
                "another task, give it another name (a manifest sets names)")
        else:
            added.append((next_id, task))
            next_id += 1
    changed = set(changes.replace) | removed
    kept = [t for t in previous.tasks if t.name not in changed]
    return Assigned(kept, replaced, added)
