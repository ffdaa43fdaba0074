"""``headswitch predict``: send texts to a served model and print its predictions."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, BinaryIO, NamedTuple

from headswitch.contract import DEFAULT_MODEL_NAME, TASK_REMOVED
from headswitch.tasks import TaskList

from ._core import TaskRef
from ._types import Prediction

_DOWN_HINT = "is the server running? `headswitch serve BASE` starts one"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``predict`` subcommand."""
    parser = subparsers.add_parser(
        "predict",
        help="predict texts with a served model (REST or gRPC)",
        description=(
            "Send (text, task) pairs to a served headswitch model and print a table of "
            "predictions (or JSON lines with --json). Texts come from the command line with "
            "--task, or from a JSON lines file of {\"text\": ..., \"task\": ...} objects: "
            "every good line is answered, each bad one (not JSON, a removed or unknown task) "
            "is reported on stderr with its line and reason (as JSON error rows with --json, "
            "like `headswitch score`'s), and the exit status is then 1."
        ),
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--rest", metavar="URL",
                        help="TF Serving REST address (default http://localhost:8501)")
    target.add_argument("--grpc", metavar="HOST:PORT", help="TF Serving gRPC address")
    target.add_argument("--vertex", metavar="ENDPOINT",
                        help="a Vertex AI endpoint: URL or projects/P/locations/R/endpoints/E")
    parser.add_argument("--model", default=DEFAULT_MODEL_NAME,
                        help=f"model name (default {DEFAULT_MODEL_NAME})")
    version = parser.add_mutually_exclusive_group()
    version.add_argument("--version", type=int, help="model version (default: the latest)")
    version.add_argument("--label", help="model version label, e.g. stable")
    parser.add_argument("--task", "-t",
                        help="task id or name for every text (overrides \"task\" in --input)")
    parser.add_argument("--input", "-i", metavar="FILE.jsonl",
                        help='JSON lines of {"text": ..., "task": ...} ("-" reads stdin)')
    parser.add_argument("--json", action="store_true", help="print JSON lines, not a table")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds per request (default 30)")
    parser.add_argument("--retries", type=int, default=2,
                        help="retries when the server is unavailable (default 2)")
    parser.add_argument("--token", default=os.environ.get("HEADSWITCH_TOKEN"),
                        help="bearer token (default $HEADSWITCH_TOKEN)")
    parser.add_argument("--ca", metavar="PEM", help="CA certificate to verify the server with")
    parser.add_argument("--insecure", action="store_true",
                        help="REST over https without verifying the certificate")
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to predict")
    parser.set_defaults(func=run)


def _task_ref(value: Any, where: str) -> TaskRef:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"{where}: task must be an id or a name, got {value!r}")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


class _Line(NamedTuple):
    """A line of --input to predict: its number, text, task (an id or a name, not yet checked)
    and its object as read."""

    number: int
    text: str
    task: TaskRef
    item: dict[str, Any]


class _BadLine(NamedTuple):
    """A line of --input with no prediction, reported as ``headswitch score`` reports a row:
    ``kind`` is one word (bad_json, not_an_object, missing_field, bad_text, bad_task,
    unknown_task), ``item`` the line's object, or its text when it is none."""

    number: int
    kind: str
    message: str
    item: Any

    def to_dict(self, source: str) -> dict[str, Any]:
        return {"file": source, "line": self.number, "error": self.kind,
                "message": self.message, "input": self.item}


