"""headswitch against the alternatives: size on disk, load time, memory, latency, throughput.

    .venv/bin/python bench/compare.py [--quick]          (or: make bench)

Contenders, all built from the same example models and measured on the same texts:

  backbone        the backbone alone, text -> features: the limit nothing can beat
  backbone_io     the backbone behind headswitch's serving_default signature: the same inputs
                  and outputs (dtypes, shapes) filled by the cheapest ops, no task switch; what
                  any model with that signature costs at least, so headswitch / backbone_io is
                  the cost of the task switch itself
  headswitch      the headswitch SavedModel, ``serving_default(text, task_id)``, random task per
                  example
  multi_output    one SavedModel whose one signature computes every head (the single-Dense heads
                  as ONE concatenated matmul) and returns all N heads' scores [b, N, K]; the
                  caller picks its task's row
  per_task_sigs   one SavedModel with one signature per task (``task_<t>``); the backbone is one
                  shared tf.function in the graph (the strong version: saved once, not N times);
                  a mixed batch is one call per distinct task
  separate        N separate SavedModels (backbone + one head each): size = N x one model; load
                  time and memory measured by loading N copies in one process for N <= 200 and
                  extrapolated linearly above; latency = one model's (one call per distinct task)

How the contenders are built:
  small backbone  headswitch through the public ``export_models`` (one export per N, verified);
                  the other contenders from the backbone of the first .keras file and the heads
                  the exporter read (captured from the N-max export, so they are identical).
  bert backbone   a few example .keras files are built (one per head shape, not N: a bert .keras is
                  ~21 MB); the heads of those are read with the exporter's head analysis and the
                  other tasks get random Dense weights of the shapes ``task_specs`` gives them.
                  headswitch is ``export._module.build_module`` + ``tf.saved_model.save`` with the
                  module's signatures: what ``export_models`` writes, minus verification,
                  warmup records and assets.extra.

Building, sizes and load/memory (one fresh child process per measurement, via ``run_child``) come
first; latency is measured in one process per backbone with every contender and every N loaded,
interleaved round by round. Writes bench/results/compare.{json,md,png}.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import pickle
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from _measure import machine, percentile, run_child, write_json  # noqa: E402

CONTENDERS = ("backbone", "backbone_io", "headswitch", "multi_output", "per_task_sigs",
              "separate")
SINGLE = ("backbone", "backbone_io")  # contenders that do not depend on N
TITLES = {
    "backbone": "backbone alone (limit)",
    "backbone_io": "backbone, headswitch's inputs/outputs",
    "headswitch": "headswitch",
    "multi_output": "one model, all heads (multi-output)",
    "per_task_sigs": "one model, N signatures",
    "separate": "N separate SavedModels",
}
BACKBONES = ("small", "bert")
# Example models built for the bert backbone: the first 7 tasks cover every head shape the
# example tasks use (softmax/sigmoid/linear single Dense, a Dense(16, relu) hidden layer).
BERT_REAL_MODELS = 7

# budget: seconds of timed requests per (backbone, batch), shared evenly by the contenders;
# separate_max: separate models are loaded N times up to this N, extrapolated above;
# load_jobs: load/RSS child processes run at once (quick mode only: 2, noisier load times).
# batches: {backbone: {batch size: distinct prepared requests}}. Few bert requests: each task
# signature's first call costs ~0.2 s (its graph, backbone included, is optimised then), and
# every signature the requests use is called once before timing.
FULL = dict(tasks=[10, 200, 1000], rounds=12, load_repeats=2, load_jobs=1,
            batches={"small": {1: 16, 64: 16}, "bert": {1: 8, 64: 3}},
            budget={("small", 1): 30, ("small", 64): 30, ("bert", 1): 50, ("bert", 64): 120},
            separate_max=200, bert_models=BERT_REAL_MODELS)
QUICK = dict(tasks=[10, 50], rounds=4, load_repeats=1, load_jobs=2,
             batches={"small": {1: 6, 64: 6}, "bert": {1: 4, 16: 2}},
             budget={("small", 1): 4, ("small", 64): 4, ("bert", 1): 5, ("bert", 16): 6},
             separate_max=10, bert_models=4)
LONG_LOAD = 5.0  # seconds: a load this long is not repeated (it averages over its own length)

CHILD = "import sys; sys.path.insert(0, {bench!r}); import compare; compare.child_main(sys.argv[1])"


# ----------------------------------------------------------------------------------------------
# Jobs: each runs in a child process (``run_child``) or, for the smoke test, in this process.


def _tf() -> Any:
    from headswitch._quiet import import_tensorflow

    return import_tensorflow()


def child_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    result = JOBS[spec["job"]](spec)
    Path(spec["result"]).write_text(json.dumps(result))


def _job_import(spec: dict) -> dict:
    _tf()
    return {}


def _job_examples(spec: dict) -> dict:
    _tf()
    from headswitch.examples import build_example_models

    started = time.perf_counter()
    built = build_example_models(spec["n"], spec["out"], backbone=spec["backbone"])
    return {"paths": [str(p) for p in built.paths], "manifest": str(built.manifest),
            "seconds": time.perf_counter() - started}


def _head_record(entry: Any) -> dict:
    from headswitch.export._heads import DenseChainHead

    if not isinstance(entry.head, DenseChainHead):
        raise RuntimeError(f"task {entry.name}: the comparison needs Dense-chain heads")
    return {"name": entry.name, "labels": list(entry.labels),
            "steps": [(s.kernel, s.bias, s.activation) for s in entry.head.steps]}


def _job_export(spec: dict) -> dict:
    """Small backbone: headswitch through the public export_models, once per N. The heads the
    exporter reads are captured (wrapping its build_module) for the other contenders."""
    _tf()
    import headswitch.export._exporter as exporter
    from headswitch.export import export_models

    captured: list[Any] = []
    real = exporter.build_module

    def capture(backbone: Any, entries: list[Any]) -> Any:
        captured[:] = entries
        return real(backbone, entries)

    exporter.build_module = capture
    out: dict[str, Any] = {"exports": {}}
    try:
        heads: list[Any] = []
        for n in sorted(spec["tasks"]):
            started = time.perf_counter()
            report = export_models(spec["paths"][:n], Path(spec["out"]) / f"headswitch-{n}",
                                   manifest=spec["manifest"])
            out["exports"][str(n)] = {
                "path": str(report.path), "seconds": time.perf_counter() - started,
                "split_layer": report.split_layer, "heads_bytes": report.heads_bytes,
                "backbone_bytes_reported": report.backbone_bytes,
                "merged_bytes_with_assets_extra": report.merged_bytes,
                "max_abs_diff": report.max_abs_diff}
            if len(captured) > len(heads):
                heads = [_head_record(e) for e in captured]
    finally:
        exporter.build_module = real
    with open(spec["heads"], "wb") as f:
        pickle.dump(heads, f)
    return out


def _backbone_of(path: str) -> Any:
    import keras

    from headswitch.export import _graph

    model = keras.models.load_model(path, compile=False)
    return model, _graph.backbone_model(model, model.get_layer("backbone"))


def _bert_heads(spec: dict, width: int) -> tuple[list[dict], int]:
    return synthesized_heads(spec["paths"], max(spec["tasks"]), width)


def synthesized_heads(paths: list[str], n_max: int, width: int) -> tuple[list[dict], int]:
    """The real heads of a few example models, then random Dense heads of the shapes the
    remaining example tasks have (``task_specs``)."""
    import keras
    import numpy as np

    from headswitch.examples._tasks import task_specs
    from headswitch.export import _graph
    from headswitch.export._heads import analyse_head
    from headswitch.export._module import TaskEntry

    specs = task_specs(n_max)
    heads = []
    for i, path in enumerate(paths[:n_max]):
        model = keras.models.load_model(path, compile=False)
        head = analyse_head(_graph.head_model(model, model.get_layer("backbone")))
        heads.append(_head_record(TaskEntry(i, specs[i].name, specs[i].labels, head)))
    real = len(heads)
    rng = np.random.default_rng(12345)

    def dense(n_in: int, n_out: int) -> tuple[Any, Any]:
        limit = math.sqrt(6.0 / (n_in + n_out))  # Glorot uniform, as a Keras Dense starts
        return (rng.uniform(-limit, limit, (n_in, n_out)).astype(np.float32),
                rng.normal(0, 0.1, n_out).astype(np.float32))

    for task in specs[real:]:
        steps = []
        n_in = width
        if task.hidden_units:
            steps.append((*dense(n_in, task.hidden_units), "relu"))
            n_in = task.hidden_units
        steps.append((*dense(n_in, len(task.labels)), task.kind))
        heads.append({"name": task.name, "labels": list(task.labels), "steps": steps})
    return heads, real


def _text_spec(tf: Any) -> Any:
    return tf.TensorSpec([None], tf.string, name="text")


def _apply(tf: Any, name: str, z: Any) -> Any:
    from headswitch.export._module import _activation

    return _activation(tf, name, z)


def _save_backbone(tf: Any, backbone: Any, path: Path) -> None:
    from headswitch.export._module import keras_state

    module = tf.Module()
    module.variables_, module.resources_ = keras_state(tf, backbone)
    fn = tf.function(lambda text: {"features": backbone(text, training=False)},
                     input_signature=[_text_spec(tf)])
    tf.saved_model.save(module, str(path), signatures={"serving_default": fn})


def backbone_io_fn(tf: Any, backbone: Any, width: int) -> Callable[[Any, Any], dict[str, Any]]:
    """The backbone behind serving_default's inputs and outputs (no task switch): scores
    float32[b, width], num_classes int32[b], labels string[b, width], top_label string[b],
    top_score float32[b], each from one cheap op."""
    labels = tf.constant([[f"label {i}" for i in range(width)]])

    def serve(text: Any, task_id: Any) -> dict[str, Any]:
        features = backbone(text, training=False)
        first = tf.zeros_like(task_id)
        return {"scores": features[:, :width], "num_classes": task_id,
                "labels": tf.gather(labels, first), "top_label": tf.gather(labels[0], first),
                "top_score": features[:, 0]}

    return serve


def _save_backbone_io(tf: Any, backbone: Any, width: int, path: Path) -> None:
    from headswitch.export._module import keras_state

    module = tf.Module()
    module.variables_, module.resources_ = keras_state(tf, backbone)
    fn = tf.function(backbone_io_fn(tf, backbone, width), input_signature=[
        _text_spec(tf), tf.TensorSpec([None], tf.int32, name="task_id")])
    tf.saved_model.save(module, str(path), signatures={"serving_default": fn})


def _save_multi_output(tf: Any, backbone: Any, heads: list[dict], path: Path) -> None:
    """One signature, every head. The single-Dense heads are ONE concatenated matmul
    [features, sum of widths]; heads with a hidden layer run their own Dense steps. The logits
    are laid out as [b, N, K] (K = widest head, padding masked) and each task's activation is
    applied; the caller picks its task's row."""
    import numpy as np

    from headswitch.export._module import keras_state

    n = len(heads)
    width = max(h["steps"][-1][0].shape[1] for h in heads)
    single = [t for t in range(n) if len(heads[t]["steps"]) == 1]
    deep = [t for t in range(n) if len(heads[t]["steps"]) > 1]
    order = single + deep
    total = sum(heads[t]["steps"][-1][0].shape[1] for t in order)
    columns = np.full((n, width), total, np.int32)  # column `total` is a zero sentinel
    offset = 0
    for t in order:
        w = heads[t]["steps"][-1][0].shape[1]
        columns[t, :w] = np.arange(offset, offset + w)
        offset += w
    finals = [heads[t]["steps"][-1][2] for t in range(n)]
    kinds = sorted(set(finals))

    module = tf.Module()
    module.variables_, module.resources_ = keras_state(tf, backbone)
    module.kernel = tf.Variable(np.concatenate([heads[t]["steps"][0][0] for t in single], 1)
                                if single else np.zeros((0, 0), np.float32), name="kernel")
    module.bias = tf.Variable(np.concatenate([heads[t]["steps"][0][1] for t in single])
                              if single else np.zeros(0, np.float32), name="bias")
    module.deep = [[(tf.Variable(k), tf.Variable(b)) for k, b, _ in heads[t]["steps"]]
                   for t in deep]
    deep_acts = [[a for _, _, a in heads[t]["steps"][:-1]] for t in deep]
    columns_t = tf.constant(columns)
    valid = tf.constant(columns < total)[None]
    kind_masks = {k: tf.constant(np.array([f == k for f in finals]))[None, :, None] for k in kinds}

    def serve(text: Any) -> dict[str, Any]:
        x = backbone(text, training=False)
        parts = [tf.matmul(x, module.kernel) + module.bias] if single else []
        for steps, acts in zip(module.deep, deep_acts):
            h = x
            for (k, b), a in zip(steps[:-1], acts):
                h = _apply(tf, a, tf.matmul(h, k) + b)
            parts.append(tf.matmul(h, steps[-1][0]) + steps[-1][1])
        parts.append(tf.zeros([tf.shape(x)[0], 1]))
        z = tf.gather(tf.concat(parts, 1), columns_t, axis=1)  # [b, N, K]
        out = z
        for kind in kinds:
            if kind == "linear":
                continue
            act = (tf.nn.softmax(tf.where(valid, z, -np.inf), axis=-1) if kind == "softmax"
                   else _apply(tf, kind, z))
            out = tf.where(kind_masks[kind], act, out)
        return {"scores": tf.where(valid, out, 0.0)}

    fn = tf.function(serve, input_signature=[_text_spec(tf)])
    tf.saved_model.save(module, str(path), signatures={"serving_default": fn})


