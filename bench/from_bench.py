"""Adding one task to a published version (``headswitch export --from``): time, peak memory and
stored head bytes, for a 1000-task version against a 1-task version.

    .venv/bin/python bench/from_bench.py --tasks 1000 [--repeats 3] [--models DIR]

Builds N + 1 example models (small backbone) unless ``--models`` holds them, exports the first
N as version 1 of one base and the first one alone as version 1 of another, then adds model
N + 1 to each with ``headswitch export --from BASE/1 NEW`` in fresh processes (the command as a
user runs it: Python start, TensorFlow import, loading the version, reading the new model,
build, save, verification, regression check, publish), alternating the two cases, ``--repeats``
times each. Peak RSS is the kernel's ru_maxrss of that process; the reference is a fresh process
that loads one example model and runs it (as bench/export_bench.py measures it). Also measured:
a chain of versions on the 1-task base (saved_model.pb size per version) and the stored head
bytes per task of the N-task version. Writes work/bench/ (--save: bench/results/) from-<N>.json
and prints a markdown
table. The machine is shared: the load average is recorded before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _measure import add_results_option, machine, results_dir, run_child, write_json  # noqa: E402

BUILD = """
import sys
from headswitch._quiet import import_tensorflow; import_tensorflow()
from headswitch.examples import build_example_models
build_example_models(int(sys.argv[1]), sys.argv[2])
"""

EXPORT = """
import sys
from headswitch.cli import main
if main(["export", *sys.argv[1:], "--json"]):
    sys.exit(1)
