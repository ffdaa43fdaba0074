"""``GrpcClient`` and ``AsyncGrpcClient``: TF Serving's gRPC API. grpcio and protobuf (the
``grpc`` extra) are imported when a client is made; TensorFlow never is."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, Union

from headswitch.contract import DEFAULT_MODEL_NAME, SIGNATURE_IDS, SIGNATURE_TASKS

from ._auth import Token, TokenSource
from ._base import AsyncClient, SyncClient, _Base, client_options
from ._chunking import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_REQUEST_BYTES
from ._core import Options, Row, user_agent
from ._retry import RetryPolicy
from ._types import ModelMetadata, ModelStatus, TaskInfo

if TYPE_CHECKING:
    import grpc
    import grpc.aio

Pem = Union[bytes, str, "os.PathLike[str]"]

_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    # Reconnect soon after a server restart (gRPC's default first wait is 1 s, up to 120 s).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


def _codec() -> ModuleType:
    try:
        from . import _grpc_codec
    except ImportError as exc:
        raise ImportError(
            "the gRPC client needs grpcio and protobuf: "
            f'pip install "headswitch[grpc]" ({exc})'
        ) from exc
    return _grpc_codec


def _pem(value: Pem | None) -> bytes | None:
    """PEM bytes, PEM text, or the path of a PEM file."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str) and value.lstrip().startswith("-----BEGIN"):
        return value.encode()
    return Path(value).read_bytes()


class _Setup:
    """What the sync and async gRPC clients share."""

    def __init__(
        self,
        target: str,
        options: Options,
        *,
        token: Token | None,
        metadata: Sequence[tuple[str, str]] | None,
        tls: bool | None,
        root_certificates: Pem | None,
        private_key: Pem | None,
        certificate_chain: Pem | None,
        server_name: str | None,
        channel_options: Sequence[tuple[str, Any]] | None,
    ) -> None:
        self.codec = _codec()
        self.grpc = self.codec.grpc
        self.target = target
        self.options = options
        self.spec = self.codec.model_spec(options, options.signature)
        self.overhead = self.codec.request_overhead(self.spec)
        self.tasks_request = self.codec.tasks_request(options)
        self.status_request = self.codec.status_request(options)
        self.metadata_request = self.codec.metadata_request(options)
        self.token = TokenSource(token)
        self.metadata: list[tuple[str, str]] = list(metadata or [])
        static = self.token.header() if self.token.static else None
        if static is not None:
            self.metadata.append(("authorization", static))
        use_tls = tls if tls is not None else any(
            v is not None for v in (root_certificates, private_key, certificate_chain))
        self.credentials = self.grpc.ssl_channel_credentials(
            _pem(root_certificates), _pem(private_key), _pem(certificate_chain)
        ) if use_tls else None
        self.channel_options = [*_CHANNEL_OPTIONS, ("grpc.primary_user_agent", user_agent())]
        if server_name is not None:
            self.channel_options.append(("grpc.ssl_target_name_override", server_name))
        self.channel_options.extend(channel_options or [])

    def channel(self, aio: Any) -> Any:
        """A channel from ``grpc`` or ``grpc.aio``."""
        if self.credentials is None:
            return aio.insecure_channel(self.target, options=self.channel_options)
        return aio.secure_channel(self.target, self.credentials, options=self.channel_options)

    def metadata_with(self, authorization: str | None) -> list[tuple[str, str]] | None:
        if authorization is None:
            return self.metadata or None
        return [*self.metadata, ("authorization", authorization)]

    def context(self, method: str) -> dict[str, str]:
        return {"target": self.target, "method": method}


Ch = TypeVar("Ch")  # grpc.Channel or grpc.aio.Channel


class _GrpcClient(_Base[Any], Generic[Ch]):
    """The constructor and ``_prepare`` of both gRPC clients; each opens its own channel
    (``_open``) and sends its own requests."""

    _transport = "grpc"

    def __init__(
        self,
        target: str = "localhost:8500",
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
        metadata: Sequence[tuple[str, str]] | None = None,
        tls: bool | None = None,
        root_certificates: Pem | None = None,
        private_key: Pem | None = None,
        certificate_chain: Pem | None = None,
        server_name: str | None = None,
        channel_options: Sequence[tuple[str, Any]] | None = None,
        channel: Ch | None = None,
    ) -> None:
        options = client_options(model, version, version_label, signature, tasks_signature,
                                 timeout, deadline, retries, max_request_bytes, max_batch_size)
        super().__init__(options, tasks)
        self._setup = _Setup(
            target, options, token=token, metadata=metadata, tls=tls,
            root_certificates=root_certificates, private_key=private_key,
            certificate_chain=certificate_chain, server_name=server_name,
            channel_options=channel_options)
        self._owns_channel = channel is None
        self._open(channel)
        self.target = target

    def _open(self, channel: Ch | None) -> None:
        """Keep ``channel`` (the caller's) or make the client's own."""
        raise NotImplementedError

    def _prepare(self, texts: list[str], ids: list[int]) -> Any:
        setup = self._setup
        return setup.codec.GrpcPrepared(setup.spec, setup.overhead,
                                        self._options.max_request_bytes, texts, ids)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.target!r}, model={self.model!r})"


