"""Where headswitch's time goes on TF Serving's path: nodes per call and an op profile.

    .venv/bin/python bench/overhead.py [--examples DIR] [--tasks 10 1000] [--quick]

Every variant is its own SavedModel, loaded by TensorFlow's C++ loader and run by
``Session::Run`` (``_cpath.CSession``: TF Serving's execution path), every output of its
signature fetched, inputs built once:

  backbone    text -> features: the backbone alone
  headswitch  headswitch's graph as exported (``build_module``), the example heads: softmax,
              sigmoid, linear and two-layer heads (4 head kinds)
  one_kind    the same tasks and widths, every head a single softmax Dense (1 head kind)
  minimal     the smallest graph that answers a mixed batch: gather each example's
              [features + 1, K] output kernel by task id, one einsum, softmax; no error output,
              no labels, no id checks, one head kind
  before      the same heads (4 kinds) exported with the predict graph of commit ``--before``
              (default e345e97; its export/_module.py, read with ``git show`` and built in a
              child process)

Each batch size times every variant and N interleaved round by round; then each is traced
(RunOptions FULL_TRACE): nodes executed per call and per-op time (median per node over the
traces), grouped by op type and by part of the graph. oneDNN is off unless ``--onednn
default`` (``TF_ENABLE_ONEDNN_OPTS=0``, as compare.py's headline column).

``--inter-op`` sets the session's ``inter_op_parallelism_threads``. The default, 0, is what
tensorflow_model_server runs without a session config: the executor hands nodes to a pool of
threads. -1 runs every node in the calling thread (TensorFlow's meaning of a negative value):
no hand-offs between threads, so its p50 is the graph's compute alone, and the difference
between the two runs is what the thread pool costs.

DIR holds example models (``headswitch example-models``); without it 7 are built. The first 7
are read; the other tasks get random Dense heads of their example shape (``task_specs``).
Writes work/bench/ (--save: bench/results/) overhead-<backbone>.json and the same tables as
markdown beside it
(``.md``), and prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import _measure  # noqa: E402
import compare  # noqa: E402

VARIANTS = ("backbone", "headswitch", "one_kind", "minimal", "before")
TITLES = {
    "backbone": "backbone alone",
    "headswitch": "headswitch as exported (4 head kinds)",
    "one_kind": "headswitch, 1 head kind",
    "minimal": "minimal graph (gather, einsum, softmax)",
    "before": "before: graph of {commit} (4 head kinds)",
}
BEFORE_COMMIT = "e345e97"  # the default of --before
PLUMBING = {"Const", "VarHandleOp", "Identity", "IdentityN", "NoOp", "_Arg", "_Retval",
            "HashTableV2", "ReadVariableOp"}
CHILD = ("import sys; sys.path.insert(0, {bench!r}); import overhead; "
         "overhead.before_main(sys.argv[1])")


# ----------------------------------------------------------------------------------------------
# Variants


def one_kind(heads: list[dict[str, Any]], width: int) -> list[dict[str, Any]]:
    """The same tasks and output widths, every head a single softmax Dense: the real
    single-Dense softmax heads as they are, the others random (Glorot-uniform) weights."""
    import numpy as np

    rng = np.random.default_rng(7)
    out = []
    for h in heads:
        if len(h["steps"]) == 1 and h["steps"][0][2] == "softmax":
            out.append(h)
            continue
        k = h["steps"][-1][0].shape[1]
        limit = (6.0 / (width + k)) ** 0.5
        out.append({**h, "steps": [(rng.uniform(-limit, limit, (width, k)).astype(np.float32),
                                    rng.normal(0, 0.1, k).astype(np.float32), "softmax")]})
    return out


def save_minimal(tf: Any, backbone: Any, heads: list[dict[str, Any]], path: Path) -> None:
    """serving_default(text, task_id) -> scores: each example gathers its task's output
    kernel [features + 1, K] (bias last; padding columns have bias -inf, so softmax gives them
    0), one einsum, softmax. Single-Dense softmax heads only."""
    import numpy as np

    from headswitch.export._graph import saved_state
    from headswitch.export._stacking import append_one

    d = int(backbone.outputs[0].shape[-1])
    k_max = max(h["steps"][-1][0].shape[1] for h in heads)
    kernels = np.zeros((len(heads), d + 1, k_max), np.float32)
    for t, h in enumerate(heads):
        (kernel, bias, activation), = h["steps"]
        assert activation == "softmax"
        k = kernel.shape[1]
        kernels[t, :d, :k], kernels[t, d, :k], kernels[t, d, k:] = kernel, bias, -np.inf

    module = tf.Module()
    module.variables_, module.resources_ = saved_state(backbone)

    def serve(text: Any, task_id: Any) -> dict[str, Any]:
        x1 = append_one(tf, backbone(text, training=False))
        w = tf.gather(tf.constant(kernels), task_id)
        return {"scores": tf.nn.softmax(tf.einsum("bi,bik->bk", x1, w))}

    fn = tf.function(serve, input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                             tf.TensorSpec([None], tf.int32, name="task_id")])
    tf.saved_model.save(module, str(path), signatures={"serving_default": fn})


def _git_show(commit: str, path: str) -> str:
    done = subprocess.run(["git", "-C", str(BENCH.parent), "show", f"{commit}:{path}"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"git show {commit}:{path}: {done.stderr.strip()}")
    return done.stdout


def _old_export_modules(commit: str) -> tuple[Any, Any]:
    """export/_heads.py and export/_module.py as they were at ``commit``, imported as
    ``headswitch.export._heads_<commit>`` and ``..._module_<commit>`` (the old module's
    relative import points at the old heads)."""
    import headswitch.export  # noqa: F401  (the package the old modules live in)

    loaded = []
    for name in ("_heads", "_module"):
        full = f"headswitch.export.{name}_{commit}"
        module = types.ModuleType(full)
        module.__package__ = "headswitch.export"
        module.__file__ = f"{commit}:export/{name}.py"
        sys.modules[full] = module
        source = _git_show(commit, f"export/{name}.py").replace(
            "from ._heads import", f"from ._heads_{commit} import")
        exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102
        loaded.append(module)
    return loaded[0], loaded[1]


def before_main(spec_path: str) -> None:
    """Child process: export the heads with the predict graph of ``spec['commit']``."""
    spec = json.loads(Path(spec_path).read_text())
    tf = compare._tf()
    heads_module, module_module = _old_export_modules(spec["commit"])
    _, backbone = compare._backbone_of(spec["first_model"])
    with open(spec["heads"], "rb") as f:
        heads = pickle.load(f)
    for n, out in spec["exports"].items():
        entries = [module_module.TaskEntry(t, h["name"], h["labels"], heads_module.DenseChainHead(
            [heads_module.DenseStep(k, b, a) for k, b, a in h["steps"]]))
            for t, h in enumerate(heads[: int(n)])]
        module = module_module.build_module(backbone, entries)
        tf.saved_model.save(module, out, signatures=module_module.signatures(module))


def build(tf: Any, backbone: Any, first_model: str, heads: list[dict[str, Any]], tasks: list[int],
          work: Path, log: Callable[[str], None], before: str = BEFORE_COMMIT
          ) -> tuple[dict[tuple[str, int | None], str], str | None]:
    """Save every variant for every N; return their paths and why ``before`` is missing."""
    width = int(backbone.outputs[0].shape[-1])
    flat = one_kind(heads, width)
    paths: dict[tuple[str, int | None], str] = {("backbone", None): str(work / "backbone")}
    compare._save_backbone(tf, backbone, work / "backbone")
    for n in tasks:
        log(f"N={n}: saving headswitch, one_kind, minimal ...")
        for variant, save, chosen in (("headswitch", compare._save_headswitch, heads),
                                      ("one_kind", compare._save_headswitch, flat),
                                      ("minimal", save_minimal, flat)):
            path = work / f"{variant}-{n}"
            save(tf, backbone, chosen[:n], path)
            paths[(variant, n)] = str(path)
    log(f"saving 'before' (export/_module.py of {before}) in a child process ...")
    with open(work / "heads.pkl", "wb") as f:
        pickle.dump(heads, f)
    spec = {"commit": before, "first_model": first_model, "heads": str(work / "heads.pkl"),
            "exports": {str(n): str(work / f"before-{n}") for n in tasks}}
    (work / "before.json").write_text(json.dumps(spec))
    try:
        _measure.run_child(CHILD.format(bench=str(BENCH)), str(work / "before.json"))
    except RuntimeError as e:
        reason = str(e).strip().splitlines()[-1]
        log(f"'before' skipped: {reason}")
        return paths, reason
    for n in tasks:
        paths[("before", n)] = str(work / f"before-{n}")
    return paths, None


# ----------------------------------------------------------------------------------------------
# Measuring


def _category(name: str, op: str) -> str:
    """Which part of the graph a node belongs to (the session inlines the signature's
    functions; the backbone's nodes keep its name)."""
    if op in PLUMBING:
        return "plumbing"
    if "backbone" in name:
        return "backbone"
    return "task switch and outputs"


PARTS = ("backbone", "task switch and outputs", "plumbing")


def _short(text: str) -> str:
    """Node names without the call prefixes the session's function inlining adds."""
    return re.sub(r"(Func/)?(StatefulPartitionedCall(_\d+)?/)+", "", text)


def profile(session: Any, prepared: Any, repeats: int) -> dict[str, Any]:
    """Nodes executed per call and per-node time from the step stats of ``repeats`` traced
    runs (median per node), summed per op type and per part of the graph."""
    per_node: dict[tuple[str, str], list[float]] = defaultdict(list)
    labels: dict[str, str] = {}
    steps = []
    for _ in range(repeats):
        meta = session.trace(prepared)
        starts, ends = [], []
        for dev in meta.step_stats.dev_stats:
            for node in dev.node_stats:
                if node.node_name == "_SOURCE":
                    continue
                label = node.timeline_label  # "name = Op(args)"
                op = label.split("= ", 1)[1].split("(", 1)[0] if "= " in label else "?"
                per_node[(node.node_name, op)].append(node.all_end_rel_micros)
                labels[node.node_name] = label
                starts.append(node.all_start_micros)
                ends.append(node.all_start_micros + node.all_end_rel_micros)
        steps.append(max(ends) - min(starts))
    by_op: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    by_part: dict[str, list[float]] = {p: [0.0, 0] for p in PARTS}
    for (name, op), times in per_node.items():
        t = statistics.median(times)
        for table, key in ((by_op, op), (by_part, _category(name, op))):
            table[key][0] += t
            table[key][1] += 1
    nodes = round(sum(len(v) for v in per_node.values()) / repeats)
    own = sorted(((statistics.median(t), name, op) for (name, op), t in per_node.items()
                  if _category(name, op) == "task switch and outputs"), reverse=True)
    return {
        "top_nodes": [{"node": _short(name), "op": op, "us": us,
                       "inputs": _short(labels[name].split("(", 1)[-1].rstrip(")"))}
                      for us, name, op in own[:12]],
        "nodes": nodes,
        "compute_nodes": sum(int(v[1]) for k, v in by_part.items() if k != "plumbing"),
        "traced_step_us": statistics.median(steps),
        "by_part": {k: {"us": v[0], "nodes": int(v[1])} for k, v in by_part.items()},
        "by_op": {k: {"us": v[0], "nodes": int(v[1])}
                  for k, v in sorted(by_op.items(), key=lambda kv: -kv[1][0])},
    }


def _runner(session: Any, requests: list[Any]) -> Callable[[int], None]:
    return lambda i: session.run(requests[i])


def session_config(inter_op: int) -> bytes:
    """A serialized ConfigProto with ``inter_op_parallelism_threads`` (b"" for 0: no config,
    as tensorflow_model_server runs)."""
    if inter_op == 0:
        return b""
    from tensorflow.core.protobuf import config_pb2

    return config_pb2.ConfigProto(inter_op_parallelism_threads=inter_op).SerializeToString()


def measure(paths: dict[tuple[str, int | None], str], tasks: list[int], batches: list[int],
            budget: float, rounds: int, traces: int, log: Callable[[str], None],
            inter_op: int = 0) -> dict[str, Any]:
    """Every variant and N loaded in this process, timed interleaved per batch size, then
    traced."""
    from _cpath import CSession

    config = session_config(inter_op)
    sessions = {key: CSession(path, config=config) for key, path in paths.items()}
    lay = compare._layout({"tasks": tasks, "batches": {str(b): 16 for b in batches},
                           "texts": 512})
    runs: dict[str, Any] = {}
    try:
        for batch in batches:
            instances, first = [], {}
            for (variant, n), session in sessions.items():
                ids = lay.ids[batch][n or tasks[0]]
                requests = [session.prepare("serving_default", {
                    "text": lay.text(batch, r), **({} if variant == "backbone"
                                                   else {"task_id": ids[r]})})
                    for r in range(16)]
                first[(variant, n)] = requests[0]
                instances.append(compare._Instance(variant, n, _runner(session, requests)))
            log(f"batch {batch}: timing {len(instances)} variants interleaved ...")
            timed = compare._timed(instances, 16, budget, rounds)
            log(f"batch {batch}: tracing ...")
            traces_of = {key: profile(sessions[key], prepared, traces)
                         for key, prepared in first.items()}
            for n in tasks:
                run = runs[f"N={n},batch={batch}"] = {
                    "rounds": timed["rounds"], "p50_us": {}, "p99_us": {}, "samples": {},
                    "trace": {}}
                for inst in timed["instances"]:
                    if inst["tasks"] not in (n, None):
                        continue
                    variant, samples = inst["contender"], inst["samples"]
                    run["p50_us"][variant] = _measure.percentile(samples, 50) * 1e6
                    run["p99_us"][variant] = _measure.percentile(samples, 99) * 1e6
                    run["samples"][variant] = len(samples)
                    run["trace"][variant] = traces_of[(variant, inst["tasks"])]
            for session in sessions.values():
                for prepared in list(session._prepared):
                    session.release(prepared)
    finally:
        for session in sessions.values():
            session.close()
    for run in runs.values():
        base = run["p50_us"]["backbone"]
        run["p50_x_backbone"] = {v: t / base for v, t in run["p50_us"].items()}
    return runs


def floors(runs: dict[str, Any], tasks: list[int], batches: list[int]) -> list[dict[str, Any]]:
    """Issue 11: headswitch with 1 head kind / with 4 head kinds, p50, batch 64, >= 0.95."""
    out = []
    for n in tasks:
        for b in batches:
            p50 = runs[f"N={n},batch={b}"]["p50_us"]
            value = p50["one_kind"] / p50["headswitch"]
            out.append({"floor": f"1 head kind / 4 head kinds, N={n}, batch {b}",
                        "value": value, "limit": 0.95, "ok": value >= 0.95,
                        "reference": b != max(batches)})
    return out


# ----------------------------------------------------------------------------------------------
# Output


def tables(result: dict[str, Any]) -> str:
    tasks, batches = result["tasks"], result["batches"]
    variants = [v for v in VARIANTS if v in result["variants_built"]]
    keys = [(n, b) for n in tasks for b in batches]
    runs = result["runs"]
    inter_op = result.get("inter_op", 0)
    executor = ("inter-op thread pool (as tensorflow_model_server)" if inter_op == 0 else
                "every node in the calling thread" if inter_op < 0 else
                f"{inter_op} inter-op threads")
    lines = [(f"## C++ path (C++ loader + Session::Run), oneDNN "
              f"{'on' if result['onednn'] else 'off'}, {result['backbone']} backbone, "
              f"{executor}"), "",
             (f"Load average (1/5/15 min): start {result['load_average_start']}, end "
              f"{result['load_average_end']}."), "",
             "### p50 latency, us (x backbone alone)", "",
             "| variant | " + " | ".join(f"N={n}, batch {b}" for n, b in keys) + " |",
             "|---|" + "---|" * len(keys)]
    for v in variants:
        lines.append(f"| {result['variants'][v]} | " + " | ".join(
            f"{runs[f'N={n},batch={b}']['p50_us'][v]:.0f} "
            f"({runs[f'N={n},batch={b}']['p50_x_backbone'][v]:.2f}x)" for n, b in keys) + " |")
    lines += ["", ("### Nodes executed per call (all / compute: not Const, Identity, _Arg, "
                   "_Retval, VarHandleOp, ReadVariableOp, NoOp)"), "",
              "| variant | " + " | ".join(f"N={n}, batch {b}" for n, b in keys) + " |",
              "|---|" + "---|" * len(keys)]
    for v in variants:
        cells = []
        for n, b in keys:
            t = runs[f"N={n},batch={b}"]["trace"][v]
            cells.append(f"{t['nodes']} / {t['compute_nodes']}")
        lines.append(f"| {result['variants'][v]} | " + " | ".join(cells) + " |")
    lines += ["", "### Floor (issue 11)", "", "| floor | value | limit | met |",
              "|---|---|---|---|"]
    for f in result["floors"]:
        mark = "met" if f["ok"] else "**missed**"
        lines.append(f"| {f['floor']} | {f['value']:.3f} | >= {f['limit']:.2f} | "
                     f"{mark if not f['reference'] else '- (reference)'} |")
    for n, b in ((max(tasks), min(batches)), (max(tasks), max(batches))):
        trace = runs[f"N={n},batch={b}"]["trace"]
        shown = [v for v in variants if trace.get(v)]
        lines += ["", (f"### Op time per part of the graph, N={n}, batch {b} (FULL_TRACE, median "
                       "per node, us; nodes run on 2 inter-op threads, so sums exceed wall "
                       "time)"), "",
                  "| part | " + " | ".join(f"{v} us | nodes" for v in shown) + " |",
                  "|---|" + "---|---|" * len(shown)]
        for part in PARTS + ("traced step (wall)",):
            cells = []
            for v in shown:
                if part == "traced step (wall)":
                    cells += [f"{trace[v]['traced_step_us']:.0f}", str(trace[v]["nodes"])]
                else:
                    x = trace[v]["by_part"][part]
                    cells += [f"{x['us']:.0f}", str(x["nodes"])]
            lines.append(f"| {part} | " + " | ".join(cells) + " |")
        ops = sorted({o for v in shown for o in trace[v]["by_op"]},
                     key=lambda o: (-max(trace[v]["by_op"].get(o, {"us": 0})["us"]
                                         for v in shown if v != "backbone"), o))
        lines += ["", (f"Per op type, N={n}, batch {b} (us / nodes; the 20 dearest outside "
                       "the backbone variant):"), "",
                  "| op | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]
        for op in ops[:20]:
            cells = []
            for v in shown:
                x = trace[v]["by_op"].get(op)
                cells.append(f"{x['us']:.0f} / {x['nodes']}" if x else "-")
            lines.append(f"| {op} | " + " | ".join(cells) + " |")
        lines += ["", f"headswitch's dearest nodes outside the backbone, N={n}, batch {b}:", "",
                  "| node | op | us | inputs |", "|---|---|---|---|"]
        lines += [f"| {x['node']} | {x['op']} | {x['us']:.0f} | {x['inputs'][:90]} |"
                  for x in trace["headswitch"]["top_nodes"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", help="folder with manifest.yaml and .keras files (default: "
                   "build 7 example models)")
    p.add_argument("--backbone", default="small", choices=compare.BACKBONES,
                   help="the example backbone to build without --examples; names the results")
    p.add_argument("--tasks", type=int, nargs="+", help="task counts (default 10 1000)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    p.add_argument("--seconds", type=float, help="timing budget per batch size (default 40)")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--traces", type=int, help="traced runs per variant (default 30)")
    p.add_argument("--onednn", choices=("off", "default"), default="off",
                   help="off: TF_ENABLE_ONEDNN_OPTS=0 (compare.py's headline); default: the "
                   "wheel's setting for this CPU")
    p.add_argument("--quick", action="store_true",
                   help="N in {10, 50}, 6 s per batch size, 5 traces (about 2 min)")
    p.add_argument("--before", default=BEFORE_COMMIT,
                   help=f"the commit whose predict graph is 'before' (default {BEFORE_COMMIT})")
    p.add_argument("--inter-op", type=int, default=0,
                   help="the session's inter_op_parallelism_threads: 0 (default) as "
                   "tensorflow_model_server; -1 runs every node in the calling thread")
    _measure.add_results_option(p)
    args = p.parse_args(argv)
    args.results = _measure.results_dir(args)
    tasks = sorted(args.tasks or ([10, 50] if args.quick else [10, 1000]))
    budget = args.seconds or (6.0 if args.quick else 40.0)
    traces = args.traces or (5 if args.quick else 30)
    if args.onednn == "off":  # read once, when TensorFlow loads: before any import of it
        if "tensorflow" in sys.modules:
            p.error("--onednn off needs a process that has not imported TensorFlow yet")
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    started = time.perf_counter()
    load_average_start = _measure.load_average()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {msg}", file=sys.stderr, flush=True)

    tf = compare._tf()
    work = Path(tempfile.mkdtemp(prefix="headswitch-overhead-"))
    try:
        if args.examples:
            import yaml

            listed = yaml.safe_load((Path(args.examples) / "manifest.yaml").read_text())["tasks"]
            example_paths = [str(Path(args.examples) / e["model"]) for e in listed]
        else:
            from headswitch.examples import build_example_models

            log(f"building 7 {args.backbone} example models ...")
            built = build_example_models(7, work / "examples", backbone=args.backbone)
            example_paths = [str(x) for x in built.paths]
        _, backbone = compare._backbone_of(example_paths[0])
        width = int(backbone.outputs[0].shape[-1])
        heads, real = compare.synthesized_heads(example_paths[:7], max(tasks), width)
        paths, before_missing = build(tf, backbone, example_paths[0], heads, tasks, work, log,
                                      args.before)
        runs = measure(paths, tasks, args.batches, budget, args.rounds, traces, log,
                       args.inter_op)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result: dict[str, Any] = {
        "machine": _measure.machine(), "backbone": args.backbone,
        "onednn": _measure.onednn_enabled(),
        "path": "C++ loader + Session::Run (bench/_cpath.py), every output fetched",
        "inter_op": args.inter_op,
        "tasks": tasks, "batches": args.batches, "real_heads": real,
        "budget_seconds_per_batch": budget, "traces": traces,
        "variants": {v: TITLES[v].format(commit=args.before) for v in VARIANTS},
        "variants_built": sorted({v for v, _ in paths}, key=VARIANTS.index),
        "before": {"commit": args.before, "missing": before_missing},
        "load_average_start": load_average_start, "load_average_end": _measure.load_average(),
        "runs": runs, "floors": floors(runs, tasks, args.batches),
        "seconds": time.perf_counter() - started,
    }
    suffix = "" if args.inter_op == 0 else f"-inter-op{args.inter_op}"
    out = Path(args.results) / f"overhead-{args.backbone}{suffix}.json"
    _measure.write_json(out, result)
    report = tables(result)
    out.with_suffix(".md").write_text(report + "\n")
    print(report)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
