"""oneDNN on or off for headswitch: speed, memory and batch invariance, measured both ways.

    .venv/bin/python bench/onednn_bench.py [--rounds 4] [--tasks 7]

``headswitch._quiet`` sets ``TF_ENABLE_ONEDNN_OPTS=0`` unless the user sets it; TensorFlow (and
the ``tensorflow/serving`` image) turn oneDNN on for CPUs with AVX512_VNNI, AVX512_BF16,
AVX_VNNI or AMX. Every round runs both settings in fresh processes, the order alternating:

- **model call**: the exported headswitch model (``tf.saved_model.load``, ``serving_default``),
  median time of a call at batch 1 and 256 (what batch scoring does), and the largest
  difference between a row's scores computed in a batch of 256 and alone;
- **embedded server**: ``headswitch serve`` (``--max-examples 16384``): p50 of 300
  one-example REST requests, one after another; then the resident memory the process keeps
  (1.5 s after) over its size before, after requests of 64, 1,024 and 16,384 examples.

Writes work/bench/ (--save: bench/results/) onednn.json and onednn.md.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import _measure  # noqa: E402

WORDS = ("the match was great and the striker scored twice before halftime refund please my "
         "order never arrived free prize click now the meeting moved to friday").split()
SETTINGS = {"on": "1", "off": "0"}
SIZES = (64, 1024, 16384)

CALL = """
import random, sys, time
import numpy as np
from headswitch._quiet import import_tensorflow
from tensorflow.python.util import _pywrap_util_port
tf = import_tensorflow(keras=False)
words = sys.argv[2].split()
rng = random.Random(0)
signature = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
def batch(n):
    return (tf.constant([" ".join(rng.choice(words) for _ in range(rng.randint(3, 20)))
                         for _ in range(n)]),
            tf.constant([rng.randrange(7) for _ in range(n)], tf.int32))
times = {}
for n in (1, 256):
    text, task = batch(n)
    for _ in range(5):
        signature(text=text, task_id=task)
    samples = []
    for _ in range(max(30, 3000 // n)):
        started = time.perf_counter()
        signature(text=text, task_id=task)
        samples.append(time.perf_counter() - started)
    times[n] = float(np.median(samples))
text, task = batch(256)
together = signature(text=text, task_id=task)["scores"].numpy()
alone = np.concatenate([signature(text=text[i:i + 1], task_id=task[i:i + 1])["scores"].numpy()
                        for i in range(256)])
print("RESULT", _pywrap_util_port.IsMklEnabled(), times[1], times[256],
      float(np.nanmax(np.abs(together - alone))))
"""


def _call(model: Path, setting: str) -> dict[str, Any]:
    run = _measure.run_child(CALL, str(model), " ".join(WORDS),
                    env={"TF_ENABLE_ONEDNN_OPTS": SETTINGS[setting]})
    line = next(x for x in run.stdout.splitlines() if x.startswith("RESULT "))
    _, onednn, batch1, batch256, diff = line.split()
    return {"onednn": onednn == "True", "call_ms_batch_1": float(batch1) * 1e3,
            "call_ms_batch_256": float(batch256) * 1e3, "batch_vs_alone_max_abs": float(diff)}


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _server(model: Path, setting: str) -> dict[str, Any]:
    import httpx

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_ENABLE_ONEDNN_OPTS=SETTINGS[setting])
    process = subprocess.Popen(
        [sys.executable, "-m", "headswitch", "serve", str(model), "--model-name", "m",
         "--grpc-port", "0", "--rest-port", "0", "--max-examples", str(max(SIZES))],
        env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        rest = line.rsplit("REST ", 1)[1].strip()
        rng = random.Random(1)

        def body(n: int) -> dict[str, Any]:
            return {"instances": [
                {"text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 20))),
                 "task_id": rng.randrange(7)} for _ in range(n)]}

        url = f"{rest}/v1/models/m:predict"
        with httpx.Client(timeout=600) as client:
            single = [body(1) for _ in range(50)]
            for request in single[:20]:
                client.post(url, json=request).raise_for_status()
            latencies = []
            for k in range(300):
                started = time.perf_counter()
                client.post(url, json=single[k % len(single)]).raise_for_status()
                latencies.append(time.perf_counter() - started)
            time.sleep(1.5)
            before = _rss(process.pid)
            kept = {}
            for n in SIZES:
                for _ in range(2):
                    client.post(url, json=body(n)).raise_for_status()
                time.sleep(1.5)
                kept[str(n)] = (_rss(process.pid) - before) / 2**20
        return {"rest_p50_ms_c1": _measure.percentile(latencies, 50) * 1e3, "rss_before_mib":
                before / 2**20, "rss_kept_mib_after": kept}
    finally:
        process.terminate()
        process.wait(60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=7)
    _measure.add_results_option(parser)
    args = parser.parse_args(argv)
    args.results = _measure.results_dir(args)
    load_start = _measure.load_average()
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in SETTINGS}
    with tempfile.TemporaryDirectory(prefix="onednn-bench-") as work:
        from headswitch._quiet import import_tensorflow

        import_tensorflow()
        from headswitch.examples import build_example_models
        from headswitch.export import export_models

        models = build_example_models(args.tasks, Path(work) / "examples")
        export = export_models(models.paths, Path(work) / "headswitch", manifest=models.manifest)
        for round_ in range(args.rounds):
            order = list(SETTINGS) if round_ % 2 == 0 else list(reversed(SETTINGS))
            for setting in order:
                sample = {**_call(export.path, setting),
                          **_server(Path(work) / "headswitch", setting)}
                samples[setting].append(sample)
                print(f"round {round_ + 1}, oneDNN {setting}: {sample}", flush=True)
    data = {"machine": _measure.machine(),
            "load_average": {"start": load_start, "end": _measure.load_average()},
            "rounds": args.rounds, "tasks": args.tasks, "samples": samples}
    results = Path(args.results)
    _measure.write_json(results / "onednn.json", data)
    (results / "onednn.md").write_text(report(data))
    print(report(data))
    return 0


def _median(rows: list[dict[str, Any]], key: str, sub: str | None = None) -> float:
    return statistics.median(r[key][sub] if sub else r[key] for r in rows)


def report(data: dict[str, Any]) -> str:
    lines = [
        "## oneDNN on and off through headswitch",
        "",
        f"{data['machine']}; shared machine, load average (1/5/15 min) start "
        f"{data['load_average']['start']}, end {data['load_average']['end']}. The exported "
        f"model of {data['tasks']} example tasks; {data['rounds']} rounds, settings "
        "alternating, medians over the rounds.",
        "",
        "| oneDNN | call ms, batch 1 | call ms, batch 256 | max abs diff, batch 256 vs alone | "
        "REST p50 ms, c=1 | " + " | ".join(f"RSS kept after {n} examples, MiB" for n in SIZES)
        + " |",
        "|---" * (5 + len(SIZES)) + "|",
    ]
    for setting, rows in data["samples"].items():
        if not rows:
            continue
        lines.append(
            f"| {setting} | {_median(rows, 'call_ms_batch_1'):.3f} | "
            f"{_median(rows, 'call_ms_batch_256'):.3f} | "
            f"{max(r['batch_vs_alone_max_abs'] for r in rows):.2e} | "
            f"{_median(rows, 'rest_p50_ms_c1'):.2f} | "
            + " | ".join(f"{_median(rows, 'rss_kept_mib_after', str(n)):+.0f}" for n in SIZES)
            + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
