"""TF Serving's own tests, run against ``headswitch serve``.

Ported from tensorflow/serving at tag 2.19.1 (cases and expected values; the code is this
project's): ``model_servers/tensorflow_model_server_test.py`` with its test base
``model_servers/test_util/tensorflow_model_server_test_base.py`` (servers started with the same
command lines, ``tf_serving_harness.py``), ``model_servers/http_rest_api_handler_test.cc`` (its
``ProcessRequest`` calls sent over HTTP) and the examples of ``g3doc/api_rest.md``. The test
models are built by ``tf_serving_models.py``. Each test cites its source as
``file:line name``; the file paths are under ``tensorflow_serving/``.

The TF Lite and profiler cases get a refusal that names the feature (the embedded server
serves neither); they check that refusal.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tf_serving_models as models
from serving_targets import source
from tf_serving_harness import Served, ServerPool

TEST = "model_servers/tensorflow_model_server_test.py"
BASE = "model_servers/test_util/tensorflow_model_server_test_base.py"
HANDLER = "model_servers/http_rest_api_handler_test.cc"
REST_DOC = "g3doc/api_rest.md"
RPC_TIMEOUT = 20.0  # tensorflow_model_server_test.py line 57

pytestmark = pytest.mark.slow


# ------------------------------------------------------------------------------------------
# Test data (servables/tensorflow/testdata, built here)

# The config the reload tests write (test lines 318-326).
_CONFIG = """
model_config_list: {{
  config: {{
    name: "{name}",
    base_path: "{model_path}",
    model_platform: "tensorflow"
  }}
}}
"""


class _TestData:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.half_plus_two = root / "saved_model_half_plus_two_cpu"
        models.half_plus_two_tf1(self.half_plus_two)
        self.half_plus_two_tf2 = root / "saved_model_half_plus_two_tf2_cpu"
        models.half_plus_two_tf2(self.half_plus_two_tf2)
        self.half_plus_three = root / "saved_model_half_plus_three"
        models.half_plus_three(self.half_plus_three)
        # http_rest_api_handler_test.cc serves TensorFlow's half_plus_two (with
        # classify_x2_to_y3) as "saved_model_half_plus_two_2_versions", version 123 only.
        self.two_versions = root / "saved_model_half_plus_two_2_versions"
        models.half_plus_two_tf1(self.two_versions, classify_x2=True)
        models.half_plus_two_tf1(self.two_versions, classify_x2=True, version="00000124")
        self.tflite = root / "saved_model_half_plus_two_tflite"
        self.tflite_with_sigdef = root / "saved_model_half_plus_two_tflite_with_sigdef"
        for folder in (self.tflite, self.tflite_with_sigdef):
            _write_tflite(folder / models.VERSION_DIR)
        self.bad_model_config = root / "bad_model_config.txt"
        self.bad_model_config.write_text("improperly formatted file")  # as TF Serving's file
        self.monitoring_config = root / "monitoring_config.txt"
        self.monitoring_config.write_text(
            'prometheus_config: {\n  enable: true,\n  path: "/monitoring/prometheus/metrics"\n}\n')
        # __BuildModelConfigFile (test lines 70-83): good_model_config.txt with the paths
        self.reload_config = root / "reload" / "model_config.txt"
        self.reload_config_zero = root / "reload-zero" / "model_config.txt"
        for config in (self.reload_config, self.reload_config_zero):
            config.parent.mkdir()
            config.write_text(_CONFIG.format(name="half_plus_two", model_path=self.half_plus_two))
        # The models tests of the module build for themselves (test lines 635-788).
        self.saved_model_save = root / "tf_saved_model_save"
        models.checkpoint_module(self.saved_model_save, multiple_signatures=False)
        self.saved_model_save_multiple = root / "tf_saved_model_save_multiple_signatures"
        models.checkpoint_module(self.saved_model_save_multiple, multiple_signatures=True)
        self.keras_sequential = root / "keras_sequential_saved_model_save"
        models.keras_sequential(self.keras_sequential)
        self.keras_distributed = root / "keras_distributed_sequential_saved_model_save"
        models.keras_sequential(self.keras_distributed, distributed=True)
        self.tf_text = root / "tf_text_regression"
        models.tf_text_regression(self.tf_text)
        self.good_model_config = root / "good_model_config.conf"
        self.good_model_config.write_text(
            "model_config_list: {\n"
            f'  config: {{ name: "half_plus_two", base_path: "{self.half_plus_two}", '
            'model_platform: "tensorflow" },\n'
            f'  config: {{ name: "half_plus_three", base_path: "{self.half_plus_three}", '
            'model_platform: "tensorflow" }\n}\n')


def _write_tflite(version_dir: Path) -> None:
    """A ``model.tflite`` (half plus two, converted by TensorFlow's TF Lite converter)."""
    import tensorflow as tf

    version_dir.mkdir(parents=True)

    @tf.function(input_signature=[tf.TensorSpec([1, 1], tf.float32, name="x")])
    def half_plus_two(x: Any) -> Any:
        return {"y": 0.5 * x + 2.0}

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [half_plus_two.get_concrete_function()])
    (version_dir / "model.tflite").write_bytes(converter.convert())


@pytest.fixture(scope="module")
def testdata(tmp_path_factory: pytest.TempPathFactory) -> _TestData:
    return _TestData(tmp_path_factory.mktemp("testdata"))


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    servers = ServerPool(tmp_path_factory.mktemp("servers"))
    yield servers
    servers.close()


def _version(model_path: Path) -> int:
    """``_GetModelVersion`` (test base line 282): the one integer folder."""
    return int(next(p.name for p in model_path.iterdir() if p.name.isdigit()))


# ------------------------------------------------------------------------------------------
# The test base's helpers


