"""Targets for the serving tests: a running server reached by its REST URL and gRPC address,
started either in this process (``embedded``) or as the real ``tensorflow/serving`` image
(``tfserving-docker``, through the ``docker`` Python SDK, when a Docker engine is reachable)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

MODEL = "m"
KINDS = ["embedded", "tfserving-docker"]
TFSERVING_IMAGE = os.environ.get("TFSERVING_IMAGE", "tensorflow/serving:2.19.1")


# Where TF Serving 2.19.1 decides what a conformance test expects. Paths are relative to the
# tensorflow/serving repository at tag 2.19.1 unless they name another project (the versions TF
# Serving pins: rapidjson 1.1.0, libevent 2.1.12, TensorFlow 2.19).
TF_SERVING_TAG = "2.19.1"
F = TypeVar("F", bound=Callable[..., Any])


def source(*citations: str) -> Callable[[F], F]:
    """Cite the source that specifies a conformance test's expectations, as
    ``"file: behaviour"`` (facts, not code). Every conformance test carries at least one;
    ``test_conformance_cites_source`` checks it."""

    def mark(function: F) -> F:
        function.tf_serving_source = citations  # type: ignore[attr-defined]
        return function

    return mark


def add_version(base: Path, version: int | str, template: Path) -> Path:
    """Publish a version the safe way: copy to a non-integer name, then rename."""
    base.mkdir(parents=True, exist_ok=True)
    staging = base / f"temp-{version}"
    shutil.copytree(template, staging)
    target = base / str(version)
    staging.rename(target)
    return target


@dataclass
class Target:
    """A running server, as a client sees it."""

    kind: str
    rest_url: str
    grpc_address: str
    stop_fn: Any = None
    _channel: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def channel(self) -> Any:
        import grpc

        if self._channel is None:
            self._channel = grpc.insecure_channel(self.grpc_address)
        return self._channel

    @property
    def prediction(self) -> Any:
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        return prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    @property
    def model_service(self) -> Any:
        from tensorflow_serving.apis import model_service_pb2_grpc

        return model_service_pb2_grpc.ModelServiceStub(self.channel)

    def get(self, path: str, **kw: Any) -> Any:
        import httpx

        return httpx.get(self.rest_url + path, timeout=30, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        import httpx

        return httpx.post(self.rest_url + path, timeout=30, **kw)

    def metrics(self) -> str:
        response = self.get("/monitoring/prometheus/metrics")
        assert response.status_code == 200, response.text
        return str(response.text)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.stop_fn is not None:
            self.stop_fn()
            self.stop_fn = None


def docker_unavailable_reason() -> str | None:
    try:
        import docker  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return (
            "the docker Python SDK is not installed, so no tensorflow/serving container can be "
            "started"
        )
    try:
        docker.from_env().ping()
    except Exception as exc:  # noqa: BLE001
        return f"no Docker engine reachable ({type(exc).__name__}: {exc})"
    return None



class Launch(NamedTuple):
    """How a test starts a server (``TargetFactory.start``'s arguments)."""

    base: Path | None
    model_name: str
    config_file: Path | None
    batching_file: Path | None
    monitoring: bool
    poll_seconds: float
    allow_unavailable_labels: bool = False
    config_poll_seconds: float = 0.0

class Factory:
    """Starts servers of one kind. Paths given to ``start`` are host paths under ``root``."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind = kind
        self.root = root
        self._targets: list[Target] = []

    def server_path(self, host_path: Path) -> str:
        """The path as the server sees it (inside the container for Docker)."""
        if self.kind == "embedded":
            return str(host_path)
        return "/models/" + str(host_path.relative_to(self.root))

    def start(
        self,
        *,
        base: Path | None = None,
        model_name: str = MODEL,
        config_file: Path | None = None,
        batching_file: Path | None = None,
        monitoring: bool = True,
        poll_seconds: float = 1.0,
        allow_unavailable_labels: bool = False,
        model_config_file_poll_seconds: float = 0.0,
        **embedded_options: Any,
    ) -> Target:
        """``allow_unavailable_labels``: ``--allow_version_labels_for_unavailable_models`` (a
        model config's labels may then point at versions that are not loaded yet, as at
        start-up); ``model_config_file_poll_seconds``:
        ``--model_config_file_poll_wait_seconds`` (whole seconds for TF Serving)."""
        launch = Launch(base, model_name, config_file, batching_file, monitoring, poll_seconds,
                        allow_unavailable_labels, model_config_file_poll_seconds)
        if self.kind == "embedded":
            target = self._start_embedded(launch, embedded_options)
        else:
            target = self._start_docker(launch)
        self._targets.append(target)
        return target

    def _start_embedded(self, launch: Launch, options: dict[str, Any]) -> Target:
        (base, model_name, config_file, batching_file, monitoring, poll_seconds, labels,
         config_poll) = launch
        from headswitch.serving import ModelServer

        options.setdefault("allow_version_labels_for_unavailable_models", labels)
        options.setdefault("model_config_file_poll_seconds", config_poll)
        options.setdefault("max_num_load_retries", 0)
        options.setdefault("startup_timeout", 60)
        server = ModelServer(
            model_name=None if config_file else model_name,
            model_base_path=None if config_file else base,
            model_config_file=config_file,
            grpc_port=0,
            rest_port=0,
            enable_batching=batching_file is not None,
            batching_parameters_file=batching_file,
            monitoring=monitoring,
            poll_seconds=poll_seconds,
            **options,
        )
        server.start()
        assert server.rest_url and server.grpc_address
        return Target(
            "embedded",
            server.rest_url,
            server.grpc_address,
            stop_fn=lambda: server.stop(grace=5),
            extra={"server": server},
        )

    def _start_docker(self, launch: Launch) -> Target:
        (base, model_name, config_file, batching_file, monitoring, poll_seconds, labels,
         config_poll) = launch
        import httpx

        import docker

        poll = max(1, round(poll_seconds))  # TF Serving takes whole seconds
        args = [
            "--port=8500",
            "--rest_api_port=8501",
            f"--file_system_poll_wait_seconds={poll}",
            "--max_num_load_retries=0",
        ]
        if labels:
            args.append("--allow_version_labels_for_unavailable_models")
        if config_poll > 0:
            args.append(f"--model_config_file_poll_wait_seconds={max(1, round(config_poll))}")
        if config_file is not None:
            args.append(f"--model_config_file={self.server_path(config_file)}")
        else:
            assert base is not None
            args += [f"--model_name={model_name}", f"--model_base_path={self.server_path(base)}"]
        if batching_file is not None:
            args += [
                "--enable_batching",
                f"--batching_parameters_file={self.server_path(batching_file)}",
            ]
        if monitoring:
            monitoring_file = self.root / "monitoring.config"
            monitoring_file.write_text(
                'prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }\n'
            )
            args.append(f"--monitoring_config_file={self.server_path(monitoring_file)}")
        client = docker.from_env()
        container = client.containers.run(
            TFSERVING_IMAGE,
            command=args,
            entrypoint="tensorflow_model_server",
            detach=True,
            ports={"8500/tcp": ("127.0.0.1", None), "8501/tcp": ("127.0.0.1", None)},
            volumes={str(self.root): {"bind": "/models", "mode": "ro"}},
        )

        def stop() -> None:
            container.remove(force=True)

        deadline = time.monotonic() + 120
        while True:
            container.reload()
            ports = container.attrs["NetworkSettings"]["Ports"] or {}
            if ports.get("8501/tcp") and ports.get("8500/tcp"):
                rest = f"http://127.0.0.1:{ports['8501/tcp'][0]['HostPort']}"
                grpc_address = f"127.0.0.1:{ports['8500/tcp'][0]['HostPort']}"
                try:
                    if httpx.get(f"{rest}/v1/models/{model_name}", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            if container.status == "exited" or time.monotonic() > deadline:
                logs = container.logs().decode(errors="replace")[-3000:]
                stop()
                raise RuntimeError(f"tensorflow/serving did not become ready:\n{logs}")
            time.sleep(0.5)
        return Target(
            "tfserving-docker", rest, grpc_address, stop_fn=stop, extra={"container": container}
        )

    def close(self) -> None:
        for target in self._targets:
            target.close()
        self._targets.clear()
