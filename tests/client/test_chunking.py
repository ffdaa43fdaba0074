"""Large inputs go out as several requests under the payload and batch limits, and come back
in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from client_support import TEXTS, predict_count

from headswitch.client import (
    DEFAULT_MAX_REQUEST_BYTES,
    AsyncGrpcClient,
    AsyncRestClient,
    GrpcClient,
    HeadswitchError,
    RestClient,
)
from headswitch.client._chunking import encode_all, plan

N = 60
LIMIT = 1500
TEXTS_N = [f"{TEXTS[i % len(TEXTS)]} #{i} " + "é" * (i % 13) for i in range(N)]
TASKS_N = [i % 7 for i in range(N)]


def _check(predictions: list[Any], reference: list[Any]) -> None:
    assert [(p.index, p.text, p.task_id) for p in predictions] == [
        (i, t, k) for i, (t, k) in enumerate(zip(TEXTS_N, TASKS_N))]
    for p, r in zip(predictions, reference):
        assert p.top_label == r.top_label
        assert p.scores == pytest.approx(r.scores, abs=1e-5)


@pytest.fixture(scope="module")
def reference(server: Any) -> list[Any]:
    with GrpcClient(server.grpc_address) as client:
        predictions: list[Any] = client.predict(TEXTS_N, TASKS_N)
        return predictions


def test_rest_requests_stay_under_the_limit(server: Any, reference: list[Any]) -> None:
    import httpx

    sizes: list[int] = []

    def record(request: httpx.Request) -> None:
        if request.url.path.endswith(":predict"):
            sizes.append(len(request.content))

    with httpx.Client(event_hooks={"request": [record]}) as http, RestClient(
            server.rest_url, max_request_bytes=LIMIT, http_client=http) as client:
        client.tasks()
        sizes.clear()
        before = predict_count(server, "REST")
        predictions = client.predict(TEXTS_N, TASKS_N)
    assert len(sizes) == predict_count(server, "REST") - before
    assert len(sizes) >= sum(len(t.encode()) + 30 for t in TEXTS_N) // LIMIT
    assert max(sizes) <= LIMIT
    assert min(sizes[:-1]) > LIMIT * 0.8  # packed greedily
    _check(predictions, reference)


def test_grpc_requests_stay_under_the_limit(server: Any, reference: list[Any]) -> None:
    import grpc

    sizes: list[int] = []

    class Record(grpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, call: Any, details: Any, request: Any) -> Any:
            if details.method.endswith("/Predict") and "text" in request.inputs:
                sizes.append(request.ByteSize())
            return call(details, request)

    channel = grpc.intercept_channel(grpc.insecure_channel(server.grpc_address), Record())
    with GrpcClient(server.grpc_address, max_request_bytes=LIMIT, channel=channel) as client:
        client.tasks()
        before = predict_count(server, "GRPC")
        predictions = client.predict(TEXTS_N, TASKS_N)
    channel.close()
    assert len(sizes) == predict_count(server, "GRPC") - before > 1
    assert max(sizes) <= LIMIT
    _check(predictions, reference)


@pytest.mark.parametrize("cls", [AsyncRestClient, AsyncGrpcClient])
def test_batch_limit_async(server: Any, reference: list[Any], cls: Any) -> None:
    entrypoint = "GRPC" if cls is AsyncGrpcClient else "REST"
    target = server.grpc_address if cls is AsyncGrpcClient else server.rest_url

    async def go() -> tuple[list[Any], int]:
        async with cls(target, max_batch_size=7) as client:
            await client.tasks()
            before = predict_count(server, entrypoint)
            predictions = await client.predict(TEXTS_N, TASKS_N)
            return predictions, predict_count(server, entrypoint) - before

    predictions, requests = asyncio.run(go())
    assert requests == -(-N // 7)
    _check(predictions, reference)


@pytest.mark.parametrize("cls", [RestClient, GrpcClient])
def test_a_text_over_the_limit_is_refused(server: Any, cls: Any) -> None:
    entrypoint = "GRPC" if cls is GrpcClient else "REST"
    target = server.grpc_address if cls is GrpcClient else server.rest_url
    texts = ["short", "also short", "x" * 2000, "short again"]
    with cls(target, max_request_bytes=LIMIT) as client:
        client.tasks()
        before = predict_count(server, entrypoint)
        with pytest.raises(HeadswitchError) as info:
            client.predict(texts, 0)
    assert predict_count(server, entrypoint) == before  # nothing was sent
    error = info.value
    assert error.code == "INVALID_ARGUMENT" and error.transport == "client"
    assert "text 2 is too large" in error.message
    assert error.details["index"] == 2 and error.details["size"] > 2000
    assert f"{LIMIT:,}-byte limit" in error.message


def test_default_limits(server: Any) -> None:
    assert DEFAULT_MAX_REQUEST_BYTES == 1_500_000
    with RestClient(server.rest_url) as client:
        assert client.options.max_request_bytes == 1_500_000
        assert client.options.max_batch_size == 256


def test_plan() -> None:
    assert plan([10] * 5, 5, 35, None) == [(0, 3), (3, 5)]
    assert plan([10] * 5, 5, None, 2) == [(0, 2), (2, 4), (4, 5)]
    assert plan([10, 30, 10], 5, 35, 10) == [(0, 1), (1, 2), (2, 3)]
    assert plan([], 5, 35, 10) == []
    with pytest.raises(HeadswitchError, match="text 1 is too large"):
        plan([10, 31], 5, 35, None)
    # encode_all halves a range whose real size is over the limit
    encoded = encode_all([(0, 4)], lambda a, b: ((a, b), 10 * (b - a)), 25)
    assert [(a, b) for a, b, _ in encoded] == [(0, 2), (2, 4)]
