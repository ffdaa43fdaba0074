"""Deadlines, and retries with exponential backoff and jitter (sync and async loops)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ._errors import HeadswitchError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Retry UNAVAILABLE (HTTP 503, connection errors) and RESOURCE_EXHAUSTED (HTTP 429), and
    a gRPC call the server CANCELLED (as it does to queued calls when it shuts down).

    Retry ``n`` (from 0) waits ``min(max_backoff, initial_backoff * multiplier**n)``, of which
    the fraction ``jitter`` is random; a server's ``Retry-After`` is honoured when longer.
    Other errors (INVALID_ARGUMENT, NOT_FOUND, DEADLINE_EXCEEDED, ...) are never retried.
    """

    max_retries: int = 3
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be >= 0 and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1], got {self.jitter}")

    def backoff(self, retry: int, retry_after: float | None = None) -> float:
        base = min(self.max_backoff, self.initial_backoff * self.multiplier**retry)
        delay = base * (1 - self.jitter * random.random())
        return max(delay, retry_after) if retry_after is not None else delay


def as_policy(retries: int | RetryPolicy) -> RetryPolicy:
    return retries if isinstance(retries, RetryPolicy) else RetryPolicy(max_retries=retries)


class Deadline:
    """The time one method call may take, every request and retry included."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._expires = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float | None:
        return None if self._expires is None else self._expires - time.monotonic()

    def attempt_timeout(self, timeout: float | None) -> float | None:
        """The timeout of the next request: ``timeout`` cut to what is left of the deadline."""
        left = self.remaining()
        if left is None:
            return timeout
        if left <= 0:
            raise HeadswitchError(
                "DEADLINE_EXCEEDED",
                f"the call's deadline of {self.seconds:g} s passed",
                retryable=False,
            )
        return left if timeout is None else min(timeout, left)


def _wait_after(
    error: HeadswitchError, retry: int, policy: RetryPolicy, deadline: Deadline
) -> float:
    """How long to wait before retrying after ``error``; raises when there is no retry."""
    error.attempts = retry + 1
    if not error.retryable or retry >= policy.max_retries:
        raise error
    delay = policy.backoff(retry, error.retry_after)
    left = deadline.remaining()
    if left is not None and delay >= left:
        expired = HeadswitchError(
            "DEADLINE_EXCEEDED",
            f"the call's deadline of {deadline.seconds:g} s passed while retrying; "
            f"last error: {error}",
            transport=error.transport,
            details=error.details,
            retryable=False,
        )
        expired.attempts = retry + 1
        raise expired from error
    return delay


def call(
    attempt: Callable[[float | None], T],
    policy: RetryPolicy,
    deadline: Deadline,
    timeout: float | None,
) -> T:
    retry = 0
    while True:
        try:
            return attempt(deadline.attempt_timeout(timeout))
        except HeadswitchError as error:
            delay = _wait_after(error, retry, policy, deadline)
        time.sleep(delay)
        retry += 1


async def acall(
    attempt: Callable[[float | None], Awaitable[T]],
    policy: RetryPolicy,
    deadline: Deadline,
    timeout: float | None,
) -> T:
    retry = 0
    while True:
        try:
            return await attempt(deadline.attempt_timeout(timeout))
        except HeadswitchError as error:
            delay = _wait_after(error, retry, policy, deadline)
        await asyncio.sleep(delay)
        retry += 1