def _save_per_task(tf: Any, backbone: Any, heads: list[dict], path: Path,
                   names: list[str] | None = None) -> None:
    """One signature per task. The backbone is one tf.function every signature calls, so the
    graph holds it once (tracing it per signature would store N copies)."""
    from headswitch.export._module import keras_state

    module = tf.Module()
    module.variables_, module.resources_ = keras_state(tf, backbone)
    module.features = tf.function(lambda text: backbone(text, training=False),
                                  input_signature=[_text_spec(tf)])
    module.heads = [[(tf.Variable(k, name=f"kernel_{t}_{i}"), tf.Variable(b, name=f"bias_{t}_{i}"))
                     for i, (k, b, _) in enumerate(h["steps"])] for t, h in enumerate(heads)]
    sigs = {}
    for t, head in enumerate(heads):
        acts = [a for _, _, a in head["steps"]]

        def serve(text: Any, t: int = t, acts: list[str] = acts) -> dict[str, Any]:
            h = module.features(text)
            for (k, b), a in zip(module.heads[t], acts):
                h = _apply(tf, a, tf.matmul(h, k) + b)
            return {"scores": h}

        key = names[t] if names else f"task_{t}"
        sigs[key] = tf.function(serve, input_signature=[_text_spec(tf)]).get_concrete_function()
    tf.saved_model.save(module, str(path), signatures=sigs)


