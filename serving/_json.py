"""TF Serving's REST JSON: request parsing into tensors and response writing.

This follows ``tensorflow_serving/util/json_tensor.cc``: the same checks in the same order with
the same messages, and the same output layout (rapidjson's ``PrettyWriter`` with 4-space indents,
single-line arrays inside each row, floats printed in the shortest form that reads back).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import numpy as np

from ._errors import ServingError, invalid_argument, unimplemented
from ._tensors import Array

ROW = "row"
COLUMNAR = "columnar"
_MAX_DEBUG_BYTES = 256


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
        self._check()
        level = self._stack.pop()
        if level[1]:
            self._out += b"\n"
            self._indent()
        self._out += b"}"

    def start_array(self) -> None:
        self.raw(b"[")
        self._stack.append([True, 0])

    def end_array(self) -> None:
        self._check()
        level = self._stack.pop()
        if level[1] and not self.single_line_arrays:
            self._out += b"\n"
            self._indent()
        self._out += b"]"

    def document(self, value: Any) -> None:
        """Write a parsed JSON value (``rapidjson::Value::Accept``)."""
        if isinstance(value, dict):
            self.start_object()
            for k, v in value.items():
                self.key(_utf8(k))
                self.document(v)
            self.end_object()
        elif isinstance(value, list):
            self.start_array()
            for v in value:
                self.document(v)
            self.end_array()
        elif isinstance(value, str):
            self.string(_utf8(value))
        elif value is None:
            self.raw(b"null")
        elif value is True:
            self.raw(b"true")
        elif value is False:
            self.raw(b"false")
        elif isinstance(value, int):
            self.raw(str(value).encode())
        else:
            self.raw(_rapidjson_double(float(value)).encode())


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _rapidjson_double(value: float) -> str:
    """rapidjson's ``Writer::Double`` (Grisu shortest digits, then ``Prettify``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
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
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
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
# Parsing

_PARSE_MESSAGES = {
    "Expecting value": "Invalid value.",
    "Expecting property name enclosed in double quotes": "Missing a name for object member.",
    "Expecting ':' delimiter": "Missing a colon after a name of object member.",
    "Unterminated string starting at": "Missing a closing quotation mark in string.",
    "Invalid control character at": "Invalid encoding in string.",
    "Invalid \\escape": "Invalid escape character in string.",
    "Invalid \\uXXXX escape": "Incorrect hex digit after \\u escape in string.",
    "Illegal trailing comma before end of object": "Missing a name for object member.",
    "Illegal trailing comma before end of array": "Invalid value.",
}


