"""Writing a result: one JSON line per record."""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - the "score" extra is missing; the CLI says so first
    orjson = None  # type: ignore[assignment]

__all__ = ["json_line"]


def json_line(record: dict[str, Any]) -> bytes:
    """One compact JSON line (no newline), UTF-8, non-ASCII kept as is; NaN is written null.
    Values orjson refuses (integers past 64 bits, lone surrogates from a ``\\ud800`` escape)
    are written by the standard library, escaped to ASCII: the line reads back the same."""
    try:
        return orjson.dumps(record)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(record, separators=(",", ":")).encode("ascii")
