"""Split a batch into requests under a payload limit and a batch limit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from ._errors import HeadswitchError, client_error

P = TypeVar("P")

DEFAULT_MAX_REQUEST_BYTES = 1_500_000  # Vertex AI's request payload limit (1.5 MB)
DEFAULT_MAX_BATCH_SIZE = 256


def plan(
    sizes: Sequence[int], overhead: int, limit: int | None, max_items: int | None
) -> list[tuple[int, int]]:
    """Greedy ``(start, stop)`` ranges: each holds at most ``max_items`` items and, by the sizes
    given (an item's encoded size, its separator included), at most ``limit`` bytes."""
    ranges: list[tuple[int, int]] = []
    start, total = 0, overhead
    for i, size in enumerate(sizes):
        if limit is not None and overhead + size > limit:
            raise oversized(i, overhead + size, limit)
        full = max_items is not None and i - start >= max_items
        if i > start and (full or (limit is not None and total + size > limit)):
            ranges.append((start, i))
            start, total = i, overhead
        total += size
    if start < len(sizes):
        ranges.append((start, len(sizes)))
    return ranges


def encode_all(
    ranges: list[tuple[int, int]],
    encode: Callable[[int, int], tuple[P, int]],
    limit: int | None,
) -> list[tuple[int, int, P]]:
    """Encode each range; one whose real encoded size is over ``limit`` is halved until it fits
    (the sizes ``plan`` used may be estimates)."""
    out: list[tuple[int, int, P]] = []
    todo = list(reversed(ranges))
    while todo:
        start, stop = todo.pop()
        payload, size = encode(start, stop)
        if limit is not None and size > limit:
            if stop - start == 1:
                raise oversized(start, size, limit)
            middle = (start + stop) // 2
            todo.extend([(middle, stop), (start, middle)])
            continue
        out.append((start, stop, payload))
    return out


def oversized(index: int, size: int, limit: int) -> HeadswitchError:
    return client_error(
        f"text {index} is too large: a request holding it alone is {size:,} bytes, over the "
        f"{limit:,}-byte limit (max_request_bytes)",
        index=index,
        size=size,
        limit=limit,
    )
