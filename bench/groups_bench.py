"""Backbone groups (``headswitch export --backbone-groups``) on TF Serving's execution path.

The fleet: example task models on the small example backbone (A), some with its top Dense layer
fine-tuned (B), some with its embedding fine-tuned (C). Exports: all tasks with
``--backbone-groups`` (three backbones), each group's tasks alone, and group A with the code
of ``--before`` (the export before backbone groups existed). Every SavedModel is loaded by the
C++ loader and run in a C++ session (``_cpath``: what tensorflow_model_server does); the
contenders of one comparison are timed interleaved, round after round, p50 per call.

    python bench/groups_bench.py [--quick] [--backbone small|bert] [--before COMMIT] [--save]

``--backbone bert`` uses the BERT-sized example encoder (B tuned its top feed-forward layer,
C its token embedding). Floors (issue 22): batch 64 of one group's tasks, grouped / that group
alone <= 1.10; batch 64 mixing the groups, grouped / the sum of each group's own export on its
examples <= 1.10; one group, this code / the code before, batch 1 and 64 <= 1.03; served bytes
/ (distinct backbones + heads) <= 1.05. Also reported: exporting 200 models in 3 groups vs 200
in one group (time, peak RSS). Results: work/bench/ (--save: bench/results/)
groups-<backbone>.{json,md} with
``--write`` (else a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import _measure  # noqa: E402

BEFORE_COMMIT = "6cf8ad9"  # the last commit before backbone groups (and the export stages)
TUNED = {  # the backbone layer groups B and C fine-tuned, per example backbone
    "small": {"B": "features", "C": "embed"},
    "bert": {"B": "encoder_3_ffn_out", "C": "token_embed"},
}

VARIANT = """
import sys, numpy as np
from headswitch._quiet import import_tensorflow; import_tensorflow()
import keras
layer, pairs = sys.argv[1], sys.argv[2:]
for src, dst in zip(pairs[::2], pairs[1::2]):
    model = keras.models.load_model(src, compile=False)
    target = model.get_layer("backbone").get_layer(layer)
    rng = np.random.default_rng(len(layer))  # the same tuning in every file of a group
    target.set_weights([w + 0.01 * rng.standard_normal(w.shape).astype(w.dtype)
                        for w in target.get_weights()])
    model.save(dst)
"""

EXPORT = """
import sys, json
from headswitch._quiet import import_tensorflow; import_tensorflow()
from headswitch.export import export_models
out, grouped, paths = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
kwargs = {"backbone_groups": True} if grouped else {}
report = export_models(paths, out, **kwargs)
print("REPORT", json.dumps({"path": str(report.path), "seconds": report.seconds,
                            "served_bytes": report.served_bytes,
                            "heads_bytes": report.heads_bytes,
                            "backbones": getattr(report, "backbones", []),
                            "backbone_bytes": report.backbone_bytes}))
