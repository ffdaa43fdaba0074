"""Embedded server numbers: throughput and p50/p99 latency over REST and gRPC at concurrency
1, 8 and 32, single-example requests with random tasks, batching off and on; and the SavedModel
called in-process (the ceiling).

    .venv/bin/python bench/serving_bench.py [--tasks 7] [--seconds 6]

The server runs in a child process (as in production, clients do not share its interpreter);
the load comes from threads in this process. Writes bench/results/serving.json and prints a
markdown table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _measure import machine, percentile, write_json  # noqa: E402

SERVE = """
import sys
from headswitch._quiet import import_tensorflow; import_tensorflow()
from headswitch.serving import ModelServer
kwargs = {}
if sys.argv[2] != "-":
    kwargs = dict(enable_batching=True, batching_parameters_file=sys.argv[2])
server = ModelServer(model_name="headswitch", model_base_path=sys.argv[1], grpc_port=0,
                     rest_port=0, **kwargs)
server.start()
print("PORTS", server.grpc_port, server.rest_port, flush=True)
sys.stdin.read()
server.stop(grace=1)
"""

BATCHING = """max_batch_size { value: 32 }
batch_timeout_micros { value: 1000 }
max_enqueued_batches { value: 1000 }
num_batch_threads { value: 2 }
"""


def _rest_call(url: str):  # type: ignore[no-untyped-def]
    import httpx

    client = httpx.Client(timeout=30)

    def call(text: str, task: int) -> None:
        r = client.post(url, json={"instances": [{"text": text, "task_id": task}]})
        r.raise_for_status()
    return call


def _grpc_call(address: str):  # type: ignore[no-untyped-def]
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(address))

    def call(text: str, task: int) -> None:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "headswitch"
        request.inputs["text"].CopyFrom(tf.make_tensor_proto([text], dtype=tf.string))
        request.inputs["task_id"].CopyFrom(tf.make_tensor_proto([task], dtype=tf.int32))
        stub.Predict(request, 30)
    return call


def _in_process(path: str):  # type: ignore[no-untyped-def]
    import tensorflow as tf

    fn = tf.saved_model.load(path).signatures["serving_default"]

    def call(text: str, task: int) -> None:
        fn(text=tf.constant([text]), task_id=tf.constant([task], tf.int32))
    return call


def _load(make_call, concurrency: int, seconds: float, texts: list[str], n_tasks: int
          ) -> dict[str, float]:  # type: ignore[no-untyped-def]
    latencies: list[float] = []
    lock = threading.Lock()
    window = {"stop": 0.0, "start": 0.0}

    def open_window() -> None:
        window["start"] = time.perf_counter()
        window["stop"] = window["start"] + seconds

    ready = threading.Barrier(concurrency, action=open_window)

    def worker(seed: int) -> None:
        call = make_call()
        rng = np.random.default_rng(seed)
        mine = []
        for _ in range(20):  # warm the connection
            call(texts[0], 0)
        ready.wait()
        while time.perf_counter() < window["stop"]:
            text, task = texts[rng.integers(len(texts))], int(rng.integers(n_tasks))
            t = time.perf_counter()
            call(text, task)
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - window["start"]
    return {"requests": len(latencies), "throughput": len(latencies) / elapsed,
            "p50_ms": percentile(latencies, 50) * 1e3, "p99_ms": percentile(latencies, 99) * 1e3}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=7)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--results", default=str(Path(__file__).parent / "results"))
    args = p.parse_args()
    from headswitch._quiet import import_tensorflow

    import_tensorflow()
    from headswitch.examples import build_example_models, sample_texts
    from headswitch.export import export_models

    work = Path(tempfile.mkdtemp(prefix="headswitch-serving-bench-"))
    models = build_example_models(args.tasks, work / "models")
    report = export_models(models.paths, work / "out", manifest=models.manifest)
    (work / "batching.txt").write_text(BATCHING)
    texts = sample_texts(256)
    rows = []
    for batching in (False, True):
        proc = subprocess.Popen([sys.executable, "-c", SERVE, str(work / "out"),
                                 str(work / "batching.txt") if batching else "-"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        grpc_port, rest_port = (int(x) for x in line.split()[1:3])
        try:
            for transport, factory in (
                    ("REST", lambda: _rest_call(
                        f"http://127.0.0.1:{rest_port}/v1/models/headswitch:predict")),
                    ("gRPC", lambda: _grpc_call(f"127.0.0.1:{grpc_port}"))):
                for concurrency in (1, 8, 32):
                    result = _load(factory, concurrency, args.seconds, texts, args.tasks)
                    rows.append({"target": f"embedded server, {transport}",
                                 "batching": batching, "concurrency": concurrency, **result})
                    print(rows[-1], file=sys.stderr)
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=60)
    shared = _in_process(str(report.path))  # one loaded model, called from every thread
    for concurrency in (1, 8, 32):
        result = _load(lambda: shared, concurrency, args.seconds, texts,
                       args.tasks)
        rows.append({"target": "SavedModel in-process (ceiling)", "batching": False,
                     "concurrency": concurrency, **result})
        print(rows[-1], file=sys.stderr)
    data = {"machine": machine(), "tasks": args.tasks, "seconds_per_cell": args.seconds,
            "rows": rows}
    write_json(Path(args.results) / "serving.json", data)
    print(f"\nServing benchmark: {args.tasks} tasks, small backbone, single-example requests with "
          f"random tasks ({data['machine']}; load generator on the same 2 cores)\n")
    print("| target | batching | concurrency | requests/s | p50 ms | p99 ms |\n"
          "|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['target']} | {'on' if r['batching'] else 'off'} | {r['concurrency']} | "
              f"{r['throughput']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
