"""What importing TensorFlow costs a headswitch process, with and without TF Text's ops.

    .venv/bin/python bench/tf_import_bench.py [--rounds 6]

``headswitch._quiet.import_tensorflow`` imports ``tensorflow_text`` when it is installed (as
``tensorflow_model_server`` links TF Text's ops). Each round starts fresh processes, alternating:
``import_tensorflow(keras=False)`` as the embedded server calls it, once as installed and once
with ``tensorflow_text`` hidden (``sys.modules["tensorflow_text"] = None``, so the import fails as
if the package were not there). Reported: wall time of the call and the process's RSS after it.
Writes work/bench/ (--save: bench/results/) tf-import.json and tf-import.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import _measure  # noqa: E402

CHILD = """
import sys, time
if sys.argv[1] == "hidden":
    sys.modules["tensorflow_text"] = None
started = time.perf_counter()
from headswitch._quiet import import_tensorflow
import_tensorflow(keras=False)
seconds = time.perf_counter() - started
rss = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
           if line.startswith("VmRSS:"))
print("RESULT", seconds, rss, "tensorflow_text" in sys.modules and sys.modules["tensorflow_text"]
      is not None)
"""


def _one(mode: str) -> dict[str, Any]:
    run = _measure.run_child(CHILD, mode)
    line = next(x for x in run.stdout.splitlines() if x.startswith("RESULT "))
    _, seconds, rss, text = line.split()
    return {"seconds": float(seconds), "rss_mib": int(rss) / 2**20, "tf_text": text == "True"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    _measure.add_results_option(parser)
    args = parser.parse_args(argv)
    args.results = _measure.results_dir(args)
    load_start = _measure.load_average()
    samples: dict[str, list[dict[str, Any]]] = {"installed": [], "hidden": []}
    for round_ in range(args.rounds):
        order = ("installed", "hidden") if round_ % 2 == 0 else ("hidden", "installed")
        for mode in order:
            samples[mode].append(_one(mode))
            print(f"round {round_ + 1}: {mode} {samples[mode][-1]}", flush=True)
    if not all(s["tf_text"] for s in samples["installed"]):
        raise SystemExit("tensorflow-text is not installed: pip install 'headswitch[text]'")
    summary = {
        mode: {"seconds_median": statistics.median(s["seconds"] for s in rows),
               "rss_mib_median": statistics.median(s["rss_mib"] for s in rows)}
        for mode, rows in samples.items()
    }
    data = {"machine": _measure.machine(),
            "load_average": {"start": load_start, "end": _measure.load_average()},
            "rounds": args.rounds, "samples": samples, "summary": summary}
    results = Path(args.results)
    _measure.write_json(results / "tf-import.json", data)
    (results / "tf-import.md").write_text(report(data))
    print(report(data))
    return 0


def report(data: dict[str, Any]) -> str:
    installed, hidden = data["summary"]["installed"], data["summary"]["hidden"]
    rows = [
        "| TF Text | import_tensorflow(keras=False), s (median) | RSS after, MiB (median) |",
        "|---|---|---|",
        f"| registered | {installed['seconds_median']:.2f} | {installed['rss_mib_median']:.0f} |",
        f"| not installed | {hidden['seconds_median']:.2f} | {hidden['rss_mib_median']:.0f} |",
        f"| difference | {installed['seconds_median'] - hidden['seconds_median']:+.2f} | "
        f"{installed['rss_mib_median'] - hidden['rss_mib_median']:+.0f} |",
    ]
    return "\n".join([
        "## Importing TensorFlow with and without TF Text's ops",
        "",
        f"{data['machine']}; shared machine, load average (1/5/15 min) start "
        f"{data['load_average']['start']}, end {data['load_average']['end']}. "
        f"{data['rounds']} rounds of fresh processes, alternating.",
        "",
        *rows,
        "",
    ]) + "\n"


if __name__ == "__main__":
    sys.exit(main())
