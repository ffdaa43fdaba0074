"""TF Serving's gRPC API without I/O: requests, answers, errors and the method stubs. Needs
grpcio and protobuf only (the messages are ``_protos``'s), so only ``_grpc`` imports it, on
first use."""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from google.protobuf import json_format

from headswitch import contract as c

from . import _protos as pb
from ._core import Options, Row, metadata_from_json, status_from_json
from ._errors import HeadswitchError, client_error
from ._types import ModelMetadata, ModelStatus, TaskInfo, TaskList

_DT_STRING = pb.DT_STRING
_DT_INT32 = pb.DT_INT32
# Typed repeated field and array typecode of the dtypes a headswitch answer has.
_FIELDS: Mapping[int, tuple[str, str]] = {
    pb.DT_FLOAT: ("float_val", "f"),
    pb.DT_DOUBLE: ("double_val", "d"),
    pb.DT_INT32: ("int_val", "i"),
    pb.DT_INT64: ("int64_val", "q"),
}
_TLS_WORDS = ("handshake", "certificate", "ssl_error", "tsi_")


def model_spec(options: Options, signature: str | None) -> Any:
    spec = pb.ModelSpec(name=options.model)
    if options.version is not None:
        spec.version.value = options.version
    elif options.version_label is not None:
        spec.version_label = options.version_label
    if signature is not None:
        spec.signature_name = signature
    return spec


