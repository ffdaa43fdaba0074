"""The input files: their format, decompression, parts of a file for parallel readers, and
their rows in chunks, whatever the format."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import IO

from ._delimited import read_delimited
from ._jsonl import jsonl_chunks, read_jsonl
from ._rows import Chunk, Row, RowError, RowSpec

__all__ = ["COMPRESSED", "FORMATS", "detect_format", "open_decompressed", "parse_task_option",
           "read_chunks", "read_rows", "split_lines"]

FORMATS = ("jsonl", "csv", "tsv")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
               ".tsv": "tsv", ".tab": "tsv"}
COMPRESSED = (".gz", ".bz2")


def detect_format(path: str) -> str | None:
    """``jsonl``, ``csv`` or ``tsv`` from the file name (``.gz``/``.bz2`` allowed), else None."""
    name = path.lower()
    for suffix in COMPRESSED:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    dot = name.rfind(".")
    return _EXTENSIONS.get(name[dot:]) if dot >= 0 else None


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
        yield from jsonl_chunks(iter(stream), source, spec, size, first_line)
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
