"""Batch scoring throughput and memory: ``headswitch score`` against a bare batched loop.

    .venv/bin/python bench/score_bench.py [--rows 1000000] [--rounds 3] [--base BASE]

The example models (7 tasks, small backbone; built and exported into a temporary folder unless
``--base`` names a model base path) score ``--rows`` generated JSON lines rows mixing tasks by
id, by name and by id written as text, 0.1 % of them bad (unknown task, bad JSON, missing
field). Every contender runs in its own fresh process:

  bare loop     the rows' texts and task ids already in memory, batches of 256, one
                ``serving_default`` call after another, outputs fetched with ``.numpy()``:
                no reading, no checks, no writing. rows/s over the loop only.
  in-process    ``headswitch score MODEL -i rows.jsonl -o out`` (default runner): reads,
                checks, scores (batches of 256) and writes every row (rows are parsed in its
                reader process, whose peak RSS ``wait4`` includes). rows/s = scored rows over
                the scoring time (the model load excluded, as for the bare loop); the whole job's
                time with the load is reported too. Peak RSS of the process (ru_maxrss) on
                ``--rows`` rows and on ``--small-rows`` rows.
  beam direct   ``headswitch score ... --runner direct`` (Beam's FnApiRunner, 2 SDK worker
                processes, each loading the model). Beam's start (imports and model loads in
                three processes, 15 to 70 s here depending on the load of the machine) does not
                grow with the input, so the runners are compared on their rate once scoring
                has started: Beam's scored rows over the span from its first scored batch to
                its last (the job's ``scoring_seconds``, from a metric every batch updates),
                against the in-process rate above. The whole-job ratio, start included, is
                reported beside it.

Rows lost = input rows - output lines - error lines, counted in the files. Rounds alternate the
contenders; each keeps its best round (the machine is shared: load averages are recorded), and
each ratio is also taken within each round (median of the rounds' ratios): this machine's speed
drifts by +-20% from minute to minute.
Writes work/bench/ (--save: bench/results/) score.json and score.md.
"""

from __future__ import annotations

import argparse
import json
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
from _measure import add_results_option, machine, results_dir, write_json

BAD_EVERY = 1000
BATCH = 256

