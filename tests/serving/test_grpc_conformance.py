"""gRPC API conformance with the official ``tensorflow-serving-api`` stubs, run against every
target kind (the embedded server, and the real ``tensorflow/serving`` image where a Docker engine
is reachable). Each test cites, with ``@source``, the TF Serving 2.19.1 source (under
``tensorflow_serving/``) or TensorFlow 2.19 source that decides what it expects."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest
import serving_fixture_model as fm
from serving_targets import MODEL, Target, source


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


@source(
    "servables/tensorflow/predict_util.cc: RunPredict fills the response model_spec (name, "
    "signature, version) and writes outputs with Tensor::AsProtoField (typed value fields)",
)
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


@source(
    "servables/tensorflow/predict_util.cc: PreProcessPrediction: 'output tensor alias not found "
    "in signature: A Outputs expected to be in the set {...}.', 'duplicate output tensor alias: A'",
)
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


@source("servables/tensorflow/predict_util.cc: the request's signature_name selects the "
        "SignatureDef")
def test_predict_other_signature(target: Target) -> None:
    tf = _tf()
    request = _request(signature_name="tasks")
    request.inputs["unused"].CopyFrom(tf.make_tensor_proto([0, 0, 0], dtype=tf.int32))
    response = target.prediction.Predict(request, timeout=30)
    assert response.model_spec.signature_name == "tasks"
    assert tf.make_ndarray(response.outputs["name"]).shape == (3, 3)


@source(
    "core/basic_manager.cc: NOT_FOUND 'Servable not found for request: ...'",
    "model_servers/server_core.cc: 'Unrecognized servable version label: L', 'ModelSpec has no "
    "name specified.'",
    "servables/tensorflow/predict_util.cc: FAILED_PRECONDITION 'Serving signature key \"S\" not "
    "found.'",
)
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


def _refuses_three_values_in_shape_two(target: Target) -> None:
    """A task_id tensor of shape [2] that packs three values: "tensor parsing error"."""
    tf = _tf()
    request = _request(["a"])
    packed = tf.make_tensor_proto([0, 1, 2], dtype=tf.int32)
    packed.tensor_shape.dim[0].size = 2
    request.inputs["task_id"].CopyFrom(packed)
    error = _error(target.prediction.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "tensor parsing error: task_id"


@source(
    "servables/tensorflow/predict_util.cc: VerifyRequestInputsSize ('input size does not match "
    "signature: ...')",
    "TensorFlow 2.19 cc/saved_model/util.cc: GetInputValues ('Signature input alias: A(feed name: "
    "N) not found in request and no default value provided. ...'; 'tensor parsing error: A')",
    "TensorFlow 2.19 core/framework/tensor.cc: Tensor::FromProto fails when tensor_content does "
    "not hold exactly the shape",
)
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
    _refuses_three_values_in_shape_two(target)


@source(
    "servables/tensorflow/predict_util.cc: RunPredict returns the session's own error (the model's "
    "Assert, INVALID_ARGUMENT); the server keeps serving",
)
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


@source("servables/tensorflow/predict_impl.cc: INVALID_ARGUMENT 'Missing ModelSpec'")
def test_predict_missing_model_spec(target: Target) -> None:
    from tensorflow_serving.apis import predict_pb2

    error = _error(target.prediction.Predict, predict_pb2.PredictRequest())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Missing ModelSpec"


@source(
    "servables/tensorflow/get_model_metadata_impl.cc: 'GetModelMetadataRequest must specify at "
    "least one metadata_field', 'Metadata field F is not supported', the SignatureDefMap packed in "
    "an Any",
)
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


@source(
    "model_servers/get_model_status_impl.cc: one ModelVersionStatus per version; NOT_FOUND 'Could "
    "not find version V of model M' / 'Could not find any versions of model M'",
)
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


@source(
    "servables/tensorflow/multi_inference.cc: Infer() fails UNIMPLEMENTED 'Unsupported signature "
    "method_name: ' for a task that is neither classify nor regress",
    "model_servers/model_service_impl.cc: HandleReloadConfigRequest refuses a config that is "
    "not a ModelConfigList (INVALID_ARGUMENT 'ServerModelConfig type not supported by "
    "HandleReloadConfigRequest. Only ModelConfigList is currently supported')",
)
def test_multi_inference_and_reload_config_refusals(target: Target) -> None:
    from tensorflow_serving.apis import inference_pb2, model_management_pb2

    request = inference_pb2.MultiInferenceRequest()
    request.tasks.add().model_spec.name = MODEL
    request.tasks[0].method_name = "tensorflow/serving/predict"
    request.input.example_list.examples.add()
    error = _error(target.prediction.MultiInference, request)
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert error.details() == "Unsupported signature method_name: tensorflow/serving/predict"
    error = _error(
        target.model_service.HandleReloadConfigRequest, model_management_pb2.ReloadConfigRequest()
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
        "ModelConfigList is currently supported"
    )


@source(
    "model_servers/prediction_service_impl.cc: RecordRequestLatency(model, 'Predict', 'GRPC') on "
    "success; servables/tensorflow/predict_util.cc: RecordRuntimeLatency",
)
def test_grpc_metrics(target: Target) -> None:
    target.prediction.Predict(_request(["abc"], [0]), timeout=30)
    text = target.metrics()
    assert (
        f':tensorflow:serving:request_latency_bucket{{model_name="{MODEL}",API="Predict",'
        'entrypoint="GRPC",le="+Inf"}' in text
    )
    assert "# TYPE :tensorflow:serving:runtime_latency histogram" in text


@source(
    "TensorFlow 2.19 core/common_runtime/direct_session.cc: Run passes the feeds, sorted by "
    "tensor name, as call frame arguments; FunctionCallFrame::SetArgs answers 'Expects arg[i] to "
    "be T but U is provided' (INVALID_ARGUMENT)",
)
def test_wrong_input_dtype(target: Target) -> None:
    tf = _tf()
    # Feed names: serving_default_task_id:0 (arg[0]) < serving_default_text:0 (arg[1]).
    request = _request(["a"])
    request.inputs["task_id"].CopyFrom(tf.make_tensor_proto([0], dtype=tf.int64))
    error = _error(target.prediction.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Expects arg[0] to be int32 but int64 is provided"
    request = _request(tasks=[0])
    request.inputs["text"].CopyFrom(tf.make_tensor_proto([1.5], dtype=tf.float32))
    error = _error(target.prediction.Predict, request)
    assert error.details() == "Expects arg[1] to be string but float is provided"
    request.inputs["task_id"].CopyFrom(tf.make_tensor_proto([0], dtype=tf.int64))
    error = _error(target.prediction.Predict, request)
    assert error.details() == "Expects arg[0] to be int32 but int64 is provided"
    assert target.prediction.Predict(_request(["a"], [0]), timeout=30).model_spec.version.value


def _typed(dtype: int, field: str, values: list[Any], dims: list[int]) -> object:
    from tensorflow.core.framework import tensor_pb2

    proto = tensor_pb2.TensorProto(dtype=dtype)
    getattr(proto, field).extend(values)
    for size in dims:
        proto.tensor_shape.dim.add().size = size
    return proto


@source(
    "TensorFlow 2.19 core/framework/tensor.cc: Tensor::FromProto from typed value fields "
    "(FromProtoField): the first n values when there are more, the last value repeated when "
    "there are fewer, default values when there are none; tensor_content must hold exactly the "
    "shape",
)
def test_tensor_value_counts(target: Target) -> None:
    from tensorflow.core.framework import types_pb2

    tf = _tf()
    request = _request()
    request.inputs["text"].CopyFrom(
        _typed(types_pb2.DT_STRING, "string_val", [b"abc", b"zzzzz"], [1])
    )
    request.inputs["task_id"].CopyFrom(_typed(types_pb2.DT_INT32, "int_val", [2, 0, 1], [1]))
    outputs = target.prediction.Predict(request, timeout=30).outputs
    assert tf.make_ndarray(outputs["top_score"]).tolist() == pytest.approx(
        [float(fm.expected("abc", 2)["top_score"])]
    )
    request = _request()
    request.inputs["text"].CopyFrom(_typed(types_pb2.DT_STRING, "string_val", [b"ab"], [3]))
    request.inputs["task_id"].CopyFrom(_typed(types_pb2.DT_INT32, "int_val", [0, 1], [3]))
    outputs = target.prediction.Predict(request, timeout=30).outputs
    labels = tf.make_ndarray(outputs["top_label"]).tolist()
    assert labels == [fm.expected("ab", t)["top_label"].encode() for t in (0, 1, 1)]
    request = _request()
    request.inputs["text"].CopyFrom(_typed(types_pb2.DT_STRING, "string_val", [], [2]))
    request.inputs["task_id"].CopyFrom(_typed(types_pb2.DT_INT32, "int_val", [], [2]))
    outputs = target.prediction.Predict(request, timeout=30).outputs
    assert tf.make_ndarray(outputs["top_label"]).tolist() == [
        fm.expected("", 0)["top_label"].encode()
    ] * 2
    _refuses_three_values_in_shape_two(target)


@source(
    "TensorFlow 2.19 core/framework/tensor_shape.cc: a shape of 2^40 elements in one dimension "
    "is valid, but Tensor::FromProto cannot allocate it: INVALID_ARGUMENT",
    "the embedded server (serving/_limits.py): refuses it first, naming its examples limit",
)
def test_huge_declared_dimension(target: Target) -> None:
    from tensorflow.core.framework import types_pb2

    request = _request(["a"])
    request.inputs["task_id"].CopyFrom(_typed(types_pb2.DT_INT32, "int_val", [0], [2**40]))
    error = _error(target.prediction.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert target.prediction.Predict(_request(["a"], [0]), timeout=30).model_spec.version.value


@source(
    "model_servers/grpc_status_util.cc: ToGRPCStatus keeps the first 1024 bytes of a longer "
    "message and appends '...TRUNCATED' (every RPC of prediction_service_impl.cc and "
    "model_service_impl.cc)",
)
def test_long_messages_are_truncated(target: Target) -> None:
    name = "s" * 2000
    error = _error(target.prediction.Predict, _request(["a"], [0], signature_name=name))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    full = f'Serving signature key "{name}" not found.'
    assert error.details() == full[:1024] + "...TRUNCATED"
    short = "s" * 900
    error = _error(target.prediction.Predict, _request(["a"], [0], signature_name=short))
    assert error.details() == f'Serving signature key "{short}" not found.'


@source(
    "servables/tensorflow/classification_service.cc / regression_service.cc: 'Missing ModelSpec', "
    "then the servable handle (NOT_FOUND), then RunClassify / RunRegress",
    "servables/tensorflow/classifier.cc: GetClassificationSignatureDef ('No signature was found "
    "with the name: S'), PreProcessClassification ('Expected one input Tensor.', 'Expected one "
    "or two output Tensors, found N'), all before the input is looked at",
    "servables/tensorflow/regressor.cc: PreProcessRegression ('Expected one output Tensor.')",
)
def test_classify_and_regress(target: Target) -> None:
    from tensorflow_serving.apis import classification_pb2, regression_pb2

    for call, message in (
        (target.prediction.Classify, classification_pb2.ClassificationRequest),
        (target.prediction.Regress, regression_pb2.RegressionRequest),
    ):
        error = _error(call, message())
        assert (error.code(), error.details()) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "Missing ModelSpec",
        )
        request = message()
        request.model_spec.name = MODEL
        request.input.example_list.examples.add()
        error = _error(call, request)
        assert (error.code(), error.details()) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "Expected one input Tensor.",
        )
        request.model_spec.signature_name = "nope"
        error = _error(call, request)
        assert error.details() == "No signature was found with the name: nope"
        request.model_spec.name = "nope"
        error = _error(call, request)
        assert error.code() == grpc.StatusCode.NOT_FOUND
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "tasks"
    error = _error(target.prediction.Classify, request)
    assert error.details() == "Expected one or two output Tensors, found 3"
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "tasks"
    error = _error(target.prediction.Regress, request)
    assert error.details() == "Expected one output Tensor."
