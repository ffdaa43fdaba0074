"""Reading CSV and TSV files whose first record names the columns."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import IO, Any

from ._rows import Row, RowError, RowSpec, row_of

__all__ = ["read_delimited"]


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
        yield from row_of(fields, fields[spec.text_field], source, start, spec)
