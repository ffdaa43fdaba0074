"""``headswitch score``: score files of (text, task) rows in batch."""

from __future__ import annotations

import argparse
import json
from typing import Any

from headswitch._errors import report

from ._errors import ScoreError
from ._input import FORMATS, parse_task_option
from ._job import DEFAULT_BATCH_SIZE, IN_PROCESS, RUNNERS, ScoreOptions, Summary
from ._rows import RowSpec

_BEAM_HINT = 'pip install "headswitch[beam]"'
_SCORE_HINT = 'pip install "headswitch[score]"'


def _check_installed() -> None:
    from importlib.util import find_spec

    missing = [name for name in ("tensorflow", "orjson") if find_spec(name) is None]
    if missing:
        raise ScoreError(f"batch scoring needs {' and '.join(missing)}, which "
                         f"{'is' if len(missing) == 1 else 'are'} not installed",
                         hint=_SCORE_HINT)


def register(subparsers: Any) -> None:
    """Add the ``score`` subcommand. Options it does not know go to Apache Beam."""
    p = subparsers.add_parser(
        "score", allow_abbrev=False,
        help="score files of (text, task) rows in batch (in-process, or on Apache Beam)",
        description="Score every row of JSON lines ({\"text\": ..., \"task\": name or id}) or "
        "CSV/TSV files (named columns) with a headswitch SavedModel. Writes PREFIX.jsonl (each "
        "row's own fields plus top_label and top_score, in input order) and "
        "PREFIX.errors.jsonl (rows that could not be scored, with the reason); with a Beam "
        "runner, sharded PREFIX-SSSSS-of-NNNNN.jsonl and PREFIX.errors-SSSSS-of-NNNNN.jsonl. "
        "Options this command does not know are passed to Apache Beam "
        "(e.g. --project=P --region=R --temp_location=gs://B/tmp).")
    p.add_argument("model", metavar="MODEL[/VERSION]",
                   help="the export's base folder (its newest version, pinned at start) or one "
                   "version folder; local or gs://")
    p.add_argument("--input", "-i", action="append", required=True, metavar="PATTERN",
                   help="input files: a path or glob pattern, local or gs:// (repeatable; "
                   "'-' reads standard input); .gz and .bz2 are decompressed")
    p.add_argument("--output", "-o", required=True, metavar="PREFIX",
                   help="output file prefix, local or gs://")
    p.add_argument("--format", choices=FORMATS,
                   help="input format (default: from each file's extension: .jsonl/.json/"
                   ".ndjson, .csv, .tsv)")
    p.add_argument("--text-field", default="text", metavar="NAME",
                   help="field or column holding the text (default: text)")
    p.add_argument("--task-field", default="task", metavar="NAME",
                   help="field or column holding the task name or id (default: task)")
    p.add_argument("--task", "-t", action="append", metavar="TASK",
                   help="score every row with this task (name or id) instead of its own; "
                   "repeat or comma-separate for several: each row then gives one output per "
                   "task")
    p.add_argument("--scores", action="store_true",
                   help="also write each row's scores and labels (the task's own classes)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N",
                   help=f"rows per model call, at most (default: {DEFAULT_BATCH_SIZE})")
    p.add_argument("--runner", choices=(IN_PROCESS, *RUNNERS), default=IN_PROCESS,
                   help="in-process (default: this process, every core, no Beam needed), or "
                   "an Apache Beam runner: direct (local, offline), dataflow, flink, spark")
    p.add_argument("--threads", type=int, metavar="N",
                   help="in-process: model calls in flight (default: one per core)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing output files")
    p.add_argument("--dry-run", action="store_true",
                   help="print the job (model version, files, options, steps) and run nothing; "
                   "contacts no remote service")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_run, pass_unknown_args=True)


def _options(args: argparse.Namespace) -> ScoreOptions:
    return ScoreOptions(
        model=args.model, inputs=tuple(args.input), output=args.output, fmt=args.format,
        spec=RowSpec(text_field=args.text_field, task_field=args.task_field,
                     tasks=parse_task_option(args.task or [])),
        with_scores=args.scores, batch_size=args.batch_size, overwrite=args.overwrite)


def _print_summary(summary: Summary, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary.to_dict()))
        return
    from rich.console import Console

    Console().print(summary.render())


