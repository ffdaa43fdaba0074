"""Files on local disk or behind a URL scheme (gs://...): local paths use the standard library,
other schemes TensorFlow's file systems (which read Cloud Storage themselves)."""

from __future__ import annotations

import glob as _glob
import os
import posixpath
from typing import IO, Any


def is_remote(path: str) -> bool:
    return "://" in path


def _gfile() -> Any:
    from headswitch._quiet import import_tensorflow

    return import_tensorflow().io.gfile


def join(base: str, *parts: str) -> str:
    return posixpath.join(base, *parts) if is_remote(base) else os.path.join(base, *parts)


def basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/"))


def dirname(path: str) -> str:
    return posixpath.dirname(path.rstrip("/")) if is_remote(path) else os.path.dirname(path)


def exists(path: str) -> bool:
    return bool(_gfile().exists(path)) if is_remote(path) else os.path.exists(path)


def isdir(path: str) -> bool:
    return bool(_gfile().isdir(path)) if is_remote(path) else os.path.isdir(path)


def listdir(path: str) -> list[str]:
    if is_remote(path):
        return [name.rstrip("/") for name in _gfile().listdir(path)]
    return os.listdir(path)


def glob(pattern: str) -> list[str]:
    """Files matching ``pattern`` (``*``, ``?``, ``[...]``; ``**`` locally), sorted."""
    if is_remote(pattern):
        return sorted(p for p in _gfile().glob(pattern) if not p.endswith("/"))
    return sorted(p for p in _glob.glob(pattern, recursive=True) if os.path.isfile(p))


def size(path: str) -> int:
    return int(_gfile().stat(path).length) if is_remote(path) else os.path.getsize(path)


def open_read(path: str) -> IO[bytes]:
    if is_remote(path):
        return _gfile().GFile(path, "rb")  # type: ignore[no-any-return]
    return open(path, "rb", buffering=1 << 20)


def open_write(path: str) -> IO[bytes]:
    if is_remote(path):
        return _gfile().GFile(path, "wb")  # type: ignore[no-any-return]
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    return open(path, "wb", buffering=1 << 20)


def rename(source: str, target: str) -> None:
    if is_remote(source):
        _gfile().rename(source, target, overwrite=True)
    else:
        os.replace(source, target)


def remove(path: str) -> None:
    if is_remote(path):
        if _gfile().exists(path):
            _gfile().remove(path)
    elif os.path.exists(path):
        os.remove(path)
