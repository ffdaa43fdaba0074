"""``headswitch score`` as a person runs it: a table at the end, one-line errors with a hint, Beam
options passed through, and a Dataflow dry run that contacts nobody."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from score_support import RowsFile, read_jsonl

from headswitch.cli import main


def _run(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["score", *argv])
    out, err = capfd.readouterr()
    return code, out, err


def _one_line_error(err: str, *words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[0].startswith("headswitch score: "), err
    assert lines[1].startswith("  hint: ")
    assert "Traceback" not in err
    for word in words:
        assert word in err


def test_score_prints_the_summary_table(exported: Any, rows_file: RowsFile, tmp_path: Path,
                                        capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capfd, str(exported.path.parent), "--input", str(rows_file.path),
                        "--output", str(tmp_path / "s"), "--json")
    assert code == 0
    summary = json.loads(out)
    scored, errors = read_jsonl(tmp_path / "s.jsonl"), read_jsonl(tmp_path / "s.errors.jsonl")
    assert summary["rows"] == rows_file.lines == len(scored) + len(errors)
    assert summary["model"] == str(exported.path)  # the newest version of the base folder
    assert summary["rows_per_second"] > 0 and summary["load_seconds"] > 0
    code, out, _ = _run(capfd, str(exported.path), "-i", str(rows_file.path), "-o",
                        str(tmp_path / "s"), "--overwrite")
    assert code == 0
    for word in ("rows", "scored", "errors", "rows/s", "unknown_task", "s.errors.jsonl"):
        assert word in out


@pytest.mark.parametrize(("argv", "words"), [
    (["--input", "{rows}", "--output", "{tmp}/o", "--project=p"],
     ["unrecognised option(s): --project=p", "--runner direct|dataflow|flink|spark"]),
    (["--input", "{tmp}/none-*.jsonl", "--output", "{tmp}/o"], ["no file matches"]),
    (["--input", "{rows}", "--output", "{tmp}/o", "--batch-size", "0"], ["--batch-size"]),
])
def test_mistakes_get_one_line_and_a_hint(exported: Any, rows_file: RowsFile, tmp_path: Path,
                                          capfd: pytest.CaptureFixture[str], argv: list[str],
                                          words: list[str]) -> None:
    argv = [a.format(rows=rows_file.path, tmp=tmp_path) for a in argv]
    code, _, err = _run(capfd, str(exported.path), *argv)
    assert code == 2
    if "--batch-size" in words:
        assert "headswitch score: --batch-size must be at least 1" in err
        return
    _one_line_error(err, *words)


def test_a_missing_model_or_version_is_named(exported: Any, rows_file: RowsFile,
                                             tmp_path: Path,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capfd, str(exported.path.parent / "9"), "-i", str(rows_file.path),
                        "-o", str(tmp_path / "o"))
    assert code == 2
    _one_line_error(err, "no version 9 in", "(versions: 1)")
    code, _, err = _run(capfd, str(tmp_path / "nowhere"), "-i", str(rows_file.path), "-o",
                        str(tmp_path / "o"))
    _one_line_error(err, "no model at")


def test_in_process_dry_run_writes_nothing(exported: Any, rows_file: RowsFile, tmp_path: Path,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capfd, str(exported.path.parent), "-i", str(rows_file.path), "-o",
                        str(tmp_path / "o"), "--dry-run")
    assert code == 0
    assert f"version {exported.version} of" in out and str(rows_file.path) in out
    assert list(tmp_path.iterdir()) == []


DATAFLOW = ["--runner", "dataflow", "--project=my-project", "--region=europe-west4",
            "--temp_location=gs://bucket/tmp",
            "--sdk_container_image=europe-docker.pkg.dev/my-project/hs/headswitch-beam:1",
            "--max_num_workers=20", "--machine_type=n2-standard-4"]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a dry run tried to connect to {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_dataflow_dry_run_prints_options_and_steps_offline(
        capfd: pytest.CaptureFixture[str], no_network: None) -> None:
    pytest.importorskip("apache_beam")
    code, out, err = _run(capfd, "gs://bucket/models/headswitch", "-i",
                          "gs://bucket/docs/part-*.jsonl", "-o", "gs://bucket/scored/run1",
                          "--scores", "--batch-size", "128", "--dry-run", *DATAFLOW)
    assert code == 0, err
    assert "no remote service is contacted" in out
    assert "DataflowRunner" in out
    assert "gs://bucket/models/headswitch/<newest numbered version, pinned at launch>" in out
    for flag in ("--project=my-project", "--region=europe-west4", "--max_num_workers=20",
                 "--temp_location=gs://bucket/tmp", "--machine_type=n2-standard-4",
                 "--sdk_container_image=europe-docker.pkg.dev/my-project/hs/headswitch-beam:1"):
        assert flag in out
    steps = out[out.index("steps:"):]
    for step in ("Match input files", "Cut files in parts", "Spread parts over workers",
                 "Read rows", "Score",
                 "RunInference", "Split results", "Write scored rows", "Write error rows"):
        assert step in steps
    assert "gs://bucket/scored/run1-?????-of-?????.jsonl" in out
    assert "at most 128 rows" in out
    code, out, _ = _run(capfd, "gs://bucket/models/headswitch/7", "-i", "gs://bucket/x.jsonl",
                        "-o", "gs://bucket/o", "--dry-run", *DATAFLOW)
    assert "model:    gs://bucket/models/headswitch/7\n" in out


@pytest.mark.parametrize(("drop", "add", "words"), [
    ([], ["-i", "data/*.jsonl"], ["data/*.jsonl is a local path", "gs://"]),
    (["--region=europe-west4"], [], ["Dataflow needs --region"]),
    ([DATAFLOW[5]], [], ["--sdk_container_image", "Dockerfile.beam"]),
    ([], ["--not_a_beam_flag=1"], ["unrecognised option(s): --not_a_beam_flag=1"]),
    (["--temp_location=gs://bucket/tmp"], ["--temp_location=gs://b/tmp"],
     ["--temp_location=gs://b/tmp is not a Cloud Storage path", "gs://my-bucket/tmp"]),
])
def test_dataflow_mistakes_are_caught_before_launch(
        capfd: pytest.CaptureFixture[str], no_network: None, drop: list[str], add: list[str],
        words: list[str]) -> None:
    pytest.importorskip("apache_beam")
    argv = ["gs://bucket/models/headswitch/1", "-i", "gs://bucket/x.jsonl", "-o",
            "gs://bucket/o", "--dry-run", *[a for a in DATAFLOW if a not in drop], *add]
    code, _, err = _run(capfd, *argv)
    assert code == 2
    _one_line_error(err, *words)


README_DATAFLOW = ["gs://BUCKET/models/headswitch", "--input", "gs://BUCKET/docs/*.jsonl.gz",
                   "--output", "gs://BUCKET/scored/run1", "--runner", "dataflow",
                   "--project=PROJECT", "--region=REGION", "--temp_location=gs://BUCKET/tmp",
                   "--sdk_container_image=REGION-docker.pkg.dev/PROJECT/headswitch/hs-beam:1"]


def test_dataflow_dry_run_takes_the_readme_placeholders(
        capfd: pytest.CaptureFixture[str], no_network: None) -> None:
    pytest.importorskip("apache_beam")
    code, out, err = _run(capfd, *README_DATAFLOW, "--dry-run")
    assert code == 0, err
    assert "--temp_location=gs://BUCKET/tmp" in out and "--region=REGION" in out
    assert "gs://BUCKET/models/headswitch/<newest numbered version, pinned at launch>" in out
    assert "placeholders BUCKET, PROJECT, REGION kept as they are (a dry run)" in out
    assert "replace REGION with a region such as us-central1" in out


def test_a_real_dataflow_run_refuses_placeholders_naming_the_real_format(
        capfd: pytest.CaptureFixture[str], no_network: None) -> None:
    pytest.importorskip("apache_beam")
    code, _, err = _run(capfd, *README_DATAFLOW)
    assert code == 2
    _one_line_error(err, "BUCKET, PROJECT, REGION are placeholders",
                    "replace BUCKET with a bucket name such as my-bucket",
                    "replace PROJECT with a project id such as my-project-123",
                    "replace REGION with a region such as us-central1")


def test_a_missing_beam_install_says_which_extra(
        exported: Any, rows_file: RowsFile, tmp_path: Path,
        capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import headswitch.score

    monkeypatch.setitem(sys.modules, "headswitch.score._beam", None)  # import fails
    monkeypatch.delattr(headswitch.score, "_beam", raising=False)
    code, _, err = _run(capfd, str(exported.path), "-i", str(rows_file.path), "-o",
                        str(tmp_path / "o"), "--runner", "direct")
    assert code == 2
    _one_line_error(err, "needs Apache Beam", 'pip install "headswitch[beam]"')


@pytest.mark.parametrize(("runner", "flags", "name"), [
    ("flink", ["--flink_master=localhost:8081", "--environment_type=DOCKER"], "FlinkRunner"),
    ("spark", ["--spark_master_url=spark://localhost:7077"], "SparkRunner"),
])
def test_flink_and_spark_dry_runs(exported: Any, rows_file: RowsFile, tmp_path: Path,
                                  capfd: pytest.CaptureFixture[str], no_network: None,
                                  runner: str, flags: list[str], name: str) -> None:
    pytest.importorskip("apache_beam")
    code, out, err = _run(capfd, str(exported.path), "-i", str(rows_file.path), "-o",
                          str(tmp_path / "o"), "--runner", runner, "--dry-run", *flags)
    assert code == 0, err
    assert f"runner:   {name}" in out and f"--runner={name}" in out
    for flag in flags:
        assert flag in out
    assert list(tmp_path.iterdir()) == []