def _save_headswitch(tf: Any, backbone: Any, heads: list[dict], path: Path) -> None:
    """What export_models writes, minus verification, warmup records and assets.extra."""
    from headswitch.export._heads import DenseChainHead, DenseStep
    from headswitch.export._module import TaskEntry, build_module, signatures

    entries = [TaskEntry(t, h["name"], h["labels"],
                         DenseChainHead([DenseStep(k, b, a) for k, b, a in h["steps"]]))
               for t, h in enumerate(heads)]
    module = build_module(backbone, entries)
    tf.saved_model.save(module, str(path), signatures=signatures(module))


def _heads_bytes(heads: list[dict]) -> int:
    return int(sum(k.nbytes + b.nbytes for h in heads for k, b, _ in h["steps"]))


def _job_contenders(spec: dict) -> dict:
    """Every contender but the exported headswitch (small) from one backbone and the heads."""
    tf = _tf()
    _, backbone = _backbone_of(spec["first_model"])
    width = int(backbone.outputs[0].shape[-1])
    if spec["backbone"] == "bert":
        heads, real = _bert_heads(spec, width)
    else:
        with open(spec["heads"], "rb") as f:
            heads = pickle.load(f)
        real = len(heads)
    out = Path(spec["out"])
    seconds: dict[str, Any] = {}
    paths: dict[str, Any] = {"headswitch": {}, "multi_output": {}, "per_task_sigs": {}}

    def timed(key: str, fn: Callable[..., None], *args: Any) -> None:
        started = time.perf_counter()
        fn(*args)
        seconds[key] = time.perf_counter() - started
        gc.collect()

    timed("backbone", _save_backbone, tf, backbone, out / "backbone")
    paths["backbone"] = str(out / "backbone")
    widest = max(h["steps"][-1][0].shape[1] for h in heads[: max(spec["tasks"])])
    timed("backbone_io", _save_backbone_io, tf, backbone, widest, out / "backbone_io")
    paths["backbone_io"] = str(out / "backbone_io")
    timed("separate", _save_per_task, tf, backbone, heads[:1], out / "separate",
          ["serving_default"])
    paths["separate"] = str(out / "separate")
    for n in spec["tasks"]:
        for name, save in (("multi_output", _save_multi_output), ("per_task_sigs", _save_per_task)):
            timed(f"{name}-{n}", save, tf, backbone, heads[:n], out / f"{name}-{n}")
            paths[name][str(n)] = str(out / f"{name}-{n}")
        if spec["backbone"] == "bert":
            timed(f"headswitch-{n}", _save_headswitch, tf, backbone, heads[:n],
                  out / f"headswitch-{n}")
            paths["headswitch"][str(n)] = str(out / f"headswitch-{n}")
    return {"paths": paths, "seconds": seconds, "real_heads": real, "feature_width": width,
            "heads_bytes": {str(n): _heads_bytes(heads[:n]) for n in spec["tasks"]},
            "separate_head_bytes": _heads_bytes(heads[:1])}


def _call_once(tf: Any, loaded: Any, contender: str) -> None:
    text = tf.constant(["the striker scored twice"])
    if contender in ("headswitch", "backbone_io"):
        loaded.signatures["serving_default"](text=text, task_id=tf.constant([0], tf.int32))
    elif contender == "per_task_sigs":
        loaded.signatures["task_0"](text=text)
    else:
        loaded.signatures["serving_default"](text=text)


def _job_load(spec: dict) -> dict:
    """Load ``copies`` times (each load has its own variables and functions) and answer one
    request with each: time to load, and to the first answer."""
    tf = _tf()
    gc.collect()
    before = _current_rss()
    started = time.perf_counter()
    loaded = [tf.saved_model.load(spec["path"]) for _ in range(spec["copies"])]
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for model in loaded:
        _call_once(tf, model, spec["contender"])
    first_call = time.perf_counter() - started
    gc.collect()
    return {"load_seconds": load_seconds, "first_call_seconds": first_call,
            "rss_added": _current_rss() - before, "rss_before": before}


