"""A row to score, a row that is not (and why), how to read rows, and what a good row is.

A row keeps all of its own fields, so an ``id`` (or any other) field travels to the output.
A good row has a string text and a task that is an id (an integer, not a boolean) or a name:
``is_good`` says so, for every reader; ``row_of`` gives the reason of one that is not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

__all__ = ["OUTPUT_FIELDS", "TASK_TYPES", "Chunk", "Row", "RowError", "RowSpec", "describe",
           "has_output_field", "is_good", "row_of"]

MISSING: Final = object()
"""A field the row does not have."""

class Row(NamedTuple):
    """A row to score: its own fields, its text, its task (an id or a name, not yet checked),
    and where it came from."""

    fields: dict[str, Any]
    text: str
    task: int | str
    source: str
    line: int


class RowError(NamedTuple):
    """A row that is not scored, and why. ``kind`` is one word (bad_json, not_an_object,
    missing_field, bad_text, bad_task, unknown_task, bad_record, model_error); ``row`` is the
    parsed row, or the raw line when it could not be parsed."""

    source: str
    line: int
    kind: str
    message: str
    row: Any

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.source, "line": self.line, "error": self.kind,
                "message": self.message, "input": self.row}


@dataclass(frozen=True)
class RowSpec:
    """How to read a row: the names of its text and task fields, and ``tasks`` to score every
    row with instead (each row then gives one output per task, its task field set to it)."""

    text_field: str = "text"
    task_field: str = "task"
    tasks: tuple[int | str, ...] = ()


class Chunk(NamedTuple):
    """Consecutive rows of one file: at most ``size`` rows to score, the errors among them, and
    how many input rows (lines or records) they came from. ``raws[i]`` is row i's JSON line when
    its output line can be that line with the outputs appended (None otherwise)."""

    rows: Sequence[Row]
    errors: list[RowError]
    read: int
    raws: list[bytes | None]


# Fields a scored row gets; a row that has one already is written from its parsed fields.


# Fields a scored row gets; a row that has one already is written from its parsed fields.
OUTPUT_FIELDS = ("top_label", "top_score", "scores", "labels")
_OUTPUT_FIELDS = frozenset(OUTPUT_FIELDS)


def has_output_field(item: dict[str, Any]) -> bool:
    return not _OUTPUT_FIELDS.isdisjoint(item)


TASK_TYPES: Final = frozenset({int, str})
"""The types of a good row's task (exactly: ``bool`` is not one), for readers that check a
whole column at once (``set(map(type, tasks)) <= TASK_TYPES``)."""


def is_good(text: Any, task: Any) -> bool:
    """Whether a row with this text and task is one to score (its task not yet checked against
    the model): a string text, an integer or string task."""
    return type(text) is str and type(task) in TASK_TYPES


def describe(value: Any) -> str:
    kind = {bool: "a boolean", int: "a number", float: "a number", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)
    shown = json.dumps(value, ensure_ascii=False)
    return f"{kind} ({shown[:40]}{'...' if len(shown) > 40 else ''})"


def row_of(fields: dict[str, Any], text: Any, source: str, line: int, spec: RowSpec
           ) -> Iterator[Row | RowError]:
    """The rows of a record's ``fields`` (one, or one per task of ``spec.tasks``), or the
    reason it has none. ``text``: its text field, or ``MISSING``."""
    if text is MISSING:
        yield RowError(source, line, "missing_field", f"no {spec.text_field!r} field", fields)
        return
    if type(text) is not str:
        yield RowError(source, line, "bad_text",
                       f"{spec.text_field!r} must be a string, got {describe(text)}", fields)
        return
    if spec.tasks:
        for task in spec.tasks:
            own = dict(fields)
            own[spec.task_field] = task
            yield Row(own, text, task, source, line)
        return
    task = fields.get(spec.task_field, MISSING)
    if task is MISSING:
        yield RowError(source, line, "missing_field",
                       f"no {spec.task_field!r} field (give one per row, or --task)", fields)
    elif not is_good(text, task):
        yield RowError(source, line, "bad_task", f"{spec.task_field!r} must be a task id "
                       f"(integer) or name (string), got {describe(task)}", fields)
    else:
        yield Row(fields, text, task, source, line)
