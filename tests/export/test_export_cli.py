"""``headswitch export`` and ``headswitch inspect`` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "headswitch", *args], capture_output=True,
                          text=True, timeout=300)


def test_export_json_then_inspect(example_models: Any, tmp_path: Path) -> None:
    base = tmp_path / "models" / "headswitch"
    done = _run("export", *map(str, example_models.paths[:3]), "--out", str(base), "--json",
                "--manifest", str(example_models.manifest))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["version"] == 1 and len(report["tasks"]) == 3
    assert report["max_abs_diff"] <= 1e-5
    assert "W0000" not in done.stderr and "cuda" not in done.stderr.lower()  # quiet start-up

    shown = _run("inspect", str(base))
    assert shown.returncode == 0, shown.stderr
    for word in ("serving_default", "by_name", "tasks", "task_id", "topic", "sports"):
        assert word in shown.stdout
    info = json.loads(_run("inspect", str(base / "1"), "--json").stdout)
    assert info["version"] == 1 and info["warmup"] is True
    assert info["signatures"]["serving_default"]["inputs"] == {"task_id": "int32[-1]",
                                                               "text": "string[-1]"}


def test_export_table_and_errors(example_models: Any, tmp_path: Path) -> None:
    done = _run("export", str(example_models.paths[0]), "--out", str(tmp_path / "m"))
    assert done.returncode == 0, done.stderr
    assert "served / (backbone + heads)" in done.stdout and "published" in done.stdout
    missing = _run("export", str(tmp_path / "nope.keras"), "--out", str(tmp_path / "m"))
    assert missing.returncode == 2
    assert "model file not found" in missing.stderr and "Traceback" not in missing.stderr
    bad = _run("inspect", str(tmp_path / "empty"))
    assert bad.returncode == 2 and "does not exist" in bad.stderr