"""

LOAD_ONE = """
import sys
from headswitch._quiet import import_tensorflow; tf = import_tensorflow()
import keras
model = keras.models.load_model(sys.argv[1], compile=False)
model(tf.constant(["hello world", ""]))
"""


def _report(run: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(run.stdout[: run.stdout.rindex("PEAK_RSS")])
    return data


def _stored_heads(version: Path) -> dict[str, Any]:
    """Stored head data per task against the head's own weights (floor: <= 1.05x + 1 KiB)."""
    manifest = json.loads((version / "assets.extra" / "headswitch.json").read_text())
    heads_file = (version / "assets.extra" / "heads.npy").stat().st_size
    worst, ratios, excess = 0.0, [], 0
    for task in manifest["tasks"]:
        # The task's values in heads.npy are its weights exactly; what else is stored for its
        # head is its manifest entry's "stored" record and digest.
        entry = len(json.dumps({"stored": task["stored"], "head_sha256": task["head_sha256"]},
                               separators=(",", ":")))
        stored = task["head_bytes"] + entry
        ratios.append(stored / task["head_bytes"])
        excess = max(excess, entry)
        worst = max(worst, (stored - 1024) / task["head_bytes"])
    weights = sum(t["head_bytes"] for t in manifest["tasks"])
    return {"tasks": len(manifest["tasks"]), "heads_npy_bytes": heads_file,
            "head_weights_bytes": weights,
            "per_task_mean_bytes": heads_file / len(manifest["tasks"]),
            "per_task_ratio_mean": statistics.mean(ratios),
            "per_task_ratio_max": max(ratios),
            "per_task_max_bytes_beyond_weights": excess,
            "per_task_max_of_stored_minus_1KiB_over_weights": worst}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--chain", type=int, default=5, help="versions in the chain measured")
    p.add_argument("--models", help="folder with N + 1 example models (built if missing)")
    add_results_option(p)
    args = p.parse_args(argv)
    args.results = results_dir(args)
    n = args.tasks
    work = Path(tempfile.mkdtemp(prefix="headswitch-from-bench-"))
    load_before = os.getloadavg()
    try:
        models = Path(args.models) if args.models else work / "models"
        if not (models / "manifest.yaml").is_file():
            print(f"building {n + 1} example models ...", flush=True)
            run_child(BUILD, str(n + 1), str(models))
        import yaml

        entries = yaml.safe_load((models / "manifest.yaml").read_text())["tasks"]
        first_n = {"tasks": entries[:n]}
        for e in first_n["tasks"]:
            e["model"] = str(models / e["model"])
        (work / "first.yaml").write_text(yaml.safe_dump(first_n))
        new = models / entries[n]["model"]
        big, small = work / "big", work / "small"
        print(f"exporting version 1 of {n} tasks ...", flush=True)
        full = run_child(EXPORT, "--manifest", str(work / "first.yaml"), "--out", str(big))
        run_child(EXPORT, str(models / entries[0]["model"]), "--out", str(small))
        one = run_child(LOAD_ONE, str(models / entries[0]["model"]))
        runs: dict[str, list[dict[str, Any]]] = {"small": [], "big": []}
        for r in range(args.repeats):
            for case, base in (("small", small), ("big", big)):
                done = run_child(EXPORT, "--from", str(base / "1"), str(new))
                report = _report(done)
                runs[case].append({"seconds": done.seconds, "peak_rss": done.peak_rss_bytes,
                                   "in_process_seconds": report["seconds"],
                                   "version": report["version"],
                                   "max_abs_diff": report["max_abs_diff"]})
                shutil.rmtree(base / str(report["version"]))
                print(f"  {case} run {r + 1}: {done.seconds:.1f} s, "
                      f"{done.peak_rss_bytes / 2**20:.0f} MiB", flush=True)
        chain = [{"version": 1, "saved_model_pb_bytes":
                  (small / "1" / "saved_model.pb").stat().st_size}]
        for v in range(2, args.chain + 1):
            extra = ["--remove", entries[n]["name"]] if v % 2 else [str(new)]
            report = _report(run_child(EXPORT, "--from", str(small), *extra))
            chain.append({"version": report["version"], "saved_model_pb_bytes":
                          (Path(report["path"]) / "saved_model.pb").stat().st_size,
                          "tasks": len(report["tasks"])})
        result = {
            "machine": machine(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "tasks": n,
            "export_version_1_seconds": full.seconds,
            "load_one_model_peak_rss": one.peak_rss_bytes,
            "add_one_task": runs,
            "median_seconds": {k: statistics.median(r["seconds"] for r in v)
                               for k, v in runs.items()},
            "median_peak_rss": {k: statistics.median(r["peak_rss"] for r in v)
                                for k, v in runs.items()},
            "stored_heads": _stored_heads(big / "1"),
            "chain_1_task_base": chain,
        }
        write_json(Path(args.results) / f"from-{n}.json", result)
        _print(result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _print(r: dict[str, Any]) -> None:
    mib = 2**20
    big, small = r["median_seconds"]["big"], r["median_seconds"]["small"]
    rss, one = r["median_peak_rss"]["big"], r["load_one_model_peak_rss"]
    heads = r["stored_heads"]
    rows = [
        (f"add 1 task to a {r['tasks']}-task version: time (median)", f"{big:.1f} s", "<= 15 s"),
        ("  / adding 1 task to a 1-task version", f"{big:.1f} / {small:.1f} s = "
         f"{big / small:.2f}x", "<= 1.5x"),
        ("peak RSS of that export / loading one model", f"{rss / mib:.0f} / {one / mib:.0f} MiB "
         f"= {rss / one:.2f}x", "<= 1.5x"),
        ("stored head data per task", f"its weights + at most "
         f"{heads['per_task_max_bytes_beyond_weights']} B (worst (stored - 1 KiB) / weights: "
         f"{heads['per_task_max_of_stored_minus_1KiB_over_weights']:.2f}x)",
         "<= 1.05x weights + 1 KiB"),
        ("saved_model.pb along a chain (1-task base)",
         " -> ".join(f"{c['saved_model_pb_bytes'] / 1024:.1f}" for c in r["chain_1_task_base"])
         + " KiB", ""),
    ]
    print(f"\nexport --from: {r['tasks']} tasks, small backbone ({r['machine']}; load average "
          f"{r['load_average_before'][0]:.1f} before, {r['load_average_after'][0]:.1f} after)\n")
    print("| measure | value | floor |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    sys.exit(main())
