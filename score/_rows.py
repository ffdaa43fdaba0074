"""Input rows: JSON lines or CSV/TSV records in; rows to score, or errors with a reason, out.

A row keeps all of its own fields, so an ``id`` (or any other) field travels to the output.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import IO, Any, NamedTuple, overload

try:
    import orjson
except ImportError:  # pragma: no cover - the "score" extra is missing; the CLI says so first
    orjson = None  # type: ignore[assignment]

FORMATS = ("jsonl", "csv", "tsv")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
               ".tsv": "tsv", ".tab": "tsv"}
COMPRESSED = (".gz", ".bz2")
_MISSING = object()
_DIGITS = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))  # digits stay, others: " "


def _has_long_number(raw: bytes) -> bool:
    """Twenty digits in a row anywhere (10x faster than a regular expression)."""
    return b"00000000000000000000" in raw.translate(_DIGITS)


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


def detect_format(path: str) -> str | None:
    """``jsonl``, ``csv`` or ``tsv`` from the file name (``.gz``/``.bz2`` allowed), else None."""
    name = path.lower()
    for suffix in COMPRESSED:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    dot = name.rfind(".")
    return _EXTENSIONS.get(name[dot:]) if dot >= 0 else None


def _describe(value: Any) -> str:
    kind = {bool: "a boolean", int: "a number", float: "a number", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)
    shown = json.dumps(value, ensure_ascii=False)
    return f"{kind} ({shown[:40]}{'...' if len(shown) > 40 else ''})"


def _raw_text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace").rstrip("\r\n")


def _rows_of(fields: dict[str, Any], text: Any, source: str, line: int, spec: RowSpec
             ) -> Iterator[Row | RowError]:
    if text is _MISSING:
        yield RowError(source, line, "missing_field", f"no {spec.text_field!r} field", fields)
        return
    if not isinstance(text, str):
        yield RowError(source, line, "bad_text",
                       f"{spec.text_field!r} must be a string, got {_describe(text)}", fields)
        return
    if spec.tasks:
        for task in spec.tasks:
            own = dict(fields)
            own[spec.task_field] = task
            yield Row(own, text, task, source, line)
        return
    task = fields.get(spec.task_field, _MISSING)
    if task is _MISSING:
        yield RowError(source, line, "missing_field",
                       f"no {spec.task_field!r} field (give one per row, or --task)", fields)
    elif isinstance(task, bool) or not isinstance(task, (int, str)):
        yield RowError(source, line, "bad_task", f"{spec.task_field!r} must be a task id "
                       f"(integer) or name (string), got {_describe(task)}", fields)
    else:
        yield Row(fields, text, task, source, line)


class _NotUnicode(ValueError):
    pass


def _loads(raw: bytes) -> Any:
    """orjson (5x faster than the standard library here), except where it would change a value:
    it reads integers past 64 bits as floats, so lines with 20 digits in a row, and lines it
    refuses (a byte order mark, NaN, a lone surrogate), go to the standard library. A string
    with a lone surrogate (``"\\ud800"``) is refused here: it is not text, and no file, model
    or Beam coder can take it."""
    if not _has_long_number(raw):
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


class Chunk(NamedTuple):
    """Consecutive rows of one file: at most ``size`` rows to score, the errors among them, and
    how many input rows (lines or records) they came from. ``raws[i]`` is row i's JSON line when
    its output line can be that line with the outputs appended (None otherwise)."""

    rows: Sequence[Row]
    errors: list[RowError]
    read: int
    raws: list[bytes | None]


# Fields a scored row gets; a row that has one already is written from its parsed fields.
OUTPUT_FIELDS = ("top_label", "top_score", "scores", "labels")
_OUTPUT_FIELDS = frozenset(OUTPUT_FIELDS)


def _jsonl_chunks(lines: Iterator[bytes], source: str, spec: RowSpec, size: int,
                  first_line: int = 1) -> Iterator[Chunk]:
    """Groups of ``size`` lines, read as columns (``_columns``) or, to score each row with
    several tasks or for numbers past 64 bits, line by line."""
    number = first_line
    while group := list(islice(lines, size)):
        if spec.tasks or _has_long_number(b"".join(group)):
            yield from _line_chunks(group, source, spec, size, number)
        else:
            columns, errors = _columns(group, source, number, spec)
            yield Chunk(columns, errors, len(columns) + len(errors), columns.raws)
        number += len(group)


def _columns(group: list[bytes], source: str, first_line: int, spec: RowSpec
             ) -> tuple[Columns, list[RowError]]:
    """The rows of a group of lines, as columns, and the errors among them. A group of good
    rows (JSON objects with a string text and an integer or string task) takes no Python
    loop of its own: about 4x faster than ``_line_chunks``. A bad line is read again by
    ``_line_chunks``, for its reason."""
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
                    item = _loads(raw)  # a byte order mark, NaN: read as _line_chunks reads it
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
        if not set(map(type, tasks)) <= {int, str}:
            raise TypeError("a task is a bool, a float, a list...")
    except (KeyError, TypeError, AttributeError, ValueError):
        keep = [k for k, item in enumerate(items)
                if type(item) is dict and type(item.get(text_field)) is str
                and type(item.get(task_field)) in (int, str)]
        for k in sorted(set(range(len(items))) - set(keep)):
            errors += _errors_of(raws[k], source, spec, numbers[k])
        items = [items[k] for k in keep]
        raws = [raws[k] for k in keep]
        numbers = [numbers[k] for k in keep]
        texts = [item[text_field].encode("utf-8") for item in items]
        tasks = [item[task_field] for item in items]
    kept: list[bytes | None] = [raw if raw[0] == 123 and not _has_output_field(item) else None
                                for item, raw in zip(items, raws)]  # 123: "{"
    return Columns(items, texts, tasks, kept, source, numbers, text_field, reparsable), errors


def _errors_of(raw: bytes, source: str, spec: RowSpec, number: int) -> list[RowError]:
    """The error of a line that is not a row to score (none for a blank line)."""
    return [error for chunk in _line_chunks([raw], source, spec, 1, number)
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


def _line_chunks(lines: list[bytes], source: str, spec: RowSpec, size: int,
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
            text = item.get(text_field, _MISSING)
            task = item.get(task_field)
            if fast and type(text) is str and (type(task) is str or type(task) is int):
                rows.append(Row(item, text, task, source, number))
                raws.append(raw if raw[0] == 123 and not _has_output_field(item) else None)
                if len(rows) >= size:
                    yield Chunk(rows, errors, read, raws)
                    rows, errors, read, raws = [], [], 0, []
                continue
            for out in _rows_of(item, text, source, number, spec):
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
                               f"\"{task_field}\": ...}}, got {_describe(item)}",
                               _raw_text(raw)))
    if rows or errors or read:
        yield Chunk(rows, errors, read, raws)


def _has_output_field(item: dict[str, Any]) -> bool:
    return not _OUTPUT_FIELDS.isdisjoint(item)


def read_jsonl(lines: Iterator[bytes], source: str, spec: RowSpec) -> Iterator[Row | RowError]:
    """Rows of a JSON lines stream, in order; blank lines are skipped."""
    for chunk in _jsonl_chunks(lines, source, spec, 1024):
        items: list[Row | RowError] = [*chunk.rows, *chunk.errors]
        items.sort(key=lambda item: item.line)  # stable: a line's rows keep their order
        yield from items


def read_delimited(stream: IO[bytes], source: str, spec: RowSpec, delimiter: str
                   ) -> Iterator[Row | RowError]:
    """Rows of a CSV or TSV stream whose first record names the columns."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        yield from _delimited_rows(csv.reader(text, delimiter=delimiter), source, spec,
                                   delimiter)
    finally:
        text.detach()  # the caller's stream stays open


