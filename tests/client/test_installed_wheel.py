"""The package as users get it: a wheel, installed (not editable) with one client extra into a
fresh virtual environment, used from the repository root, where no source folder may shadow it.
Neither extra installs TensorFlow."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from client_support import TEXTS

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"tensorflow", "tensorflow-cpu", "tensorflow-serving-api", "keras", "tf-keras",
         "numpy"}

SMOKE = textwrap.dedent("""
    import json, sys
    import headswitch, headswitch.client as hc, headswitch.contract as c

    kind, target, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    make = {"rest": hc.RestClient, "grpc": hc.GrpcClient}[kind]
    with make(target) as client:
        predictions = [p.to_dict() for p in client.predict(texts, "topic")]
        tasks = [t.name for t in client.tasks()]
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "numpy", "keras"})
    print(json.dumps({"file": headswitch.__file__, "version": headswitch.__version__,
                      "model": c.DEFAULT_MODEL_NAME, "predictions": predictions,
                      "tasks": tasks, "heavy": heavy}))
""")


def _run(*args: str | Path, timeout: float = 600) -> str:
    done = subprocess.run([str(a) for a in args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"{args}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the sources: a build/ folder left in the checkout could hold
    files that no longer exist."""
    source = tmp_path_factory.mktemp("source") / "headswitch"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", "models",
        "example-models"))
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", source, "-w", out)
    (built,) = out.glob("headswitch-*.whl")
    return built


@pytest.mark.slow
@pytest.mark.parametrize("extra", ["rest", "grpc"])
def test_wheel_with_one_client_extra(extra: str, wheel: Path, server: Any, tmp_path: Path,
                                     task_names: list[str]) -> None:
    venv = tmp_path / f"venv-{extra}"
    _run(sys.executable, "-m", "venv", venv)
    python, command = venv / "bin" / "python", venv / "bin" / "headswitch"
    _run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         f"{wheel}[{extra}]")
    installed = {p["name"].lower() for p in json.loads(
        _run(python, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"))}
    assert "headswitch" in installed
    assert not installed & HEAVY, sorted(installed & HEAVY)

    target = server.rest_url if extra == "rest" else server.grpc_address
    answer = json.loads(_run(python, "-c", SMOKE, extra, target, json.dumps(TEXTS)))
    assert Path(answer["file"]).is_relative_to(venv), answer["file"]  # not a source folder
    assert answer["heavy"] == [] and answer["tasks"] == task_names
    assert [p["task"] for p in answer["predictions"]] == ["topic"] * len(TEXTS)

    version = _run(command, "--version").strip()
    assert version == f"headswitch {answer['version']}"
    line = _run(command, "predict", f"--{extra}", target, "--task", "spam", "--json",
                "WIN A FREE PRIZE").strip()
    assert json.loads(line)["task"] == "spam"
