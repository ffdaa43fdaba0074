"""End to end through the embedded server: headswitch against the backbone alone, REST and gRPC.

    .venv/bin/python bench/serving_bench.py [--quick] [--tasks 7] [--seconds 24]

One embedded server (``headswitch.serving.ModelServer``, in a child process, batching on with
the shipped docker/batching_parameters.txt) serves two models from one model config file:

  headswitch  ``export_models`` of N small example models: serving_default(text, task_id)
  backbone    the backbone alone, serving_default(text) -> features, saved the way
              bench/compare.py saves its backbone contender

The load comes from threads in this process (the same 2 cores as the server): concurrency 1
and 32, one example per request, a random text and a random task per request, so merged
batches mix tasks. Every (transport, concurrency) cell times both models in turn, round by
round (order alternating), ``--seconds`` per cell and model in total. Reply size: one REST
request in row format (``{"instances": [...]}``) of 64 examples with mixed tasks, reply body
bytes per example; and the gRPC PredictResponse bytes per example.

Floor (issue 11): p50 headswitch / backbone <= 1.10 at concurrency 1, REST and gRPC.
Writes work/bench/ (--save: bench/results/) serving.json and prints markdown tables.

``--before REV`` compares this server with the server of an older revision instead (issue 23:
no slower than before): both serve the same export side by side, each cell times headswitch on
one then the other (order alternating by round); writes work/bench/ (--save: bench/results/)
serving-before-after.json
and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import _measure  # noqa: E402

BATCHING = BENCH.parent / "docker" / "batching_parameters.txt"
MODELS = ("headswitch", "backbone")
SERVE = """
import sys
from headswitch.serving import ModelServer
server = ModelServer(model_config_file=sys.argv[1], enable_batching=True,
                     batching_parameters_file=sys.argv[2], grpc_port=0, rest_port=0)
