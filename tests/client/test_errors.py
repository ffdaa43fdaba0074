"""Every failure is a HeadswitchError with the right code, HTTP status and message."""

from __future__ import annotations

import time
from typing import Any

import pytest
from client_support import TEXTS, free_port, predict_count, run

from headswitch.client import HeadswitchError, RestClient, RetryPolicy
from headswitch.client._rest_codec import error_from_answer

FAST_RETRIES = RetryPolicy(max_retries=2, initial_backoff=0.01, max_backoff=0.02)


def _error(kind: str, server: Any, call: Any, **options: Any) -> HeadswitchError:
    with pytest.raises(HeadswitchError) as info:
        run(kind, server, call, **options)
    return info.value


def _transport(kind: str) -> str:
    return "grpc" if kind.endswith("grpc") else "rest"


def test_unknown_task_name(kind: str, server: Any, task_names: list[str]) -> None:
    error = _error(kind, server, lambda c: c.predict(TEXTS[:3], ["topic", "nope", "spam"]))
    assert error.code == "INVALID_ARGUMENT"
    assert "unknown task name 'nope' for text 1" in error.message
    assert all(name in error.message for name in task_names)
    assert error.http_status is None and error.transport == "client" and not error.retryable


@pytest.mark.parametrize("bad", [7, 99, -1])
def test_bad_task_id_is_reported_per_example_and_not_retried(
        kind: str, server: Any, bad: int) -> None:
    """The model answers a bad id in that example's ``error`` (the request succeeds, so a
    batching server never fails other requests); the client raises it, naming the text."""
    entrypoint = "GRPC" if kind.endswith("grpc") else "REST"
    run(kind, server, lambda c: c.tasks())  # warm: the next client still asks for the list
    before = predict_count(server, entrypoint, "OK")
    error = _error(kind, server, lambda c: c.predict(["a", "b", "c"], [0, bad, bad]),
                   retries=3)
    assert error.code == "INVALID_ARGUMENT"
    assert error.http_status is None  # the server answered 200
    assert error.transport == _transport(kind)
    assert error.message == (f"text 1, task {bad}: task_id out of range: valid task ids are "
                             "0..6 (7 tasks) (and 1 more)")
    assert error.details["index"] == 1 and error.details["bad_examples"] == 2
    assert error.attempts == 1 and not error.retryable
    assert predict_count(server, entrypoint, "OK") - before == 2  # the task list, the predict


def test_mismatched_lengths(kind: str, server: Any) -> None:
    error = _error(kind, server, lambda c: c.predict(["a", "b", "c"], [0, 1]))
    assert error.code == "INVALID_ARGUMENT"
    assert "got 3 texts and 2 tasks" in error.message


def test_unknown_model(kind: str, server: Any) -> None:
    for call in (lambda c: c.predict(["a"], 0), lambda c: c.status(), lambda c: c.metadata()):
        error = _error(kind, server, call, model="nope")
        assert error.code == "NOT_FOUND", error
        assert error.http_status == 404
        assert "nope" in error.message
        assert error.attempts == 1
    predict = _error(kind, server, lambda c: c.predict(["a"], 0), model="nope")
    assert predict.message == "Servable not found for request: Latest(nope)"


def test_unknown_version(kind: str, server: Any) -> None:
    error = _error(kind, server, lambda c: c.predict(["a"], 0), version=7)
    assert error.code == "NOT_FOUND"
    assert error.message == "Servable not found for request: Specific(headswitch, 7)"


def test_unknown_signature(kind: str, server: Any) -> None:
    # TF Serving answers INVALID_ARGUMENT over REST and FAILED_PRECONDITION over gRPC.
    error = _error(kind, server, lambda c: c.tasks(), tasks_signature="nope")
    assert error.code == ("FAILED_PRECONDITION" if kind.endswith("grpc") else "INVALID_ARGUMENT")
    assert error.http_status == 400
    assert "nope" in error.message


