"""The in-process runner on generated rows: serving_default's answers, every row accounted for,
input order kept, bad rows reported with their reasons."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from score_support import RowsFile, check_errors, check_scored, read_jsonl, write_rows

from headswitch.score import RowSpec, ScoreError, ScoreOptions, Scorer, run_in_process


@pytest.fixture(scope="module")
def scorer(exported: Any) -> Scorer:
    return Scorer(str(exported.path))


def test_rows_in_equal_rows_out_plus_errors_and_match_serving_default(
        scorer: Scorer, rows_file: RowsFile, reference: dict[int, dict[str, Any]],
        tmp_path: Path) -> None:
    summary = run_in_process(ScoreOptions(str(rows_file.path.parent / "*.jsonl"),
                                          (str(rows_file.path),), str(tmp_path / "out"),
                                          with_scores=True, batch_size=64),
                             scorer=scorer, threads=2)
    scored = read_jsonl(tmp_path / "out.jsonl")
    errors = read_jsonl(tmp_path / "out.errors.jsonl")
    assert summary.rows == rows_file.lines == len(scored) + len(errors)
    assert (summary.scored, summary.errors) == (len(scored), len(errors))
    assert [r["id"] for r in scored] == [r["id"] for r in rows_file.good]  # input order
    check_scored(scored, rows_file, reference, scorer.tasks)
    check_errors(errors, rows_file)
    assert [e["line"] for e in errors] == sorted(e["line"] for e in errors)
    assert sum(summary.error_kinds.values()) == summary.errors
    assert not list(tmp_path.glob("*.tmp-*"))


def test_csv_input_and_tasks_given_on_the_command_line(
        scorer: Scorer, tmp_path: Path) -> None:
    path = tmp_path / "docs.csv"
    path.write_text("doc,body\nd1,great match tonight\nd2,\"free prize, click\"\n")
    names = (scorer.tasks.names[0], "1")
    run_in_process(ScoreOptions("m", (str(path),), str(tmp_path / "tagged"),
                                spec=RowSpec(text_field="body", tasks=names)), scorer=scorer)
    out = read_jsonl(tmp_path / "tagged.jsonl")
    assert [(r["doc"], r["task"]) for r in out] == [("d1", names[0]), ("d1", "1"),
                                                    ("d2", names[0]), ("d2", "1")]
    want = scorer.predict([b"great match tonight"] * 2 + [b"free prize, click"] * 2,
                          [0, 1, 0, 1])
    assert [r["top_label"].encode() for r in out] == want.top_label
    np.testing.assert_allclose([r["top_score"] for r in out], want.top_score, atol=1e-6)


def test_a_row_the_model_refuses_does_not_fail_its_batch(scorer: Scorer) -> None:
    """Host-side checks keep bad tasks away from the model; should the model still refuse a
    batch, it is halved until the refused row is found, and the others are scored."""
    texts = [b"great match", b"free prize", b"hello", b"bye"]
    got = scorer.predict(texts, [0, 1, 99, 2])
    assert [bool(e) for e in got.errors] == [False, False, True, False]
    assert "99" in got.errors[2] or "range" in got.errors[2]
    alone = scorer.predict([texts[3]], [2])
    assert got.top_label[3] == alone.top_label[0]
    np.testing.assert_allclose(got.scores[3], alone.scores[0], atol=1e-6)


def test_memory_does_not_hold_the_input(scorer: Scorer, rows_file: RowsFile,
                                        tmp_path: Path, task_names: list[str]) -> None:
    """The pipeline's queues are bounded: while the reader is blocked, the batches in flight
    stay a handful however long the input is."""
    from headswitch.score import _local

    big = write_rows(tmp_path / "big.jsonl", task_names, n=20_000, seed=1)
    held: list[int] = []
    real_put = _local._Pipeline._put

    def put(self: Any, q: Any, item: Any) -> None:
        held.append(q.qsize())
        real_put(self, q, item)

    _local._Pipeline._put = put  # type: ignore[method-assign]
    try:
        run_in_process(ScoreOptions("m", (str(big.path),), str(tmp_path / "o"), batch_size=32),
                       scorer=scorer, threads=2)
    finally:
        _local._Pipeline._put = real_put  # type: ignore[method-assign]
    assert max(held) <= _local._QUEUE_BATCHES
    assert len(read_jsonl(tmp_path / "o.jsonl")) == len(big.good)


def test_existing_outputs_are_kept_unless_overwrite(scorer: Scorer, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "a", "task": 0}\n')
    (tmp_path / "out.jsonl").write_text("precious\n")
    options = ScoreOptions("m", (str(src),), str(tmp_path / "out"))
    with pytest.raises(ScoreError, match="exists") as info:
        run_in_process(options, scorer=scorer)
    assert info.value.hint and "--overwrite" in info.value.hint
    assert (tmp_path / "out.jsonl").read_text() == "precious\n"
    run_in_process(ScoreOptions("m", (str(src),), str(tmp_path / "out"), overwrite=True),
                   scorer=scorer)
    assert json.loads((tmp_path / "out.jsonl").read_text())["text"] == "a"


def test_a_failure_midway_leaves_no_output_that_looks_finished(
        scorer: Scorer, rows_file: RowsFile, tmp_path: Path) -> None:
    class Broken(Scorer):
        def __init__(self) -> None:
            self.__dict__.update(scorer.__dict__)
            self.calls = 0
            self.lock = threading.Lock()

        def predict(self, texts: Any, task_ids: Any) -> Any:
            with self.lock:
                self.calls += 1
                if self.calls == 5:
                    raise OSError("disk on fire")
            return scorer.predict(texts, task_ids)

    with pytest.raises(OSError, match="disk on fire"):
        run_in_process(ScoreOptions("m", (str(rows_file.path),), str(tmp_path / "out"),
                                    batch_size=16), scorer=Broken())
    assert list(tmp_path.iterdir()) == []


def test_no_matching_input_names_the_pattern(scorer: Scorer, tmp_path: Path) -> None:
    with pytest.raises(ScoreError, match=r"no file matches --input .*nothing-\*\.jsonl"):
        run_in_process(ScoreOptions("m", (str(tmp_path / "nothing-*.jsonl"),),
                                    str(tmp_path / "o")), scorer=scorer)
    (tmp_path / "rows.txt").write_text("x\n")
    with pytest.raises(ScoreError, match="cannot tell the format") as info:
        run_in_process(ScoreOptions("m", (str(tmp_path / "rows.txt"),), str(tmp_path / "o")),
                       scorer=scorer)
    assert info.value.hint == "--format jsonl|csv|tsv"


def test_output_lines_keep_the_rows_fields_however_they_were_written(
        scorer: Scorer, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{ "text" : "great match" , "task": 0, "n": 123456789012345678901234 }  \r\n'
                    b'{"text": "free prize", "task": 1, "top_label": "stale", "scores": [1]}\n'
                    b'\xef\xbb\xbf{"text": "bom", "task": 2}\n')
    run_in_process(ScoreOptions("m", (str(src),), str(tmp_path / "out"), with_scores=True),
                   scorer=scorer)
    out = read_jsonl(tmp_path / "out.jsonl")
    want = scorer.predict([b"great match", b"free prize", b"bom"], [0, 1, 2])
    assert out[0]["n"] == 123456789012345678901234
    assert out[1]["top_label"].encode() == want.top_label[1] != b"stale"
    for i, record in enumerate(out):
        assert set(record) >= {"text", "task", "top_label", "top_score", "scores", "labels"}
        assert record["top_label"].encode() == want.top_label[i]
        k = scorer.tasks.by_id[i].num_classes
        np.testing.assert_allclose(record["scores"], want.scores[i][:k], atol=1e-6)
        assert record["labels"] == list(scorer.tasks.by_id[i].labels)


def test_a_file_that_breaks_midway_fails_the_job_in_the_reader_process(
        scorer: Scorer, rows_file: RowsFile, tmp_path: Path) -> None:
    """The input is parsed in a worker process: its failure (a truncated .gz here) is raised
    by the job as it was raised there, no output is left, and no process is left behind."""
    import gzip

    packed = gzip.compress(rows_file.path.read_bytes())
    broken = tmp_path / "rows.jsonl.gz"
    broken.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(EOFError, match="end-of-stream"):
        run_in_process(ScoreOptions("m", (str(broken),), str(tmp_path / "out"), batch_size=16),
                       scorer=scorer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl.gz"]
    assert _children() == []
    (tmp_path / "whole.jsonl.gz").write_bytes(packed)
    summary = run_in_process(ScoreOptions("m", (str(tmp_path / "whole.jsonl.gz"),),
                                          str(tmp_path / "out")), scorer=scorer)
    assert summary.rows == rows_file.lines
    assert _children() == []


def test_rows_from_standard_input(scorer: Scorer, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Standard input is read in the scoring process (a worker process cannot read it)."""
    import io

    lines = b'{"text": "a", "task": 0}\n{"text": "b", "task": 7}\n{"text": "c", "task": 1}\n'
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(lines)))
    summary = run_in_process(ScoreOptions("m", ("-",), str(tmp_path / "out"), fmt="jsonl"),
                             scorer=scorer)
    assert (summary.rows, summary.scored, summary.errors) == (3, 2, 1)
    assert [r["text"] for r in read_jsonl(tmp_path / "out.jsonl")] == ["a", "c"]


