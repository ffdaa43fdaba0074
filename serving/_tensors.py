"""``TensorProto`` <-> numpy, the way TF Serving fills responses (``Tensor::AsProtoField``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ._errors import invalid_argument
from ._limits import Limits, check_tensor_shape

Array = npt.NDArray[Any]


def dtype_name(dtype_enum: int) -> str:
    """``DataTypeString``: ``DT_FLOAT`` -> ``float``, ``DT_STRING`` -> ``string``."""
    from tensorflow.core.framework import types_pb2

    try:
        name = str(types_pb2.DataType.Name(dtype_enum))
    except ValueError:
        return f"unknown dtype enum ({dtype_enum})"
    if name.endswith("_REF"):
        return name[3:-4].lower() + "_ref"
    return name[3:].lower() if name.startswith("DT_") else name


def dtype_enum_of(array: Array) -> int:
    import tensorflow as tf

    if array.dtype == object:
        return int(tf.string.as_datatype_enum)
    return int(tf.as_dtype(array.dtype).as_datatype_enum)


# dtype enum -> (numpy dtype, TensorProto field with the values, values per element)
_FIELDS: dict[int, tuple[Any, str, int]] = {}


def _fields() -> dict[int, tuple[Any, str, int]]:
    if not _FIELDS:
        import ml_dtypes
        from tensorflow.core.framework import types_pb2 as t

        _FIELDS.update(
            {
                t.DT_FLOAT: (np.float32, "float_val", 1),
                t.DT_DOUBLE: (np.float64, "double_val", 1),
                t.DT_INT32: (np.int32, "int_val", 1),
                t.DT_INT16: (np.int16, "int_val", 1),
                t.DT_INT8: (np.int8, "int_val", 1),
                t.DT_UINT8: (np.uint8, "int_val", 1),
                t.DT_UINT16: (np.uint16, "int_val", 1),
                t.DT_INT64: (np.int64, "int64_val", 1),
                t.DT_UINT32: (np.uint32, "uint32_val", 1),
                t.DT_UINT64: (np.uint64, "uint64_val", 1),
                t.DT_BOOL: (np.bool_, "bool_val", 1),
                t.DT_STRING: (np.dtype(object), "string_val", 1),
                t.DT_HALF: (np.float16, "half_val", 1),
                t.DT_BFLOAT16: (ml_dtypes.bfloat16, "half_val", 1),
                t.DT_COMPLEX64: (np.complex64, "scomplex_val", 2),
                t.DT_COMPLEX128: (np.complex128, "dcomplex_val", 2),
            }
        )
    return _FIELDS


def _decode_string_content(content: bytes, count: int) -> list[bytes] | None:
    """Strings in ``tensor_content``: ``count`` varint lengths, then the bytes (TensorFlow's
    string encoding); None if the content is not exactly that."""
    lengths: list[int] = []
    pos = 0
    for _ in range(count):
        value = shift = 0
        while True:
            if pos >= len(content) or shift > 63:
                return None
            byte = content[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        lengths.append(value)
    if pos + sum(lengths) != len(content):
        return None
    out: list[bytes] = []
    for length in lengths:
        out.append(content[pos : pos + length])
        pos += length
    return out


def from_proto(proto: Any, alias: str, limits: Limits | None = None) -> Array:
    """``Tensor::FromProto`` (a request input; else "tensor parsing error: ALIAS"), within this
    server's limits. The typed value fields are read as TensorFlow reads them: the first n
    values when there are more than the shape holds, the last value repeated when there are
    fewer, zeros when there are none; ``tensor_content`` must hold exactly the shape."""
    limits = limits or Limits()
    error = invalid_argument(f"tensor parsing error: {alias}")
    entry = _fields().get(proto.dtype)
    if entry is None or proto.tensor_shape.unknown_rank:
        raise error
    dtype, field_name, per_element = entry
    is_string = field_name == "string_val"
    shape = [int(d.size) for d in proto.tensor_shape.dim]
    count = check_tensor_shape(alias, shape, limits, is_string)
    content = proto.tensor_content
    if content:
        if is_string:
            strings = _decode_string_content(content, count)
            if strings is None:
                raise error
            for value in strings:
                limits.check_string(len(value))
            array = np.empty(count, dtype=object)
            array[:] = strings
            return array.reshape(shape)
        if len(content) != count * np.dtype(dtype).itemsize:
            raise error
        return np.frombuffer(content, dtype=dtype).copy().reshape(shape)
    values = getattr(proto, field_name)
    available = len(values) // per_element
    if is_string:
        for value in values:
            limits.check_string(len(value))
    if count == 0:
        return np.zeros(shape, dtype=dtype) if not is_string else np.empty(shape, dtype=object)
    if available == 0:
        if is_string:
            array = np.empty(count, dtype=object)
            array[:] = [b""] * count
            return array.reshape(shape)
        return np.zeros(shape, dtype=dtype)
    taken = min(count, available) * per_element
    if is_string:
        head = list(values[:taken])
        array = np.empty(count, dtype=object)
        array[: len(head)] = head
        array[len(head) :] = [head[-1]] * (count - len(head))
        return array.reshape(shape)
    flat: Array
    if field_name == "half_val":
        flat = np.array(values[:taken], dtype=np.uint16).view(dtype)
    elif per_element == 2:
        pairs = np.array(values[:taken], dtype=np.float32 if dtype == np.complex64 else np.float64)
        flat = pairs[0::2] + np.multiply(pairs[1::2], 1j)
    else:
        flat = np.array(values[:taken]).astype(dtype)
    flat = flat.astype(dtype, copy=False)
    if len(flat) < count:
        flat = np.concatenate([flat, np.repeat(flat[-1:], count - len(flat))])
    result: Array = flat.reshape(shape)
    return result


def _shaped(array: Array) -> tuple[Array, Any]:
    """``array`` as a NumPy array, and a ``TensorProto`` with its dtype and shape, no values."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

    array = np.asarray(array)
    proto = tensor_pb2.TensorProto(
        dtype=dtype_enum_of(array),
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(s)) for s in array.shape]
        ),
    )
    return array, proto


