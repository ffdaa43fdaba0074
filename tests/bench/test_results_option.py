"""Benchmarks keep the committed results unless asked: every bench that writes results takes
``--results DIR`` and ``--save`` from one helper, and writes into work/bench/ by default."""

from __future__ import annotations

import argparse
import ast
import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


def _measure() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module("_measure")
    finally:
        sys.path.remove(str(BENCH))


def test_default_is_the_work_folder_and_save_the_committed_one(tmp_path: Path) -> None:
    m = _measure()
    parser = argparse.ArgumentParser()
    m.add_results_option(parser)
    assert m.WORK_RESULTS == ROOT / "work" / "bench"
    assert m.COMMITTED_RESULTS == BENCH / "results"
    args = parser.parse_args(["--results", str(tmp_path / "r")])
    assert m.results_dir(args) == tmp_path / "r" and (tmp_path / "r").is_dir()
    assert parser.parse_args([]).results is None and not parser.parse_args([]).save
    assert parser.parse_args(["--save"]).save
    with pytest.raises(SystemExit, match="exclude each other"):
        m.results_dir(parser.parse_args(["--save", "--results", str(tmp_path)]))
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", "work/bench/x.json"],
                             cwd=ROOT)
    assert ignored.returncode == 0, "work/bench/ must be git-ignored"


def _writes_results(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
                node.func, "id", "")
            if name in ("write_json", "write_text", "savefig"):
                return True
    return False


def test_every_bench_that_writes_results_uses_the_helper() -> None:
    users = []
    for path in sorted(BENCH.glob("*.py")):
        if path.name.startswith("_"):
            continue
        source = path.read_text()
        tree = ast.parse(source)
        if not _writes_results(tree):
            continue
        users.append(path.name)
        assert "add_results_option(" in source and "results_dir(" in source, path.name
        assert '/ "results"' not in source, f"{path.name} names bench/results/ itself"
    assert len(users) >= 15, users


def test_compare_quick_help_states_the_measured_time() -> None:
    done = subprocess.run([sys.executable, str(BENCH / "compare.py"), "--help"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    help_text = " ".join(done.stdout.split())
    assert "--save" in help_text and "work/bench/" in help_text
    assert "measured: " in help_text.lower() and "< 3 min" not in help_text
