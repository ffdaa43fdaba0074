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

Latency is measured on three paths, each in its own child process with every contender and
every N loaded and timed interleaved round by round (same texts, same tasks):

  cpp         TF Serving's path: each SavedModel loaded by TensorFlow's C++ loader and run by
              ``Session::Run`` with the SignatureDef's tensor names (``_cpath.CSession``, the C
              API of the wheel's libtensorflow_cc), inputs built once, every output of the
              signature fetched (as TF Serving does) and not read back; oneDNN off
              (TF_ENABLE_ONEDNN_OPTS=0).
  cpp_onednn  the same with the wheel's default oneDNN setting (on for x86 CPUs with
              AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX; the JSON records what it was). The
              headline column: TF Serving's release image is built with oneDNN
              (``--define=build_with_onednn_v2=true`` in its .bazelrc) and has the same default.
  eager       the loaded signature called from Python (``tf.saved_model.load``), outputs read
              back with ``.numpy()``: what an in-process Python user pays; secondary.

Building, sizes and load/memory (one fresh child process per measurement, via ``run_child``)
come first. Writes work/bench/ (--save: bench/results/) compare.{json,md,png}; the floors of issue
11 are computed
from the C++ path and printed with the value each one measured.
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
import _measure  # noqa: E402

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
# Latency paths: (column title, environment of the child process that measures it).
PATHS: dict[str, tuple[str, dict[str, str]]] = {
    "cpp": ("C++ session, oneDNN off", {"TF_ENABLE_ONEDNN_OPTS": "0"}),
    "cpp_onednn": ("C++ session, wheel default oneDNN", {}),
    "eager": ("Python signature call", {}),
}
CPP_PATHS = ("cpp", "cpp_onednn")
SECONDARY_BUDGET = 0.5  # the latency budget of the paths other than the headline, relative
# Example models built for the bert backbone: the first 7 tasks cover every head shape the
# example tasks use (softmax/sigmoid/linear single Dense, a Dense(16, relu) hidden layer).
BERT_REAL_MODELS = 7

# budget: seconds of timed requests per (backbone, batch), shared evenly by the contenders;
# separate_max: separate models are loaded N times up to this N, extrapolated above;
# load_jobs: load/RSS child processes run at once (quick mode only: 2, noisier load times).
# batches: {backbone: {batch size: distinct prepared requests}}. Few bert requests: each task
# signature's first call costs ~0.2 s (its graph, backbone included, is optimised then), and
# every signature the requests use is called once before timing.
FULL: dict[str, Any] = {
    "tasks": [10, 200, 1000], "rounds": 12, "load_repeats": 2, "load_jobs": 1,
    "batches": {"small": {1: 16, 64: 16}, "bert": {1: 8, 64: 3}},
    "budget": {("small", 1): 30, ("small", 64): 30, ("bert", 1): 50, ("bert", 64): 120},
    "separate_max": 200, "bert_models": BERT_REAL_MODELS}
QUICK: dict[str, Any] = {
    "tasks": [10, 50], "rounds": 4, "load_repeats": 1, "load_jobs": 2,
    "batches": {"small": {1: 6, 64: 6}, "bert": {1: 4, 16: 2}},
    "budget": {("small", 1): 4, ("small", 64): 4, ("bert", 1): 5, ("bert", 16): 6},
    "separate_max": 10, "bert_models": 4}
LONG_LOAD = 5.0  # seconds: a load this long is not repeated (it averages over its own length)

CHILD = "import sys; sys.path.insert(0, {bench!r}); import compare; compare.child_main(sys.argv[1])"


# ----------------------------------------------------------------------------------------------
# Jobs: each runs in a child process (``_measure.run_child``) or, for the smoke test, in this
# process.


def _tf() -> Any:
    from headswitch._quiet import import_tensorflow

    return import_tensorflow()


def child_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    result = JOBS[spec["job"]](spec)
    Path(spec["result"]).write_text(json.dumps(result))


def _job_import(spec: dict[str, Any]) -> dict[str, Any]:
    _tf()
    return {}


def _job_examples(spec: dict[str, Any]) -> dict[str, Any]:
    _tf()
    from headswitch.examples import build_example_models

    started = time.perf_counter()
    built = build_example_models(spec["n"], spec["out"], backbone=spec["backbone"])
    return {"paths": [str(p) for p in built.paths], "manifest": str(built.manifest),
            "seconds": time.perf_counter() - started}


def _head_record(entry: Any) -> dict[str, Any]:
    from headswitch.export._heads import DenseChainHead

    if not isinstance(entry.head, DenseChainHead):
        raise TypeError(f"task {entry.name}: the comparison needs Dense-chain heads")
    return {"name": entry.name, "labels": list(entry.labels),
            "steps": [(s.kernel, s.bias, s.activation) for s in entry.head.steps]}


def _job_export(spec: dict[str, Any]) -> dict[str, Any]:
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

    from headswitch.export._keras import KerasModel

    model = keras.models.load_model(path, compile=False)
    return model, KerasModel.of(model).up_to(model.get_layer("backbone")).model


def _bert_heads(spec: dict[str, Any], width: int) -> tuple[list[dict[str, Any]], int]:
    return synthesized_heads(spec["paths"], max(spec["tasks"]), width)


def synthesized_heads(paths: list[str], n_max: int, width: int) -> tuple[list[dict[str, Any]], int]:
    """The real heads of a few example models, then random Dense heads of the shapes the
    remaining example tasks have (``task_specs``)."""
    import keras
    import numpy as np

    from headswitch.examples._tasks import task_specs
    from headswitch.export._heads import TaskEntry, analyse_head
    from headswitch.export._keras import KerasModel

    specs = task_specs(n_max)
    heads = []
    for i, path in enumerate(paths[:n_max]):
        model = keras.models.load_model(path, compile=False)
        head = analyse_head(KerasModel.of(model).head(model.get_layer("backbone")))
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
    from headswitch.export._stacking import activation

    return activation(tf, name, z)


