"""``headswitch example-models``."""

from __future__ import annotations

import argparse
from typing import Any

DEFAULT_OUT = "example-models"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "example-models", help="build N example text models that share one backbone",
        description="Build one shared text backbone and N independently trained heads, each "
        "saved as its own .keras file, plus manifest.yaml with task names and labels.")
    p.add_argument("--tasks", type=int, default=7, metavar="N", help="number of tasks (default 7)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help=f"output folder (default: {DEFAULT_OUT})")
    p.add_argument("--backbone", choices=("small", "bert"), default="small")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from headswitch._quiet import import_tensorflow

    from . import build_example_models

    if args.tasks < 1:
        raise SystemExit("headswitch example-models: --tasks must be at least 1")
    import_tensorflow()
    err = Console(stderr=True)
    with Progress(TextColumn("building models"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("", total=args.tasks)
        result = build_example_models(args.tasks, args.out, seed=args.seed,
                                      backbone=args.backbone,
                                      progress=lambda done, total: bar.update(task, completed=done))
    print(f"wrote {len(result.paths)} models and {result.manifest}")
    return 0
