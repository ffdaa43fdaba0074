"""``TensorProto`` <-> numpy, the way TF Serving fills responses (``Tensor::AsProtoField``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ._errors import invalid_argument

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


def from_proto(proto: Any, alias: str) -> Array:
    """``Tensor::FromProto``; a proto that does not parse gives TF Serving's error."""
    import tensorflow as tf

    try:
        array = tf.make_ndarray(proto)
    except (ValueError, TypeError, IndexError) as exc:
        raise invalid_argument(f"tensor parsing error: {alias}") from exc
    return np.asarray(array)


def proto_to_array(alias: str, proto: Any) -> Array:
    """``from_proto`` with the (alias, value) argument order request conversion uses."""
    return from_proto(proto, alias)


def to_proto(array: Array) -> Any:
    """A ``TensorProto`` with typed repeated fields, as ``Tensor::AsProtoField`` writes it."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    array = np.asarray(array)
    dtype = dtype_enum_of(array)
    proto = tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(s)) for s in array.shape]
        ),
    )
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
