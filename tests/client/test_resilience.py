"""Retries across a server restart, and 64 concurrent requests on each async client."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from client_support import MODEL, TEXTS, free_port

from headswitch.client import (
    AsyncGrpcClient,
    AsyncRestClient,
    GrpcClient,
    HeadswitchError,
    RestClient,
    RetryPolicy,
)

PATIENT = RetryPolicy(max_retries=60, initial_backoff=0.05, max_backoff=0.3)


def _serve(base_path: Path, grpc_port: int, rest_port: int) -> Any:
    from headswitch.serving import ModelServer

    server = ModelServer(model_name=MODEL, model_base_path=base_path, grpc_port=grpc_port,
                         rest_port=rest_port)
    server.start()
    return server


@pytest.mark.slow
def test_a_server_restart_loses_no_request(server: Any, base_path: Path) -> None:
    with GrpcClient(server.grpc_address) as reference:
        expected = {(i % len(TEXTS), i % 7): p for i in range(len(TEXTS) * 7)
                    for p in reference.predict([TEXTS[i % len(TEXTS)]], i % 7)}
    grpc_port, rest_port = free_port(), free_port()
    first = _serve(base_path, grpc_port, rest_port)
    clients = [RestClient(f"http://127.0.0.1:{rest_port}", retries=PATIENT, timeout=10),
               GrpcClient(f"127.0.0.1:{grpc_port}", retries=PATIENT, timeout=10)]
    stop = threading.Event()
    done = [0, 0]
    slowest = [0.0, 0.0]  # the longest call spans the outage: it was retried until it passed
    failures: list[BaseException] = []

    def loop(which: int) -> None:
        client = clients[which]
        i = 0
        while not stop.is_set():
            key = (i % len(TEXTS), i % 7)
            try:
                started = time.monotonic()
                (got,) = client.predict([TEXTS[key[0]]], key[1])
                slowest[which] = max(slowest[which], time.monotonic() - started)
                assert got.top_label == expected[key].top_label
                assert got.scores == pytest.approx(expected[key].scores, abs=1e-6)
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)
                return
            done[which] += 1
            i += 1

    def wait_for(count: int) -> None:
        limit = time.monotonic() + 60
        while min(done) < count and not failures and time.monotonic() < limit:
            time.sleep(0.02)

    threads = [threading.Thread(target=loop, args=(w,), daemon=True) for w in (0, 1)]
    second = None
    try:
        for thread in threads:
            thread.start()
        wait_for(10)
        first.stop(grace=2)  # in-flight requests finish, new ones are refused
        during = list(done)
        time.sleep(0.5)
        second = _serve(base_path, grpc_port, rest_port)
        wait_for(max(during) + 10)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        first.stop(grace=0)
        if second is not None:
            second.stop(grace=0)
        for client in clients:
            client.close()
    assert not failures, failures[0]
    assert all(count >= max(during) + 10 for count in done), (during, done)
    assert min(slowest) >= 0.4, slowest


@pytest.mark.parametrize("cls", [AsyncRestClient, AsyncGrpcClient])
def test_64_concurrent_requests(server: Any, cls: Any) -> None:
    target = server.grpc_address if cls is AsyncGrpcClient else server.rest_url
    calls = [([f"{TEXTS[i % len(TEXTS)]} ({i})"], i % 7) for i in range(64)]
    with GrpcClient(server.grpc_address) as reference:
        expected = [reference.predict(texts, task) for texts, task in calls]

    async def go() -> list[Any]:
        async with cls(target) as client:
            return list(await asyncio.gather(*(client.predict(t, k) for t, k in calls)))

    started = time.monotonic()
    results = asyncio.run(go())
    assert time.monotonic() - started < 30
    assert results == expected


def test_async_client_survives_a_new_event_loop(server: Any) -> None:
    client = AsyncGrpcClient(server.grpc_address)
    first = asyncio.run(client.predict(TEXTS[:2], 1))
    second = asyncio.run(client.predict(TEXTS[:2], 1))  # a channel made for this loop
    assert first == second
    asyncio.run(client.aclose())


def test_sync_client_shared_by_threads(server: Any) -> None:
    results: list[Any] = []
    errors: list[HeadswitchError] = []
    with RestClient(server.rest_url) as client:
        def work(i: int) -> None:
            try:
                results.append((i, client.predict([TEXTS[i % 8]], "topic")[0].top_label))
            except HeadswitchError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors and len(results) == 16