"""


def _report(run: _measure.ChildRun) -> dict[str, Any]:
    for line in run.stdout.splitlines():
        if line.startswith("REPORT "):
            data: dict[str, Any] = json.loads(line[len("REPORT "):])
            data["wall_seconds"] = run.seconds
            data["peak_rss_bytes"] = run.peak_rss_bytes
            return data
    raise RuntimeError("export child printed no report")


def fleet(n: int, folder: Path, shares: tuple[float, float], backbone: str
          ) -> dict[str, list[Path]]:
    """``n`` example task models split into groups A, B, C (``shares`` of B and C)."""
    from headswitch.examples import build_example_models

    examples = build_example_models(n, folder / "A", backbone=backbone)
    n_b, n_c = round(n * shares[0]), round(n * shares[1])
    n_a = n - n_b - n_c
    groups: dict[str, list[Path]] = {"A": list(examples.paths[:n_a]), "B": [], "C": []}
    for kind, chosen in (("B", examples.paths[n_a: n_a + n_b]),
                         ("C", examples.paths[n_a + n_b:])):
        (folder / kind).mkdir()
        pairs = [(path, folder / kind / f"{path.stem}_{kind}.keras") for path in chosen]
        _measure.run_child(VARIANT, TUNED[backbone][kind],
                           *[str(p) for pair in pairs for p in pair])
        groups[kind] = [target for _, target in pairs]
    return groups


def export(out: Path, paths: list[Path], grouped: bool, tree: Path | None = None
           ) -> dict[str, Any]:
    env = {"PYTHONPATH": str(tree)} if tree is not None else None
    return _report(_measure.run_child(EXPORT, str(out), "1" if grouped else "0",
                                      *map(str, paths), env=env))


def before_tree(commit: str, work: Path) -> Path:
    """The package at ``commit``, laid out as installed (a git worktree and a tree of links)."""
    checkout = work / f"before-{commit}"
    subprocess.run(["git", "-C", str(BENCH.parent), "worktree", "add", "--detach",
                    str(checkout), commit], check=True, capture_output=True)
    tree = work / "before-tree"
    subprocess.run([sys.executable, str(checkout / "scripts" / "package_tree.py"), str(tree)],
                   check=True, capture_output=True, cwd=checkout)
    return tree


def drop_tree(work: Path, commit: str) -> None:
    subprocess.run(["git", "-C", str(BENCH.parent), "worktree", "remove", "--force",
                    str(work / f"before-{commit}")], check=False, capture_output=True)


def interleaved(calls: dict[str, Any], rounds: int, per_round: int) -> dict[str, float]:
    """p50 seconds per call of each contender; contenders alternate every call, the order
    rotating every round. A contender is a list of callables run in sequence (the sum of
    several sessions' runs)."""
    names = list(calls)
    for name in names:  # warm up
        for _ in range(20):
            for fn in calls[name]:
                fn()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for _ in range(per_round):
            for name in order:
                started = time.perf_counter()
                for fn in calls[name]:
                    fn()
                samples[name].append(time.perf_counter() - started)
    return {name: _measure.percentile(s, 50) for name, s in samples.items()}


def latency(paths: dict[str, str], groups: dict[str, list[Path]], rounds: int, per_round: int,
            log: Any) -> dict[str, Any]:
    """The latency comparisons, each on the C++ session path."""
    import numpy as np
    from _cpath import CSession

    from headswitch.examples import sample_texts

    texts = np.array(sample_texts(4096, seed=3), dtype=object)
    sessions = {name: CSession(path) for name, path in paths.items()}
    rng = np.random.default_rng(0)
    counts = {k: len(v) for k, v in groups.items()}
    first = {"A": 0, "B": counts["A"], "C": counts["A"] + counts["B"]}  # grouped task ids

    def request(session: str, batch: int, ids: Any) -> Any:
        prepared = sessions[session].prepare("serving_default", {
            "text": texts[rng.integers(0, len(texts), batch)], "task_id": ids.astype(np.int32)})
        return lambda: sessions[session].run(prepared)

    def group_ids(kind: str, batch: int, grouped: bool) -> Any:
        local = rng.integers(0, counts[kind], batch)
        return local + first[kind] if grouped else local

    out: dict[str, Any] = {}
    try:
        for kind in ("A", "B", "C"):
            log(f"batch 64 of group {kind}'s tasks: grouped vs group {kind} alone")
            ids = group_ids(kind, 64, False)
            p50 = interleaved({"grouped": [request("grouped", 64, ids + first[kind])],
                               "alone": [request(kind, 64, ids)]}, rounds, per_round)
            out[f"one_group_{kind}_b64"] = _ratio(p50, "grouped", "alone")
        log("batch 64 mixing the groups: grouped vs the sum of each group alone")
        kinds = rng.choice(["A", "B", "C"], 64)
        ids = np.array([group_ids(str(k), 1, True)[0] for k in kinds])
        parts = []
        for kind in ("A", "B", "C"):
            mine = ids[kinds == kind] - first[kind]
            parts.append(request(kind, len(mine), mine))
        p50 = interleaved({"grouped": [request("grouped", 64, ids)], "sum_alone": parts},
                          rounds, per_round)
        out["mixed_b64"] = _ratio(p50, "grouped", "sum_alone")
        if "before" in sessions:
            for batch in (1, 64):
                log(f"one group, batch {batch}: this code vs the code before")
                ids = rng.integers(0, counts["A"], batch)
                p50 = interleaved({"now": [request("A", batch, ids)],
                                   "before": [request("before", batch, ids)]}, rounds, per_round)
                out[f"one_group_now_vs_before_b{batch}"] = _ratio(p50, "now", "before")
    finally:
        for session in sessions.values():
            session.close()
    return out


def _ratio(p50: dict[str, float], mine: str, base: str) -> dict[str, Any]:
    return {"p50_us": {k: round(v * 1e6, 1) for k, v in p50.items()},
            "ratio": round(p50[mine] / p50[base], 3)}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# Backbone groups, {result['backbone']} example backbone ({result['machine']}, "
             f"load {result['load_average']})", "",
             f"Tasks per group: {result['tasks']}.", "",
             "C++ session path (TF_LoadSessionFromSavedModel + TF_SessionRun, as "
             "tensorflow_model_server), p50 per call, contenders interleaved.", "",
             "| what | p50 (us) | ratio | floor |", "|---|---|---|---|"]
    floors = {"one_group_A_b64": 1.10, "one_group_B_b64": 1.10, "one_group_C_b64": 1.10,
              "mixed_b64": 1.10, "one_group_now_vs_before_b1": 1.03,
              "one_group_now_vs_before_b64": 1.03}
    for key, row in result["latency"].items():
        times = ", ".join(f"{k} {v}" for k, v in row["p50_us"].items())
        lines.append(f"| {key} | {times} | {row['ratio']} | <= {floors.get(key, '')} |")
    size = result["size"]
    lines += ["", "| size | bytes |", "|---|---|",
              f"| served (saved_model.pb + variables/) | {size['served_bytes']} |",
              f"| distinct backbones alone + heads | {size['floor_bytes']} |",
              f"| ratio (floor <= 1.05) | {size['ratio']} |"]
    if "export_200" in result:
        lines += ["", "| export of 200 models | seconds | peak RSS (MiB) |", "|---|---|---|"]
        for key, row in result["export_200"].items():
            lines.append(f"| {key} | {row['wall_seconds']:.1f} | "
                         f"{row['peak_rss_bytes'] / 2**20:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds, no 200-model export")
    p.add_argument("--tasks", type=int, default=12)
    p.add_argument("--backbone", choices=sorted(TUNED), default="small")
    p.add_argument("--before", default=BEFORE_COMMIT)
    _measure.add_results_option(p)
    args = p.parse_args(argv)
    args.results = _measure.results_dir(args)
    from headswitch._quiet import import_tensorflow

    import_tensorflow()
    work = Path(tempfile.mkdtemp(prefix="headswitch-groups-"))

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        log(f"building {args.tasks} example models in groups A, B, C ...")
        groups = fleet(args.tasks, work / "models", (1 / 3, 1 / 6), args.backbone)
        paths: dict[str, str] = {}
        reports: dict[str, Any] = {}
        everything = [p for kind in ("A", "B", "C") for p in groups[kind]]
        reports["grouped"] = export(work / "grouped", everything, True)
        for kind in ("A", "B", "C"):
            reports[kind] = export(work / kind, groups[kind], True)
        try:
            tree = before_tree(args.before, work)
            reports["before"] = export(work / "before", groups["A"], False, tree)
        except (subprocess.CalledProcessError, RuntimeError) as e:
            log(f"'before' skipped: {e}")
        paths = {k: r["path"] for k, r in reports.items()}
        rounds, per_round = (5, 20) if args.quick else (15, 40)
        result: dict[str, Any] = {
            "backbone": args.backbone,
            "machine": _measure.machine(), "load_average": _measure.load_average(),
            "tasks": {k: len(v) for k, v in groups.items()},
            "latency": latency(paths, groups, rounds, per_round, log),
        }
        grouped = reports["grouped"]
        floor = sum(b["saved_bytes"] for b in grouped["backbones"]) + grouped["heads_bytes"]
        result["size"] = {"served_bytes": grouped["served_bytes"], "floor_bytes": floor,
                          "ratio": round(grouped["served_bytes"] / floor, 3)}
        if not args.quick:
            log("exporting 200 models in 3 groups and in 1 group ...")
            big = fleet(200, work / "models-200", (0.3, 0.2), args.backbone)
            result["export_200"] = {
                "3 groups": export(work / "g200", [p for k in "ABC" for p in big[k]], True),
                "1 group": export(work / "a200",
                                  sorted((work / "models-200" / "A").glob("*.keras")), False)}
        result["exports"] = reports
        out = args.results
        _measure.write_json(out / f"groups-{args.backbone}.json", result)
        (out / f"groups-{args.backbone}.md").write_text(markdown(result))
        print(markdown(result))
        print(f"results in {out}")
    finally:
        drop_tree(work, args.before)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
