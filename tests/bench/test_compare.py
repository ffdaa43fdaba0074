"""Smoke test of bench/compare.py's machinery at toy size: 3 tasks, small backbone, tiny budget.

Builds every contender, measures load time/memory in fresh child processes, latency on the C++
path (TF Serving's loader and session, in child processes with oneDNN off and at the wheel's
default) and on the Python-call path in-process, and checks the JSON, markdown and PNG it
writes. Not a benchmark: the numbers are not checked, only that every contender, path and
metric is there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

pytest.importorskip("matplotlib")


@pytest.mark.slow
def test_quick_machinery(example_models: Any, tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import compare
    finally:
        sys.path.remove(str(BENCH))
    results = tmp_path / "results"
    code = compare.main([
        "--quick", "--tasks", "3", "--backbones", "small",
        "--small-examples", str(example_models.manifest.parent),
        "--in-process", "--rounds", "2", "--budget-scale", "0.05",
        "--results", str(results), "--work", str(tmp_path / "work"),
    ])
    assert code == 0
    data = json.loads((results / "compare.json").read_text())
    assert data["settings"]["tasks"] == [3]
    small = data["backbones"]["small"]
    assert "export_models" in small["headswitch_built_with"]
    rows = {(r["contender"], r["tasks"]): r for r in small["rows"]}
    assert set(rows) == {("backbone", None), ("backbone_io", None)} | {
        (c, 3) for c in ("headswitch", "multi_output", "per_task_sigs", "separate")}
    jobs = small["latency_jobs"]
    assert list(jobs) == ["cpp", "cpp_onednn", "eager"]
    assert jobs["cpp"]["onednn"] is False  # the second C++ column ran with oneDNN off
    assert data["settings"]["headline"] == "cpp_onednn"
    for row in rows.values():
        assert row["bytes"] > 0 and row["load_seconds"] > 0 and row["peak_rss"] > 0
        for path in jobs:
            for batch in ("1", "64"):
                latency = row["latency"][path][batch]
                assert latency["samples"] >= 2
                assert 0 < latency["p50_ms"] <= latency["p99_ms"]
                assert latency["throughput"] > 0 and latency["p50_x"] > 0
        assert row["ratio"]["p50_b1"] == row["latency"]["cpp_onednn"]["1"]["p50_x"]
    assert rows[("backbone", None)]["ratio"]["bytes"] == 1.0
    # A 3-task mixed batch of 64 needs one call per distinct task for the per-task contenders,
    # on every path.
    for path in jobs:
        assert rows[("per_task_sigs", 3)]["latency"][path]["64"]["calls_per_request"] > 1
    assert rows[("separate", 3)]["bytes"] == 3 * compare.saved_model_bytes(
        Path(tmp_path / "work" / "small" / "contenders" / "separate"))
    floors = [f for f in small["floors"] if not f["reference"]]
    assert {f["floor"].split(",")[0] for f in floors} == {
        "headswitch / backbone alone", "headswitch / one-signature-per-task model",
        "headswitch bytes / (backbone + heads)"}  # all-heads floors start at N=10
    for f in floors:
        paths = {"size"} if f["floor"].startswith("headswitch bytes") else {"cpp", "cpp_onednn"}
        assert set(f["by_path"]) == paths and f["value"] > 0 and isinstance(f["ok"], bool)
    references = [f for f in small["floors"] if f["reference"]]
    assert {f["floor"].split(",")[0] for f in references} >= {
        "headswitch / all-heads model", "headswitch / backbone behind its inputs/outputs"}
    markdown = (results / "compare.md").read_text()
    assert "| headswitch | 3 |" in markdown and "Floors (issue 11; C++ path, p50)" in markdown
    assert "| C++ session, oneDNN off | met |" in markdown
    assert "| backbone, headswitch's inputs/outputs | - |" in markdown
    assert (results / "compare.png").stat().st_size > 10_000
