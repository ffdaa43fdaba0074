"""Reading every model file once: its tasks, their heads, the split, the originals' answers.

Files are read one at a time and freed (every new Keras model costs native memory), so the
memory an export needs does not grow with the number of files beyond the heads it keeps.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy.typing as npt

from headswitch._manifest import TaskRecord

from . import _formats, _sources, _verify
from ._errors import ExportError
from ._heads import Head, analyse_head
from ._keras import TF_KERAS, KerasModel
from ._split import BackboneTree, LeftLayer, label

Progress = Callable[[int, int, str], None]
_GC_EVERY = 16  # files read between garbage collections: bounds memory, keeps export fast


@dataclasses.dataclass
class Task:
    order: tuple[int, int]
    name: str
    labels: tuple[str, ...] | None
    source: _sources.ModelSource
    output: str | None
    output_index: int  # which of the file's normalized task models
    format: str
    notes: list[str]
    head: Head
    head_split: int
    expected: npt.NDArray[Any]
    tolerated: float  # backbone weight difference accepted within --tolerance
    sha256: str
    bytes: int
    member: int = -1  # its index in the backbone tree (``_split.BackboneTree``)


@dataclasses.dataclass
class BackboneGroup:
    """Tasks that share one backbone: their group's first task model up to ``split``."""

    number: int  # its position among the groups (0 first)
    reference: KerasModel  # the group's first task model: its backbone is the group's
    split: int  # the position of the layer call where the backbone ends
    tasks: list[Task]  # in task-id order
    # layers after the split that the group's models all have, some fine-tuned (the automatic
    # split ends before them): the report names them
    left: list[LeftLayer] = dataclasses.field(default_factory=list)

    @property
    def split_ops(self) -> list[Any]:
        """The reference's layer calls up to the split."""
        return self.reference.operations()[: self.split + 1]

    @property
    def split_op(self) -> Any:
        return self.split_ops[-1]


@dataclasses.dataclass
class Collected:
    tasks: list[Task]  # in task-id order
    groups: list[BackboneGroup]  # one unless --backbone-groups
    texts: list[str]  # probe texts

    @property
    def first(self) -> KerasModel:
        """The first task model (the first group's reference)."""
        return self.groups[0].reference

    def group_of(self, task: Task) -> BackboneGroup:
        return next(g for g in self.groups if any(t is task for t in g.tasks))


def labels_of(task: Task, before: TaskRecord | None = None) -> list[str]:
    """A task's labels: the manifest's, else those of the task it replaces (``before``, when
    the width still fits), else "0", "1", ..."""
    width = task.head.width
    if task.labels is not None:
        if len(task.labels) != width:
            raise ExportError(f"task {task.name!r}: the manifest gives {len(task.labels)} labels "
                              f"but the model {task.source.path} outputs {width} values")
        return list(task.labels)
    if before is not None:
        if len(before.labels) == width:
            return list(before.labels)
        raise ExportError(
            f"task {task.name!r}: the new model {task.source.path} outputs {width} values, "
            f"but the task has {len(before.labels)} labels",
            hint="give its labels in a manifest: {name: NAME, model: FILE, labels: [...]}")
    return [str(i) for i in range(width)]


def read_head(model: KerasModel, split: int, where: str) -> Head:
    """The head of a task model split at position ``split``: stacked Dense weights or generic."""
    ops = model.operations()
    head = model.head(ops[split]) if split < len(ops) else None
    if head is None:
        raise ExportError(f"{where}: layer {ops[min(split, len(ops) - 1)].name!r} does not split "
                          "this model into backbone and head")
    return analyse_head(head)


@dataclasses.dataclass
class FileTask:
    """One task of a loaded model file, before its backbone is checked."""
    order: tuple[int, int]  # task-id order key
    name: str
    output: str | None
    labels: tuple[str, ...] | None
    index: int  # the output's position among the file's tasks (``loaded.tasks[index]``)
    where: str  # how messages name it: the file, and the output if any


