"""Hostile requests for the fault suite: what a careless or malicious client can send to a TF
Serving-compatible server, and what each one gets back.

Shared by ``bench/fault_bench.py`` (every case against the embedded server, now and at an older
revision) and ``tests/serving/test_faults.py`` (the CI form). A case sends one request over
loopback and returns an :class:`Outcome`; it never decides pass or fail by itself. Cases use
only what every headswitch export has: ``serving_default`` (``text`` string, ``task_id``
int32), ``by_name`` (``text``, ``task`` strings) and ``tasks`` (``unused`` int32).
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from headswitch.serving import Limits

GOOD = {"instances": [{"text": "the striker scored twice", "task_id": 0}]}


@dataclass(frozen=True)
class Target:
    """A running server: REST base URL, gRPC address, model name, its limits."""

    rest_url: str
    grpc_address: str
    model: str
    # the server's limits; the defaults are the embedded server's
    max_request_bytes: int = Limits.max_request_bytes
    max_examples: int = Limits.max_examples
    max_string_bytes: int = Limits.max_string_bytes
    read_timeout: float = Limits.read_timeout
    idle_timeout: float = Limits.idle_timeout

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.rest_url.removeprefix("http://").rsplit(":", 1)
        return host.strip("[]"), int(port)


@dataclass
class Outcome:
    """What a request got: ``status`` is the HTTP status or gRPC code name ("none" when the
    connection gave no answer), ``json_error`` whether a REST error body was ``{"error": ...}``,
    ``detail`` the start of the message."""

    status: str
    json_error: bool | None = None
    detail: str = ""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        kind = "" if self.json_error is None else (" JSON" if self.json_error else " non-JSON")
        return f"{self.status}{kind}: {self.detail}" if self.detail else f"{self.status}{kind}"


@dataclass(frozen=True)
class Case:
    name: str
    transport: str  # "REST", "gRPC" or "TCP"
    run: Callable[[Target], Outcome]
    expect: str  # the status this server answers (checked in CI)
    transport_level: bool = False  # answered before the API (libevent-style page or close)


# ------------------------------------------------------------------------------------------
# REST


def _rest(target: Target, body: bytes, path: str = "", method: str = "POST",
          headers: dict[str, str] | None = None, timeout: float = 120) -> Outcome:
    import httpx

    url = target.rest_url + (path or "/v1/models/{model}:predict").format(model=target.model)
    started = time.perf_counter()
    try:
        response = httpx.request(method, url, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return Outcome("none", detail=type(exc).__name__, seconds=time.perf_counter() - started)
    seconds = time.perf_counter() - started
    json_error: bool | None = None
    detail = ""
    if response.status_code != 200:
        try:
            parsed = response.json()
            json_error = isinstance(parsed, dict) and isinstance(parsed.get("error"), str)
            detail = parsed.get("error", "") if json_error else response.text
        except ValueError:
            json_error = False
            detail = response.text
    return Outcome(str(response.status_code), json_error, detail[:160], seconds)


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _nested(depth: int, leaf: str) -> str:
    return "[" * depth + leaf + "]" * depth


def _instances(target: Target, count: int, text: str = "hi") -> bytes:
    item = json.dumps({"text": text, "task_id": 0})
    return ('{"instances": [' + ",".join([item] * count) + "]}").encode()


def serving_address(stdout: Any, seconds: float) -> tuple[str, str, str]:
    """Read a starting ``headswitch serve``'s standard output until its "serving ..." line (or
    ``seconds`` pass): (gRPC address, REST address, the line); empty addresses if it did not
    say where it serves."""
    line = ""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = stdout.readline()
        if not line or "serving" in line:
            break
    match = re.search(r"on gRPC (\S+), REST (\S+)", line)
    return (match.group(1), match.group(2), line) if match else ("", "", line)


def _read_answer(sock: socket.socket, received: bytearray, *, head_alone: bool) -> None:
    """Read an HTTP answer into ``received`` until its Content-Length is in, the server closes,
    or (``head_alone``) its head is in when it has no Content-Length. Socket errors propagate;
    what was read stays in ``received``."""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return
        received += chunk
        head_end = received.find(b"\r\n\r\n")
        if head_end >= 0:
            length = re.search(rb"(?i)content-length:\s*(\d+)", received[:head_end])
            if length is None:
                if head_alone:
                    return
            elif len(received) >= head_end + 4 + int(length.group(1)):
                return


def _raw_http(target: Target, data: bytes, wait: float) -> Outcome:
    """Send bytes on a fresh connection and read the answer: its status line and body, "none"
    when the server closes without answering, "open" when it still has not after ``wait``."""
    started = time.perf_counter()
    received = bytearray()
    with socket.create_connection(target.host_port, timeout=wait) as sock:
        sock.sendall(data)
        try:
            _read_answer(sock, received, head_alone=True)
        except TimeoutError:
            seconds = time.perf_counter() - started
            return Outcome("open", detail=f"no answer, still open after {seconds:.0f} s",
                           seconds=seconds)
        except OSError:
            pass
    seconds = time.perf_counter() - started
    if not received:
        return Outcome("none", detail=f"closed by the server after {seconds:.1f} s",
                       seconds=seconds)
    head, _, rest = received.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1].decode() if b" " in head else "?"
    json_error = None
    if status != "200":
        try:
            parsed = json.loads(rest)
            json_error = isinstance(parsed, dict) and isinstance(parsed.get("error"), str)
        except ValueError:
            json_error = False
    return Outcome(status, json_error, f"after {seconds:.1f} s", seconds)


def _upload(target: Target, body: bytes, timeout: float = 300) -> Outcome:
    """POST a large body in chunks, stopping as soon as the server answers (as it may before the
    body is in); the answer's status, and whether it is a JSON error."""
    import select

    head = (
        f"POST /v1/models/{target.model}:predict HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    started = time.perf_counter()
    received = bytearray()
    with socket.create_connection(target.host_port, timeout=timeout) as sock:
        sock.sendall(head)
        view = memoryview(body)
        sent = 0
        try:
            while sent < len(body):
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                sent += sock.send(view[sent : sent + 65536])
        except OSError:
            pass
        sock.settimeout(timeout)
        try:
            _read_answer(sock, received, head_alone=False)
        except OSError:
            pass
    seconds = time.perf_counter() - started
    if not received:
        return Outcome("none", detail=f"connection closed after {seconds:.1f} s", seconds=seconds)
    head_bytes, _, rest = received.partition(b"\r\n\r\n")
    status = head_bytes.split(b" ", 2)[1].decode()
    json_error = None
    detail = rest.decode(errors="replace")
    if status != "200":
        try:
            parsed = json.loads(rest)
            json_error = isinstance(parsed, dict) and isinstance(parsed.get("error"), str)
            detail = parsed.get("error", "") if json_error else detail
        except ValueError:
            json_error = False
    return Outcome(status, json_error, detail[:160], seconds)


def _half_sent_body(target: Target) -> Outcome:
    head = (
        f"POST /v1/models/{target.model}:predict HTTP/1.1\r\nHost: x\r\n"
        "Content-Length: 1000\r\n\r\n"
    ).encode()
    return _raw_http(target, head + b'{"instances": [', target.read_timeout + 30)


def _half_sent_head(target: Target) -> Outcome:
    return _raw_http(target, b"POST /v1/models/", target.read_timeout + 30)


def _silent_connection(target: Target) -> Outcome:
    return _raw_http(target, b"", target.read_timeout + 30)


def _idle_keep_alive(target: Target) -> Outcome:
    """One request, then nothing: how long the server keeps the connection."""
    request = (f"GET /v1/models/{target.model} HTTP/1.1\r\nHost: x\r\n\r\n").encode()
    started = time.perf_counter()
    with socket.create_connection(target.host_port, timeout=target.idle_timeout + 30) as sock:
        sock.sendall(request)
        sock.recv(65536)
        answered = time.perf_counter()
        try:
            while sock.recv(65536):
                pass
        except TimeoutError:
            return Outcome("open", detail=f"still open {time.perf_counter() - answered:.0f} s "
                           "after the answer")
        except OSError:
            pass
    seconds = time.perf_counter() - answered
    return Outcome("closed", detail=f"closed {seconds:.1f} s after the answer",
                   seconds=time.perf_counter() - started)


def _disconnect_mid_body(target: Target) -> Outcome:
    head = (
        f"POST /v1/models/{target.model}:predict HTTP/1.1\r\nHost: x\r\n"
        "Content-Length: 1000\r\n\r\n"
    ).encode()
    with socket.create_connection(target.host_port, timeout=10) as sock:
        sock.sendall(head + b'{"instances": [')
        time.sleep(0.2)
    time.sleep(0.3)
    return Outcome("none", detail="client left; see the server's log")


def _garbage_http(target: Target) -> Outcome:
    return _raw_http(target, b"\x16\x03\x01\x02\x00 GARBAGE\r\n\r\n", 10)


def _non_ascii_path(target: Target) -> Outcome:
    return _raw_http(target, b"GET /v1/models/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n", 10)


def rest_cases() -> list[Case]:
    def c(name: str, body: Callable[[Target], bytes], expect: str, **kw: Any) -> Case:
        return Case(name, "REST", lambda t: _rest(t, body(t), **kw), expect)

    return [
        c("text nested 33 deep (rank-33 strings)",
          lambda t: _json({"instances": [{"text": json.loads(_nested(32, '"a"')),
                                          "task_id": 0}]}), "400"),
        c("text nested 63 deep",
          lambda t: _json({"instances": [{"text": json.loads(_nested(62, '"a"')),
                                          "task_id": 0}]}), "400"),
        c("columnar text of rank 40", lambda t: (
            '{"inputs": {"text": ' + _nested(40, '"a"') + ', "task_id": [0]}}').encode(), "400"),
        c("int input nested 70 deep (beyond numpy's 64 dims)", lambda t: (
            '{"signature_name": "tasks", "instances": [' + _nested(70, "0") + "]}").encode(),
          "400"),
        c("JSON nested 100,000 deep", lambda t: (
            '{"signature_name": "tasks", "instances": ' + _nested(100_000, "0") + "}").encode(),
          "400"),
        c("a body limit of '['", lambda t: b'{"instances": ' + b"[" * (
            t.max_request_bytes - 32), "400"),
        c("a body limit of tiny values (0,0,...)", lambda t: _filled(
            b'{"instances": [', b"0,", b"0", b"]}", t.max_request_bytes - 32), "400"),
        c("a body limit of empty objects ({},{},...)", lambda t: _filled(
            b'{"instances": [', b"{},", b"{}", b"]}", t.max_request_bytes - 32), "400"),
        c("text of another shape ([[\"a\"]]; fed to the model, as TF Serving does)",
          lambda t: _json({"instances": [{"text": ["a"], "task_id": 0}]}), "200"),
        c("more examples than the limit",
          lambda t: _instances(t, t.max_examples + 1), "400"),
        Case("body over the size limit", "REST",
             lambda t: _upload(t, b" " * (t.max_request_bytes + 1)), "413"),
        c("one string over the size limit",
          lambda t: _json({"instances": [{"text": "a" * (t.max_string_bytes + 1),
                                          "task_id": 0}]}), "400"),
        Case("2,000,000 short examples (56 MB)", "REST",
             lambda t: _upload(t, _instances(t, 2_000_000, "a")), "413"),
        c("lone surrogate \\ud800",
          lambda t: b'{"instances": [{"text": "\\ud800", "task_id": 0}]}', "400"),
        c("raw 0xFF byte in a string",
          lambda t: b'{"instances": [{"text": "a\xffb", "task_id": 0}]}', "200"),
        c("raw control character in a string",
          lambda t: b'{"instances": [{"text": "a\x01b", "task_id": 0}]}', "400"),
        c("NUL byte in the body",
          lambda t: b'{"instances": [{"text": "a\x00b", "task_id": 0}]}', "400"),
        c("duplicate member names",
          lambda t: b'{"instances": [{"text": "a", "text": "b", "task_id": 0}]}', "200"),
        c("task_id NaN", lambda t: b'{"instances": [{"text": "a", "task_id": NaN}]}', "400"),
        c("task_id 1e400",
          lambda t: b'{"instances": [{"text": "a", "task_id": 1e400}]}', "400"),
        c("task_id 2^64",
          lambda t: b'{"instances": [{"text": "a", "task_id": 18446744073709551616}]}',
          "400"),
        c("task_id out of range (model check)",
          lambda t: _json({"instances": [{"text": "a", "task_id": 10**6}]}), "400"),
        c("unknown task name (model check)",
          lambda t: _json({"signature_name": "by_name",
                           "instances": [{"text": "a", "task": "no-such-task"}]}), "400"),
        c("empty instances", lambda t: b'{"instances": []}', "400"),
        c("truncated JSON", lambda t: b'{"instances": [{"text": "a", "ta', "400"),
        c("not JSON at all", lambda t: b"\x89PNG\r\n\x1a\n\x00\x00", "400"),
        c("query string on :predict",
          lambda t: _json(GOOD), "400", path="/v1/models/{model}:predict?x=1"),
        c(":classify on a predict-only model",
          lambda t: b'{"examples": [{"text": "a"}]}', "400", path="/v1/models/{model}:classify"),
        c(":regress without examples", lambda t: b"{}", "400", path="/v1/models/{model}:regress"),
        c("OPTIONS without Origin", lambda t: b"", "400", method="OPTIONS"),
        c("PUT on :predict", lambda t: _json(GOOD), "400", method="PUT"),
        Case("TRACE on :predict", "REST",
             lambda t: _rest(t, b"", method="TRACE"), "501", transport_level=True),
        Case("unknown path", "REST", lambda t: _rest(t, b"", path="/admin", method="GET"), "404",
             transport_level=True),
        Case("'|' in the model name (not a URI character)", "REST",
             lambda t: _rest(t, b"", path="/v1/models/a|b", method="GET"), "400",
             transport_level=True),
        Case("garbage instead of HTTP", "TCP", _garbage_http, "400", transport_level=True),
        Case("non-ASCII bytes in the path", "TCP", _non_ascii_path, "400", transport_level=True),
        Case("half-sent body (client stalls)", "TCP", _half_sent_body, "408"),
        Case("half-sent request head (client stalls)", "TCP", _half_sent_head, "none",
             transport_level=True),
        Case("connection that never sends", "TCP", _silent_connection, "none",
             transport_level=True),
        Case("idle keep-alive connection", "TCP", _idle_keep_alive, "closed",
             transport_level=True),
        Case("client disconnects mid-body", "TCP", _disconnect_mid_body, "none",
             transport_level=True),
    ]


# ------------------------------------------------------------------------------------------
# gRPC


def _grpc_request(target: Target, build: Callable[[Any], Any], method: str = "Predict") -> Any:
    from tensorflow_serving.apis import classification_pb2, predict_pb2

    message = classification_pb2.ClassificationRequest if method == "Classify" else (
        predict_pb2.PredictRequest)
    request = message()
    request.model_spec.name = target.model
    build(request)
    return request


def _grpc_send(target: Target, request: Any, method: str = "Predict") -> Outcome:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    started = time.perf_counter()
    with grpc.insecure_channel(
        target.grpc_address, options=[("grpc.max_send_message_length", -1)]
    ) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            getattr(stub, method)(request, timeout=120)
        except grpc.RpcError as exc:
            return Outcome(exc.code().name, detail=(exc.details() or "")[:160],
                           seconds=time.perf_counter() - started)
    return Outcome("OK", seconds=time.perf_counter() - started)


def _grpc(target: Target, build: Callable[[Any], Any], method: str = "Predict") -> Outcome:
    return _grpc_send(target, _grpc_request(target, build, method), method)


def _tensor(dtype: str, values: list[Any], dims: list[int], field_name: str = "") -> Any:
    from tensorflow.core.framework import tensor_pb2, types_pb2

    proto = tensor_pb2.TensorProto(dtype=getattr(types_pb2, dtype))
    if field_name:
        getattr(proto, field_name).extend(values)
    for size in dims:
        proto.tensor_shape.dim.add().size = size
    return proto


def _predict_inputs(text: Any, task: Any) -> Callable[[Any], None]:
    def build(request: Any) -> None:
        request.inputs["text"].CopyFrom(text)
        request.inputs["task_id"].CopyFrom(task)

    return build


def grpc_cases() -> list[Case]:
    text = _tensor("DT_STRING", [b"the striker scored"], [1], "string_val")
    task = _tensor("DT_INT32", [0], [1], "int_val")

    def c(name: str, build: Callable[[Target], Callable[[Any], Any]], expect: str,
          method: str = "Predict") -> Case:
        return Case(name, "gRPC", lambda t: _grpc(t, build(t), method), expect)

    return [
        c("text of rank 33", lambda t: _predict_inputs(
            _tensor("DT_STRING", [b"a"], [1] * 33, "string_val"), task), "INVALID_ARGUMENT"),
        c("a 2^40 dimension", lambda t: _predict_inputs(
            text, _tensor("DT_INT32", [0], [2**40], "int_val")), "INVALID_ARGUMENT"),
        c("a [1, 2^40] text", lambda t: _predict_inputs(
            _tensor("DT_STRING", [b"a"], [1, 2**40], "string_val"), task), "INVALID_ARGUMENT"),
        c("a negative dimension", lambda t: _predict_inputs(
            text, _tensor("DT_INT32", [0], [-5], "int_val")), "INVALID_ARGUMENT"),
        c("dtype enum 999", lambda t: _predict_inputs(
            text, _tensor("DT_INVALID", [], [1])), "INVALID_ARGUMENT"),
        c("int64 task_id", lambda t: _predict_inputs(
            text, _tensor("DT_INT64", [0], [1], "int64_val")), "INVALID_ARGUMENT"),
        c("float text", lambda t: _predict_inputs(
            _tensor("DT_FLOAT", [1.0], [1], "float_val"), task), "INVALID_ARGUMENT"),
        c("tensor_content of the wrong size", lambda t: _predict_inputs(
            text, _with_content(_tensor("DT_INT32", [], [4]), b"\x00" * 5)), "INVALID_ARGUMENT"),
        c("more values than the shape", lambda t: _predict_inputs(
            text, _tensor("DT_INT32", [0, 1, 2, 3], [1], "int_val")), "OK"),
        c("message over the size limit", lambda t: _predict_inputs(
            _tensor("DT_STRING", [b"a" * (t.max_request_bytes + 1)], [1], "string_val"), task),
          "RESOURCE_EXHAUSTED"),
        c("more examples than the limit", lambda t: _predict_inputs(
            _tensor("DT_STRING", [b"a"] * (t.max_examples + 1), [t.max_examples + 1],
                    "string_val"),
            _tensor("DT_INT32", [0], [t.max_examples + 1], "int_val")), "INVALID_ARGUMENT"),
        c("task_id out of range (model check)", lambda t: _predict_inputs(
            text, _tensor("DT_INT32", [10**6], [1], "int_val")), "INVALID_ARGUMENT"),
        c("2,000-character signature name", lambda t: _signature("s" * 2000),
          "FAILED_PRECONDITION"),
        c("Classify on a predict-only model", lambda t: _one_example,
          "INVALID_ARGUMENT", method="Classify"),
        c("a message limit of empty strings", lambda t: _string_flood(
            (t.max_request_bytes - 64) // 2, (t.max_request_bytes - 64) // 2),
          "INVALID_ARGUMENT"),
    ]


def _one_example(request: Any) -> None:
    feature = request.input.example_list.examples.add().features.feature["text"]
    feature.bytes_list.value.append(b"the striker scored")


def _with_content(proto: Any, content: bytes) -> Any:
    proto.tensor_content = content
    return proto


def _signature(name: str) -> Callable[[Any], None]:
    def build(request: Any) -> None:
        request.model_spec.signature_name = name

    return build


def all_cases() -> list[Case]:
    return rest_cases() + grpc_cases()


# ------------------------------------------------------------------------------------------
# Floods: large bodies that cost little to send and, read naively, much to hold


@dataclass(frozen=True)
class Flood:
    """A hostile body; ``prepare`` builds it for a target (not timed), ``send`` sends one."""

    name: str
    transport: str
    send: Callable[[Target], Outcome]
    prepare: Callable[[Target], None] = lambda target: None


def _filled(prefix: bytes, item: bytes, last: bytes, suffix: bytes, size: int) -> bytes:
    count = max((size - len(prefix) - len(last) - len(suffix)) // len(item), 0)
    return prefix + item * count + last + suffix


def _string_flood(count: int, shape: int) -> Callable[[Any], None]:
    def build(request: Any) -> None:
        text = _tensor("DT_STRING", [], [shape])
        text.string_val.extend([b""] * count)
        request.inputs["text"].CopyFrom(text)
        request.inputs["task_id"].CopyFrom(_tensor("DT_INT32", [0], [1], "int_val"))

    return build


def floods(size: int = 15 * 2**20, nesting: int = 8 * 2**20,
           strings: int = 7_000_000) -> list[Flood]:
    """The floods of the fault suite: REST bodies of ``size`` bytes of tiny values (or of
    ``nesting`` bytes of ``[``), gRPC messages of ``strings`` empty strings."""

    def rest(name: str, body: bytes) -> Flood:
        return Flood(name, "REST", lambda t: _rest(t, body, timeout=600))

    def grpc(name: str, build: Callable[[Any], None]) -> Flood:
        made: dict[str, Any] = {}

        def prepare(target: Target) -> None:
            if target.model not in made:
                made[target.model] = _grpc_request(target, build)

        def send(target: Target) -> Outcome:
            prepare(target)
            return _grpc_send(target, made[target.model])

        return Flood(name, "gRPC", send, prepare)

    return [
        rest(f"{nesting / 2**20:g} MiB of nesting", b'{"instances": ' + b"[" * nesting),
        rest(f"{size / 2**20:g} MiB of zeros",
             _filled(b'{"instances": [', b"0,", b"0", b"]}", size)),
        rest(f"{size / 2**20:g} MiB of empty strings",
             _filled(b'{"instances": [', b'"",', b'""', b"]}", size)),
        rest(f"{size / 2**20:g} MiB of empty objects",
             _filled(b'{"instances": [', b"{},", b"{}", b"]}", size)),
        grpc(f"{strings / 1e6:g}M empty strings, shape [{strings}]",
             _string_flood(strings, strings)),
        grpc(f"{strings / 1e6:g}M empty strings, shape [1]", _string_flood(strings, 1)),
    ]

