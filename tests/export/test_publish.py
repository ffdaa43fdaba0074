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
    assert not (base / "8" / ".headswitch-owner").exists()  # the owner record stays behind
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
        # Ctrl-C and SIGTERM clean up, the BASE folder they made too
        assert not base.exists(), sorted(str(p.relative_to(base)) for p in base.rglob("*"))
        assert proc.returncode == 130
    report = export_models(example_models.paths[:2], base)
    assert report.version == 1
    assert not [p for p in base.iterdir() if p.name.startswith(".headswitch-tmp-")]


def test_stale_temporaries_only_from_this_host_or_old(tmp_path: Path) -> None:
    """Shared storage: another host's export in progress (its process id means nothing here)
    is kept; this host's dead exports and anything older than a day are removed."""
    import json
    import socket

    from headswitch.export._versions import (
        OWNER_FILE,
        STALE_AGE_SECONDS,
        TEMP_PREFIX,
        remove_stale_temporaries,
    )

    here = socket.gethostname()
    dead_pid = 2**22 + 12345  # above the default pid_max: never a live process
    now = time.time()

    def temp(name: str, owner: dict[str, Any] | None, age: float = 0.0) -> Path:
        path = tmp_path / f"{TEMP_PREFIX}{name}"
        path.mkdir()
        if owner is not None:
            (path / OWNER_FILE).write_text(json.dumps(owner))
        os.utime(path, (now - age, now - age))
        return path

    other_host = temp("1-a", {"host": here + "-other", "pid": dead_pid, "started": now})
    mine_dead = temp("2-b", {"host": here, "pid": dead_pid, "started": now})
    mine_alive = temp("3-c", {"host": here, "pid": os.getpid(), "started": now})
    other_old = temp("4-d", {"host": here + "-other", "pid": 1,
                             "started": now - STALE_AGE_SECONDS - 60})
    legacy_new = temp("5-e", None)
    legacy_old = temp("6-f", None, age=STALE_AGE_SECONDS + 60)
    (tmp_path / "7").mkdir()

    removed = set(remove_stale_temporaries(tmp_path))
    assert removed == {mine_dead, other_old, legacy_old}
    assert other_host.exists() and mine_alive.exists() and legacy_new.exists()
    assert (tmp_path / "7").exists()
