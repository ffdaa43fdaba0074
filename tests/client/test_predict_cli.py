"""``headswitch predict``: a table, JSON lines, and clear failures."""

from __future__ import annotations

import json
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


def test_bad_input_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "a", "task": 0}\n{"text": "b"}\n')
    code, _, err = _predict(capfd, "--rest", "http://127.0.0.1:9", "--input", str(path))
    assert code == 2
    assert f'{path}:2: no "task"' in err
