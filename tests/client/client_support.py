"""Helpers of the client tests: make any of the four clients, read the server's request
counters, TLS material and two small TLS front ends (real sockets, real handshakes)."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

MODEL = "headswitch"
KINDS = ("rest", "grpc", "async_rest", "async_grpc")
TEXTS = [
    "what a match, the striker scored twice",
    "the senate passed the budget bill",
    "WIN A FREE PRIZE click now",
    "bonjour, comment allez-vous",
    "new phone with a faster chip",
    "please answer asap, the server is down",
    "football tonight at the stadium",
    "I loved this restaurant, great food",
]


def address(kind: str, server: Any) -> str:
    return str(server.grpc_address if kind.endswith("grpc") else server.rest_url)


def make(kind: str, target: str, **options: Any) -> Any:
    from headswitch.client import AsyncGrpcClient, AsyncRestClient, GrpcClient, RestClient

    classes = {"rest": RestClient, "grpc": GrpcClient, "async_rest": AsyncRestClient,
               "async_grpc": AsyncGrpcClient}
    return classes[kind](target, **options)


def run(kind: str, server: Any, call: Callable[[Any], Any], target: str | None = None,
        **options: Any) -> Any:
    """Make a client of ``kind``, return ``call(client)`` (awaited for the async clients),
    close the client."""
    where = target if target is not None else address(kind, server)
    if kind.startswith("async"):
        async def go() -> Any:
            async with make(kind, where, **options) as client:
                return await call(client)

        return asyncio.run(go())
    with make(kind, where, **options) as client:
        return call(client)


_COUNTER = re.compile(r':headswitch:serving:request_count\{model_name="([^"]*)",API="([^"]*)",'
                      r'entrypoint="([^"]*)",status="([^"]*)"\} (\d+)')


def request_counts(server: Any, model: str = MODEL) -> dict[tuple[str, str, str], int]:
    """The server's request counters: (API, entrypoint, status) -> count."""
    import httpx

    page = httpx.get(f"{server.rest_url}/monitoring/prometheus/metrics").text
    counts: dict[tuple[str, str, str], int] = {}
    for name, api, entrypoint, status, value in _COUNTER.findall(page):
        if name == model:
            counts[(api.lower(), entrypoint, status)] = int(value)
    return counts


def predict_count(server: Any, entrypoint: str, status: str = "OK") -> int:
    return request_counts(server).get(("predict", entrypoint, status), 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------ TLS


def make_tls(folder: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 / localhost it signed (openssl CLI)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (folder / n for n in
                                  ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = folder / "server.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    commands = [
        ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=headswitch test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext],
    ]
    for command in commands:
        subprocess.run([str(c) for c in command], check=True, capture_output=True)
    return {"ca": ca, "cert": cert, "key": key}


class TlsProxy:
    """TLS in front of a plain TCP port (asyncio, own thread). ``seen`` collects what clients
    sent, decrypted."""

    def __init__(self, backend_port: int, cert: Path, key: Path) -> None:
        self.backend_port = backend_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.seen = bytearray()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TlsProxy:  # noqa: PYI034
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.context))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, record: bool
                       ) -> None:
            try:
                while data := await src.read(65536):
                    if record:
                        self.seen.extend(data)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))


class GrpcTlsProxy:
    """A TLS gRPC server forwarding every call, as bytes, to a plain gRPC server; ``metadata``
    collects each call's metadata."""

    def __init__(self, backend: str, cert: Path, key: Path) -> None:
        import grpc

        self.metadata: list[dict[str, str]] = []
        backend_channel = grpc.insecure_channel(backend)
        proxy = self

        class Forward(grpc.GenericRpcHandler):
            def service(self, details: Any) -> Any:
                proxy.metadata.append(dict(details.invocation_metadata))
                forward = backend_channel.unary_unary(details.method)

                def call(request: bytes, context: Any) -> bytes:
                    try:
                        return forward(request, timeout=30)  # type: ignore[no-any-return]
                    except grpc.RpcError as exc:
                        context.abort(exc.code(), exc.details())
                        raise

                return grpc.unary_unary_rpc_method_handler(call)

        self._channel = backend_channel
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers((Forward(),))
        credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
        self.port = self._server.add_secure_port("127.0.0.1:0", credentials)

    def __enter__(self) -> GrpcTlsProxy:  # noqa: PYI034
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(0)
        self._channel.close()
