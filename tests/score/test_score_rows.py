"""Reading rows (JSON lines, CSV, TSV, compressed) and checking tasks, without a model."""

from __future__ import annotations

import bz2
import gzip
import io
import pickle
from typing import Any

import pytest

from headswitch.score import Row, RowError, RowSpec
from headswitch.score._input import detect_format, open_decompressed, read_rows
from headswitch.score._write import json_line
from headswitch.tasks import TaskList

TABLE = TaskList.from_columns((0, 1, 2), ("topic", "spam", "2019"), (5, 2, 1),
                              (("a", "b", "c", "d", "e"), ("ham", "spam"), ("x",)),
                              ("softmax", "softmax", "linear"))


def _read(data: bytes, fmt: str = "jsonl", spec: RowSpec | None = None) -> list[Any]:
    return list(read_rows(io.BytesIO(data), "in", fmt, spec or RowSpec()))


def test_jsonl_rows_keep_every_field_and_their_line() -> None:
    data = b'{"id": 7, "text": "hi", "task": "spam", "x": [1, {"y": null}]}\n\n' \
           b'{"text": "yo", "task": 0}\n'
    first, second = _read(data)
    assert first == Row({"id": 7, "text": "hi", "task": "spam", "x": [1, {"y": None}]}, "hi",
                        "spam", "in", 1)
    assert (second.task, second.line) == (0, 3)  # the blank line 2 is no row


@pytest.mark.parametrize(("line", "kind", "words"), [
    (b"{oops", "bad_json", "not JSON"),
    (b'{"text": "\xff\xfe", "task": 0}', "bad_json", "not UTF-8"),
    (b"[1, 2]", "not_an_object", "JSON object"),
    (b'"text"', "not_an_object", "JSON object"),
    (b'{"task": 0}', "missing_field", "'text'"),
    (b'{"text": "t"}', "missing_field", "'task'"),
    (b'{"text": null, "task": 0}', "bad_text", "string"),
    (b'{"text": "t", "task": false}', "bad_task", "boolean"),
    (b'{"text": "t", "task": [0]}', "bad_task", "list"),
    (b'{"text": "t", "task": null}', "bad_task", "null"),
])
def test_bad_json_lines_become_errors_with_a_reason(line: bytes, kind: str, words: str) -> None:
    (error,) = _read(b'{"text": "fine", "task": 0}\n' + line + b"\n")[1:]
    assert isinstance(error, RowError)
    assert (error.kind, error.line, error.source) == (kind, 2, "in")
    assert words in error.message
    record = error.to_dict()
    assert set(record) == {"file", "line", "error", "message", "input"}
    assert json_line(record)  # always writable


def test_integers_past_64_bits_and_byte_order_marks_are_read_exactly() -> None:
    big = 123456789012345678901234567890
    rows = _read(b'\xef\xbb\xbf{"text": "a", "task": 0}\n'
                 + f'{{"id": {big}, "text": "b", "task": 1}}\n'.encode())
    assert [r.text for r in rows] == ["a", "b"]
    assert rows[1].fields["id"] == big
    assert json_line(rows[1].fields) == f'{{"id":{big},"text":"b","task":1}}'.encode()


def test_csv_and_tsv_rows_by_column_name() -> None:
    data = "\ufeffid,task,text\n1,spam,\"free, prize\"\n2,0,\"two\nlines\"\n3,topic\n4,1,x,extra\n"
    rows = _read(data.encode(), "csv")
    assert [r.fields for r in rows[:2]] == [
        {"id": "1", "task": "spam", "text": "free, prize"},
        {"id": "2", "task": "0", "text": "two\nlines"}]
    assert [r.line for r in rows] == [2, 3, 5, 6]  # a record's first line
    assert [type(r).__name__ for r in rows] == ["Row", "Row", "RowError", "RowError"]
    assert rows[2].kind == rows[3].kind == "bad_record"
    (tsv,) = _read(b"text\ttask\nhello\tspam\n", "tsv")
    assert (tsv.text, tsv.task) == ("hello", "spam")


