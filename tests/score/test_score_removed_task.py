"""Scoring a version whose task was removed (its id left unused, the ids not 0..N-1): every good
row answered as the model answers it, every row naming the removed task (by name, by id, by id
written as text) or an unknown one reported with its reason, no traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from score_support import read_jsonl

from headswitch.cli import main
from headswitch.examples import sample_texts
from headswitch.score import ScoreOptions, Scorer


@pytest.fixture(scope="module")
def gapped(exported: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 2 of a copy of the session's export, built with ``export --from --remove spam``."""
    base = tmp_path_factory.mktemp("gapped") / "headswitch"
    shutil.copytree(exported.path, base / "1")
    assert main(["export", "--from", str(base), "--remove", "spam", "--json"]) == 0
    assert (base / "2" / "saved_model.pb").exists()
    return base


@pytest.fixture(scope="module")
def rows(gapped: Path, task_names: list[str], tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[Path, list[dict[str, Any]], list[tuple[int, str]]]:
    """Rows on the kept tasks (by id, name, id as text) with bad ones among them: the file,
    the good rows, and each bad row's (line, what its message starts with)."""
    spam = task_names.index("spam")
    kept = [i for i in range(len(task_names)) if i != spam]
    assert max(kept) > len(kept) - 1  # the ids have a gap
    texts = sample_texts(40)
    good: list[dict[str, Any]] = []
    bad: list[tuple[int, str]] = []
    lines: list[str] = []
    removed = f"task {spam} ('spam') was removed in version 2"
    unknown = "; the model has 6 tasks: ids "
    bad_tasks: list[tuple[Any, str]] = [
        ("spam", removed), (spam, removed), (str(spam), removed),
        ("weather", "unknown task 'weather'" + unknown), (99, "unknown task id 99" + unknown)]
    for i, text in enumerate(texts):
        if i % 8 == 3:
            wrong, reason = bad_tasks[(i // 8) % len(bad_tasks)]
            lines.append(json.dumps({"id": f"b{i}", "text": text, "task": wrong}))
            bad.append((len(lines), reason))
            continue
        task_id = kept[i % len(kept)]
        task: Any = [task_id, task_names[task_id], str(task_id)][i % 3]
        row = {"id": i, "text": text, "task": task, "task_id": task_id}
        good.append(row)
        lines.append(json.dumps(row))
    path = tmp_path_factory.mktemp("gapped_rows") / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path, good, bad


def _check(scored: list[dict[str, Any]], errors: list[dict[str, Any]],
           good: list[dict[str, Any]], bad: list[tuple[int, str]], version: Path) -> None:
    import tensorflow as tf

    assert [r["id"] for r in scored] == [r["id"] for r in good]
    want = tf.saved_model.load(str(version)).signatures["serving_default"](
        text=tf.constant([r["text"] for r in good]),
        task_id=tf.constant([r["task_id"] for r in good], tf.int32))
    assert [r["top_label"] for r in scored] == [s.decode() for s in want["top_label"].numpy()]
    np.testing.assert_allclose([r["top_score"] for r in scored], want["top_score"].numpy(),
                               atol=1e-5)
    assert sorted(e["line"] for e in errors) == [line for line, _ in bad]
    for error, (line, reason) in zip(sorted(errors, key=lambda e: e["line"]), bad):
        assert error["error"] == "unknown_task", error
        assert error["message"].startswith(reason), error
        assert error["line"] == line and str(error["input"]["id"]).startswith("b")


def test_score_cli_on_a_version_with_a_removed_task(
        gapped: Path, rows: tuple[Path, list[dict[str, Any]], list[tuple[int, str]]],
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path, good, bad = rows
    code = main(["score", str(gapped), "--input", str(path), "--output", str(tmp_path / "s"),
                 "--json", "--scores"])
    out, err = capfd.readouterr()
    assert code == 0, err
    assert "Traceback" not in err
    summary = json.loads(out)
    assert summary["model"] == str(gapped / "2")
    assert (summary["scored"], summary["errors"]) == (len(good), len(bad))
    scored, errors = read_jsonl(tmp_path / "s.jsonl"), read_jsonl(tmp_path / "s.errors.jsonl")
    _check(scored, errors, good, bad, gapped / "2")
    tasks = Scorer(str(gapped / "2")).tasks
    for record in scored:
        assert record["labels"] == list(tasks.by_id[record["task_id"]].labels)
        assert len(record["scores"]) == len(record["labels"])


def test_beam_direct_runner_on_a_version_with_a_removed_task(
        gapped: Path, rows: tuple[Path, list[dict[str, Any]], list[tuple[int, str]]],
        tmp_path: Path) -> None:
    beam = pytest.importorskip("headswitch.score._beam", reason="needs headswitch[beam]")
    path, good, bad = rows
    plan = beam.plan(ScoreOptions(str(gapped), (str(path),), str(tmp_path / "out"),
                                  batch_size=16),
                     "direct", ["--direct_running_mode=in_memory", "--direct_num_workers=1"])
    summary = beam.run(plan)
    assert (summary.scored, summary.errors) == (len(good), len(bad))
    scored = read_jsonl(*sorted(tmp_path.glob("out-*-of-*.jsonl")))
    errors = read_jsonl(*sorted(tmp_path.glob("out.errors-*-of-*.jsonl")))
    scored.sort(key=lambda r: [g["id"] for g in good].index(r["id"]))
    _check(scored, errors, good, bad, gapped / "2")
