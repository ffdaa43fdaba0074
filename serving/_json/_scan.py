"""What a JSON body would cost to read, found before it is read.

Reading a body builds a Python object per value, and TF Serving's rapidjson has no nesting limit
(the parser here follows it, iteratively). So a small body can cost much: millions of ``0`` or
``{}`` in 15 MiB, or millions of ``[``. :func:`check_structure` counts, outside strings, the
nesting depth and the values (numbers, strings, lists and objects) of the body with numpy, a
chunk at a time, and refuses a body deeper than any tensor needs or with more values than the
server's limit, before any object is made. A body with few brackets and fewer bytes than the
limit has values cannot exceed either and is not scanned.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .._errors import ServingError, invalid_argument
from .._limits import MAX_JSON_DEPTH, MAX_RANK, Limits

_CHUNK = 1 << 18  # numpy works on this much at a time (its temporaries: ~30 bytes a byte)
_QUOTE, _BACKSLASH = 0x22, 0x5C
_OPEN = np.zeros(256, np.int8)
_OPEN[[0x5B, 0x7B]] = 1  # [ {
_OPEN[[0x5D, 0x7D]] = -1  # ] }
_STRUCTURAL = np.zeros(256, np.bool_)
_STRUCTURAL[[0x5B, 0x7B, 0x5D, 0x7D, 0x2C]] = True  # [ { ] } ,


def too_deep(offset: int) -> ServingError:
    return invalid_argument(
        f"JSON Parse error: nesting deeper than {MAX_JSON_DEPTH} levels at offset: {offset}; "
        f"no request needs more (tensors of rank {MAX_RANK}, the most this server accepts, "
        f"nest {MAX_JSON_DEPTH} levels)"
    )


def measure(body: bytes) -> tuple[int, int]:
    """(deepest nesting, values) of a body, outside strings (for tests and benchmarks)."""
    scan = _Scan(Limits(max_values=2**62), max_depth=2**62)
    scan.run(body)
    return scan.deepest, scan.values


def check_structure(body: bytes, limits: Limits) -> None:
    """Refuse ``body`` if it nests deeper than ``MAX_JSON_DEPTH`` or holds more than
    ``limits.max_values`` values (a body that is not valid JSON may be refused here rather
    than by the parser, when it would have been refused for this anyway)."""
    opens = body.count(b"[") + body.count(b"{")
    if opens <= MAX_JSON_DEPTH and len(body) <= limits.max_values:
        return  # too few brackets to nest too deep, too few bytes for too many values
    _Scan(limits).run(body)


class _Scan:
    """The state carried from one chunk to the next."""

    def __init__(self, limits: Limits, max_depth: int = MAX_JSON_DEPTH) -> None:
        self.limits = limits
        self.max_depth = max_depth
        self.deepest = 0
        self.in_string = False
        self.escape_next = False  # the chunk ended inside a run of backslashes of odd length
        self.depth = 0
        self.values = 0
        self.last_structural = -1  # byte value of the last structural character seen
        self.last_position = -2  # and its offset in the body

    def run(self, body: bytes) -> None:
        data = np.frombuffer(body, np.uint8)
        for start in range(0, len(data), _CHUNK):
            self._chunk(data[start : start + _CHUNK], start)
            if self.values > self.limits.max_values:
                raise self.limits.values_refused("body holds")

    def _string_bounds(self, chunk: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
        """Offsets (in the chunk) of the quotes that open or close a string."""
        quotes = np.flatnonzero(chunk == _QUOTE)
        slashes = np.flatnonzero(chunk == _BACKSLASH)
        escaped: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        if len(slashes):
            # Runs of consecutive backslashes: the character after a run of odd length is
            # escaped (a run continued from the last chunk counts its carried parity).
            breaks = np.flatnonzero(np.diff(slashes) != 1) + 1
            starts = np.concatenate(([0], breaks))
            ends = np.concatenate((breaks, [len(slashes)]))
            lengths = ends - starts
            if self.escape_next and slashes[0] == 0:
                lengths[0] += 1
            after = slashes[ends - 1] + 1
            escaped = after[lengths % 2 == 1]
            carried = after[-1] == len(chunk) and lengths[-1] % 2 == 1
        else:
            carried = False
        if self.escape_next and (not len(slashes) or slashes[0] != 0):
            escaped = np.concatenate(([0], escaped))
        self.escape_next = bool(carried)
        if len(escaped) and len(quotes):
            quotes = quotes[~np.isin(quotes, escaped, assume_unique=True)]
        return quotes

    def _chunk(self, chunk: npt.NDArray[np.uint8], offset: int) -> None:
        bounds = self._string_bounds(chunk)
        positions = np.flatnonzero(_STRUCTURAL[chunk])
        if len(positions) == 0:
            if len(bounds) % 2:
                self.in_string = not self.in_string
            return
        before = np.searchsorted(bounds, positions)
        outside = (before % 2 == 0) if not self.in_string else (before % 2 == 1)
        positions = positions[outside]
        if len(bounds) % 2:
            self.in_string = not self.in_string
        if len(positions) == 0:
            return
        kinds = chunk[positions]
        steps = _OPEN[kinds].astype(np.int32)
        depths = self.depth + np.cumsum(steps, dtype=np.int64)
        self.deepest = max(self.deepest, int(depths.max()))
        if self.deepest > self.max_depth:
            first = int(np.argmax(depths > self.max_depth))
            raise too_deep(offset + int(positions[first]))
        self.depth = int(depths[-1])
        commas = int(np.count_nonzero(kinds == 0x2C))
        opened = int(np.count_nonzero(steps == 1))
        # An empty container ("[]", "{}") holds no value: it is an opening bracket right
        # before its closing one.
        closes_right_after = (steps[1:] == -1) & (steps[:-1] == 1) & (
            np.diff(positions) == 1)
        empty = int(np.count_nonzero(closes_right_after))
        if (self.last_structural in (0x5B, 0x7B) and self.last_position == offset - 1
                and positions[0] == 0 and steps[0] == -1):
            empty += 1
        self.last_structural = int(kinds[-1])
        self.last_position = offset + int(positions[-1])
        self.values += commas + opened - empty
