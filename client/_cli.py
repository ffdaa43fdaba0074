"""``headswitch predict``: send texts to a served model and print its predictions."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from headswitch.contract import DEFAULT_MODEL_NAME

from ._core import TaskRef

_DOWN_HINT = "is the server running? `headswitch serve BASE` starts one"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``predict`` subcommand."""
    parser = subparsers.add_parser(
        "predict",
        help="predict texts with a served model (REST or gRPC)",
        description=(
            "Send (text, task) pairs to a served headswitch model and print a table of "
            "predictions (or JSON lines with --json). Texts come from the command line with "
            "--task, or from a JSON lines file of {\"text\": ..., \"task\": ...} objects."
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


def _read_lines(stream: TextIO, name: str, task: TaskRef | None
                ) -> Iterator[tuple[str, TaskRef]]:
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{where}: not JSON ({exc})") from exc
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise TypeError(f'{where}: expected {{"text": "...", "task": ...}}')
        if task is not None:
            yield item["text"], task
        elif "task" in item:
            yield item["text"], _task_ref(item["task"], where)
        else:
            raise ValueError(f'{where}: no "task" (give one per line, or --task)')


def _inputs(args: argparse.Namespace) -> tuple[list[str], list[TaskRef]]:
    task = None if args.task is None else _task_ref(args.task, "--task")
    if args.input is not None:
        if args.texts:
            raise ValueError("give texts on the command line or --input, not both")
        if args.input == "-":
            pairs = list(_read_lines(sys.stdin, "<stdin>", task))
        else:
            with open(args.input, encoding="utf-8") as stream:
                pairs = list(_read_lines(stream, args.input, task))
        return [p[0] for p in pairs], [p[1] for p in pairs]
    if not args.texts:
        raise ValueError("no texts: give TEXT arguments or --input FILE.jsonl")
    if task is None:
        raise ValueError("--task is required with TEXT arguments")
    return list(args.texts), [task] * len(args.texts)


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


def _print_table(predictions: Sequence[Any], where: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(predictions)} predictions from {where}", title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("text", overflow="fold", max_width=48)
    table.add_column("task")
    table.add_column("top label", style="bold")
    table.add_column("score", justify="right")
    table.add_column("other scores", style="dim", overflow="fold")
    for p in predictions:
        others = sorted(((s, label) for label, s in p.scores.items() if label != p.top_label),
                        reverse=True)[:3]
        table.add_row(
            str(p.index),
            p.text,
            f"{p.task_name} ({p.task_id})",
            p.top_label,
            f"{p.top_score:.4f}",
            "  ".join(f"{label} {s:.3f}" for s, label in others),
        )
    Console().print(table)


def run(args: argparse.Namespace) -> int:
    from . import HeadswitchError

    if not 0 < args.timeout < float("inf"):
        print(f"headswitch predict: --timeout must be a positive number of seconds, got "
              f"{args.timeout:g}\n  hint: e.g. --timeout 30 (the default)", file=sys.stderr)
        return 2
    try:
        texts, tasks = _inputs(args)
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
            predictions = client.predict(texts, tasks)
    except HeadswitchError as exc:
        print(f"headswitch predict: {exc}", file=sys.stderr)
        hint = exc.hint
        if hint is None and exc.code == "UNAVAILABLE" and (
                exc.http_status is None or exc.transport == "grpc"):
            hint = _DOWN_HINT
        if hint:
            print(f"  hint: {hint}", file=sys.stderr)
        return 1
    if args.json:
        out = sys.stdout
        for p in predictions:
            out.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
        out.flush()
    else:
        _print_table(predictions, getattr(client, "target", None) or client.url)
    return 0
