"""The Beam runner, offline on Beam's in-process FnApiRunner: serving_default's answers, every
row accounted for, bad rows reported; headswitch's ModelHandler on mixed batches; the model
version pinned when the job is planned."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from score_support import RowsFile, check_errors, check_scored, read_jsonl

from headswitch.score import ScoreError, ScoreOptions, Scorer
from headswitch.score._model import op_threads_for

beam_module = pytest.importorskip("headswitch.score._beam", reason="needs headswitch[beam]")

IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


@pytest.mark.parametrize("with_scores", [True, False])
def test_pipeline_matches_serving_default_and_loses_no_row(
        exported: Any, rows_file: RowsFile, reference: dict[int, dict[str, Any]],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_scores: bool) -> None:
    """The file is cut in parts read by different bundles: line numbers stay exact. Without
    scores, batches of JSON lines are written by the in-process runner's C-loop path."""
    monkeypatch.setattr(beam_module, "PART_BYTES", rows_file.path.stat().st_size // 5)
    options = ScoreOptions(str(exported.path), (str(rows_file.path),), str(tmp_path / "out"),
                           with_scores=with_scores, batch_size=100)
    plan = beam_module.plan(options, "direct", IN_MEMORY)
    summary = beam_module.run(plan)
    scored = read_jsonl(*sorted(tmp_path.glob("out-*-of-*.jsonl")))
    errors = read_jsonl(*sorted(tmp_path.glob("out.errors-*-of-*.jsonl")))
    assert summary.rows == rows_file.lines == len(scored) + len(errors)
    assert (summary.scored, summary.errors) == (len(scored), len(errors))
    check_scored(scored, rows_file, reference,
                 Scorer(str(exported.path)).tasks if with_scores else None)
    if not with_scores:
        assert not any("scores" in record for record in scored)
    check_errors(errors, rows_file)
    assert sum(summary.error_kinds.values()) == summary.errors
    assert summary.error_kinds["unknown_task"] == sum(
        1 for _, kind in rows_file.bad if kind == "unknown_task")


def test_model_handler_scores_mixed_batches_and_refuses_unknown_tasks_itself(
        exported: Any, loaded: Any) -> None:
    import tensorflow as tf

    handler = beam_module.HeadswitchModelHandler(str(exported.path), batch_size=8,
                                                 with_scores=False)
    assert handler.batch_elements_kwargs()["max_batch_size"] == 8
    handler = pickle.loads(pickle.dumps(handler))  # workers receive it pickled
    model = handler.load_model()
    texts = ["great match", "free prize now", "hello", "el gato", "urgent!!"]
    tasks: list[Any] = [0, "spam", "nope", 3, "6"]
    batch = [({"id": i, "text": t, "task": k}, t, k, "f", i + 1)
             for i, (t, k) in enumerate(zip(texts, tasks))]
    results = list(handler.run_inference(batch, model))
    records = [r.inference for r in results if isinstance(r.inference, dict)]
    errors = [r.inference for r in results if not isinstance(r.inference, dict)]
    assert [e.kind for e in errors] == ["unknown_task"] and errors[0].line == 3
    ids = [0, model.tasks.id_of("spam"), 3, 6]
    want = loaded.signatures["serving_default"](
        text=tf.constant([texts[i] for i in (0, 1, 3, 4)]), task_id=tf.constant(ids))
    assert [r["id"] for r in records] == [0, 1, 3, 4]
    assert [r["top_label"] for r in records] == [s.decode() for s in want["top_label"].numpy()]
    np.testing.assert_allclose([r["top_score"] for r in records], want["top_score"].numpy(),
                               atol=1e-6)


def test_the_model_version_is_pinned_when_the_job_is_planned(
        exported: Any, tmp_path: Path) -> None:
    base = tmp_path / "models" / "headswitch"
    for version in (1, 2):
        shutil.copytree(exported.path, base / str(version))
    options = ScoreOptions(str(base), (str(tmp_path / "*.jsonl"),), str(tmp_path / "o"))
    plan = beam_module.plan(options, "direct", IN_MEMORY)
    shutil.copytree(exported.path, base / "3")  # published while the job runs
    assert plan.model == str(base / "2") and plan.model_pinned


def test_unknown_options_are_refused_not_dropped(exported: Any, tmp_path: Path) -> None:
    options = ScoreOptions(str(exported.path), ("x.jsonl",), str(tmp_path / "o"))
    with pytest.raises(ScoreError, match="unrecognised option.*--no_such_flag"):
        beam_module.plan(options, "direct", ["--no_such_flag=1"])
    plan = beam_module.plan(options, "direct", ["--direct_num_workers=3", "--job_name=nightly"])
    flags = plan.flags()
    assert (flags["direct_num_workers"], flags["job_name"]) == (3, "nightly")
    assert flags["direct_running_mode"] == "multi_processing"
    assert plan.op_threads == op_threads_for(3)  # the local workers share this machine's cores
