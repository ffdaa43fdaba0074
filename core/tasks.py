"""The task list of a headswitch model, as its ``tasks`` signature returns it, read one way by
every part (the clients, batch scoring, the exporter's regression check).

Task ids are whatever the model gives: a task removed in a later version leaves its id unused,
so the ids of a model need not be ``0..N-1``. Standard library only, like ``contract``::

    from headswitch.tasks import TaskList
    tasks = TaskList.from_columns(ids, names, num_classes, labels, activations)
    tasks.id_of("spam"), tasks.name_of(3), tasks.resolve("3"), tasks.resolve("spam")
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import SupportsInt

from ._errors import Error

__all__ = ["TaskInfo", "TaskList", "UnknownTaskError"]

NAMES_SHOWN = 10
"""How many known task names an unknown task's message lists."""


@dataclass(frozen=True)
class TaskInfo:
    """One task of a model, as its ``tasks`` signature lists it."""

    id: int
    name: str
    labels: tuple[str, ...]
    activation: str  # softmax, sigmoid, linear or other

    @property
    def num_classes(self) -> int:
        return len(self.labels)


class UnknownTaskError(Error, LookupError):
    """A task (``task``: the id or name as given) that is not one of the model's tasks; the
    message names it and lists the known ones."""

    def __init__(self, task: int | str, message: str) -> None:
        super().__init__(message)
        self.task = task


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class TaskList(Sequence[TaskInfo]):
    """A model's tasks in id order; the ids may have gaps (removed tasks). Looks tasks up by id
    (``by_id``, ``name_of``), by name (``by_name``, ``id_of``) and either way (``resolve``)."""

    def __init__(self, tasks: Iterable[TaskInfo]) -> None:
        ordered = tuple(sorted(tasks, key=lambda task: task.id))
        by_id = {task.id: task for task in ordered}
        by_name = {task.name: task for task in ordered}
        if len(by_id) != len(ordered) or len(by_name) != len(ordered):
            ids = [task.id for task in ordered]
            names = [task.name for task in ordered]
            raise ValueError(f"a task list names each task once; got ids {ids}, names {names}")
        self.tasks = ordered
        self.by_id: Mapping[int, TaskInfo] = MappingProxyType(by_id)
        self.by_name: Mapping[str, TaskInfo] = MappingProxyType(by_name)
        refs: dict[int | str, int] = {str(task.id): task.id for task in ordered}
        refs.update((task.name, task.id) for task in ordered)  # a name that looks like an id
        refs.update((task.id, task.id) for task in ordered)  # is that task's name first
        self.refs: Mapping[int | str, int] = MappingProxyType(refs)
        """Every task given as a user may give it (an id, a name, an id written as text) to its
        id: ``resolve`` in one lookup, for the common cases. Look up ints and strings only
        (``True`` finds the id 1)."""

    @classmethod
    def from_columns(cls, ids: Iterable[SupportsInt], names: Iterable[object],
                     num_classes: Iterable[SupportsInt], labels: Iterable[Iterable[object]],
                     activations: Iterable[object]) -> TaskList:
        """From the ``tasks`` signature's outputs of one example (``task_id``, ``name``,
        ``num_classes``, ``labels``, ``activation``; strings as ``str`` or UTF-8 ``bytes``,
        numbers as anything ``int`` takes). Each task's labels are cut to its class count."""
        return cls(TaskInfo(int(i), _text(name), tuple(_text(v) for v in list(row)[: int(n)]),
                            _text(activation))
                   for i, name, n, row, activation
                   in zip(ids, names, num_classes, labels, activations, strict=True))

    # ------------------------------------------------------------------------ the sequence

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[TaskInfo]:
        return iter(self.tasks)

    def __getitem__(self, index: int) -> TaskInfo:  # type: ignore[override]
        """The task at position ``index`` in id order (not the task with id ``index``: see
        ``by_id``)."""
        return self.tasks[index]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskList) and self.tasks == other.tasks

    def __hash__(self) -> int:
        return hash(self.tasks)

    def __repr__(self) -> str:
        return f"TaskList({self.describe()})"

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(task.id for task in self.tasks)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(task.name for task in self.tasks)

    # ------------------------------------------------------------------------ lookups

    def id_of(self, name: str) -> int:
        """The id of the task named ``name``."""
        task = self.by_name.get(name)
        if task is None:
            raise UnknownTaskError(name, self.unknown(name))
        return task.id

    def name_of(self, task_id: int) -> str:
        """The name of the task with id ``task_id``."""
        task = self.by_id.get(task_id)
        if task is None:
            raise UnknownTaskError(task_id, self.unknown(task_id))
        return task.name

    def find(self, task: int | str) -> int | None:
        """The id of ``task`` as a user gives it: an id, a name, or an id written as text (a
        name that looks like an id is that task's name first); None if it is no task here."""
        found = self.refs.get(task)
        if found is not None or not isinstance(task, str):
            return found
        stripped = task.strip()
        if stripped.lstrip("+-").isdigit():
            number = int(stripped)
            return number if number in self.by_id else None
        return None

    def resolve(self, task: int | str) -> int:
        """``find``, raising :class:`UnknownTaskError` naming ``task`` and the known tasks."""
        found = self.find(task)
        if found is None:
            raise UnknownTaskError(task, self.unknown(task))
        return found

    # ------------------------------------------------------------------------ messages

    def describe(self) -> str:
        """``3 tasks: ids 0, 2, 3, names topic, spam, lang``, the lists cut short when long."""
        n = len(self.tasks)
        return (f"{n} task{'s' if n != 1 else ''}: ids {_shown(map(str, self.ids))}, "
                f"names {_shown(self.names)}")

    def unknown(self, task: int | str) -> str:
        """The message for ``task``, which is not one of these tasks."""
        what = (f"task id {task}" if isinstance(task, int)
                else f"task {task!r}")
        return f"unknown {what}; the model has {self.describe()}"


def _shown(values: Iterable[str]) -> str:
    listed = list(values)
    return ", ".join(listed[:NAMES_SHOWN]) + (", ..." if len(listed) > NAMES_SHOWN else "")