BARE_LOOP = r"""
import json, sys, time
from headswitch._quiet import import_tensorflow
tf = import_tensorflow()
model = tf.saved_model.load(sys.argv[1])
predict = model.signatures["serving_default"]
table = model.signatures["tasks"](unused=tf.constant([0], tf.int32))
names = {n.decode(): int(i) for n, i in zip(table["name"].numpy()[0], table["task_id"].numpy()[0])}
texts, ids = [], []
with open(sys.argv[2], "rb") as f:
    for line in f:
        try:
            row = json.loads(line)
            task = row["task"]
            task = names[task] if task in names else int(task)
            if not isinstance(row["text"], str) or not 0 <= task < len(names):
                continue
        except (ValueError, KeyError, TypeError):
            continue
        texts.append(row["text"].encode())
        ids.append(task)
batches = [(tf.constant(texts[i:i + 256]), tf.constant(ids[i:i + 256], tf.int32))
           for i in range(0, len(texts), 256)]
del texts
started = time.perf_counter()
for text, task_id in batches:
    out = predict(text=text, task_id=task_id)
    out["scores"].numpy(); out["top_label"].numpy(); out["top_score"].numpy()
seconds = time.perf_counter() - started
print(json.dumps({"rows": len(ids), "seconds": seconds}))
"""


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _child_rss(argv: list[str]) -> tuple[str, float, int]:
    """Run a child process: its stdout, wall seconds and its own peak RSS in bytes (read by
    ``wait4`` for that child alone)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"{argv[:6]} failed ({proc.returncode})")
    return out.decode(), seconds, usage.ru_maxrss * 1024


def write_rows(path: Path, n: int, names: list[str], seed: int = 0) -> int:
    """``n`` rows; every BAD_EVERY-th is bad. Returns the number of rows (lines)."""
    from headswitch.examples import sample_texts

    rng = random.Random(seed)
    texts = sample_texts(2000, seed=seed)
    bad = [b'{"text": "x", "task": "no_such_task"}', b"{not json", b'{"task": 0}']
    with path.open("wb") as f:
        for i in range(n):
            if i % BAD_EVERY == BAD_EVERY - 1:
                f.write(bad[(i // BAD_EVERY) % len(bad)] + b"\n")
                continue
            task_id = rng.randrange(len(names))
            task: Any = [task_id, names[task_id], str(task_id)][i % 3]
            f.write(json.dumps({"id": i, "text": rng.choice(texts), "task": task}).encode()
                    + b"\n")
    return n


def _lines(*paths: Path) -> int:
    total = 0
    for path in paths:
        with path.open("rb") as f:
            total += sum(1 for line in f if line.strip())
    return total


def _score(model: str, rows: Path, out: Path, *extra: str) -> tuple[dict[str, Any], float, int]:
    argv = [sys.executable, "-m", "headswitch.cli", "score", model, "-i", str(rows), "-o",
            str(out), "--json", "--overwrite", *extra]
    stdout, seconds, rss = _child_rss(argv)
    return json.loads(stdout.strip().splitlines()[-1]), seconds, rss


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--small-rows", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--beam-rounds", type=int, help="rounds that also run Beam (default: all)")
    p.add_argument("--base", help="model base path (default: build the example models)")
    add_results_option(p)
    args = p.parse_args()
    args.results = results_dir(args)
    beam_rounds = args.rounds if args.beam_rounds is None else args.beam_rounds

    with tempfile.TemporaryDirectory(prefix="score-bench-") as tmp_name:
        tmp = Path(tmp_name)
        base = args.base
        if base is None:
            from headswitch.examples import build_example_models
            from headswitch.export import export_models

            examples = build_example_models(7, tmp / "examples")
            base = str(export_models(examples.paths, tmp / "models" / "headswitch",
                                     manifest=examples.manifest).path.parent)
        from headswitch.score import Scorer, locate_model

        version = locate_model(base).path
        names = list(Scorer(version).tasks.names)
        big, small = tmp / "rows.jsonl", tmp / "rows-small.jsonl"
        n_big = write_rows(big, args.rows, names)
        n_small = write_rows(small, args.small_rows, names)
        print(f"{n_big:,} rows ({big.stat().st_size / 2**20:.0f} MiB), model {version}",
              flush=True)

        runs: dict[str, list[dict[str, Any]]] = {"bare": [], "in_process": [], "beam": []}
        for r in range(args.rounds):
            load = _load()
            stdout, _, _ = _child_rss([sys.executable, "-c", BARE_LOOP, version, str(big)])
            bare = json.loads(stdout.strip().splitlines()[-1])
            runs["bare"].append({"rows_per_second": bare["rows"] / bare["seconds"],
                                 "rows": bare["rows"], "seconds": bare["seconds"],
                                 "load_before": load, "load_after": _load()})
            load = _load()
            summary, wall, rss = _score(base, big, tmp / "out")
            lost = n_big - _lines(tmp / "out.jsonl") - _lines(tmp / "out.errors.jsonl")
            runs["in_process"].append({
                "rows_per_second": summary["scored"] / summary["seconds"],
                "job_rows_per_second": n_big / wall, "job_seconds": wall,
                "scored": summary["scored"], "errors": summary["errors"], "rows_lost": lost,
                "peak_rss_bytes": rss, "load_before": load, "load_after": _load()})
            if r < beam_rounds:
                load = _load()
                summary, wall, _ = _score(base, big, tmp / "beam", "--runner", "direct")
                lost = n_big - _lines(*tmp.glob("beam-*-of-*.jsonl")) - _lines(
                    *tmp.glob("beam.errors-*-of-*.jsonl"))
                runs["beam"].append({
                    "rows_per_second": summary["scored"] / summary["scoring_seconds"],
                    "job_rows_per_second": n_big / wall, "job_seconds": wall,
                    "scored": summary["scored"], "errors": summary["errors"], "rows_lost": lost,
                    "load_before": load, "load_after": _load()})
                for f in tmp.glob("beam*.jsonl"):
                    f.unlink()
            print(f"round {r + 1}: bare {runs['bare'][-1]['rows_per_second']:,.0f} rows/s, "
                  f"in-process {runs['in_process'][-1]['rows_per_second']:,.0f} rows/s"
                  + (f", beam {runs['beam'][-1]['rows_per_second']:,.0f} rows/s "
                     f"(job {runs['beam'][-1]['job_rows_per_second']:,.0f})"
                     if r < beam_rounds else "") + f", load {_load()}", flush=True)
        small_summary, _, small_rss = _score(base, small, tmp / "small")

    def best(name: str, key: str) -> dict[str, Any]:
        return max(runs[name], key=lambda run: run[key])

    bare, local = best("bare", "rows_per_second"), best("in_process", "rows_per_second")
    # The machine's speed drifts (shared cores): a round's contenders run back to back, so the
    # ratio within a round is steadier than a ratio of bests.
    paired = [b["rows_per_second"] / a["rows_per_second"]
              for a, b in zip(runs["bare"], runs["in_process"])]
    # Beam against the in-process runner of the same rounds (Beam may run in fewer rounds).
    with_beam = runs["in_process"][:len(runs["beam"])]
    local_of_beam = max(with_beam, key=lambda run: run["rows_per_second"], default=None)
    local_job = max(with_beam, key=lambda run: run["job_rows_per_second"], default=None)
    beam_paired = [b["rows_per_second"] / a["rows_per_second"]
                   for a, b in zip(with_beam, runs["beam"])]
    beam = best("beam", "job_rows_per_second") if runs["beam"] else None
    big_rss = max(run["peak_rss_bytes"] for run in runs["in_process"])
    beam_rate = best("beam", "rows_per_second") if runs["beam"] else None
    results = {
        "machine": machine(), "cpus": os.cpu_count(), "rows": n_big, "small_rows": n_small,
        "beam_over_in_process": (beam_rate["rows_per_second"] / local_of_beam["rows_per_second"]
                                 if beam_rate and local_of_beam else None),
        "beam_over_in_process_per_round": beam_paired,
        "batch_size": BATCH, "runs": runs,
        "in_process_over_bare": local["rows_per_second"] / bare["rows_per_second"],
        "in_process_over_bare_per_round": paired,
        "beam_over_in_process_whole_job": (
            beam["job_rows_per_second"] / local_job["job_rows_per_second"]
            if beam and local_job else None),
        "rows_lost": max(run["rows_lost"] for name in ("in_process", "beam")
                         for run in runs[name]),
        "peak_rss_big_bytes": big_rss, "peak_rss_small_bytes": small_rss,
        "peak_rss_ratio": big_rss / small_rss,
        "small_run": small_summary,
    }
    write_json(args.results / "score.json", results)
    floors = [
        ("in-process rows/s / bare batched loop rows/s",
         f"{local['rows_per_second']:,.0f} / {bare['rows_per_second']:,.0f}",
         results["in_process_over_bare"], ">= 0.90"),
        ("the same, median of the rounds' own ratios",
         " ".join(f"{r:.2f}" for r in paired), statistics.median(paired), ">= 0.90"),
        ("Beam (direct, 2 worker processes) rows/s / in-process rows/s, once scoring runs "
         "(best of the rounds both ran)",
         f"{beam_rate['rows_per_second']:,.0f} / {local_of_beam['rows_per_second']:,.0f}"
         if beam_rate and local_of_beam else "-", results["beam_over_in_process"] or 0.0,
         ">= 0.70"),
        ("the same, median of the rounds' own ratios", " ".join(f"{r:.2f}" for r in beam_paired),
         statistics.median(beam_paired) if beam_paired else 0.0, ">= 0.70"),
        ("Beam / in-process, whole job (start and model loads included)",
         f"{beam['job_rows_per_second']:,.0f} / {local_job['job_rows_per_second']:,.0f}"
         if beam and local_job else "-", results["beam_over_in_process_whole_job"] or 0.0,
         "(reported)"),
        ("rows lost (in - out - errors), every run", "", results["rows_lost"], "0"),
        (f"peak RSS in-process, {n_big:,} rows / {n_small:,} rows",
         f"{big_rss / 2**20:,.0f} MiB / {small_rss / 2**20:,.0f} MiB",
         results["peak_rss_ratio"], "<= 1.2x"),
    ]
    lines = [f"# headswitch score, {n_big:,} rows, small example backbone, 7 tasks",
             "", f"Machine: {machine()}, shared with other jobs "
             "(load averages per run in score.json). Best of "
             f"{args.rounds} rounds (Beam: {beam_rounds}).", "",
             "| what | measured | ratio | floor |", "|---|---|---|---|"]
    for what, measured, ratio, floor in floors:
        shown = f"{ratio:.2f}" if isinstance(ratio, float) else str(ratio)
        lines.append(f"| {what} | {measured} | {shown} | {floor} |")
    lines += ["", "| run | rows/s | whole job s | load avg before -> after |", "|---|---|---|---|"]
    for name in ("bare", "in_process", "beam"):
        for run in runs[name]:
            rate = run["rows_per_second"]
            seconds = run.get("job_seconds", run.get("seconds"))
            lines.append(f"| {name} | {rate:,.0f} | {seconds:.1f} | {run['load_before']} -> "
                         f"{run['load_after']} |")
    text = "\n".join(lines) + "\n"
    (args.results / "score.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
