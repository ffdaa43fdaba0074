"""The README's main job runs from start to end and prints readable predictions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_end_to_end(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "headswitch.demo", "--models-dir", str(tmp_path / "ex"),
         "--out", str(tmp_path / "models" / "headswitch")],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, COLUMNS="160"))
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for step in ("build example models", "export one task-switching SavedModel",
                 "REST: POST /v1/models/headswitch:predict", "gRPC: PredictionService.Predict"):
        assert step in out
    assert "curl -s http://127.0.0.1:" in out
    # The demo sentences are unambiguous: the served model gets them right on both transports.
    assert out.count("sports") >= 2 and out.count("positive") >= 2 and out.count("spanish") >= 2
    assert (tmp_path / "models" / "headswitch" / "1" / "saved_model.pb").is_file()
