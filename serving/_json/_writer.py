"""TF Serving's REST JSON output (``tensorflow_serving/util/json_tensor.cc``): responses, error
bodies and the debug strings its error messages quote, with rapidjson's ``PrettyWriter`` layout
(4-space indents, single-line arrays inside each row, floats printed by ``WriteDecimal``).
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import numpy as np

from .._errors import invalid_argument
from .._tensors import Array
from ._reader import JsonObject, to_bytes

ROW = "row"
COLUMNAR = "columnar"
_MAX_DEBUG_BYTES = 256  # kMaxJsonDebugStringBytes


class _Stop(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Writer (rapidjson PrettyWriter semantics)

_ESCAPE_RE = re.compile(rb'[\x00-\x1f"\\]')
_SHORT_ESCAPES = {
    0x08: b"\\b",
    0x09: b"\\t",
    0x0A: b"\\n",
    0x0C: b"\\f",
    0x0D: b"\\r",
    0x22: b'\\"',
    0x5C: b"\\\\",
}


def _escape(match: re.Match[bytes]) -> bytes:
    code = match.group()[0]
    short = _SHORT_ESCAPES.get(code)
    return short if short is not None else b"\\u00%02X" % code


def _quote(raw: bytes) -> bytes:
    return b'"' + _ESCAPE_RE.sub(_escape, raw) + b'"'


class JsonWriter:
    """Emits JSON exactly like rapidjson's ``PrettyWriter`` (indent 4 spaces)."""

    def __init__(self, limit: int | None = None) -> None:
        self._out = bytearray()
        self._stack: list[list[Any]] = []  # [in_array, value_count]
        self._limit = limit
        self.single_line_arrays = False

    def getvalue(self) -> bytes:
        return bytes(self._out)

    def _check(self) -> None:
        if self._limit is not None and len(self._out) >= self._limit:
            raise _Stop

    def _indent(self) -> None:
        self._out += b" " * (4 * len(self._stack))

    def _prefix(self) -> None:
        if not self._stack:
            return
        level = self._stack[-1]
        if level[0]:
            if level[1] > 0:
                self._out += b", " if self.single_line_arrays else b","
            if not self.single_line_arrays:
                self._out += b"\n"
                self._indent()
        else:
            if level[1] > 0:
                self._out += b",\n" if level[1] % 2 == 0 else b": "
            else:
                self._out += b"\n"
            if level[1] % 2 == 0:
                self._indent()
        level[1] += 1

    def raw(self, token: bytes) -> None:
        self._check()
        self._prefix()
        self._out += token

    def string(self, raw: bytes) -> None:
        self.raw(_quote(raw))

    key = string

    def start_object(self) -> None:
        self.raw(b"{")
        self._stack.append([False, 0])

    def end_object(self) -> None:
        self._end(b"}", one_line=False)

    def start_array(self) -> None:
        self.raw(b"[")
        self._stack.append([True, 0])

    def end_array(self) -> None:
        self._end(b"]", one_line=self.single_line_arrays)

    def _end(self, closer: bytes, *, one_line: bool) -> None:
        """Close the innermost object or array: on a line of its own, indented, unless it is
        empty or ``one_line``."""
        self._check()
        level = self._stack.pop()
        if level[1] and not one_line:
            self._out += b"\n"
            self._indent()
        self._out += closer

    def double(self, value: float) -> None:
        """``Writer::Double``: NaN and infinities are refused (after the separator is written),
        which ends ``Accept``."""
        self._check()
        if math.isnan(value) or math.isinf(value):
            self._prefix()
            raise _Stop
        self.raw(_rapidjson_double(value).encode())

    def document(self, value: Any) -> None:
        """Write a parsed JSON value (``rapidjson::Value::Accept``), iteratively."""
        stack: list[tuple[Any, int]] = [(value, -1)]
        while stack:
            item, index = stack.pop()
            if index >= 0:  # inside a container: write its next member or element
                is_object = isinstance(item, JsonObject)
                entries = item.members if is_object else item
                if index == len(entries):
                    (self.end_object if is_object else self.end_array)()
                    continue
                stack.append((item, index + 1))
                if is_object:
                    name, child = entries[index]
                    self.key(to_bytes(name))
                else:
                    child = entries[index]
                stack.append((child, -1))
            elif isinstance(item, JsonObject):
                self.start_object()
                stack.append((item, 0))
            elif isinstance(item, list):
                self.start_array()
                stack.append((item, 0))
            elif isinstance(item, str):
                self.string(to_bytes(item))
            elif item is None:
                self.raw(b"null")
            elif item is True:
                self.raw(b"true")
            elif item is False:
                self.raw(b"false")
            elif isinstance(item, int):
                self.raw(str(item).encode())
            else:
                self.double(float(item))


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _rapidjson_double(value: float) -> str:
    """rapidjson's ``Writer::Double`` for a finite value (shortest digits, then ``Prettify``)."""
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0.0"
    exact = Decimal(repr(abs(value))).normalize()
    _, digits_tuple, k = exact.as_tuple()
    assert isinstance(k, int)
    digits = "".join(str(d) for d in digits_tuple)
    length = len(digits)
    kk = length + k
    if 0 <= k and kk <= 21:
        text = digits + "0" * k + ".0"
    elif 0 < kk <= 21:
        text = digits[:kk] + "." + digits[kk:]
    elif -6 < kk <= 0:
        text = "0." + "0" * (-kk) + digits
    elif length == 1:
        text = f"{digits}e{kk - 1}"
    else:
        text = f"{digits[0]}.{digits[1:]}e{kk - 1}"
    return sign + text