def _current_rss() -> int:
    """This process's resident set size now (VmRSS), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class _Instance:
    contender: str
    n: int | None  # None: the same for every N
    run: Callable[[int], Any]
    samples: list[float] = field(default_factory=list)
    per_round: int = 1
    calls_per_request: float = 1.0


def _job_latency(spec: dict) -> dict:
    """Every contender and N of one backbone loaded in this process, timed round-robin."""
    tf = _tf()
    import numpy as np

    from headswitch.examples import sample_texts

    keep: list[Any] = []

    def load(path: str) -> Any:
        obj = tf.saved_model.load(path)
        keep.append(obj)
        return obj

    started = time.perf_counter()
    tasks = [int(n) for n in spec["tasks"]]
    backbone = load(spec["paths"]["backbone"]).signatures["serving_default"]
    backbone_io = load(spec["paths"]["backbone_io"]).signatures["serving_default"]
    hs = {n: load(spec["paths"]["headswitch"][str(n)]).signatures["serving_default"]
          for n in tasks}
    multi = {n: load(spec["paths"]["multi_output"][str(n)]).signatures["serving_default"]
             for n in tasks}
    per_task = {}
    for n in tasks:
        obj = load(spec["paths"]["per_task_sigs"][str(n)])
        per_task[n] = [obj.signatures[f"task_{t}"] for t in range(n)]
    separate = load(spec["paths"]["separate"]).signatures["serving_default"]
    load_seconds = time.perf_counter() - started

    pool = np.array(sample_texts(spec["texts"], seed=1), dtype=object)
    requests = {int(b): n_req for b, n_req in spec["batches"].items()}
    layout = {}
    for batch, n_req in requests.items():
        rng = np.random.default_rng(1000 + batch)
        layout[batch] = (rng.integers(0, len(pool), (n_req, batch)),
                         {n: np.random.default_rng(n * 7 + batch).integers(0, n, (n_req, batch))
                          .astype(np.int32) for n in tasks})
    # Every task signature the requests use answers once before timing, as a server's warmup
    # would: a signature's first call optimises its graph (backbone included).
    warm: dict[str, Any] = {}
    one = tf.constant(["warm up"])
    for n in tasks:
        used = sorted({int(t) for _, ids in layout.values() for t in ids[n].ravel()})
        started = time.perf_counter()
        for t in used:
            per_task[n][t](text=one)
        warm[str(n)] = {"signatures": len(used), "seconds": time.perf_counter() - started}
    result: dict[str, Any] = {"load_seconds_in_process": load_seconds,
                              "per_task_first_calls": warm, "batches": {}}
    gc.collect()
    for batch, n_req in requests.items():
        idx, ids = layout[batch]
        texts = [tf.constant(pool[i].tolist()) for i in idx]
        instances = [_Instance("backbone", None,
                               lambda i, f=backbone: f(text=texts[i])["features"].numpy())]
        task_io = [tf.constant(ids[tasks[0]][r]) for r in range(n_req)]
        instances.append(_Instance(
            "backbone_io", None,
            lambda i, f=backbone_io: f(text=texts[i], task_id=task_io[i])["scores"].numpy()))

        def grouped(n: int, sig_for: Callable[[int], Any]) -> tuple[Callable[[int], Any], float]:
            """One call per distinct task in the request, answers put back in order."""
            plans = []
            for r in range(n_req):
                plan = []
                for t in np.unique(ids[n][r]):
                    rows = np.nonzero(ids[n][r] == t)[0]
                    plan.append((sig_for(int(t)), tf.constant(pool[idx[r][rows]].tolist()), rows))
                plans.append(plan)
            width = 8

            def run(i: int) -> Any:
                if len(plans[i]) == 1:  # one task: nothing to reassemble
                    return plans[i][0][0](text=plans[i][0][1])["scores"].numpy()
                out = np.zeros((batch, width), np.float32)
                for sig, sub, rows in plans[i]:
                    s = sig(text=sub)["scores"].numpy()
                    out[rows, : s.shape[1]] = s
                return out

            return run, float(np.mean([len(p) for p in plans]))

        for n in tasks:
            task_t = [tf.constant(ids[n][r]) for r in range(n_req)]
            ar = np.arange(batch)
            instances.append(_Instance(
                "headswitch", n,
                lambda i, f=hs[n], tt=task_t: f(text=texts[i], task_id=tt[i])["scores"].numpy()))
            instances.append(_Instance(
                "multi_output", n,
                lambda i, f=multi[n], ii=ids[n]: f(text=texts[i])["scores"].numpy()[ar, ii[i]]))
            run, calls = grouped(n, lambda t, sigs=per_task[n]: sigs[t])
            instances.append(_Instance("per_task_sigs", n, run, calls_per_request=calls))
            if batch > 1:  # at batch 1, one model's latency does not depend on N
                run, calls = grouped(n, lambda t: separate)
                instances.append(_Instance("separate", n, run, calls_per_request=calls))
        if batch == 1:
            run, calls = grouped(tasks[0], lambda t: separate)
            instances.append(_Instance("separate", None, run, calls_per_request=calls))

        # Warm up, then size each instance's share of a round so every instance gets about the
        # same time: cheap contenders get more samples, the budget stays bounded.
        budget = spec["budget"][str(batch)]
        costs = []
        for inst in instances:
            inst.run(0)  # first call
            t0 = time.perf_counter()
            inst.run(1 % n_req)
            cost = time.perf_counter() - t0
            if cost < 0.05:  # cheap: warm up a little more and time a few calls
                for i in range(n_req):
                    inst.run(i)
                t0 = time.perf_counter()
                for i in range(3):
                    inst.run(i)
                cost = (time.perf_counter() - t0) / 3
            costs.append(cost)
        # Fewer rounds when even one request per contender per round would overrun the budget.
        rounds = max(3, min(spec["rounds"], int(budget / sum(costs))))
        for inst, cost in zip(instances, costs):
            inst.per_round = max(1, min(400, round(budget / (rounds * len(instances) * cost))))
        started = time.perf_counter()
        gc.collect()
        gc.disable()
        try:
            for r in range(rounds):
                shift = r % len(instances)
                for inst in instances[shift:] + instances[:shift]:
                    for j in range(inst.per_round):
                        i = (r * inst.per_round + j) % n_req
                        t0 = time.perf_counter()
                        inst.run(i)
                        inst.samples.append(time.perf_counter() - t0)
        finally:
            gc.enable()
        result["batches"][str(batch)] = {
            "seconds": time.perf_counter() - started, "rounds": rounds,
            "instances": [{"contender": x.contender, "tasks": x.n, "samples": x.samples,
                           "calls_per_request": x.calls_per_request} for x in instances]}
    return result


JOBS: dict[str, Callable[[dict], dict]] = {
    "import": _job_import, "examples": _job_examples, "export": _job_export,
    "contenders": _job_contenders, "load": _job_load, "latency": _job_latency,
}


# ----------------------------------------------------------------------------------------------
# The driver


_LOCK = threading.Lock()


@dataclass
class _Runner:
    work: Path
    in_process: bool  # build and latency jobs in this process (smoke test); loads always children
    log: Callable[[str], None]
    count: int = 0

    def job(self, name: str, child: bool | None = None, **spec: Any) -> tuple[dict, float, int]:
        """Run a job; return its result, wall seconds and the child's peak RSS (0 in-process)."""
        with _LOCK:
            self.count += 1
        spec_path = self.work / f"job-{self.count}-{name}.json"
        result_path = self.work / f"job-{self.count}-{name}.result.json"
        spec.update(job=name, result=str(result_path))
        spec_path.write_text(json.dumps(spec))
        use_child = (not self.in_process) if child is None else child
        started = time.perf_counter()
        rss = 0
        if use_child:
            rss = run_child(CHILD.format(bench=str(BENCH)), str(spec_path)).peak_rss_bytes
        else:
            child_main(str(spec_path))
        seconds = time.perf_counter() - started
        return json.loads(result_path.read_text()), seconds, rss


