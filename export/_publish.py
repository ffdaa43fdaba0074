"""Versioned, atomic publishing: write under a hidden non-integer name, then rename.

TF Serving loads any integer folder as soon as it appears and ignores other names, so a
version is either absent or complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from ._errors import ExportError

TEMP_PREFIX = ".headswitch-tmp-"


def versions(base: Path) -> list[int]:
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(base: Path) -> int:
    found = versions(base)
    return found[-1] + 1 if found else 1


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(base: Path) -> list[Path]:
    """Delete temporary folders left by exports that were killed (their process is gone)."""
    removed: list[Path] = []
    if not base.is_dir():
        return removed
    for path in base.iterdir():
        if not path.name.startswith(TEMP_PREFIX):
            continue
        try:
            pid = int(path.name[len(TEMP_PREFIX):].split("-")[1])
        except (IndexError, ValueError):
            continue
        if not _pid_alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def staging(base: Path, version: int) -> Iterator[Path]:
    """Yield a temporary folder inside ``base``; rename it to ``base/<version>`` on success."""
    target = base / str(version)
    if target.exists():
        raise ExportError(f"version {version} already exists at {target}; versions are never "
                          "overwritten", hint="omit --version to take the next free number")
    created = [p for p in (base, *base.parents) if not p.exists()]
    base.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(base)
    temp = base / f"{TEMP_PREFIX}{version}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temp.mkdir()
    published = False
    try:
        yield temp
        if target.exists():
            raise ExportError(f"version {version} appeared at {target} while exporting")
        os.rename(temp, target)
        published = True
        _fsync_dir(base)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
        if not published:  # leave no empty BASE (or parents) this export created
            for folder in created:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only if empty


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
