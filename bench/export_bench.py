"""Exporter numbers: time, peak memory, sizes and single-example latency.

    .venv/bin/python bench/export_bench.py --tasks 200 [--backbone small]

Every measurement runs in a fresh process. Writes work/bench/ (--save: bench/results/)
export-<backbone>-<N>.json and
prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _measure import add_results_option, machine, percentile, results_dir, run_child, write_json  # noqa: E402

BUILD = """
import sys
from headswitch._quiet import import_tensorflow; import_tensorflow()
from headswitch.examples import build_example_models
build_example_models(int(sys.argv[1]), sys.argv[2], backbone=sys.argv[3])
"""

IMPORT_ONLY = """
from headswitch._quiet import import_tensorflow; import_tensorflow()
"""

LOAD_ONE = """
import sys
from headswitch._quiet import import_tensorflow; tf = import_tensorflow()
import keras
model = keras.models.load_model(sys.argv[1], compile=False)
model(tf.constant(["hello world", ""]))
"""

EXPORT = """
import json, sys
from headswitch.cli import main
if main(["export", "--manifest", sys.argv[1], "--out", sys.argv[2], "--json"]):
    sys.exit(1)
"""

LATENCY = """
import json, sys, time
import numpy as np
from headswitch._quiet import import_tensorflow; tf = import_tensorflow()
from headswitch.examples import sample_texts
merged = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
alone = tf.saved_model.load(sys.argv[2]).signatures["serving_default"]
n_tasks, rounds, per_round = int(sys.argv[3]), 30, 50
rng = np.random.default_rng(0)
texts = [tf.constant([t]) for t in sample_texts(256)]
ids = [tf.constant([int(i)], tf.int32) for i in rng.integers(0, n_tasks, 256)]
def run_merged(i): merged(text=texts[i % 256], task_id=ids[i % 256])
def run_alone(i): alone(text=texts[i % 256])
for f in (run_merged, run_alone):
    for i in range(200): f(i)
times = {"merged": [], "backbone": []}
for r in range(rounds):  # interleaved so both see the same machine state
    for name, f in (("merged", run_merged), ("backbone", run_alone)):
        t = time.perf_counter()
        for i in range(per_round): f(r * per_round + i)
        times[name].append((time.perf_counter() - t) / per_round)
print(json.dumps(times))
"""

SAVE_BACKBONE = """
import sys
from headswitch._quiet import import_tensorflow; tf = import_tensorflow()
import keras
from headswitch.export._keras import KerasModel
from headswitch.export._graph import saved_state
model = KerasModel.of(keras.models.load_model(sys.argv[1], compile=False))
backbone = model.up_to(model.model.get_layer(sys.argv[3])).model
module = tf.Module()
module.variables_, module.resources_ = saved_state(backbone)
fn = tf.function(lambda text: {"features": backbone(text, training=False)},
                 input_signature=[tf.TensorSpec([None], tf.string, name="text")])
tf.saved_model.save(module, sys.argv[2], signatures={"serving_default": fn})
"""


def _saved_model_bytes(path: Path) -> int:
    """saved_model.pb + variables/: what the server loads (assets.extra is metadata)."""
    files = [path / "saved_model.pb", *(path / "variables").glob("*")]
    return sum(f.stat().st_size for f in files)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=200)
    p.add_argument("--backbone", default="small")
    add_results_option(p)
    args = p.parse_args()
    args.results = results_dir(args)
    work = Path(tempfile.mkdtemp(prefix="headswitch-bench-"))
    try:
        models, base, alone = work / "models", work / "out", work / "backbone"
        build = run_child(BUILD, str(args.tasks), str(models), args.backbone)
        first = sorted(models.glob("*.keras"))[0]
        baseline = run_child(IMPORT_ONLY)
        one = run_child(LOAD_ONE, str(first))
        export = run_child(EXPORT, str(models / "manifest.yaml"), str(base))
        report = json.loads(export.stdout[: export.stdout.rindex("PEAK_RSS")])
        version = Path(report["path"])
        run_child(SAVE_BACKBONE, str(first), str(alone), report["split_layer"])
        latency = json.loads(run_child(LATENCY, str(version), str(alone),
                                       str(args.tasks)).stdout.splitlines()[0])
        merged_model = _saved_model_bytes(version)
        alone_model = _saved_model_bytes(alone)
        p50 = {k: percentile(v, 50) for k, v in latency.items()}
        result = {
            "machine": machine(),
            "tasks": args.tasks,
            "backbone": args.backbone,
            "build_seconds": build.seconds,
            "export_seconds": export.seconds,
            "export_peak_rss": export.peak_rss_bytes,
            "load_one_model_peak_rss": one.peak_rss_bytes,
            "import_tensorflow_peak_rss": baseline.peak_rss_bytes,
            "originals_bytes": report["originals_bytes"],
            "merged_saved_model_bytes": merged_model,
            "merged_total_bytes": report["merged_bytes"],
            "backbone_saved_model_bytes": alone_model,
            "heads_bytes": report["heads_bytes"],
            "latency_p50_seconds": p50,
            "max_abs_diff": report["max_abs_diff"],
        }
        write_json(Path(args.results) / f"export-{args.backbone}-{args.tasks}.json", result)
        _print(result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _print(r: dict) -> None:
    mib = 2**20
    floor = r["backbone_saved_model_bytes"] + r["heads_bytes"]
    rows = [
        ("export time", f"{r['export_seconds']:.1f} s", "< 120 s"),
        ("peak RSS: export / load one model",
         f"{r['export_peak_rss'] / mib:.0f} / {r['load_one_model_peak_rss'] / mib:.0f} MiB = "
         f"{r['export_peak_rss'] / r['load_one_model_peak_rss']:.2f}x", "< 3x"),
        ("merged SavedModel / (backbone SavedModel + heads)",
         f"{r['merged_saved_model_bytes'] / 1024:.0f} / {floor / 1024:.0f} KiB = "
         f"{r['merged_saved_model_bytes'] / floor:.3f}x", "<= 1.05x"),
        ("  with assets.extra (warmup, manifest)",
         f"{r['merged_total_bytes'] / 1024:.0f} KiB = {r['merged_total_bytes'] / floor:.3f}x", ""),
        ("N original .keras files", f"{r['originals_bytes'] / mib:.1f} MiB", ""),
        ("p50 latency, 1 example: merged / backbone",
         f"{r['latency_p50_seconds']['merged'] * 1e6:.0f} / "
         f"{r['latency_p50_seconds']['backbone'] * 1e6:.0f} us = "
         f"{r['latency_p50_seconds']['merged'] / r['latency_p50_seconds']['backbone']:.3f}x",
         "<= 1.10x"),
        ("build example models", f"{r['build_seconds']:.1f} s", ""),
    ]
    print(f"\nExport benchmark: {r['tasks']} tasks, {r['backbone']} backbone ({r['machine']})\n")
    print("| measure | value | floor |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    sys.exit(main())
