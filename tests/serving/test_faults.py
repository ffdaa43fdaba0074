"""The fault suite, short form: every hostile request of ``bench/_hostile.py`` against
``headswitch serve`` in a child process (small limits and timeouts, so it takes seconds).

Checked for every case: the answer this server gives (the catalogue's ``expect``), a JSON
``{"error": ...}`` body for every REST API error (the only other answers are the transport's
own: libevent-style pages for requests that are not HTTP or not for the API, and closing a
connection that stalls), a gRPC code other than UNKNOWN, no traceback in the server's log, and a
server that is still up and answers a good request. The long form with load, version faults,
SIGTERM and a killed exporter is ``bench/fault_bench.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serving_targets import MODEL, add_version

BENCH = Path(__file__).resolve().parents[2] / "bench"
RUNNER = Path(__file__).with_name("serve_runner.py")
LIMITS = {
    "--max-request-bytes": "1048576",
    "--max-examples": "64",
    "--max-string-bytes": "65536",
    "--read-timeout": "1",
    "--idle-timeout": "2",
}


def _hostile() -> Any:
    sys.path.insert(0, str(BENCH))
    try:
        import _hostile
    finally:
        sys.path.remove(str(BENCH))
    return _hostile


class _Server:
    def __init__(self, process: subprocess.Popen[str], log: Path, target: Any) -> None:
        self.process = process
        self.log_path = log
        self.target = target

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model_template: Path) -> Iterator[_Server]:
    root = tmp_path_factory.mktemp("faults")
    add_version(root / MODEL, 1, model_template)
    log = root / "server.log"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    flags = [item for pair in LIMITS.items() for item in pair]
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(RUNNER), "serve", str(root / MODEL), "--model-name", MODEL,
             "--grpc-port", "0", "--rest-port", "0", *flags],
            stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
        )
    assert process.stdout is not None
    grpc_address, rest_address, line = _hostile().serving_address(process.stdout, 120)
    if not rest_address:
        process.kill()
        pytest.fail(f"server did not start: {line!r}\n{log.read_text()[-3000:]}")
    target = _hostile().Target(
        rest_address, grpc_address, MODEL,
        max_request_bytes=int(LIMITS["--max-request-bytes"]),
        max_examples=int(LIMITS["--max-examples"]),
        max_string_bytes=int(LIMITS["--max-string-bytes"]),
        read_timeout=float(LIMITS["--read-timeout"]),
        idle_timeout=float(LIMITS["--idle-timeout"]),
    )
    yield _Server(process, log, target)
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


CASES = _hostile().all_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_request(server: _Server, case: Any) -> None:
    hostile = _hostile()
    before = len(server.log())
    outcome = case.run(server.target)
    assert outcome.status == case.expect, outcome.describe()
    if case.transport == "REST" and not case.transport_level and outcome.status != "200":
        if outcome.status == "400" and case.name.startswith("OPTIONS"):
            assert outcome.json_error is None or outcome.json_error is False  # TF Serving: empty
        else:
            assert outcome.json_error, outcome.describe()
    if case.transport == "gRPC":
        assert outcome.status != "UNKNOWN", outcome.describe()
    time.sleep(0.1)
    assert server.process.poll() is None, f"the server ended: {server.process.returncode}"
    log = server.log()[before:]
    assert "Traceback" not in log, log[-3000:]
    if case.name == "client disconnects mid-body":
        _wait_for_log(server, before, "disconnected before sending the whole request")
        lines = [line for line in server.log()[before:].splitlines() if line.strip()]
        assert len(lines) == 1, lines
    good = hostile._rest(server.target, hostile._json(hostile.GOOD))
    assert good.status == "200", good.describe()


def _wait_for_log(server: _Server, start: int, text: str) -> None:
    deadline = time.monotonic() + 10
    while text not in server.log()[start:]:
        assert time.monotonic() < deadline, server.log()[start:]
        time.sleep(0.05)


def test_status_is_json_everywhere(server: _Server) -> None:
    """After every hostile case, the server's own pages are still what TF Serving answers."""
    import httpx

    response = httpx.get(f"{server.target.rest_url}/v1/models/{MODEL}", timeout=10)
    assert response.status_code == 200
    assert response.json()["model_version_status"][0]["state"] == "AVAILABLE"
