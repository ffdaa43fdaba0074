"""Dynamic batching as TF Serving's ``BatchingSession`` over a ``SharedBatchScheduler``.

One queue per tensor signature (the sorted input and output tensor names of a signature, i.e.
one per SignatureDef of each loaded version). Concurrent requests are concatenated along dim 0,
run as one ``Session::Run`` and the outputs are split back. Batch threads are shared by all
queues of the server and serve the queues round-robin; each queue has the batching options of
its servable (the server's, or a model's own ``batching_params.pbtxt``).

A task may carry a timeout (a REST request's ``--rest_api_timeout_in_ms``): a batch whose tasks
all waited longer than theirs fails with RESOURCE_EXHAUSTED, as TF Serving's batcher does, and
a batch of tasks that all have one runs with the longest as its session timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from ._config import BatchingOptions
from ._errors import ServingError, failed_precondition, invalid_argument, unavailable
from ._metrics import Metrics
from ._servable import Feeds, Servable
from ._tensors import Array

_log = logging.getLogger(__name__)

Signature = tuple[tuple[str, ...], tuple[str, ...]]


class _Task:
    def __init__(
        self, feeds: Feeds, fetches: list[str], size: int, timeout_ms: int | None = None
    ) -> None:
        self.feeds = feeds
        self.fetches = fetches
        self.size = size
        self.timeout_ms = timeout_ms if timeout_ms and timeout_ms > 0 else None
        self.enqueued = time.monotonic()
        self.outputs: list[Array] | None = None
        self.error: ServingError | None = None
        self._done = threading.Event()
        self._parent: _SplitTask | None = None
        self.index = 0

    def finish(self) -> None:
        if self._parent is not None:
            self._parent.part_done()
        else:
            self._done.set()

    def wait(self) -> list[Array]:
        self._done.wait()
        if self.error is not None:
            raise self.error
        assert self.outputs is not None
        return self.outputs


class _SplitTask:
    """A task larger than one batch, cut into parts (``enable_large_batch_splitting``)."""

    def __init__(self, task: _Task, sizes: list[int]) -> None:
        self.task = task
        self.parts: list[_Task] = []
        self._remaining = len(sizes)
        self._lock = threading.Lock()
        start = 0
        for index, size in enumerate(sizes):
            feeds = [(name, value[start : start + size]) for name, value in task.feeds]
            part = _Task(feeds, task.fetches, size, task.timeout_ms)
            part.enqueued = task.enqueued
            part._parent = self
            part.index = index
            self.parts.append(part)
            start += size

    def part_done(self) -> None:
        with self._lock:
            self._remaining -= 1
            if self._remaining:
                return
        errors = [p.error for p in self.parts if p.error is not None]
        if errors:
            self.task.error = errors[0]
        else:
            outputs = [p.outputs or [] for p in self.parts]
            self.task.outputs = [
                np.concatenate([o[i] for o in outputs], axis=0)
                for i in range(len(self.task.fetches))
            ]
        self.task.finish()


class _Batch:
    def __init__(self) -> None:
        self.tasks: list[_Task] = []
        self.size = 0

    def add(self, task: _Task) -> None:
        self.tasks.append(task)
        self.size += task.size


class _Queue:
    def __init__(
        self, signature: Signature, session: BatchingSession, options: BatchingOptions
    ) -> None:
        self.signature = signature
        self.session = session
        self.options = options
        self.batches: deque[_Batch] = deque([_Batch()])
        self.open_start = 0.0
        self.closed = False
        self.processing = 0

    def empty(self) -> bool:
        return self.processing == 0 and len(self.batches) == 1 and not self.batches[0].tasks

    @property
    def timeout(self) -> float:
        return self.options.batch_timeout_micros / 1e6

    def open_deadline(self) -> float | None:
        if len(self.batches) == 1 and self.batches[0].tasks:
            return self.open_start + self.timeout
        return None

    def take(self, now: float) -> _Batch | None:
        limit, timeout = self.options.execution_batch_size, self.timeout
        if len(self.batches) == 1:
            tail = self.batches[0]
            if tail.tasks and (
                self.closed or tail.size >= limit or now >= self.open_start + timeout
            ):
                self.batches.append(_Batch())
        if len(self.batches) >= 2:
            return self.batches.popleft()
        return None


class BatchScheduler:
    """``SharedBatchScheduler``: batch threads shared by every queue, round-robin. ``options``
    gives the thread count and name; each queue has its own batching options."""

    def __init__(self, options: BatchingOptions, metrics: Metrics) -> None:
        self.options = options
        self.metrics = metrics
        self._cond = threading.Condition()
        self._queues: list[_Queue] = []
        self._next = 0
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._loop, name=f"{options.thread_pool_name}_{i}", daemon=True)
            for i in range(options.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def add_queue(
        self, signature: Signature, session: BatchingSession, options: BatchingOptions
    ) -> _Queue:
        queue = _Queue(signature, session, options)
        with self._cond:
            self._queues.append(queue)
        return queue

    def remove_queue(self, queue: _Queue) -> None:
        """Close the queue, wait until its tasks are processed, then drop it."""
        with self._cond:
            queue.closed = True
            self._cond.notify_all()
            while not queue.empty():
                self._cond.wait()
            if queue in self._queues:
                self._queues.remove(queue)

    def schedule(self, queue: _Queue, task: _Task) -> None:
        """``Queue::Schedule`` with TF's size and capacity checks."""
        options = queue.options
        if task.size > options.max_batch_size:
            raise invalid_argument(
                f"Task size {task.size} is larger than maximum input batch size "
                f"{options.max_batch_size}"
            )
        limit = options.execution_batch_size
        with self._cond:
            if queue.closed:
                raise unavailable(
                    "The batch scheduling queue to which this task was submitted is closed"
                )
            tail = queue.batches[-1]
            if options.enable_large_batch_splitting:
                capacity = (options.max_enqueued_batches - len(queue.batches)) * limit + (
                    limit - tail.size
                )
                if task.size > capacity:
                    raise unavailable(
                        "The batch scheduling queue to which this task was submitted is full; "
                        f"task size is {task.size} but scheduling capacity is only {capacity} "
                        f"(num_enqueued_batches={len(queue.batches)}, max_enqueued_batches="
                        f"{options.max_enqueued_batches}, open_batch_size={tail.size}, "
                        f"max_execution_batch_size={limit})"
                    )
                parts = [task]
                if task.size > limit - tail.size:
                    parts = _SplitTask(
                        task, _split_sizes(task.size, limit - tail.size, limit)
                    ).parts
                for part in parts:
                    if queue.batches[-1].size + part.size > limit:
                        queue.batches.append(_Batch())
                    self._add(queue, part)
            else:
                if tail.size + task.size > options.max_batch_size:
                    if len(queue.batches) >= options.max_enqueued_batches:
                        raise unavailable(
                            "The batch scheduling queue to which this task was submitted is "
                            f"full; currently {len(queue.batches)} batches enqueued and "
                            f"max_enqueued_batches is {options.max_enqueued_batches}"
                        )
                    queue.batches.append(_Batch())
                self._add(queue, task)
            self._cond.notify_all()

    def _add(self, queue: _Queue, task: _Task) -> None:
        tail = queue.batches[-1]
        if not tail.tasks:
            queue.open_start = time.monotonic()
        tail.add(task)

    def _pick(self, now: float) -> tuple[_Queue, _Batch] | None:
        count = len(self._queues)
        for i in range(count):
            queue = self._queues[(self._next + i) % count]
            batch = queue.take(now)
            if batch is not None:
                self._next = (self._next + i + 1) % max(count, 1)
                return queue, batch
        return None

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    picked = self._pick(now)
                    if picked is not None:
                        break
                    if self._stopping and all(q.empty() for q in self._queues):
                        return
                    deadlines = [d for q in self._queues if (d := q.open_deadline()) is not None]
                    wait = max(min(deadlines) - now, 0.0005) if deadlines else None
                    self._cond.wait(wait)
                queue, batch = picked
                queue.processing += 1
            try:
                queue.session.process(queue.signature, batch.tasks)
            except Exception:  # noqa: BLE001 - never let a batch thread die
                _log.exception("batch processing failed")
            finally:
                with self._cond:
                    queue.processing -= 1
                    self._cond.notify_all()

    def shutdown(self) -> None:
        with self._cond:
            self._stopping = True
            for queue in self._queues:
                queue.closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()


