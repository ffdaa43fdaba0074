"""The gRPC client's own TF Serving messages are tensorflow-serving-api's on the wire: every
field it defines has the official name, number, type and label, and the bytes are the same
both ways, including fields the client leaves out (kept as unknown fields)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("tensorflow_serving", reason="tensorflow-serving-api comes with the tf extra")

from google.protobuf import descriptor_pool  # noqa: E402
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2  # noqa: E402
from tensorflow.core.protobuf import meta_graph_pb2  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
)

from headswitch.client import _protos as mine  # noqa: E402

OFFICIAL = descriptor_pool.Default()


def _messages(descriptors: Any) -> Iterator[Any]:
    for descriptor in descriptors:
        yield descriptor
        yield from _messages(descriptor.nested_types)


def _own_messages() -> list[Any]:
    files = [mine.POOL.FindFileByName(name) for name in (
        "headswitch/client/tensorflow.proto", "headswitch/client/tensorflow_serving.proto")]
    return [m for f in files for m in _messages(f.message_types_by_name.values())]


def test_the_pools_are_apart() -> None:
    ours = mine.PredictRequest.DESCRIPTOR
    theirs = predict_pb2.PredictRequest.DESCRIPTOR
    assert ours.full_name == theirs.full_name == "tensorflow.serving.PredictRequest"
    assert ours.file.pool is mine.POOL and ours is not theirs


@pytest.mark.parametrize("ours", _own_messages(), ids=lambda d: d.full_name)
def test_every_field_is_the_official_one(ours: Any) -> None:
    theirs = OFFICIAL.FindMessageTypeByName(ours.full_name)
    assert ours.GetOptions().map_entry == theirs.GetOptions().map_entry
    for field in ours.fields:
        official = theirs.fields_by_name.get(field.name)
        assert official is not None, f"{ours.full_name}.{field.name} is not official"
        assert (field.number, field.type, field.label) == (
            official.number, official.type, official.label), field.name
        for kind in ("message_type", "enum_type"):
            a, b = getattr(field, kind), getattr(official, kind)
            assert (a and a.full_name) == (b and b.full_name), field.name
        a_oneof, b_oneof = field.containing_oneof, official.containing_oneof
        assert (a_oneof and a_oneof.name) == (b_oneof and b_oneof.name), field.name


@pytest.mark.parametrize("name", ["tensorflow.DataType", "tensorflow.error.Code",
                                  "tensorflow.serving.ModelVersionStatus.State"])
def test_enum_values_are_the_official_ones(name: str) -> None:
    ours = mine.POOL.FindEnumTypeByName(name)
    theirs = OFFICIAL.FindEnumTypeByName(name)
    official = {v.name: v.number for v in theirs.values}
    ours_values = {v.name: v.number for v in ours.values}
    reserved = {k for k in official if k.startswith("DO_NOT_USE")}
    assert ours_values == {k: v for k, v in official.items() if k not in reserved}


# ---------------------------------------------------------------------------------- the bytes


def _predict_request(module: Any) -> Any:
    request = module.PredictRequest()
    request.model_spec.name = "headswitch"
    request.model_spec.version.value = 3
    request.model_spec.signature_name = "by_name"
    text = request.inputs["text"]
    text.dtype = 7
    text.tensor_shape.dim.add().size = 3
    text.string_val.extend(["café 東京 👍".encode(), b"", b"\x00\xff raw bytes"])
    task = request.inputs["task_id"]
    task.dtype = 3
    task.tensor_shape.dim.add(size=3, name="batch")
    task.int_val.extend([0, -1, 2**31 - 1])
    request.output_filter.extend(["scores", "top_label"])
    return request


def _predict_response(module: Any) -> Any:
    response = module.PredictResponse()
    response.model_spec.name = "headswitch"
    response.model_spec.version_label = "stable"
    scores = response.outputs["scores"]
    scores.dtype = 1
    scores.tensor_shape.dim.add().size = 2
    scores.tensor_shape.dim.add().size = 3
    scores.float_val.extend([0.5, -1e-30, float("inf"), 3.25, 0.0, 1.0])
    packed = response.outputs["packed"]
    packed.dtype = 1
    packed.tensor_shape.dim.add().size = 2
    packed.tensor_content = b"\x00\x00\x80\x3f\x00\x00\x00\x40"
    for name, dtype, field, values in (
            ("d", 2, "double_val", [1.5, -2.0]), ("i64", 9, "int64_val", [-(2**40), 7]),
            ("b", 10, "bool_val", [True, False]), ("u32", 22, "uint32_val", [2**32 - 1]),
            ("u64", 23, "uint64_val", [2**64 - 1]), ("h", 19, "half_val", [15360]),
            ("c64", 8, "scomplex_val", [1.0, 2.0]), ("c128", 18, "dcomplex_val", [3.0, 4.0])):
        out = response.outputs[name]
        out.dtype = dtype
        out.tensor_shape.unknown_rank = name == "h"
        getattr(out, field).extend(values)
    return response


def _status_response(module: Any) -> Any:
    response = module.GetModelStatusResponse()
    for version, state, code, message in ((1, 30, 0, ""), (2, 20, 0, ""),
                                          (3, 50, 3, "Could not load: bad model")):
        entry = response.model_version_status.add(version=version, state=state)
        entry.status.error_code = code
        entry.status.error_message = message
    return response


def _signature_map(module: Any) -> Any:
    signatures = module.SignatureDefMap()
    sig = signatures.signature_def["serving_default"]
    sig.method_name = "tensorflow/serving/predict"
    sig.inputs["text"].name = "serving_default_text:0"
    sig.inputs["text"].dtype = 7
    sig.inputs["text"].tensor_shape.dim.add().size = -1
    sig.outputs["labels"].name = "StatefulPartitionedCall:2"
    sig.outputs["labels"].dtype = 7
    sig.outputs["labels"].tensor_shape.dim.add().size = -1
    sig.outputs["labels"].tensor_shape.dim.add().size = 5
    return signatures


def _metadata_response(module: Any) -> Any:
    response = module.GetModelMetadataResponse()
    response.model_spec.name = "headswitch"
    response.model_spec.version.value = 1
    response.metadata["signature_def"].Pack(_signature_map(module))
    return response


def _status_request(module: Any) -> Any:
    status = module.GetModelStatusRequest()
    status.model_spec.name = "m"
    status.model_spec.version_label = "canary"
    return status


def _metadata_request(module: Any) -> Any:
    request = module.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "headswitch"
    return request


class _Official:
    """tensorflow-serving-api's classes under the names ``_protos`` uses."""

    PredictRequest = predict_pb2.PredictRequest
    PredictResponse = predict_pb2.PredictResponse
    GetModelStatusRequest = get_model_status_pb2.GetModelStatusRequest
    GetModelStatusResponse = get_model_status_pb2.GetModelStatusResponse
    GetModelMetadataRequest = get_model_metadata_pb2.GetModelMetadataRequest
    GetModelMetadataResponse = get_model_metadata_pb2.GetModelMetadataResponse
    SignatureDefMap = get_model_metadata_pb2.SignatureDefMap
    ModelSpec = model_pb2.ModelSpec


