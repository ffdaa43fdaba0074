"""The gRPC front end: ``PredictionService`` and ``ModelService`` from the official stubs, as
``prediction_service_impl.cc`` / ``model_service_impl.cc`` answer (error messages longer than
1024 bytes cut as ``grpc_status_util.cc`` cuts them)."""

from __future__ import annotations

import logging
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
from ._errors import ServingError, internal
from ._limits import Limits

_MESSAGE_LIMIT = 1024  # ToGRPCStatus: kErrorMessageLimit
_log = logging.getLogger(__name__)


def status_message(message: str) -> str:
    """``ToGRPCStatus``: a message over 1024 bytes keeps its first 1024 and "...TRUNCATED"."""
    raw = message.encode("utf-8", "surrogateescape")
    if len(raw) > _MESSAGE_LIMIT:
        raw = raw[:_MESSAGE_LIMIT] + b"...TRUNCATED"
    return raw.decode("utf-8", "replace")


def _abort(context: grpc.ServicerContext, error: ServingError) -> Any:
    context.abort(error.code, status_message(error.message))


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict, Classify, Regress and GetModelMetadata; MultiInference answers UNIMPLEMENTED."""

    def __init__(self, core: ServingCore) -> None:
        self._core = core

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(self._core.predict, "Predict", request, context)

    def Classify(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(self._core.classify, "Classify", request, context)

    def Regress(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(self._core.regress, "Regress", request, context)

    def _call(self, method: Any, api: str, request: Any, context: grpc.ServicerContext) -> Any:
        started = time.perf_counter()
        error: ServingError | None = None
        try:
            return method(request)
        except ServingError as exc:
            error = exc
            return _abort(context, exc)
        except Exception as exc:  # noqa: BLE001 - a bug here must still answer with a code
            _log.exception("gRPC %s failed", api)
            error = internal(f"Internal error: {type(exc).__name__}: {exc}")
            return _abort(context, error)
        finally:
            self._core.record(request.model_spec.name, api, "GRPC", error, started)
            self._core.memory.note(size_bytes=request.ByteSize())

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


# Any connection is asked to reconnect (GOAWAY) after this long, and closed --read-timeout later
# if a stream is still open: the bound on a request whose message never finishes arriving
# (gRPC calls a handler only once the whole message is in).
_MAX_CONNECTION_AGE_S = 600


class GrpcServer:
    def __init__(
        self,
        core: ServingCore,
        host: str,
        port: int,
        max_workers: int = 32,
        limits: Limits | None = None,
    ) -> None:
        limits = limits or Limits()
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
            options=[
                # TF Serving accepts messages up to 2 GiB; gRPC itself answers
                # RESOURCE_EXHAUSTED beyond this limit.
                ("grpc.max_receive_message_length", limits.max_request_bytes),
                ("grpc.max_send_message_length", -1),
                ("grpc.so_reuseport", 0),
                ("grpc.max_connection_idle_ms", int(limits.idle_timeout * 1000)),
                ("grpc.max_connection_age_ms", _MAX_CONNECTION_AGE_S * 1000),
                ("grpc.max_connection_age_grace_ms", int(limits.read_timeout * 1000)),
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
