"""Fixtures: rows to score, written once per session, and the reference answers from
``serving_default`` called directly on their good rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from score_support import RowsFile, write_rows


@pytest.fixture(scope="session")
def task_names(loaded: Any) -> list[str]:
    import tensorflow as tf

    out = loaded.signatures["tasks"](unused=tf.constant([0], tf.int32))
    order = np.argsort(out["task_id"].numpy()[0])
    return [out["name"].numpy()[0][i].decode() for i in order]


@pytest.fixture(scope="session")
def rows_file(tmp_path_factory: pytest.TempPathFactory, task_names: list[str]) -> RowsFile:
    return write_rows(tmp_path_factory.mktemp("rows") / "rows.jsonl", task_names)


@pytest.fixture(scope="session")
def reference(loaded: Any, rows_file: RowsFile) -> dict[int, dict[str, Any]]:
    """id -> serving_default's own outputs for that row (called directly, batches of 256)."""
    import tensorflow as tf

    out: dict[int, dict[str, Any]] = {}
    f = loaded.signatures["serving_default"]
    for start in range(0, len(rows_file.good), 256):
        rows = rows_file.good[start:start + 256]
        ids = rows_file.good_ids[start:start + 256]
        got = f(text=tf.constant([r["text"] for r in rows]), task_id=tf.constant(ids, tf.int32))
        for j, row in enumerate(rows):
            out[row["id"]] = {
                "task_id": ids[j],
                "top_label": got["top_label"].numpy()[j].decode(),
                "top_score": float(got["top_score"].numpy()[j]),
                "scores": got["scores"].numpy()[j],
            }
    return out