def file_tasks(source: _sources.ModelSource, loaded: _formats.LoadedModel,
               names: dict[str, Path]) -> Iterator[FileTask]:
    """The tasks of one loaded file, named (manifest or file stem) and checked for repeated
    names against ``names``."""
    outputs = [t.output for t in loaded.tasks]
    for order, name, output, labels in _sources.task_names(source, [o or "" for o in outputs]):
        _sources.check_name(name, source.path, names)
        k = outputs.index(output) if output is not None else 0
        yield FileTask(order, name, output, labels, k, label(source.path, output))


def make_task(source: _sources.ModelSource, loaded: _formats.LoadedModel, t: FileTask,
              split: int, answers: list[Any], tolerated: float, digest: tuple[str, int]) -> Task:
    return Task(t.order, t.name, t.labels, source, t.output, t.index, loaded.format,
                loaded.notes, read_head(loaded.tasks[t.index].model, split, t.where), split,
                answers[t.index], tolerated, *digest)


def collect(sources: list[_sources.ModelSource], *, split_layer: str | None, tolerance: float,
            unsafe: bool, accept_shorter: bool, grouped: bool = False,
            texts: list[str] | None = None, progress: Progress | None = None) -> Collected:
    """Read every file once: its tasks, their answers on the probe texts and their heads; find
    the backbone groups (one unless ``grouped``) and where each backbone ends. The probe texts
    are made from the first model's vocabulary unless given."""
    first_loaded = _formats.load(sources[0], unsafe=unsafe)
    tree = BackboneTree(split_layer, tolerance)
    if texts is None:  # words of the first model's vocabulary (any of its task models)
        texts = _verify.probe_texts(first_loaded.tasks[0].model.operations()[:-1])
    first: KerasModel | None = None
    tasks: list[Task] = []
    names: dict[str, Path] = {}
    for index, source in enumerate(sources):
        loaded = first_loaded if index == 0 else _formats.load(source, unsafe=unsafe)
        answers = loaded.original(texts)
        digest = _sources.sha256(source.path), _sources.size(source.path)
        for t in file_tasks(source, loaded, names):
            model = loaded.tasks[t.index].model
            member = tree.add(model, t.where)
            if member == 0:
                first = model
            task = make_task(source, loaded, t, tree.provisional_split(member), answers,
                             tree.accepted(member), digest)
            task.member = member
            tasks.append(task)
        if index:
            revived = loaded.kit is TF_KERAS
            del loaded
            # Keras models hold reference cycles; a full collection is slow, but a tf_keras
            # model revived from a folder keeps its own copy of every variable until collected.
            if revived or index % _GC_EVERY == 0:
                gc.collect()
        if progress:
            progress(index + 1, len(sources), source.path.name)
    planned = tree.plan(grouped=grouped, accept_shorter=accept_shorter)
    split_of = {m: g.split for g in planned for m in g.members}
    references = {g.reference for g in planned}
    by_member = {t.member: t for t in tasks}
    models = _reread(sources[0], first_loaded, unsafe,
                     [t for t in tasks if t.head_split != split_of[t.member]
                      or (t.member in references and t.member != 0)], split_of, references)
    assert first is not None
    models[0] = first
    groups = [BackboneGroup(number, models[g.reference], g.split,
                            sorted((by_member[m] for m in g.members), key=lambda t: t.order),
                            tree.left_shared(g))
              for number, g in enumerate(planned)]
    tasks.sort(key=lambda t: t.order)
    return Collected(tasks, groups, texts)


def _reread(first: _sources.ModelSource, first_loaded: _formats.LoadedModel, unsafe: bool,
            tasks: list[Task], split_of: dict[int, int], references: set[int]
            ) -> dict[int, KerasModel]:
    """Read ``tasks``' files again: heads whose split moved once every model was seen, and the
    task models of the group references (returned, by member index). The first file
    (``first_loaded``) is still loaded."""
    kept: dict[int, KerasModel] = {}
    for source in {id(t.source): t.source for t in tasks}.values():
        loaded = first_loaded if source is first else _formats.load(source, unsafe=unsafe)
        for task in (t for t in tasks if t.source is source):
            model = loaded.tasks[task.output_index].model
            split = split_of[task.member]
            if task.head_split != split:
                task.head = read_head(model, split, label(source.path, task.output))
                task.head_split = split
            if task.member in references:
                kept[task.member] = model
        del loaded
        gc.collect()
    return kept
