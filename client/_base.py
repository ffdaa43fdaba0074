"""The public methods, written once for the sync clients and once for the async ones; the
transports supply one request each (``_predict_once`` and friends)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from types import TracebackType
from typing import Any, Generic, TypeVar

from . import _retry
from ._core import (
    Options,
    Prepared,
    Row,
    TaskArg,
    TaskRef,
    as_task_refs,
    as_texts,
    build_predictions,
    check_rows,
    example_errors,
    knows_ids,
    removal_messages,
    resolve_refs,
    split,
    unknown_names_error,
)
from ._errors import HeadswitchError
from ._retry import Deadline, RetryPolicy, as_policy
from ._types import ModelMetadata, ModelStatus, Prediction, TaskInfo, TaskList

P = TypeVar("P")
T = TypeVar("T")
C = TypeVar("C", bound="SyncClient[Any]")
A = TypeVar("A", bound="AsyncClient[Any]")


class _Unset:
    def __repr__(self) -> str:
        return "<the client's default>"


UNSET: Any = _Unset()
DeadlineArg = float | None | _Unset


def client_options(
    model: str,
    version: int | None,
    version_label: str | None,
    signature: str,
    tasks_signature: str,
    timeout: float | None,
    deadline: float | None,
    retries: int | RetryPolicy,
    max_request_bytes: int | None,
    max_batch_size: int | None,
) -> Options:
    """The :class:`Options` of a client's constructor arguments (``retries``: a count or a
    policy)."""
    return Options(model, version, version_label, signature, tasks_signature, timeout, deadline,
                   as_policy(retries), max_request_bytes, max_batch_size)


class _Base(Generic[P]):
    _transport: str = "client"

    def __init__(self, options: Options, tasks: Iterable[TaskInfo] | None) -> None:
        self._options = options
        self._catalogue: TaskList | None = None if tasks is None else TaskList(tasks)

    @property
    def model(self) -> str:
        return self._options.model

    @property
    def options(self) -> Options:
        return self._options

    def _deadline(self, deadline: DeadlineArg) -> Deadline:
        return Deadline(self._options.deadline if isinstance(deadline, _Unset) else deadline)

    def _prepare(self, texts: list[str], ids: list[int]) -> Prepared[P]:
        raise NotImplementedError

    def _plan(self, texts: Iterable[str], task: TaskArg) -> tuple[list[str], list[TaskRef]]:
        items = as_texts(texts)
        return items, as_task_refs(task, len(items))

    def _checked(self, part: list[Row], start: int, stop: int, refs: list[TaskRef]
                 ) -> list[Row]:
        """``part``, the answer for texts ``start:stop``, once it has one row a text and no
        example the server refused."""
        check_rows(part, stop - start, self._transport)
        error = example_errors(part, refs, self._transport, offset=start)
        if error is not None:
            raise error
        return part

    def _unknown_ids(self, catalogue: TaskList, ids: Sequence[int]) -> HeadswitchError:
        missing = sorted({i for i in ids if i not in catalogue.by_id})
        return HeadswitchError(
            "INTERNAL",
            f"the server accepted task ids {missing} but its task list does not have them",
            transport="rest" if self._transport == "rest" else "grpc",
            retryable=False,
        )


class SyncClient(_Base[P]):
    def __init__(self, options: Options, tasks: Iterable[TaskInfo] | None) -> None:
        super().__init__(options, tasks)
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- one request each

    def _predict_once(self, payload: P, timeout: float | None) -> list[Row]:
        raise NotImplementedError

    def _tasks_once(self, timeout: float | None) -> list[TaskInfo]:
        raise NotImplementedError

    def _names_once(self, names: list[str], timeout: float | None) -> list[Row]:
        raise NotImplementedError

    def _status_once(self, timeout: float | None) -> ModelStatus:
        raise NotImplementedError

    def _metadata_once(self, timeout: float | None) -> ModelMetadata:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- public

    def predict(
        self, texts: Iterable[str], task: TaskArg, *, deadline: DeadlineArg = UNSET
    ) -> list[Prediction]:
        """Predict each text with its task: ``task`` is a task id, a task name, or a sequence
        with one id or name per text. Returns one :class:`Prediction` per text, in order."""
        items, refs = self._plan(texts, task)
        if not items:
            return []
        limit = self._deadline(deadline)
        catalogue = self._catalogue or self._refresh(None, limit)
        ids, unknown = resolve_refs(catalogue, refs)
        if unknown:  # the served model may have changed since the list was read
            catalogue = self._refresh(catalogue, limit)
            ids, unknown = resolve_refs(catalogue, refs)
            if unknown:
                raise unknown_names_error(catalogue, unknown, self._removed(unknown, limit))
        rows: list[Row] = []
        for start, stop, payload in split(self._prepare(items, ids), self._options):
            part = self._call(partial(self._predict_once, payload), limit)
            rows.extend(self._checked(part, start, stop, refs))
        if not knows_ids(catalogue, ids):
            catalogue = self._refresh(catalogue, limit)
            if not knows_ids(catalogue, ids):
                raise self._unknown_ids(catalogue, ids)
        return build_predictions(items, ids, rows, catalogue)

    def tasks(self, *, deadline: DeadlineArg = UNSET) -> list[TaskInfo]:
        """The served model's tasks (read again, and remembered for name lookups)."""
        catalogue = TaskList(self._call(self._tasks_once, self._deadline(deadline)))
        self._catalogue = catalogue
        return list(catalogue)

    def status(self, *, deadline: DeadlineArg = UNSET) -> ModelStatus:
        return self._call(self._status_once, self._deadline(deadline))

    def metadata(self, *, deadline: DeadlineArg = UNSET) -> ModelMetadata:
        return self._call(self._metadata_once, self._deadline(deadline))

    # ---------------------------------------------------------------- helpers

    def _call(self, attempt: Callable[[float | None], T], deadline: Deadline) -> T:
        return _retry.call(attempt, self._options.retry, deadline, self._options.timeout)

    def _removed(self, unknown: list[tuple[int, str]], deadline: Deadline) -> dict[str, str]:
        """What the model says of names its task list lacks: a removed task's name answers
        "task N ('name') was removed in version V". Asked once, only when a request is refused."""
        names = sorted({name for _, name in unknown})
        try:
            rows = self._call(partial(self._names_once, names), deadline)
        except HeadswitchError:  # a model without by_name: the client's own message stands
            return {}
        return removal_messages(names, rows)

    def _refresh(self, stale: TaskList | None, deadline: Deadline) -> TaskList:
        with self._lock:  # one request however many threads need the list
            if self._catalogue is None or self._catalogue is stale:
                self._catalogue = TaskList(self._call(self._tasks_once, deadline))
            return self._catalogue

    def __enter__(self: C) -> C:  # noqa: PYI019
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient(_Base[P]):
    def __init__(self, options: Options, tasks: Iterable[TaskInfo] | None) -> None:
        super().__init__(options, tasks)
        self._lock: asyncio.Lock | None = None

    # ---------------------------------------------------------------- one request each

    async def _predict_once(self, payload: P, timeout: float | None) -> list[Row]:
        raise NotImplementedError

    async def _tasks_once(self, timeout: float | None) -> list[TaskInfo]:
        raise NotImplementedError

    async def _names_once(self, names: list[str], timeout: float | None) -> list[Row]:
        raise NotImplementedError

    async def _status_once(self, timeout: float | None) -> ModelStatus:
        raise NotImplementedError

    async def _metadata_once(self, timeout: float | None) -> ModelMetadata:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- public

    async def predict(
        self, texts: Iterable[str], task: TaskArg, *, deadline: DeadlineArg = UNSET
    ) -> list[Prediction]:
        """Predict each text with its task: ``task`` is a task id, a task name, or a sequence
        with one id or name per text. Returns one :class:`Prediction` per text, in order."""
        items, refs = self._plan(texts, task)
        if not items:
            return []
        limit = self._deadline(deadline)
        catalogue = self._catalogue or await self._refresh(None, limit)
        ids, unknown = resolve_refs(catalogue, refs)
        if unknown:
            catalogue = await self._refresh(catalogue, limit)
            ids, unknown = resolve_refs(catalogue, refs)
            if unknown:
                raise unknown_names_error(catalogue, unknown, await self._removed(unknown, limit))
        rows: list[Row] = []
        for start, stop, payload in split(self._prepare(items, ids), self._options):
            part = await self._call(partial(self._predict_once, payload), limit)
            rows.extend(self._checked(part, start, stop, refs))
        if not knows_ids(catalogue, ids):
            catalogue = await self._refresh(catalogue, limit)
            if not knows_ids(catalogue, ids):
                raise self._unknown_ids(catalogue, ids)
        return build_predictions(items, ids, rows, catalogue)

    async def tasks(self, *, deadline: DeadlineArg = UNSET) -> list[TaskInfo]:
        """The served model's tasks (read again, and remembered for name lookups)."""
        catalogue = TaskList(await self._call(self._tasks_once, self._deadline(deadline)))
        self._catalogue = catalogue
        return list(catalogue)

    async def status(self, *, deadline: DeadlineArg = UNSET) -> ModelStatus:
        return await self._call(self._status_once, self._deadline(deadline))

    async def metadata(self, *, deadline: DeadlineArg = UNSET) -> ModelMetadata:
        return await self._call(self._metadata_once, self._deadline(deadline))

    # ---------------------------------------------------------------- helpers

    async def _call(
        self, attempt: Callable[[float | None], Awaitable[T]], deadline: Deadline
    ) -> T:
        return await _retry.acall(attempt, self._options.retry, deadline, self._options.timeout)

    async def _removed(self, unknown: list[tuple[int, str]], deadline: Deadline
                       ) -> dict[str, str]:
        """What the model says of names its task list lacks (see SyncClient._removed)."""
        names = sorted({name for _, name in unknown})
        try:
            rows = await self._call(partial(self._names_once, names), deadline)
        except HeadswitchError:
            return {}
        return removal_messages(names, rows)

    async def _refresh(self, stale: TaskList | None, deadline: Deadline) -> TaskList:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one request however many tasks need the list
            if self._catalogue is None or self._catalogue is stale:
                self._catalogue = TaskList(await self._call(self._tasks_once, deadline))
            return self._catalogue

    async def __aenter__(self: A) -> A:  # noqa: PYI019
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
