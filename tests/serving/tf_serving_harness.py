"""Run ``headswitch serve`` the way TF Serving's own integration tests run
``tensorflow_model_server``.

``command_line`` builds the command line exactly as ``RunServer`` in
``model_servers/test_util/tensorflow_model_server_test_base.py`` (tag 2.19.1, lines 146-239)
builds it, flag by flag, with ``headswitch serve`` in place of the binary. ``ServerPool`` starts
one server per distinct set of arguments and keeps it for the session (as ``RunServer`` does,
line 186), waits until it is ready the way ``WaitForServerReady`` does (a Predict for a missing
model answered with a message that names a "Servable", lines 79-95), and stops them all at the
end. TF Serving's tests share one Unix socket path between servers; each server here has its
own, so that one server's socket is not taken over by the next.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HTTP_REST_TIMEOUT_MS = 5000  # test base line 44
WAIT_FOR_SERVER_READY_SECS = 120  # 60 in the test base (line 46); a shared machine is slower
ROOT = Path(__file__).resolve().parents[2]


def pick_unused_port() -> int:
    """``PickUnusedPort`` (line 71)."""
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def command_line(
    *,
    port: int,
    rest_api_port: int,
    grpc_socket_path: str,
    model_name: str | None = None,
    model_path: str | None = None,
    model_type: str = "tf",
    model_config_file: str | None = None,
    monitoring_config_file: str | None = None,
    batching_parameters_file: str | None = None,
    grpc_channel_arguments: str = "",
    model_config_file_poll_period: int | None = None,
) -> list[str]:
    """The flags of ``RunServer`` (lines 199-226), in its order."""
    command = " --port=" + str(port)
    command += " --rest_api_port=" + str(rest_api_port)
    command += " --rest_api_timeout_in_ms=" + str(HTTP_REST_TIMEOUT_MS)
    command += " --grpc_socket_path=" + grpc_socket_path
    if model_config_file:
        command += " --model_config_file=" + model_config_file
    elif model_path:
        command += " --model_name=" + str(model_name)
        command += " --model_base_path=" + model_path
    else:
        raise ValueError("Both model_config_file and model_path cannot be empty!")
    if model_type == "tflite":
        command += " --prefer_tflite_model=true"
    if monitoring_config_file:
        command += " --monitoring_config_file=" + monitoring_config_file
    if model_config_file_poll_period is not None:
        command += " --model_config_file_poll_wait_seconds=" + str(model_config_file_poll_period)
    if batching_parameters_file:
        command += " --enable_batching"
        command += " --batching_parameters_file=" + batching_parameters_file
    if grpc_channel_arguments:
        command += " --grpc_channel_arguments=" + grpc_channel_arguments
    return shlex.split(command)


@dataclass
class Served:
    """A running server: its process, gRPC ``host:port`` and REST ``host:port`` (the tuple
    ``RunServer`` returns), the flags it was started with and its stderr so far."""

    process: subprocess.Popen[bytes]
    grpc: str
    rest: str
    flags: list[str]
    socket_path: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_for_server_ready(address: str, seconds: float = WAIT_FOR_SERVER_READY_SECS) -> bool:
    """``WaitForServerReady``: True once a Predict for a missing model is answered with an
    error that names a "Servable"."""
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "intentionally_missing_model"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.5)
        with grpc.insecure_channel(address) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            try:
                stub.Predict(request, 5.0)
            except grpc.RpcError as error:
                if "Servable" in (error.details() or ""):
                    return True
    return False


class ServerPool:
    """``RunServer`` with its cache: one server per distinct set of arguments."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self._servers: dict[tuple[Any, ...], Served] = {}

    def run(self, *, wait_for_server_ready_: bool = True, **arguments: Any) -> Served:
        key = tuple(sorted(arguments.items())) + (("wait", wait_for_server_ready_),)
        if key in self._servers:
            return self._servers[key]
        index = len(self._servers)
        socket_path = str(self.work / f"tf-serving-{index}.sock")
        port, rest_api_port = pick_unused_port(), pick_unused_port()
        flags = command_line(port=port, rest_api_port=rest_api_port,
                             grpc_socket_path=socket_path, **arguments)
        log_path = self.work / f"server-{index}.log"
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "headswitch", "serve", *flags],
                stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=ROOT)
        served = Served(process, f"localhost:{port}", f"localhost:{rest_api_port}", flags,
                        socket_path, log_path)
        self._servers[key] = served
        if wait_for_server_ready_ and not wait_for_server_ready(served.grpc):
            raise RuntimeError(
                f"headswitch serve {' '.join(flags)} did not become ready:\n{served.log()[-3000:]}")
        return served

    @property
    def servers(self) -> list[Served]:
        return list(self._servers.values())

    def close(self) -> None:
        for served in self._servers.values():
            if served.process.poll() is None:
                served.process.terminate()
        for served in self._servers.values():
            try:
                served.process.wait(60)
            except subprocess.TimeoutExpired:
                served.process.kill()
                served.process.wait()
