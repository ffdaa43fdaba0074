"""Generated rows to score (tasks by id, by name and by id written as text, bad rows of every
kind among them) and the checks every runner's output must pass."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

N_ROWS = 3000
# Bad lines and the error kind each must be reported with. Placed every BAD_EVERY rows.
BAD_LINES: list[tuple[bytes, str]] = [
    (b'{"id": "b0", "text": "hello there", "task": "no_such_task"}', "unknown_task"),
    (b'{"id": "b1", "text": "hello there", "task": 99}', "unknown_task"),
    (b'{"id": "b2", "text": "hello there", "task": -1}', "unknown_task"),
    (b'{"id": "b3", "text": "unterminated', "bad_json"),
    (b'{"id": "b4", "task": 0}', "missing_field"),
    (b'{"id": "b5", "text": "no task here"}', "missing_field"),
    (b'{"id": "b6", "text": 42, "task": 0}', "bad_text"),
    (b'{"id": "b7", "text": "a", "task": true}', "bad_task"),
    (b'{"id": "b8", "text": "a", "task": 1.5}', "bad_task"),
    (b'["a list", 0]', "not_an_object"),
    (b'{"id": "b10", "text": "caf\xe9 latin-1", "task": 0}', "bad_json"),
    (b'{"id": "b11", "text": "lone \\ud800 surrogate", "task": 0}', "bad_json"),
    (b'{"id": "b12", "text": "fine", "task": 0, "note": "\\udfff"}', "bad_json"),
]
BAD_EVERY = 97


@dataclass(frozen=True)
class RowsFile:
    path: Path
    good: list[dict[str, Any]]  # the good rows in input order
    good_ids: list[int]  # their task ids
    bad: list[tuple[int, str]]  # (line number, expected error kind) in input order
    lines: int  # non-blank lines

def write_rows(path: Path, task_names: list[str], n: int = N_ROWS, seed: int = 0) -> RowsFile:
    from headswitch.examples import sample_texts

    rng = random.Random(seed)
    texts = sample_texts(400, seed=seed) + ["", "ünïcödé ✓ 東京 " * 3, "x" * 3000]
    good: list[dict[str, Any]] = []
    good_ids: list[int] = []
    bad: list[tuple[int, str]] = []
    lines: list[bytes] = []
    for i in range(n):
        if i % BAD_EVERY == BAD_EVERY - 1:
            raw, kind = BAD_LINES[(i // BAD_EVERY) % len(BAD_LINES)]
            lines.append(raw)
            bad.append((len(lines), kind))
            if i % 5 == 0:
                lines.append(b"")  # blank lines are skipped, not rows
            continue
        task_id = rng.randrange(len(task_names))
        task: Any = [task_id, task_names[task_id], str(task_id)][i % 3]
        row = {"id": i, "text": rng.choice(texts), "task": task, "meta": {"n": i % 7}}
        good.append(row)
        good_ids.append(task_id)
        lines.append(json.dumps(row, ensure_ascii=False).encode("utf-8"))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return RowsFile(path, good, good_ids, bad, sum(1 for line in lines if line))

def check_scored(records: list[dict[str, Any]], rows_file: RowsFile,
                 reference: dict[int, dict[str, Any]], tasks: Any = None) -> None:
    """Every good row once, with its own fields and serving_default's answer."""
    by_id = {r["id"]: r for r in rows_file.good}
    assert sorted(r["id"] for r in records) == sorted(by_id)
    for record in records:
        want = reference[record["id"]]
        own = by_id[record["id"]]
        assert {k: record[k] for k in own} == own  # the row's own fields, unchanged
        assert record["top_label"] == want["top_label"]
        # Batches differ in composition from the reference's: float rounding only.
        assert abs(record["top_score"] - want["top_score"]) <= 1e-5
        if tasks is not None:
            task = tasks.by_id[want["task_id"]]
            k = task.num_classes
            assert record["labels"] == list(task.labels)
            np.testing.assert_allclose(record["scores"], want["scores"][:k], atol=1e-5)

def check_errors(errors: list[dict[str, Any]], rows_file: RowsFile) -> None:
    """Every bad line once, with its line number, its kind and a reason."""
    assert sorted((e["line"], e["error"]) for e in errors) == sorted(rows_file.bad)
    for e in errors:
        assert e["file"] == str(rows_file.path)
        assert e["message"] and e["input"] is not None

def read_jsonl(*paths: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in paths for line in path.read_text().splitlines()]