def saved_model_bytes(path: str | Path) -> int:
    """saved_model.pb + variables/ + assets/: what a server loads (assets.extra is metadata)."""
    path = Path(path)
    files = [path / "saved_model.pb", *(path / "variables").glob("*")]
    files += [f for f in (path / "assets").rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files if f.exists())


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _build(runner: _Runner, backbone: str, tasks: list[int], examples_dir: str | None,
           bert_models: int) -> dict:
    log = runner.log
    info: dict[str, Any] = {"timings": {}}
    work = runner.work / backbone
    work.mkdir(parents=True, exist_ok=True)
    if examples_dir:
        manifest = Path(examples_dir) / "manifest.yaml"
        import yaml

        listed = yaml.safe_load(manifest.read_text())["tasks"]
        ex = {"paths": [str(Path(examples_dir) / e["model"]) for e in listed],
              "manifest": str(manifest)}
        info["timings"]["examples"] = 0.0
        log(f"[{backbone}] reusing {len(ex['paths'])} example models from {examples_dir}")
    else:
        n = max(tasks) if backbone == "small" else min(bert_models, max(tasks))
        log(f"[{backbone}] building {n} example models ...")
        ex, secs, _ = runner.job("examples", n=n, out=str(work / "examples"), backbone=backbone)
        info["timings"]["examples"] = secs
    if backbone == "small" and len(ex["paths"]) < max(tasks):
        raise SystemExit(f"need {max(tasks)} small example models, found {len(ex['paths'])}")
    paths: dict[str, Any] = {}
    if backbone == "small":
        log(f"[small] export_models for N = {tasks} ...")
        exported, secs, rss = runner.job("export", paths=ex["paths"], manifest=ex["manifest"],
                                         tasks=tasks, out=str(work), heads=str(work / "heads.pkl"))
        info["timings"]["export_total"] = secs
        info["export_peak_rss"] = rss
        info["exports"] = exported["exports"]
        paths["headswitch"] = {n: e["path"] for n, e in exported["exports"].items()}
        info["headswitch_built_with"] = ("headswitch.export.export_models (public API, verified, "
                                         "with warmup records)")
    else:
        info["headswitch_built_with"] = ("headswitch.export._module.build_module + "
                                         "tf.saved_model.save(signatures=_module.signatures(...))"
                                         ": export_models' graph, without verification/warmup")
    log(f"[{backbone}] building the other contenders ...")
    built, secs, _ = runner.job("contenders", backbone=backbone, first_model=ex["paths"][0],
                                paths=ex["paths"], heads=str(work / "heads.pkl"), tasks=tasks,
                                out=str(work / "contenders"))
    info["timings"]["contenders_total"] = secs
    info["build_seconds"] = built["seconds"]
    info["real_heads"] = built["real_heads"]
    info["feature_width"] = built["feature_width"]
    info["heads_bytes"] = built["heads_bytes"]
    info["separate_head_bytes"] = built["separate_head_bytes"]
    for key, value in built["paths"].items():
        if isinstance(value, dict):
            paths.setdefault(key, {}).update(value)
        else:
            paths[key] = value
    info["paths"] = paths
    return info


def _measure_loads(runner: _Runner, builds: dict, tasks: list[int], repeats: int,
                   separate_max: int, jobs: int) -> dict:
    """A fresh child per measurement, every contender in turn (reversed order on the next
    repeat); best of ``repeats`` (a load longer than LONG_LOAD s is not repeated)."""
    plan = []
    for backbone, info in builds.items():
        paths = info["paths"]
        for single in SINGLE:
            plan.append(((backbone, single, None), paths[single], 1))
        for n in tasks:
            for contender in ("headswitch", "multi_output", "per_task_sigs"):
                plan.append(((backbone, contender, n), paths[contender][str(n)], 1))
        for copies in sorted({min(n, separate_max) for n in tasks}):
            plan.append(((backbone, "separate", copies), paths["separate"], copies))
    plan.append((("-", "import_only", None), "", 0))
    runs: dict[tuple, list[dict]] = {}

    def measure(item: tuple) -> None:
        key, path, copies = item
        if key[1] == "import_only":
            _, secs, rss = runner.job("import", child=True)
            runs.setdefault(key, []).append({"load_seconds": 0.0, "peak_rss": rss})
            return
        runner.log(f"  load {key[0]:5} {key[1]:14} " + (f"x{copies}" if key[1] == "separate"
                                                          else f"N={key[2]}"))
        res, secs, rss = runner.job("load", child=True, path=path, contender=key[1],
                                    copies=copies)
        runs.setdefault(key, []).append({**res, "peak_rss": rss, "copies": copies,
                                         "child_seconds": secs})

    for r in range(repeats):
        order = plan if r % 2 == 0 else plan[::-1]
        if r:
            order = [p for p in order if runs[p[0]][0]["load_seconds"] < LONG_LOAD]
        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(measure, order))
    best = {}
    for key, values in runs.items():
        best[key] = {
            "load_seconds": min(v["load_seconds"] for v in values),
            "first_call_seconds": min(v.get("first_call_seconds", 0.0) for v in values),
            "peak_rss": min(v["peak_rss"] for v in values),
            "rss_added": min(v.get("rss_added", 0) for v in values),
            "rss_before": min(v.get("rss_before", 0) for v in values),
            "copies": values[0].get("copies", 0),
            "repeats": len(values),
            "all_load_seconds": [v["load_seconds"] for v in values],
        }
    return best


