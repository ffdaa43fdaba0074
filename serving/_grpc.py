"""The gRPC front end: ``PredictionService`` and ``ModelService`` from the official stubs, as
``prediction_service_impl.cc`` / ``model_service_impl.cc`` answer (error messages longer than
1024 bytes cut as ``grpc_status_util.cc`` cuts them), on a TCP port and/or a Unix socket, with
``Server::BuildAndStart``'s options: channel arguments, thread count, SSL or ALTS credentials,
the standard health service, and a clear refusal for TF Serving's profiler service."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from ._config import SslOptions
from ._core import ServingCore
from ._errors import ServingError, internal
from ._limits import Limits
from ._wire import Refused, request_deserializer

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


def _answer(context: grpc.ServicerContext, request: Any, method: Callable[[Any], Any]) -> Any:
    """``method(request)``, or an abort with its error (or the error of a request refused
    while it was read): the methods that keep no metrics."""
    try:
        if isinstance(request, Refused):
            raise request.error
        return method(request)
    except ServingError as exc:
        return _abort(context, exc)


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict, Classify, Regress, MultiInference and GetModelMetadata.

    TF Serving stops a session run at the client's deadline; here the client gets
    DEADLINE_EXCEEDED from gRPC at its deadline and the run ends on its own."""

    def __init__(self, core: ServingCore) -> None:
        self._core = core

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(self._core.predict, "Predict", request, context)

    def Classify(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(self._core.classify, "Classify", request, context)

    def Regress(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(self._core.regress, "Regress", request, context)

    def MultiInference(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(self._core.multi_inference, "MultiInference", request, context)

    def _call(self, method: Any, api: str, request: Any, context: grpc.ServicerContext) -> Any:
        started = time.perf_counter()
        error: ServingError | None = None
        name = _model_name(request)
        try:
            if isinstance(request, Refused):
                raise request.error
            return method(request)
        except ServingError as exc:
            error = exc.with_traceback(None)  # no frame (and its request) kept
            return _abort(context, exc)
        except Exception as exc:  # noqa: BLE001 - a bug here must still answer with a code
            _log.exception("gRPC %s failed", api)
            error = internal(f"Internal error: {type(exc).__name__}: {exc}")
            return _abort(context, error)
        finally:
            self._core.record(name, api, "GRPC", error, started)
            self._core.memory.note(size_bytes=request.ByteSize())

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _answer(context, request, self._core.get_model_metadata)


def _model_name(request: Any) -> str:
    if isinstance(request, Refused):
        return ""
    if isinstance(request, inference_pb2.MultiInferenceRequest):
        return str(request.tasks[0].model_spec.name) if request.tasks else ""
    return str(request.model_spec.name)


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus and HandleReloadConfigRequest."""

    def __init__(self, core: ServingCore) -> None:
        self._core = core

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _answer(context, request, self._core.get_model_status)

    def HandleReloadConfigRequest(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _answer(context, request, self._core.reload_config_request)


def _service_handler(
    service: str, servicer: Any, methods: dict[str, Any], limits: Limits
) -> grpc.GenericRpcHandler:
    """The official service with this server's request deserializer (``_wire``): a large
    message holding too many values is refused before it is parsed."""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name),
            request_deserializer=request_deserializer(message, limits),
            response_serializer=lambda response: response.SerializeToString(),
        )
        for name, message in methods.items()
    }
    return grpc.method_handlers_generic_handler(service, handlers)


# grpc.health.v1.Health, as TF Serving's --enable_grpc_healthcheck_service turns on gRPC's
# default health service ("" and the two service names SERVING). Its two messages have one
# field each, written and read here; the grpcio-health-checking package would pin a protobuf
# release that TensorFlow 2.19 cannot use.
_HEALTHY_SERVICES = ("", "ModelService", "PredictionService")
_SERVING, _SERVICE_UNKNOWN = 1, 3


def _health_service_name(request: bytes) -> str:
    """``HealthCheckRequest.service`` (field 1) from the serialized request."""
    pos, name = 0, ""
    while pos < len(request):
        tag, pos = _read_varint(request, pos)
        kind = tag & 7
        if kind == 2:
            size, pos = _read_varint(request, pos)
            if tag >> 3 == 1:
                name = request[pos : pos + size].decode("utf-8", "replace")
            pos += size
        elif kind == 0:
            _, pos = _read_varint(request, pos)
        elif kind in (1, 5):
            pos += 8 if kind == 1 else 4
        else:
            break
    return name


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    return value, pos


def _health_response(status: int) -> bytes:
    return bytes([0x08, status])  # HealthCheckResponse { status = 1 (enum) }


class _HealthService(grpc.GenericRpcHandler):
    def __init__(self, stopping: threading.Event) -> None:
        self._stopping = stopping

    def service(self, handler_call_details: Any) -> Any:
        method = handler_call_details.method
        if method == "/grpc.health.v1.Health/Check":
            return grpc.unary_unary_rpc_method_handler(self._check)
        if method == "/grpc.health.v1.Health/Watch":
            return grpc.unary_stream_rpc_method_handler(self._watch)
        return None

    def _check(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        if _health_service_name(request) not in _HEALTHY_SERVICES:
            context.abort(grpc.StatusCode.NOT_FOUND, "service name unknown")
        return _health_response(_SERVING)

    def _watch(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        known = _health_service_name(request) in _HEALTHY_SERVICES
        yield _health_response(_SERVING if known else _SERVICE_UNKNOWN)
        while context.is_active() and not self._stopping.wait(1.0):
            pass


class _ProfilerRefusal(grpc.GenericRpcHandler):
    """TF Serving registers TensorFlow's ``ProfilerService`` on its gRPC port
    (``--enable_profiler``, on by default); the embedded server answers its calls with a
    refusal that says so instead of gRPC's bare "Method not found"."""

    def service(self, handler_call_details: Any) -> Any:
        if handler_call_details.method.startswith("/tensorflow.ProfilerService/"):
            return grpc.unary_unary_rpc_method_handler(self._refuse)
        return None

    @staticmethod
    def _refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
        raise context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "TF Serving's profiler service (tensorflow.ProfilerService) is not available in "
            "headswitch's embedded server: TensorFlow's profiler server listens on every "
            "interface on a port of its own, which this server does not open. Profile the "
            "model in-process with tf.profiler.experimental.start() / stop() instead.",
        )


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# Any connection is asked to reconnect (GOAWAY) after this long, and closed --read-timeout later
# if a stream is still open: the bound on a request whose message never finishes arriving
# (gRPC calls a handler only once the whole message is in).
_MAX_CONNECTION_AGE_S = 600


@dataclass(frozen=True)
class GrpcOptions:
    """Where and how the gRPC server listens: ``port`` None means no TCP port (then
    ``socket_path`` must be set), 0 a free one; ``channel_arguments`` are
    ``--grpc_channel_arguments`` (they come last, so they override this server's own)."""

    port: int | None = 8500
    socket_path: str | None = None
    max_workers: int = 32
    channel_arguments: Sequence[tuple[str, int | str]] = field(default_factory=tuple)
    ssl: SslOptions | None = None
    alts: bool = False
    health_check: bool = False
    profiler: bool = True


class GrpcServer:
    def __init__(
        self,
        core: ServingCore,
        host: str,
        options: GrpcOptions,
        limits: Limits | None = None,
    ) -> None:
        limits = limits or Limits()
        self._stopping = threading.Event()
        own: list[tuple[str, int | str]] = [
            # TF Serving accepts messages up to 2 GiB; gRPC itself answers
            # RESOURCE_EXHAUSTED beyond this limit.
            ("grpc.max_receive_message_length", limits.max_request_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),
            ("grpc.max_connection_idle_ms", int(limits.idle_timeout * 1000)),
            ("grpc.max_connection_age_ms", _MAX_CONNECTION_AGE_S * 1000),
            ("grpc.max_connection_age_grace_ms", int(limits.read_timeout * 1000)),
        ]
        handlers: list[grpc.GenericRpcHandler] = [
            _service_handler("tensorflow.serving.PredictionService", _PredictionService(core), {
                "Classify": classification_pb2.ClassificationRequest,
                "Regress": regression_pb2.RegressionRequest,
                "Predict": predict_pb2.PredictRequest,
                "MultiInference": inference_pb2.MultiInferenceRequest,
                "GetModelMetadata": get_model_metadata_pb2.GetModelMetadataRequest,
            }, limits),
            _service_handler("tensorflow.serving.ModelService", _ModelService(core), {
                "GetModelStatus": get_model_status_pb2.GetModelStatusRequest,
                "HandleReloadConfigRequest": model_management_pb2.ReloadConfigRequest,
            }, limits),
        ]
        if options.health_check:
            handlers.append(_HealthService(self._stopping))
        if options.profiler:
            handlers.append(_ProfilerRefusal())
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=options.max_workers,
                                       thread_name_prefix="grpc"),
            handlers=handlers,
            options=own + list(options.channel_arguments),
        )
        credentials = _credentials(options)
        self.port: int | None = None
        if options.port is not None:
            address = _address(host, options.port)
            self.port = self._listen(address, credentials)
        self.socket_path = options.socket_path
        if options.socket_path:
            self._listen(f"unix:{options.socket_path}", credentials)

    def _listen(self, address: str, credentials: grpc.ServerCredentials | None) -> int:
        try:
            if credentials is None:
                port = self._server.add_insecure_port(address)
            else:
                port = self._server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            raise OSError(f"cannot listen for gRPC on {address}: {exc}") from exc
        if port == 0 and not address.startswith("unix:"):
            raise OSError(f"cannot listen for gRPC on {address}")
        return int(port)

    def start(self) -> None:
        self._server.start()

    def stop(self, grace: float | None) -> threading.Event:
        self._stopping.set()
        event: threading.Event = self._server.stop(grace)
        return event


def _credentials(options: GrpcOptions) -> grpc.ServerCredentials | None:
    """``BuildServerCredentials``: ALTS, SSL from ``SSLConfig``, or none (insecure)."""
    if options.alts:
        return grpc.alts_server_credentials()
    if options.ssl is None:
        return None
    ssl = options.ssl
    return grpc.ssl_server_credentials(
        [(ssl.server_key.encode(), ssl.server_cert.encode())],
        root_certificates=ssl.custom_ca.encode() if ssl.custom_ca else None,
        require_client_auth=ssl.client_verify,
    )