def debug_string(value: Any) -> str:
    """``JsonValueToDebugString``: single-line arrays, cut off after 256 bytes."""
    writer = JsonWriter(limit=_MAX_DEBUG_BYTES)
    writer.single_line_arrays = True
    try:
        writer.document(value)
    except _Stop:
        pass
    return writer.getvalue().decode("utf-8", "replace")


def json_type(value: Any) -> str:
    """``JsonTypeString``."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, JsonObject):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def format_decimal(value: float, single_precision: bool) -> str:
    """``WriteDecimal``: 6 significant digits if that reads back exactly, else full precision;
    ``.0`` added to whole numbers; ``NaN`` / ``Infinity`` / ``-Infinity``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:.6g}"
    if single_precision:
        if np.float32(float(text)) != np.float32(value):
            text = f"{value:.9g}"
    elif float(text) != value:
        text = f"{value:.17g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


# --------------------------------------------------------------------------------------------
# Response


def _tokens(name: str, array: Array) -> list[Any]:
    """The flat values of an output as writer tokens (bytes, or a b64 marker tuple)."""
    flat = array.reshape(-1)
    kind = array.dtype
    if kind == np.float32:
        return [format_decimal(v, True).encode() for v in flat.tolist()]
    if kind == np.float64:
        return [format_decimal(v, False).encode() for v in flat.tolist()]
    if kind in (np.int32, np.int16, np.int8, np.uint8, np.int64, np.uint32, np.uint64):
        return [str(v).encode() for v in flat.tolist()]
    if kind == np.bool_:
        return [b"true" if v else b"false" for v in flat.tolist()]
    if kind.kind == "O":
        raw = [v if isinstance(v, bytes) else str(v).encode() for v in flat.tolist()]
        if name.endswith("_bytes"):
            return [("b64", base64.b64encode(v)) for v in raw]
        return [_quote(v) for v in raw]
    from ._tensors import dtype_enum_of, dtype_name

    raise invalid_argument(
        f"Failed to write JSON value for tensor type: {dtype_name(dtype_enum_of(array))}"
    )