def _summarise_latency(samples: list[float], batch: int, calls: float) -> dict:
    mean = sum(samples) / len(samples)
    return {"p50_ms": percentile(samples, 50) * 1e3, "p99_ms": percentile(samples, 99) * 1e3,
            "mean_ms": mean * 1e3, "throughput": batch / mean, "samples": len(samples),
            "calls_per_request": calls}


def _assemble(builds: dict, loads: dict, latency: dict, tasks: list[int],
              batches_of: dict[str, list[int]], separate_max: int) -> dict:
    out: dict[str, Any] = {}
    for backbone, info in builds.items():
        batches = batches_of[backbone]
        paths = info["paths"]
        bb_bytes = saved_model_bytes(paths["backbone"])
        lat = latency[backbone]["batches"]
        by_key: dict[tuple, dict] = {}
        for b in batches:
            for inst in lat[str(b)]["instances"]:
                by_key[(inst["contender"], inst["tasks"], b)] = _summarise_latency(
                    inst["samples"], b, inst["calls_per_request"])
        rows = []
        for contender in CONTENDERS:
            for n in ([None] if contender in SINGLE else tasks):
                row: dict[str, Any] = {"contender": contender, "tasks": n}
                if contender in SINGLE:
                    row["bytes"] = saved_model_bytes(paths[contender])
                elif contender == "separate":
                    one = saved_model_bytes(paths["separate"])
                    row["bytes"] = n * one
                    row["bytes_note"] = f"N x one model ({one} bytes)"
                else:
                    row["bytes"] = saved_model_bytes(paths[contender][str(n)])
                if contender == "headswitch":
                    row["bytes_with_assets_extra"] = _folder_bytes(Path(paths[contender][str(n)]))
                ld = loads[(backbone, contender, min(n, separate_max) if contender == "separate"
                            else n)]
                row["load_seconds"] = ld["load_seconds"] + ld["first_call_seconds"]
                row["load_only_seconds"] = ld["load_seconds"]
                row["first_call_seconds"] = ld["first_call_seconds"]
                row["peak_rss"] = ld["peak_rss"]
                row["rss_added"] = ld["rss_added"]
                row["load_repeats"] = ld["repeats"]
                if contender == "separate":
                    copies = ld["copies"]
                    row["load_measured_copies"] = copies
                    if copies < n:
                        scale = n / copies
                        row["load_seconds"] *= scale
                        row["load_only_seconds"] *= scale
                        row["first_call_seconds"] *= scale
                        row["peak_rss"] = max(ld["peak_rss"],
                                              ld["rss_before"] + ld["rss_added"] * scale)
                        row["rss_added"] = ld["rss_added"] * scale
                        row["extrapolated"] = (f"load time and RSS above the TF runtime measured "
                                               f"for {copies} models, scaled x{scale:g}")
                row["latency"] = {}
                for b in batches:
                    key_n = None if contender in SINGLE or (contender == "separate" and b == 1) \
                        else n
                    row["latency"][str(b)] = by_key[(contender, key_n, b)]
                rows.append(row)
        base = rows[0]
        for row in rows:
            row["ratio"] = {
                "bytes": row["bytes"] / base["bytes"],
                "load_seconds": row["load_seconds"] / base["load_seconds"],
                "peak_rss": row["peak_rss"] / base["peak_rss"],
                "rss_added": row["rss_added"] / max(1, base["rss_added"]),
            }
            for b in batches:
                mine, theirs = row["latency"][str(b)], base["latency"][str(b)]
                row["ratio"][f"p50_b{b}"] = mine["p50_ms"] / theirs["p50_ms"]
                row["ratio"][f"p99_b{b}"] = mine["p99_ms"] / theirs["p99_ms"]
                row["ratio"][f"throughput_b{b}"] = mine["throughput"] / theirs["throughput"]
        hs = {r["tasks"]: r for r in rows if r["contender"] == "headswitch"}
        io = next(r for r in rows if r["contender"] == "backbone_io")
        floors = []
        for n in tasks:
            for b in batches:
                value = hs[n]["ratio"][f"p50_b{b}"]
                floors.append({"floor": f"headswitch p50 / backbone p50, N={n}, batch {b}",
                               "value": value, "limit": 1.10, "ok": value <= 1.10})
        for b in batches:  # information: how much of that is the signature itself
            floors.append({"floor": f"(reference) backbone with headswitch's inputs/outputs p50 "
                                    f"/ backbone p50, batch {b}",
                           "value": io["ratio"][f"p50_b{b}"], "limit": 1.10,
                           "ok": io["ratio"][f"p50_b{b}"] <= 1.10, "reference": True})
            for n in tasks:
                value = hs[n]["latency"][str(b)]["p50_ms"] / io["latency"][str(b)]["p50_ms"]
                floors.append({"floor": f"(reference) headswitch p50 / backbone-with-its-"
                                        f"inputs/outputs p50, N={n}, batch {b}",
                               "value": value, "limit": 1.10, "ok": value <= 1.10,
                               "reference": True})
        lo, hi = min(tasks), max(tasks)
        for b in batches:
            value = hs[hi]["latency"][str(b)]["p50_ms"] / hs[lo]["latency"][str(b)]["p50_ms"]
            floors.append({"floor": f"headswitch p50 N={hi} / N={lo}, batch {b}",
                           "value": value, "limit": 1.10, "ok": value <= 1.10})
        for n in tasks:
            floor_bytes = bb_bytes + info["heads_bytes"][str(n)]
            value = hs[n]["bytes"] / floor_bytes
            floors.append({"floor": f"headswitch bytes / (backbone + heads), N={n}",
                           "value": value, "limit": 1.05, "ok": value <= 1.05,
                           "detail": f"{hs[n]['bytes']} / ({bb_bytes} + "
                                     f"{info['heads_bytes'][str(n)]})"})
        out[backbone] = {
            "headswitch_built_with": info["headswitch_built_with"],
            "real_heads": info["real_heads"], "feature_width": info["feature_width"],
            "heads_bytes": info["heads_bytes"],
            "build_timings": info["timings"], "build_seconds": info["build_seconds"],
            "exports": info.get("exports"),
            "batches": batches,
            "latency_process": {k: v for k, v in latency[backbone].items() if k != "batches"},
            "latency_phase": {str(b): {"seconds": lat[str(b)]["seconds"],
                                       "rounds": lat[str(b)]["rounds"]} for b in batches},
            "rows": rows, "floors": floors,
        }
    return out