def _save_backbone(tf: Any, backbone: Any, path: Path) -> None:
    from headswitch.export._graph import saved_state

    module = tf.Module()
    module.variables_, module.resources_ = saved_state(backbone)
    fn = tf.function(lambda text: {"features": backbone(text, training=False)},
                     input_signature=[_text_spec(tf)])
    tf.saved_model.save(module, str(path), signatures={"serving_default": fn})


def backbone_io_fn(tf: Any, backbone: Any, width: int) -> Callable[[Any, Any], dict[str, Any]]:
    """The backbone behind serving_default's inputs and outputs (no task switch): scores
    float32[b, width], top_label string[b], top_score float32[b], error string[b], each from
    one cheap op."""
    from headswitch.contract import (
        OUTPUT_ERROR,
        OUTPUT_SCORES,
        OUTPUT_TOP_LABEL,
        OUTPUT_TOP_SCORE,
    )

    labels = tf.constant([f"label {i}" for i in range(width)])
    errors = tf.constant([""])

    def serve(text: Any, task_id: Any) -> dict[str, Any]:
        features = backbone(text, training=False)
        first = tf.zeros_like(task_id)
        return {OUTPUT_SCORES: features[:, :width], OUTPUT_TOP_LABEL: tf.gather(labels, first),
                OUTPUT_TOP_SCORE: features[:, 0], OUTPUT_ERROR: tf.gather(errors, first)}

    return serve


def _save_backbone_io(tf: Any, backbone: Any, width: int, path: Path) -> None:
    from headswitch.export._graph import saved_state

    module = tf.Module()
    module.variables_, module.resources_ = saved_state(backbone)
    fn = tf.function(backbone_io_fn(tf, backbone, width), input_signature=[
        _text_spec(tf), tf.TensorSpec([None], tf.int32, name="task_id")])
    tf.saved_model.save(module, str(path), signatures={"serving_default": fn})


def _save_multi_output(tf: Any, backbone: Any, heads: list[dict[str, Any]], path: Path) -> None:
    """One signature, every head. The single-Dense heads are ONE concatenated matmul
    [features, sum of widths]; heads with a hidden layer run their own Dense steps. The logits
    are laid out as [b, N, K] (K = widest head, padding masked) and each task's activation is
    applied; the caller picks its task's row."""
    import numpy as np

    from headswitch.export._graph import saved_state

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
    module.variables_, module.resources_ = saved_state(backbone)
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


def _save_per_task(tf: Any, backbone: Any, heads: list[dict[str, Any]], path: Path,
                   names: list[str] | None = None) -> None:
    """One signature per task. The backbone is one tf.function every signature calls, so the
    graph holds it once (tracing it per signature would store N copies)."""
    from headswitch.export._graph import saved_state

    module = tf.Module()
    module.variables_, module.resources_ = saved_state(backbone)
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


def _save_headswitch(tf: Any, backbone: Any, heads: list[dict[str, Any]], path: Path) -> None:
    """What export_models writes, minus verification, warmup records and assets.extra."""
    from headswitch.export._heads import DenseChainHead, DenseStep, TaskEntry
    from headswitch.export._module import build_module, signatures

    entries = [TaskEntry(t, h["name"], h["labels"],
                         DenseChainHead([DenseStep(k, b, a) for k, b, a in h["steps"]]))
               for t, h in enumerate(heads)]
    module = build_module(backbone, entries)
    tf.saved_model.save(module, str(path), signatures=signatures(module))


def _heads_bytes(heads: list[dict[str, Any]]) -> int:
    return int(sum(k.nbytes + b.nbytes for h in heads for k, b, _ in h["steps"]))


def _job_contenders(spec: dict[str, Any]) -> dict[str, Any]:
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


def _job_load(spec: dict[str, Any]) -> dict[str, Any]:
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


@dataclass
class _Layout:
    """The requests every contender answers, on every path: request r of batch b has the texts
    ``pool[texts[b][r]]`` and, for N tasks, the task ids ``ids[b][N][r]``."""

    pool: Any
    texts: dict[int, Any]
    ids: dict[int, dict[int, Any]]

    def text(self, batch: int, r: int, rows: Any = None) -> Any:
        idx = self.texts[batch][r]
        return self.pool[idx if rows is None else idx[rows]]

    def groups(self, batch: int, n: int, r: int) -> list[tuple[int, Any]]:
        """(task, rows of the request) for each distinct task of request r."""
        import numpy as np

        ids = self.ids[batch][n][r]
        return [(int(t), np.nonzero(ids == t)[0]) for t in np.unique(ids)]


def _layout(spec: dict[str, Any]) -> _Layout:
    import numpy as np

    from headswitch.examples import sample_texts

    tasks = [int(n) for n in spec["tasks"]]
    pool = np.array(sample_texts(spec["texts"], seed=1), dtype=object)
    texts, ids = {}, {}
    for b, n_req in spec["batches"].items():
        batch = int(b)
        rng = np.random.default_rng(1000 + batch)
        texts[batch] = rng.integers(0, len(pool), (n_req, batch))
        ids[batch] = {n: np.random.default_rng(n * 7 + batch).integers(0, n, (n_req, batch))
                      .astype(np.int32) for n in tasks}
    return _Layout(pool, texts, ids)


