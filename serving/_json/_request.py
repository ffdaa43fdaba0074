"""TF Serving's REST request JSON: the body as ``util/json_tensor.cc`` turns it into request
tensors (``FillPredictRequestFromJson``) or examples (``FillClassifyRegressRequestFromJson``),
with the same checks in the same order and the same messages.

Values follow rapidjson's DOM (see ``_reader``): an object's members are read in order,
duplicates included, and a member name is cut at its first NUL byte where TF Serving reads it as a
C string. The embedded server's limits (examples per request, string size, values per tensor)
are checked here too, before any large allocation.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import ServingError, invalid_argument, unimplemented
from .._limits import Limits, check_tensor_shape
from .._tensors import Array
from ._reader import JsonObject, JsonSyntaxError, parse, to_bytes
from ._scan import check_structure
from ._writer import COLUMNAR, ROW, debug_string, json_type

__all__ = [
    "COLUMNAR",
    "ROW",
    "JsonTensor",
    "examples_from_document",
    "fill_inputs",
    "json_tensor_to_array",
    "parse_document",
    "read_signature_name",
]

_MISSING = object()


def parse_document(body: bytes, limits: Limits | None = None) -> JsonObject:
    """``ParseJson``: the top-level value must be an object; trailing bytes are ignored. A
    body nested too deep or with too many values is refused before it is read
    (``_scan.check_structure``)."""
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    check_structure(body, limits or Limits())
    try:
        document = parse(body)
    except JsonSyntaxError as exc:
        raise invalid_argument(f"JSON Parse error: {exc.message} at offset: {exc.offset}") from exc
    if not isinstance(document, JsonObject):
        raise invalid_argument(f"JSON Value: {debug_string(document)} Is not object")
    return document


def read_signature_name(document: JsonObject) -> str:
    """``FillSignature``: the optional ``signature_name`` must be a string."""
    value = document.find("signature_name", _MISSING)
    if value is _MISSING:
        return ""
    if not isinstance(value, str):
        raise invalid_argument(
            f"JSON Value: {debug_string(document)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return value


def _c_string(name: str) -> str:
    """A member name as ``GetString()`` read into a ``std::string``: cut at the first NUL."""
    nul = name.find("\x00")
    return name if nul < 0 else name[:nul]


# --------------------------------------------------------------------------------------------
# Values (AddValueToTensor)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value < high


_INT32 = (-(2**31), 2**31)
_INT64 = (-(2**63), 2**63)
_UINT32 = (0, 2**32)
_UINT64 = (0, 2**64)

# dtype name -> (rapidjson's Is*() test, numpy dtype the values are collected in)
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
    """``IsValBase64Object``: one member, the first "b64" member a string."""
    return (
        isinstance(value, JsonObject)
        and len(value) == 1
        and isinstance(value.find("b64", _MISSING), str)
    )


_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _base64_unescape(text: bytes) -> bytes | None:
    """``absl::Base64Unescape``: standard alphabet, padding optional but consistent."""
    stripped = text.rstrip(b"=")
    pad = len(text) - len(stripped)
    if pad > 2 or len(stripped) % 4 == 1 or not _B64_ALPHABET.issuperset(stripped):
        return None
    if pad and (len(stripped) + pad) % 4:
        return None
    try:
        return base64.b64decode(stripped + b"=" * (-len(stripped) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _decode_b64(value: Any) -> bytes:
    """``JsonDecodeBase64Object``."""
    if not _is_b64_object(value):
        raise invalid_argument(
            f"JSON Value: {debug_string(value)} not formatted correctly for base64 data"
        )
    decoded = _base64_unescape(to_bytes(value.find("b64")))
    if decoded is None:
        raise invalid_argument("Unable to base64 decode")
    return decoded


class _Collector:
    """The values of one tensor as ``FillTensorProto`` appends them (with the size limits)."""

    def __init__(self, dtype: str, limits: Limits) -> None:
        self.dtype = dtype
        self.limits = limits
        self.values: list[Any] = []
        accept = _ACCEPT.get(dtype)
        self.accept = None if accept is None else accept[0]

    def add(self, value: Any) -> None:
        """``AddValueToTensor`` (plus the b64 object case of ``FillTensorProto``)."""
        if isinstance(value, JsonObject):
            if self.dtype != "string":
                raise _type_error(value, self.dtype)
            decoded = _decode_b64(value)
            self.limits.check_string(len(decoded))
            self.values.append(decoded)
            return
        if self.accept is None:
            raise unimplemented(
                f"Conversion of JSON Value: {debug_string(value)} to type: {self.dtype}"
            )
        if not self.accept(value):
            raise _type_error(value, self.dtype)
        if self.dtype == "string":
            raw = to_bytes(value)
            self.limits.check_string(len(raw))
            self.values.append(raw)
        else:
            self.values.append(value)


def _dense_shape(value: Any) -> list[int]:
    """``GetDenseTensorShape``: sizes along the first element of each nested list."""
    shape: list[int] = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: Any, shape: list[int], out: _Collector) -> int:
    """``FillTensorProto`` (depth first, iteratively): the number of values added."""
    rank = len(shape)
    count = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if not isinstance(item, list):
            if level != rank:
                raise invalid_argument(
                    f"JSON Value: {debug_string(item)} found at incorrect level: {level + 1} "
                    f"in the JSON DOM. Expected at level: {rank}"
                )
            out.add(item)
            count += 1
            continue
        if level >= rank:
            raise invalid_argument(
                f"Encountered list at unexpected level: {level} expected < {rank}"
            )
        if len(item) != shape[level]:
            raise invalid_argument(
                f"Encountered list at unexpected size: {len(item)} at level: {level} "
                f"expected size: {shape[level]}"
            )
        if level + 1 == rank and not any(isinstance(v, list) for v in item):
            for v in item:  # the innermost lists: values in order, no deeper level
                out.add(v)
            count += len(item)
            continue
        stack.extend((v, level + 1) for v in reversed(item))
    return count


@dataclass
class JsonTensor:
    """A request tensor as json_tensor.cc fills its ``TensorProto``: dtype, shape, values."""

    dtype: str
    shape: list[int]
    values: list[Any] = field(default_factory=list)


def json_tensor_to_array(alias: str, tensor: JsonTensor, limits: Limits) -> Array:
    """``Tensor::FromProto`` of the filled proto: a shape TensorFlow accepts (else "tensor
    parsing error"), within this server's limits; extra values (from duplicate member names)
    are dropped, as TensorFlow keeps the first n."""
    count = check_tensor_shape(alias, tensor.shape, limits, tensor.dtype == "string")
    values = tensor.values if len(tensor.values) == count else tensor.values[:count]
    if tensor.dtype == "string":
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(tensor.shape)
    if not values:
        return np.zeros(tensor.shape, dtype=_TARGET[tensor.dtype])
    collected = np.array(values, dtype=_ACCEPT[tensor.dtype][1])
    return collected.astype(_TARGET[tensor.dtype]).reshape(tensor.shape)


def _shape_string(shape: list[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


# --------------------------------------------------------------------------------------------
# Predict requests


class _Item:
    def __init__(self, dtype: str, limits: Limits) -> None:
        self.collector = _Collector(dtype, limits)
        self.shape: list[int] | None = None
        self.size = -1


def _add_instance_item(
    value: Any, name: str, dtypes: Mapping[str, str], items: dict[str, _Item], limits: Limits
) -> None:
    """``AddInstanceItem``."""
    if name not in dtypes:
        raise invalid_argument(f"JSON object: does not have named input: {name}")
    item = items.get(name)
    if item is None:
        item = items[name] = _Item(dtypes[name], limits)
    shape = _dense_shape(value)
    limits.check_values(math.prod(shape))
    size = _fill(value, shape, item.collector)
    if item.shape is None:
        item.size, item.shape = size, shape
    elif item.size != size:
        raise invalid_argument(f"Expecting tensor size: {item.size} but got: {size}")
    elif item.shape != shape:
        raise invalid_argument(
            f"Expecting shape {_shape_string(item.shape)} but got: {_shape_string(shape)}"
        )


def _is_element_object(value: Any) -> bool:
    return isinstance(value, JsonObject) and not _is_b64_object(value)


def _from_instances(
    instances: list[Any], dtypes: Mapping[str, str], limits: Limits
) -> dict[str, JsonTensor]:
    """``FillTensorMapFromInstancesList``."""
    if not isinstance(instances[0], JsonObject) and len(dtypes) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map"
        )
    limits.check_examples(len(instances))
    objects = _is_element_object(instances[0])
    input_names = sorted(dtypes)
    items: dict[str, _Item] = {}
    for index, element in enumerate(instances):
        if objects:
            if not _is_element_object(element):
                raise invalid_argument(
                    f"Expecting object but got list at item {index} of input list"
                )
            keys: set[str] = set()
            for raw_name, value in element.members:
                name = _c_string(raw_name)
                keys.add(name)
                try:
                    _add_instance_item(value, name, dtypes, items, limits)
                except ServingError as exc:
                    raise invalid_argument(
                        f"Failed to process element: {index} key: {name} of 'instances' list. "
                        f"Error: {exc.to_string()}"
                    ) from exc
            if sorted(keys) != input_names:
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
                _add_instance_item(element, input_names[0], dtypes, items, limits)
            except ServingError as exc:
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. "
                    f"Error: {exc.to_string()}"
                ) from exc
    count = len(instances)
    return {
        name: JsonTensor(item.collector.dtype, [count, *(item.shape or [])], item.collector.values)
        for name, item in items.items()
    }


def _column(value: Any, dtype: str, limits: Limits) -> JsonTensor:
    shape = _dense_shape(value)
    if shape:
        limits.check_examples(shape[0])
    limits.check_values(math.prod(shape))
    collector = _Collector(dtype, limits)
    _fill(value, shape, collector)
    return JsonTensor(dtype, shape, collector.values)


def _from_inputs(
    inputs: Any, dtypes: Mapping[str, str], limits: Limits
) -> dict[str, JsonTensor]:
    """``FillTensorMapFromInputsMap``: members that are not inputs are ignored, as upstream."""
    if not isinstance(inputs, JsonObject) or _is_b64_object(inputs):
        if len(dtypes) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map"
            )
        name = next(iter(dtypes))
        return {name: _column(inputs, dtypes[name], limits)}
    result: dict[str, JsonTensor] = {}
    for name in sorted(dtypes):
        value = inputs.find(name, _MISSING)
        if value is _MISSING:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        result[name] = _column(value, dtypes[name], limits)
    return result


def fill_inputs(
    document: JsonObject, dtypes: Mapping[str, str], limits: Limits | None = None
) -> tuple[str, dict[str, JsonTensor]]:
    """``FillPredictRequestFromJson`` after the signature lookup: (format, tensors by alias)."""
    limits = limits or Limits()
    instances = document.find("instances", _MISSING)
    inputs = document.find("inputs", _MISSING)
    if instances is not _MISSING:
        if inputs is not _MISSING:
            raise invalid_argument(
                f"JSON Value: {debug_string(document)} Not formatted correctly expecting only "
                "one of 'inputs' or 'instances' keys to exist "
            )
        if not isinstance(instances, list):
            raise invalid_argument(
                f"JSON Value: {debug_string(document)} Expecting 'instances' to be an list/array"
            )
        if not instances:
            raise invalid_argument(
                f"JSON Value: {debug_string(document)} No values in 'instances' array"
            )
        return ROW, _from_instances(instances, dtypes, limits)
    if inputs is not _MISSING:
        return COLUMNAR, _from_inputs(inputs, dtypes, limits)
    raise invalid_argument("Missing 'inputs' or 'instances' key")


# --------------------------------------------------------------------------------------------
# Classify and regress requests


class _Feature:
    """A ``tf.train.Feature`` being filled: its kind ("bytes", "float", "int64") and values."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.kind = ""
        self.values: list[Any] = []

    def expect(self, kind: str) -> None:
        """``IsFeatureOfKind``, else ``IncompatibleFeatureKindError``."""
        if self.kind and self.kind != kind:
            raise invalid_argument(
                f"Unexpected element type in feature: {self.name} expecting type: {self.kind}"
            )
        self.kind = kind


def _add_value_to_feature(value: Any, feature: _Feature, limits: Limits) -> None:
    """``AddValueToFeature``."""
    name = feature.name
    if value is None or isinstance(value, list) or (
        isinstance(value, JsonObject) and not _is_b64_object(value)
    ):
        raise invalid_argument(
            f"Feature: {name} has element with unexpected JSON type: {json_type(value)}"
        )
    if isinstance(value, bool):
        feature.expect("int64")
        feature.values.append(1 if value else 0)
    elif isinstance(value, (JsonObject, str)):
        feature.expect("bytes")
        raw = _decode_b64(value) if isinstance(value, JsonObject) else to_bytes(value)
        limits.check_string(len(raw))
        feature.values.append(raw)
    elif isinstance(value, float):
        feature.expect("float")
        feature.values.append(value)
    else:
        feature.expect("int64")
        if value >= 2**63:
            raise invalid_argument(
                f"Feature: {name} has uint64_t element. Only int64_t is supported."
            )
        feature.values.append(value)


def _example_from_json(value: Any, limits: Limits) -> Any:
    """``MakeExampleFromJsonObject`` (a repeated name: the last one wins)."""
    from tensorflow.core.example import example_pb2

    if not isinstance(value, JsonObject):
        raise invalid_argument(f"Example must be JSON object but got JSON {json_type(value)}")
    example = example_pb2.Example()
    for raw_name, content in value.members:
        name = _c_string(raw_name)
        feature = _Feature(name)
        for item in content if isinstance(content, list) else [content]:
            _add_value_to_feature(item, feature, limits)
        target = example.features.feature[name]
        target.Clear()
        if feature.kind == "bytes":
            target.bytes_list.value.extend(feature.values)
        elif feature.kind == "float":
            target.float_list.value.extend(feature.values)
        elif feature.kind == "int64":
            target.int64_list.value.extend(feature.values)
    return example


def examples_from_document(document: JsonObject, request: Any, limits: Limits) -> None:
    """``FillClassifyRegressRequestFromJson`` after ``FillSignature``: fills ``request.input``
    (a ``ClassificationRequest`` or ``RegressionRequest``) from "context" and "examples"."""
    context = document.find("context", _MISSING)
    has_context = context is not _MISSING
    if has_context:
        request.input.example_list_with_context.context.CopyFrom(
            _example_from_json(context, limits)
        )
    examples = document.find("examples", _MISSING)
    if examples is _MISSING:
        raise invalid_argument(
            f"JSON Value: {debug_string(document)} When method is classify, key 'examples' is "
            "expected and was not found"
        )
    if not isinstance(examples, list):
        raise invalid_argument(
            f"JSON Value: {debug_string(document)} Expecting 'examples' value to be an "
            "list/array"
        )
    if not examples:
        raise invalid_argument(
            f"JSON Value: {debug_string(document)} 'examples' value is an empty array"
        )
    limits.check_examples(len(examples))
    target = (
        request.input.example_list_with_context.examples
        if has_context
        else request.input.example_list.examples
    )
    for value in examples:
        target.add().CopyFrom(_example_from_json(value, limits))
