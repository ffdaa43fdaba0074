"""``headswitch export`` and ``headswitch inspect``."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

from headswitch._errors import Error, interrupted
from headswitch._errors import report as report_error
from headswitch.contract import DEFAULT_BASE, DEFAULT_MODEL_NAME

from ._errors import ExportError

T = TypeVar("T")

def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export", help="merge Keras models that share a backbone into one SavedModel version",
        description="Merge N Keras models that share a backbone into BASE/<version>/, a "
        "task-switching SavedModel for TensorFlow Serving. Task ids follow argument order; a "
        "model with several outputs gives one task per output. With --from, build the next "
        "version from a published one: add, replace and remove tasks without the other "
        "original files.")
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help=".keras or .h5 files or SavedModel folders (Keras 3 or Keras 2 / "
                   "tf_keras), task 0 first")
    p.add_argument("--out", metavar="BASE",
                   help=f"model base folder (default: {DEFAULT_BASE}, or the base of --from)")
    p.add_argument("--from", dest="from_version", metavar="BASE[/VERSION]",
                   help="build the next version from this one (default: its newest version): "
                   "its tasks keep their ids; MODEL files add tasks with new ids; no other "
                   "original file is needed")
    p.add_argument("--replace", action="append", default=[], metavar="NAME=FILE",
                   help="with --from: give task NAME the head of the model in FILE (same id)")
    p.add_argument("--remove", action="append", default=[], metavar="NAME",
                   help="with --from: remove task NAME (or id); its id is never reused and "
                   "answers that it was removed")
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
    p.add_argument("--backbone-groups", action="store_true",
                   help="models that do not all share one backbone (some fine-tuned, some on "
                   "another encoder) are grouped by backbone: one SavedModel stores each "
                   "backbone once and runs it only for its own tasks' examples; with --from, a "
                   "model on a new backbone adds a group")
    p.add_argument("--unsafe-deserialization", action="store_true",
                   help="trust the model files: let Keras run the Python code stored in Lambda "
                   "layers and load the SavedModels that TFSMLayers point to (what Keras's safe "
                   "mode refuses). Only for files you made or trust")
    p.add_argument("--tokenizer", metavar="DIR",
                   help="the Hugging Face tokenizer files (tokenizer.save_pretrained(DIR)) of "
                   "every Hugging Face model given, when they are not beside each model")
    p.add_argument("--model-name", default=DEFAULT_MODEL_NAME,
                   help=f"model name used in warmup requests (default: {DEFAULT_MODEL_NAME})")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_export)

    q = subparsers.add_parser("inspect", help="show versions, signatures and tasks of an export")
    q.add_argument("path", metavar="BASE[/VERSION]")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=_inspect)

    b = subparsers.add_parser(
        "backbone", help="write a version's shared backbone as a frozen Keras model",
        description="Write the exact backbone a version serves (preprocessing included) as a "
        "frozen Keras model, checked bit for bit against the version's features, to train new "
        "heads on; `headswitch export --from` accepts a model built on it as it is.")
    b.add_argument("version", metavar="BASE[/VERSION]")
    b.add_argument("--out", required=True, metavar="FILE",
                   help="the model to write, e.g. backbone.keras (a tf_keras backbone may also "
                   "go to a SavedModel folder)")
    b.add_argument("--group", type=int, metavar="ID",
                   help="which backbone, for a version exported with --backbone-groups (ids "
                   "as `headswitch inspect` lists them)")
    b.add_argument("--unsafe-deserialization", action="store_true",
                   help="let Keras run Python code stored in the backbone (Lambda layers)")
    b.add_argument("--json", action="store_true", help="print the result as JSON")
    b.set_defaults(func=_backbone)

    d = subparsers.add_parser("diff", help="what changed between two versions",
                              description="Tasks added, removed, replaced and unchanged, backbone "
                              "fingerprints and sizes of two versions.")
    d.add_argument("a", metavar="BASE/A")
    d.add_argument("b", metavar="BASE/B")
    d.add_argument("--all", action="store_true", help="list unchanged tasks too")
    d.add_argument("--json", action="store_true", help="print JSON")
    d.set_defaults(func=_diff)


def _replacements(pairs: list[str]) -> dict[str, str]:
    replace: dict[str, str] = {}
    for pair in pairs:
        name, sep, file = pair.partition("=")
        if not sep or not name or not file:
            raise ExportError(f"--replace {pair!r}: expected NAME=FILE",
                              hint="e.g. --replace topic=topic_v2.keras")
        if name in replace:
            raise ExportError(f"--replace names task {name!r} twice")
        replace[name] = file
    return replace


def _check_flags(args: argparse.Namespace) -> None:
    if args.from_version is None:
        for flag, value in (("--replace", args.replace), ("--remove", args.remove)):
            if value:
                raise ExportError(f"{flag} needs --from BASE[/VERSION]",
                                  hint="--from names the version whose tasks change")
        return
    for flag, value in (("--split-layer", args.split_layer),
                        ("--accept-shorter-backbone", args.accept_shorter_backbone)):
        if value:
            raise ExportError(f"{flag} does not apply with --from: the backbone is the "
                              "previous version's", hint=f"drop {flag}")


def _answer(run: Callable[[], T], failed: str, as_json: bool, data: Callable[[T], Any],
            show: Callable[[T], None]) -> int:
    """Run a command: its error as one line and a hint (exit 2), or its result as JSON or as
    ``show`` prints it (exit 0)."""
    try:
        result = run()
    except Error as e:  # ExportError, InspectError
        if interrupted():
            raise
        report_error(e, failed)
        return 2
    if as_json:
        print(json.dumps(data(result), indent=2))
    else:
        show(result)
    return 0


TRACEBACK_ENV = "HEADSWITCH_TRACEBACK"


def unforeseen(error: Exception) -> ExportError:
    """An exception no stage turned into an ``ExportError``: what it says, and what to do."""
    first = (str(error).strip().splitlines() or [""])[0][:300]
    return ExportError(
        f"the exporter met a case it does not handle: {type(error).__name__}: {first}; nothing "
        "was written",
        hint="this is a headswitch bug, not a problem of the models: please report it with the "
        f"command and the models ({TRACEBACK_ENV}=1 prints the traceback)")


def _export(args: argparse.Namespace) -> int:
    from rich import progress as bars
    from rich.console import Console

    from headswitch._quiet import import_tensorflow

    from ._exporter import export_models
    from ._next import export_from
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

            _check_flags(args)
            if args.from_version is not None:
                report = export_from(args.from_version, args.models, args.out,
                                     replace=_replacements(args.replace), remove=args.remove,
                                     version=args.version, manifest=args.manifest,
                                     tolerance=args.tolerance, model_name=args.model_name,
                                     progress=progress,
                                     unsafe_deserialization=args.unsafe_deserialization,
                                     backbone_groups=args.backbone_groups,
                                     tokenizer=args.tokenizer)
            else:
                report = export_models(args.models, args.out or str(DEFAULT_BASE),
                                       split_layer=args.split_layer, version=args.version,
                                       manifest=args.manifest, tolerance=args.tolerance,
                                       model_name=args.model_name, progress=progress,
                                       unsafe_deserialization=args.unsafe_deserialization,
                                       accept_shorter_backbone=args.accept_shorter_backbone,
                                       backbone_groups=args.backbone_groups,
                                       tokenizer=args.tokenizer)
    except ExportError as e:
        if interrupted():  # a load or a save cut short by Ctrl-C or SIGTERM: not a refusal
            raise
        report_error(e, "export failed")
        return 2
    except Exception as e:  # a case no stage foresaw: still a refusal, never a traceback
        if os.environ.get(TRACEBACK_ENV) or interrupted():
            raise
        report_error(unforeseen(e), "export failed")
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        render(report, Console())
        print(f"published {report.path}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ._inspect import inspect_export, render_inspection

    return _answer(lambda: inspect_export(args.path), "inspect failed", args.json,
                   lambda info: info, lambda info: render_inspection(info, Console()))


def _backbone(args: argparse.Namespace) -> int:
    from headswitch._quiet import import_tensorflow

    from ._keras_backbone import BackboneReport, export_backbone

    def show(report: BackboneReport) -> None:
        print(f"wrote {report.path}: the backbone of version {report.version} ({report.keras}, "
              f"{report.layers} layers, {report.parameters:,} weights, frozen), "
              f"{report.features_width} features; identical to the version's on its "
              f"{report.probe_texts} probe texts")

    import_tensorflow()
    return _answer(lambda: export_backbone(args.version, args.out, group=args.group,
                                           unsafe_deserialization=args.unsafe_deserialization),
                   "backbone failed", args.json, BackboneReport.to_dict, show)


def _diff(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ._diff import diff_versions, render_diff

    return _answer(lambda: diff_versions(args.a, args.b), "diff failed", args.json,
                   lambda info: info,
                   lambda info: render_diff(info, Console(), all_tasks=args.all))