def _in_process(args: argparse.Namespace, options: ScoreOptions) -> Summary | None:
    from ._job import match_inputs, output_paths
    from ._local import Progress, default_threads, run_in_process
    from ._model import locate_model, op_threads_for

    if args.threads is not None and args.threads < 1:
        raise ScoreError(f"--threads must be at least 1, got {args.threads}")
    if args.dry_run:
        location = locate_model(options.model)
        files = match_inputs(options)
        print("dry run: nothing is read, scored or written\n")
        calls = args.threads or default_threads()
        print(f"runner:   in-process, {calls} model calls in flight, "
              f"{op_threads_for(calls)} TensorFlow thread(s) per op each")
        print(f"model:    {location.describe()}")
        print(f"input:    {len(files)} file{'s' if len(files) != 1 else ''}: "
              + ", ".join(files[:5]) + (", ..." if len(files) > 5 else ""))
        print("outputs:  " + "\n          ".join(output_paths(options.output)))
        print(f"batches:  at most {options.batch_size} rows, tasks mixed")
        return None

    import time

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as Bar

    err = Console(stderr=True)
    loading = err.status("loading the model")
    bar = Bar(TextColumn("scoring"), BarColumn(), TaskProgressColumn(),
              TextColumn("{task.fields[rows]:>12,} rows  {task.fields[rate]:>8,.0f} rows/s"),
              TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True)
    state: dict[str, Any] = {}

    def on_start(progress: Progress) -> None:
        loading.stop()
        bar.start()
        state["progress"], state["start"] = progress, time.perf_counter()
        state["task"] = bar.add_task("", total=progress.total_bytes, rows=0, rate=0.0)

    def on_tick() -> None:
        progress = state["progress"]
        elapsed = max(time.perf_counter() - state["start"], 1e-9)
        bar.update(state["task"], completed=progress.bytes_read, rows=progress.rows,
                   rate=progress.rows / elapsed)

    loading.start()  # the model loads in run_in_process, while the input is being read
    try:
        return run_in_process(options, threads=args.threads, on_start=on_start,
                              on_tick=on_tick)
    finally:
        loading.stop()
        bar.stop()


def _quiet_beam() -> None:
    """Beam and the Google libraries it imports log warnings meant for their developers on every
    run; show errors only (everything with HEADSWITCH_DEBUG=1)."""
    import logging
    import os
    import warnings

    if os.environ.get("HEADSWITCH_DEBUG"):
        return
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    for module in ("apache_beam", "google"):
        warnings.filterwarnings("ignore", module=module)


def _on_beam(args: argparse.Namespace, options: ScoreOptions) -> Summary | None:
    _quiet_beam()
    try:
        from . import _beam
    except ImportError as exc:
        raise ScoreError(f"--runner {args.runner} needs Apache Beam, which is not installed "
                         f"({exc})", hint=_BEAM_HINT) from exc
    plan = _beam.plan(options, args.runner, args.unknown_args, dry_run=args.dry_run)
    if args.dry_run:
        print("dry run: nothing is read, scored or written; no remote service is contacted\n")
        print(_beam.describe(plan))
        return None
    from rich.console import Console

    err = Console(stderr=True)

    def on_started(result: Any) -> None:
        job_id = getattr(result, "job_id", None)
        if callable(job_id) and args.runner == "dataflow":
            flags = plan.flags()
            err.print(f"Dataflow job {job_id()}: https://console.cloud.google.com/dataflow/jobs/"
                      f"{flags.get('region')}/{job_id()}?project={flags.get('project')}")

    with err.status(f"running the Beam pipeline ({RUNNERS[args.runner]})"):
        return _beam.run(plan, on_started=on_started)


def _run(args: argparse.Namespace) -> int:
    unknown = list(getattr(args, "unknown_args", []) or [])
    try:
        _check_installed()
        options = _options(args)
        if args.runner == IN_PROCESS:
            if unknown:
                raise ScoreError(f"unrecognised option(s): {' '.join(unknown)}",
                                 hint="options for Apache Beam need a Beam runner: --runner "
                                 + "|".join(RUNNERS))
            summary = _in_process(args, options)
        else:
            args.unknown_args = unknown
            summary = _on_beam(args, options)
    except ScoreError as exc:
        report(exc, "headswitch score")
        return 2
    if summary is not None:
        _print_summary(summary, args.json)
    return 0
