"""Reloading the model config while serving (``--model_config_file_poll_wait_seconds``,
``ModelService.HandleReloadConfigRequest``): models added and removed, version policies and
labels changed, with requests running all the while. Runs against every target kind."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from serving_targets import Factory, Target, add_version, source

BODY = {"instances": [{"text": "hello", "task_id": 1}]}


def _config(factory: Factory, path: Path, entries: list[tuple[str, Path, str]]) -> None:
    text = "model_config_list {\n"
    for name, base, extra in entries:
        text += (f'  config {{ name: "{name}" base_path: "{factory.server_path(base)}" '
                 f'model_platform: "tensorflow" {extra} }}\n')
    path.write_text(text + "}\n")


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _available(target: Target, name: str, version: int | None = None) -> bool:
    path = f"/v1/models/{name}" + (f"/versions/{version}" if version else "")
    response = target.get(path)
    return response.status_code == 200 and any(
        s["state"] == "AVAILABLE" for s in response.json()["model_version_status"])


class _Load:
    """Threads sending predict requests to one model back to back; every answer kept."""

    def __init__(self, target: Target, name: str, threads: int = 3) -> None:
        self.url = f"/v1/models/{name}:predict"
        self.target = target
        self.answers: list[int] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            self.answers.append(self.target.post(self.url, json=BODY).status_code)

    def finish(self) -> list[int]:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)
        return self.answers


@pytest.mark.slow
@source(
    "model_servers/server.cc: PollFilesystemAndReloadConfig calls ServerCore::ReloadConfig every "
    "--model_config_file_poll_wait_seconds",
    "model_servers/server_core.cc: ReloadConfig checks the labels first "
    "(UpdateModelVersionLabelMap: only AVAILABLE versions), then adds new models and changes "
    "the source config (models left out are unloaded), then waits for the new models",
)
def test_reload_adds_removes_and_relabels_without_losing_requests(
        factory: Factory, models_root: Path, model_template: Path) -> None:
    a, b, c = models_root / "a", models_root / "b", models_root / "c"
    for version in (1, 2):
        add_version(a, version, model_template)
    add_version(b, 1, model_template)
    add_version(c, 1, model_template)
    config = models_root / "models.config"
    _config(factory, config, [("a", a, ""), ("c", c, "")])
    target = factory.start(config_file=config, model_config_file_poll_seconds=0.5)
    assert _available(target, "a", 2) and _available(target, "c")

    load_a, load_c = _Load(target, "a"), _Load(target, "c")
    time.sleep(0.5)
    # b added, c removed, a: both versions (all), label stable -> 1 (available)
    _config(factory, config, [("a", a, "model_version_policy { all {} } "
                                        'version_labels { key: "stable" value: 2 }'),
                              ("b", b, "")])
    _wait_for(lambda: _available(target, "b"), 60, "model b")
    _wait_for(lambda: _available(target, "a", 1), 60, "version 1 of a")
    _wait_for(lambda: target.post("/v1/models/c:predict", json=BODY).status_code == 404, 60,
              "model c gone")
    assert target.post("/v1/models/a/labels/stable:predict", json=BODY).status_code == 200
    answers_c = load_c.finish()
    # the label moves to version 1 (available now)
    _config(factory, config, [("a", a, "model_version_policy { all {} } "
                                        'version_labels { key: "stable" value: 1 }'),
                              ("b", b, "")])
    _wait_for(lambda: target.get("/v1/models/a/labels/stable/metadata").json().get(
        "model_spec", {}).get("version") == "1", 30, "label stable on version 1")
    answers_a = load_a.finish()

    assert answers_a and set(answers_a) == {200}, "a request to model a failed"
    assert 200 in answers_c and set(answers_c) <= {200, 404}  # answered, then not found
    first_404 = answers_c.index(404) if 404 in answers_c else len(answers_c)
    assert set(answers_c[first_404:]) == {404}, "c answered again after it was removed"


@pytest.mark.slow
@source(
    "model_servers/server.cc: a config file that does not parse is logged ('Failed to read "
    "ModelServerConfig file') and the server goes on with the config it has",
    "model_servers/server_core.cc: a label for a version that is not AVAILABLE fails the "
    "reload (FAILED_PRECONDITION); nothing of that config is applied here",
)
def test_reload_refusals_keep_the_current_config(
        embedded_factory: Factory, models_root: Path, model_template: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    from tensorflow_serving.apis import model_management_pb2
    from tensorflow_serving.config import model_server_config_pb2

    a = models_root / "a"
    add_version(a, 1, model_template)
    config = models_root / "models.config"
    _config(embedded_factory, config, [("a", a, "")])
    target = embedded_factory.start(config_file=config, model_config_file_poll_seconds=0.2)
    config.write_text("not a config")
    time.sleep(1)
    assert target.post("/v1/models/a:predict", json=BODY).status_code == 200
    message = model_server_config_pb2.ModelServerConfig()
    entry = message.model_config_list.config.add(name="a", base_path=str(a),
                                                 model_platform="tensorflow")
    entry.version_labels["canary"] = 7
    with pytest.raises(grpc.RpcError) as info:
        target.model_service.HandleReloadConfigRequest(
            model_management_pb2.ReloadConfigRequest(config=message), timeout=30)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details() == (
        "Request to assign label to version 7 of model a, which is not currently available "
        "for inference")
    assert target.post("/v1/models/a:predict", json=BODY).status_code == 200
    assert "Failed to read ModelServerConfig file: Invalid protobuf file: " in caplog.text
