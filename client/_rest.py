"""``RestClient`` and ``AsyncRestClient``: TF Serving's REST API (or a Vertex AI endpoint) on
httpx. Nothing here imports TensorFlow or gRPC; httpx is imported when a client is made."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, Union

from headswitch.contract import DEFAULT_MODEL_NAME, SIGNATURE_IDS, SIGNATURE_NAMES, SIGNATURE_TASKS

from ._auth import Token, TokenSource, google_token
from ._base import AsyncClient, SyncClient, _Base, client_options
from ._chunking import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_REQUEST_BYTES
from ._core import Options, Row, user_agent
from ._errors import HeadswitchError
from ._rest_codec import (
    RestPrepared,
    Routes,
    decode,
    metadata_from_document,
    names_body,
    predict_rows,
    raw_predict_url_of,
    status_from_document,
    tasks_body,
    tasks_from_document,
    vertex_predict_url,
)
from ._retry import RetryPolicy
from ._types import ModelMetadata, ModelStatus, TaskInfo

if TYPE_CHECKING:
    import httpx

Verify = Union[bool, str, "os.PathLike[str]", ssl.SSLContext]
Cert = Union[str, "tuple[str, str]", None]



def _httpx() -> ModuleType:
    try:
        import httpx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f'the REST client needs httpx: pip install "headswitch[rest]" ({exc})'
        ) from exc
    return httpx


def _tls(verify: Verify, cert: Cert) -> bool | ssl.SSLContext:
    """httpx's ``verify``: True, False, or an SSL context with a custom CA / client cert."""
    if isinstance(verify, ssl.SSLContext):
        context = verify
    elif verify is True and cert is None:
        return True
    elif verify is False:
        if cert is None:
            return False
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif verify is True:
        context = ssl.create_default_context()
    else:
        context = ssl.create_default_context(cafile=os.fspath(verify))
    if cert is not None:
        certfile, keyfile = (cert, None) if isinstance(cert, str) else cert
        context.load_cert_chain(certfile, keyfile)
    return context


def _is_tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _transport_error(httpx: ModuleType, exc: Exception, context: Mapping[str, Any]
                     ) -> HeadswitchError:
    url = context.get("url", "?")
    details = {**context, "cause": repr(exc)}
    kind = type(exc).__name__
    if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
        return HeadswitchError("UNAVAILABLE", f"cannot connect to {url} in time ({kind})",
                               transport="rest", details=details)
    if isinstance(exc, httpx.TimeoutException):
        return HeadswitchError("DEADLINE_EXCEEDED", f"no answer from {url} in time ({kind})",
                               transport="rest", details=details)
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.LocalProtocolError)):
        return HeadswitchError("INVALID_ARGUMENT", f"cannot send to {url}: {kind}: {exc}",
                               transport="rest", details=details, retryable=False)
    if isinstance(exc, httpx.TransportError):
        tls = _is_tls_failure(exc)
        what = "TLS handshake with" if tls else "connection to"
        return HeadswitchError("UNAVAILABLE", f"{what} {url} failed: {kind}: {exc}",
                               transport="rest", details=details, retryable=not tls)
    return HeadswitchError("UNKNOWN", f"{kind}: {exc}", transport="rest", details=details,
                           retryable=False)


class _Setup:
    """What the sync and async REST clients share."""

    def __init__(
        self,
        url: str,
        options: Options,
        *,
        token: Token | None,
        headers: Mapping[str, str] | None,
        vertex: tuple[str, str] | None,
    ) -> None:
        self.httpx = _httpx()
        self.options = options
        self.routes = Routes(
            url,
            options,
            vertex_predict_url=None if vertex is None else vertex[0],
            vertex_raw_predict_url=None if vertex is None else vertex[1],
        )
        self.token = TokenSource(token)
        self.headers = {"user-agent": user_agent(), "accept": "application/json"}
        self.headers.update(headers or {})
        static = self.token.header() if self.token.static else None
        if static is not None:
            self.headers["authorization"] = static
        self.predict_url, self.predict_head = self.routes.for_signature(options.signature)
        self.tasks_url, head = self.routes.for_signature(options.tasks_signature)
        self.tasks_body = tasks_body(head)
        self.names_url, self.names_head = self.routes.for_signature(SIGNATURE_NAMES)

    def headers_with(self, authorization: str | None) -> dict[str, str]:
        if authorization is None:
            return self.headers
        return {**self.headers, "authorization": authorization}