def _predict(address: str, *, expected_output: float, expected_version: int,
             model_name: str = "default", specify_output: bool = True,
             batch_input: bool = False, signature_name: str = "serving_default",
             rpc_timeout: float = 5.0) -> None:
    """``VerifyPredictRequest`` (test base lines 241-276)."""
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].float_val.append(2.0)
    request.inputs["x"].tensor_shape.dim.add().size = 1
    if batch_input:
        request.inputs["x"].tensor_shape.dim.add().size = 1
    if specify_output:
        request.output_filter.append("y")
    with grpc.insecure_channel(address) as channel:
        result = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, rpc_timeout)
    assert "y" in result.outputs
    assert result.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert len(result.outputs["y"].float_val) == 1
    assert result.outputs["y"].float_val[0] == expected_output
    _model_spec(result.model_spec, model_name, signature_name, expected_version)


def _model_spec(spec: Any, name: str, signature_name: str, version: int) -> None:
    """``_VerifyModelSpec`` (test base lines 341-359)."""
    assert (spec.name, spec.signature_name, spec.version.value) == (
        name, signature_name, version)


def _rest(url: str, body: Any = None) -> Any:
    """``CallREST`` (test base lines 98-115), one attempt: the decoded JSON answer."""
    data = json.dumps(body).encode("utf-8") if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as reply:
        return json.loads(reply.read().decode())


def _sorted(value: Any) -> Any:
    """``SortedObject`` (test base lines 118-127)."""
    if isinstance(value, dict):
        return sorted((k, _sorted(v)) for k, v in value.items())
    if isinstance(value, list):
        return sorted(_sorted(x) for x in value)
    return value


def _stub(address: str) -> Any:
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    return prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(address))


def _default(pool: ServerPool, path: Path, **extra: Any) -> Served:
    return pool.run(model_name="default", model_path=str(path), **extra)


# ------------------------------------------------------------------------------------------
# tensorflow_model_server_test.py


@source(f"{TEST}:97 testGetModelStatus: one version, 123, error_code 0")
def test_get_model_status(pool: ServerPool, testdata: _TestData) -> None:
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    served = _default(pool, testdata.half_plus_two)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "default"
    with grpc.insecure_channel(served.grpc) as channel:
        result = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            request, RPC_TIMEOUT)
    assert len(result.model_version_status) == 1
    assert result.model_version_status[0].version == 123
    assert result.model_version_status[0].status.error_code == 0


@source(f"{TEST}:116 testGetModelMetadata: name, version 123, one metadata entry "
        "'signature_def'")
def test_get_model_metadata(pool: ServerPool, testdata: _TestData) -> None:
    from tensorflow_serving.apis import get_model_metadata_pb2

    served = _default(pool, testdata.half_plus_two)
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "default"
    request.metadata_field.append("signature_def")
    result = _stub(served.grpc).GetModelMetadata(request, RPC_TIMEOUT)
    assert result.model_spec.name == "default"
    assert result.model_spec.version.value == _version(testdata.half_plus_two)
    assert len(result.metadata) == 1
    assert "signature_def" in result.metadata


def _x_is_2(request: Any, signature: str) -> Any:
    """``request`` to the model ``default``'s ``signature`` with one example: x = 2.0."""
    request.model_spec.name = "default"
    request.model_spec.signature_name = signature
    example = request.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.extend([2.0])
    return request


def _classify(address: str, version: int) -> None:
    """``_TestClassify`` (test lines 137-163)."""
    from tensorflow_serving.apis import classification_pb2

    request = _x_is_2(classification_pb2.ClassificationRequest(), "classify_x_to_y")
    result = _stub(address).Classify(request, RPC_TIMEOUT)
    assert len(result.result.classifications) == 1
    assert len(result.result.classifications[0].classes) == 1
    assert result.result.classifications[0].classes[0].score == 3.0
    _model_spec(result.model_spec, "default", "classify_x_to_y", version)


def _regress(address: str, version: int) -> None:
    """``_TestRegress`` (test lines 173-197)."""
    from tensorflow_serving.apis import regression_pb2

    request = _x_is_2(regression_pb2.RegressionRequest(), "regress_x_to_y")
    result = _stub(address).Regress(request, RPC_TIMEOUT)
    assert len(result.result.regressions) == 1
    assert result.result.regressions[0].value == 3.0
    _model_spec(result.model_spec, "default", "regress_x_to_y", version)


def _multi_inference(address: str, version: int) -> None:
    """``_TestMultiInference`` (test lines 207-242)."""
    from tensorflow_serving.apis import inference_pb2

    request = inference_pb2.MultiInferenceRequest()
    request.tasks.add().model_spec.name = "default"
    request.tasks[0].model_spec.signature_name = "regress_x_to_y"
    request.tasks[0].method_name = "tensorflow/serving/regress"
    request.tasks.add().model_spec.name = "default"
    request.tasks[1].model_spec.signature_name = "classify_x_to_y"
    request.tasks[1].method_name = "tensorflow/serving/classify"
    example = request.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.extend([2.0])
    result = _stub(address).MultiInference(request, RPC_TIMEOUT)
    assert len(result.results) == 2
    assert result.results[0].regression_result.regressions[0].value == 3.0
    assert result.results[1].classification_result.classifications[0].classes[0].score == 3.0
    for i in range(2):
        _model_spec(result.results[i].model_spec, "default",
                    request.tasks[i].model_spec.signature_name, version)


@source(f"{TEST}:165 testClassify: score 3.0, model spec with signature classify_x_to_y")
def test_classify(pool: ServerPool, testdata: _TestData) -> None:
    _classify(_default(pool, testdata.half_plus_two).grpc, _version(testdata.half_plus_two))


@source(f"{TEST}:169 testClassifyTf2: the same on the TF2 model")
def test_classify_tf2(pool: ServerPool, testdata: _TestData) -> None:
    path = testdata.half_plus_two_tf2
    _classify(_default(pool, path).grpc, _version(path))


