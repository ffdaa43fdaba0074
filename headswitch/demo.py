"""The README's main job: example models -> one task-switching SavedModel -> predictions.

Run with ``scripts/demo`` (or ``python -m headswitch.demo``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

QUERIES = [
    ("the striker scored twice and the team won the match", "topic"),
    ("what a wonderful, delightful trip, I loved it", "sentiment"),
    ("congratulations winner! click now to claim your free prize $$$", "spam"),
    ("el gato come la comida en la casa", "language"),
    ("urgent!!! reply asap, the server is down now", "urgency"),
    ("new phone software update and a great pasta recipe", "tags"),
]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="headswitch-demo", description=__doc__)
    p.add_argument("--tasks", type=int, default=7, help="example tasks to build (default 7)")
    p.add_argument("--models-dir", default="example-models")
    p.add_argument("--out", default="models/headswitch")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from headswitch._quiet import import_tensorflow

    console = Console()
    tf = import_tensorflow()
    from headswitch.examples import build_example_models
    from headswitch.export import export_models
    from headswitch.export._report import render

    console.rule("1. build example models")
    examples = build_example_models(args.tasks, args.models_dir)
    console.print(f"{len(examples.paths)} models in {args.models_dir}/: "
                  + ", ".join(t.name for t in examples.tasks))

    console.rule("2. export one task-switching SavedModel")
    report = export_models(examples.paths, args.out, manifest=examples.manifest)
    render(report, console)

    console.rule(f"3. predictions from {report.path} (TensorFlow's SavedModel loader)")
    loaded = tf.saved_model.load(str(report.path))
    known = {t.name for t in examples.tasks}
    queries = [(text, task) for text, task in QUERIES if task in known]
    out = loaded.signatures["by_name"](text=tf.constant([q[0] for q in queries]),
                                       task=tf.constant([q[1] for q in queries]))
    table = Table(title="one batch, one backbone pass, each example its own task")
    for column in ("text", "task", "prediction", "score"):
        table.add_column(column, justify="right" if column == "score" else "left")
    for row, (text, task) in enumerate(queries):
        table.add_row(text, task, out["top_label"].numpy()[row].decode(),
                      f"{out['top_score'].numpy()[row]:.3f}")
    console.print(table)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from headswitch._quiet import native_stderr_quiet

    args = _parse(argv)
    with native_stderr_quiet():
        return run(args)


if __name__ == "__main__":
    sys.exit(main())