def _timed(instances: list[_Instance], n_req: int, budget: float,
           max_rounds: int) -> dict[str, Any]:
    """Warm every instance up, then time them round-robin (the order rotates every round), each
    instance getting about the same share of ``budget`` seconds: cheap contenders get more
    samples, the run stays bounded."""
    costs = []
    for inst in instances:
        inst.run(0)  # first call
        t0 = time.perf_counter()
        inst.run(1 % n_req)
        cost = time.perf_counter() - t0
        if cost < 0.05:  # cheap: warm up a little more; the median of a few calls, so that
            for i in range(n_req):  # one stall on a busy machine does not size the share
                inst.run(i)
            times = []
            for i in range(5):
                t0 = time.perf_counter()
                inst.run(i % n_req)
                times.append(time.perf_counter() - t0)
            cost = sorted(times)[2]
        costs.append(cost)
    # Fewer rounds when even one request per contender per round would overrun the budget.
    rounds = max(3, min(max_rounds, int(budget / sum(costs))))
    for inst, cost in zip(instances, costs):
        inst.per_round = max(1, min(2000, round(budget / (rounds * len(instances) * cost))))
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
    return {"seconds": time.perf_counter() - started, "rounds": rounds,
            "instances": [{"contender": x.contender, "tasks": x.n, "samples": x.samples,
                           "calls_per_request": x.calls_per_request} for x in instances]}


def _eager(signature: Callable[..., Any], output: str, pick: tuple[Any, Any] | None = None,
           **feeds: list[Any]) -> Callable[[int], Any]:
    """Request i: call ``signature`` with each feed's i-th tensor, read ``output`` back (and
    pick each example's row ``pick[1][i]``, as a caller of the multi-output model does)."""
    def run(i: int) -> Any:
        out = signature(**{k: v[i] for k, v in feeds.items()})[output].numpy()
        return out if pick is None else out[pick[0], pick[1][i]]

    return run


def _job_latency(spec: dict[str, Any]) -> dict[str, Any]:
    """Eager path: every contender and N of one backbone loaded in this process with
    ``tf.saved_model.load``, called from Python, timed round-robin."""
    tf = _tf()
    import numpy as np

    load_average_start = _measure.load_average()
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

    lay = _layout(spec)
    requests = {int(b): n_req for b, n_req in spec["batches"].items()}
    # Every task signature the requests use answers once before timing, as a server's warmup
    # would: a signature's first call optimises its graph (backbone included).
    warm: dict[str, Any] = {}
    one = tf.constant(["warm up"])
    for n in tasks:
        used = sorted({int(t) for b in requests for t in lay.ids[b][n].ravel()})
        started = time.perf_counter()
        for t in used:
            per_task[n][t](text=one)
        warm[str(n)] = {"signatures": len(used), "seconds": time.perf_counter() - started}
    result: dict[str, Any] = {"path": "eager", "onednn": _measure.onednn_enabled(),
                              "load_seconds_in_process": load_seconds,
                              "per_task_first_calls": warm, "batches": {}}

    def grouped(batch: int, n_req: int, n: int, sig_for: Callable[[int], Any]
                ) -> tuple[Callable[[int], Any], float]:
        """One call per distinct task in the request, answers put back in order."""
        plans = [[(sig_for(t), tf.constant(lay.text(batch, r, rows).tolist()), rows)
                  for t, rows in lay.groups(batch, n, r)] for r in range(n_req)]
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

    gc.collect()
    for batch, n_req in requests.items():
        texts = [tf.constant(lay.text(batch, r).tolist()) for r in range(n_req)]
        task_io = [tf.constant(lay.ids[batch][tasks[0]][r]) for r in range(n_req)]
        every_row = np.arange(batch)
        instances = [_Instance("backbone", None, _eager(backbone, "features", text=texts)),
                     _Instance("backbone_io", None, _eager(backbone_io, "scores", text=texts,
                                                           task_id=task_io))]
        for n in tasks:
            ids = lay.ids[batch][n]
            task_t = [tf.constant(ids[r]) for r in range(n_req)]
            instances.append(_Instance("headswitch", n, _eager(hs[n], "scores", text=texts,
                                                               task_id=task_t)))
            instances.append(_Instance("multi_output", n, _eager(
                multi[n], "scores", pick=(every_row, ids), text=texts)))
            run, calls = grouped(batch, n_req, n, per_task[n].__getitem__)
            instances.append(_Instance("per_task_sigs", n, run, calls_per_request=calls))
            if batch > 1:  # at batch 1, one model's latency does not depend on N
                run, calls = grouped(batch, n_req, n, lambda t: separate)
                instances.append(_Instance("separate", n, run, calls_per_request=calls))
        if batch == 1:
            run, calls = grouped(batch, n_req, tasks[0], lambda t: separate)
            instances.append(_Instance("separate", None, run, calls_per_request=calls))
        result["batches"][str(batch)] = _timed(instances, n_req, spec["budget"][str(batch)],
                                               spec["rounds"])
    result["load_average_start"] = load_average_start
    result["load_average_end"] = _measure.load_average()
    return result


