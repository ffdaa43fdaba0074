"""``headswitch deploy vertex``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from headswitch import contract

from ._vertex import DEFAULT_MACHINE_TYPE


def register(subparsers: Any) -> None:
    """Add ``deploy`` with its sub-subcommand ``vertex``."""
    deploy = subparsers.add_parser(
        "deploy", help="deploy an export to a managed service (Vertex AI)",
        description="Deploy an exported model. Kubernetes needs no command: see k8s/.")
    targets = deploy.add_subparsers(dest="target", required=True, metavar="TARGET")
    p = targets.add_parser(
        "vertex", help="upload to Cloud Storage, register on Vertex AI, deploy to an endpoint",
        description="Upload every numbered version of BASE to gs://BUCKET/models/headswitch/, "
        "register it as a Vertex AI Model served by the headswitch TensorFlow Serving image "
        "(custom container; or Vertex's prebuilt TensorFlow image with --prebuilt), create or "
        "reuse an endpoint and deploy the model to it. --dry-run prints every step with its "
        "exact parameters and calls nothing.")
    p.add_argument("--model-dir", type=Path, default=Path(contract.DEFAULT_BASE), metavar="BASE",
                   help="model base folder holding numbered versions (default: "
                   f"{contract.DEFAULT_BASE})")
    p.add_argument("--project", required=True, help="Google Cloud project id")
    p.add_argument("--region", required=True, help="Vertex AI region, e.g. us-central1")
    p.add_argument("--bucket", required=True, metavar="gs://BUCKET[/PREFIX]",
                   help="Cloud Storage location; the model goes to BUCKET/models/headswitch/")
    p.add_argument("--image", metavar="URI",
                   help="headswitch serving image built from the Dockerfile (default: "
                   "REGION-docker.pkg.dev/PROJECT/headswitch/headswitch-serving:<TF version>)")
    p.add_argument("--machine-type", default=DEFAULT_MACHINE_TYPE,
                   help=f"Vertex AI machine type (default: {DEFAULT_MACHINE_TYPE})")
    p.add_argument("--min-replicas", type=int, default=1, metavar="N",
                   help="minimum replica count (default: 1)")
    p.add_argument("--max-replicas", type=int, default=None, metavar="M",
                   help="maximum replica count (default: --min-replicas)")
    p.add_argument("--endpoint", metavar="E",
                   help="endpoint id, resource name or display name (default: reuse the newest "
                   "endpoint named 'headswitch', or create it)")
    p.add_argument("--prebuilt", action="store_true",
                   help="serve with Vertex AI's prebuilt TensorFlow 2.15 image instead (refused "
                   "for models exported by a newer TensorFlow)")
    p.add_argument("--dry-run", action="store_true",
                   help="print every step with its exact parameters; call nothing")
    p.add_argument("--json", action="store_true", help="with --dry-run: print the plan as JSON")
    p.set_defaults(func=_vertex)


def _vertex(args: argparse.Namespace) -> int:
    from headswitch._errors import report as report_error

    from ._errors import DeployError
    from ._vertex import (
        GoogleVertexBackend,
        VertexOptions,
        plan_vertex,
        run_vertex,
        sample_requests,
    )

    options = VertexOptions(
        project=args.project, region=args.region, bucket=args.bucket, model_dir=args.model_dir,
        image=args.image, machine_type=args.machine_type, min_replicas=args.min_replicas,
        max_replicas=args.max_replicas, endpoint=args.endpoint, prebuilt=args.prebuilt)
    try:
        plan = plan_vertex(options, allow_placeholders=args.dry_run)
        if args.dry_run:
            if args.json:
                print(json.dumps(plan.to_dict(), indent=2))
            else:
                print("dry run: nothing is uploaded, registered or deployed\n")
                print(plan.describe())
                print()
                print(sample_requests(plan.to_dict()["predict_url"], plan.model))
            return 0
        GoogleVertexBackend.check_installed()
        for note in plan.notes:
            print(f"note: {note}", file=sys.stderr)
        result = run_vertex(plan, GoogleVertexBackend(options.project, options.region))
    except DeployError as e:
        report_error(e, "deploy failed")
        return 2
    print()
    print(f"endpoint:    {result.endpoint}")
    print(f"predict URL: {result.predict_url}")
    print()
    print(sample_requests(result.predict_url, plan.model))
    return 0
