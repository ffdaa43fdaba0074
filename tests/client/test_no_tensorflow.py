"""The REST client (and ``headswitch predict --rest``) work where TensorFlow and gRPC cannot be
imported, the gRPC client where TensorFlow cannot be, and importing ``headswitch.client``
imports neither."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from client_support import TEXTS, run

from headswitch.contract import SIGNATURES

BLOCKER = textwrap.dedent("""
    import importlib.abc
    import os
    import sys

    BLOCKED = set(os.environ["HEADSWITCH_TEST_BLOCKED"].split(","))

    class _Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, _Blocker())
""")

CHILD = textwrap.dedent("""
    import asyncio, json, sys

    try:
        import tensorflow
    except ImportError:
        pass
    else:
        raise SystemExit("the blocker did not block tensorflow")

    import headswitch.client as hc

    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "grpc", "httpx"))
    assert not heavy, heavy
    url, texts = sys.argv[1], json.loads(sys.argv[2])
    with hc.RestClient(url) as client:
        sync = [p.to_dict() for p in client.predict(texts, "topic")]
        tasks = [t.name for t in client.tasks()]

    async def go():
        async with hc.AsyncRestClient(url) as client:
            return [p.to_dict() for p in await client.predict(texts, "topic")]

    assert asyncio.run(go()) == sync
    try:
        hc.GrpcClient("127.0.0.1:1")
    except ImportError as exc:
        assert 'pip install "headswitch[grpc]"' in str(exc), exc
    else:
        raise SystemExit("GrpcClient did not raise ImportError")
    assert not [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "grpc")]
    print(json.dumps({"predictions": sync, "tasks": tasks}))
""")


GRPC_CHILD = textwrap.dedent("""
    import asyncio, json, sys

    import headswitch.client as hc

    address = sys.argv[1]
    with hc.GrpcClient(address) as client:
        predictions = [p.to_dict() for p in client.predict(json.loads(sys.argv[2]), "topic")]
        tasks = [t.name for t in client.tasks()]
        status = [v.state for v in client.status().versions]
        signatures = sorted(client.metadata().signatures)

    async def go():
        async with hc.AsyncGrpcClient(address) as client:
            return [p.to_dict() for p in await client.predict(json.loads(sys.argv[2]), "topic")]

    assert asyncio.run(go()) == predictions
    heavy = sorted(m for m in sys.modules
                   if m.split(".")[0] in ("tensorflow", "tensorflow_serving", "keras", "numpy"))
    assert not heavy, heavy
    print(json.dumps({"predictions": predictions, "tasks": tasks, "status": status,
                      "signatures": signatures}))
""")

NO_TF = "tensorflow,tensorflow_serving,keras,tf_keras"


def _env(blocked: Path | None, names: str = NO_TF + ",grpc") -> dict[str, str]:
    env = dict(os.environ)
    if blocked is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(blocked), env.get("PYTHONPATH", "")])
        env["HEADSWITCH_TEST_BLOCKED"] = names
    return env


def _blocked_site(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(BLOCKER)
    return folder


def _child(tmp_path: Path, blocked: str, *args: str) -> list[str]:
    """Run ``python args...`` with the ``blocked`` top-level modules unimportable; its lines."""
    done = subprocess.run([sys.executable, *args], env=_env(_blocked_site(tmp_path), blocked),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()


def test_rest_client_without_tensorflow(server: Any, tmp_path: Path, task_names: list[str]
                                        ) -> None:
    lines = _child(tmp_path, NO_TF + ",grpc", "-c", CHILD, server.rest_url, json.dumps(TEXTS))
    answer = json.loads(lines[-1])
    here = run("rest", server, lambda c: c.predict(TEXTS, "topic"))
    assert answer["predictions"] == [p.to_dict() for p in here]
    assert answer["tasks"] == task_names


def test_grpc_client_without_tensorflow(server: Any, tmp_path: Path, task_names: list[str]
                                        ) -> None:
    """grpcio and protobuf are all the gRPC client needs: the same answers with TensorFlow and
    tensorflow-serving-api unimportable."""
    lines = _child(tmp_path, NO_TF, "-c", GRPC_CHILD, server.grpc_address, json.dumps(TEXTS))
    answer = json.loads(lines[-1])
    here = run("grpc", server, lambda c: c.predict(TEXTS, "topic"))
    assert answer["predictions"] == [p.to_dict() for p in here]
    assert answer["tasks"] == task_names
    assert answer["status"] == ["AVAILABLE"]
    assert answer["signatures"] == sorted(SIGNATURES)


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_cli_without_tensorflow(transport: str, server: Any, tmp_path: Path) -> None:
    """``headswitch predict``: REST without TensorFlow and gRPC, gRPC without TensorFlow."""
    code = "import sys; from headswitch.cli import main; sys.exit(main(sys.argv[1:]))"
    target = server.rest_url if transport == "rest" else server.grpc_address
    blocked = NO_TF + ",grpc" if transport == "rest" else NO_TF
    (line,) = _child(tmp_path, blocked, "-c", code, "predict", f"--{transport}", target,
                     "--task", "spam", "--json", "WIN A FREE PRIZE")
    assert json.loads(line)["task"] == "spam"


def test_importing_the_client_imports_nothing_heavy() -> None:
    code = ("import sys, headswitch.client; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'tensorflow', 'tensorflow_serving', 'grpc', 'httpx', 'numpy', 'keras'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