def _delimited_rows(reader: Any, source: str, spec: RowSpec, delimiter: str
                    ) -> Iterator[Row | RowError]:
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        yield RowError(source, 1, "bad_record", f"unreadable header: {exc}", None)
        return
    width = len(header)
    if spec.text_field not in header:
        columns = ", ".join(header[:20]) + (", ..." if width > 20 else "")
        missing_text = f"no {spec.text_field!r} column (columns: {columns})"
    else:
        missing_text = ""
    end = reader.line_num
    while True:
        start = end + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            end = reader.line_num
            yield RowError(source, start, "bad_record", str(exc), None)
            continue
        end = reader.line_num
        if not values:
            continue
        fields: dict[str, Any] = dict(zip(header, values))
        try:
            delimiter.join(values).encode("utf-8")
        except UnicodeEncodeError:
            fields = {k: v.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                      for k, v in fields.items()}
            yield RowError(source, start, "bad_text", "not UTF-8", fields)
            continue
        if len(values) != width:
            yield RowError(source, start, "bad_record",
                           f"{len(values)} values for {width} columns", values)
            continue
        if missing_text:
            yield RowError(source, start, "missing_field", missing_text, fields)
            continue
        yield from _rows_of(fields, fields[spec.text_field], source, start, spec)


def read_rows(stream: IO[bytes], source: str, fmt: str, spec: RowSpec
              ) -> Iterator[Row | RowError]:
    """The rows of one (already decompressed) binary stream."""
    if fmt == "jsonl":
        return read_jsonl(iter(stream), source, spec)
    return read_delimited(stream, source, spec, "," if fmt == "csv" else "\t")


