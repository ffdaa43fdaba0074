"""The gRPC front end: ``PredictionService`` and ``ModelService`` from the official stubs."""

from __future__ import annotations

import threading
import time
from concurrent import futures
from typing import Any

import grpc
from tensorflow_serving.apis import (
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from ._core import ServingCore
from ._errors import ServingError


def _abort(context: grpc.ServicerContext, error: ServingError) -> Any:
    context.abort(error.code, error.message)


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata; Classify, Regress and MultiInference answer UNIMPLEMENTED."""

    def __init__(self, core: ServingCore) -> None:
        self._core = core

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        started = time.perf_counter()
        error: ServingError | None = None
        try:
            return self._core.predict(request)
        except ServingError as exc:
            error = exc
            return _abort(context, exc)
        finally:
            self._core.record(request.model_spec.name, "Predict", "GRPC", error, started)

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return self._core.get_model_metadata(request)
        except ServingError as exc:
            return _abort(context, exc)


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus; HandleReloadConfigRequest answers UNIMPLEMENTED."""

    def __init__(self, core: ServingCore) -> None:
        self._core = core

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return self._core.get_model_status(request)
        except ServingError as exc:
            return _abort(context, exc)


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GrpcServer:
    def __init__(self, core: ServingCore, host: str, port: int, max_workers: int = 32) -> None:
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
            options=[
                ("grpc.max_receive_message_length", -1),
                ("grpc.max_send_message_length", -1),
                ("grpc.so_reuseport", 0),
            ],
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(core), self._server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(core), self._server)
        try:
            self.port = self._server.add_insecure_port(_address(host, port))
        except RuntimeError as exc:
            raise OSError(f"cannot listen for gRPC on {_address(host, port)}: {exc}") from exc
        if self.port == 0:
            raise OSError(f"cannot listen for gRPC on {_address(host, port)}")

    def start(self) -> None:
        self._server.start()

    def stop(self, grace: float | None) -> threading.Event:
        event: threading.Event = self._server.stop(grace)
        return event
