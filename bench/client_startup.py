"""What a new process pays before its first prediction: imports, then the first call.

    .venv/bin/python bench/client_startup.py [--base BASE] [--runs 10]

The embedded server runs in a child process on the example models (built and exported into a
temporary folder unless ``--base`` names a model base path). Each run is a new Python process
that times, with ``time.perf_counter``:

  import        ``import headswitch.client`` plus what making the client imports (grpcio and
                protobuf for ``GrpcClient``, httpx for ``RestClient``): the client's whole
                import cost, as wall time and as the process's CPU time (which other jobs on
                the machine inflate less); the interpreter's own start-up is not included
  first call    ``client.predict(texts, task_id)`` on a new client: connect, fetch the task
                list, predict
  modules       whether tensorflow / tensorflow_serving / numpy were imported

For reference, the same processes time ``import tensorflow_serving.apis.predict_pb2`` (what the
gRPC client imported before it defined TF Serving's messages itself). Writes
work/bench/ (--save: bench/results/) client-startup.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from _measure import add_results_option, machine, results_dir, write_json
from client_bench import BUILD, MODEL, _start_server

CHILD = """
import json, sys, time
started, cpu_started = time.perf_counter(), time.process_time()
import headswitch.client as hc
kind, target = sys.argv[1], sys.argv[2]
make = {"grpc": hc.GrpcClient, "rest": hc.RestClient}[kind]
client = make(target)
imported, cpu_imported = time.perf_counter(), time.process_time()
predictions = client.predict(["free prize, click now", "the striker scored twice"], [2, 0])
done = time.perf_counter()
client.close()
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "tensorflow_serving",
                                                         "numpy", "keras"})
print(json.dumps({"import_s": imported - started, "import_cpu_s": cpu_imported - cpu_started,
                  "first_call_s": done - imported,
                  "heavy_modules": heavy, "answers": len(predictions)}))
"""

REFERENCE = """
import json, time
started, cpu_started = time.perf_counter(), time.process_time()
from tensorflow_serving.apis import predict_pb2
print(json.dumps({"import_s": time.perf_counter() - started,
                  "import_cpu_s": time.process_time() - cpu_started}))
"""


def _child(code: str, *args: str) -> dict[str, Any]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _summary(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    return {"median_ms": statistics.median(ms), "min_ms": ms[0], "max_ms": ms[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, help="model base path (default: build one)")
    parser.add_argument("--runs", type=int, default=10)
    add_results_option(parser)
    args = parser.parse_args()
    args.results = results_dir(args)
    with tempfile.TemporaryDirectory(prefix="headswitch-startup-") as tmp:
        base = args.base
        if base is None:
            base = Path(tmp) / "models" / MODEL
            subprocess.run([sys.executable, "-c", BUILD, str(Path(tmp) / "ex"), str(base)],
                           check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        server, grpc_port, rest_port = _start_server(base)
        try:
            targets = {"grpc": f"127.0.0.1:{grpc_port}", "rest": f"http://127.0.0.1:{rest_port}"}
            runs: dict[str, list[dict[str, Any]]] = {"grpc": [], "rest": [], "reference": []}
            for _ in range(args.runs):  # interleaved, so that noise hits every variant alike
                for kind, target in targets.items():
                    runs[kind].append(_child(CHILD, kind, target))
                runs["reference"].append(_child(REFERENCE))
        finally:
            assert server.stdin is not None
            server.stdin.close()
            server.wait(timeout=60)
    results: dict[str, Any] = {}
    for kind in ("grpc", "rest"):
        results[kind] = {
            "import": _summary([r["import_s"] for r in runs[kind]]),
            "import_cpu": _summary([r["import_cpu_s"] for r in runs[kind]]),
            "first_call": _summary([r["first_call_s"] for r in runs[kind]]),
            "heavy_modules": sorted({m for r in runs[kind] for m in r["heavy_modules"]}),
        }
    results["reference_tensorflow_serving_import"] = {
        "import": _summary([r["import_s"] for r in runs["reference"]]),
        "import_cpu": _summary([r["import_cpu_s"] for r in runs["reference"]])}
    data = {"machine": machine(), "load_average_1_5_15_min_at_end": os.getloadavg(),
            "runs": args.runs, "path": "new Python process per run, embedded server in "
            "another process on 127.0.0.1", "results": results}
    write_json(args.results / "client-startup.json", data)
    print("| client | import, wall: median (min-max) | import, CPU: median | first predict, "
          "wall: median | heavy modules |")
    print("|---|---|---|---|---|")
    rows = [(kind, results[kind]) for kind in ("grpc", "rest")]
    reference = results["reference_tensorflow_serving_import"]
    rows.append(("reference: `from tensorflow_serving.apis import predict_pb2`",
                 {**reference, "heavy_modules": ["tensorflow"]}))
    for kind, r in rows:
        wall, cpu = r["import"], r["import_cpu"]
        first = f"{r['first_call']['median_ms']:.0f} ms" if "first_call" in r else ""
        print(f"| {kind} | {wall['median_ms']:.0f} ms ({wall['min_ms']:.0f}-{wall['max_ms']:.0f})"
              f" | {cpu['median_ms']:.0f} ms | {first} | "
              f"{', '.join(r['heavy_modules']) or 'none'} |")


if __name__ == "__main__":
    main()