def _vertex_urls(endpoint: str | tuple[str, str, str], raw_predict_url: str | None
                 ) -> tuple[str, str]:
    predict = vertex_predict_url(endpoint)
    return predict, raw_predict_url or raw_predict_url_of(predict)


_JSON_HEADERS = {"content-type": "application/json"}

H = TypeVar("H")  # httpx.Client or httpx.AsyncClient
R = TypeVar("R", bound="_RestClient[Any]")


class _RestClient(_Base[bytes], Generic[H]):
    """The constructor, ``for_vertex`` and ``_prepare`` of both REST clients; each supplies
    its own ``httpx`` client (``_new_http``) and requests."""

    _transport = "rest"

    def __init__(
        self,
        url: str = "http://localhost:8501",
        *,
        model: str = DEFAULT_MODEL_NAME,
        version: int | None = None,
        version_label: str | None = None,
        signature: str = SIGNATURE_IDS,
        tasks_signature: str = SIGNATURE_TASKS,
        timeout: float | None = 30.0,
        deadline: float | None = None,
        retries: int | RetryPolicy = 3,
        max_request_bytes: int | None = DEFAULT_MAX_REQUEST_BYTES,
        max_batch_size: int | None = DEFAULT_MAX_BATCH_SIZE,
        tasks: Iterable[TaskInfo] | None = None,
        token: Token | None = None,
        verify: Verify = True,
        cert: Cert = None,
        headers: Mapping[str, str] | None = None,
        http_client: H | None = None,
        _vertex: tuple[str, str] | None = None,
    ) -> None:
        options = client_options(model, version, version_label, signature, tasks_signature,
                                 timeout, deadline, retries, max_request_bytes, max_batch_size)
        super().__init__(options, tasks)
        self._setup = _Setup(url, options, token=token, headers=headers, vertex=_vertex)
        self._owns_http = http_client is None
        self._http: H = http_client or self._new_http(_tls(verify, cert), timeout)
        self.url = self._setup.routes.predict_url if _vertex else url

    def _new_http(self, verify: bool | ssl.SSLContext, timeout: float | None) -> H:
        raise NotImplementedError

    @classmethod
    def for_vertex(
        cls: type[R],
        endpoint: str | tuple[str, str, str],
        *,
        token: Token | None = None,
        credentials: Any = None,
        raw_predict_url: str | None = None,
        **kwargs: Any,
    ) -> R:
        """A Vertex AI endpoint serving the headswitch model in a TF Serving container.

        ``endpoint``: ``(project, region, endpoint_id)``, ``projects/P/locations/R/endpoints/E``
        or the endpoint's URL. Predictions post ``{"instances": [...]}`` to ``:predict`` (the
        default signature); the task list goes through ``:rawPredict``, which passes
        ``signature_name`` on. Without ``token``, google-auth's Application Default Credentials
        (or ``credentials``) provide one. ``status()`` and ``metadata()`` are not available.
        """
        if token is None:
            token = google_token(credentials)
        return cls(token=token, _vertex=_vertex_urls(endpoint, raw_predict_url), **kwargs)

    def _prepare(self, texts: list[str], ids: list[int]) -> RestPrepared:
        return RestPrepared(texts, ids, self._setup.predict_head)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, model={self.model!r})"