def _read_lines(stream: BinaryIO, task: TaskRef | None) -> tuple[list[_Line], list[_BadLine]]:
    """The lines of a JSON lines stream to predict, and the lines that cannot be (blank lines
    are neither)."""
    good: list[_Line] = []
    bad: list[_BadLine] = []
    for number, raw in enumerate(stream, 1):
        if not raw.strip():
            continue
        shown = raw.decode("utf-8", "backslashreplace").rstrip("\r\n")
        try:
            item = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            bad.append(_BadLine(number, "bad_json", f"not UTF-8: {exc}", shown))
            continue
        except ValueError as exc:
            bad.append(_BadLine(number, "bad_json", f"not JSON: {exc}", shown))
            continue
        if not isinstance(item, dict):
            bad.append(_BadLine(number, "not_an_object",
                                'expected a JSON object like {"text": ..., "task": ...}', shown))
        elif "text" not in item:
            bad.append(_BadLine(number, "missing_field", "no 'text' field", item))
        elif not isinstance(item["text"], str):
            bad.append(_BadLine(number, "bad_text", "'text' must be a string", item))
        elif task is not None:
            good.append(_Line(number, item["text"], task, item))
        elif "task" not in item:
            bad.append(_BadLine(number, "missing_field",
                                "no 'task' field (give one per line, or --task)", item))
        elif isinstance(item["task"], bool) or not isinstance(item["task"], (int, str)):
            bad.append(_BadLine(number, "bad_task", "'task' must be a task id (integer) or "
                                f"name (string), got {item['task']!r}", item))
        else:
            good.append(_Line(number, item["text"], item["task"], item))
    return good, bad


def _read_input(args: argparse.Namespace) -> tuple[str, list[_Line], list[_BadLine]]:
    """--input: its name, its lines to predict and its bad lines."""
    if args.texts:
        raise ValueError("give texts on the command line or --input, not both")
    task = None if args.task is None else _task_ref(args.task, "--task")
    if args.input == "-":
        return "<stdin>", *_read_lines(sys.stdin.buffer, task)
    with open(args.input, "rb") as stream:
        return args.input, *_read_lines(stream, task)


def _texts(args: argparse.Namespace) -> tuple[list[str], TaskRef]:
    """TEXT arguments and their task."""
    if not args.texts:
        raise ValueError("no texts: give TEXT arguments or --input FILE.jsonl")
    if args.task is None:
        raise ValueError("--task is required with TEXT arguments")
    return list(args.texts), _task_ref(args.task, "--task")


def _why_unknown(client: Any, tasks: TaskList, line: _Line) -> str:
    """Why ``line``'s task is none of the model's: the model's own message for a removed task
    ("task 2 ('spam') was removed in version 2"), else the task list's."""
    from . import HeadswitchError

    task = line.task
    if isinstance(task, str) and task.strip().lstrip("+-").isdigit():
        task = int(task)  # not a name: an id written as text
    try:
        client.predict([line.text], task)
    except HeadswitchError as exc:
        if exc.code != "INVALID_ARGUMENT":
            raise
        reason = str(exc.details.get("reason") or "")
        if TASK_REMOVED in reason:
            return reason
    return tasks.unknown(line.task)


def _predict_lines(client: Any, lines: list[_Line]
                   ) -> tuple[list[tuple[_Line, Prediction]], list[_BadLine]]:
    """Each line whose task the model has, predicted (in one call, chunked by the client), and
    each line whose task it has not, with the reason (asked once per such task)."""
    tasks = TaskList(client.tasks())
    good: list[tuple[_Line, int]] = []
    unknown: dict[TaskRef, list[_Line]] = {}
    for line in lines:
        found = tasks.find(line.task)
        if found is None:
            unknown.setdefault(line.task, []).append(line)
        else:
            good.append((line, found))
    bad = [_BadLine(line.number, "unknown_task", reason, line.item)
           for same in unknown.values()
           for reason in [_why_unknown(client, tasks, same[0])] for line in same]
    predictions = client.predict([line.text for line, _ in good],
                                 [task_id for _, task_id in good]) if good else []
    return [(line, p) for (line, _), p in zip(good, predictions)], bad


def _client(args: argparse.Namespace) -> Any:
    from . import GrpcClient, RestClient, RetryPolicy

    common: dict[str, Any] = {
        "timeout": args.timeout,
        "retries": RetryPolicy(max_retries=max(0, args.retries), initial_backoff=0.2),
        "token": args.token,
    }
    if args.vertex is not None:
        return RestClient.for_vertex(args.vertex, verify=args.ca or not args.insecure, **common)
    spec = {"model": args.model, "version": args.version, "version_label": args.label}
    if args.grpc is not None:
        return GrpcClient(args.grpc, root_certificates=args.ca, **spec, **common)
    return RestClient(args.rest or "http://localhost:8501", verify=args.ca or not args.insecure,
                      **spec, **common)


