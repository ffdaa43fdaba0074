"""Versions: numbering, never overwriting, and no partial numbered folder after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from headswitch.export import ExportError, export_models


def version_folders(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir()) if base.exists() else []


def test_versions_increment_and_never_overwrite(example_models: Any, tmp_path: Path) -> None:
    base = tmp_path / "m"
    (base / "not-a-version").mkdir(parents=True)
    (base / "7").mkdir()
    (base / "7" / "marker").write_text("keep")
    first = export_models(example_models.paths[:2], base)
    assert first.version == 8
    with pytest.raises(ExportError, match="already exists"):
        export_models(example_models.paths[:2], base, version=8)
    assert (base / "7" / "marker").read_text() == "keep"
    explicit = export_models(example_models.paths[:2], base, version=3)
    assert explicit.version == 3 and (base / "3" / "saved_model.pb").is_file()
    assert version_folders(base) == ["3", "7", "8", "not-a-version"]


def _export_process(paths: list[Path], base: Path) -> subprocess.Popen[bytes]:
    code = ("import sys; from headswitch.cli import main; "
            "sys.exit(main(['export', *sys.argv[2:], '--out', sys.argv[1]]))")
    return subprocess.Popen([sys.executable, "-c", code, str(base), *map(str, paths)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for_staging(base: Path, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if base.exists() and any(p.name.startswith(".headswitch-tmp-") for p in base.iterdir()):
            return
        if proc.poll() is not None:
            assert proc.stderr is not None
            raise AssertionError(f"export ended before writing: {proc.stderr.read().decode()}")
        time.sleep(0.01)
    raise AssertionError("export never started writing")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_killed_export_leaves_no_numbered_folder(example_models: Any, tmp_path: Path,
                                                 how: int) -> None:
    base = tmp_path / "m"
    proc = _export_process(example_models.paths, base)
    _wait_for_staging(base, proc)
    os.kill(proc.pid, how)
    proc.wait(timeout=60)
    if how == signal.SIGKILL:
        assert not [p for p in base.iterdir() if p.name.isdigit()]
        leftovers = [p for p in base.iterdir() if p.name.startswith(".headswitch-tmp-")]
        assert len(leftovers) <= 1  # no chance to clean up, but the name is not a version
    else:
        assert not base.exists()  # Ctrl-C and SIGTERM clean up, the BASE folder they made too
        assert proc.returncode == 130
    report = export_models(example_models.paths[:2], base)
    assert report.version == 1
    assert not [p for p in base.iterdir() if p.name.startswith(".headswitch-tmp-")]