server.start()
print("PORTS", server.grpc_port, server.rest_port, flush=True)
sys.stdin.read()
server.stop(grace=1)
"""
Call = Callable[[int], None]


def _inputs(model: str, text: str, task: int) -> dict[str, Any]:
    return {"text": text, "task_id": task} if model == "headswitch" else {"text": text}


def _rest(port: int, model: str, requests: list[tuple[str, int]]) -> Callable[[], Call]:
    """A factory of REST callers (one HTTP connection each) sending prepared bodies."""
    bodies = [json.dumps({"instances": [_inputs(model, t, k)]}).encode() for t, k in requests]
    url = f"http://127.0.0.1:{port}/v1/models/{model}:predict"

    def make() -> Call:
        import httpx

        client = httpx.Client(timeout=60, headers={"content-type": "application/json"})

        def call(i: int) -> None:
            client.post(url, content=bodies[i]).raise_for_status()
        return call
    return make


def _grpc(port: int, model: str, requests: list[tuple[str, int]]) -> Callable[[], Call]:
    """A factory of gRPC callers (one channel each) sending prepared PredictRequests."""
    import grpc
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    def one(value: Any) -> Any:
        shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(
            size=1)])
        if isinstance(value, str):
            return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=shape,
                                          string_val=[value.encode()])
        return tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, tensor_shape=shape,
                                      int_val=[value])

    protos = []
    for t, k in requests:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        for name, value in _inputs(model, t, k).items():
            request.inputs[name].CopyFrom(one(value))
        protos.append(request)

    def make() -> Call:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{port}"))

        def call(i: int) -> None:
            stub.Predict(protos[i], 60)
        return call
    return make


def _load(make: Callable[[], Call], concurrency: int, seconds: float, count: int,
          seed: int) -> list[float]:
    """``concurrency`` threads, each with its own connection, calling back to back for
    ``seconds``; the latency of every call made in that window."""
    latencies: list[float] = []
    lock = threading.Lock()
    window = {"stop": 0.0}
    ready = threading.Barrier(concurrency,
                              action=lambda: window.update(stop=time.perf_counter() + seconds))
    errors: list[Exception] = []

    def worker(k: int) -> None:
        try:
            call = make()
            rng = np.random.default_rng(seed * 1000 + k)
            for i in range(5):  # open and warm the connection
                call(i % count)
            mine = []
            ready.wait()
            while time.perf_counter() < window["stop"]:
                i = int(rng.integers(count))
                t0 = time.perf_counter()
                call(i)
                mine.append(time.perf_counter() - t0)
            with lock:
                latencies.extend(mine)
        except Exception as e:  # noqa: BLE001  (re-raised below, after the other threads stop)
            errors.append(e)
            ready.abort()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"load failed: {errors[0]!r}") from errors[0]
    return latencies


def _reply_bytes(rest_port: int, grpc_port: int, texts: list[str], tasks: int) -> dict[str, Any]:
    """Reply bytes per example of one 64-example request with mixed tasks, per model."""
    import grpc
    import httpx
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    rng = np.random.default_rng(5)
    batch = [(texts[int(rng.integers(len(texts)))], int(rng.integers(tasks))) for _ in range(64)]
    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{grpc_port}"))
    out = {}
    for model in MODELS:
        body = {"instances": [_inputs(model, t, k) for t, k in batch]}
        reply = httpx.post(f"http://127.0.0.1:{rest_port}/v1/models/{model}:predict",
                           json=body, timeout=60)
        reply.raise_for_status()
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.inputs["text"].CopyFrom(tf.make_tensor_proto([t for t, _ in batch]))
        if model == "headswitch":
            request.inputs["task_id"].CopyFrom(tf.make_tensor_proto(
                [k for _, k in batch], dtype=tf.int32))
        response = stub.Predict(request, 60)
        first = reply.json()["predictions"][0]
        out[model] = {"rest_bytes_per_example": len(reply.content) / 64,
                      "grpc_bytes_per_example": response.ByteSize() / 64,
                      "outputs": sorted(response.outputs),
                      "rest_first_prediction": first}
    return out


def _models(tasks: int, work: Path) -> Path:
    """Export headswitch and save the backbone alone; return the model config file."""
    import compare

    from headswitch.examples import build_example_models
    from headswitch.export import export_models

    tf = compare._tf()
    models = build_example_models(tasks, work / "examples")
    export_models(models.paths, work / "headswitch", manifest=models.manifest)
    _, backbone = compare._backbone_of(str(models.paths[0]))
    compare._save_backbone(tf, backbone, work / "backbone" / "1")
    config = work / "models.config"
    config.write_text("model_config_list {\n" + "".join(
        f"  config {{ name: '{m}' base_path: '{work / m}' model_platform: 'tensorflow' }}\n"
        for m in MODELS) + "}\n")
    return config


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=7, help="example models exported (default 7)")
    p.add_argument("--seconds", type=float,
                   help="timed seconds per cell and model, over all rounds (default 24)")
    p.add_argument("--rounds", type=int, help="rounds per cell (default 4)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    p.add_argument("--quick", action="store_true", help="3 s per cell and model, 2 rounds")
    _measure.add_results_option(p)
    p.add_argument("--before", metavar="REV",
                   help="compare with the server of this revision (headswitch model only)")
    args = p.parse_args(argv)
    args.results = _measure.results_dir(args)
    if args.before:
        return before_after(args)
    seconds = args.seconds or (3.0 if args.quick else 24.0)
    rounds = args.rounds or (2 if args.quick else 4)
    started = time.perf_counter()
    load_average_start = _measure.load_average()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {msg}", file=sys.stderr, flush=True)

    from headswitch.examples import sample_texts

    work = Path(tempfile.mkdtemp(prefix="headswitch-serving-bench-"))
    try:
        log(f"building {args.tasks} example models, the export and the backbone alone ...")
        config = _models(args.tasks, work)
        proc = subprocess.Popen([sys.executable, "-c", SERVE, str(config), str(BATCHING)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("PORTS"):
                raise RuntimeError("the server did not start")
            grpc_port, rest_port = (int(x) for x in line.split()[1:3])
            texts = sample_texts(256)
            rng = np.random.default_rng(3)
            requests = [(texts[i % len(texts)], int(rng.integers(args.tasks)))
                        for i in range(1024)]
            makers = {(transport, model): factory(port, model, requests)
                      for transport, factory, port in (("REST", _rest, rest_port),
                                                       ("gRPC", _grpc, grpc_port))
                      for model in MODELS}
            samples: dict[tuple[str, int, str], list[float]] = {}
            windows: dict[tuple[str, int, str], float] = {}
            for r in range(rounds):
                for transport in ("REST", "gRPC"):
                    for c in args.concurrency:
                        order = MODELS if r % 2 == 0 else MODELS[::-1]
                        for model in order:
                            log(f"round {r + 1}/{rounds}: {transport}, concurrency {c}, {model}")
                            key = (transport, c, model)
                            got = _load(makers[(transport, model)], c, seconds / rounds,
                                        len(requests), seed=r)
                            samples.setdefault(key, []).extend(got)
                            windows[key] = windows.get(key, 0.0) + seconds / rounds
            log("reply bytes ...")
            reply = _reply_bytes(rest_port, grpc_port, texts, args.tasks)
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=60)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows: list[dict[str, Any]] = []
    for (transport, c, model), lat in samples.items():
        rows.append({"transport": transport, "concurrency": c, "model": model,
                     "requests": len(lat), "throughput": len(lat) / windows[(transport, c, model)],
                     "p50_ms": _measure.percentile(lat, 50) * 1e3,
                     "p99_ms": _measure.percentile(lat, 99) * 1e3})
    by = {(r["transport"], r["concurrency"], r["model"]): r for r in rows}
    ratios, floors = [], []
    for transport in ("REST", "gRPC"):
        for c in args.concurrency:
            hs, bb = by[(transport, c, "headswitch")], by[(transport, c, "backbone")]
            entry = {"transport": transport, "concurrency": c,
                     "p50": hs["p50_ms"] / bb["p50_ms"], "p99": hs["p99_ms"] / bb["p99_ms"],
                     "throughput": hs["throughput"] / bb["throughput"]}
            ratios.append(entry)
            if c == 1:
                floors.append({"floor": f"p50 headswitch / backbone alone, {transport}, c=1",
                               "value": entry["p50"], "limit": 1.10,
                               "ok": entry["p50"] <= 1.10})
    data = {"machine": _measure.machine(),
            "path": "embedded server (headswitch.serving.ModelServer) "
            "in a child process, clients in this process, loopback",
            "batching_parameters": BATCHING.read_text(), "tasks": args.tasks,
            "seconds_per_cell_and_model": seconds, "rounds": rounds,
            "load_average_start": load_average_start, "load_average_end": _measure.load_average(),
            "rows": rows, "ratios": ratios, "floors": floors, "reply_bytes": reply}
    _measure.write_json(Path(args.results) / "serving.json", data)
    print(markdown(data))
    return 0


def _server(config: Path, pythonpath: str | None) -> tuple[subprocess.Popen[str], int, int]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(config), str(BATCHING)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORTS"):
        raise RuntimeError("the server did not start")
    grpc_port, rest_port = (int(x) for x in line.split()[1:3])
    return proc, grpc_port, rest_port


def before_after(args: argparse.Namespace) -> int:
    """``--before REV``: the headswitch model on both servers, cell by cell."""
    from fault_bench import checkout

    from headswitch.examples import sample_texts

    seconds = args.seconds or (3.0 if args.quick else 24.0)
    rounds = args.rounds or (2 if args.quick else 4)
    load_average_start = _measure.load_average()
    work = Path(tempfile.mkdtemp(prefix="headswitch-serving-bench-"))
    trees = {"before": checkout(args.before, work / "before").pythonpath, "now": None}
    servers: dict[str, tuple[subprocess.Popen[str], int, int]] = {}
    samples: dict[tuple[str, str, int], list[float]] = {}
    try:
        config = _models(args.tasks, work)
        for name, path in trees.items():
            servers[name] = _server(config, path)
        texts = sample_texts(256)
        rng = np.random.default_rng(3)
        requests = [(texts[i % len(texts)], int(rng.integers(args.tasks))) for i in range(1024)]
        makers = {(name, "REST"): _rest(rest, "headswitch", requests)
                  for name, (_, _, rest) in servers.items()}
        makers.update({(name, "gRPC"): _grpc(grpc_port, "headswitch", requests)
                       for name, (_, grpc_port, _) in servers.items()})
        for r in range(rounds):
            for transport in ("REST", "gRPC"):
                for c in args.concurrency:
                    for name in (("before", "now") if r % 2 == 0 else ("now", "before")):
                        print(f"round {r + 1}/{rounds}: {transport}, c={c}, {name}",
                              file=sys.stderr, flush=True)
                        samples.setdefault((name, transport, c), []).extend(_load(
                            makers[(name, transport)], c, seconds / rounds, len(requests),
                            seed=r))
    finally:
        for proc, _, _ in servers.values():
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    rows = [{"server": name, "transport": transport, "concurrency": c, "requests": len(lat),
             "throughput": len(lat) / seconds, "p50_ms": _measure.percentile(lat, 50) * 1e3,
             "p99_ms": _measure.percentile(lat, 99) * 1e3}
            for (name, transport, c), lat in samples.items()]
    data = {"machine": _measure.machine(), "before": args.before, "tasks": args.tasks,
            "seconds_per_cell_and_server": seconds, "rounds": rounds,
            "load_average_start": load_average_start, "load_average_end": _measure.load_average(),
            "rows": rows}
    _measure.write_json(Path(args.results) / "serving-before-after.json", data)
    text = before_after_markdown(data)
    (Path(args.results) / "serving-before-after.md").write_text(text)
    print(text)
    return 0


def before_after_markdown(data: dict[str, Any]) -> str:
    by = {(r["server"], r["transport"], r["concurrency"]): r for r in data["rows"]}
    lines = [f"## headswitch through the embedded server: revision {data['before']} and now",
             "",
             (f"{data['machine']}; shared machine, load generator on the same cores; load "
              f"average (1/5/15 min) start {data['load_average_start']}, end "
              f"{data['load_average_end']}. Both servers up side by side (batching on), "
              f"{data['seconds_per_cell_and_server']:g} s per cell and server over "
              f"{data['rounds']} rounds, order alternating. One example per request."), "",
             "| transport | concurrency | p50 ms before | p50 ms now | now / before | p99 ms "
             "before | p99 ms now | req/s before | req/s now |",
             "|---|---|---|---|---|---|---|---|---|"]
    for transport in ("REST", "gRPC"):
        for c in sorted({r["concurrency"] for r in data["rows"]}):
            b, n = by[("before", transport, c)], by[("now", transport, c)]
            lines.append(f"| {transport} | {c} | {b['p50_ms']:.2f} | {n['p50_ms']:.2f} | "
                         f"{n['p50_ms'] / b['p50_ms']:.3f} | {b['p99_ms']:.2f} | "
                         f"{n['p99_ms']:.2f} | {b['throughput']:.0f} | {n['throughput']:.0f} |")
    return "\n".join(lines) + "\n"


def markdown(data: dict[str, Any]) -> str:
    lines = [(f"## End to end: embedded server, batching on (docker/batching_parameters.txt), "
              f"{data['tasks']} tasks, small backbone"), "",
             (f"{data['machine']}; load generator on the same cores; load average (1/5/15 min) "
              f"start {data['load_average_start']}, end {data['load_average_end']}. One example "
              "per request, random text and task; "
              f"{data['seconds_per_cell_and_model']:g} s per cell and model over "
              f"{data['rounds']} alternating rounds."), "",
             "| transport | concurrency | model | requests/s | p50 ms | p99 ms |",
             "|---|---|---|---|---|---|"]
    for r in sorted(data["rows"], key=lambda r: (r["transport"], r["concurrency"], r["model"])):
        lines.append(f"| {r['transport']} | {r['concurrency']} | {r['model']} | "
                     f"{r['throughput']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")
    lines += ["", "headswitch / backbone alone:", "",
              "| transport | concurrency | p50 | p99 | throughput |", "|---|---|---|---|---|"]
    for r in data["ratios"]:
        lines.append(f"| {r['transport']} | {r['concurrency']} | {r['p50']:.3f} | "
                     f"{r['p99']:.3f} | {r['throughput']:.3f} |")
    lines += ["", "Floors (issue 11):", "", "| floor | value | limit | met |", "|---|---|---|---|"]
    for f in data["floors"]:
        lines.append(f"| {f['floor']} | {f['value']:.3f} | <= {f['limit']:.2f} | "
                     f"{'met' if f['ok'] else '**missed**'} |")
    lines += ["", "Reply bytes per example (64 examples, mixed tasks):", "",
              "| model | outputs | REST (row format) | gRPC |", "|---|---|---|---|"]
    for model, r in data["reply_bytes"].items():
        lines.append(f"| {model} | {', '.join(r['outputs'])} | "
                     f"{r['rest_bytes_per_example']:.0f} | {r['grpc_bytes_per_example']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