def _job_cpath(spec: dict[str, Any]) -> dict[str, Any]:
    """TF Serving's path: every contender and N of one backbone loaded with TensorFlow's C++
    SavedModel loader in this process and run by ``Session::Run`` (``_cpath.CSession``),
    timed round-robin. Inputs are TF_Tensors built once per request; every output of the
    signature is fetched, as TF Serving fetches them, and freed unread."""
    _tf()
    from _cpath import CSession, Prepared

    load_average_start = _measure.load_average()
    sessions: list[CSession] = []

    def load(path: str) -> CSession:
        session = CSession(path)
        sessions.append(session)
        return session

    started = time.perf_counter()
    tasks = [int(n) for n in spec["tasks"]]
    paths = spec["paths"]
    backbone, backbone_io = load(paths["backbone"]), load(paths["backbone_io"])
    hs = {n: load(paths["headswitch"][str(n)]) for n in tasks}
    multi = {n: load(paths["multi_output"][str(n)]) for n in tasks}
    per_task = {n: load(paths["per_task_sigs"][str(n)]) for n in tasks}
    separate = load(paths["separate"])
    load_seconds = time.perf_counter() - started
    lay = _layout(spec)
    requests = {int(b): n_req for b, n_req in spec["batches"].items()}
    result: dict[str, Any] = {"path": spec["path"], "onednn": _measure.onednn_enabled(),
                              "load_seconds_in_process": load_seconds,
                              "per_task_first_calls": {}, "batches": {}}
    made: list[tuple[CSession, Prepared]] = []  # input tensors, freed after each batch size

    def single(session: CSession, batch: int, n_req: int, **ids: Any) -> Callable[[int], Any]:
        prepared = [session.prepare("serving_default", {
            "text": lay.text(batch, r), **{k: v[r] for k, v in ids.items()}})
            for r in range(n_req)]
        made.extend((session, x) for x in prepared)
        return lambda i: session.run(prepared[i])

    def grouped(contender: str, batch: int, n_req: int, n: int, session: CSession,
                signature: Callable[[int], str]) -> tuple[Callable[[int], Any], float]:
        """One run per distinct task of the request, one after the other."""
        plans: list[list[Prepared]] = [
            [session.prepare(signature(t), {"text": lay.text(batch, r, rows)})
             for t, rows in lay.groups(batch, n, r)] for r in range(n_req)]
        made.extend((session, x) for plan in plans for x in plan)
        # Each signature's first run builds its executor (TF Serving's warmup does it).
        t0 = time.perf_counter()
        for plan in plans:
            for prepared in plan:
                session.run(prepared)
        result["per_task_first_calls"][f"{contender}-{n}-b{batch}"] = {
            "signatures": len({x.signature for plan in plans for x in plan}),
            "seconds": time.perf_counter() - t0}

        def run(i: int) -> None:
            for prepared in plans[i]:
                session.run(prepared)

        return run, sum(len(p) for p in plans) / n_req

    try:
        for batch, n_req in requests.items():
            instances = [
                _Instance("backbone", None, single(backbone, batch, n_req)),
                _Instance("backbone_io", None, single(backbone_io, batch, n_req,
                                                      task_id=lay.ids[batch][tasks[0]]))]
            for n in tasks:
                instances.append(_Instance("headswitch", n, single(
                    hs[n], batch, n_req, task_id=lay.ids[batch][n])))
                instances.append(_Instance("multi_output", n, single(multi[n], batch, n_req)))
                run, calls = grouped("per_task_sigs", batch, n_req, n, per_task[n],
                                     lambda t: f"task_{t}")
                instances.append(_Instance("per_task_sigs", n, run, calls_per_request=calls))
                if batch > 1:  # at batch 1, one model's latency does not depend on N
                    run, calls = grouped("separate", batch, n_req, n, separate,
                                         lambda t: "serving_default")
                    instances.append(_Instance("separate", n, run, calls_per_request=calls))
            if batch == 1:
                run, calls = grouped("separate", batch, n_req, tasks[0], separate,
                                     lambda t: "serving_default")
                instances.append(_Instance("separate", None, run, calls_per_request=calls))
            result["batches"][str(batch)] = _timed(instances, n_req, spec["budget"][str(batch)],
                                                   spec["rounds"])
            for session, prepared in made:
                session.release(prepared)
            made.clear()
    finally:
        for session in sessions:
            session.close()
    result["load_average_start"] = load_average_start
    result["load_average_end"] = _measure.load_average()
    return result


JOBS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "import": _job_import, "examples": _job_examples, "export": _job_export,
    "contenders": _job_contenders, "load": _job_load, "latency": _job_latency,
    "cpath": _job_cpath,
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

    def job(self, name: str, child: bool | None = None, env: dict[str, str] | None = None,
            **spec: Any) -> tuple[dict[str, Any], float, int]:
        """Run a job (in a child process with ``env`` added to its environment, or in this
        one); return its result, wall seconds and the child's peak RSS (0 in-process)."""
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
            rss = _measure.run_child(CHILD.format(bench=str(BENCH)), str(spec_path),
                            env=env).peak_rss_bytes
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
           bert_models: int) -> dict[str, Any]:
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


def _measure_loads(runner: _Runner, builds: dict[str, Any], tasks: list[int], repeats: int,
                   separate_max: int, jobs: int) -> dict[tuple[Any, ...], dict[str, Any]]:
    """A fresh child per measurement, every contender in turn (reversed order on the next
    repeat); best of ``repeats`` (a load longer than LONG_LOAD s is not repeated)."""
    plan: list[tuple[tuple[Any, ...], str, int]] = []
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
    runs: dict[tuple[Any, ...], list[dict[str, Any]]] = {}

    def measure(item: tuple[tuple[Any, ...], str, int]) -> None:
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
    best: dict[tuple[Any, ...], dict[str, Any]] = {}
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


def _summarise_latency(samples: list[float], batch: int, calls: float) -> dict[str, Any]:
    mean = sum(samples) / len(samples)
    return {"p50_ms": _measure.percentile(samples, 50) * 1e3,
            "p99_ms": _measure.percentile(samples, 99) * 1e3,
            "mean_ms": mean * 1e3, "throughput": batch / mean, "samples": len(samples),
            "calls_per_request": calls}