# ----------------------------------------------------------------------------------------------
# Output


def _fmt_bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}" if n / size < 100 else f"{n / size:.0f} {unit}"
    return f"{n:.0f} B"


def _fmt_ms(ms: float) -> str:
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def _x(r: float) -> str:
    return f"{r:.2f}x" if r < 100 else f"{r:.0f}x"


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = [f"# headswitch vs the alternatives{' (quick mode)' if s['quick'] else ''}", "",
             f"Machine: {result['machine']}; TensorFlow {result['tensorflow']}. "
             f"Run took {result['total_seconds'] / 60:.1f} min.", "",
             "Latency: one client, sequential requests, p50/p99 per request; a request of batch "
             "b carries b texts with a uniformly random task each (the same texts and tasks for "
             "every contender). Contenders are measured interleaved in one process per backbone. "
             "Throughput = examples/s of that sequential client. x = ratio to the backbone alone "
             "(for throughput < 1 is slower). Size = saved_model.pb + variables/ (+ assets/). "
             f"Load = tf.saved_model.load + first answer, in a fresh process (best of "
             f"{s['load_repeats']}); peak RSS of that process (TF runtime alone: "
             f"{_fmt_bytes(result['import_only_peak_rss'])}, mostly a transient of importing "
             "it); 'RSS added' = resident memory after the load and first answer minus before "
             "the load, in that process.", ""]
    for backbone, data in result["backbones"].items():
        lines += [f"## {backbone} backbone", "",
                  f"headswitch built with: {data['headswitch_built_with']}. "
                  f"Heads: {data['real_heads']} read from example models"
                  + (", the rest random Dense weights of the example tasks' shapes"
                     if backbone == "bert" else "") + ".", ""]
        lines += ["| contender | N | size | x | load s | x | peak RSS | x | RSS added | x |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in data["rows"]:
            r = row["ratio"]
            star = " *" if row.get("extrapolated") else ""
            lines.append(
                f"| {TITLES[row['contender']]} | {row['tasks'] or '-'} | "
                f"{_fmt_bytes(row['bytes'])} | {_x(r['bytes'])} | "
                f"{row['load_seconds']:.2f}{star} | {_x(r['load_seconds'])} | "
                f"{_fmt_bytes(row['peak_rss'])}{star} | {_x(r['peak_rss'])} | "
                f"{_fmt_bytes(row['rss_added'])}{star} | {_x(r['rss_added'])} |")
        lines += ["", f"\\* extrapolated linearly from loading {s['separate_max']} models "
                  f"(N > {s['separate_max']})." if any(r.get("extrapolated") for r in data["rows"])
                  else "", ""]
        for b in data["batches"]:
            rounds = data["latency_phase"][str(b)]["rounds"]
            lines += [f"Batch {b} ({rounds} interleaved rounds):", "",
                      "| contender | N | p50 ms | x | p99 ms | x | examples/s | x | calls/req "
                      "| samples |", "|---|---|---|---|---|---|---|---|---|---|"]
            for row in data["rows"]:
                lt, r = row["latency"][str(b)], row["ratio"]
                lines.append(
                    f"| {TITLES[row['contender']]} | {row['tasks'] or '-'} | "
                    f"{_fmt_ms(lt['p50_ms'])} | {_x(r[f'p50_b{b}'])} | {_fmt_ms(lt['p99_ms'])} | "
                    f"{_x(r[f'p99_b{b}'])} | {lt['throughput']:.0f} | "
                    f"{r[f'throughput_b{b}']:.2f} | {lt['calls_per_request']:.1f} | "
                    f"{lt['samples']} |")
            lines.append("")
        lines += ["Floors:", "", "| floor | value | limit | met |", "|---|---|---|---|"]
        for f in data["floors"]:
            if not f.get("reference"):
                lines.append(f"| {f['floor']} | {f['value']:.3f} | <= {f['limit']:.2f} | "
                             f"{'yes' if f['ok'] else '**NO**'} |")
        lines += ["", "Where the latency over the backbone goes: the signature itself (two inputs, "
                  "five outputs, as the contract has them, with no task switch) and the task "
                  "switch on top of it:", "", "| ratio | value |", "|---|---|"]
        for f in data["floors"]:
            if f.get("reference"):
                lines.append(f"| {f['floor'].removeprefix('(reference) ')} | {f['value']:.3f} |")
        lines.append("")
    lines += ["## Notes", ""] + [f"- {n}" for n in result["notes"]] + [""]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    backbones = list(result["backbones"])
    panels = [("latency", 0), ("latency", 1), ("size", None)]
    fig, axes = plt.subplots(len(panels), len(backbones), squeeze=False,
                             figsize=(5.5 * len(backbones), 3.6 * len(panels)))
    styles = {"backbone": ("k", "--", ""), "backbone_io": ("tab:gray", ":", ""),
              "headswitch": ("tab:red", "-", "o"),
              "multi_output": ("tab:blue", "-", "s"), "per_task_sigs": ("tab:green", "-", "^"),
              "separate": ("tab:purple", "-", "v")}
    tasks = result["settings"]["tasks"]
    for col, backbone in enumerate(backbones):
        rows = result["backbones"][backbone]["rows"]
        for line, (kind, which) in enumerate(panels):
            ax = axes[line][col]
            b = result["backbones"][backbone]["batches"][which] if kind == "latency" else None
            spread = []
            for contender in CONTENDERS:
                mine = [r for r in rows if r["contender"] == contender]
                if contender in SINGLE:
                    mine = mine * len(tasks)
                ys = [r["latency"][str(b)]["p50_ms"] if kind == "latency" else r["bytes"] / 2**20
                      for r in mine]
                color, style, marker = styles[contender]
                ax.plot(tasks, ys, color=color, linestyle=style, marker=marker,
                        label=TITLES[contender])
                spread += ys
            ax.set_xscale("log")
            ax.set_xticks(tasks, [str(t) for t in tasks])
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            if max(spread) / min(spread) > 5:  # log y only where values span a wide range
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
                ax.yaxis.set_minor_formatter(ticker.FuncFormatter(
                    lambda v, _: f"{v:g}" if f"{v:.1e}"[0] in "25" else ""))
            else:
                ax.set_ylim(bottom=0)
            ax.set_xlabel("tasks N")
            ax.set_ylabel("p50 latency (ms)" if kind == "latency" else "size on disk (MiB)")
            ax.set_title(f"{backbone} backbone: " + (f"p50 latency, batch {b}"
                                                     if kind == "latency" else "size on disk"))
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"headswitch vs alternatives ({result['machine']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="N in {10, 50}, short latency budgets, one load repeat, 4 bert example "
                   "models, separate models loaded up to 20 copies, 2 load processes at once "
                   "(< 3 min)")
    p.add_argument("--tasks", type=int, nargs="+", help="task counts (default 10 200 1000)")
    p.add_argument("--backbones", nargs="+", choices=BACKBONES, default=list(BACKBONES))
    p.add_argument("--budget-scale", type=float, default=1.0,
                   help="scale the latency time budgets")
    p.add_argument("--rounds", type=int)
    p.add_argument("--load-repeats", type=int)
    p.add_argument("--small-examples", help="reuse these small example models (manifest.yaml "
                   "and .keras files) instead of building them")
    p.add_argument("--results", default=str(BENCH / "results"))
    p.add_argument("--work", help="work folder (kept); default: a temporary folder, removed")
    p.add_argument("--in-process", action="store_true",
                   help="build and time in this process (load/RSS still in children); for tests")
    args = p.parse_args(argv)

    preset = dict(QUICK if args.quick else FULL)
    tasks = sorted(args.tasks or preset["tasks"])
    batches = {b: sorted(preset["batches"][b]) for b in args.backbones}
    rounds = args.rounds or preset["rounds"]
    repeats = args.load_repeats or preset["load_repeats"]
    started = time.perf_counter()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="headswitch-compare-"))
    work.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {msg}", flush=True)

    runner = _Runner(work, args.in_process, log)
    phases: dict[str, float] = {}
    try:
        t = time.perf_counter()
        # The backbones are built at the same time (in child processes): build times are for
        # information only, they are not among the measurements.
        with ThreadPoolExecutor(1 if args.in_process else len(args.backbones)) as pool:
            futures = {b: pool.submit(_build, runner, b, tasks,
                                      args.small_examples if b == "small" else None,
                                      preset["bert_models"]) for b in args.backbones}
            builds = {b: f.result() for b, f in futures.items()}
        phases["build"] = time.perf_counter() - t
        t = time.perf_counter()
        log("load time and memory, one fresh process each ...")
        loads = _measure_loads(runner, builds, tasks, repeats, preset["separate_max"],
                               preset["load_jobs"])
        phases["load"] = time.perf_counter() - t
        latency = {}
        for b in args.backbones:
            t = time.perf_counter()
            log(f"[{b}] latency, every contender interleaved ...")
            budget = {str(batch): preset["budget"][(b, batch)] * args.budget_scale
                      for batch in batches[b]}
            latency[b], secs, rss = runner.job(
                "latency", paths=builds[b]["paths"], tasks=tasks, batches=preset["batches"][b],
                rounds=rounds, budget=budget, texts=512)
            latency[b]["process_peak_rss"] = rss
            phases[f"latency_{b}"] = time.perf_counter() - t
        backbones = _assemble(builds, loads, latency, tasks, batches, preset["separate_max"])
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    from importlib.metadata import version

    result = {
        "machine": machine(),
        "tensorflow": version("tensorflow"),
        "settings": {"quick": args.quick, "tasks": tasks, "batches": batches, "rounds": rounds,
                     "load_repeats": repeats, "backbones": args.backbones,
                     "load_jobs": preset["load_jobs"], "separate_max": preset["separate_max"],
                     "bert_example_models": preset["bert_models"],
                     "budget_seconds": {f"{k[0]}-b{k[1]}": v * args.budget_scale
                                        for k, v in preset["budget"].items()}},
        "import_only_peak_rss": loads[("-", "import_only", None)]["peak_rss"],
        "phase_seconds": phases,
        "total_seconds": time.perf_counter() - started,
        "backbones": backbones,
        "notes": notes(preset),
    }
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    write_json(results / "compare.json", result)
    (results / "compare.md").write_text(markdown(result))
    plot(result, results / "compare.png")
    print(markdown(result))
    log(f"wrote {results / 'compare.json'}, compare.md, compare.png")
    return 0


