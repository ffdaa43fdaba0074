"""``headswitch export`` and ``headswitch inspect``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from headswitch._errors import report as report_error
from headswitch.contract import DEFAULT_BASE, DEFAULT_MODEL_NAME

from ._errors import ExportError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export", help="merge Keras models that share a backbone into one SavedModel version",
        description="Merge N Keras models that share a backbone into BASE/<version>/, a "
        "task-switching SavedModel for TensorFlow Serving. Task ids follow argument order; a "
        "model with several outputs gives one task per output.")
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help=".keras or .h5 files or SavedModel folders (Keras 3 or Keras 2 / "
                   "tf_keras), task 0 first")
    p.add_argument("--out", default=str(DEFAULT_BASE), metavar="BASE",
                   help=f"model base folder (default: {DEFAULT_BASE})")
    p.add_argument("--split-layer", metavar="NAME",
                   help="layer whose output feeds every head (default: found automatically)")
    p.add_argument("--version", type=int, metavar="N",
                   help="version number (default: one more than the highest)")
    p.add_argument("--manifest", metavar="FILE",
                   help="YAML or JSON: tasks: [{name, model, labels}]")
    p.add_argument("--tolerance", type=float, default=0.0,
                   help="largest allowed backbone weight difference (default: 0, exact)")
    p.add_argument("--accept-shorter-backbone", action="store_true",
                   help="go on when the automatic split lands before the layer where some "
                   "models' heads start (share less, run more per task)")
    p.add_argument("--unsafe-deserialization", action="store_true",
                   help="trust the model files: let Keras run the Python code stored in Lambda "
                   "layers and load the SavedModels that TFSMLayers point to (what Keras's safe "
                   "mode refuses). Only for files you made or trust")
    p.add_argument("--model-name", default=DEFAULT_MODEL_NAME,
                   help=f"model name used in warmup requests (default: {DEFAULT_MODEL_NAME})")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_export)

    q = subparsers.add_parser("inspect", help="show versions, signatures and tasks of an export")
    q.add_argument("path", metavar="BASE[/VERSION]")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=_inspect)


def _export(args: argparse.Namespace) -> int:
    from rich import progress as bars
    from rich.console import Console

    from headswitch._quiet import import_tensorflow

    from ._exporter import export_models
    from ._report import render

    err = Console(stderr=True)
    import_tensorflow()
    try:
        columns = (bars.TextColumn("loading models"), bars.BarColumn(),
                   bars.MofNCompleteColumn(), bars.TextColumn("{task.description}"),
                   bars.TimeElapsedColumn(), bars.TimeRemainingColumn())
        with bars.Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task("", total=None)

            def progress(done: int, total: int, name: str) -> None:
                bar.update(task, completed=done, total=total, description=name)

            report = export_models(args.models, args.out, split_layer=args.split_layer,
                                   version=args.version, manifest=args.manifest,
                                   tolerance=args.tolerance, model_name=args.model_name,
                                   progress=progress,
                                   unsafe_deserialization=args.unsafe_deserialization,
                                   accept_shorter_backbone=args.accept_shorter_backbone)
    except ExportError as e:
        report_error(e, "export failed")
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        render(report, Console())
        print(f"published {report.path}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ._inspect import InspectError, inspect_export, render_inspection

    try:
        info = inspect_export(args.path)
    except InspectError as e:
        report_error(e, "inspect failed")
        return 2
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        render_inspection(info, Console())
    return 0
