"""What the client costs over the bare transport, and async throughput at concurrency 64.

    .venv/bin/python bench/client_bench.py [--base BASE] [--calls 300] [--batches 1 16]

The embedded server runs in a child process (so client and server do not share a GIL) on the
example models (7 tasks; built and exported into a temporary folder unless ``--base`` names a
model base path). Measured from this process, against that server:

  per-request  ``GrpcClient.predict`` against a bare ``PredictionServiceStub.Predict`` with a
               prebuilt request (and, for reference, the same plus ``tf.make_ndarray`` of each
               output: what bare-stub code usually does next); ``RestClient.predict`` against a
               bare ``httpx.Client.post`` of a prebuilt body plus ``response.json()``. Calls
               alternate between the variants, one at a time; overhead = (client p50 - bare
               p50) / bare p50. The client's figures include turning the answer into
               ``Prediction`` objects (a dict of scores per text), which the bare calls skip.
  throughput   64 asyncio workers sharing one client (``AsyncRestClient``, ``AsyncGrpcClient``,
               and the bare ``httpx.AsyncClient`` / ``grpc.aio`` stub), one text per request;
               the variants alternate, ``--rounds`` times, and each keeps its best run.

Writes work/bench/ (--save: bench/results/) client.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from _measure import add_results_option, machine, percentile, results_dir, write_json

MODEL = "headswitch"
TEXTS = [
    "what a match, the striker scored twice in the second half",
    "the senate passed the budget bill after a long debate",
    "WIN A FREE PRIZE click this link now",
    "bonjour, comment allez-vous aujourd'hui",
    "the new phone has a faster chip and a better camera",
    "please answer asap, the production server is down",
    "football tonight at the stadium with friends",
    "I loved this restaurant, the food was great",
]

BUILD = """
import sys
from headswitch._quiet import import_tensorflow; import_tensorflow()
from headswitch.examples import build_example_models
from headswitch.export import export_models
models = build_example_models(7, sys.argv[1])
export_models(models.paths, sys.argv[2], manifest=models.manifest)
"""

# The embedded server, in its own process.
SERVE = """
import sys
from headswitch._quiet import import_tensorflow; import_tensorflow()
from headswitch.serving import ModelServer
server = ModelServer(model_name=sys.argv[2], model_base_path=sys.argv[1], grpc_port=0,
                     rest_port=0)
server.start()
print("PORTS", server.grpc_port, server.rest_port, flush=True)
sys.stdin.read()
server.stop(grace=1)
"""


def _start_server(base: Path) -> tuple[subprocess.Popen[str], int, int]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    child = subprocess.Popen([sys.executable, "-c", SERVE, str(base), MODEL], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("PORTS "):
            _, grpc_port, rest_port = line.split()
            return child, int(grpc_port), int(rest_port)
    raise RuntimeError(f"the server did not start (exit code {child.wait()})")


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"p50_ms": statistics.median(ms), "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99), "mean_ms": statistics.fmean(ms), "samples": len(ms)}


def _variants(batch: int, stub: Any, http: Any, url: str, grpc_client: Any, rest_client: Any
              ) -> dict[str, Callable[[], Any]]:
    """The calls timed for one batch size, each sending the same texts and task ids."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    texts = [TEXTS[i % len(TEXTS)] for i in range(batch)]
    ids = [i % 7 for i in range(batch)]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["text"].dtype = 7  # DT_STRING
    request.inputs["text"].tensor_shape.dim.add().size = batch
    request.inputs["text"].string_val.extend(t.encode() for t in texts)
    request.inputs["task_id"].dtype = 3  # DT_INT32
    request.inputs["task_id"].tensor_shape.dim.add().size = batch
    request.inputs["task_id"].int_val.extend(ids)
    body = json.dumps({"instances": [{"text": t, "task_id": i}
                                     for t, i in zip(texts, ids)]}).encode()
    headers = {"content-type": "application/json"}
    return {
        "grpc bare stub": lambda: stub.Predict(request, timeout=30),
        "grpc stub + make_ndarray": lambda: {
            k: tf.make_ndarray(v) for k, v in stub.Predict(request, timeout=30).outputs.items()},
        "GrpcClient": lambda: grpc_client.predict(texts, ids),
        "httpx bare POST": lambda: http.post(url, content=body, headers=headers).json(),
        "RestClient": lambda: rest_client.predict(texts, ids),
    }


def per_request(grpc_target: str, rest_url: str, batches: list[int], calls: int
                ) -> list[dict[str, Any]]:
    import grpc
    import httpx
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from headswitch.client import GrpcClient, RestClient

    channel = grpc.insecure_channel(grpc_target)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    http = httpx.Client()
    url = f"{rest_url}/v1/models/{MODEL}:predict"
    rows = []
    with GrpcClient(grpc_target) as grpc_client, RestClient(rest_url) as rest_client:
        for batch in batches:
            variants = _variants(batch, stub, http, url, grpc_client, rest_client)
            times: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(20):  # warm up: connections, caches, the task list
                for call in variants.values():
                    call()
            order = list(variants)
            for i in range(calls):
                shift = i % len(order)
                for name in order[shift:] + order[:shift]:
                    started = time.perf_counter()
                    variants[name]()
                    times[name].append(time.perf_counter() - started)
            stats = {name: _stats(values) for name, values in times.items()}
            for client, bare in (("GrpcClient", "grpc bare stub"),
                                 ("GrpcClient", "grpc stub + make_ndarray"),
                                 ("RestClient", "httpx bare POST")):
                extra = stats[client]["p50_ms"] - stats[bare]["p50_ms"]
                rows.append({
                    "batch": batch, "client": client, "bare": bare,
                    "client_stats": stats[client], "bare_stats": stats[bare],
                    "overhead_ms": extra,
                    "overhead_pct": 100 * extra / stats[bare]["p50_ms"],
                })
    http.close()
    channel.close()
    return rows


