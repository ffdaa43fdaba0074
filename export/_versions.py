"""Version folders on disk: their numbers, their sizes, and atomic staging (write under a hidden
non-integer name, then rename).

TF Serving loads any integer folder as soon as it appears and ignores other names, so a
version is either absent or complete.

Temporary folders left by a killed export are removed by the next export into the same base
path, but only when they are certainly abandoned: each one holds an owner record (host name,
process id, start time). A folder is removed when its owner is this host and that process is
gone, or when it is older than ``STALE_AGE_SECONDS`` (a day) whoever wrote it. On shared storage
(NFS, a mounted bucket) another host's export in progress is therefore never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from ._errors import ExportError

TEMP_PREFIX = ".headswitch-tmp-"
OWNER_FILE = ".headswitch-owner"
STALE_AGE_SECONDS = 24 * 3600


def versions(base: Path) -> list[int]:
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(base: Path) -> int:
    found = versions(base)
    return found[-1] + 1 if found else 1


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def served_bytes(version_dir: Path) -> int:
    """What TF Serving loads of a version: saved_model.pb, variables/ and assets/ (not
    assets.extra/, whose warmup records, manifest and stored heads it does not keep)."""
    files = [version_dir / "saved_model.pb", *(version_dir / "variables").rglob("*"),
             *(version_dir / "assets").rglob("*")]
    return sum(f.stat().st_size for f in files if f.is_file())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_abandoned(path: Path, host: str, now: float) -> bool:
    try:
        owner = json.loads((path / OWNER_FILE).read_text())
        started = float(owner["started"])
        owner_host, pid = str(owner["host"]), int(owner["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        try:  # no owner record (yet, or an older exporter): only its age tells
            return now - path.stat().st_mtime > STALE_AGE_SECONDS
        except OSError:
            return False
    if now - started > STALE_AGE_SECONDS:
        return True
    return owner_host == host and not _pid_alive(pid)


def remove_stale_temporaries(base: Path) -> list[Path]:
    """Delete temporary folders left by exports that were killed: this host's whose process is
    gone, and anyone's older than ``STALE_AGE_SECONDS``."""
    removed: list[Path] = []
    if not base.is_dir():
        return removed
    host, now = socket.gethostname(), time.time()
    for path in base.iterdir():
        if path.name.startswith(TEMP_PREFIX) and _is_abandoned(path, host, now):
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
    temp = base / f"{TEMP_PREFIX}{version}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    published = False
    try:  # everything that writes is inside: a signal at any point leaves nothing behind
        base.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(base)
        temp.mkdir()
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
        (temp / OWNER_FILE).write_text(json.dumps(owner))
        yield temp
        if target.exists():
            raise ExportError(f"version {version} appeared at {target} while exporting")
        (temp / OWNER_FILE).unlink()
        os.rename(temp, target)
        published = True
        _fsync_dir(base)
    finally:
        _clean_up(temp, [] if published else created, quiet=0.0 if published else 1.0)


def _clean_up(temp: Path, created: list[Path], seconds: float = 10.0, quiet: float = 0.0
              ) -> None:
    """Remove ``temp`` and the folders in ``created`` that are left empty (the BASE and parents
    an unpublished export made). Again for up to ``seconds`` until they have stayed gone for
    ``quiet`` seconds: after an interrupt TensorFlow's file threads may still write into
    ``temp``, creating its folders again."""
    deadline = time.monotonic() + seconds
    gone_since: float | None = None
    while True:
        _remove_tree(temp)
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty
        now = time.monotonic()
        if not temp.exists() and not any(folder.exists() for folder in created):
            gone_since = now if gone_since is None else gone_since
            if now - gone_since >= quiet:
                return
        else:
            gone_since = None
        if now > deadline:
            return  # a folder holds something else: it is not ours to remove
        time.sleep(0.05)


def _remove_tree(path: Path, attempts: int = 5) -> None:
    """Remove ``path`` whole; again if a writer still finishing (TensorFlow's file threads
    after an interrupt) adds a file while it goes."""
    for _ in range(attempts):
        if not path.exists():
            return
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():
            time.sleep(0.05)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
