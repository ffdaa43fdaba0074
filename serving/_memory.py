"""Giving memory back after large requests.

A large request (a big JSON body, many examples) leaves its freed buffers in glibc's heaps, so
the process stays as large as its largest request. Two things return them:

- glibc adapts its thresholds to the largest block freed so far: after one 15 MiB body, blocks
  that size come from the heaps and up to twice that stays at the top of each thread's heap
  (``malloc_trim`` only releases free blocks below the top, and the main heap's top). Fixed
  thresholds turn that off: a block of 1 MiB or more is its own mapping, unmapped when freed,
  and a heap's top above 4 MiB is released (``mallopt``, set once for the process when a
  server starts).
- After a large request, a background thread calls ``malloc_trim`` (once, a moment later, off
  the request path), which returns the free pages inside the heaps.

Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from typing import Any

_log = logging.getLogger(__name__)

LARGE_REQUEST_BYTES = 1 << 20
LARGE_REQUEST_EXAMPLES = 256
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_MMAP_THRESHOLD = 1 << 20
_TRIM_THRESHOLD = 4 << 20


def _libc() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def _malloc_trim() -> Any:
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    mallopt = getattr(libc, "mallopt", None)
    if trim is not None and mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    return trim


class MemoryReleaser:
    """``note(bytes, examples)`` after each request; trims once after large ones."""

    def __init__(self, delay: float = 0.5) -> None:
        self._trim = _malloc_trim()
        self._delay = delay
        self._pending = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self._trim is not None:
            self._thread = threading.Thread(
                target=self._run, name="headswitch-memory", daemon=True
            )
            self._thread.start()

    def note(self, size_bytes: int = 0, examples: int = 0) -> None:
        if size_bytes >= LARGE_REQUEST_BYTES or examples >= LARGE_REQUEST_EXAMPLES:
            self._pending.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._pending.wait()
            if self._stop.wait(self._delay):  # let the request finish freeing
                return
            self._pending.clear()
            try:
                self._trim(0)
            except Exception:  # noqa: BLE001 - never fatal
                _log.debug("malloc_trim failed", exc_info=True)

    def close(self) -> None:
        self._stop.set()
        self._pending.set()
        if self._thread is not None:
            self._thread.join(5)
