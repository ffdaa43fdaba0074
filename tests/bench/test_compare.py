"""Smoke test of bench/compare.py's machinery at toy size: 3 tasks, small backbone, tiny budget.

Builds every contender, measures load time/memory in fresh child processes and latency
in-process, and checks the JSON, markdown and PNG it writes. Not a benchmark: the numbers are
not checked, only that every contender and metric is there.
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
    for row in rows.values():
        assert row["bytes"] > 0 and row["load_seconds"] > 0 and row["peak_rss"] > 0
        for batch in ("1", "64"):
            latency = row["latency"][batch]
            assert latency["samples"] >= 2
            assert 0 < latency["p50_ms"] <= latency["p99_ms"]
            assert latency["throughput"] > 0
        assert row["ratio"]["p50_b1"] > 0
    assert rows[("backbone", None)]["ratio"]["bytes"] == 1.0
    # A 3-task mixed batch of 64 needs one call per distinct task for the per-task contenders.
    assert rows[("per_task_sigs", 3)]["latency"]["64"]["calls_per_request"] > 1
    assert rows[("separate", 3)]["bytes"] == 3 * compare.saved_model_bytes(
        Path(tmp_path / "work" / "small" / "contenders" / "separate"))
    assert {f["floor"].split(",")[0] for f in small["floors"]} >= {
        "headswitch p50 / backbone p50", "headswitch bytes / (backbone + heads)"}
    references = [f for f in small["floors"] if f.get("reference")]
    assert len(references) == 2 * 2 and all(f["value"] > 0 for f in references)
    markdown = (results / "compare.md").read_text()
    assert "| headswitch | 3 |" in markdown and "Floors" in markdown
    assert "| backbone, headswitch's inputs/outputs | - |" in markdown
    assert (results / "compare.png").stat().st_size > 10_000