def _floor(name: str, limit: float, values: dict[str, float], headline: str,
           strict: bool = False, reference: bool = False, **extra: Any) -> dict[str, Any]:
    """One floor: its value on each path (met or missed), and the headline path's."""
    def met(v: float) -> bool:
        return v < limit if strict else v <= limit

    by_path = {p: {"value": v, "ok": met(v)} for p, v in values.items()}
    main = by_path.get(headline) or next(iter(by_path.values()))
    return {"floor": name, "limit": limit, "op": "<" if strict else "<=", "by_path": by_path,
            "value": main["value"], "ok": main["ok"], "reference": reference, **extra}


def _floors(backbone: str, rows: list[dict[str, Any]], tasks: list[int], batches: list[int],
            headline: str, size: dict[int, tuple[int, int]]) -> list[dict[str, Any]]:
    """Issue 11's floors on the C++ paths (p50), and the size floor."""
    paths = [p for p in CPP_PATHS if p in rows[0]["latency"]]
    one = {(r["contender"], r["tasks"]): r for r in rows}

    def p50(contender: str, n: int | None, b: int, path: str) -> float:
        return float(one[(contender, n)]["latency"][path][str(b)]["p50_ms"])

    def ratio(a: tuple[str, int | None], over: tuple[str, int | None], b: int) -> dict[str, float]:
        return {p: p50(*a, b, p) / p50(*over, b, p) for p in paths}

    small_b, big_b = min(batches), max(batches)
    out = []
    limits = {small_b: 1.40, big_b: 1.25} if backbone == "small" else {small_b: 1.05,
                                                                        big_b: 1.05}
    for b in batches:
        for n in tasks:
            out.append(_floor(f"headswitch / backbone alone, N={n}, batch {b}", limits[b],
                              ratio(("headswitch", n), ("backbone", None), b), headline))
    for b in batches:
        for n in tasks:
            out.append(_floor(f"headswitch / all-heads model, N={n}, batch {b}", 1.00,
                              ratio(("headswitch", n), ("multi_output", n), b), headline,
                              strict=True, reference=n < 10))
    for n in tasks:
        out.append(_floor(f"headswitch / one-signature-per-task model, N={n}, batch {small_b} "
                          "(one task per request)", 1.25,
                          ratio(("headswitch", n), ("per_task_sigs", n), small_b), headline))
    lo, hi = min(tasks), max(tasks)
    if hi > lo:
        for b in batches:
            out.append(_floor(f"headswitch N={hi} / N={lo} (flat in N), batch {b}", 1.10,
                              ratio(("headswitch", hi), ("headswitch", lo), b), headline))
    # The size floor is at N=200 (the largest N when 200 is not measured); others are shown.
    size_n = 200 if 200 in tasks else max(tasks)
    for n in tasks:
        hs_bytes, floor_bytes = size[n]
        out.append(_floor(f"headswitch bytes / (backbone + heads), N={n}", 1.05,
                          {"size": hs_bytes / floor_bytes}, "size", reference=n != size_n,
                          detail=f"{hs_bytes} / {floor_bytes}"))
    for b in batches:  # information: how much of the cost is the signature itself
        out.append(_floor(f"backbone behind headswitch's inputs/outputs / backbone alone, "
                          f"batch {b}", 1.10, ratio(("backbone_io", None), ("backbone", None), b),
                          headline, reference=True))
        for n in tasks:
            out.append(_floor(f"headswitch / backbone behind its inputs/outputs, N={n}, "
                              f"batch {b}", 1.10,
                              ratio(("headswitch", n), ("backbone_io", None), b), headline,
                              reference=True))
    return out