@source(f"{TEST}:199 testRegress: value 3.0")
def test_regress(pool: ServerPool, testdata: _TestData) -> None:
    _regress(_default(pool, testdata.half_plus_two).grpc, _version(testdata.half_plus_two))


@source(f"{TEST}:203 testRegressTf2: the same on the TF2 model")
def test_regress_tf2(pool: ServerPool, testdata: _TestData) -> None:
    path = testdata.half_plus_two_tf2
    _regress(_default(pool, path).grpc, _version(path))


@source(f"{TEST}:244 testMultiInference: regression 3.0 and classification score 3.0 in one "
        "request")
def test_multi_inference(pool: ServerPool, testdata: _TestData) -> None:
    path = testdata.half_plus_two
    _multi_inference(_default(pool, path).grpc, _version(path))


@source(f"{TEST}:248 testMultiInferenceTf2: the same on the TF2 model")
def test_multi_inference_tf2(pool: ServerPool, testdata: _TestData) -> None:
    path = testdata.half_plus_two_tf2
    _multi_inference(_default(pool, path).grpc, _version(path))


@source(f"{TEST}:252 testPredictSavedModel -> {BASE}:361 _TestPredict: y = 3.0 for x = 2.0, "
        "with and without output_filter")
def test_predict_saved_model(pool: ServerPool, testdata: _TestData) -> None:
    path = testdata.half_plus_two
    address = _default(pool, path).grpc
    _predict(address, expected_output=3.0, expected_version=_version(path))
    _predict(address, expected_output=3.0, specify_output=False, expected_version=_version(path))


@source(f"{TEST}:277 testGoodModelConfig: half_plus_two answers 3.0, half_plus_three 4.0")
def test_good_model_config(pool: ServerPool, testdata: _TestData) -> None:
    address = pool.run(model_config_file=str(testdata.good_model_config)).grpc
    for name, path, output in (("half_plus_two", testdata.half_plus_two, 3.0),
                               ("half_plus_three", testdata.half_plus_three, 4.0)):
        _predict(address, model_name=name, expected_output=output,
                 expected_version=_version(path))
        _predict(address, model_name=name, expected_output=output, specify_output=False,
                 expected_version=_version(path))


@source(f"{TEST}:300 testBadModelConfig: stderr has 'Error parsing text-format "
        "tensorflow.serving.ModelServerConfig'")
def test_bad_model_config(pool: ServerPool, testdata: _TestData) -> None:
    served = pool.run(model_config_file=str(testdata.bad_model_config),
                      wait_for_server_ready_=False)
    served.process.wait(120)
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in served.log()


def _reload(pool: ServerPool, testdata: _TestData, config: Path, *, poll_period: int) -> str:
    """Serve ``config`` naming half_plus_two (polled every ``poll_period`` s), check that it
    answers 3.0, point ``config`` at half_plus_three, wait one poll period and a second; the
    server's gRPC address."""
    config.write_text(_CONFIG.format(name="half_plus_two", model_path=testdata.half_plus_two))
    address: str = pool.run(model_config_file=str(config),
                            model_config_file_poll_period=poll_period).grpc
    _predict(address, model_name="half_plus_two", expected_output=3.0, specify_output=False,
             expected_version=_version(testdata.half_plus_two))
    config.write_text(_CONFIG.format(name="half_plus_three",
                                     model_path=testdata.half_plus_three))
    time.sleep(poll_period + 1)
    return address


@source(f"{TEST}:315 testModelConfigReload: after the config file changes to half_plus_three "
        "(poll period 1 s, then 2 s of sleep), half_plus_three answers 4.0")
def test_model_config_reload(pool: ServerPool, testdata: _TestData) -> None:
    address = _reload(pool, testdata, testdata.reload_config, poll_period=1)
    _predict(address, model_name="half_plus_three", expected_output=4.0, specify_output=False,
             expected_version=_version(testdata.half_plus_three))


@source(f"{TEST}:369 testModelConfigReloadWithZeroPollPeriod: with poll period 0 the config "
        "file is not read again: half_plus_two still answers 3.0")
def test_model_config_reload_with_zero_poll_period(
        pool: ServerPool, testdata: _TestData) -> None:
    address = _reload(pool, testdata, testdata.reload_config_zero, poll_period=0)
    _predict(address, model_name="half_plus_two", expected_output=3.0, specify_output=False,
             expected_version=_version(testdata.half_plus_three))


@source(f"{TEST}:424 testGoodGrpcChannelArgs: the server starts with "
        "grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb and answers 3.0")
def test_good_grpc_channel_args(pool: ServerPool, testdata: _TestData) -> None:
    served = _default(pool, testdata.half_plus_two,
                      grpc_channel_arguments="grpc.max_connection_age_ms=2000,"
                      "grpc.lb_policy_name=grpclb")
    _predict(served.grpc, expected_output=3.0, specify_output=False,
             expected_version=_version(testdata.half_plus_three))


@source(f"{TEST}:438 testClassifyREST: {{'results': [[['', 3.0]]]}}")
def test_classify_rest(pool: ServerPool, testdata: _TestData) -> None:
    rest = _default(pool, testdata.half_plus_two).rest
    assert _rest(f"http://{rest}/v1/models/default:classify",
                 {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}) == {
        "results": [[["", 3.0]]]}


@source(f"{TEST}:458 testRegressREST: {{'results': [3.0]}}")
def test_regress_rest(pool: ServerPool, testdata: _TestData) -> None:
    rest = _default(pool, testdata.half_plus_two).rest
    assert _rest(f"http://{rest}/v1/models/default:regress",
                 {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}) == {
        "results": [3.0]}


@source(f"{TEST}:478 testPredictREST: instances [2, 3, 4] (shape [3] into a [-1, 1] "
        "signature) -> {'predictions': [3.0, 3.5, 4.0]}")
