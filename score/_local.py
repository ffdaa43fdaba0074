"""The in-process runner: one process scores and writes, as a pipeline of threads joined by short
queues: one checks the rows a reader process parses (``_reader``), ``threads`` call the model
(TensorFlow runs concurrent calls on every core), one writes. Batches carry sequence numbers,
so output rows keep the input order; the queues are short, so memory stays the same whatever
the input's size."""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from . import _fs
from ._job import STDIN, ScoreOptions, Summary, check_outputs_free, match_inputs, output_paths
from ._model import (
    Predictions,
    Prepared,
    Scorer,
    cores,
    locate_model,
    op_threads_for,
    prepare,
    scored_lines,
)
from ._reader import ChunkReader
from ._rows import RowError
from ._write import json_line

_QUEUE_BATCHES = 8
_SWITCH_INTERVAL = 0.0005  # seconds (Python's default: 5 ms; why shorter: see _score_to)
_DONE = None


@dataclass
class Progress:
    """Counters the pipeline updates and a progress display reads."""

    total_bytes: int | None = None
    bytes_read: int = 0
    rows: int = 0
    scored: int = 0
    errors: int = 0
    error_kinds: Counter[str] = field(default_factory=Counter)


class _Stopped(Exception):
    pass


class _Pipeline:
    def __init__(self, options: ScoreOptions, scorer: Scorer, reader: ChunkReader,
                 files: list[str], progress: Progress, threads: int) -> None:
        self.threads = threads
        self.options = options
        self.scorer = scorer
        self.reader = reader
        self.progress = progress
        self.to_model: queue.Queue[Any] = queue.Queue(_QUEUE_BATCHES)
        self.to_writer: queue.Queue[Any] = queue.Queue(_QUEUE_BATCHES)
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        names = ["<stdin>" if f == STDIN else f for f in files]
        self.file_order = {name: i for i, name in enumerate(names)}

    def _put(self, q: queue.Queue[Any], item: Any) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _get(self, q: queue.Queue[Any]) -> Any:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue

    def _guard(self, work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except _Stopped:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self.failure = self.failure or exc
                self.stop.set()
        return run

    def read(self) -> None:
        """Chunks of rows from the reader -> checked batches."""
        tasks, why = self.scorer.tasks, self.scorer.why_unknown
        sequence = 0
        while (item := self.reader.next()) is not None:
            chunk, self.progress.bytes_read = item
            if chunk is None:
                continue
            self._put(self.to_model, (sequence, prepare(chunk.rows, tasks, chunk.raws, why),
                                      chunk.errors, chunk.read))
            sequence += 1
        for _ in range(self.threads):
            self._put(self.to_model, _DONE)

    def score(self) -> None:
        while (work := self._get(self.to_model)) is not _DONE:
            sequence, prepared, refused, rows = work
            predictions = self.scorer.predict(prepared.texts, prepared.task_ids)
            self._put(self.to_writer, (sequence, prepared, refused, rows, predictions))
        self._put(self.to_writer, _DONE)

    def _in_order(self) -> Iterator[tuple[Prepared, list[RowError], int, Predictions]]:
        waiting: dict[int, Any] = {}
        following = 0
        running = self.threads
        while running:
            work = self._get(self.to_writer)
            if work is _DONE:
                running -= 1
                continue
            waiting[work[0]] = work[1:]
            while following in waiting:
                yield waiting.pop(following)
                following += 1

    def write(self) -> None:
        tasks = self.scorer.tasks
        with_scores = self.options.with_scores
        progress = self.progress
        order = self.file_order
        for prepared, refused, rows, predictions in self._in_order():
            block, scored, refused_by_model = scored_lines(prepared, predictions, tasks,
                                                           with_scores)
            errors = [*prepared.errors, *refused, *refused_by_model]
            if block:
                self.scores_out.write(block)
            if errors:
                errors.sort(key=lambda e: (order[e.source], e.line))  # input order within the batch
                self.errors_out.write(b"".join(json_line(e.to_dict()) + b"\n" for e in errors))
                progress.error_kinds.update(e.kind for e in errors)
            progress.scored += scored
            progress.errors += len(errors)
            progress.rows += rows

    def run(self, scores_out: IO[bytes], errors_out: IO[bytes],
            on_tick: Callable[[], None] | None) -> None:
        self.scores_out = scores_out
        self.errors_out = errors_out
        work = [self.read] + [self.score] * self.threads + [self.write]
        threads = [threading.Thread(target=self._guard(f), name=f"score-{f.__name__}",
                                    daemon=True) for f in work]
        for t in threads:
            t.start()
        try:
            while threads[-1].is_alive():
                threads[-1].join(0.2)
                if on_tick is not None:
                    on_tick()
        except BaseException:
            self.stop.set()
            raise
        finally:
            if self.stop.is_set():
                self.reader.close()  # the reading thread may wait on it
            for t in threads:
                t.join()
        if self.failure is not None:
            raise self.failure


def _temporary(path: str) -> str:
    return f"{path}.tmp-{os.getpid()}"


def _score_to(outputs: Sequence[str], pipeline: _Pipeline,
              on_start: Callable[[Progress], None] | None,
              on_tick: Callable[[], None] | None) -> None:
    """Run the pipeline into temporary files, renamed to ``outputs`` once it is done."""
    temporary = [_temporary(p) for p in outputs]
    # A thread that gets its TensorFlow call back waits for the GIL up to the switch interval
    # while another thread runs Python; 5 ms by default, enough to leave a core idle.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(_SWITCH_INTERVAL)
    try:
        with _fs.open_write(temporary[0]) as scores_out, \
                _fs.open_write(temporary[1]) as errors_out:
            if on_start is not None:
                on_start(pipeline.progress)
            pipeline.run(scores_out, errors_out, on_tick)
        for tmp, final in zip(temporary, outputs):
            _fs.rename(tmp, final)
    finally:
        sys.setswitchinterval(switch_interval)
        for tmp in temporary:
            _fs.remove(tmp)


def default_threads() -> int:
    """Model calls in flight: one per core, up to 8 (past that, TensorFlow's threads share out
    the cores within each call: ``op_threads_for``)."""
    return min(cores(), 8)


def run_in_process(options: ScoreOptions, *, scorer: Scorer | None = None,
                   threads: int | None = None,
                   on_start: Callable[[Progress], None] | None = None,
                   on_tick: Callable[[], None] | None = None) -> Summary:
    """Score every row of ``options.inputs`` in this process; return what was done.

    ``threads`` model calls run at once (default: one per core); a model loaded here gets the
    cores shared out among them as TensorFlow's threads per op.

    The output files are written under temporary names and renamed when the job is complete,
    so an interrupted job leaves no file that looks finished.
    """
    files = match_inputs(options)
    outputs = output_paths(options.output)
    check_outputs_free(outputs, options.overwrite)
    started = time.perf_counter()
    reader = ChunkReader(files, options)  # starts reading while the model loads
    try:
        threads = threads or default_threads()
        if scorer is None:
            scorer = Scorer(locate_model(options.model).path, op_threads=op_threads_for(threads))
        loaded = time.perf_counter()
        total = None if STDIN in files else sum(_fs.size(f) for f in files)
        progress = Progress(total_bytes=total)
        pipeline = _Pipeline(options, scorer, reader, files, progress, threads)
        _score_to(outputs, pipeline, on_start, on_tick)
    finally:
        reader.close()
    return Summary(runner="in-process", model=scorer.path, rows=progress.rows,
                   scored=progress.scored, errors=progress.errors,
                   seconds=time.perf_counter() - loaded, load_seconds=loaded - started,
                   error_kinds=progress.error_kinds,
                   outputs=outputs)
