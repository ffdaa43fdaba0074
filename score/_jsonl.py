"""Reading JSON lines: groups of good lines as columns (no Python loop of their own), the
others line by line, each bad line with its reason."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, overload

try:
    import orjson
except ImportError:  # pragma: no cover - the "score" extra is missing; the CLI says so first
    orjson = None  # type: ignore[assignment]

from ._rows import (
    MISSING,
    TASK_TYPES,
    Chunk,
    Row,
    RowError,
    RowSpec,
    describe,
    has_output_field,
    is_good,
    row_of,
)

__all__ = ["Columns", "has_long_number", "jsonl_chunks", "line_chunks", "read_jsonl"]

_DIGITS = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))  # digits stay, others: " "


def has_long_number(raw: bytes) -> bool:
    """Twenty digits in a row anywhere: one ``bytes.translate`` and one substring search, both
    C loops (no regular expression)."""
    return b"00000000000000000000" in raw.translate(_DIGITS)


def _raw_text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace").rstrip("\r\n")


class _NotUnicode(ValueError):
    pass


def _loads(raw: bytes) -> Any:
    """orjson (faster than the standard library: the reader's rate is part of
    ``bench/results/score.md``, ``bench/score_bench.py``), except where it would change a value:
    it reads integers past 64 bits as floats, so lines with 20 digits in a row, and lines it
    refuses (a byte order mark, NaN, a lone surrogate), go to the standard library. A string
    with a lone surrogate (``"\\ud800"``) is refused here: it is not text, and no file, model
    or Beam coder can take it."""
    if not has_long_number(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    item = json.loads(raw)
    try:
        json.dumps(item, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _NotUnicode(f"a string holds a lone surrogate ({exc.object[exc.start]!r})") from exc
    return item


def jsonl_chunks(lines: Iterator[bytes], source: str, spec: RowSpec, size: int,
                  first_line: int = 1) -> Iterator[Chunk]:
    """Groups of ``size`` lines, read as columns (``_columns``) or, to score each row with
    several tasks or for numbers past 64 bits, line by line."""
    number = first_line
    while group := list(islice(lines, size)):
        if spec.tasks or has_long_number(b"".join(group)):
            yield from line_chunks(group, source, spec, size, number)
        else:
            columns, errors = _columns(group, source, number, spec)
            yield Chunk(columns, errors, len(columns) + len(errors), columns.raws)
        number += len(group)


def _columns(group: list[bytes], source: str, first_line: int, spec: RowSpec
             ) -> tuple[Columns, list[RowError]]:
    """The rows of a group of lines, as columns, and the errors among them. A group of good
    rows (JSON objects with a string text and an integer or string task) takes no Python
    loop of its own (``line_chunks`` takes a Python step per line). A bad line is read again by
    ``line_chunks``, for its reason."""
    loads = orjson.loads
    errors: list[RowError] = []
    numbers: Sequence[int] = range(first_line, first_line + len(group))
    reparsable = True  # every row's fields are orjson.loads of its line
    try:
        items = list(map(loads, group))
        raws: list[bytes] = group
    except ValueError:  # bad JSON, a blank line, or a line only the standard library reads
        items, raws, numbers = [], [], []
        for number, raw in enumerate(group, first_line):
            try:
                item = loads(raw)
            except ValueError:
                try:
                    item = _loads(raw)  # a byte order mark, NaN: read as line_chunks reads it
                except ValueError:
                    errors += _errors_of(raw, source, spec, number)
                    continue
                reparsable = False
            items.append(item)
            raws.append(raw)
            numbers.append(number)
    text_field, task_field = spec.text_field, spec.task_field
    try:
        texts = [item[text_field].encode("utf-8") for item in items]
        tasks = [item[task_field] for item in items]
        if not set(map(type, tasks)) <= TASK_TYPES:  # is_good, for the whole column
            raise TypeError("a task is a bool, a float, a list...")
    except (KeyError, TypeError, AttributeError, ValueError):
        keep = [k for k, item in enumerate(items)
                if type(item) is dict and is_good(item.get(text_field), item.get(task_field))]
        for k in sorted(set(range(len(items))) - set(keep)):
            errors += _errors_of(raws[k], source, spec, numbers[k])
        items = [items[k] for k in keep]
        raws = [raws[k] for k in keep]
        numbers = [numbers[k] for k in keep]
        texts = [item[text_field].encode("utf-8") for item in items]
        tasks = [item[task_field] for item in items]
    kept: list[bytes | None] = [raw if raw[0] == 123 and not has_output_field(item) else None
                                for item, raw in zip(items, raws)]  # 123: "{"
    return Columns(items, texts, tasks, kept, source, numbers, text_field, reparsable), errors


def _errors_of(raw: bytes, source: str, spec: RowSpec, number: int) -> list[RowError]:
    """The error of a line that is not a row to score (none for a blank line)."""
    return [error for chunk in line_chunks([raw], source, spec, 1, number)
            for error in chunk.errors]


@dataclass(eq=False)
class Columns(Sequence[Row]):
    """Rows of one file as columns: their fields (``parsed``), encoded texts, tasks (not yet
    checked), JSON lines (see ``Chunk.raws``) and line numbers. A ``Row`` is made only when
    asked for: scoring and writing good rows needs none. Pickled (to leave a reader process),
    rows that have their JSON line leave their fields behind: they are read again if asked for."""

    parsed: list[dict[str, Any]] | None
    texts: list[bytes]
    tasks: list[int | str]
    raws: list[bytes | None]
    source: str
    numbers: Sequence[int]
    text_field: str
    reparsable: bool = True  # False: some fields are not orjson.loads of their line

    @property
    def items(self) -> list[dict[str, Any]]:
        if self.parsed is None:
            self.parsed = [orjson.loads(raw) for raw in self.raws]  # type: ignore[arg-type]
        return self.parsed

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.reparsable and None not in self.raws:
            state["parsed"] = None
        return state

    def select(self, keep: Sequence[int]) -> Columns:
        """These rows only."""
        items = self.parsed
        return Columns([items[k] for k in keep] if items is not None else None,
                       [self.texts[k] for k in keep],
                       [self.tasks[k] for k in keep], [self.raws[k] for k in keep],
                       self.source, [self.numbers[k] for k in keep], self.text_field,
                       self.reparsable)

    def __len__(self) -> int:
        return len(self.texts)

    @overload
    def __getitem__(self, i: int) -> Row: ...
    @overload
    def __getitem__(self, i: slice) -> list[Row]: ...

    def __getitem__(self, i: int | slice) -> Row | list[Row]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        item = self.items[i]
        return Row(item, item[self.text_field], self.tasks[i], self.source, self.numbers[i])


def line_chunks(lines: list[bytes], source: str, spec: RowSpec, size: int,
                 first_line: int) -> Iterator[Chunk]:
    loads = _loads
    text_field, task_field = spec.text_field, spec.task_field
    fast = not spec.tasks
    rows: list[Row] = []
    errors: list[RowError] = []
    raws: list[bytes | None] = []
    read = 0
    for number, raw in enumerate(lines, first_line):
        try:
            item = loads(raw)
        except ValueError as exc:  # UnicodeDecodeError is one too
            if not raw.strip():
                continue
            reason = ("not UTF-8" if isinstance(exc, UnicodeDecodeError) else
                      "not valid Unicode" if isinstance(exc, _NotUnicode) else "not JSON")
            errors.append(RowError(source, number, "bad_json", f"{reason}: {exc}",
                                   _raw_text(raw)))
            read += 1
            continue
        read += 1
        if type(item) is dict:
            text: Any = item.get(text_field, MISSING)
            task: Any = item.get(task_field)
            if fast and is_good(text, task):
                rows.append(Row(item, text, task, source, number))
                raws.append(raw if raw[0] == 123 and not has_output_field(item) else None)
                if len(rows) >= size:
                    yield Chunk(rows, errors, read, raws)
                    rows, errors, read, raws = [], [], 0, []
                continue
            for out in row_of(item, text, source, number, spec):
                if type(out) is Row:
                    rows.append(out)
                    raws.append(None)
                    if len(rows) >= size:
                        yield Chunk(rows, errors, read, raws)
                        rows, errors, read, raws = [], [], 0, []
                else:
                    errors.append(out)  # type: ignore[arg-type]
            continue
        errors.append(RowError(source, number, "not_an_object",
                               f"expected a JSON object like {{\"{text_field}\": ..., "
                               f"\"{task_field}\": ...}}, got {describe(item)}",
                               _raw_text(raw)))
    if rows or errors or read:
        yield Chunk(rows, errors, read, raws)


def read_jsonl(lines: Iterator[bytes], source: str, spec: RowSpec) -> Iterator[Row | RowError]:
    """Rows of a JSON lines stream, in order; blank lines are skipped."""
    for chunk in jsonl_chunks(lines, source, spec, 1024):
        items: list[Row | RowError] = [*chunk.rows, *chunk.errors]
        items.sort(key=lambda item: item.line)  # stable: a line's rows keep their order
        yield from items