class RestClient(_RestClient["httpx.Client"], SyncClient[bytes]):
    """TF Serving's REST API over httpx: ``RestClient("http://localhost:8501")``.

    ``timeout`` bounds one HTTP request, ``deadline`` one method call (all its requests and
    retries). ``verify`` is True, False, a CA bundle path or an ``ssl.SSLContext``; ``cert`` a
    client certificate (path, or (cert, key)); ``token`` a bearer token or a callable that
    returns one. ``http_client`` replaces the client's own ``httpx.Client`` (and its TLS
    settings); it is not closed by :meth:`close`.
    """

    def _new_http(self, verify: bool | ssl.SSLContext, timeout: float | None) -> httpx.Client:
        return self._setup.httpx.Client(verify=verify, timeout=timeout)  # type: ignore[no-any-return]

    # ---------------------------------------------------------------- one request each

    def _send(self, url: str, body: bytes | None, timeout: float | None) -> Any:
        setup = self._setup
        headers = setup.headers_with(None if setup.token.static else setup.token.header())
        context = {"url": url, "method": "GET" if body is None else "POST"}
        try:
            if body is None:
                answer = self._http.get(url, headers=headers, timeout=timeout)
            else:
                answer = self._http.post(url, content=body, headers={**headers, **_JSON_HEADERS},
                                         timeout=timeout)
        except setup.httpx.HTTPError as exc:
            raise _transport_error(setup.httpx, exc, context) from exc
        return decode(answer.status_code, answer.headers, answer.content, context)

    def _predict_once(self, payload: bytes, timeout: float | None) -> list[Row]:
        url = self._setup.predict_url
        return predict_rows(self._send(url, payload, timeout), {"url": url})

    def _tasks_once(self, timeout: float | None) -> list[TaskInfo]:
        url = self._setup.tasks_url
        return tasks_from_document(self._send(url, self._setup.tasks_body, timeout), {"url": url})

    def _names_once(self, names: list[str], timeout: float | None) -> list[Row]:
        url, body = self._setup.names_url, names_body(self._setup.names_head, names)
        return predict_rows(self._send(url, body, timeout), {"url": url})

    def _status_once(self, timeout: float | None) -> ModelStatus:
        url = self._setup.routes.status_url()
        return status_from_document(self.model, self._send(url, None, timeout), {"url": url})

    def _metadata_once(self, timeout: float | None) -> ModelMetadata:
        url = self._setup.routes.metadata_url()
        return metadata_from_document(self.model, self._send(url, None, timeout), {"url": url})

    def close(self) -> None:
        if self._owns_http:
            self._http.close()



class AsyncRestClient(_RestClient["httpx.AsyncClient"], AsyncClient[bytes]):
    """:class:`RestClient` for asyncio, on ``httpx.AsyncClient``; the same options."""

    def _new_http(self, verify: bool | ssl.SSLContext, timeout: float | None
                  ) -> httpx.AsyncClient:
        return self._setup.httpx.AsyncClient(  # type: ignore[no-any-return]
            verify=verify, timeout=timeout)

    # ---------------------------------------------------------------- one request each

    async def _send(self, url: str, body: bytes | None, timeout: float | None) -> Any:
        setup = self._setup
        authorization = None if setup.token.static else await asyncio.to_thread(
            setup.token.header)
        headers = setup.headers_with(authorization)
        context = {"url": url, "method": "GET" if body is None else "POST"}
        try:
            if body is None:
                answer = await self._http.get(url, headers=headers, timeout=timeout)
            else:
                answer = await self._http.post(
                    url, content=body, headers={**headers, **_JSON_HEADERS}, timeout=timeout)
        except setup.httpx.HTTPError as exc:
            raise _transport_error(setup.httpx, exc, context) from exc
        return decode(answer.status_code, answer.headers, answer.content, context)

    async def _predict_once(self, payload: bytes, timeout: float | None) -> list[Row]:
        url = self._setup.predict_url
        return predict_rows(await self._send(url, payload, timeout), {"url": url})

    async def _names_once(self, names: list[str], timeout: float | None) -> list[Row]:
        url, body = self._setup.names_url, names_body(self._setup.names_head, names)
        return predict_rows(await self._send(url, body, timeout), {"url": url})

    async def _tasks_once(self, timeout: float | None) -> list[TaskInfo]:
        url = self._setup.tasks_url
        document = await self._send(url, self._setup.tasks_body, timeout)
        return tasks_from_document(document, {"url": url})

    async def _status_once(self, timeout: float | None) -> ModelStatus:
        url = self._setup.routes.status_url()
        return status_from_document(self.model, await self._send(url, None, timeout),
                                    {"url": url})

    async def _metadata_once(self, timeout: float | None) -> ModelMetadata:
        url = self._setup.routes.metadata_url()
        return metadata_from_document(self.model, await self._send(url, None, timeout),
                                      {"url": url})

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()
