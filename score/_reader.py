"""The rows of a job's input files, read and parsed in a worker process: parsing is Python work
per row, and in the scoring process it would hold the GIL the model threads need between their
TensorFlow calls (measured: 0.78 of a bare loop's rows/s with the parsing in a thread, 0.98
without it). Standard input is read in this process."""

from __future__ import annotations

import multiprocessing
import pickle
import queue
import sys
from collections.abc import Iterator
from typing import Any

from . import _fs
from ._job import STDIN, ScoreOptions
from ._rows import Chunk, open_decompressed, read_chunks

_AHEAD = 8  # chunks parsed ahead of the model
_END = "end"
_FAILED = "failed"
Item = tuple[Chunk | None, int]  # a chunk (None: progress only), and the input bytes read


def chunks_of(files: list[str], options: ScoreOptions) -> Iterator[Item]:
    """Every file's rows in chunks of at most ``options.batch_size``, in order, each with the
    bytes of input read so far."""
    done_bytes = 0
    size = options.batch_size
    for path in files:
        if path == STDIN:
            for chunk in read_chunks(sys.stdin.buffer, "<stdin>", options.fmt or "jsonl",
                                     options.spec, size):
                yield chunk, done_bytes
            continue
        with _fs.open_read(path) as raw:
            stream = open_decompressed(raw, path)
            fmt = options.format_of(path)
            for chunk in read_chunks(stream, path, fmt, options.spec, size):
                yield chunk, done_bytes + raw.tell()
        done_bytes += _fs.size(path)
        yield None, done_bytes


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any exception that does not travel is described
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def _produce(files: list[str], options: ScoreOptions, out: Any, stop: Any) -> None:
    """The worker process: put every item on ``out``, then ``_END`` (or ``_FAILED`` and the
    exception), until done or ``stop`` is set."""
    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        out.cancel_join_thread()  # exit without waiting for a reader that is gone
        return False

    try:
        for item in chunks_of(files, options):
            if not put(item):
                return
    except BaseException as exc:  # noqa: BLE001 - handed to the scoring process
        put((_FAILED, _picklable(exc)))
        return
    put(_END)


class ChunkReader:
    """``get`` gives the next ``Item`` (None at the end) from a worker process, or from this
    process for standard input. ``close`` stops the worker."""

    def __init__(self, files: list[str], options: ScoreOptions) -> None:
        self._local: Iterator[Item] | None = None
        self._process: Any = None
        if STDIN in files:  # a worker process cannot read this process's standard input
            self._local = chunks_of(files, options)
            return
        context = multiprocessing.get_context("spawn")  # no fork of a process running TF
        self._queue: Any = context.Queue(_AHEAD)
        self._stop = context.Event()
        self._process = context.Process(target=_produce, name="headswitch-score-reader",
                                        args=(files, options, self._queue, self._stop),
                                        daemon=True)
        self._process.start()

    def get(self, timeout: float) -> Item | None:
        """The next item, None at the end; ``queue.Empty`` if none came within ``timeout``
        seconds. Raises what the worker raised."""
        if self._local is not None:
            return next(self._local, None)
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            if not self._process.is_alive():
                raise RuntimeError(f"the process reading the input exited (exit code "
                                   f"{self._process.exitcode}) before the end") from None
            raise
        if item == _END:
            return None
        if item[0] == _FAILED:
            raise item[1]
        result: Item = item
        return result

    def close(self) -> None:
        if self._process is None:
            return
        self._stop.set()
        self._process.join(2)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self._queue.close()
        self._queue.cancel_join_thread()