def test_csv_without_the_text_column_reports_each_row() -> None:
    rows = _read(b"body,task\nhello,spam\nbye,spam\n", "csv")
    assert [(r.kind, r.line) for r in rows] == [("missing_field", 2), ("missing_field", 3)]
    assert "no 'text' column (columns: body, task)" in rows[0].message
    rows = _read(b"body,kind\nhello,spam\n", "csv", RowSpec(text_field="body", task_field="kind"))
    assert (rows[0].text, rows[0].task) == ("hello", "spam")


def test_csv_bytes_that_are_not_utf8_are_an_error_not_a_crash() -> None:
    rows = _read(b"text,task\ncaf\xe9,0\nok,1\n", "csv")
    assert rows[0].kind == "bad_text" and "UTF-8" in rows[0].message
    assert rows[1].text == "ok"


def test_tasks_option_scores_each_row_with_every_given_task() -> None:
    rows = _read(b'{"text": "a", "task": "ignored", "id": 1}\n',
                 spec=RowSpec(tasks=("topic", "spam")))
    assert [(r.task, r.fields["task"], r.line) for r in rows] == [("topic", "topic", 1),
                                                                 ("spam", "spam", 1)]


def test_task_list_finds_ids_names_and_ids_written_as_text() -> None:
    assert [TABLE.find(t) for t in (0, "spam", "1", " 2 ", "2019")] == [0, 1, 1, 2, 2]
    for bad in (3, -1, "sports", "", "1.0"):
        assert TABLE.find(bad) is None
        reason = TABLE.unknown(bad)
        assert "unknown task" in reason
        assert "3 tasks: ids 0, 1, 2, names topic, spam, 2019" in reason


@pytest.mark.parametrize("suffix", ["", ".gz", ".bz2"])
def test_compressed_files_are_read_through(suffix: str) -> None:
    data = b'{"text": "a", "task": 0}\n'
    packed = {"": data, ".gz": gzip.compress(data), ".bz2": bz2.compress(data)}[suffix]
    stream = open_decompressed(io.BytesIO(packed), f"rows.jsonl{suffix}")
    assert [r.text for r in read_rows(stream, "x", "jsonl", RowSpec())
            if isinstance(r, Row)] == ["a"]
    assert detect_format(f"rows.jsonl{suffix}") == "jsonl"


def test_formats_from_file_names() -> None:
    assert [detect_format(n) for n in ("a.JSONL", "a.ndjson", "a.json", "a.csv.gz", "a.tsv",
                                       "a.txt", "noext")] == [
        "jsonl", "jsonl", "jsonl", "csv", "tsv", None, None]


MIXED_LINES = [
    b'{"id": 1, "text": "a", "task": 0}', b'{"text": "b", "task": "spam"}', b"",
    b"{oops", b'{"text": "c", "task": "1"}', b'{"text": "d", "task": " 2 "}',
    b'{"text": "e", "task": "2019"}', b'{"text": "f", "task": 7}', b'{"text": "g", "task": true}',
    b'{"text": "h", "task": 1.0}', b'{"task": 0}', b'[1]', b'  {"text": "i", "task": 0}',
    b'{"text": "j", "task": 0, "top_label": "mine"}', b'{"text": "k", "task": "sports"}',
    b'{"text": "caf\\u00e9", "task": 1}',
    b'{"id": 123456789012345678901234, "text": "l", "task": 0}',
    b'{"text": "m", "task": 1}\r', b'\xef\xbb\xbf{"text": "n", "task": 0}',
    b'{"text": "o", "task": 1, "x": NaN}', b'{"text": "p\\ud800", "task": 1}',
]


def _flat(chunks: Any) -> tuple[list[Any], list[Any], int]:
    rows, errors, read = [], [], 0
    for chunk in chunks:
        rows += [tuple(row) for row in chunk.rows]
        errors += chunk.errors
        read += chunk.read
    return rows, sorted(errors), read