class GrpcClient(_GrpcClient["grpc.Channel"], SyncClient[Any]):
    """TF Serving's gRPC API: ``GrpcClient("localhost:8500")``.

    The same methods, options and results as :class:`RestClient`. ``tls`` (implied by any
    certificate argument) makes a secure channel; ``root_certificates`` is a custom CA,
    ``private_key`` / ``certificate_chain`` a client certificate (PEM bytes or file paths);
    ``server_name`` overrides the name checked in the server's certificate. ``token`` is sent
    as ``authorization: Bearer ...`` metadata. ``channel`` replaces the client's own channel
    (it is not closed by :meth:`close`).
    """

    def _open(self, channel: grpc.Channel | None) -> None:
        self._channel = channel or self._setup.channel(self._setup.grpc)
        codec = self._setup.codec
        self._prediction = codec.prediction_stub(self._channel)
        self._models = codec.model_stub(self._channel)

    def _rpc(self, method: Any, name: str, request: Any, timeout: float | None) -> Any:
        setup = self._setup
        metadata = setup.metadata_with(None if setup.token.static else setup.token.header())
        try:
            return method(request, timeout=timeout, metadata=metadata)
        except setup.grpc.RpcError as exc:
            raise setup.codec.error_from_rpc(exc, setup.context(name)) from exc

    def _predict_once(self, payload: Any, timeout: float | None) -> list[Row]:
        response = self._rpc(self._prediction.Predict, "Predict", payload, timeout)
        return self._setup.codec.predict_rows(response)  # type: ignore[no-any-return]

    def _names_once(self, names: list[str], timeout: float | None) -> list[Row]:
        return self._predict_once(self._setup.codec.names_request(self._options, names), timeout)

    def _tasks_once(self, timeout: float | None) -> list[TaskInfo]:
        setup = self._setup
        response = self._rpc(self._prediction.Predict, "Predict", setup.tasks_request, timeout)
        return setup.codec.tasks_from_response(response)  # type: ignore[no-any-return]

    def _status_once(self, timeout: float | None) -> ModelStatus:
        setup = self._setup
        response = self._rpc(self._models.GetModelStatus, "GetModelStatus",
                             setup.status_request, timeout)
        return setup.codec.status_from_response(self.model, response)  # type: ignore[no-any-return]

    def _metadata_once(self, timeout: float | None) -> ModelMetadata:
        setup = self._setup
        response = self._rpc(self._prediction.GetModelMetadata, "GetModelMetadata",
                             setup.metadata_request, timeout)
        return setup.codec.metadata_from_response(self.model, response)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()



class AsyncGrpcClient(_GrpcClient["grpc.aio.Channel"], AsyncClient[Any]):
    """:class:`GrpcClient` for asyncio, on ``grpc.aio``; the same options. The channel is made
    in the running event loop on first use (and again if the client is used in another loop)."""

    def _open(self, channel: grpc.aio.Channel | None) -> None:
        self._channel: Any = channel
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stubs: tuple[Any, Any] | None = None

    def _stubs_now(self) -> tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        if self._stubs is None or (self._owns_channel and loop is not self._loop):
            if self._owns_channel:
                self._channel = self._setup.channel(self._setup.grpc.aio)
            self._loop = loop
            codec = self._setup.codec
            self._stubs = (codec.prediction_stub(self._channel), codec.model_stub(self._channel))
        return self._stubs

    async def _rpc(self, name: str, request: Any, timeout: float | None) -> Any:
        setup = self._setup
        prediction, models = self._stubs_now()
        method = getattr(models if name == "GetModelStatus" else prediction, name)
        authorization = None if setup.token.static else await asyncio.to_thread(
            setup.token.header)
        try:
            return await method(request, timeout=timeout,
                                metadata=setup.metadata_with(authorization))
        except setup.grpc.RpcError as exc:
            raise setup.codec.error_from_rpc(exc, setup.context(name)) from exc

    async def _predict_once(self, payload: Any, timeout: float | None) -> list[Row]:
        response = await self._rpc("Predict", payload, timeout)
        return self._setup.codec.predict_rows(response)  # type: ignore[no-any-return]

    async def _names_once(self, names: list[str], timeout: float | None) -> list[Row]:
        return await self._predict_once(self._setup.codec.names_request(self._options, names),
                                        timeout)

    async def _tasks_once(self, timeout: float | None) -> list[TaskInfo]:
        response = await self._rpc("Predict", self._setup.tasks_request, timeout)
        return self._setup.codec.tasks_from_response(response)  # type: ignore[no-any-return]

    async def _status_once(self, timeout: float | None) -> ModelStatus:
        response = await self._rpc("GetModelStatus", self._setup.status_request, timeout)
        return self._setup.codec.status_from_response(  # type: ignore[no-any-return]
            self.model, response)

    async def _metadata_once(self, timeout: float | None) -> ModelMetadata:
        response = await self._rpc("GetModelMetadata", self._setup.metadata_request, timeout)
        return self._setup.codec.metadata_from_response(  # type: ignore[no-any-return]
            self.model, response)

    async def aclose(self) -> None:
        if self._owns_channel and self._channel is not None:
            if self._loop is asyncio.get_running_loop():
                await self._channel.close()
            self._channel = None
            self._stubs = None
