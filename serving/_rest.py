"""The REST front end (Starlette on uvicorn), following ``http_rest_api_handler.cc``,
``http_rest_api_util.cc`` and ``http_server.cc``."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from typing import Any
from urllib.parse import unquote

import grpc
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._config import MonitoringOptions
from ._core import ServingCore
from ._errors import ServingError, failed_precondition, invalid_argument, unimplemented
from ._json import error_body, fill_inputs, make_response, parse_document, read_signature_name
from ._metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ._servable import DEFAULT_SIGNATURE
from ._tensors import dtype_name

_log = logging.getLogger(__name__)

_V1 = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_PREDICT = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_STATUS = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
_NOT_FOUND_HTML = (
    b"<HTML><HEAD>\n<TITLE>404 Not Found</TITLE>\n</HEAD><BODY>\n<H1>Not Found</H1>\n"
    b"</BODY></HTML>\n"
)
_JSON = "application/json"
_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
_INT64_MAX = 2**63 - 1


def _json_of(message: Any, preserve_names: bool = False) -> str:
    from google.protobuf import json_format

    return str(
        json_format.MessageToJson(
            message,
            indent=1,
            preserving_proto_field_name=preserve_names,
            always_print_fields_with_no_presence=True,
        )
    )


class RestHandler:
    """``HttpRestApiHandler::ProcessRequest``: (method, path, body) -> (code, JSON body)."""

    def __init__(self, core: ServingCore) -> None:
        self._core = core

    def process(self, method: str, path: str, body: bytes, origin: str | None) -> tuple[int, bytes]:
        started = time.perf_counter()
        seen: dict[str, str] = {"model_name": "", "api": ""}
        error: ServingError | None = None
        output = b""
        try:
            if method == "OPTIONS":
                if origin is None or not re.search(r"https?://", origin):
                    raise failed_precondition("Origin header is missing in CORS preflight")
            else:
                output = self._dispatch(method, path, body, seen)
        except ServingError as exc:
            error = exc
        self._core.record(seen["model_name"], seen["api"], "REST", error, started)
        if error is not None:
            return error.http_status, error_body(error.message)
        return 200, output

    def _dispatch(self, method: str, path: str, body: bytes, seen: dict[str, str]) -> bytes:
        malformed = invalid_argument(f"Malformed request: {method} {path}")
        if method == "POST":
            match = _PREDICT.fullmatch(path)
        elif method == "GET":
            match = _STATUS.fullmatch(path)
        else:
            raise malformed
        if match is None:
            raise malformed
        raw_name, version_text, raw_label, action = (g or "" for g in match.groups())
        name = unquote(raw_name)
        seen["model_name"] = name
        if method == "POST":
            seen["api"] = action
        version: int | None = None
        if version_text:
            version = int(version_text)
            if version > _INT64_MAX:
                raise invalid_argument(f"Failed to convert version: {version_text} to numeric.")
        label = unquote(raw_label) if raw_label else None
        spec = self._model_spec(name, version, label)
        if method == "POST":
            if action == "predict":
                return self._predict(spec, body)
            if action in ("classify", "regress"):
                raise unimplemented(f"The {action} API is not supported by this server")
            raise malformed
        if not name:
            raise invalid_argument("Missing model name in request.")
        if action == "metadata":
            return self._metadata(spec)
        return self._status(spec)

    @staticmethod
    def _model_spec(name: str, version: int | None, label: str | None) -> Any:
        from tensorflow_serving.apis import model_pb2

        spec = model_pb2.ModelSpec(name=name)
        if version is not None:
            spec.version.value = version
        if label is not None:
            spec.version_label = label
        return spec

    def _predict(self, spec: Any, body: bytes) -> bytes:
        document = parse_document(body)
        signature_name = read_signature_name(document)
        with self._core.servable(spec) as servable:
            key = signature_name or DEFAULT_SIGNATURE
            signature = servable.signature_defs.get(key)
            if signature is None:
                raise invalid_argument(
                    f'Serving signature name: "{key}" not found in signature def'
                )
            dtypes = {alias: dtype_name(info.dtype) for alias, info in signature.inputs.items()}
            if not dtypes:
                raise invalid_argument(
                    f"Failed to get input map for signature: {signature_name or 'DEFAULT'}"
                )
            fmt, inputs = fill_inputs(document, dtypes)
            result = self._core.predict_arrays(
                servable, spec.name, signature_name, inputs, lambda _alias, value: value, []
            )
        return make_response(result.outputs, fmt)

    def _status(self, spec: Any) -> bytes:
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest(model_spec=spec)
        return (_json_of(self._core.get_model_status(request))).encode()

    def _metadata(self, spec: Any) -> bytes:
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=spec, metadata_field=["signature_def"]
        )
        response = self._core.get_model_metadata(request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        if not response.metadata["signature_def"].Unpack(signature_map):
            raise ServingError(
                grpc.StatusCode.INTERNAL, "Failed to unpack 'Any' object to 'SignatureDefMap'."
            )
        text = (
            "{\n"
            f'"model_spec":{_json_of(response.model_spec, True)},\n'
            f'"metadata": {{"signature_def": {_json_of(signature_map, True)}}}\n'
            "}\n"
        )
        return text.encode()


class RestServer:
    def __init__(
        self,
        core: ServingCore,
        host: str,
        port: int,
        monitoring: MonitoringOptions,
        grace: float | None = None,
    ) -> None:
        self._handler = RestHandler(core)
        self._core = core
        self._monitoring = monitoring
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP: asyncio only sets TCP_NODELAY on sockets it knows are TCP; without it
        # Nagle holds each response body until the client's delayed ACK (~40 ms a request).
        self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError:
            self._socket.close()
            raise
        self.port: int = self._socket.getsockname()[1]
        app = Starlette(routes=[Route("/{path:path}", self._endpoint, methods=_METHODS)])
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=None,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    async def _endpoint(self, request: Request) -> Response:
        path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
        path = path.split("?", 1)[0]
        if self._monitoring.enable and path == self._monitoring.path:
            return Response(self._core.metrics.render(), 200, media_type=METRICS_CONTENT_TYPE)
        if not _V1.fullmatch(path):
            return Response(_NOT_FOUND_HTML, 404, media_type="text/html")
        body = await request.body()
        code, payload = await run_in_threadpool(
            self._handler.process, request.method, path, body, request.headers.get("origin")
        )
        return Response(payload, code, media_type=_JSON)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="headswitch-rest",
            daemon=True,
        )
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise OSError(f"REST server failed to start on port {self.port}")
            time.sleep(0.01)

    def stop(self, grace: float | None) -> None:
        """Stop accepting connections, let in-flight requests finish (up to ``grace``)."""
        self._server.config.timeout_graceful_shutdown = (
            None if grace is None else max(int(grace), 1)
        )
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(None if grace is None else grace + 5)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(5)
        self._socket.close()
