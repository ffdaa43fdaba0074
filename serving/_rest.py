"""The REST front end, following TF Serving's ``http_server.cc``, ``http_rest_api_handler.cc``
and ``http_rest_api_util.cc`` over uvicorn (see ``_http`` for the transport).

What the stock server does and this one repeats: the API sees the request target with its
query string (libevent's ``uri_path()`` is the path plus ``?query``), so a query string makes a
predict URL malformed and becomes part of a model name in a status URL; a CORS preflight
(OPTIONS) answers 200 or 400 with an empty body; paths outside ``/v1/`` get libevent's 404 page.
``--rest_api_timeout_in_ms`` bounds each session run of a REST request (DEADLINE_EXCEEDED,
504), ``--rest_api_enable_cors_support`` adds TF Serving's three CORS headers to every API
answer, ``--rest_api_num_threads`` sizes the request threads. What it adds: the request limits
and timeouts of ``_limits``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote

import grpc
import uvicorn

from ._config import MonitoringOptions
from ._core import ServingCore
from ._errors import ServingError, failed_precondition, internal, invalid_argument
from ._http import (
    LIBEVENT_CONTENT_TYPE,
    LIBEVENT_DEFAULT_CONTENT_TYPE,
    error_page,
    protocol_with_timeouts,
)
from ._json import (
    error_body,
    examples_from_document,
    fill_inputs,
    json_tensor_to_array,
    make_classification_response,
    make_regression_response,
    make_response,
    parse_document,
    read_signature_name,
)
from ._limits import Limits
from ._metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ._servable import DEFAULT_SIGNATURE
from ._tensors import dtype_name

_log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# http_server.cc: the dispatcher takes "(?i)/v1/.*"; http_rest_api_util.cc: the API regexes.
_V1 = re.compile(r"/v1/.*", re.IGNORECASE)
_PREDICT = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_STATUS = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
_ORIGIN = re.compile(r"https?://")
_JSON = "application/json"
_INT64_MAX = 2**63 - 1
# libevent's request line parser knows these; evhttp_set_allowed_methods (evhttp_server.cc)
# allows all but TRACE and CONNECT, which get 501.
_ALLOWED_METHODS = {"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"}
_REFUSED_METHODS = {"TRACE", "CONNECT"}
# evhttp_request.cc parses the target with libevent's strict evhttp_uri_parse (http.c
# end_of_path): unreserved characters, sub-delims, ":@/", %XX escapes, then "?query" and
# "#fragment" (which may also hold "?"). Anything else is a 400 before any handler runs.
_URI_PART = rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*"
_URI = re.compile(
    rb"(?!//)" + _URI_PART + rb"(?:\?(?:" + _URI_PART + rb"|\?)*)?(?:#(?:" + _URI_PART
    + rb"|\?)*)?"
)


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
    """``HttpRestApiHandler::ProcessRequest`` (plus the CORS preflight of
    ``RestApiRequestDispatcher``): (method, request target, body) -> (status, body, type).
    ``timeout_ms`` > 0 bounds each session run."""

    def __init__(
        self, core: ServingCore, limits: Limits | None = None, timeout_ms: int = 30_000
    ) -> None:
        self._core = core
        self._limits = limits or Limits()
        self._timeout_ms = timeout_ms if timeout_ms > 0 else None

    def process(
        self, method: str, uri: str, body: bytes, origin: str | None
    ) -> tuple[int, bytes, str]:
        started = time.perf_counter()
        seen: dict[str, str] = {"model_name": "", "api": ""}
        error: ServingError | None = None
        output = b""
        if method == "OPTIONS":
            if origin is None or not _ORIGIN.search(origin):
                error = failed_precondition("Origin header is missing in CORS preflight")
            self._core.record("", "", "REST", error, started)
            # No handler ran: no Content-Type of the API, and no JSON body.
            return (200 if error is None else 400), b"", LIBEVENT_DEFAULT_CONTENT_TYPE
        try:
            output = self._dispatch(method, uri, body, seen)
        except ServingError as exc:
            error = exc.with_traceback(None)  # no frame (and its request) kept
        except Exception as exc:  # noqa: BLE001 - a bug here must still answer in JSON
            _log.exception("REST request %s %s failed", method, uri)
            error = internal(f"Internal error: {type(exc).__name__}: {exc}")
        self._core.record(seen["model_name"], seen["api"], "REST", error, started)
        if error is not None:
            return error.http_status, error_body(error.message), _JSON
        return 200, output, _JSON

    def _dispatch(self, method: str, uri: str, body: bytes, seen: dict[str, str]) -> bytes:
        malformed = invalid_argument(f"Malformed request: {method} {uri}")
        if method == "POST":
            match = _PREDICT.fullmatch(uri)
        elif method == "GET":
            match = _STATUS.fullmatch(uri)
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
            # RE2 matched the method case-insensitively; the dispatch compares it exactly.
            if action == "predict":
                return self._predict(spec, body)
            if action in ("classify", "regress"):
                return self._classify_or_regress(spec, body, action)
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
        document = parse_document(body, self._limits)
        signature_name = read_signature_name(document)
        limits = self._limits
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
            fmt, inputs = fill_inputs(document, dtypes, limits)
            del document  # the JSON values are no longer needed
            result = self._core.predict_arrays(
                servable,
                spec.name,
                signature_name,
                inputs,
                lambda alias, tensor: json_tensor_to_array(alias, tensor, limits),
                [],
                self._timeout_ms,
            )
        return make_response(result.outputs, fmt)

    def _classify_or_regress(self, spec: Any, body: bytes, action: str) -> bytes:
        from tensorflow_serving.apis import classification_pb2, regression_pb2

        document = parse_document(body, self._limits)
        request: Any = (
            classification_pb2.ClassificationRequest()
            if action == "classify"
            else regression_pb2.RegressionRequest()
        )
        request.model_spec.CopyFrom(spec)
        request.model_spec.signature_name = read_signature_name(document)
        examples_from_document(document, request, self._limits)
        if action == "classify":
            response = self._core.classify(request, self._timeout_ms)
            return make_classification_response(
                [
                    [(c.label.encode("utf-8", "surrogateescape"), c.score) for c in item.classes]
                    for item in response.result.classifications
                ]
            )
        response = self._core.regress(request, self._timeout_ms)
        return make_regression_response([r.value for r in response.result.regressions])

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


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


# AddCORSHeaders (http_rest_api_util.cc), with --rest_api_enable_cors_support.
CORS_HEADERS = (
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"POST, GET"),
    (b"access-control-allow-headers", b"Content-Type"),
)


async def _reply(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    close: bool = False,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    headers = [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _BodyRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RestServer:
    def __init__(
        self,
        core: ServingCore,
        host: str,
        port: int,
        monitoring: MonitoringOptions,
        limits: Limits | None = None,
        threads: int | None = None,
        timeout_ms: int = 30_000,
        cors: bool = False,
    ) -> None:
        self._limits = limits or Limits()
        self._handler = RestHandler(core, self._limits, timeout_ms)
        self._core = core
        self._monitoring = monitoring
        self._cors = CORS_HEADERS if cors else ()
        # TF Serving's --rest_api_num_threads defaults to 4 per CPU.
        self._executor = ThreadPoolExecutor(
            max_workers=threads or max(8, 4 * (os.cpu_count() or 1)),
            thread_name_prefix="rest",
        )
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
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            interface="asgi3",
            proxy_headers=False,
            log_level="warning",
            access_log=False,
            server_header=False,
            ws="none",
            http=protocol_with_timeouts(self._limits.read_timeout),
            timeout_keep_alive=max(1, round(self._limits.idle_timeout)),
            timeout_graceful_shutdown=None,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method = str(scope["method"])
        path = bytes(scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        uri = f"{path}?{query}" if query else path
        if method not in _ALLOWED_METHODS:
            status = 501 if method in _REFUSED_METHODS else 400
            await _reply(send, status, error_page(status), LIBEVENT_CONTENT_TYPE, close=True)
            return
        if not _URI.fullmatch(uri.encode("latin-1")):
            await _reply(send, 400, error_page(400), LIBEVENT_CONTENT_TYPE, close=True)
            return
        if self._monitoring.enable and path == self._monitoring.path:
            if uri != path:  # ProcessPrometheusRequest compares the path with its query
                message = f"Unexpected path: {uri}. Should be {path}"
                await _reply(send, 400, message.encode("latin-1"), METRICS_CONTENT_TYPE)
                return
            page = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._core.metrics.render
            )
            await _reply(send, 200, page, METRICS_CONTENT_TYPE)
            return
        if not _V1.fullmatch(uri):
            await _reply(send, 404, error_page(404), LIBEVENT_CONTENT_TYPE, close=True)
            return
        try:
            body = await self._read_body(scope, receive, method, uri)
        except _BodyRefused as refused:
            await _reply(send, refused.status, error_body(refused.message), _JSON, close=True,
                         extra=self._cors)
            return
        if body is None:
            return  # the client went away
        status, payload, content_type = await asyncio.get_running_loop().run_in_executor(
            self._executor,
            self._handler.process,
            method,
            uri,
            body,
            _header(scope, b"origin"),
        )
        self._core.memory.note(size_bytes=len(body))
        del body
        await _reply(send, status, payload, content_type, extra=self._cors)

    async def _read_body(
        self, scope: Scope, receive: Receive, method: str, uri: str
    ) -> bytes | None:
        """The whole body, within the size limit and the read timeout; None if the client
        disconnected first (logged in one line)."""
        limit = self._limits.max_request_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _BodyRefused(413, _too_large(int(declared), limit))
        chunks: list[bytes] = []
        received = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), self._limits.read_timeout)
            except asyncio.TimeoutError:
                _log.warning(
                    "REST request %s %s from %s timed out: no data for %g s (%d bytes "
                    "received)",
                    method,
                    uri,
                    _client(scope),
                    self._limits.read_timeout,
                    received,
                )
                raise _BodyRefused(
                    408,
                    f"Request body not received: no data for {self._limits.read_timeout:g} "
                    "seconds (the server's read timeout, --read-timeout)",
                ) from None
            if message["type"] == "http.disconnect":
                _log.warning(
                    "REST client %s disconnected before sending the whole request: %s %s "
                    "(%d of %s bytes received)",
                    _client(scope),
                    method,
                    uri,
                    received,
                    declared or "unknown",
                )
                return None
            chunk = bytes(message.get("body", b""))
            received += len(chunk)
            if received > limit:
                raise _BodyRefused(413, _too_large(received, limit, at_least=True))
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

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
        self._executor.shutdown(wait=False, cancel_futures=True)


def _too_large(size: int, limit: int, at_least: bool = False) -> str:
    return (
        f"Request body of {'more than ' if at_least else ''}{size} bytes is larger than this "
        f"server's limit of {limit} bytes (--max-request-bytes)"
    )


def _client(scope: Scope) -> str:
    client = scope.get("client")
    if not client:
        return "a client"
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