def _write_token(writer: JsonWriter, token: Any) -> None:
    if isinstance(token, tuple):
        writer.start_object()
        writer.key(b"b64")
        writer.string(token[1])
        writer.end_object()
    else:
        writer.raw(token)


def _write_values(
    writer: JsonWriter, shape: tuple[int, ...], tokens: list[Any], dim: int, offset: list[int]
) -> None:
    """``AddTensorValues``."""
    if dim > len(shape) - 1:
        _write_token(writer, tokens[offset[0]])
        offset[0] += 1
        return
    writer.start_array()
    if dim == len(shape) - 1:
        for _ in range(shape[dim]):
            _write_token(writer, tokens[offset[0]])
            offset[0] += 1
    else:
        for _ in range(shape[dim]):
            _write_values(writer, shape, tokens, dim + 1, offset)
    writer.end_array()


def make_response(outputs: Mapping[str, Array], fmt: str) -> bytes:
    """``MakeJsonFromTensors``: ``{"predictions": ...}`` (row) or ``{"outputs": ...}``."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    writer = JsonWriter()
    objects = len(names) > 1
    if fmt == ROW:
        batch = -1
        for name in names:
            shape = outputs[name].shape
            if not shape:
                raise invalid_argument(f"Tensor name: {name} has no shape information ")
            if batch >= 0 and batch != shape[0]:
                raise invalid_argument(
                    f"Tensor name: {name} has inconsistent batch size: {shape[0]} "
                    f"expecting: {batch}"
                )
            batch = shape[0]
        tokens = {name: _tokens(name, outputs[name]) for name in names}
        offsets = {name: [0] for name in names}
        writer.start_object()
        writer.key(b"predictions")
        writer.start_array()
        for _ in range(batch):
            if objects:
                writer.start_object()
            writer.single_line_arrays = True
            for name in names:
                if objects:
                    writer.key(_utf8(name))
                _write_values(writer, outputs[name].shape, tokens[name], 1, offsets[name])
            writer.single_line_arrays = False
            if objects:
                writer.end_object()
        writer.end_array()
        writer.end_object()
    else:
        writer.start_object()
        writer.key(b"outputs")
        if objects:
            writer.start_object()
        for name in names:
            if objects:
                writer.key(_utf8(name))
            _write_values(writer, outputs[name].shape, _tokens(name, outputs[name]), 0, [0])
        if objects:
            writer.end_object()
        writer.end_object()
    return writer.getvalue()


def error_body(message: str) -> bytes:
    """``MakeJsonFromStatus``: ``{"error": "..."}``."""
    writer = JsonWriter()
    writer.start_object()
    writer.key(b"error")
    writer.string(_utf8(message))
    writer.end_object()
    return writer.getvalue()


def make_classification_response(classifications: list[list[tuple[bytes, float]]]) -> bytes:
    """``MakeJsonFromClassificationResult``: ``{"results": [[[label, score], ...], ...]}``."""
    if not classifications:
        raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
    writer = JsonWriter()
    writer.start_object()
    writer.key(b"results")
    writer.start_array()
    for classes in classifications:
        writer.single_line_arrays = True
        writer.start_array()
        for label, score in classes:
            writer.start_array()
            writer.string(label)
            writer.raw(format_decimal(score, True).encode())
            writer.end_array()
        writer.end_array()
        writer.single_line_arrays = False
    writer.end_array()
    writer.end_object()
    return writer.getvalue()


def make_regression_response(values: list[float]) -> bytes:
    """``MakeJsonFromRegressionResult``: ``{"results": [value, ...]}``."""
    if not values:
        raise invalid_argument("Cannot convert empty RegressionResults to JSON")
    writer = JsonWriter()
    writer.start_object()
    writer.key(b"results")
    writer.single_line_arrays = True
    writer.start_array()
    for value in values:
        writer.raw(format_decimal(value, True).encode())
    writer.end_array()
    writer.end_object()
    return writer.getvalue()