def read_chunks(stream: IO[bytes], source: str, fmt: str, spec: RowSpec, size: int, *,
                first_line: int = 1) -> Iterator[Chunk]:
    """The rows of one (already decompressed) binary stream in chunks of at most ``size`` rows
    to score; JSON lines take a loop with no per-row generator step. ``first_line`` numbers the
    stream's first line (a part of a file of JSON lines starts further in)."""
    if fmt == "jsonl":
        yield from _jsonl_chunks(iter(stream), source, spec, size, first_line)
        return
    rows: list[Row] = []
    errors: list[RowError] = []
    read, last = 0, -1
    for item in read_delimited(stream, source, spec, "," if fmt == "csv" else "\t"):
        if item.line != last:
            read += 1
            last = item.line
        if type(item) is Row:
            rows.append(item)
            if len(rows) >= size:
                yield Chunk(rows, errors, read, [None] * len(rows))
                rows, errors, read = [], [], 0
        else:
            errors.append(item)  # type: ignore[arg-type]
    if rows or errors or read:
        yield Chunk(rows, errors, read, [None] * len(rows))


def open_decompressed(raw: IO[bytes], path: str) -> IO[bytes]:
    """``raw`` itself, or a decompressing reader for ``.gz`` and ``.bz2`` files."""
    name = path.lower()
    if name.endswith(".gz"):
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if name.endswith(".bz2"):
        import bz2

        return bz2.BZ2File(raw, "rb")
    return raw


def parse_task_option(values: Sequence[str]) -> tuple[int | str, ...]:
    """``--task`` values: names stay names, integers become ids (resolved against the model)."""
    out: list[int | str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part:
                out.append(part)
    return tuple(out)


def json_line(record: dict[str, Any]) -> bytes:
    """One compact JSON line (no newline), UTF-8, non-ASCII kept as is; NaN is written null.
    Values orjson refuses (integers past 64 bits, lone surrogates from a ``\\ud800`` escape)
    are written by the standard library, escaped to ASCII: the line reads back the same."""
    try:
        return orjson.dumps(record)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(record, separators=(",", ":")).encode("ascii")


__all__ = ["FORMATS", "Row", "RowError", "RowSpec", "detect_format", "json_line",
           "open_decompressed", "parse_task_option", "read_rows"]


def split_lines(stream: IO[bytes], part_bytes: int, block: int = 8 << 20
                ) -> Iterator[tuple[int, int, int]]:
    """Cut a stream of lines into parts of about ``part_bytes`` that end at line ends:
    ``(start, end, first line number)`` each, read once at C speed (lines are counted, so that
    a part knows the number of its first line)."""
    start, start_line = 0, 1
    offset, lines = 0, 0
    cut_at = part_bytes
    while data := stream.read(block):
        at = 0
        while offset + len(data) > cut_at:
            newline = data.find(b"\n", max(at, cut_at - offset))
            if newline < 0:
                break
            lines += data.count(b"\n", at, newline + 1)
            end = offset + newline + 1
            yield start, end, start_line
            start, start_line = end, lines + 1
            at = newline + 1
            cut_at = end + part_bytes
        lines += data.count(b"\n", at)
        offset += len(data)
    if offset > start:
        yield start, offset, start_line