def notes(preset: dict) -> list[str]:
    m, cap = preset["bert_models"], preset["separate_max"]
    out = [
        "small backbone: headswitch is the public export_models output (one export per N). The "
        "other contenders use the backbone of the first .keras file and the heads export_models "
        "read (captured from its largest export), so every contender computes the same "
        "functions.",
        f"bert backbone: {m} example .keras files are built (a bert .keras is ~21 MB, so not N of "
        "them); their heads are read with the exporter's head analysis and the other tasks get "
        "random Dense weights of their example task's shape. headswitch is build_module + "
        "tf.saved_model.save with its signatures (export_models' graph without the verification "
        "and warmup records).",
        "multi_output: the single-Dense heads are one concatenated matmul; `language` (Dense(16, "
        "relu) -> Dense(4)) runs its two Dense steps; the scores are gathered into [b, N, K] with "
        "each task's activation; the caller picks its task's row (numpy indexing, timed).",
        "per_task_sigs: the backbone is one tf.function called by every signature (stored once); "
        "a batch mixing k tasks is k calls, made one after the other, answers reassembled in "
        "numpy (timed). Every signature answers once before timing (warmup).",
        "separate: latency is one model's (backbone + head of task 0), called once per distinct "
        "task of the request, like k different models of identical cost; size = N x that model; "
        "load time/RSS measured by loading that SavedModel N times in one process (each load has "
        f"its own variables and functions), up to N={cap}, and scaled linearly above.",
        "Input tensors are built before timing for every contender; timing covers the signature "
        "call(s), .numpy() of the scores and the caller's picking/reassembly.",
        "The two backbones' builds run at the same time (build times are information only).",
    ]
    if preset["load_jobs"] > 1:
        out.append(f"quick mode: {preset['load_jobs']} load/RSS processes run at once, so load "
                   "times are noisier than in the full run.")
    return out


if __name__ == "__main__":
    sys.exit(main())