async def _drive(call: Callable[[int], Any], total: int, concurrency: int
                 ) -> dict[str, float]:
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - started)

    for i in range(concurrency):  # warm up
        await call(i)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"requests_per_s": total / elapsed, **_stats(latencies), "seconds": elapsed}


def throughput(grpc_target: str, rest_url: str, total: int, concurrency: int, rounds: int
               ) -> list[dict[str, Any]]:
    import grpc
    import httpx
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from headswitch.client import AsyncGrpcClient, AsyncRestClient

    def request(i: int) -> Any:
        r = predict_pb2.PredictRequest()
        r.model_spec.name = MODEL
        r.inputs["text"].dtype = 7
        r.inputs["text"].tensor_shape.dim.add().size = 1
        r.inputs["text"].string_val.append(TEXTS[i % len(TEXTS)].encode())
        r.inputs["task_id"].dtype = 3
        r.inputs["task_id"].tensor_shape.dim.add().size = 1
        r.inputs["task_id"].int_val.append(i % 7)
        return r

    bodies = [json.dumps({"instances": [{"text": TEXTS[i % len(TEXTS)], "task_id": i % 7}]})
              .encode() for i in range(56)]
    requests = [request(i) for i in range(56)]
    url = f"{rest_url}/v1/models/{MODEL}:predict"
    headers = {"content-type": "application/json"}

    async def rest_client() -> dict[str, float]:
        async with AsyncRestClient(rest_url) as client:
            return await _drive(lambda i: client.predict([TEXTS[i % len(TEXTS)]], i % 7),
                                total, concurrency)

    async def rest_bare() -> dict[str, float]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=100)) as http:
            async def post(i: int) -> Any:
                answer = await http.post(url, content=bodies[i % 56], headers=headers)
                return answer.json()

            return await _drive(post, total, concurrency)

    async def grpc_client() -> dict[str, float]:
        async with AsyncGrpcClient(grpc_target) as client:
            return await _drive(lambda i: client.predict([TEXTS[i % len(TEXTS)]], i % 7),
                                total, concurrency)

    async def grpc_bare() -> dict[str, float]:
        async with grpc.aio.insecure_channel(grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            return await _drive(lambda i: stub.Predict(requests[i % 56], timeout=30),
                                total, concurrency)

    runs = {"AsyncRestClient": rest_client, "httpx.AsyncClient bare": rest_bare,
            "AsyncGrpcClient": grpc_client, "grpc.aio stub bare": grpc_bare}

    async def run_all() -> list[dict[str, Any]]:
        best: dict[str, dict[str, float]] = {}
        for _ in range(rounds):  # alternate, keep each variant's best run (shared machines)
            for name, run in runs.items():
                result = await run()
                if name not in best or result["requests_per_s"] > best[name]["requests_per_s"]:
                    best[name] = result
        return [{"client": name, **best[name]} for name in runs]

    return asyncio.run(run_all())


def markdown(per: list[dict[str, Any]], thr: list[dict[str, Any]], concurrency: int) -> str:
    lines = ["| batch | client | p50 ms | bare | bare p50 ms | overhead |",
             "|---:|---|---:|---|---:|---:|"]
    for r in per:
        lines.append(f"| {r['batch']} | {r['client']} | {r['client_stats']['p50_ms']:.3f} | "
                     f"{r['bare']} | {r['bare_stats']['p50_ms']:.3f} | "
                     f"{r['overhead_ms'] * 1000:+.0f} µs ({r['overhead_pct']:+.1f}%) |")
    lines += ["", f"| async, concurrency {concurrency} | requests/s | p50 ms | p99 ms |",
              "|---|---:|---:|---:|"]
    for r in thr:
        lines.append(f"| {r['client']} | {r['requests_per_s']:.0f} | {r['p50_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, help="model base path (default: build the "
                        "example models and export them into a temporary folder)")
    parser.add_argument("--calls", type=int, default=300, help="timed calls per variant")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--requests", type=int, default=1280,
                        help="requests per throughput run")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2,
                        help="throughput runs per variant, alternating; the best is kept")
    add_results_option(parser)
    args = parser.parse_args(argv)
    args.results = results_dir(args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory(prefix="client-bench-") as work:
        base = args.base
        if base is None:
            base = Path(work) / "base" / MODEL
            print("building and exporting the example models ...", file=sys.stderr)
            subprocess.run([sys.executable, "-c", BUILD, str(Path(work) / "models"), str(base)],
                           check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        child, grpc_port, rest_port = _start_server(base)
        try:
            from headswitch._quiet import import_tensorflow

            import_tensorflow()  # quietly, before the gRPC client imports it
            grpc_target, rest_url = f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{rest_port}"
            per = per_request(grpc_target, rest_url, args.batches, args.calls)
            thr = throughput(grpc_target, rest_url, args.requests, args.concurrency,
                             args.rounds)
        finally:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(30)
    data = {
        "machine": machine(),
        "settings": {"calls": args.calls, "batches": args.batches, "requests": args.requests,
                     "concurrency": args.concurrency, "rounds": args.rounds, "tasks": 7,
                     "backbone": "small",
                     "server": "embedded ModelServer, child process, no batching"},
        "per_request": per,
        "throughput": thr,
    }
    write_json(args.results / "client.json", data)
    print(f"{machine()}\n")
    print(markdown(per, thr, args.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
