"""The table of model formats with the largest difference measured between each merged export
and its original models.

    .venv/bin/python bench/formats_table.py [--save]

Runs the format tests (tests/export: Keras 2, Keras 3, multi-output, KerasHub, mixed
precision, refusals) with HEADSWITCH_FORMATS_TABLE set: each comparison of an export with its
originals (every task on every probe text, through both predict signatures) appends what it
measured. Writes formats.json and formats.md into work/bench/ (bench/results/ with --save).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import add_results_option, results_dir  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["test_keras2.py", "test_keras3.py", "test_multi_output.py", "test_kerashub.py",
         "test_mixed_precision.py", "test_refusals.py"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_results_option(p)
    results = results_dir(p.parse_args(argv))
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as f:
        table = Path(f.name)
    env = dict(os.environ, HEADSWITCH_FORMATS_TABLE=str(table), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *[str(ROOT / "tests" / "export" / t) for t in TESTS]], env=env,
                          cwd=ROOT)
    rows = [json.loads(line) for line in table.read_text().splitlines()]
    table.unlink()
    (results / "formats.json").write_text(json.dumps(rows, indent=2))
    lines = ["| test | formats read | tasks | heads | max abs diff |", "|---|---|---|---|---|"]
    for r in rows:
        heads = ", ".join(sorted(set(r["heads"])))
        lines.append(f"| {r['test'].split('::')[-1]} | {'; '.join(r['formats'])} | "
                     f"{r['tasks']} | {heads} | {r['max_abs_diff']:.1e} |")
    (results / "formats.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
