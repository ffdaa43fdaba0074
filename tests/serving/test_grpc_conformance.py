"""gRPC API conformance with the official ``tensorflow-serving-api`` stubs, run against every
target kind."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest
import serving_fixture_model as fm
from serving_targets import MODEL, Target


def _tf() -> Any:
    import tensorflow as tf

    return tf


def _request(texts: list[str] | None = None, tasks: list[int] | None = None, **spec: Any) -> Any:
    from tensorflow_serving.apis import predict_pb2

    tf = _tf()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = spec.pop("name", MODEL)
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    if texts is not None:
        request.inputs["text"].CopyFrom(tf.make_tensor_proto(texts, dtype=tf.string))
    if tasks is not None:
        request.inputs["task_id"].CopyFrom(tf.make_tensor_proto(tasks, dtype=tf.int32))
    return request


def _error(call: Any, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=30)
    return info.value


def test_predict(target: Target) -> None:
    tf = _tf()
    response = target.prediction.Predict(_request(["abc", "hello"], [0, 1]), timeout=30)
    assert response.model_spec.name == MODEL
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
    assert set(outputs) == {"labels", "num_classes", "scores", "top_label", "top_score"}
    for row, (text, task) in enumerate([("abc", 0), ("hello", 1)]):
        want = fm.expected(text, task)
        np.testing.assert_array_equal(outputs["scores"][row], np.array(want["scores"], np.float32))
        assert outputs["top_label"][row] == want["top_label"].encode()
        assert [v.decode() for v in outputs["labels"][row]] == want["labels"]
    # Values travel in typed fields, as Tensor::AsProtoField writes them.
    assert len(response.outputs["scores"].float_val) == 6
    assert response.outputs["scores"].tensor_content == b""


def test_predict_version_and_output_filter(target: Target) -> None:
    request = _request(["abc"], [2], version=1)
    request.output_filter.extend(["top_label", "top_score"])
    response = target.prediction.Predict(request, timeout=30)
    assert set(response.outputs) == {"top_label", "top_score"}
    assert response.outputs["top_label"].string_val == [fm.expected("abc", 2)["top_label"].encode()]
    request = _request(["abc"], [0])
    request.output_filter.append("nope")
    error = _error(target.prediction.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "output tensor alias not found in signature: nope Outputs expected to be in the set "
        "{labels,num_classes,scores,top_label,top_score}."
    )
    request = _request(["abc"], [0])
    request.output_filter.extend(["scores", "scores"])
    error = _error(target.prediction.Predict, request)
    assert error.details() == "duplicate output tensor alias: scores"


def test_predict_other_signature(target: Target) -> None:
    tf = _tf()
    request = _request(signature_name="tasks")
    request.inputs["unused"].CopyFrom(tf.make_tensor_proto([0, 0, 0], dtype=tf.int32))
    response = target.prediction.Predict(request, timeout=30)
    assert response.model_spec.signature_name == "tasks"
    assert tf.make_ndarray(response.outputs["name"]).shape == (3, 3)


@pytest.mark.parametrize(
    ("spec", "code", "message"),
    [
        (
            {"name": "nope"},
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Latest(nope)",
        ),
        (
            {"version": 4},
            grpc.StatusCode.NOT_FOUND,
            f"Servable not found for request: Specific({MODEL}, 4)",
        ),
        (
            {"version_label": "stable"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "Unrecognized servable version label: stable",
        ),
        ({"name": ""}, grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified."),
        (
            {"signature_name": "nope"},
            grpc.StatusCode.FAILED_PRECONDITION,
            'Serving signature key "nope" not found.',
        ),
    ],
)
def test_predict_spec_errors(
    target: Target, spec: dict[str, Any], code: grpc.StatusCode, message: str
) -> None:
    error = _error(target.prediction.Predict, _request(["a"], [0], **spec))
    assert error.code() == code
    assert error.details() == message


def test_predict_input_errors(target: Target) -> None:
    tf = _tf()
    error = _error(target.prediction.Predict, _request(["a"]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "input size does not match signature: 1!=2 len({text}) != len({task_id,text}). "
        "Sent extra: {}. Missing but required: {task_id}."
    )
    request = _request(["a"], [0])
    request.inputs["extra"].CopyFrom(tf.make_tensor_proto([1]))
    error = _error(target.prediction.Predict, request)
    assert error.details() == (
        "input size does not match signature: 3!=2 len({extra,task_id,text}) != "
        "len({task_id,text}). Sent extra: {extra}. Missing but required: {}."
    )
    request = _request(["a"])
    request.inputs["task"].CopyFrom(tf.make_tensor_proto([0], dtype=tf.int32))
    error = _error(target.prediction.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(
        "Signature input alias: task_id(feed name: serving_default_task_id:0) not found in "
        "request and no default value provided."
    )
    request = _request(["a"])
    request.inputs["task_id"].CopyFrom(tf.make_tensor_proto([0], dtype=tf.int64))
    error = _error(target.prediction.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("Type mismatch: actual int64 vs. expect int32")
    request = _request(["a"])
    bad = tf.make_tensor_proto([0, 1, 2], dtype=tf.int32)
    bad.tensor_shape.dim[0].size = 2
    request.inputs["task_id"].CopyFrom(bad)
    error = _error(target.prediction.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "tensor parsing error: task_id"


def test_predict_op_error_then_ok(target: Target) -> None:
    error = _error(target.prediction.Predict, _request(["a"], [5]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(
        "assertion failed: [task_id must be in the valid range 0..2; got] [5]"
    )
    error = _error(target.prediction.Predict, _request(["a", "b"], [0]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "must have the same length" in error.details()
    assert target.prediction.Predict(_request(["a"], [0]), timeout=30).model_spec.version.value == 1


def test_predict_missing_model_spec(target: Target) -> None:
    from tensorflow_serving.apis import predict_pb2

    error = _error(target.prediction.Predict, predict_pb2.PredictRequest())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Missing ModelSpec"


def test_get_model_metadata(target: Target) -> None:
    from tensorflow_serving.apis import get_model_metadata_pb2

    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = MODEL
    error = _error(target.prediction.GetModelMetadata, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "GetModelMetadataRequest must specify at least one metadata_field"
    request.metadata_field.append("foo")
    error = _error(target.prediction.GetModelMetadata, request)
    assert error.details() == "Metadata field foo is not supported"
    del request.metadata_field[:]
    request.metadata_field.append("signature_def")
    response = target.prediction.GetModelMetadata(request, timeout=30)
    assert response.model_spec.name == MODEL
    assert response.model_spec.version.value == 1
    assert response.metadata["signature_def"].type_url == (
        "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    )
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    assert signatures.signature_def["serving_default"].inputs["task_id"].name == (
        "serving_default_task_id:0"
    )
    request.model_spec.name = "nope"
    error = _error(target.prediction.GetModelMetadata, request)
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_get_model_status(target: Target) -> None:
    from tensorflow_serving.apis import get_model_status_pb2

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    response = target.model_service.GetModelStatus(request, timeout=30)
    assert len(response.model_version_status) == 1
    status = response.model_version_status[0]
    assert (status.version, status.state, status.status.error_code) == (1, 30, 0)
    request.model_spec.version.value = 3
    error = _error(target.model_service.GetModelStatus, request)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == f"Could not find version 3 of model {MODEL}"
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "nope"
    error = _error(target.model_service.GetModelStatus, request)
    assert error.details() == "Could not find any versions of model nope"


def test_unimplemented_rpcs(target: Target) -> None:
    if target.kind != "embedded":
        pytest.skip(
            "TF Serving implements Classify; only the embedded server answers UNIMPLEMENTED"
        )
    from tensorflow_serving.apis import classification_pb2, model_management_pb2

    error = _error(target.prediction.Classify, classification_pb2.ClassificationRequest())
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    error = _error(
        target.model_service.HandleReloadConfigRequest, model_management_pb2.ReloadConfigRequest()
    )
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED


def test_grpc_metrics(target: Target) -> None:
    target.prediction.Predict(_request(["abc"], [0]), timeout=30)
    text = target.metrics()
    assert (
        f':tensorflow:serving:request_latency_bucket{{model_name="{MODEL}",API="Predict",'
        'entrypoint="GRPC",le="+Inf"}' in text
    )
    assert "# TYPE :tensorflow:serving:runtime_latency histogram" in text
