"""Floods: eight hostile bodies at once, what each gets and what they cost the server.

    .venv/bin/python bench/flood_bench.py [--before REV] [--model-dir DIR] [--rss-cap-gib 8]

For each flood of ``_hostile.floods()`` (8 MiB of ``[``; 15 MiB of zeros, empty strings or
empty objects; 7 million empty strings over gRPC, declared as [7000000] or as [1]), a fresh
``headswitch serve`` (default limits) gets eight of them at once. Reported: each answer and how
long it took, the server's resident memory at its peak (sampled every 10 ms) and 3 s after the
last answer, both over its size before, and whether a good request is answered after.
``--before REV`` runs the same against the server of an older revision (its memory is capped
by ``--rss-cap-gib``: the bench kills it there). Writes work/bench/ (--save: bench/results/)
floods.json and floods.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import _hostile
import _measure  # noqa: E402
from fault_bench import (
    Server,
    Tree,
    _good_request,
    example_models,
    exported_trees,
    start_server,
)

AT_ONCE = 8


def _flood(server: Server, flood: _hostile.Flood) -> dict[str, Any]:
    flood.prepare(server.target)  # the bench's own work, not timed
    before = server.rss()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set() and server.alive():
            peak[0] = max(peak[0], server.rss())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    outcomes: list[_hostile.Outcome] = []
    lock = threading.Lock()

    def send() -> None:
        started = time.perf_counter()
        try:
            outcome = flood.send(server.target)
        except Exception as exc:  # noqa: BLE001 - the client side broke: report it
            outcome = _hostile.Outcome("none", detail=f"client error {type(exc).__name__}")
        outcome.seconds = time.perf_counter() - started
        with lock:
            outcomes.append(outcome)

    started = time.perf_counter()
    threads = [threading.Thread(target=send) for _ in range(AT_ONCE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(900)
    wall = time.perf_counter() - started
    time.sleep(3)
    done.set()
    sampler.join()
    lived = server.alive()
    return {
        "flood": flood.name, "transport": flood.transport,
        "statuses": sorted({o.status for o in outcomes}),
        "detail": outcomes[0].detail[:160] if outcomes else "",
        "seconds_max": round(max((o.seconds for o in outcomes), default=0.0), 2),
        "seconds_all": round(wall, 2),
        "rss_before_mib": round(before / 2**20, 1),
        "rss_peak_delta_mib": round((peak[0] - before) / 2**20, 1),
        "rss_after_delta_mib": round((server.rss() - before) / 2**20, 1) if lived else None,
        "server": "alive" if lived else server.exit_description(),
        "good_request_after": _good_request(server.target) if lived else False,
    }


def run(tree: Tree, base: Path, work: Path, rss_cap: int) -> list[dict[str, Any]]:
    rows = []
    for flood in _hostile.floods():
        server = start_server(tree, base, work, rss_cap)
        try:
            row = _flood(server, flood)
        finally:
            server.stop()
        rows.append(row)
        print(f"  {tree.name}: {flood.name}: {row}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", metavar="REV", help="also run the server of this revision")
    parser.add_argument("--model-dir", type=Path, help="example-models folder to reuse")
    parser.add_argument("--rss-cap-gib", type=float, default=8.0)
    _measure.add_results_option(parser)
    args = parser.parse_args(argv)
    args.results = _measure.results_dir(args)
    load_start = _measure.load_average()
    with tempfile.TemporaryDirectory(prefix="headswitch-floods-") as tmp:
        work = Path(tmp)
        sources = example_models(args.model_dir, work)
        results: dict[str, Any] = {"machine": _measure.machine(), "at_once": AT_ONCE}
        for tree, tree_work, base in exported_trees(args.before, sources, work):
            results[tree.name] = run(tree, base, tree_work, int(args.rss_cap_gib * 2**30))
        results["load_average"] = {"start": load_start, "end": _measure.load_average()}
    _measure.write_json(args.results / "floods.json", results)
    (args.results / "floods.md").write_text(report(results))
    print(report(results))
    return 0


def report(results: dict[str, Any]) -> str:
    names = [k for k in results if k == "now" or k.startswith("before")]
    lines = [
        f"# Floods: {results['at_once']} hostile bodies at once",
        "",
        f"{results['machine']}; shared machine, load average (1/5/15 min) start "
        f"{results['load_average']['start']}, end {results['load_average']['end']}. "
        "`headswitch serve` with its default limits, a fresh server per flood; RSS over the "
        "server's size before the flood, peak sampled every 10 ms, after: 3 s after the last "
        "answer.",
        "",
        "| server | flood | answers | slowest answer s | all answered s | peak RSS MiB | RSS "
        "after MiB | server after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        for row in results[name]:
            state = row["server"] + (", answers a good request" if row["good_request_after"]
                                     else ", no good answer")
            after = "-" if row["rss_after_delta_mib"] is None else f"{row['rss_after_delta_mib']:+}"
            lines.append(
                f"| {name} | {row['flood']} ({row['transport']}) | "
                f"{', '.join(row['statuses'])}: {row['detail'][:70]} | {row['seconds_max']} | "
                f"{row['seconds_all']} | {row['rss_peak_delta_mib']:+} | {after} | {state} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