def _print_table(predictions: Sequence[Prediction], where: str,
                 numbers: Sequence[int] | None = None) -> None:
    """``numbers``: each prediction's line of --input, shown instead of its index."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(predictions)} predictions from {where}", title_justify="left")
    table.add_column("line" if numbers is not None else "#", justify="right", style="dim")
    table.add_column("text", overflow="fold", max_width=48)
    table.add_column("task")
    table.add_column("top label", style="bold")
    table.add_column("score", justify="right")
    table.add_column("other scores", style="dim", overflow="fold")
    for k, p in enumerate(predictions):
        others = sorted(((s, label) for label, s in p.scores.items() if label != p.top_label),
                        reverse=True)[:3]
        table.add_row(
            str(p.index if numbers is None else numbers[k]),
            p.text,
            f"{p.task_name} ({p.task_id})",
            p.top_label,
            f"{p.top_score:.4f}",
            "  ".join(f"{label} {s:.3f}" for s, label in others),
        )
    Console().print(table)


def _report_bad(bad: Sequence[_BadLine], source: str, total: int, as_json: bool) -> None:
    """On stderr: each bad line (as JSON lines with --json: ``headswitch score``'s error rows),
    then how many lines failed."""
    for line in sorted(bad):
        if as_json:
            sys.stderr.write(json.dumps(line.to_dict(source), ensure_ascii=False) + "\n")
        else:
            print(f"headswitch predict: {source}:{line.number}: {line.kind}: {line.message}",
                  file=sys.stderr)
    if not as_json:
        print(f"headswitch predict: {len(bad)} of {total} lines of {source} have no "
              "prediction", file=sys.stderr)


def _print(args: argparse.Namespace, client: Any, predictions: Sequence[Prediction],
           numbers: Sequence[int] | None = None) -> None:
    if args.json:
        out = sys.stdout
        for k, p in enumerate(predictions):
            record = p.to_dict()
            if numbers is not None:
                record["line"] = numbers[k]
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
    else:
        _print_table(predictions, getattr(client, "target", None) or client.url, numbers)


def run(args: argparse.Namespace) -> int:
    """0 when every text has a prediction; 1 when a request failed or, with --input, when a
    line has none (each such line is reported on stderr and the others are printed); 2 for a
    mistake in the command."""
    from . import HeadswitchError

    if not 0 < args.timeout < float("inf"):
        print(f"headswitch predict: --timeout must be a positive number of seconds, got "
              f"{args.timeout:g}\n  hint: e.g. --timeout 30 (the default)", file=sys.stderr)
        return 2
    try:
        if args.input is not None:
            source, lines, bad = _read_input(args)
        else:
            texts, task = _texts(args)
    except (OSError, TypeError, ValueError) as exc:
        print(f"headswitch predict: {exc}", file=sys.stderr)
        return 2
    try:
        client = _client(args)
    except (ImportError, OSError, ValueError) as exc:
        print(f"headswitch predict: {exc}", file=sys.stderr)
        return 2
    try:
        with client:
            if args.input is None:
                predictions = client.predict(texts, task)
            else:
                answered, refused = _predict_lines(client, lines) if lines else ([], [])
                bad += refused
    except HeadswitchError as exc:
        print(f"headswitch predict: {exc}", file=sys.stderr)
        hint = exc.hint
        if hint is None and exc.code == "UNAVAILABLE" and (
                exc.http_status is None or exc.transport == "grpc"):
            hint = _DOWN_HINT
        if hint:
            print(f"  hint: {hint}", file=sys.stderr)
        return 1
    if args.input is None:
        _print(args, client, predictions)
        return 0
    # index: the line's place among the lines of --input, as if every line had an answer
    place = {n: k for k, n in enumerate(sorted({line.number for line in lines}
                                               | {line.number for line in bad}))}
    if answered:
        _print(args, client, [replace(p, index=place[line.number]) for line, p in answered],
               [line.number for line, _ in answered])
    if bad:
        _report_bad(bad, source, len(lines) + len(bad) - len(refused), args.json)
        return 1
    return 0
