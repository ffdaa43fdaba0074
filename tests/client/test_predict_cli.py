"""``headswitch predict``: a table, JSON lines, and clear failures."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from client_support import TEXTS, free_port, run

from headswitch.cli import main


def _predict(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["predict", *args])
    out, err = capfd.readouterr()
    return code, out, err


def test_table(server: Any, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, err = _predict(capfd, "--rest", server.rest_url, "--task", "topic", *TEXTS[:2])
    assert code == 0, err
    expected = run("rest", server, lambda c: c.predict(TEXTS[:2], "topic"))
    assert "2 predictions from" in out
    for p in expected:
        assert p.top_label in out
        assert f"{p.top_score:.4f}" in out
    assert "topic (0)" in out


def test_json_lines_over_grpc(server: Any, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, err = _predict(capfd, "--grpc", server.grpc_address, "--task", "2", "--json",
                              *TEXTS[:3])
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    expected = run("grpc", server, lambda c: c.predict(TEXTS[:3], 2))
    assert lines == [p.to_dict() for p in expected]


def test_input_file(server: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.jsonl"
    tasks = ["topic", 1, "spam", "3"]
    path.write_text("\n".join(json.dumps({"text": t, "task": k})
                              for t, k in zip(TEXTS, tasks)) + "\n\n")
    code, out, err = _predict(capfd, "--rest", server.rest_url, "--input", str(path), "--json")
    assert code == 0, err
    got = [json.loads(line) for line in out.splitlines()]
    assert [g["task_id"] for g in got] == [0, 1, 2, 3]
    assert [g["text"] for g in got] == TEXTS[:4]


def test_server_down(capfd: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    for target in (["--rest", f"http://127.0.0.1:{port}"], ["--grpc", f"127.0.0.1:{port}"]):
        code, out, err = _predict(capfd, *target, "--retries", "1", "--task", "0", "hello")
        assert code == 1
        assert out == ""
        assert "UNAVAILABLE" in err and str(port) in err
        assert "is the server running?" in err


def test_unknown_task(server: Any, capfd: pytest.CaptureFixture[str]) -> None:
    code, _, err = _predict(capfd, "--rest", server.rest_url, "--task", "nope", "hello")
    assert code == 1
    assert "INVALID_ARGUMENT: unknown task name 'nope'" in err
    code, _, err = _predict(capfd, "--grpc", server.grpc_address, "--task", "42", "hello")
    assert code == 1
    assert "task_id out of range" in err


def test_unknown_model(server: Any, capfd: pytest.CaptureFixture[str]) -> None:
    code, _, err = _predict(capfd, "--rest", server.rest_url, "--model", "nope", "-t", "0", "x")
    assert code == 1
    assert "NOT_FOUND (HTTP 404): Servable not found" in err


@pytest.mark.parametrize("args,message", [
    (["hello"], "--task is required"),
    (["--task", "0"], "no texts"),
    (["--input", "/nonexistent.jsonl"], "No such file"),
    (["--timeout", "-1", "--task", "0", "hello"], "--timeout must be a positive number"),
    (["--timeout", "0", "--task", "0", "hello"], "--timeout must be a positive number"),
    (["--timeout", "nan", "--task", "0", "hello"], "--timeout must be a positive number"),
])
def test_usage_errors(capfd: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, _, err = _predict(capfd, "--rest", "http://127.0.0.1:9", *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_bad_input_lines_are_reported_without_a_server(tmp_path: Path,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "b"}\n{oops\n\n{"text": "c", "task": 1.5}\n')
    code, out, err = _predict(capfd, "--rest", "http://127.0.0.1:9", "--input", str(path))
    assert code == 1 and out == ""  # nothing to send: the server (down) is never asked
    assert f"{path}:1: missing_field: no 'task' field (give one per line, or --task)" in err
    assert f"{path}:2: bad_json: not JSON" in err
    assert f"{path}:4: bad_task: 'task' must be a task id (integer) or name (string)" in err
    assert f"3 of 3 lines of {path} have no prediction" in err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def removed_server(exported: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A server of version 2 of a copy of the session's export: ``export --from --remove
    spam`` (spam's id left unused)."""
    from headswitch.export import export_from
    from headswitch.serving import ModelServer

    base = tmp_path_factory.mktemp("removed") / "headswitch"
    shutil.copytree(exported.path, base / "1")
    export_from(base, remove=["spam"])
    with ModelServer(model_name="headswitch", model_base_path=base, grpc_port=0,
                     rest_port=0) as started:
        started.wait_until_available()
        yield started


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_input_lines_with_a_removed_or_unknown_task(
        removed_server: Any, task_names: list[str], tmp_path: Path, transport: str,
        capfd: pytest.CaptureFixture[str]) -> None:
    """Every good line answered as the client answers it, every bad one reported on stderr
    with its line and reason (as ``headswitch score``'s error rows with --json), exit 1."""
    spam = task_names.index("spam")
    lines: list[Any] = [
        {"text": TEXTS[0], "task": "topic"},
        {"text": TEXTS[1], "task": "spam"},  # 2: removed, by name
        {"text": TEXTS[2], "task": 3},
        {"text": TEXTS[3], "task": spam},  # 4: removed, by id
        "{not json",  # 5
        {"text": TEXTS[4], "task": "weather"},  # 6: never a task
        {"text": TEXTS[5], "task": str(spam)},  # 7: removed, by id written as text
        {"text": TEXTS[6], "task": "6"},
        {"text": TEXTS[7], "task": 99},  # 9: no such id
    ]
    path = tmp_path / "texts.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n"
                            for line in lines))
    target = ["--rest", removed_server.rest_url] if transport == "rest" else [
        "--grpc", removed_server.grpc_address]
    code, out, err = _predict(capfd, *target, "--input", str(path), "--json")
    assert code == 1
    got = [json.loads(line) for line in out.splitlines()]
    assert [g["line"] for g in got] == [1, 3, 8]
    assert [g["index"] for g in got] == [0, 2, 7]
    expected = run(transport, removed_server,
                   lambda c: c.predict([TEXTS[0], TEXTS[2], TEXTS[6]], ["topic", 3, 6]))
    assert [{k: v for k, v in g.items() if k not in ("line", "index")} for g in got] == [
        {k: v for k, v in p.to_dict().items() if k != "index"} for p in expected]
    errors = [json.loads(line) for line in err.splitlines()]
    assert [(e["file"], e["line"], e["error"]) for e in errors] == [
        (str(path), 2, "unknown_task"), (str(path), 4, "unknown_task"), (str(path), 5, "bad_json"),
        (str(path), 6, "unknown_task"), (str(path), 7, "unknown_task"),
        (str(path), 9, "unknown_task")]
    removed = f"task {spam} ('spam') was removed in version 2"
    assert [e["message"] for e in errors if e["line"] in (2, 4, 7)] == [removed] * 3
    assert errors[3]["message"].startswith("unknown task 'weather'; the model has 6 tasks: ids ")
    assert errors[5]["message"].startswith("unknown task id 99; the model has 6 tasks")
    assert errors[1]["input"] == {"text": TEXTS[3], "task": spam}
    assert errors[2]["input"] == "{not json"

    code, out, err = _predict(capfd, *target, "--input", str(path))  # a table, lines on stderr
    assert code == 1 and "3 predictions from" in out
    assert f"{path}:2: unknown_task: {removed}\n" in err
    assert f"{path}:6: unknown_task: unknown task 'weather'" in err
    assert f"6 of 9 lines of {path} have no prediction" in err
    assert "Traceback" not in err