def test_server_down_is_a_connection_error_after_the_retries(kind: str) -> None:
    port = free_port()
    target = f"127.0.0.1:{port}" if kind.endswith("grpc") else f"http://127.0.0.1:{port}"
    started = time.monotonic()
    error = _error(kind, None, lambda c: c.predict(["a"], 0), target=target,
                   retries=FAST_RETRIES)
    assert time.monotonic() - started < 10
    assert error.code == "UNAVAILABLE"
    assert error.retryable
    assert error.attempts == 3
    assert str(port) in str(error)
    if kind.endswith("rest"):
        assert error.http_status is None
        assert "ConnectError" in error.message and "cause" in error.details
    else:
        assert error.details["target"] == target


def test_deadline(kind: str, server: Any) -> None:
    error = _error(kind, server, lambda c: c.predict(TEXTS, 0), deadline=1e-6)
    assert error.code == "DEADLINE_EXCEEDED"
    assert not error.retryable


def test_body_that_is_not_json(server: Any) -> None:
    with RestClient(f"{server.rest_url}/not-tf-serving", retries=FAST_RETRIES) as client, \
            pytest.raises(HeadswitchError) as info:
        client.status()
    error = info.value
    assert error.code == "NOT_FOUND" and error.http_status == 404
    assert "not a TF Serving error" in error.message
    assert "<H1>Not Found</H1>" in error.details["body"]
    assert error.details["content_type"].startswith("text/html")
    assert error.details["url"].endswith("/not-tf-serving/v1/models/headswitch")


def test_rest_error_bodies() -> None:
    """Answers the embedded server does not give: Google's error object, a proxy's 502,
    429 / 503 with Retry-After (retried), and 504 from TF Serving (not retried)."""
    google = error_from_answer(
        403, {"content-type": "application/json"},
        b'{"error": {"code": 403, "message": "Permission denied", "status": "PERMISSION_DENIED"}}',
        {"url": "u"})
    assert (google.code, google.http_status, google.message) == (
        "PERMISSION_DENIED", 403, "Permission denied")
    proxy = error_from_answer(502, {"content-type": "text/html"}, b"<html>Bad Gateway</html>", {})
    assert proxy.code == "UNAVAILABLE" and proxy.retryable and "Bad Gateway" in proxy.message
    busy = error_from_answer(429, {"retry-after": "3"}, b'{"error": "queue full"}', {})
    assert (busy.code, busy.retryable, busy.retry_after) == ("RESOURCE_EXHAUSTED", True, 3.0)
    down = error_from_answer(503, {}, b'{"error": "shutting down"}', {})
    assert down.code == "UNAVAILABLE" and down.retryable and down.message == "shutting down"
    late = error_from_answer(504, {}, b'{"error": "Timed out"}', {})
    assert late.code == "DEADLINE_EXCEEDED" and not late.retryable


def test_error_text_names_everything(server: Any) -> None:
    error = _error("rest", server, lambda c: c.predict(["a"], 0), model="nope")
    text = str(error)
    assert text.startswith("NOT_FOUND (HTTP 404): Servable not found")
    assert server.rest_url in text


def test_error_pickles() -> None:
    import pickle

    error = error_from_answer(503, {"retry-after": "1"}, b'{"error": "busy"}', {"url": "u"})
    error.attempts = 4
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, copy.message, copy.http_status, copy.transport, copy.details,
            copy.retryable, copy.retry_after, copy.attempts) == (
        error.code, error.message, error.http_status, error.transport, error.details,
        error.retryable, error.retry_after, 4)


def test_backoff() -> None:
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=1.0, multiplier=2.0, jitter=0.5)
    for retry, base in [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (9, 1.0)]:
        delays = [policy.backoff(retry) for _ in range(200)]
        assert base * 0.5 <= min(delays) <= max(delays) <= base
        assert max(delays) - min(delays) > base * 0.2  # jittered
    assert policy.backoff(0, retry_after=3.0) == 3.0
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)