def to_proto(array: Array) -> Any:
    """A ``TensorProto`` with typed repeated fields, as ``Tensor::AsProtoField`` writes it."""
    from tensorflow.core.framework import types_pb2

    array, proto = _shaped(array)
    dtype = proto.dtype
    flat = array.reshape(-1)
    if dtype == types_pb2.DT_FLOAT:
        proto.float_val.extend(flat.tolist())
    elif dtype == types_pb2.DT_DOUBLE:
        proto.double_val.extend(flat.tolist())
    elif dtype in (
        types_pb2.DT_INT32,
        types_pb2.DT_INT16,
        types_pb2.DT_INT8,
        types_pb2.DT_UINT8,
        types_pb2.DT_UINT16,
    ):
        proto.int_val.extend(flat.astype(np.int64).tolist())
    elif dtype == types_pb2.DT_INT64:
        proto.int64_val.extend(flat.tolist())
    elif dtype == types_pb2.DT_UINT32:
        proto.uint32_val.extend(flat.tolist())
    elif dtype == types_pb2.DT_UINT64:
        proto.uint64_val.extend(flat.tolist())
    elif dtype == types_pb2.DT_BOOL:
        proto.bool_val.extend(flat.tolist())
    elif dtype == types_pb2.DT_STRING:
        proto.string_val.extend(
            v if isinstance(v, bytes) else str(v).encode() for v in flat.tolist()
        )
    elif dtype in (types_pb2.DT_HALF, types_pb2.DT_BFLOAT16):
        proto.half_val.extend(flat.view(np.uint16).astype(np.int64).tolist())
    elif dtype == types_pb2.DT_COMPLEX64:
        proto.scomplex_val.extend(np.stack([flat.real, flat.imag], axis=-1).reshape(-1).tolist())
    elif dtype == types_pb2.DT_COMPLEX128:
        proto.dcomplex_val.extend(np.stack([flat.real, flat.imag], axis=-1).reshape(-1).tolist())
    else:
        import tensorflow as tf

        proto.CopyFrom(tf.make_tensor_proto(array))
    return proto


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def to_proto_content(array: Array) -> Any:
    """A ``TensorProto`` with the values in ``tensor_content``, as ``Tensor::
    AsProtoTensorContent`` writes it (``--enable_serialization_as_tensor_content``): the raw
    little-endian values, or for strings every length as a varint, then the bytes."""
    from tensorflow.core.framework import types_pb2

    array, proto = _shaped(array)
    dtype = proto.dtype
    if dtype == types_pb2.DT_STRING:
        values = [v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1)]
        proto.tensor_content = b"".join(_varint(len(v)) for v in values) + b"".join(values)
    elif array.size:
        proto.tensor_content = np.ascontiguousarray(array).astype(
            array.dtype.newbyteorder("<"), copy=False).tobytes()
    return proto
