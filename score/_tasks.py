"""The model's task table (from its ``tasks`` signature) and the host-side check of each row's
task against it, so that a bad row never reaches the model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_NAMES_SHOWN = 20


@dataclass(frozen=True)
class TaskTable:
    """Task ``i`` is named ``names[i]``, has ``num_classes[i]`` classes labelled
    ``labels[i]`` and the output activation ``activations[i]``."""

    names: tuple[str, ...]
    num_classes: tuple[int, ...]
    labels: tuple[tuple[str, ...], ...]
    activations: tuple[str, ...]
    _ids: Mapping[str, int] = field(init=False, repr=False, compare=False)
    ids: Mapping[int | str, int] = field(init=False, repr=False, compare=False)
    """Every task given the way a row may give it (an id, a name, an id written as text) to
    its id: what ``resolve`` returns for those, in one lookup. Look up ints and strings only
    (``True`` finds the id 1)."""

    def __post_init__(self) -> None:
        names = {name: i for i, name in enumerate(self.names)}
        object.__setattr__(self, "_ids", names)
        ids: dict[int | str, int] = {str(i): i for i in range(len(self.names))}
        ids.update(names)  # a name that looks like an id is that task's name first
        ids.update((i, i) for i in range(len(self.names)))
        object.__setattr__(self, "ids", ids)

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, Any]) -> TaskTable:
        """From the ``tasks`` signature's outputs (numpy arrays, first row), read by id."""
        from headswitch.contract import (
            TASKS_OUTPUT_ACTIVATION,
            TASKS_OUTPUT_LABELS,
            TASKS_OUTPUT_NAME,
            TASKS_OUTPUT_NUM_CLASSES,
            TASKS_OUTPUT_TASK_ID,
        )

        ids = [int(i) for i in outputs[TASKS_OUTPUT_TASK_ID][0]]
        if sorted(ids) != list(range(len(ids))):
            raise ValueError(f"the tasks signature's ids are not 0..{len(ids) - 1}: {ids}")
        order = sorted(range(len(ids)), key=ids.__getitem__)

        def text(value: Any) -> str:
            return value.decode("utf-8") if isinstance(value, bytes) else str(value)

        names = [text(outputs[TASKS_OUTPUT_NAME][0][i]) for i in order]
        counts = [int(outputs[TASKS_OUTPUT_NUM_CLASSES][0][i]) for i in order]
        labels = [tuple(text(v) for v in outputs[TASKS_OUTPUT_LABELS][0][i][:k])
                  for i, k in zip(order, counts)]
        activations = [text(outputs[TASKS_OUTPUT_ACTIVATION][0][i]) for i in order]
        return cls(tuple(names), tuple(counts), tuple(labels), tuple(activations))

    def __len__(self) -> int:
        return len(self.names)

    def describe(self) -> str:
        n = len(self.names)
        shown = ", ".join(self.names[:_NAMES_SHOWN]) + (", ..." if n > _NAMES_SHOWN else "")
        return f"{n} task{'s' if n != 1 else ''}: ids 0..{n - 1}, names {shown}"

    def resolve(self, task: int | str) -> int | str:
        """The task id of a row's ``task`` (an id, a name, or an id written as a string), or
        the reason it is not one of the model's tasks."""
        if isinstance(task, str):
            found = self._ids.get(task)
            if found is not None:
                return found
            stripped = task.strip()
            if stripped.lstrip("+-").isdigit():
                task = int(stripped)
            else:
                return f"unknown task {task!r} ({self.describe()})"
        if 0 <= task < len(self.names):
            return task
        return f"unknown task id {task} ({self.describe()})"
