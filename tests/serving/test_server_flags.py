"""``tensorflow_model_server``'s flags on the embedded server: each one that has an effect here,
shown by what a client sees; the command line's spellings; the flags that have none."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import serving_fixture_model as fm
from serving_targets import MODEL, Factory, add_version, source

from headswitch.serving import ServingError

BODY = {"instances": [{"text": "hello", "task_id": 1}]}


def _parser() -> argparse.ArgumentParser:
    from headswitch.serving._cli import register

    parser = argparse.ArgumentParser(prog="headswitch")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def _options(*flags: str) -> dict[str, Any]:
    from headswitch.serving._cli import server_options

    return server_options(_parser().parse_args(["serve", *flags]))


# ------------------------------------------------------------------------------------------
# The command line


@source("model_servers/main.cc: --port=0 opens no TCP port for gRPC (then --grpc_socket_path "
        "must be set); --rest_api_port=0 exports no REST API")
def test_tf_serving_ports_mean_what_they_mean_there() -> None:
    options = _options("--model_base_path=/m", "--port=0", "--rest_api_port=0",
                       "--grpc_socket_path=/tmp/s.sock")
    assert (options["grpc_port"], options["rest_port"]) == (None, None)
    options = _options("/m", "--grpc-port", "0", "--rest-port", "0")
    assert (options["grpc_port"], options["rest_port"]) == (0, 0)  # free ports
    options = _options("/m")
    assert (options["grpc_port"], options["rest_port"]) == (8500, 8501)
    with pytest.raises(ServingError) as info:
        from headswitch.serving import ModelServer

        ModelServer(model_base_path="/m", grpc_port=None)
    assert info.value.message == (
        "At least one of server_options.grpc_port or server_options.grpc_socket_path must be "
        "set.")


@source("model_servers/server.cc: BuildAndStart builds the session ConfigProto: "
        "--tensorflow_session_config_file, then the thread flags over it; all three thread "
        "flags at once are refused")
def test_session_flags_make_the_session_config(tmp_path: Path) -> None:
    options = _options("/m", "--tensorflow_intra_op_parallelism=2",
                       "--tensorflow_inter_op_parallelism=3")
    config = options["session_config"]
    assert (config.intra_op_parallelism_threads, config.inter_op_parallelism_threads) == (2, 3)
    path = tmp_path / "session.config"
    path.write_text("allow_soft_placement: true\nintra_op_parallelism_threads: 9\n")
    config = _options("/m", f"--tensorflow_session_config_file={path}",
                      "--tensorflow_session_parallelism=4")["session_config"]
    assert config.allow_soft_placement
    assert (config.intra_op_parallelism_threads, config.inter_op_parallelism_threads) == (4, 4)
    assert _options("/m")["session_config"] is None
    with pytest.raises(ServingError, match="You cannot configure all."):
        _options("/m", "--tensorflow_intra_op_parallelism=1",
                 "--tensorflow_inter_op_parallelism=1", "--tensorflow_session_parallelism=1")


@source("model_servers/server.cc: parseGrpcChannelArgs splits at ',' and '='; a value that "
        "reads as an int32 is passed as one, any other as a string")
def test_channel_arguments() -> None:
    from headswitch.serving._config import parse_channel_arguments

    assert parse_channel_arguments(
        "grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb") == [
        ("grpc.max_connection_age_ms", 2000), ("grpc.lb_policy_name", "grpclb")]
    assert parse_channel_arguments("a=99999999999") == [("a", "99999999999")]
    assert parse_channel_arguments("") == []
    with pytest.raises(ServingError, match="expected key=value"):
        parse_channel_arguments("novalue")


def test_flags_without_effect_are_accepted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    from headswitch.serving._cli import INERT_FLAGS

    flags = [f"--{flag.name}=1" for flag in INERT_FLAGS if flag.kind is not str] + [
        f"--{flag.name}=x" for flag in INERT_FLAGS if flag.kind is str]
    with caplog.at_level("WARNING"):
        _options("/m", *flags)
    for flag in INERT_FLAGS:
        assert f"--{flag.name} has no effect in headswitch's embedded server" in caplog.text


def test_every_tensorflow_model_server_flag_is_taken() -> None:
    """The flags of model_servers/main.cc (2.19.1), each parsed by ``headswitch serve``."""
    flags = """port grpc_socket_path rest_api_port rest_api_num_threads rest_api_timeout_in_ms
    rest_api_enable_cors_support enable_batching allow_version_labels_for_unavailable_models
    batching_parameters_file enable_per_model_batching_parameters model_config_file
    model_config_file_poll_wait_seconds model_name model_base_path num_load_threads
    num_unload_threads max_num_load_retries load_retry_interval_micros
    file_system_poll_wait_seconds flush_filesystem_caches tensorflow_session_parallelism
    tensorflow_session_config_file tensorflow_intra_op_parallelism
    tensorflow_inter_op_parallelism use_alts_credentials ssl_config_file platform_config_file
    per_process_gpu_memory_fraction saved_model_tags grpc_channel_arguments grpc_max_threads
    enable_model_warmup num_request_iterations_for_warmup version monitoring_config_file
    remove_unused_fields_from_bundle_metagraph prefer_tflite_model num_tflite_pools
    num_tflite_interpreters_per_pool enable_signature_method_name_check
    xla_cpu_compilation_enabled xla_gpu_compilation_enabled enable_profiler
    thread_pool_factory_config_file mixed_precision skip_initialize_tpu
    enable_grpc_healthcheck_service enable_serialization_as_tensor_content""".split()
    assert len(flags) == 48
    known = {option for action in _serve_actions() for option in action.option_strings}
    assert [f for f in flags if f"--{f}" not in known] == []


def _serve_actions() -> list[Any]:
    parser = _parser()
    serve = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(serve.choices["serve"]._actions)


def test_version_flag() -> None:
    done = subprocess.run([sys.executable, "-m", "headswitch", "serve", "--version"],
                          capture_output=True, text=True, timeout=300, check=True)
    assert re.match(r"TensorFlow ModelServer: headswitch \S+ \(embedded server, TF Serving "
                    r"2\.19\.1 API\)\nTensorFlow Library: 2\.19\.\d+\n", done.stdout)


# ------------------------------------------------------------------------------------------
# Flags with an effect


@pytest.fixture
def model(models_root: Path, model_template: Path) -> Path:
    add_version(models_root / MODEL, 1, model_template)
    base: Path = models_root / MODEL
    return base


@source("model_servers/http_rest_api_util.cc: AddCORSHeaders, with "
        "--rest_api_enable_cors_support, on every API answer (errors too)")
def test_cors_headers(embedded_factory: Factory, model: Path) -> None:
    target = embedded_factory.start(base=model, cors=True)
    for response in (target.post(f"/v1/models/{MODEL}:predict", json=BODY),
                     target.get("/v1/models/nope")):
        assert response.headers["access-control-allow-origin"] == "*"
        assert response.headers["access-control-allow-methods"] == "POST, GET"
        assert response.headers["access-control-allow-headers"] == "Content-Type"
    plain = embedded_factory.start(base=model)
    assert "access-control-allow-origin" not in plain.get(f"/v1/models/{MODEL}").headers


@source("model_servers/server.cc: --enable_grpc_healthcheck_service turns on gRPC's default "
        "health service with '', ModelService and PredictionService SERVING; another service "
        "name is NOT_FOUND")
def test_grpc_health_service(embedded_factory: Factory, model: Path) -> None:
    target = embedded_factory.start(base=model, grpc_health_check=True)
    check = target.channel.unary_unary("/grpc.health.v1.Health/Check")
    for service in (b"", b"ModelService", b"PredictionService"):
        request = b"\x0a" + bytes([len(service)]) + service if service else b""
        assert check(request, timeout=10) == b"\x08\x01"  # status: SERVING
    with pytest.raises(grpc.RpcError) as info:
        check(b"\x0a\x04nope", timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    plain = embedded_factory.start(base=model)
    with pytest.raises(grpc.RpcError) as info:
        plain.channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=10)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def _request(texts: list[str], ids: list[int]) -> Any:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(texts, dtype=tf.string))
    request.inputs["task_id"].CopyFrom(tf.make_tensor_proto(ids, dtype=tf.int32))
    return request


@source("model_servers/server.cc: --enable_serialization_as_tensor_content: Predict answers "
        "carry tensor_content (Tensor::AsProtoTensorContent) instead of typed values")
def test_tensor_content_responses(embedded_factory: Factory, model: Path) -> None:
    import tensorflow as tf

    target = embedded_factory.start(base=model, tensor_content_responses=True)
    response = target.prediction.Predict(_request(["abcd", "xy"], [0, 2]), timeout=30)
    scores = response.outputs["scores"]
    assert scores.tensor_content and not scores.float_val
    labels = response.outputs["labels"]
    assert labels.tensor_content and not labels.string_val
    np.testing.assert_allclose(tf.make_ndarray(scores)[0], fm.expected("abcd", 0)["scores"])
    # TensorFlow's Python make_ndarray reads no strings from tensor_content (its C++ does)
    from headswitch.serving._tensors import from_proto

    assert from_proto(labels, "labels")[1].tolist() == [x.encode() for x in fm.LABELS[2]]


@source("servables/tensorflow/predict_util.cc / classifier.cc: with "
        "--enable_signature_method_name_check a signature of another method is refused")
def test_signature_method_name_check(embedded_factory: Factory, model: Path) -> None:
    from tensorflow_serving.apis import classification_pb2

    target = embedded_factory.start(base=model, signature_method_name_check=True)
    assert target.post(f"/v1/models/{MODEL}:predict", json=BODY).status_code == 200
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = MODEL
    request.input.example_list.examples.add()
    with pytest.raises(grpc.RpcError) as info:
        target.prediction.Classify(request, timeout=30)
    assert info.value.details() == (
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict")


@source("servables/tensorflow/saved_model_warmup_util.cc: each warmup record is replayed "
        "--num_request_iterations_for_warmup times")
def test_warmup_iterations(embedded_factory: Factory, model: Path) -> None:
    target = embedded_factory.start(base=model, warmup_iterations=3)
    counts = re.findall(r':tensorflow:serving:runtime_latency_count\{model_name="m",'
                        r'API="Predict",runtime="TF1"\} (\S+)', target.metrics())
    assert [float(c) for c in counts] == [3 * len(fm.default_warmup_records())]


@source("model_servers/server.cc: --saved_model_tags chooses the MetaGraphDef; tags the "
        "SavedModel does not have fail the load with the loader's NOT_FOUND")
def test_saved_model_tags(embedded_factory: Factory, model: Path) -> None:
    with pytest.raises(ServingError) as info:
        embedded_factory.start(base=model, saved_model_tags=("serve", "tpu"))
    assert "Could not find meta graph def matching supplied tags: { serve tpu }" in (
        info.value.message)


@source("servables/tensorflow/bundle_factory_util.cc: GetPerModelBatchingParams: with "
        "--enable_per_model_batching_parameters a version is batched with its own "
        "batching_params.pbtxt, and not at all without one")
def test_per_model_batching(embedded_factory: Factory, models_root: Path,
                            model_template: Path) -> None:
    batched = add_version(models_root / "batched", 1, model_template)
    (batched / "batching_params.pbtxt").write_text("max_batch_size { value: 2 }\n")
    add_version(models_root / "plain", 1, model_template)
    global_file = models_root / "batching.config"
    global_file.write_text("max_batch_size { value: 64 }\n")
    config = models_root / "models.config"
    config.write_text("model_config_list {\n" + "".join(
        f'  config {{ name: "{n}" base_path: "{models_root / n}" model_platform: "tensorflow" }}\n'
        for n in ("batched", "plain")) + "}\n")
    target = embedded_factory.start(config_file=config, batching_file=global_file,
                                    per_model_batching=True)
    three = {"instances": [{"text": "a", "task_id": 0}] * 3}
    refused = target.post("/v1/models/batched:predict", json=three)
    assert refused.status_code == 400  # the model's own max_batch_size: 2
    assert refused.json() == {"error": "Task size 3 is larger than maximum input batch size 2"}
    assert target.post("/v1/models/plain:predict", json=three).status_code == 200


def _slow_model(path: Path) -> None:
    import tensorflow as tf

    class Slow(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="n")])
        def count(self, n: Any) -> Any:
            _, total = tf.while_loop(lambda i, t: i < n[0], lambda i, t: (i + 1, t + 1),
                                     [tf.constant(0, tf.int64), tf.constant(0, tf.int64)])
            return {"total": tf.reshape(total, [1])}

    module = Slow()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.count})


@source("model_servers/http_rest_api_handler.cc: --rest_api_timeout_in_ms is the RunOptions "
        "timeout of a REST request's session run: DEADLINE_EXCEEDED (HTTP 504)")
def test_rest_timeout(embedded_factory: Factory, models_root: Path) -> None:
    _slow_model(models_root / "slow" / "1")
    target = embedded_factory.start(base=models_root / "slow", rest_timeout_ms=300)
    quick = target.post(f"/v1/models/{MODEL}:predict", json={"instances": [10]})
    assert quick.json() == {"predictions": [10]}
    slow = target.post(f"/v1/models/{MODEL}:predict", json={"instances": [10**12]})
    assert slow.status_code == 504
    assert slow.json() == {"error": "Timed out waiting for notification"}


@source("model_servers/server.cc: --grpc_socket_path adds a Unix socket listener; --port=0 "
        "opens no TCP port")
def test_unix_socket_only(embedded_factory: Factory, model: Path, tmp_path: Path) -> None:
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from headswitch.serving import ModelServer

    socket_path = tmp_path / "serving.sock"
    server = ModelServer(model_name=MODEL, model_base_path=model, grpc_port=None, rest_port=None,
                         grpc_socket_path=socket_path)
    with server:
        assert server.grpc_port is None and server.grpc_address == f"unix:{socket_path}"
        with grpc.insecure_channel(f"unix:{socket_path}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(_request(["abc"], [1]), timeout=30)
        assert response.model_spec.version.value == 1


@source("model_servers/server.cc: BuildServerCredentials: --ssl_config_file (SSLConfig: "
        "server_key, server_cert, custom_ca, client_verify) serves gRPC over TLS")
def test_ssl(embedded_factory: Factory, model: Path, tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    config = tmp_path / "ssl.config"
    config.write_text(f"server_key: {key.read_text()!r}\nserver_cert: {cert.read_text()!r}\n")
    target = embedded_factory.start(base=model, ssl_config_file=config)
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    port = target.grpc_address.rsplit(":", 1)[1]
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        assert stub.Predict(_request(["abc"], [1]), timeout=30).model_spec.version.value == 1
    with pytest.raises(grpc.RpcError):
        target.prediction.Predict(_request(["abc"], [1]), timeout=5)  # plain text is refused
    assert httpx.get(f"{target.rest_url}/v1/models/{MODEL}").status_code == 200