def _split_sizes(size: int, open_slot: int, limit: int) -> list[int]:
    """``InputSplitMetadata``: fill the open batch first, then whole batches, then the rest."""
    sizes: list[int] = []
    if open_slot > 0:
        first = min(open_slot, size)
        sizes.append(first)
        size -= first
    while size > 0:
        sizes.append(min(limit, size))
        size -= limit
    return sizes


def _round_to_allowed(allowed: tuple[int, ...], size: int) -> int:
    for candidate in allowed:
        if candidate >= size:
            return candidate
    return size


def batch_size_of(feeds: Feeds) -> int:
    """``ComputeTensorBatchSize``."""
    if not feeds:
        raise invalid_argument("Batching Run() must have at least one input tensor")
    size = -1
    for _, value in feeds:
        if value.ndim == 0:
            raise invalid_argument("Batching Run() input tensors must have at least one dimension")
        if size >= 0 and value.shape[0] != size:
            raise invalid_argument(
                "Batching Run() input tensors must have equal 0th-dimension size"
            )
        size = int(value.shape[0])
    return size


class BatchingSession:
    """Wraps one servable's session: ``run`` enqueues and waits for the batch result."""

    def __init__(
        self, scheduler: BatchScheduler, servable: Servable, options: BatchingOptions | None = None
    ) -> None:
        self.scheduler = scheduler
        self.servable = servable
        self.options = options or scheduler.options
        self._queues: dict[Signature, _Queue] = {}
        self._lock = threading.Lock()
        for signature in servable.signature_defs.values():
            if signature.inputs:
                key = (
                    tuple(sorted({i.name for i in signature.inputs.values()})),
                    tuple(sorted({o.name for o in signature.outputs.values()})),
                )
                if key not in self._queues:
                    self._queues[key] = scheduler.add_queue(key, self, self.options)

    def _queue(self, key: Signature) -> _Queue:
        queue = self._queues.get(key)
        if queue is None:
            with self._lock:
                queue = self._queues.get(key)
                if queue is None:
                    queue = self._queues[key] = self.scheduler.add_queue(key, self, self.options)
        return queue

    def run(
        self, feeds: Feeds, fetches: list[str], timeout_ms: int | None = None
    ) -> list[Array]:
        ordered = sorted(feeds, key=lambda item: item[0])
        key = (tuple(name for name, _ in ordered), tuple(sorted(set(fetches))))
        size = batch_size_of(ordered)
        for _ in ordered:
            self.scheduler.metrics.input_batch_size.observe(size)
        task = _Task(ordered, fetches, size, timeout_ms)
        self.scheduler.schedule(self._queue(key), task)
        return task.wait()

    def process(self, signature: Signature, tasks: list[_Task]) -> None:
        """``BatchingSession::ProcessBatch``: merge, pad, run once, split."""
        metrics = self.scheduler.metrics
        try:
            now = time.monotonic()
            timeouts = [t.timeout_ms for t in tasks]
            if None not in timeouts and all(
                now - t.enqueued >= (t.timeout_ms or 0) / 1000 for t in tasks
            ):
                raise ServingError(
                    _code("RESOURCE_EXHAUSTED"),
                    "Run() timeout exceeded while waiting in batching queue",
                )
            # One of the two session callables per signature: no timeout if a task has
            # none, else the longest (TF Serving takes the latest deadline).
            timeout_ms = None if None in timeouts else max(t or 0 for t in timeouts)
            size = sum(t.size for t in tasks)
            padded = _round_to_allowed(self.options.allowed_batch_sizes, size)
            padding = padded - size
            metrics.padding_size.labels(str(padded)).observe(padding)
            metrics.processed_batch_size.observe(padded)
            merged: Feeds = []
            for index, name in enumerate(signature[0]):
                parts = [t.feeds[index][1] for t in tasks]
                reference = parts[0].shape[1:]
                for part in parts[1:]:
                    if part.shape[1:] != reference:
                        raise failed_precondition(
                            f"Tensors with name '{name}' from different tasks have different "
                            "shapes and padding is turned off. Set pad_variable_length_inputs "
                            "to true, or ensure that all tensors with the same name have equal "
                            "dimensions starting with the first dim."
                        )
                if padding:
                    rows = next((p for p in reversed(parts) if p.shape[0]), parts[-1])
                    parts.append(np.repeat(rows[:1], padding, axis=0))
                merged.append((name, np.concatenate(parts, axis=0)))
            try:
                combined = self.servable.run_session(merged, list(signature[1]), timeout_ms)
            finally:
                metrics.wrapped_run_count.inc()
            split: dict[str, list[Array]] = {}
            bounds = np.cumsum([t.size for t in tasks])[:-1]
            for name, tensor in zip(signature[1], combined):
                if tensor.ndim == 0:
                    raise failed_precondition("Batched output tensor has 0 dimensions")
                if tensor.shape[0] != size + padding:
                    raise failed_precondition(
                        "Batched output tensor's 0th dimension does not equal the sum of the "
                        "0th dimension sizes of the input tensors"
                    )
                split[name] = np.split(tensor[:size], bounds, axis=0)
            for index, task in enumerate(tasks):
                task.outputs = [split[name][index] for name in task.fetches]
        except ServingError as exc:
            for task in tasks:
                task.error = exc.with_traceback(None)  # no frame (and its tensors) kept
        except Exception as exc:  # noqa: BLE001
            error = ServingError(_code("INTERNAL"), f"{type(exc).__name__}: {exc}")
            for task in tasks:
                task.error = error
        finally:
            for task in tasks:
                task.finish()

    def close(self) -> None:
        for queue in list(self._queues.values()):
            self.scheduler.remove_queue(queue)


def _code(name: str) -> Any:
    import grpc

    return grpc.StatusCode[name]