def test_predict_rest(pool: ServerPool, testdata: _TestData) -> None:
    rest = _default(pool, testdata.half_plus_two).rest
    assert _rest(f"http://{rest}/v1/models/default:predict",
                 {"instances": [2.0, 3.0, 4.0]}) == {"predictions": [3.0, 3.5, 4.0]}


@source(f"{TEST}:499 testPredictColumnarREST: {{'outputs': [3.0, 3.5, 4.0]}}")
def test_predict_columnar_rest(pool: ServerPool, testdata: _TestData) -> None:
    rest = _default(pool, testdata.half_plus_two).rest
    assert _rest(f"http://{rest}/v1/models/default:predict",
                 {"inputs": [2.0, 3.0, 4.0]}) == {"outputs": [3.0, 3.5, 4.0]}


@source(f"{TEST}:520 testGetStatusREST: version '123' AVAILABLE, error_code 'OK'")
def test_get_status_rest(pool: ServerPool, testdata: _TestData) -> None:
    rest = _default(pool, testdata.half_plus_two).rest
    assert _rest(f"http://{rest}/v1/models/default") == {"model_version_status": [{
        "version": "123", "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""}}]}


def _info(name: str, dtype: str, dims: list[int] | None) -> dict[str, Any]:
    """A TensorInfo as TF Serving prints it (``dims`` None: unknown rank)."""
    shape: dict[str, Any] = {"dim": [], "unknown_rank": True} if dims is None else {
        "dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False}
    return {"dtype": dtype, "tensor_shape": shape, "name": name}


def _signature(inputs: dict[str, Any], outputs: dict[str, Any], method: str) -> dict[str, Any]:
    return {"inputs": inputs, "outputs": outputs, "method_name": f"tensorflow/serving/{method}",
            "defaults": {}}


def _half_plus_two_metadata(name: str, classify_x2: bool) -> dict[str, Any]:
    """What servables/tensorflow/testdata/half_plus_two_model_metadata.json (and
    saved_model_half_plus_two_2_versions_metadata.json, with classify_x2_to_y3) hold."""
    column = [-1, 1]
    example = _info("tf_example:0", "DT_STRING", None)
    signatures = {
        "regress_x2_to_y3": _signature({"inputs": _info("x2:0", "DT_FLOAT", column)},
                                       {"outputs": _info("y3:0", "DT_FLOAT", column)}, "regress"),
        "serving_default": _signature({"x": _info("x:0", "DT_FLOAT", column)},
                                      {"y": _info("y:0", "DT_FLOAT", column)}, "predict"),
        "classify_x_to_y": _signature({"inputs": example},
                                      {"scores": _info("y:0", "DT_FLOAT", column)}, "classify"),
        "regress_x_to_y2": _signature({"inputs": example},
                                      {"outputs": _info("y2:0", "DT_FLOAT", column)}, "regress"),
        "regress_x_to_y": _signature({"inputs": example},
                                     {"outputs": _info("y:0", "DT_FLOAT", column)}, "regress"),
    }
    if classify_x2:
        signatures["classify_x2_to_y3"] = _signature(
            {"inputs": _info("x2:0", "DT_FLOAT", column)},
            {"scores": _info("y3:0", "DT_FLOAT", column)}, "classify")
    return {"model_spec": {"name": name, "signature_name": "", "version": "123"},
            "metadata": {"signature_def": {"signature_def": signatures}}}


@source(f"{TEST}:549 testGetModelMetadataREST: equal, sorted, to "
        "servables/tensorflow/testdata/half_plus_two_model_metadata.json")
def test_get_model_metadata_rest(pool: ServerPool, testdata: _TestData) -> None:
    rest = _default(pool, testdata.half_plus_two).rest
    got = _rest(f"http://{rest}/v1/models/default/metadata")
    assert _sorted(got) == _sorted(_half_plus_two_metadata("default", classify_x2=False))


@source(f"{TEST}:581 testPrometheusEndpoint: /monitoring/prometheus/metrics has '# TYPE'")
def test_prometheus_endpoint(pool: ServerPool, testdata: _TestData) -> None:
    rest = _default(pool, testdata.half_plus_two,
                    monitoring_config_file=str(testdata.monitoring_config)).rest
    with urllib.request.urlopen(f"http://{rest}/monitoring/prometheus/metrics",
                                timeout=30) as reply:
        assert "# TYPE" in reply.read().decode("utf-8")


@source(f"{TEST}:603 testPredictUDS: Predict over the Unix socket of --grpc_socket_path "
        "answers 3.0")
def test_predict_uds(pool: ServerPool, testdata: _TestData) -> None:
    served = _default(pool, testdata.half_plus_two)
    _predict(f"unix:{served.socket_path}", expected_output=3.0, specify_output=False,
             expected_version=_version(testdata.half_plus_three))


def _tflite_refused(pool: ServerPool, path: Path) -> None:
    served = pool.run(model_name="default", model_path=str(path), model_type="tflite",
                      wait_for_server_ready_=False)
    assert served.process.wait(120) == 1
    log = served.log()
    assert "unrecognized arguments" not in log
    assert ("model.tflite: TF Lite models are not served by headswitch's embedded server "
            "(--prefer_tflite_model)") in log


@source(f"{TEST}:615 testPredictOnTfLite: TF Lite is not served here: the server refuses the "
        "model.tflite version, naming TF Lite (TF Serving answers 3.0)")
def test_predict_on_tflite(pool: ServerPool, testdata: _TestData) -> None:
    _tflite_refused(pool, testdata.tflite)


@source(f"{TEST}:625 testPredictWithSignatureDefOnTfLite: refused the same way")
def test_predict_with_signature_def_on_tflite(pool: ServerPool, testdata: _TestData) -> None:
    _tflite_refused(pool, testdata.tflite_with_sigdef)


@source(f"{TEST}:635 test_tf_saved_model_save: y = 3 * 2 * x = 12.0 from a "
        "tf.train.Checkpoint whose function has an unknown-shape input")
def test_tf_saved_model_save(pool: ServerPool, testdata: _TestData) -> None:
    base = testdata.saved_model_save
    address = _default(pool, base).grpc
    _predict(address, expected_output=12.0, specify_output=False,
             expected_version=_version(base))


@source(f"{TEST}:654 test_tf_saved_model_save_multiple_signatures: custom_signature_key "
        "answers 2.0, serving_default 1.0")
def test_tf_saved_model_save_multiple_signatures(pool: ServerPool, testdata: _TestData) -> None:
    base = testdata.saved_model_save_multiple
    address = _default(pool, base).grpc
    _predict(address, expected_output=2.0, expected_version=_version(base),
             signature_name="custom_signature_key")
    _predict(address, expected_output=1.0, expected_version=_version(base))


@source(f"{TEST}:680 test_sequential_keras_saved_model_save: a Keras Sequential model (x -> "
        "identity y) saved by tf.saved_model.save answers 2.0 for a [1, 1] input")
def test_sequential_keras_saved_model_save(pool: ServerPool, testdata: _TestData) -> None:
    base = testdata.keras_sequential
    _predict(_default(pool, base).grpc, batch_input=True, specify_output=False,
             expected_output=2.0, expected_version=_version(base))


@source(f"{TEST}:704 test_distrat_sequential_keras_saved_model_save: the same model built "
        "under a two-CPU MirroredStrategy (a Dense of ones) answers 2.0")
def test_distrat_sequential_keras_saved_model_save(
        pool: ServerPool, testdata: _TestData) -> None:
    base = testdata.keras_distributed
    _predict(_default(pool, base).grpc, batch_input=True, specify_output=False,
             expected_output=2.0, expected_version=_version(base))


@source(f"{TEST}:736 test_profiler_service_with_valid_trace_request: the profiler is not "
        "served here; the trace request gets a refusal that names it")
def test_profiler_service_with_valid_trace_request(pool: ServerPool, testdata: _TestData) -> None:
    served = _default(pool, testdata.half_plus_two)
    request = b""  # an empty ProfileRequest: the refusal comes before the message is read
    with grpc.insecure_channel(served.grpc) as channel:
        profile = channel.unary_unary("/tensorflow.ProfilerService/Profile")
        with pytest.raises(grpc.RpcError) as info:
            profile(request, timeout=RPC_TIMEOUT)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "TF Serving's profiler service (tensorflow.ProfilerService) is not available" in (
        info.value.details() or "")


@source(f"{TEST}:775 test_tf_text: a model with TF Text ops answers 3.0 (the server has TF "
        "Text's ops)")
def test_tf_text(pool: ServerPool, testdata: _TestData) -> None:
    base = testdata.tf_text
    _predict(_default(pool, base).grpc, expected_output=3.0, expected_version=_version(base),
             rpc_timeout=600)


def _command_lines(testdata: _TestData) -> list[tuple[dict[str, Any], str]]:
    """The arguments of every distinct ``RunServer`` call of tensorflow_model_server_test.py,
    with what the server does: "serves", or the message it exits with."""
    tflite = ("model.tflite: TF Lite models are not served by headswitch's embedded server "
              "(--prefer_tflite_model)")

    def default(path: Path, **extra: Any) -> dict[str, Any]:
        return {"model_name": "default", "model_path": str(path), **extra}

    return [
        (default(testdata.half_plus_two), "serves"),  # lines 100, 119, 139, ... 741
        (default(testdata.half_plus_two_tf2), "serves"),  # _TestClassify & co. on TF2
        ({"model_config_file": str(testdata.good_model_config)}, "serves"),  # line 279
        ({"model_config_file": str(testdata.bad_model_config)},  # line 302
         "Error parsing text-format tensorflow.serving.ModelServerConfig"),
        ({"model_config_file": str(testdata.reload_config),  # line 337
          "model_config_file_poll_period": 1}, "serves"),
        ({"model_config_file": str(testdata.reload_config_zero),  # line 391
          "model_config_file_poll_period": 0}, "serves"),
        (default(testdata.half_plus_two, grpc_channel_arguments=(  # line 426
            "grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb")), "serves"),
        (default(testdata.half_plus_two,  # line 584
                 monitoring_config_file=str(testdata.monitoring_config)), "serves"),
        (default(testdata.tflite, model_type="tflite"), tflite),  # line 617
        (default(testdata.tflite_with_sigdef, model_type="tflite"), tflite),  # line 627
        (default(testdata.saved_model_save), "serves"),  # line 645
        (default(testdata.saved_model_save_multiple), "serves"),  # line 667
        (default(testdata.keras_sequential), "serves"),  # line 693
        (default(testdata.keras_distributed), "serves"),  # line 725
        (default(testdata.tf_text), "serves"),  # line 781
    ]


@source(f"{BASE}:146 RunServer: every command line the test base builds for the tests of "
        f"{TEST} is taken as it is (none refused as an unrecognized argument); each serves, or "
        "exits with what TF Serving exits with (a bad config file) or with the TF Lite refusal")
def test_every_command_line_runs(pool: ServerPool, testdata: _TestData) -> None:
    for arguments, outcome in _command_lines(testdata):
        served = pool.run(wait_for_server_ready_=outcome == "serves", **arguments)
        if outcome != "serves":
            served.process.wait(120)
            assert outcome in served.log(), served.flags
        else:
            assert served.process.poll() is None, (served.flags, served.log()[-2000:])
        assert "unrecognized arguments" not in served.log(), served.flags


# ------------------------------------------------------------------------------------------
# http_rest_api_handler_test.cc (ProcessRequest over HTTP)

MODEL_2V = "saved_model_half_plus_two_2_versions"


def _http(rest: str, method: str, path: str, body: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://{rest}{path}", method=method,
                                     data=None if body is None else body.encode())
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            status, text = reply.status, reply.read().decode()
            content_type = reply.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
        content_type = error.headers["Content-Type"]
    try:
        return status, (json.loads(text), content_type)
    except json.JSONDecodeError:
        return status, (text, content_type)


@pytest.fixture(scope="module")
def handler_server(pool: ServerPool, testdata: _TestData, tmp_path_factory: Any) -> Served:
    """``CreateServerCore`` (handler test lines 83-116): the model at version 123 (specific
    policy), then ``ReloadConfig`` with the label Version_Label -> 123."""
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc
    from tensorflow_serving.config import model_server_config_pb2

    folder = tmp_path_factory.mktemp("handler")
    config = model_server_config_pb2.ModelServerConfig()
    entry = config.model_config_list.config.add(
        name=MODEL_2V, base_path=str(testdata.two_versions), model_platform="tensorflow")
    entry.model_version_policy.specific.versions.append(123)
    (folder / "config.txt").write_text(str(config))
    served = pool.run(model_config_file=str(folder / "config.txt"))
    entry.version_labels["Version_Label"] = 123
    with grpc.insecure_channel(served.grpc) as channel:
        model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
            model_management_pb2.ReloadConfigRequest(config=config), RPC_TIMEOUT)
    return served


@source(f"{HANDLER}:173 kPathRegex: /v1/models is the API's; /statuspage and /index are not "
        "(no API answer: the HTTP server's 404 page)")
def test_handler_path_regex(handler_server: Served) -> None:
    status, (body, _) = _http(handler_server.rest, "GET", "/v1/models")
    assert status == 400 and body == {"error": "Missing model name in request."}
    for path in ("/statuspage", "/index"):
        status, (body, content_type) = _http(handler_server.rest, "GET", path)
        assert status == 404 and content_type == "text/html"


@source(f"{HANDLER}:179 UnsupportedApiCalls: INVALID_ARGUMENT 'Malformed request' (or 'Missing "
        "model name', 'Failed to convert version') for each unsupported method and path")
@pytest.mark.parametrize(("method", "path", "message"), [
    ("GET", "/v1/foo", "Malformed request"),
    ("POST", "/v1/foo", "Malformed request"),
    ("GET", "/v1/models", "Missing model name"),
    ("GET", "/v1/models/debug/model_name", "Malformed request"),
    ("POST", "/v1/models", "Malformed request"),
    ("GET", "/v1/models/foo:predict", "Malformed request"),
    ("GET", "/v1/models/foo/version/50:predict", "Malformed request"),
    ("POST", "/v1/models/foo/version/50:regress", "Malformed request"),
    ("POST", "/v1/models/foo/versions/HELLO:regress", "Malformed request"),
    ("POST", f"/v1/models/foo/versions/{2**64 - 1}:regress", "Failed to convert version"),
    ("POST", "/v1/models/foo/metadata", "Malformed request"),
    ("POST", "/v1/models/foo/label/some_label:regress", "Malformed request"),
    ("POST", "/v1/models/foo/versions/50/labels/some_label:regress", "Malformed request"),
    ("POST", "/v1/models/foo/versions/some_label:regress", "Malformed request"),
])
def test_handler_unsupported_api_calls(
        handler_server: Served, method: str, path: str, message: str) -> None:
    status, (body, _) = _http(handler_server.rest, method, path, "" if method == "POST" else None)
    assert status == 400
    assert message in body["error"]


@source(f"{HANDLER}:260 PredictModelNameVersionErrors: NOT_FOUND for an unknown model, an "
        "unknown model with a version, a valid name with version 99 appended")
@pytest.mark.parametrize("path", [
    "/v1/models/foo:predict", "/v1/models/foo/versions/50:predict",
    f"/v1/models/{MODEL_2V}99:predict",
])
def test_handler_predict_model_name_version_errors(handler_server: Served, path: str) -> None:
    status, _ = _http(handler_server.rest, "POST", path, '{ "instances": [1] }')
    assert status == 404


@source(f"{HANDLER}:283 PredictRequestErrors: 'JSON Parse error: The document is empty', "
        "'JSON Parse error: Invalid value', 'not of expected type: float', 'Unrecognized "
        "servable version label', ''signature_name' key must be a string value.'")
@pytest.mark.parametrize(("path", "body", "message"), [
    (f"/v1/models/{MODEL_2V}:predict", "", "JSON Parse error: The document is empty"),
    (f"/v1/models/{MODEL_2V}:predict", "instances = [1, 2]", "JSON Parse error: Invalid value"),
    (f"/v1/models/{MODEL_2V}:predict", '{ "instances": ["x", "y"] }',
     "not of expected type: float"),
    (f"/v1/models/{MODEL_2V}/labels/Version_Nonexistent:predict",
     '{ "instances": ["x", "y"] }', "Unrecognized servable version label"),
    (f"/v1/models/{MODEL_2V}:predict", '{ "signature_name": 100 }',
     "'signature_name' key must be a string value."),
])
def test_handler_predict_request_errors(
        handler_server: Served, path: str, body: str, message: str) -> None:
    status, (answer, _) = _http(handler_server.rest, "POST", path, body)
    assert status == 400
    assert message in answer["error"]


def _ok(rest: str, method: str, path: str, body: str | None, expected: Any) -> None:
    status, (answer, content_type) = _http(rest, method, path, body)
    assert status == 200, answer
    assert content_type == "application/json"
    assert answer == expected


@source(f"{HANDLER}:330 Predict: [[1, 2], [3, 4]] -> [[2.5, 3.0], [3.5, 4.0]] (a [2, 2] input "
        "to a [-1, 1] signature); by version, by label, with signature_name, columnar")
@pytest.mark.parametrize(("path", "body", "expected"), [
    (f"/v1/models/{MODEL_2V}:predict", '{"instances": [[1.0, 2.0], [3.0, 4.0]]}',
     {"predictions": [[2.5, 3.0], [3.5, 4.0]]}),
    (f"/v1/models/{MODEL_2V}/versions/123:predict", '{"instances": [1.0, 2.0]}',
     {"predictions": [2.5, 3.0]}),
    (f"/v1/models/{MODEL_2V}/labels/Version_Label:predict", '{"instances": [1.0, 2.0]}',
     {"predictions": [2.5, 3.0]}),
    (f"/v1/models/{MODEL_2V}/versions/123:predict",
     '{"signature_name": "serving_default", "instances": [3.0, 4.0]}',
     {"predictions": [3.5, 4.0]}),
    (f"/v1/models/{MODEL_2V}/versions/123:predict",
     '{"signature_name": "serving_default", "inputs": [3.0, 4.0]}', {"outputs": [3.5, 4.0]}),
])
def test_handler_predict(handler_server: Served, path: str, body: str, expected: Any) -> None:
    _ok(handler_server.rest, "POST", path, body, expected)


@source(f"{HANDLER}:387 Regress: x = 80 -> {{'results': [42]}}, latest, by version, by label")
@pytest.mark.parametrize("path", [
    f"/v1/models/{MODEL_2V}:regress", f"/v1/models/{MODEL_2V}/versions/123:regress",
    f"/v1/models/{MODEL_2V}/labels/Version_Label:regress",
])
def test_handler_regress(handler_server: Served, path: str) -> None:
    _ok(handler_server.rest, "POST", path,
        '{"signature_name": "regress_x_to_y", "examples": [ { "x": 80.0 } ] }', {"results": [42]})


@source(f"{HANDLER}:423 Classify: x = 20 -> [[['', 12]]] (latest); x = 10 -> [[['', 7]]] (by "
        "label)")
@pytest.mark.parametrize(("path", "x", "score"), [
    (f"/v1/models/{MODEL_2V}:classify", 20.0, 12),
    (f"/v1/models/{MODEL_2V}/labels/Version_Label:classify", 10.0, 7),
])
def test_handler_classify(handler_server: Served, path: str, x: float, score: int) -> None:
    body = json.dumps({"signature_name": "classify_x_to_y", "examples": [{"x": x}]})
    _ok(handler_server.rest, "POST", path, body, {"results": [[["", score]]]})


@source(f"{HANDLER}:448 GetStatus: version 123 AVAILABLE, for the model, the version and the "
        "label")
@pytest.mark.parametrize("path", [
    f"/v1/models/{MODEL_2V}", f"/v1/models/{MODEL_2V}/versions/123",
    f"/v1/models/{MODEL_2V}/labels/Version_Label",
])
def test_handler_get_status(handler_server: Served, path: str) -> None:
    _ok(handler_server.rest, "GET", path, None, {"model_version_status": [{
        "version": "123", "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""}}]})


@source(f"{HANDLER}:515 GetModelMetadata: equal to servables/tensorflow/testdata/"
        "saved_model_half_plus_two_2_versions_metadata.json")
def test_handler_get_model_metadata(handler_server: Served) -> None:
    _ok(handler_server.rest, "GET", f"/v1/models/{MODEL_2V}/metadata", None,
        _half_plus_two_metadata(MODEL_2V, classify_x2=True))


# ------------------------------------------------------------------------------------------
# g3doc/api_rest.md


@pytest.fixture(scope="module")
def doc_server(pool: ServerPool, testdata: _TestData) -> Served:
    """The doc's example: MODEL_BASE_PATH=.../testdata, MODEL_NAME=saved_model_half_plus_three
    (the image runs --model_name=$MODEL_NAME --model_base_path=$MODEL_BASE_PATH/$MODEL_NAME)."""
    return pool.run(model_name="saved_model_half_plus_three",
                    model_path=str(testdata.half_plus_three))


@source(f"{REST_DOC}:451 status of saved_model_half_plus_three: version 123 AVAILABLE")
def test_doc_status(doc_server: Served) -> None:
    _ok(doc_server.rest, "GET", "/v1/models/saved_model_half_plus_three", None,
        {"model_version_status": [{"version": "123", "state": "AVAILABLE",
                                   "status": {"error_code": "OK", "error_message": ""}}]})


@source(f"{REST_DOC}:469 predict [1, 2, 5] -> {{'predictions': [3.5, 4.0, 5.5]}} (its "
        "signature has no shape: unknown rank)")
def test_doc_predict(doc_server: Served) -> None:
    _ok(doc_server.rest, "POST", "/v1/models/saved_model_half_plus_three:predict",
        '{"instances": [1.0,2.0,5.0]}', {"predictions": [3.5, 4.0, 5.5]})


@source(f"{REST_DOC}:478 regress on signature 'tensorflow/serving/regress', x = 1 and 2 -> "
        "{'results': [3.5, 4.0]}")
def test_doc_regress(doc_server: Served) -> None:
    _ok(doc_server.rest, "POST", "/v1/models/saved_model_half_plus_three:regress",
        '{"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}, {"x": 2.0}]}',
        {"results": [3.5, 4.0]})


@source(f"{REST_DOC}:490 a model that is not there: 404, Content-Type application/json, "
        "{ 'error': 'Servable not found for request: Latest(half)' }")
def test_doc_not_found(doc_server: Served) -> None:
    status, (body, content_type) = _http(doc_server.rest, "POST", "/v1/models/half:predict",
                                         '{"instances": [1.0,5.0]}')
    assert status == 404 and content_type == "application/json"
    assert body == {"error": "Servable not found for request: Latest(half)"}


_DOC_MODEL = r"""
import sys
import tensorflow as tf

class Doc(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def strings(self, text):
        return {"length": tf.strings.length(text)}

    @tf.function(input_signature=[tf.TensorSpec([None, 1, 2], tf.int32)])
    def pairs(self, x):
        return {"x": tf.identity(x)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="tag"),
                                  tf.TensorSpec([None, 5], tf.int32, name="signal"),
                                  tf.TensorSpec([None, 2, 2], tf.int32, name="sensor")])
    def named(self, tag, signal, sensor):
        return {"tag": tf.identity(tag), "signal": tf.reduce_sum(signal, axis=1),
                "sensor": tf.reduce_sum(sensor, axis=[1, 2])}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify_objects(self, serialized):
        features = tf.io.parse_example(serialized, {
            "image": tf.io.FixedLenFeature([], tf.string),
            "caption": tf.io.FixedLenFeature([], tf.string)})
        return {"classes": features["caption"][:, None],
                "scores": tf.cast(tf.strings.length(features["image"]), tf.float32)[:, None]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def echo(self, data):
        return {"data_bytes": tf.identity(data)}

doc = Doc()
tf.saved_model.save(doc, sys.argv[1], signatures={
    "serving_default": doc.strings, "pairs": doc.pairs, "named": doc.named,
    "classify_objects": doc.classify_objects, "echo": doc.echo})
"""


@pytest.fixture(scope="module")
def doc_formats(pool: ServerPool, tmp_path_factory: Any) -> str:
    """A model with the inputs the doc's request-format examples use."""
    base = tmp_path_factory.mktemp("doc") / "doc"
    subprocess.run([sys.executable, "-c", _DOC_MODEL, str(base / "1")], check=True,
                   capture_output=True)
    return str(pool.run(model_name="doc", model_path=str(base)).rest)


@source(f"{REST_DOC}:204 row format, one named input: 'instances': ['foo', 'bar', 'baz'] "
        "(one output: 'predictions' is a list of its values)")
def test_doc_row_single_input(doc_formats: str) -> None:
    _ok(doc_formats, "POST", "/v1/models/doc:predict", '{"instances": [ "foo", "bar", "baz" ]}',
        {"predictions": [3, 3, 3]})


@source(f"{REST_DOC}:210 row format: 2 tensors each of [1, 2] shape: [ [[1, 2]], [[3, 4]] ]")
def test_doc_row_nested(doc_formats: str) -> None:
    _ok(doc_formats, "POST", "/v1/models/doc:predict",
        '{"signature_name": "pairs", "instances": [ [[1, 2]], [[3, 4]] ]}',
        {"predictions": [[[1, 2]], [[3, 4]]]})


_NAMED_ROWS = """{"signature_name": "named",
 "instances": [
   {"tag": "foo", "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]},
   {"tag": "bar", "signal": [3, 4, 1, 2, 5]], "sensor": [[4, 5], [6, 8]]}
 ]
}"""


@source(f"{REST_DOC}:224 row format, three named inputs (tag, signal, sensor): as printed, "
        "the second instance has a stray ']', a JSON error; corrected, a list of objects")
def test_doc_row_named(doc_formats: str) -> None:
    status, (body, _) = _http(doc_formats, "POST", "/v1/models/doc:predict", _NAMED_ROWS)
    assert status == 400
    assert body["error"].startswith("JSON Parse error: Missing a comma or '}' after an object "
                                    "member.")
    _ok(doc_formats, "POST", "/v1/models/doc:predict", _NAMED_ROWS.replace("5]],", "5],"),
        {"predictions": [{"tag": "foo", "signal": 15, "sensor": 10},
                         {"tag": "bar", "signal": 15, "sensor": 23}]})


@source(f"{REST_DOC}:263 columnar format of the same: 'outputs' is an object of the named "
        "outputs")
def test_doc_columnar_named(doc_formats: str) -> None:
    body = {"signature_name": "named", "inputs": {
        "tag": ["foo", "bar"], "signal": [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]],
        "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]]}}
    _ok(doc_formats, "POST", "/v1/models/doc:predict", json.dumps(body),
        {"outputs": {"tag": ["foo", "bar"], "signal": [15, 15], "sensor": [10, 23]}})


@source(f"{REST_DOC}:364 classify with binary values: examples with 'image': {{'b64': ...}} "
        "and a caption")
def test_doc_classify_binary(doc_formats: str) -> None:
    body = """{
  "signature_name": "classify_objects",
  "examples": [
    {"image": { "b64": "aW1hZ2UgYnl0ZXM=" }, "caption": "seaside"},
    {"image": { "b64": "YXdlc29tZSBpbWFnZSBieXRlcw==" }, "caption": "mountains"}
  ]
}"""
    _ok(doc_formats, "POST", "/v1/models/doc:classify", body,
        {"results": [[["seaside", len(b"image bytes")]],
                     [["mountains", len(b"awesome image bytes")]]]})


@source(f"{REST_DOC}:313 output of binary values: an output named *_bytes comes back as "
        "{'b64': ...}")
def test_doc_binary_output(doc_formats: str) -> None:
    data = base64.b64encode(b"\x00\xffbinary").decode()
    _ok(doc_formats, "POST", "/v1/models/doc:predict",
        json.dumps({"signature_name": "echo", "instances": [{"b64": data}]}),
        {"predictions": [{"b64": data}]})


@source(f"{REST_DOC}:391 JSON conformance: NaN and Infinity are accepted as numbers")
def test_doc_nan_and_infinity(doc_server: Served) -> None:
    status, (body, _) = _http(doc_server.rest, "POST",
                              "/v1/models/saved_model_half_plus_three:predict",
                              '{"instances": [NaN, Infinity, -Infinity]}')
    assert status == 200
    assert body == {"predictions": [float("nan"), float("inf"), float("-inf")]} or (
        np.isnan(body["predictions"][0]) and body["predictions"][1:] == [
            float("inf"), float("-inf")])