@pytest.mark.parametrize("size", [1, 3, 256])
@pytest.mark.parametrize("drop", [None, 2, 3, 16])
def test_column_reader_agrees_with_the_line_by_line_reader(size: int, drop: int | None) -> None:
    """Groups of good rows are read as columns, with bad lines split out; every row, error,
    line number and kept JSON line is what the line-by-line reader gives."""
    from headswitch.score._input import read_chunks
    from headswitch.score._jsonl import line_chunks
    from headswitch.score._model import prepare

    lines = [line for i, line in enumerate(MIXED_LINES) if i != drop]
    data = b"\n".join(lines) + b"\n"
    chunks = list(read_chunks(io.BytesIO(data), "in", "jsonl", RowSpec(), size))
    expected = list(line_chunks(data.splitlines(keepends=True), "in", RowSpec(), size, 1))
    assert _flat(chunks) == _flat(expected)
    raws = [raw for chunk in chunks for raw in chunk.raws]
    assert raws == [raw for chunk in expected for raw in chunk.raws]
    assert all(len(chunk.rows) <= size for chunk in chunks)
    for chunk in chunks:  # as the reader process sends them (fields left behind if re-readable)
        sent = pickle.loads(pickle.dumps(chunk.rows))
        assert repr([tuple(r) for r in sent]) == repr([tuple(r) for r in chunk.rows])
    fast = [prepare(chunk.rows, TABLE, chunk.raws) for chunk in chunks]
    slow = [prepare(list(chunk.rows), TABLE, chunk.raws) for chunk in chunks]
    for a, b in zip(fast, slow):
        assert ([tuple(r) for r in a.rows], a.texts, a.task_ids, a.errors, a.raws) == (
            [tuple(r) for r in b.rows], b.texts, b.task_ids, b.errors, b.raws)
    if drop is None:
        assert [t for p in fast for t in p.task_ids] == [0, 1, 1, 2, 2, 0, 0, 1, 0, 1, 0, 1]
        assert sorted(e.kind for p in fast for e in p.errors) == ["unknown_task"] * 2


def test_scored_lines_of_a_batch_are_the_row_by_row_lines() -> None:
    """The whole-batch way of writing output lines gives the lines row by row would."""
    import numpy as np

    from headswitch.score._input import read_chunks
    from headswitch.score._model import Predictions, prepare, scored_lines

    data = b'{"id": 1, "text": "a", "task": 0}\n{"text": "b", "task": "spam"}\n' \
           b'{"text": "c\\u00e9", "task": 2, "n": null}\n'
    (chunk,) = read_chunks(io.BytesIO(data), "in", "jsonl", RowSpec(), 256)
    prepared = prepare(chunk.rows, TABLE, chunk.raws)
    predictions = Predictions(np.full((3, 5), 0.25, np.float32),
                              [b"b", b"spam", 'x"\u00e9'.encode()],
                              np.array([0.5, 1 / 3, float("nan")], np.float32), ["", "", ""])
    def lines_of(prepared: Any, predictions: Any) -> tuple[list[bytes], list[Any]]:
        block, count, refused = scored_lines(prepared, predictions, TABLE, False)
        assert block.endswith(b"\n") and block.count(b"\n") == count
        return block.split(b"\n")[:-1], refused

    lines, refused = lines_of(prepared, predictions)
    assert refused == []
    assert lines == [
        b'{"id": 1, "text": "a", "task": 0,"top_label":"b","top_score":0.5}',
        b'{"text": "b", "task": "spam","top_label":"spam","top_score":0.3333333432674408}',
        b'{"text": "c\\u00e9", "task": 2, "n": null,"top_label":"x\\"\xc3\xa9","top_score":null}']
    row_by_row = prepared._replace(raws=[*prepared.raws[:2], None])  # the last one re-written
    slow, _ = lines_of(row_by_row, predictions)
    assert slow[:2] == lines[:2]
    assert slow[2] == b'{"text":"c\xc3\xa9","task":2,"n":null,"top_label":"x\\"\xc3\xa9",' \
                      b'"top_score":null}'
    refusing = predictions._replace(errors=["", "too long", ""])
    lines, refused = lines_of(prepared, refusing)
    assert len(lines) == 2 and [(e.line, e.kind, e.message) for e in refused] == [
        (2, "model_error", "too long")]
    assert scored_lines(prepared._replace(raws=[]), predictions._replace(top_label=[]), TABLE,
                        False)[:2] == (b"", 0)