def _assemble(builds: dict[str, Any], loads: dict[tuple[Any, ...], dict[str, Any]],
              latency: dict[str, Any], tasks: list[int], batches_of: dict[str, list[int]],
              separate_max: int, headline: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for backbone, info in builds.items():
        batches = batches_of[backbone]
        paths = info["paths"]
        bb_bytes = saved_model_bytes(paths["backbone"])
        by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
        for path, job in latency[backbone].items():
            for b in batches:
                for inst in job["batches"][str(b)]["instances"]:
                    by_key[(path, inst["contender"], inst["tasks"], b)] = _summarise_latency(
                        inst["samples"], b, inst["calls_per_request"])
        rows = []
        for contender in CONTENDERS:
            for n in ([None] if contender in SINGLE else tasks):
                row: dict[str, Any] = {"contender": contender, "tasks": n}
                if contender in SINGLE:
                    row["bytes"] = saved_model_bytes(paths[contender])
                elif contender == "separate":
                    assert n is not None
                    one = saved_model_bytes(paths["separate"])
                    row["bytes"] = n * one
                    row["bytes_note"] = f"N x one model ({one} bytes)"
                else:
                    row["bytes"] = saved_model_bytes(paths[contender][str(n)])
                if contender == "headswitch":
                    row["bytes_with_assets_extra"] = _folder_bytes(Path(paths[contender][str(n)]))
                ld = loads[(backbone, contender, min(n, separate_max)
                            if contender == "separate" and n is not None else n)]
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
                for path in latency[backbone]:
                    row["latency"][path] = {}
                    for b in batches:
                        key_n = None if contender in SINGLE or (
                            contender == "separate" and b == 1) else n
                        row["latency"][path][str(b)] = by_key[(path, contender, key_n, b)]
                rows.append(row)
        base = rows[0]
        for row in rows:
            row["ratio"] = {
                "bytes": row["bytes"] / base["bytes"],
                "load_seconds": row["load_seconds"] / base["load_seconds"],
                "peak_rss": row["peak_rss"] / base["peak_rss"],
                "rss_added": row["rss_added"] / max(1, base["rss_added"]),
            }
            for path, by_batch in row["latency"].items():
                for b in batches:
                    mine, theirs = by_batch[str(b)], base["latency"][path][str(b)]
                    mine["p50_x"] = mine["p50_ms"] / theirs["p50_ms"]
                    mine["p99_x"] = mine["p99_ms"] / theirs["p99_ms"]
                    mine["throughput_x"] = mine["throughput"] / theirs["throughput"]
            for b in batches:  # the headline path's ratios, by batch
                mine = row["latency"][headline][str(b)]
                row["ratio"][f"p50_b{b}"] = mine["p50_x"]
                row["ratio"][f"p99_b{b}"] = mine["p99_x"]
                row["ratio"][f"throughput_b{b}"] = mine["throughput_x"]
        hs = {r["tasks"]: r for r in rows if r["contender"] == "headswitch"}
        size = {n: (hs[n]["bytes"], bb_bytes + info["heads_bytes"][str(n)]) for n in tasks}
        out[backbone] = {
            "headswitch_built_with": info["headswitch_built_with"],
            "real_heads": info["real_heads"], "feature_width": info["feature_width"],
            "heads_bytes": info["heads_bytes"],
            "build_timings": info["timings"], "build_seconds": info["build_seconds"],
            "exports": info.get("exports"),
            "batches": batches,
            "latency_jobs": {path: {
                **{k: v for k, v in job.items() if k != "batches"},
                "batches": {str(b): {"seconds": job["batches"][str(b)]["seconds"],
                                     "rounds": job["batches"][str(b)]["rounds"]}
                            for b in batches}} for path, job in latency[backbone].items()},
            "rows": rows,
            "floors": _floors(backbone, rows, tasks, batches, headline, size),
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


def path_title(result: dict[str, Any], backbone: str, path: str) -> str:
    """A latency column's title, with the oneDNN setting its process really had."""
    job = result["backbones"][backbone]["latency_jobs"][path]
    if path == "eager":
        return f"Python call (oneDNN {'on' if job['onednn'] else 'off'})"
    return f"C++ session, oneDNN {'on' if job['onednn'] else 'off'}"


def floors_table(result: dict[str, Any], backbone: str, references: bool = False) -> list[str]:
    data = result["backbones"][backbone]
    paths = [p for p in CPP_PATHS if p in data["latency_jobs"]]
    head = " | ".join(f"{path_title(result, backbone, p)} | met" for p in paths)
    lines = [f"| floor | limit | {head} |", "|---|---|" + "---|---|" * len(paths)]
    for f in data["floors"]:
        if f["reference"] != references:
            continue
        cells = []
        for p in paths:  # the size floor has one value, whatever the path
            got = f["by_path"].get(p) or f["by_path"]["size"]
            mark = "-" if references else "met" if got["ok"] else "**missed**"
            cells.append(f"{got['value']:.3f} | {mark}")
        lines.append(f"| {f['floor']} | {f['op']} {f['limit']:.2f} | " + " | ".join(cells) + " |")
    return lines


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    headline = s["headline"]
    lines = [f"# headswitch vs the alternatives{' (quick mode)' if s['quick'] else ''}", "",
             (f"Machine: {result['machine']}; TensorFlow {result['tensorflow']}. "
              f"Run took {result['total_seconds'] / 60:.1f} min. Load average (1/5/15 min) at "
              f"start {result['load_average_start']}, at end {result['load_average_end']}."), "",
             ("**Latency path.** Unless a column says otherwise, latency is TF Serving's execution "
              "path: the SavedModel loaded by TensorFlow's C++ loader and run by `Session::Run` "
              "with the signature's tensor names (TensorFlow's C API through ctypes, "
              "`bench/_cpath.py`), inputs built once, every output of the signature fetched "
              "(TF Serving fetches them all) and not read back; nothing of a server's request "
              "handling. Headline column: "
              f"{PATHS[headline][0]}. The 'Python call' column is the loaded signature called "
              "from Python (`tf.saved_model.load`, outputs read back with `.numpy()`). Each "
              "column is measured in its own process, every contender and N interleaved round by "
              "round."), "",
             ("A request of batch b carries b texts with a uniformly random task each (the same "
              "texts and tasks for every contender and path); one client, sequential requests; "
              "p50/p99 per request. x = ratio to the backbone alone on the same path. Size = "
              "saved_model.pb + variables/ (+ assets/). Load = tf.saved_model.load + first "
              f"answer, in a fresh process (best of {s['load_repeats']}); peak RSS of that "
              "process (TF runtime alone: "
              f"{_fmt_bytes(result['import_only_peak_rss'])}); 'RSS added' = resident memory "
              "after the load and first answer minus before the load."), ""]
    for backbone, data in result["backbones"].items():
        paths = list(data["latency_jobs"])
        others = [p for p in paths if p != headline]
        lines += [f"## {backbone} backbone", "",
                  f"headswitch built with: {data['headswitch_built_with']}. "
                  f"Heads: {data['real_heads']} read from example models"
                  + (", the rest random Dense weights of the example tasks' shapes"
                     if backbone == "bert" else "") + " (softmax, sigmoid, linear and two-layer "
                  "heads).", ""]
        lines += ["Latency processes: " + "; ".join(
            f"{path_title(result, backbone, p)}: load average {j['load_average_start']} -> "
            f"{j['load_average_end']}" for p, j in data["latency_jobs"].items()) + ".", ""]
        for b in data["batches"]:
            rounds = data["latency_jobs"][headline]["batches"][str(b)]["rounds"]
            head = ["contender", "N", "p50 ms", "x", "p99 ms", "x"]
            for p in others:
                head += [f"{path_title(result, backbone, p)}: p50 ms", "x"]
            head += ["examples/s", "calls/req", "samples"]
            lines += [f"### Batch {b} ({rounds} interleaved rounds)", "",
                      "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            for row in data["rows"]:
                lt = row["latency"][headline][str(b)]
                cells = [TITLES[row["contender"]], str(row["tasks"] or "-"),
                         _fmt_ms(lt["p50_ms"]), _x(lt["p50_x"]), _fmt_ms(lt["p99_ms"]),
                         _x(lt["p99_x"])]
                for p in others:
                    other = row["latency"][p][str(b)]
                    cells += [_fmt_ms(other["p50_ms"]), _x(other["p50_x"])]
                cells += [f"{lt['throughput']:.0f}", f"{lt['calls_per_request']:.1f}",
                          str(lt["samples"])]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        lines += ["### Floors (issue 11; C++ path, p50)", ""] + floors_table(result, backbone)
        lines += ["", ("Where the cost over the backbone goes (reference, not floors): the "
                       "signature itself (headswitch's inputs and outputs around the backbone, no "
                       "task switch), the task switch on top of it, and the other sizes:"), ""]
        lines += floors_table(result, backbone, references=True)
        lines += ["", "### Size, load time and memory", "",
                  "| contender | N | size | x | load s | x | peak RSS | x | RSS added | x |",
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
        if any(r.get("extrapolated") for r in data["rows"]):
            lines += ["", (f"\\* extrapolated linearly from loading {s['separate_max']} models "
                           f"(N > {s['separate_max']}).")]
        lines.append("")
    lines += ["## Notes", ""] + [f"- {n}" for n in result["notes"]] + [""]
    return "\n".join(lines)


def readme_table(result: dict[str, Any]) -> str:
    """The README's summary: headline-path p50 ratios to the backbone, per backbone and N."""
    headline = result["settings"]["headline"]
    lines = [("| backbone | N | headswitch size | headswitch p50, batch 1 / big | all heads p50, "
              "batch 1 / big | N signatures p50, batch 1 / big | N SavedModels: size, load |"),
             "|---|---|---|---|---|---|---|"]
    for backbone, data in result["backbones"].items():
        rows = {(r["contender"], r["tasks"]): r for r in data["rows"]}
        b1, big = min(data["batches"]), max(data["batches"])
        base = rows[("backbone", None)]["latency"][headline]
        for n in result["settings"]["tasks"]:
            pair = {c: f"{_x(rows[(c, n)]['latency'][headline][str(b1)]['p50_x'])} / "
                       f"{_x(rows[(c, n)]['latency'][headline][str(big)]['p50_x'])}"
                    for c in ("headswitch", "multi_output", "per_task_sigs")}
            sep = rows[("separate", n)]["ratio"]
            label = (f"{backbone} ({_fmt_ms(base[str(b1)]['p50_ms'])} / "
                     f"{_fmt_ms(base[str(big)]['p50_ms'])} ms, batch {b1} / {big})"
                     if n == min(result["settings"]["tasks"]) else backbone)
            lines.append(f"| {label} | {n} | {_x(rows[('headswitch', n)]['ratio']['bytes'])} | "
                         f"{pair['headswitch']} | {pair['multi_output']} | "
                         f"{pair['per_task_sigs']} | {_x(sep['bytes'])}, "
                         f"{_x(sep['load_seconds'])} |")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    headline = result["settings"]["headline"]
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
        where = path_title(result, backbone, headline)
        for line, (kind, which) in enumerate(panels):
            ax = axes[line][col]
            b = result["backbones"][backbone]["batches"][which] if kind == "latency" else None
            spread = []
            for contender in CONTENDERS:
                mine = [r for r in rows if r["contender"] == contender]
                if contender in SINGLE:
                    mine = mine * len(tasks)
                ys = [r["latency"][headline][str(b)]["p50_ms"] if kind == "latency"
                      else r["bytes"] / 2**20 for r in mine]
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
            ax.set_title(f"{backbone} backbone: " + (f"p50, batch {b}\n{where}"
                                                     if kind == "latency" else "size on disk"),
                         fontsize=9)
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
                   "models, separate models loaded up to 20 copies, 2 load processes at once. "
                   "Measured: 13.9 min on a 2-core machine shared with other jobs (load "
                   "average 1 at the start, 7 to 11 while it ran); 4.6 min on the same machine "
                   "less loaded (issue 25)")
    p.add_argument("--tasks", type=int, nargs="+", help="task counts (default 10 200 1000)")
    p.add_argument("--backbones", nargs="+", choices=BACKBONES, default=list(BACKBONES))
    p.add_argument("--budget-scale", type=float, default=1.0,
                   help="scale the latency time budgets")
    p.add_argument("--rounds", type=int)
    p.add_argument("--load-repeats", type=int)
    p.add_argument("--small-examples", help="reuse these small example models (manifest.yaml "
                   "and .keras files) instead of building them")
    _measure.add_results_option(p)
    p.add_argument("--work", help="work folder (kept); default: a temporary folder, removed")
    p.add_argument("--in-process", action="store_true",
                   help="build and time the Python-call path in this process (load/RSS and the "
                   "C++ paths still in children); for tests")
    p.add_argument("--paths", nargs="+", choices=list(PATHS), default=list(PATHS),
                   help="latency paths to measure (default: all)")
    p.add_argument("--headline", choices=CPP_PATHS, default="cpp_onednn",
                   help="the C++ path of the headline table, figure and floors (default: "
                   "cpp_onednn, the wheel's and TF Serving's default oneDNN setting)")
    args = p.parse_args(argv)
    args.results = _measure.results_dir(args)
    if args.headline not in args.paths:
        p.error(f"--headline {args.headline} must be one of --paths")

    preset = dict(QUICK if args.quick else FULL)
    tasks = sorted(args.tasks or preset["tasks"])
    batches = {b: sorted(preset["batches"][b]) for b in args.backbones}
    rounds = args.rounds or preset["rounds"]
    repeats = args.load_repeats or preset["load_repeats"]
    started = time.perf_counter()
    load_average_start = _measure.load_average()
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
        latency: dict[str, dict[str, Any]] = {}
        for b in args.backbones:
            latency[b] = {}
            for path in args.paths:  # the headline path first
                t = time.perf_counter()
                log(f"[{b}] latency on the {PATHS[path][0]} path, every contender "
                    "interleaved ...")
                budget = {str(batch): preset["budget"][(b, batch)] * args.budget_scale
                          * (1.0 if path == args.headline else SECONDARY_BUDGET)
                          for batch in batches[b]}
                latency[b][path], _, rss = runner.job(
                    "latency" if path == "eager" else "cpath",
                    child=None if path == "eager" else True, env=PATHS[path][1], path=path,
                    paths=builds[b]["paths"], tasks=tasks, batches=preset["batches"][b],
                    rounds=rounds, budget=budget, texts=512)
                latency[b][path]["process_peak_rss"] = rss
                phases[f"latency_{b}_{path}"] = time.perf_counter() - t
            latency[b] = {p: latency[b][p] for p in PATHS if p in latency[b]}
        backbones = _assemble(builds, loads, latency, tasks, batches, preset["separate_max"],
                              args.headline)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    from importlib.metadata import version

    result = {
        "machine": _measure.machine(),
        "tensorflow": version("tensorflow"),
        "settings": {"quick": args.quick, "tasks": tasks, "batches": batches, "rounds": rounds,
                     "load_repeats": repeats, "backbones": args.backbones,
                     "load_jobs": preset["load_jobs"], "separate_max": preset["separate_max"],
                     "bert_example_models": preset["bert_models"], "paths": args.paths,
                     "headline": args.headline,
                     "budget_seconds": {f"{k[0]}-b{k[1]}": v * args.budget_scale
                                        for k, v in preset["budget"].items()}},
        "load_average_start": load_average_start,
        "load_average_end": _measure.load_average(),
        "import_only_peak_rss": loads[("-", "import_only", None)]["peak_rss"],
        "phase_seconds": phases,
        "total_seconds": time.perf_counter() - started,
        "backbones": backbones,
        "notes": notes(preset),
    }
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    _measure.write_json(results / "compare.json", result)
    (results / "compare.md").write_text(markdown(result))
    plot(result, results / "compare.png")
    print(markdown(result))
    print("README table:\n\n" + readme_table(result) + "\n")
    for backbone in result["backbones"]:
        print(f"Floors, {backbone} backbone (C++ path, p50):\n")
        print("\n".join(floors_table(result, backbone)) + "\n")
    log(f"wrote {results / 'compare.json'}, compare.md, compare.png")
    return 0


def notes(preset: dict[str, Any]) -> list[str]:
    m, cap = preset["bert_models"], preset["separate_max"]
    out = [
        ("small backbone: headswitch is the public export_models output (one export per N). The "
         "other contenders use the backbone of the first .keras file and the heads export_models "
         "read (captured from its largest export), so every contender computes the same "
         "functions."),
        (f"bert backbone: {m} example .keras files are built (a bert .keras is ~21 MB, so not N of "
         "them); their heads are read with the exporter's head analysis and the other tasks get "
         "random Dense weights of their example task's shape. headswitch is build_module + "
         "tf.saved_model.save with its signatures (export_models' graph without the verification "
         "and warmup records)."),
        ("multi_output: the single-Dense heads are one concatenated matmul; `language` (Dense(16, "
         "relu) -> Dense(4)) runs its two Dense steps; the scores are gathered into [b, N, K] with "
         "each task's activation. On the C++ path the run returns all N heads' scores (a server "
         "would also serialize them: not counted); on the Python-call path the caller picks its "
         "task's row (numpy indexing, timed)."),
        ("per_task_sigs: the backbone is one tf.function called by every signature (stored once); "
         "a batch mixing k tasks is k runs, one after the other (on the Python-call path the "
         "answers are also reassembled in numpy, timed). Every signature used runs once before "
         "timing (a server's warmup would do it)."),
        ("separate: latency is one model's (backbone + head of task 0), called once per distinct "
         "task of the request, like k different models of identical cost; size = N x that model; "
         "load time/RSS measured by loading that SavedModel N times in one process (each load has "
         f"its own variables and functions), up to N={cap}, and scaled linearly above."),
        ("C++ path: TF_Tensors built before timing for every request; the timing covers "
         "TF_SessionRun (every output of the signature fetched) and freeing the outputs, one "
         "ctypes call each. Python-call path: input tensors built before timing; the timing "
         "covers the signature call(s), .numpy() of the scores and the caller's "
         "picking/reassembly."),
        ("oneDNN: TensorFlow compiles oneDNN ops into every x86 Linux build (the wheel and "
         "TF Serving's release build alike) and turns them on by default on CPUs with "
         "AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX (tensorflow/core/util/port.cc); "
         "TF_ENABLE_ONEDNN_OPTS overrides it. Each path's column title says which it ran."),
        "The two backbones' builds run at the same time (build times are information only).",
    ]
    if preset["load_jobs"] > 1:
        out.append(f"quick mode: {preset['load_jobs']} load/RSS processes run at once, so load "
                   "times are noisier than in the full run.")
    return out


if __name__ == "__main__":
    sys.exit(main())
