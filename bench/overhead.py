"""Where headswitch's latency over the backbone alone goes: timing variants and an op profile.

    .venv/bin/python bench/overhead.py --examples DIR [--backbone small] [--tasks 10 1000]

DIR holds example models (``headswitch example-models``; the first 7 are read, the other tasks get
random Dense heads of their example shape). For each N one SavedModel is saved whose signatures
peel headswitch's ``serving_default`` apart (all share one saved backbone):

  backbone          text -> features (the backbone alone)
  backbone_io       the backbone behind serving_default's inputs and outputs (two inputs, five
                    outputs of the same dtypes and shapes, each from one cheap op): the cost of
                    the signature itself
  no_checks         serving_default without its input checks (no Assert)
  serving_default   headswitch's signature as exported
  serving_scores    serving_default's graph, only ``scores`` returned
  serving_one_group serving_default with every head a single Dense: one stacked group (the
                    example tasks have two head shapes: `language` has a hidden layer)

Each signature is timed three ways, interleaved round by round:
  eager   the loaded signature called from Python, as bench/compare.py does;
  graph   the signature called K times inside one tf.function loop: graph execution only, no
          Python/eager dispatch per call;
  session the SavedModel run by a TF1 Session (``make_callable``), TF Serving's execution path.
and the session path is traced (RunOptions FULL_TRACE) for per-op time, grouped by op type.

Writes bench/results/overhead-<backbone>.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import compare  # noqa: E402
from _measure import machine, percentile, write_json  # noqa: E402

VARIANTS = ("backbone", "backbone_io", "no_checks", "serving_default", "serving_scores",
            "serving_one_group")


def build(tf: Any, backbone: Any, heads: list[dict], path: Path) -> list[str]:
    """Save the variants as signatures of one SavedModel; return the variants built. The
    no_checks variant reaches into headswitch internals (``_predict``) and is skipped if they
    change."""
    from headswitch.export._heads import DenseChainHead, DenseStep
    from headswitch.export._module import TaskEntry, build_module

    def entries(heads: list[dict]) -> list[Any]:
        return [TaskEntry(t, h["name"], h["labels"],
                          DenseChainHead([DenseStep(k, b, a) for k, b, a in h["steps"]]))
                for t, h in enumerate(heads)]

    # The same tasks with every head a single Dense (the hidden-layer head, `language`, gets a
    # random single Dense of its width): one stacked group instead of two.
    import numpy as np

    rng = np.random.default_rng(0)
    flat = [h if len(h["steps"]) == 1 else
            {**h, "steps": [(rng.normal(0, 0.1, (h["steps"][0][0].shape[0],
                                                 h["steps"][-1][0].shape[1])).astype(np.float32),
                             h["steps"][-1][1], h["steps"][-1][2])]} for h in heads]
    root = tf.Module()
    root.m = m = build_module(backbone, entries(heads))
    root.m1 = build_module(backbone, entries(flat))
    text = tf.TensorSpec([None], tf.string, name="text")
    ids = tf.TensorSpec([None], tf.int32, name="task_id")
    width = max(h["steps"][-1][0].shape[1] for h in heads)
    fns = {
        "backbone": (lambda text: {"features": backbone(text, training=False)}, [text]),
        "backbone_io": (compare.backbone_io_fn(tf, backbone, width), [text, ids]),
        "no_checks": (lambda text, task_id: m._predict(backbone(text, training=False), task_id,
                                                       []), [text, ids]),
        "serving_scores": (lambda text, task_id: {
            "scores": m.serving_default(text, task_id)["scores"]}, [text, ids]),
    }
    sigs = {"serving_default": m.serving_default, "serving_one_group": root.m1.serving_default}
    built = list(sigs)
    for name, (fn, spec) in fns.items():
        try:
            sigs[name] = tf.function(fn, input_signature=spec).get_concrete_function()
            built.append(name)
        except Exception as e:  # an internal this variant uses has changed
            print(f"variant {name} skipped: {type(e).__name__}: {e}".splitlines()[0])
    tf.saved_model.save(root, str(path), signatures=sigs)
    return [v for v in VARIANTS if v in built]


def _loop(tf: Any, sig: Any, needs_ids: bool, out_key: str, k: int) -> Any:
    """K sequential calls of ``sig`` inside one graph: no Python between calls."""

    @tf.function
    def run(text: Any, task_id: Any) -> Any:
        def body(i: Any, acc: Any) -> Any:
            out = sig(text=text, task_id=task_id) if needs_ids else sig(text=text)
            return i + 1, acc + tf.reduce_sum(out[out_key])

        return tf.while_loop(lambda i, _: i < k, body, [0, 0.0])[1]

    return run


def _session(tf: Any, path: str, variant: str) -> tuple[Any, Any, Any]:
    graph = tf.Graph()
    with graph.as_default():
        sess = tf.compat.v1.Session(graph=graph)
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
        sig = meta.signature_def[variant]
        feeds = [graph.get_tensor_by_name(sig.inputs[k].name) for k in sorted(sig.inputs)]
        fetches = [graph.get_tensor_by_name(v.name) for _, v in sorted(sig.outputs.items())]
        keys = sorted(sig.inputs)
        return sess, sess.make_callable(fetches, feeds), (keys, feeds, fetches)


PLUMBING = {"Const", "VarHandleOp", "Identity", "IdentityN", "NoOp", "_Arg", "_Retval",
            "HashTableV2", "ReadVariableOp"}


def _category(name: str, op: str) -> str:
    """Which part of the graph a node belongs to (nested calls are inlined in the Session
    graph; the backbone's nodes keep its name)."""
    if op in PLUMBING:
        return "plumbing (Const, VarHandleOp, Identity, _Arg/_Retval, ReadVariableOp)"
    if "backbone" in name:
        return "backbone"
    return "headswitch: checks, heads, outputs"


def _trace(tf: Any, sess: Any, info: Any, feed: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Per-node op time from the Session's step stats (FULL_TRACE), the median over
    ``repeats`` runs, summed per op type and per part of the graph, with node counts."""
    keys, feeds, fetches = info
    per_node: dict[tuple[str, str], list[float]] = defaultdict(list)
    for _ in range(repeats):
        meta = tf.compat.v1.RunMetadata()
        sess.run(fetches, {f: feed[k] for k, f in zip(keys, feeds)},
                 options=tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE),
                 run_metadata=meta)
        for dev in meta.step_stats.dev_stats:
            for node in dev.node_stats:
                label = node.timeline_label  # "name = Op(args)"
                op = label.split("= ", 1)[1].split("(", 1)[0] if "= " in label else node.node_name
                per_node[(node.node_name, op)].append(node.op_end_rel_micros)
    by_op: dict[str, float] = defaultdict(float)
    by_part: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for (name, op), times in per_node.items():
        if name == "_SOURCE":
            continue
        t = statistics.median(times)
        by_op[op] += t
        part = by_part[_category(name, op)]
        part[0] += t
        part[1] += 1
    return {"by_op_us": dict(sorted(by_op.items(), key=lambda kv: -kv[1])),
            "by_part": {k: {"us": v[0], "nodes": v[1]} for k, v in sorted(by_part.items())},
            "nodes": sum(int(v[1]) for v in by_part.values())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", required=True, help="folder with manifest.yaml and .keras files")
    p.add_argument("--backbone", default="small", help="label only: which backbone DIR holds")
    p.add_argument("--tasks", type=int, nargs="+", default=[10, 1000])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--per-round", type=int, default=40)
    p.add_argument("--results", default=str(BENCH / "results"))
    args = p.parse_args(argv)
    started = time.perf_counter()

    import numpy as np
    import yaml

    tf = compare._tf()
    from headswitch.examples import sample_texts

    listed = yaml.safe_load((Path(args.examples) / "manifest.yaml").read_text())["tasks"]
    paths = [str(Path(args.examples) / e["model"]) for e in listed]
    _, backbone = compare._backbone_of(paths[0])
    width = int(backbone.outputs[0].shape[-1])
    heads, real = compare.synthesized_heads(paths[:7], max(args.tasks), width)
    work = Path(tempfile.mkdtemp(prefix="headswitch-overhead-"))
    pool = np.array(sample_texts(512, seed=1), dtype=object)
    result: dict[str, Any] = {"machine": machine(), "backbone": args.backbone,
                              "real_heads": real, "runs": {}}
    for n in args.tasks:
        path = work / f"variants-{n}"
        variants = build(tf, backbone, heads[:n], path)
        gc.collect()
        loaded = tf.saved_model.load(str(path))
        sessions = {v: _session(tf, str(path), v) for v in variants}
        for batch in args.batches:
            rng = np.random.default_rng(batch)
            reqs = 16
            texts = [pool[rng.integers(0, len(pool), batch)] for _ in range(reqs)]
            ids = [rng.integers(0, n, batch).astype(np.int32) for _ in range(reqs)]
            t_texts = [tf.constant(t.tolist()) for t in texts]
            t_ids = [tf.constant(i) for i in ids]
            k = 20 if batch == 1 else 10
            eager, graph, session = {}, {}, {}
            for v in variants:
                sig = loaded.signatures[v]
                key = "features" if v == "backbone" else "scores"
                if v == "backbone":  # the only variant without a task_id input
                    eager[v] = lambda i, s=sig, key=key: s(text=t_texts[i])[key].numpy()
                else:
                    eager[v] = lambda i, s=sig, key=key: s(text=t_texts[i],
                                                            task_id=t_ids[i])[key].numpy()
                loop = _loop(tf, sig, v != "backbone", key, k)
                graph[v] = lambda i, f=loop: f(t_texts[i], t_ids[i]).numpy()
                _, call, info = sessions[v]
                keys = info[0]
                session[v] = (lambda i, c=call, keys=keys: c(
                    *[texts[i] if key_ == "text" else ids[i] for key_ in keys]))
            samples: dict[tuple[str, str], list[float]] = defaultdict(list)
            ways = {"eager": (eager, 1), "graph": (graph, k), "session": (session, 1)}
            for fns, _ in ways.values():
                for v in variants:
                    for i in range(reqs):
                        fns[v](i)  # warm up (and trace the loops)
            gc.collect()
            gc.disable()
            try:
                for r in range(args.rounds):
                    order = variants[r % len(variants):] + variants[: r % len(variants)]
                    for way, (fns, per) in ways.items():
                        reps = max(1, args.per_round // per)
                        for v in order:
                            for j in range(reps):
                                i = (r * reps + j) % reqs
                                t0 = time.perf_counter()
                                fns[v](i)
                                samples[(way, v)].append((time.perf_counter() - t0) / per)
            finally:
                gc.enable()
            trace = {}
            for v in ("backbone", "serving_default"):
                sess, _, info = sessions[v]
                trace[v] = _trace(tf, sess, info, {"text": texts[0], "task_id": ids[0]}, 30)
            run = {"p50_us": {}, "p99_us": {}, "samples": {}, "trace_us_by_op": trace}
            for (way, v), vals in samples.items():
                run["p50_us"].setdefault(way, {})[v] = percentile(vals, 50) * 1e6
                run["p99_us"].setdefault(way, {})[v] = percentile(vals, 99) * 1e6
                run["samples"].setdefault(way, {})[v] = len(vals)
            result["runs"][f"N={n},batch={batch}"] = run
            _print(n, batch, run, variants)
        for sess, _, _ in sessions.values():
            sess.close()
        del loaded
        gc.collect()
    shutil.rmtree(work, ignore_errors=True)
    result["seconds"] = time.perf_counter() - started
    write_json(Path(args.results) / f"overhead-{args.backbone}.json", result)
    print(f"\n{result['seconds']:.0f} s; wrote overhead-{args.backbone}.json")
    return 0


def _print(n: int, batch: int, run: dict, variants: list[str]) -> None:
    p50 = run["p50_us"]
    print(f"\n### N={n}, batch {batch}: p50 us (x backbone)\n")
    print("| variant | eager | graph | session |\n|---|---|---|---|")
    for v in variants:
        cells = [f"{p50[w][v]:.0f} ({p50[w][v] / p50[w]['backbone']:.2f}x)"
                 for w in ("eager", "graph", "session")]
        print(f"| {v} | " + " | ".join(cells) + " |")
    trace = run["trace_us_by_op"]
    print("\nSession FULL_TRACE (median of 30 runs per node), op time per part of the graph "
          "(us per call; two inter-op threads, so sums exceed wall time):\n")
    parts = sorted(set().union(*[t["by_part"].keys() for t in trace.values()]))
    print("| part | " + " | ".join(f"{v} us | nodes" for v in trace) + " |\n|---|"
          + "---|---|" * len(trace))
    for part in parts:
        cells = []
        for t in trace.values():
            x = t["by_part"].get(part, {"us": 0, "nodes": 0})
            cells += [f"{x['us']:.0f}", str(x["nodes"])]
        print(f"| {part} | " + " | ".join(cells) + " |")
    print("| total | " + " | ".join(
        f"{sum(x['us'] for x in t['by_part'].values()):.0f} | {t['nodes']}"
        for t in trace.values()) + " |")
    by_op = {v: t["by_op_us"] for v, t in trace.items()}
    ops = sorted(set().union(*[t.keys() for t in by_op.values()]),
                 key=lambda o: -max(t.get(o, 0) for t in by_op.values()))
    print("\nper op type (us per call):\n")
    print("| op | " + " | ".join(by_op) + " |\n|---|" + "---|" * len(by_op))
    for op in ops[:20]:
        print(f"| {op} | " + " | ".join(f"{t.get(op, 0):.0f}" for t in by_op.values()) + " |")


if __name__ == "__main__":
    sys.exit(main())