BUILDERS: dict[str, Callable[[Any], Any]] = {
    "PredictRequest": _predict_request,
    "PredictResponse": _predict_response,
    "GetModelStatusRequest": _status_request,
    "GetModelStatusResponse": _status_response,
    "GetModelMetadataRequest": _metadata_request,
    "GetModelMetadataResponse": _metadata_response,
    "SignatureDefMap": _signature_map,
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_same_bytes_both_ways(name: str) -> None:
    build = BUILDERS[name]
    ours, theirs = build(mine), build(_Official)
    ours_bytes = ours.SerializeToString(deterministic=True)
    theirs_bytes = theirs.SerializeToString(deterministic=True)
    assert ours_bytes == theirs_bytes
    # Ours -> theirs: the official parser reads the client's request as the client meant it.
    parsed = getattr(_Official, name).FromString(ours_bytes)
    assert parsed == theirs
    # Theirs -> ours: the client reads the server's bytes, and writes them back unchanged.
    back = getattr(mine, name).FromString(theirs_bytes)
    assert back == ours
    assert back.SerializeToString(deterministic=True) == theirs_bytes


def test_fields_the_client_leaves_out_survive() -> None:
    """A server may send fields ``_protos`` does not define (a variant tensor, a sparse
    TensorInfo, signature defaults): the client skips them and keeps them."""
    response = predict_pb2.PredictResponse()
    variant = response.outputs["v"]
    variant.dtype = types_pb2.DT_VARIANT
    variant.variant_val.add().type_name = "something"
    variant.resource_handle_val.add(device="/cpu:0")
    signatures = get_model_metadata_pb2.SignatureDefMap()
    sig = signatures.signature_def["sparse"]
    sig.inputs["x"].coo_sparse.values_tensor_name = "values:0"
    sig.defaults["k"].CopyFrom(tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, int_val=[1]))
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)])
    sig.outputs["y"].CopyFrom(meta_graph_pb2.TensorInfo(name="y:0", dtype=1, tensor_shape=shape))
    for official, own in ((response, mine.PredictResponse),
                          (signatures, mine.SignatureDefMap)):
        raw = official.SerializeToString(deterministic=True)
        ours = own.FromString(raw)
        assert ours.SerializeToString(deterministic=True) == raw
        assert type(official).FromString(ours.SerializeToString()) == official
