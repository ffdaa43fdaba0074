"""Version handling: new versions picked up under load, broken versions, non-integer folders,
version policies and labels from a model config file."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from serving_targets import MODEL, Factory, Target, add_version

from headswitch.serving import ServingError


def _predict_request(
    version_label: str | None = None, version: int | None = None, name: str = MODEL
) -> Any:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if version_label is not None:
        request.model_spec.version_label = version_label
    if version is not None:
        request.model_spec.version.value = version
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(["hello"], dtype=tf.string))
    request.inputs["task_id"].CopyFrom(tf.make_tensor_proto([1], dtype=tf.int32))
    return request


def _statuses(target: Target, name: str = MODEL) -> dict[str, dict[str, Any]]:
    response = target.get(f"/v1/models/{name}")
    assert response.status_code == 200, response.text
    return {s["version"]: s for s in response.json()["model_version_status"]}


def _wait_for(condition: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_new_version_under_load(factory: Factory, models_root: Path, model_template: Path) -> None:
    """8 clients (4 REST, 4 gRPC) keep sending while version 2 is published: no request fails,
    and gRPC responses move from version 1 to version 2."""
    base = models_root / MODEL
    add_version(base, 1, model_template)
    target = factory.start(base=base, poll_seconds=0.3)
    stop = threading.Event()
    failures: list[str] = []
    versions_seen: set[int] = set()
    counts = [0] * 8
    lock = threading.Lock()

    def rest_client(index: int) -> None:
        import httpx

        with httpx.Client(base_url=target.rest_url, timeout=30) as client:
            while not stop.is_set():
                try:
                    response = client.post(
                        f"/v1/models/{MODEL}:predict",
                        json={"instances": [{"text": "hello", "task_id": 1}]},
                    )
                    if response.status_code != 200:
                        raise AssertionError(f"{response.status_code} {response.text}")
                except Exception as exc:  # noqa: BLE001
                    with lock:
                        failures.append(f"REST: {exc!r}")
                counts[index] += 1

    def grpc_client(index: int) -> None:
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        with grpc.insecure_channel(target.grpc_address) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = _predict_request()
            while not stop.is_set():
                try:
                    version = stub.Predict(request, timeout=30).model_spec.version.value
                    with lock:
                        versions_seen.add(version)
                except grpc.RpcError as exc:
                    with lock:
                        failures.append(f"gRPC: {exc.code()} {exc.details()}")
                counts[index] += 1

    threads = [threading.Thread(target=rest_client, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=grpc_client, args=(i + 4,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        add_version(base, 2, model_template)
        _wait_for(lambda: 2 in versions_seen, 60, "version 2 to serve requests")
        _wait_for(
            lambda: _statuses(target).get("1", {}).get("state") == "END", 30, "version 1 to unload"
        )
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert versions_seen == {1, 2}
    assert all(count > 0 for count in counts)
    statuses = _statuses(target)
    assert statuses["2"]["state"] == "AVAILABLE"
    assert statuses["1"]["state"] == "END"
    assert statuses["1"]["status"] == {"error_code": "OK", "error_message": ""}


def test_broken_and_non_integer_versions(
    factory: Factory, models_root: Path, model_template: Path
) -> None:
    base = models_root / MODEL
    add_version(base, 1, model_template)
    (base / "not-a-version").mkdir()  # ignored: not an integer
    shutil.copytree(model_template, base / "9.partial")  # ignored too
    target = factory.start(base=base, poll_seconds=0.3)
    assert set(_statuses(target)) == {"1"}

    # A partial copy: the version folder exists but has no saved_model.pb.
    broken = base / "2"
    broken.mkdir()
    (broken / "variables").mkdir()
    _wait_for(lambda: _statuses(target).get("2", {}).get("state") == "END", 30, "version 2 to fail")
    statuses = _statuses(target)
    assert statuses["2"]["status"]["error_code"] == "NOT_FOUND"
    assert "Could not find SavedModel .pb or .pbtxt" in statuses["2"]["status"]["error_message"]
    assert statuses["1"]["state"] == "AVAILABLE"
    response = target.prediction.Predict(_predict_request(), timeout=30)
    assert response.model_spec.version.value == 1
    ok = target.post(
        f"/v1/models/{MODEL}:predict", json={"instances": [{"text": "a", "task_id": 0}]}
    )
    assert ok.status_code == 200

    # A good newer version replaces the serving one; the broken one stays reported.
    add_version(base, 3, model_template)
    _wait_for(
        lambda: _statuses(target).get("1", {}).get("state") == "END", 30, "version 1 to unload"
    )
    statuses = _statuses(target)
    assert statuses["3"]["state"] == "AVAILABLE"
    assert list(statuses) == ["3", "2", "1"]  # newest first
    assert target.prediction.Predict(_predict_request(), timeout=30).model_spec.version.value == 3


def _write_config(factory: Factory, path: Path, entries: list[str]) -> Path:
    path.write_text("model_config_list {\n" + "\n".join(entries) + "\n}\n")
    return path


def _entry(factory: Factory, name: str, base: Path, extra: str = "") -> str:
    return (
        f'  config {{\n    name: "{name}"\n    base_path: "{factory.server_path(base)}"\n'
        f'    model_platform: "tensorflow"\n{extra}  }}'
    )


def test_model_config_labels_and_policies(
    factory: Factory, models_root: Path, model_template: Path
) -> None:
    base = models_root / MODEL
    for version in (1, 2, 3):
        add_version(base, version, model_template)
    other = models_root / "other"
    add_version(other, 1, model_template)
    add_version(other, 4, model_template)
    labels = (
        "    model_version_policy { specific { versions: 1 versions: 2 } }\n"
        '    version_labels { key: "stable" value: 1 }\n'
        '    version_labels { key: "canary" value: 2 }\n'
    )
    config = _write_config(
        factory,
        models_root / "models.config",
        [
            _entry(factory, MODEL, base, labels),
            _entry(factory, "other", other, "    model_version_policy { all {} }\n"),
        ],
    )
    # At start-up no version is loaded yet: labels need this flag (server_core.cc
    # UpdateModelVersionLabelMap runs before the first models load).
    target = factory.start(config_file=config, allow_unavailable_labels=True)

    statuses = _statuses(target)
    assert set(statuses) == {"1", "2"}  # version 3 is not in the specific policy
    assert all(s["state"] == "AVAILABLE" for s in statuses.values())
    stub = target.prediction
    assert stub.Predict(_predict_request("stable"), timeout=30).model_spec.version.value == 1
    assert stub.Predict(_predict_request("canary"), timeout=30).model_spec.version.value == 2
    assert stub.Predict(_predict_request(), timeout=30).model_spec.version.value == 2
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(_predict_request("beta"), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "Unrecognized servable version label: beta"
    body = {"instances": [{"text": "a", "task_id": 0}]}
    assert target.post(f"/v1/models/{MODEL}/labels/canary:predict", json=body).status_code == 200
    assert target.post(f"/v1/models/{MODEL}/versions/1:predict", json=body).status_code == 200
    missing = target.post(f"/v1/models/{MODEL}/versions/3:predict", json=body)
    assert missing.status_code == 404
    metadata = target.get(f"/v1/models/{MODEL}/labels/stable/metadata")
    assert metadata.json()["model_spec"]["version"] == "1"

    # "all" policy: every version of "other" is loaded (start-up waits for the newest only);
    # Latest is the highest.
    assert set(_statuses(target, "other")) == {"1", "4"}
    _wait_for(
        lambda: all(s["state"] == "AVAILABLE" for s in _statuses(target, "other").values()),
        30,
        "both versions of other",
    )
    assert stub.Predict(_predict_request(name="other"), timeout=30).model_spec.version.value == 4
    assert (
        stub.Predict(_predict_request(name="other", version=1), timeout=30).model_spec.version.value
        == 1
    )


def test_label_for_unavailable_version_fails_start(
    embedded_factory: Factory, models_root: Path, model_template: Path
) -> None:
    base = models_root / MODEL
    add_version(base, 1, model_template)
    config = _write_config(
        embedded_factory,
        models_root / "models.config",
        [
            _entry(
                embedded_factory, MODEL, base, '    version_labels { key: "canary" value: 2 }\n'
            ),
        ],
    )
    with pytest.raises(ServingError) as info:
        embedded_factory.start(config_file=config)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.message == (
        f"Request to assign label to version 2 of model {MODEL}, which is not currently "
        "available for inference"
    )


def test_broken_only_version_fails_start(embedded_factory: Factory, models_root: Path) -> None:
    base = models_root / MODEL
    (base / "1").mkdir(parents=True)
    with pytest.raises(ServingError) as info:
        embedded_factory.start(base=base)
    assert info.value.code == grpc.StatusCode.UNKNOWN
    assert info.value.message.startswith(
        "1 model(s) did not become available: {{{name: " + MODEL + " version: 1} due to error: "
        "NOT_FOUND: Could not find SavedModel .pb or .pbtxt at supplied export directory path: "
    )
    assert info.value.message.endswith("for accessing it.}, }")


def test_load_retries(embedded_factory: Factory, models_root: Path, model_template: Path) -> None:
    """A partial copy that completes before the retry is loaded (TF Serving retries loads)."""
    base = models_root / MODEL
    add_version(base, 1, model_template)
    target = embedded_factory.start(
        base=base, poll_seconds=0.2, max_num_load_retries=3, load_retry_interval_seconds=0.5
    )
    partial = base / "2"
    partial.mkdir()
    _wait_for(lambda: _statuses(target).get("2", {}).get("state") == "LOADING", 10, "loading")
    # The failed attempt shows in status at once (TF Serving shows it only when the last retry
    # has failed): still LOADING, with the error.
    _wait_for(
        lambda: _statuses(target)["2"]["status"]["error_code"] == "NOT_FOUND", 10, "the error"
    )
    status = _statuses(target)["2"]
    assert status["state"] == "LOADING"
    assert "Could not find SavedModel .pb or .pbtxt" in status["status"]["error_message"]
    # Folders first, saved_model.pb last: a retry during the copy fails again, harmlessly.
    for item in sorted(
        model_template.iterdir(), key=lambda p: (p.is_file(), p.name == "saved_model.pb")
    ):
        destination = partial / item.name
        if item.is_dir():
            shutil.copytree(item, destination)
        else:
            shutil.copy2(item, destination)
    _wait_for(lambda: _statuses(target).get("2", {}).get("state") == "AVAILABLE", 30, "version 2")
    assert target.prediction.Predict(_predict_request(), timeout=30).model_spec.version.value == 2


def test_stop_while_waiting_for_first_version(models_root: Path) -> None:
    """Like TF Serving, start() waits for a first version; stop() (what SIGTERM does in the
    CLI) ends that wait."""
    from headswitch.serving import ModelServer

    (models_root / MODEL).mkdir()
    server = ModelServer(
        model_name=MODEL,
        model_base_path=models_root / MODEL,
        grpc_port=0,
        rest_port=0,
        poll_seconds=0.2,
    )
    errors: list[BaseException] = []

    def start() -> None:
        try:
            server.start()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=start)
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive()
    server.stop(grace=1)
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert isinstance(errors[0], ServingError)
    assert errors[0].code == grpc.StatusCode.UNAVAILABLE
    assert server.wait(timeout=1)


def _compose_healthcheck(target: Target) -> int:
    """docker-compose.yml's healthcheck line, pointed at this target's REST port and model."""
    import shutil
    import subprocess
    from urllib.parse import urlsplit

    import yaml

    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed here")
    root = Path(__file__).resolve().parents[2]
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    script = compose["services"]["serving"]["healthcheck"]["test"][3]
    port = urlsplit(target.rest_url).port
    script = script.replace("/8501", f"/{port}")
    script = script.replace("/v1/models/headswitch", f"/v1/models/{MODEL}")
    done = subprocess.run([bash, "-c", script], check=False, capture_output=True, timeout=20)
    return done.returncode


def test_readiness_follows_available_versions(
    factory: Factory, models_root: Path, model_template: Path
) -> None:
    """What the k8s readiness/startup probes and the compose healthcheck rely on: the metadata
    route needs an AVAILABLE version (get_model_metadata_impl.cc takes a servable handle: 404
    otherwise), while the status route stays 200 once any version is known
    (get_model_status_impl.cc)."""
    base = models_root / MODEL
    add_version(base, 1, model_template)
    target = factory.start(base=base, poll_seconds=0.3)
    assert target.get(f"/v1/models/{MODEL}/metadata").status_code == 200
    assert _compose_healthcheck(target) == 0

    (base / "1").rename(base / "removed-1")  # no version left on disk: version 1 unloads
    _wait_for(lambda: _statuses(target)["1"]["state"] == "END", 30, "version 1 to unload")
    assert target.get(f"/v1/models/{MODEL}").status_code == 200  # not a readiness signal
    metadata = target.get(f"/v1/models/{MODEL}/metadata")
    assert metadata.status_code == 404
    assert metadata.json() == {"error": f"Servable not found for request: Latest({MODEL})"}
    predict = target.post(
        f"/v1/models/{MODEL}:predict", json={"instances": [{"text": "a", "task_id": 0}]}
    )
    assert predict.status_code == 404
    assert _compose_healthcheck(target) != 0

    add_version(base, 2, model_template)
    _wait_for(
        lambda: target.get(f"/v1/models/{MODEL}/metadata").status_code == 200, 60, "version 2"
    )
    assert _compose_healthcheck(target) == 0


def test_corrupt_version_is_reported(
    factory: Factory, models_root: Path, model_template: Path
) -> None:
    """A version whose saved_model.pb is not a SavedModel: its status carries the loader's
    error (TensorFlow cc/saved_model/reader.cc ReadSavedModel -> ReadBinaryProto: DATA_LOSS
    "Can't parse PATH as binary proto"; get_model_status_impl.cc reports the servable's health)
    while the previous version keeps serving."""
    base = models_root / MODEL
    add_version(base, 1, model_template)
    target = factory.start(base=base, poll_seconds=0.3)
    staging = base / "temp-2"
    staging.mkdir()
    (staging / "saved_model.pb").write_bytes(bytes(range(256)) * 16)
    (staging / "variables").mkdir()
    staging.rename(base / "2")
    _wait_for(lambda: _statuses(target).get("2", {}).get("state") == "END", 30, "version 2")
    status = _statuses(target)["2"]["status"]
    assert status == {
        "error_code": "DATA_LOSS",
        "error_message": f"Can't parse {factory.server_path(base / '2')}/saved_model.pb as "
        "binary proto",
    }
    assert target.prediction.Predict(_predict_request(), timeout=30).model_spec.version.value == 1