def _children() -> list[int]:
    """This process's child processes that are running (a finished one's status is read by
    ``Popen.wait``, so it is gone)."""
    pids: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        try:
            pids += [int(pid) for pid in (task / "children").read_text().split()]
        except FileNotFoundError:  # a thread that ended since the listing
            continue
    return pids


def test_a_script_without_a_main_guard_can_score(exported: Any, rows_file: RowsFile,
                                                 tmp_path: Path) -> None:
    """The reader process is a new interpreter that does not import the caller's main module
    (as multiprocessing's spawn would): a plain script can call run_in_process. The model it
    loads gets the cores shared out among the model calls in flight as TensorFlow's threads per
    op; a model loaded after TensorFlow has run keeps the setting in use, without failing."""
    import os
    import subprocess
    import sys

    from headswitch.score._model import op_threads_for

    script = tmp_path / "plain.py"
    script.write_text(
        "import tensorflow as tf\n"
        "from headswitch.score import ScoreOptions, Scorer, run_in_process\n"
        f"s = run_in_process(ScoreOptions({str(exported.path)!r}, ({str(rows_file.path)!r},), "
        f"{str(tmp_path / 'out')!r}), threads=2)\n"
        "print('ROWS', s.rows)\n"
        "print('OPS', tf.config.threading.get_intra_op_parallelism_threads())\n"
        f"print('LATER', Scorer({str(exported.path)!r}, op_threads=99).op_threads)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0, done.stderr[-2000:]
    shared = str(op_threads_for(2))
    assert done.stdout.split() == ["ROWS", str(rows_file.lines), "OPS", shared, "LATER", shared]


def test_cores_are_shared_out_among_model_calls() -> None:
    from headswitch.score._model import cores, op_threads_for

    assert op_threads_for(1) == cores()
    assert op_threads_for(cores()) == 1
    assert op_threads_for(10 * cores()) == 1
    assert op_threads_for(2) == max(1, cores() // 2)