def _innermost_container(text: str, pos: int) -> str:
    stack: list[str] = []
    in_string = escaped = False
    for ch in text[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            stack.append(ch)
        elif ch in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def _parse_error(message: str, offset: int) -> ServingError:
    return invalid_argument(f"JSON Parse error: {message} at offset: {offset}")


def parse_document(body: bytes) -> dict[str, Any]:
    """``ParseJson``: the top-level value must be an object; trailing bytes are ignored."""
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _parse_error("Invalid encoding in string.", exc.start) from exc
    start = len(text) - len(text.lstrip(" \t\n\r"))
    if start == len(text):
        raise _parse_error("The document is empty.", len(body))
    try:
        document, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as exc:
        message = _PARSE_MESSAGES.get(exc.msg)
        if message is None:
            if exc.msg == "Expecting ',' delimiter":
                message = (
                    "Missing a comma or '}' after an object member."
                    if _innermost_container(text, exc.pos) == "{"
                    else "Missing a comma or ']' after an array element."
                )
            else:
                message = "Unspecific syntax error."
        raise _parse_error(message, len(text[: exc.pos].encode("utf-8"))) from exc
    except RecursionError as exc:
        raise _parse_error("Unspecific syntax error.", 0) from exc
    if not isinstance(document, dict):
        raise invalid_argument(f"JSON Value: {debug_string(document)} Is not object")
    return document


def read_signature_name(document: Mapping[str, Any]) -> str:
    """``FillSignature``: the optional ``signature_name`` must be a string."""
    if "signature_name" not in document:
        return ""
    value = document["signature_name"]
    if not isinstance(value, str):
        raise invalid_argument(
            f"JSON Value: {debug_string(document)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value < high


_INT32 = (-(2**31), 2**31)
_INT64 = (-(2**63), 2**63)
_UINT32 = (0, 2**32)
_UINT64 = (0, 2**64)

# dtype name -> (check, numpy dtype of the values as collected)
_ACCEPT: dict[str, tuple[Callable[[Any], bool], Any]] = {
    "float": (_is_number, np.float64),
    "double": (_is_number, np.float64),
    "int32": (lambda v: _is_int_in(v, *_INT32), np.int64),
    "int16": (lambda v: _is_int_in(v, *_INT32), np.int64),
    "int8": (lambda v: _is_int_in(v, *_INT32), np.int64),
    "uint8": (lambda v: _is_int_in(v, *_INT32), np.int64),
    "string": (lambda v: isinstance(v, str), object),
    "int64": (lambda v: _is_int_in(v, *_INT64), np.int64),
    "bool": (lambda v: isinstance(v, bool), np.bool_),
    "uint32": (lambda v: _is_int_in(v, *_UINT32), np.uint64),
    "uint64": (lambda v: _is_int_in(v, *_UINT64), np.uint64),
}
_TARGET = {
    "float": np.float32,
    "double": np.float64,
    "int32": np.int32,
    "int16": np.int16,
    "int8": np.int8,
    "uint8": np.uint8,
    "int64": np.int64,
    "bool": np.bool_,
    "uint32": np.uint32,
    "uint64": np.uint64,
}


def _type_error(value: Any, dtype: str) -> ServingError:
    return invalid_argument(
        f"JSON Value: {debug_string(value)} Type: {json_type(value)} "
        f"is not of expected type: {dtype}"
    )


def _is_b64_object(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _decode_b64(value: Any) -> bytes:
    if not _is_b64_object(value):
        raise invalid_argument(
            f"JSON Value: {debug_string(value)} not formatted correctly for base64 data"
        )
    text = value["b64"]
    stripped = text.rstrip("=")
    if len(stripped) % 4 == 1 or len(text) - len(stripped) > 2:
        raise invalid_argument("Unable to base64 decode")
    try:
        return base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid_argument("Unable to base64 decode") from exc


def _add_value(value: Any, dtype: str, out: list[Any]) -> None:
    """``AddValueToTensor`` (plus the b64 object case of ``FillTensorProto``)."""
    if isinstance(value, dict):
        if dtype == "string":
            out.append(_decode_b64(value))
            return
        raise _type_error(value, dtype)
    accept = _ACCEPT.get(dtype)
    if accept is None:
        raise unimplemented(f"Conversion of JSON Value: {debug_string(value)} to type: {dtype}")
    if not accept[0](value):
        raise _type_error(value, dtype)
    out.append(_utf8(value) if dtype == "string" else value)


def _dense_shape(value: Any) -> list[int]:
    """``GetDenseTensorShape``: sizes along the first element of each nested list."""
    shape: list[int] = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: Any, level: int, shape: list[int], dtype: str, out: list[Any]) -> None:
    """``FillTensorProto``."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid_argument(
                f"JSON Value: {debug_string(value)} found at incorrect level: {level + 1} "
                f"in the JSON DOM. Expected at level: {rank}"
            )
        _add_value(value, dtype, out)
        return
    if level >= rank:
        raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {shape[level]}"
        )
    for item in value:
        _fill(item, level + 1, shape, dtype, out)


def _to_array(values: list[Any], dtype: str, shape: list[int]) -> Array:
    if dtype == "string":
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(shape)
    collected = np.array(values, dtype=_ACCEPT[dtype][1]) if values else np.zeros(0)
    return collected.astype(_TARGET[dtype]).reshape(shape)


def _shape_string(shape: list[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


class _Item:
    def __init__(self, dtype: str) -> None:
        self.dtype = dtype
        self.values: list[Any] = []
        self.shape: list[int] | None = None
        self.size = -1


def _add_instance_item(
    value: Any, name: str, dtypes: Mapping[str, str], items: dict[str, _Item]
) -> None:
    """``AddInstanceItem``."""
    if name not in dtypes:
        raise invalid_argument(f"JSON object: does not have named input: {name}")
    item = items.setdefault(name, _Item(dtypes[name]))
    shape = _dense_shape(value)
    values: list[Any] = []
    _fill(value, 0, shape, item.dtype, values)
    item.values.extend(values)
    if item.shape is None:
        item.size, item.shape = len(values), shape
    elif item.size != len(values):
        raise invalid_argument(f"Expecting tensor size: {item.size} but got: {len(values)}")
    elif item.shape != shape:
        raise invalid_argument(
            f"Expecting shape {_shape_string(item.shape)} but got: {_shape_string(shape)}"
        )


def _is_element_object(value: Any) -> bool:
    return isinstance(value, dict) and not _is_b64_object(value)


def _from_instances(instances: list[Any], dtypes: Mapping[str, str]) -> dict[str, Array]:
    """``FillTensorMapFromInstancesList``."""
    if not isinstance(instances[0], dict) and len(dtypes) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map"
        )
    objects = _is_element_object(instances[0])
    input_names = sorted(dtypes)
    items: dict[str, _Item] = {}
    for index, element in enumerate(instances):
        if objects:
            if not _is_element_object(element):
                raise invalid_argument(
                    f"Expecting object but got list at item {index} of input list"
                )
            for name, value in element.items():
                try:
                    _add_instance_item(value, name, dtypes, items)
                except ServingError as exc:
                    raise invalid_argument(
                        f"Failed to process element: {index} key: {name} of 'instances' list. "
                        f"Error: {exc.to_string()}"
                    ) from exc
            if sorted(element) != input_names:
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{debug_string(element)} keys must be equal to: {','.join(input_names)}"
                )
        else:
            if _is_element_object(element):
                raise invalid_argument(
                    f"Expecting value/list but got object at item {index} of input list"
                )
            try:
                _add_instance_item(element, input_names[0], dtypes, items)
            except ServingError as exc:
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. "
                    f"Error: {exc.to_string()}"
                ) from exc
    count = len(instances)
    return {
        name: _to_array(item.values, item.dtype, [count, *(item.shape or [])])
        for name, item in items.items()
    }


def _from_inputs(inputs: Any, dtypes: Mapping[str, str]) -> dict[str, Array]:
    """``FillTensorMapFromInputsMap``: extra keys in the object are ignored, as upstream."""
    if not isinstance(inputs, dict) or _is_b64_object(inputs):
        if len(dtypes) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map"
            )
        name = next(iter(dtypes))
        return {name: _column(inputs, dtypes[name])}
    result: dict[str, Array] = {}
    for name in sorted(dtypes):
        if name not in inputs:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        result[name] = _column(inputs[name], dtypes[name])
    return result


def _column(value: Any, dtype: str) -> Array:
    shape = _dense_shape(value)
    values: list[Any] = []
    _fill(value, 0, shape, dtype, values)
    return _to_array(values, dtype, shape)


def fill_inputs(
    document: Mapping[str, Any], dtypes: Mapping[str, str]
) -> tuple[str, dict[str, Array]]:
    """``FillPredictRequestFromJson`` after the signature lookup: (format, inputs by alias)."""
    has_instances = "instances" in document
    has_inputs = "inputs" in document
    if has_instances and has_inputs:
        raise invalid_argument(
            f"JSON Value: {debug_string(document)} Not formatted correctly expecting only one "
            "of 'inputs' or 'instances' keys to exist "
        )
    if has_instances:
        instances = document["instances"]
        if not isinstance(instances, list):
            raise invalid_argument(
                f"JSON Value: {debug_string(document)} Expecting 'instances' to be an list/array"
            )
        if not instances:
            raise invalid_argument(
                f"JSON Value: {debug_string(document)} No values in 'instances' array"
            )
        return ROW, _from_instances(instances, dtypes)
    if has_inputs:
        return COLUMNAR, _from_inputs(document["inputs"], dtypes)
    raise invalid_argument("Missing 'inputs' or 'instances' key")


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
