"""The README's main job: example models -> one task-switching SavedModel -> served on the
embedded TF Serving-compatible server -> (text, task) requests over REST and gRPC.

Run with ``scripts/demo`` (or ``python -m headswitch.demo``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

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
    p.add_argument("--models-dir", default="work/demo/example-models")
    p.add_argument("--out", default="work/demo/models/headswitch")
    p.add_argument("--grpc-port", type=int, default=0, help="0 picks a free port (default)")
    p.add_argument("--rest-port", type=int, default=0, help="0 picks a free port (default)")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from headswitch._quiet import import_tensorflow

    console = Console()
    import_tensorflow()
    from headswitch import contract as c
    from headswitch.client import GrpcClient
    from headswitch.examples import build_example_models
    from headswitch.export import export_models, render_report

    console.rule("1. build example models")
    examples = build_example_models(args.tasks, args.models_dir)
    console.print(f"{len(examples.paths)} models in {args.models_dir}/: "
                  + ", ".join(t.name for t in examples.tasks))

    console.rule("2. export one task-switching SavedModel")
    report = export_models(examples.paths, args.out, manifest=examples.manifest)
    render_report(report, console)

    console.rule("3. serve it on the embedded TF Serving-compatible server")
    from headswitch.serving import ModelServer

    known = {t.name for t in examples.tasks}
    queries = [(text, task) for text, task in QUERIES if task in known]
    model = c.DEFAULT_MODEL_NAME
    with ModelServer(model_name=model, model_base_path=args.out, grpc_port=args.grpc_port,
                     rest_port=args.rest_port) as server:
        console.print(f"serving version {report.version}: gRPC {server.grpc_address}, "
                      f"REST {server.rest_url}")

        url = f"{server.rest_url}/v1/models/{model}:predict"
        console.rule(f"4. REST: POST /v1/models/{model}:predict")
        body: dict[str, object] = {
                "signature_name": c.SIGNATURE_NAMES,
                "instances": [{c.INPUT_TEXT: text, c.INPUT_TASK: task} for text, task in queries]}
        console.print(f"curl -s {url} -d '{json.dumps(body)}'", soft_wrap=True, highlight=False)
        reply = _post(url, body)
        console.print_json(json.dumps({"predictions": reply["predictions"][:1]}))
        rows = [(q[0], q[1], r[c.OUTPUT_TOP_LABEL], r[c.OUTPUT_TOP_SCORE])
                for q, r in zip(queries, reply["predictions"])]
        console.print(_table("REST: one batch, one backbone pass, each example its own task",
                             rows))

        console.rule("5. gRPC: PredictionService.Predict (headswitch.client.GrpcClient)")
        ids = {t.name: i for i, t in enumerate(examples.tasks)}
        assert server.grpc_address is not None
        with GrpcClient(server.grpc_address, model=model) as client:
            predictions = client.predict([q[0] for q in queries],
                                         task=[ids[q[1]] for q in queries])
        rows = [(q[0], q[1], p.top_label, p.top_score) for q, p in zip(queries, predictions)]
        console.print(_table(f"gRPC: {c.SIGNATURE_IDS} with task ids", rows))
    return 0


def _post(url: str, body: dict[str, object]) -> dict[str, Any]:
    import httpx

    response = httpx.post(url, json=body, timeout=30)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def _table(title: str, rows: list[tuple[str, str, str, float]]) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in ("text", "task", "prediction", "score"):
        table.add_column(column, justify="right" if column == "score" else "left")
    for text, task, label, score in rows:
        table.add_row(text, task, label, f"{score:.3f}")
    return table


def main(argv: Sequence[str] | None = None) -> int:
    from headswitch._quiet import native_stderr_quiet

    args = _parse(argv)
    with native_stderr_quiet():
        return run(args)


if __name__ == "__main__":
    sys.exit(main())
