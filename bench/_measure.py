"""Helpers shared by the benchmark scripts: child processes with their peak RSS, timing, and
where results go (``work/bench/`` unless ``--save``)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The child's own peak: VmHWM of its memory map (new at exec). Not ru_maxrss, which Linux
# carries across exec from the forked copy of this process: a child of a 1 GiB parent reported
# 1 GiB however little it used.
_REPORT_RSS = ("\nimport re as _re\n"
               "print('PEAK_RSS', int(_re.search(r'VmHWM:\\s+(\\d+)', "
               "open('/proc/self/status').read()).group(1)) * 1024)\n")


@dataclass(frozen=True)
class ChildRun:
    seconds: float
    peak_rss_bytes: int
    stdout: str


def run_child(code: str, *args: str, env: dict[str, str] | None = None) -> ChildRun:
    """Run ``python -c code args...`` in a fresh process (``env`` added to this one's
    environment); return its wall time, its own peak RSS (VmHWM) and its
    stdout."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code + _REPORT_RSS, *args], env=env, check=False,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("PEAK_RSS "):
            return ChildRun(seconds, int(line.split()[1]), done.stdout)
    raise RuntimeError("benchmark child did not report its peak RSS")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


BENCH = Path(__file__).resolve().parent
COMMITTED_RESULTS = BENCH / "results"  # the results the README quotes, under version control
WORK_RESULTS = BENCH.parent / "work" / "bench"  # git-ignored


def add_results_option(parser: argparse.ArgumentParser) -> None:
    """``--results DIR`` and ``--save``: a run writes into work/bench/ (git-ignored) unless
    ``--save`` asks for bench/results/, the committed results. Call ``results_dir(args)``
    after parsing."""
    parser.add_argument("--results", type=Path, default=None, metavar="DIR",
                        help="write the results into DIR (default: work/bench/, git-ignored)")
    parser.add_argument("--save", action="store_true",
                        help="write into bench/results/, replacing the committed results")


def results_dir(args: argparse.Namespace) -> Path:
    """The folder ``add_results_option``'s options chose, created."""
    if args.save and args.results is not None:
        raise SystemExit("--save and --results exclude each other: --save writes bench/results/")
    folder = Path(args.results) if args.results is not None else (
        COMMITTED_RESULTS if args.save else WORK_RESULTS)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"results go to {folder}", file=sys.stderr)
    return folder


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages now (other work sharing the machine)."""
    return [round(x, 2) for x in os.getloadavg()]


def onednn_enabled() -> bool:
    """Whether this process's TensorFlow runs oneDNN ops (``TF_ENABLE_ONEDNN_OPTS``, or the
    CPU's default: on for x86 CPUs with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def machine() -> str:
    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {cpu}, {mem:.0f} GiB, Python {platform.python_version()}"