def _varint_size(value: int) -> int:
    if value < 0:
        return 10
    return max(1, (value.bit_length() + 6) // 7)


def request_overhead(spec: Any) -> int:
    """What a predict request costs besides its items (an upper bound)."""
    request = pb.PredictRequest(model_spec=spec)
    for name in (c.INPUT_TEXT, c.INPUT_TASK_ID):
        request.inputs[name].dtype = _DT_STRING
        request.inputs[name].tensor_shape.dim.add().size = 2**31
    # + the packed field's tag and length, and longer length prefixes of the messages
    return int(request.ByteSize()) + 24


class GrpcPrepared:
    """``PredictRequest``s for slices of one batch; sizes are ``ByteSize()``."""

    def __init__(self, spec: Any, overhead: int, limit: int | None, texts: Sequence[str],
                 ids: Sequence[int]) -> None:
        encoded: list[bytes] = []
        for i, text in enumerate(texts):
            try:
                encoded.append(text.encode())
            except UnicodeEncodeError as exc:
                raise client_error(f"text {i} is not valid Unicode: {exc}", index=i) from exc
        self._spec = spec
        self._limit = limit
        self._texts = encoded
        self._ids = list(ids)
        # string_val: tag + length + bytes; int_val (packed): the varint.
        self.sizes = [len(t) + 3 if len(t) < 128 and 0 <= i < 128
                      else 1 + _varint_size(len(t)) + len(t) + _varint_size(i)
                      for t, i in zip(encoded, self._ids)]
        self.overhead = overhead

    def _request(self, start: int, stop: int) -> Any:
        request = pb.PredictRequest()
        request.model_spec.CopyFrom(self._spec)
        text = request.inputs[c.INPUT_TEXT]
        text.dtype = _DT_STRING
        text.tensor_shape.dim.add().size = stop - start
        text.string_val.extend(self._texts[start:stop])
        task = request.inputs[c.INPUT_TASK_ID]
        task.dtype = _DT_INT32
        task.tensor_shape.dim.add().size = stop - start
        task.int_val.extend(self._ids[start:stop])
        return request

    def encode(self, start: int, stop: int) -> tuple[Any, int]:
        request = self._request(start, stop)
        bound = self.overhead + sum(self.sizes[start:stop])
        if self._limit is None or bound <= self._limit:
            return request, bound  # an upper bound is enough
        return request, request.ByteSize()


def tasks_request(options: Options) -> Any:
    request = pb.PredictRequest(model_spec=model_spec(options, options.tasks_signature))
    unused = request.inputs[c.INPUT_UNUSED]
    unused.dtype = _DT_INT32
    unused.tensor_shape.dim.add().size = 1
    unused.int_val.append(0)
    return request


def names_request(options: Options, names: Sequence[str]) -> Any:
    """A ``by_name`` request of one empty text per task name: the model's per-example
    ``error`` says why a name is not served (removed, and in which version, or unknown)."""
    request = pb.PredictRequest(model_spec=model_spec(options, c.SIGNATURE_NAMES))
    for key, values in ((c.INPUT_TEXT, [b""] * len(names)),
                        (c.INPUT_TASK, [name.encode() for name in names])):
        tensor = request.inputs[key]
        tensor.dtype = _DT_STRING
        tensor.tensor_shape.dim.add().size = len(names)
        tensor.string_val.extend(values)
    return request


def status_request(options: Options) -> Any:
    return pb.GetModelStatusRequest(model_spec=model_spec(options, None))


def metadata_request(options: Options) -> Any:
    return pb.GetModelMetadataRequest(
        model_spec=model_spec(options, None), metadata_field=["signature_def"])


# ------------------------------------------------------------------------------------ answers


def _bad_answer(message: str) -> HeadswitchError:
    return HeadswitchError("INTERNAL", message, http_status=200, transport="grpc",
                           retryable=False)


def _values(outputs: Any, name: str) -> tuple[list[Any], list[int]]:
    """An output tensor's values (flat) and shape."""
    if name not in outputs:
        raise _bad_answer(f"the answer has no output {name!r}; is the signature headswitch's?")
    tensor = outputs[name]
    shape = [d.size for d in tensor.tensor_shape.dim]
    count = math.prod(shape)
    values: list[Any]
    if tensor.dtype == _DT_STRING:
        values = [v.decode("utf-8", "replace") for v in tensor.string_val]
    elif tensor.dtype in _FIELDS:
        field, typecode = _FIELDS[tensor.dtype]
        if tensor.tensor_content:
            packed = array(typecode, tensor.tensor_content)
            if sys.byteorder != "little":
                packed.byteswap()
            values = packed.tolist()
        else:
            values = list(getattr(tensor, field))
    else:
        raise _bad_answer(f"output {name!r} has an unexpected dtype "
                          f"{pb.data_type_name(tensor.dtype)}")
    if len(values) == 1 and count > 1:  # TF's short form: one value fills the tensor
        values = values * count
    if len(values) != count:
        raise _bad_answer(f"output {name!r} has {len(values)} values for shape {shape}")
    return values, shape


def _rows_of(values: list[Any], width: int) -> list[list[Any]]:
    return [values[i: i + width] for i in range(0, len(values), width)]


def predict_rows(response: Any) -> list[Row]:
    outputs = response.outputs
    scores, shape = _values(outputs, c.OUTPUT_SCORES)
    top_label, _ = _values(outputs, c.OUTPUT_TOP_LABEL)
    top_score, _ = _values(outputs, c.OUTPUT_TOP_SCORE)
    # Exports before per-example errors have no error output: they fail the request instead.
    errors = (_values(outputs, c.OUTPUT_ERROR)[0] if c.OUTPUT_ERROR in outputs
              else [""] * len(top_label))
    width = shape[1] if len(shape) == 2 else 0
    return [(scores[i * width: (i + 1) * width], label, score, error)
            for i, (label, score, error) in enumerate(zip(top_label, top_score, errors))]


def tasks_from_response(response: Any) -> list[TaskInfo]:
    outputs = response.outputs
    ids, shape = _values(outputs, c.TASKS_OUTPUT_TASK_ID)
    names, _ = _values(outputs, c.TASKS_OUTPUT_NAME)
    num_classes, _ = _values(outputs, c.TASKS_OUTPUT_NUM_CLASSES)
    labels, label_shape = _values(outputs, c.TASKS_OUTPUT_LABELS)
    activations, _ = _values(outputs, c.TASKS_OUTPUT_ACTIVATION)
    if len(shape) != 2 or len(label_shape) != 3:
        raise _bad_answer("the tasks answer is not headswitch's")
    n, width = shape[1], label_shape[2]
    return list(TaskList.from_columns(ids[:n], names[:n], num_classes[:n],
                                      _rows_of(labels[: n * width], width), activations[:n]))


def status_from_response(model: str, response: Any) -> ModelStatus:
    return status_from_json(model, json_format.MessageToDict(
        response, preserving_proto_field_name=True))


def metadata_from_response(model: str, response: Any) -> ModelMetadata:
    signature_map = pb.SignatureDefMap()
    if "signature_def" not in response.metadata or not response.metadata[
            "signature_def"].Unpack(signature_map):
        raise _bad_answer("the metadata answer has no SignatureDefMap")
    spec = json_format.MessageToDict(response.model_spec, preserving_proto_field_name=True)
    return metadata_from_json(model, spec, json_format.MessageToDict(
        signature_map, preserving_proto_field_name=True))


def error_from_rpc(exc: grpc.RpcError, context: Mapping[str, Any]) -> HeadswitchError:
    code_attr = getattr(exc, "code", None)
    status = code_attr() if callable(code_attr) else grpc.StatusCode.UNKNOWN
    code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
    details_attr = getattr(exc, "details", None)
    message = (details_attr() if callable(details_attr) else None) or str(exc)
    debug_attr = getattr(exc, "debug_error_string", None)
    details = dict(context)
    if callable(debug_attr):
        details["debug_error_string"] = debug_attr()
    if code == "UNAVAILABLE" and any(w in message.lower() for w in _TLS_WORDS):
        retryable: bool | None = False  # a failed handshake fails again
    elif code == "CANCELLED":
        # The client never cancels a call (an asyncio cancellation is CancelledError): the
        # server did, e.g. while shutting down with the call still queued.
        retryable = True
    else:
        retryable = None
    return HeadswitchError(code, message, http_status=c.HTTP_STATUS_OF_CODE.get(code, 500),
                           transport="grpc", details=details, retryable=retryable)


# ------------------------------------------------------------------------------------ stubs


class _Stub:
    """Callables for some of a gRPC service's methods on ``channel`` (``grpc`` or ``grpc.aio``),
    what generated ``*_pb2_grpc`` stubs give."""

    def __init__(self, channel: Any, *methods: tuple[str, Any, Any]) -> None:
        for path, request, response in methods:
            setattr(self, path.rsplit("/", 1)[1], channel.unary_unary(
                path, request_serializer=request.SerializeToString,
                response_deserializer=response.FromString))


def prediction_stub(channel: Any) -> Any:
    """``PredictionService``: ``Predict`` and ``GetModelMetadata``."""
    return _Stub(channel, pb.PREDICT, pb.GET_MODEL_METADATA)


def model_stub(channel: Any) -> Any:
    """``ModelService``: ``GetModelStatus``."""
    return _Stub(channel, pb.GET_MODEL_STATUS)
