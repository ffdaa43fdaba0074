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

from . import _formats, _graph, _sources, _verify
from ._errors import ExportError
from ._heads import Head, analyse_head
from ._keras import TF_KERAS, KerasModel
from ._split import Splitter, label

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


@dataclasses.dataclass
class Collected:
    tasks: list[Task]  # in task-id order
    first: KerasModel  # the first task model: its backbone is the merged model's
    first_loaded: _formats.LoadedModel
    split: int
    split_ops: list[Any]
    texts: list[str]
    reference: list[_graph.OpSnapshot]

    @property
    def split_op(self) -> Any:
        """The first model's layer call where the backbone ends."""
        return self.split_ops[-1]


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
            unsafe: bool, accept_shorter: bool, progress: Progress | None = None) -> Collected:
    first_loaded = _formats.load(sources[0], unsafe=unsafe)
    first = first_loaded.tasks[0].model
    first_label = label(sources[0].path, first_loaded.tasks[0].output)
    splitter = Splitter(first, first_label, split_layer, tolerance, accept_shorter)
    texts = _verify.probe_texts(splitter.first_ops[: splitter.deepest_candidate + 1])
    tasks: list[Task] = []
    names: dict[str, Path] = {}
    compared = 0
    for index, source in enumerate(sources):
        loaded = first_loaded if index == 0 else _formats.load(source, unsafe=unsafe)
        answers = loaded.original(texts)
        digest = _sources.sha256(source.path), _sources.size(source.path)
        for t in file_tasks(source, loaded, names):
            tolerated = 0.0
            if index or t.index:
                splitter.add(loaded.tasks[t.index].model, t.where)
                tolerated = splitter.accepted(compared)
                compared += 1
            tasks.append(make_task(source, loaded, t, splitter.current(), answers, tolerated,
                                   digest))
        if index:
            revived = loaded.kit is TF_KERAS
            del loaded
            # Keras models hold reference cycles; a full collection is slow, but a tf_keras
            # model revived from a folder keeps its own copy of every variable until collected
            # (measured: +20 MB per TF-Hub-style folder without it, flat with it).
            if revived or index % _GC_EVERY == 0:
                gc.collect()
        if progress:
            progress(index + 1, len(sources), source.path.name)
    split = splitter.finish(first)
    stale = [t for t in tasks if t.head_split != split]  # the auto split moved: re-read heads
    for path_index in sorted({t.source.index for t in stale}):
        source = sources[path_index]
        loaded = first_loaded if path_index == 0 else _formats.load(source, unsafe=unsafe)
        for task in (t for t in stale if t.source.index == path_index):
            task.head = read_head(loaded.tasks[task.output_index].model, split,
                              label(source.path, task.output))
            task.head_split = split
        del loaded
        gc.collect()
    tasks.sort(key=lambda t: t.order)
    return Collected(tasks, first, first_loaded, split, splitter.first_ops[: split + 1], texts,
                     splitter.reference)
