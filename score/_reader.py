"""The rows of a job's input files, read and parsed in a worker process: parsing is Python work
per row, and in the scoring process it would hold the GIL the model threads need between their
TensorFlow calls. ``bench/score_bench.py`` measures the pipeline against a bare loop of model
calls: ``bench/results/score.md``.
Standard input is read in this process.

The worker is ``python -m headswitch.score._reader``: a new interpreter that imports nothing of
the caller's (``multiprocessing``'s spawn would import the caller's main module again, which a
script without an ``if __name__ == "__main__"`` guard cannot survive, and a fork would copy a
process running TensorFlow's threads). It reads the job (files, options) pickled on its
standard input and writes pickled items on its standard output; the pipe's buffer is the
read-ahead, so memory stays the same whatever the input's size."""

from __future__ import annotations

import pickle
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import IO

from . import _fs
from ._input import open_decompressed, read_chunks
from ._job import STDIN, ScoreOptions
from ._rows import Chunk

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


def _work(job: IO[bytes], out: IO[bytes]) -> None:
    """The worker: every item of the job read from ``job``, pickled to ``out``, then ``_END``
    (or ``_FAILED`` and the exception)."""
    files, options = pickle.load(job)
    try:
        for item in chunks_of(files, options):
            pickle.dump(item, out, pickle.HIGHEST_PROTOCOL)
    except BrokenPipeError:
        return  # the scoring process stopped reading: it has stopped
    except BaseException as exc:  # noqa: BLE001 - handed to the scoring process
        pickle.dump((_FAILED, _picklable(exc)), out, pickle.HIGHEST_PROTOCOL)
    else:
        pickle.dump(_END, out, pickle.HIGHEST_PROTOCOL)
    out.flush()


class ChunkReader:
    """``next()`` gives the next ``Item`` (None at the end) from a worker process, or from this
    process for standard input. ``close`` stops the worker."""

    def __init__(self, files: list[str], options: ScoreOptions) -> None:
        self._local: Iterator[Item] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        if STDIN in files:  # a worker process cannot read this process's standard input
            self._local = chunks_of(files, options)
            return
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr)
        assert self._process.stdin is not None
        with self._process.stdin as job:
            pickle.dump((files, options), job, pickle.HIGHEST_PROTOCOL)

    def next(self) -> Item | None:
        """The next item, None at the end. Raises what the worker raised."""
        if self._local is not None:
            return next(self._local, None)
        assert self._process is not None and self._process.stdout is not None
        try:
            item = pickle.load(self._process.stdout)
        except EOFError:
            code = self._process.wait()
            self._stderr.seek(0)
            said = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
            raise RuntimeError(f"the process reading the input exited (exit code {code}) "
                               f"before the end{': ' + said[-1] if said else ''}") from None
        if item == _END:
            return None
        if item[0] == _FAILED:
            raise item[1]
        result: Item = item
        return result

    def close(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        assert self._process.stdout is not None
        self._process.stdout.close()
        self._stderr.close()


if __name__ == "__main__":
    _work(sys.stdin.buffer, sys.stdout.buffer)
