"""TLS with a custom CA, and bearer tokens, on both transports: TLS front ends (a TCP proxy for
REST, a forwarding gRPC server for gRPC) with a certificate from a CA made for the test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from client_support import TEXTS, GrpcTlsProxy, TlsProxy, make_tls, run

from headswitch.client import (
    AsyncGrpcClient,
    AsyncRestClient,
    GrpcClient,
    HeadswitchError,
    RestClient,
)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    files: dict[str, Path] = make_tls(tmp_path_factory.mktemp("tls"))
    return files


@pytest.fixture(scope="module")
def rest_proxy(server: Any, tls: dict[str, Path]) -> Iterator[TlsProxy]:
    with TlsProxy(server.rest_port, tls["cert"], tls["key"]) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def grpc_proxy(server: Any, tls: dict[str, Path]) -> Iterator[GrpcTlsProxy]:
    with GrpcTlsProxy(server.grpc_address, tls["cert"], tls["key"]) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def expected(server: Any) -> list[Any]:
    predictions: list[Any] = run("rest", server, lambda c: c.predict(TEXTS[:3], "topic"))
    return predictions


def _sync_and_async_predict(client: Any, make_async: Callable[[], Any], expected: list[Any]
                            ) -> None:
    """``client``, and the async client ``make_async`` makes in the event loop, both predict
    ``expected``."""
    with client:
        assert client.predict(TEXTS[:3], "topic") == expected

    async def go() -> list[Any]:
        async with make_async() as async_client:
            predictions: list[Any] = await async_client.predict(TEXTS[:3], "topic")
            return predictions

    assert asyncio.run(go()) == expected


def test_rest_over_tls_with_a_token(rest_proxy: TlsProxy, tls: dict[str, Path],
                                    expected: list[Any]) -> None:
    url = f"https://127.0.0.1:{rest_proxy.port}"
    _sync_and_async_predict(
        RestClient(url, verify=tls["ca"], token="s3cret"),
        lambda: AsyncRestClient(url, verify=str(tls["ca"]), token="s3cret"), expected)
    assert b"\r\nauthorization: Bearer s3cret\r\n" in bytes(rest_proxy.seen)


def test_rest_refuses_an_unknown_ca(rest_proxy: TlsProxy) -> None:
    with RestClient(f"https://127.0.0.1:{rest_proxy.port}", retries=3) as client, \
            pytest.raises(HeadswitchError) as info:
        client.status()
    error = info.value
    assert error.code == "UNAVAILABLE"
    assert "TLS handshake" in error.message and "CERTIFICATE_VERIFY_FAILED" in error.message
    assert not error.retryable and error.attempts == 1  # retrying cannot help


def test_grpc_over_tls_with_a_token(grpc_proxy: GrpcTlsProxy, tls: dict[str, Path],
                                    expected: list[Any]) -> None:
    target = f"127.0.0.1:{grpc_proxy.port}"
    _sync_and_async_predict(
        GrpcClient(target, root_certificates=tls["ca"], token="s3cret"),
        lambda: AsyncGrpcClient(target, root_certificates=tls["ca"].read_bytes(),
                                token=lambda: "s3cret"), expected)
    assert grpc_proxy.metadata
    assert all(m.get("authorization") == "Bearer s3cret" for m in grpc_proxy.metadata)


def test_grpc_refuses_an_unknown_ca(grpc_proxy: GrpcTlsProxy) -> None:
    with GrpcClient(f"127.0.0.1:{grpc_proxy.port}", tls=True, retries=3, timeout=5) as client, \
            pytest.raises(HeadswitchError) as info:
        client.status()
    error = info.value
    assert error.code == "UNAVAILABLE"
    assert not error.retryable and error.attempts == 1
