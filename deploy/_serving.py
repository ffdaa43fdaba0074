"""What every headswitch deployment agrees on: the TF Serving model name, ports, routes and flags.

The Dockerfile, docker-compose.yml, k8s/ and the Vertex AI deployer all use these values;
tests/deploy checks that the files match this module and the exporter's defaults.
"""

from __future__ import annotations

import re
from importlib import metadata

from headswitch.contract import DEFAULT_MODEL_NAME, GRPC_PORT, REST_PORT

MODEL_NAME = DEFAULT_MODEL_NAME
HEALTH_ROUTE = f"/v1/models/{MODEL_NAME}"
# 200 only while a version is AVAILABLE: TF Serving's GetModelMetadata needs a servable handle
# (get_model_metadata_impl.cc), so it answers 404 before the first load and whenever no version
# is loaded, while the status route above stays 200 once any version is known
# (get_model_status_impl.cc). Readiness probes use this one.
READY_ROUTE = f"/v1/models/{MODEL_NAME}/metadata"
PREDICT_ROUTE = f"/v1/models/{MODEL_NAME}:predict"
METRICS_PATH = "/monitoring/prometheus/metrics"

CONFIG_DIR = "/etc/headswitch"
BATCHING_FILE = f"{CONFIG_DIR}/batching_parameters.txt"
MONITORING_FILE = f"{CONFIG_DIR}/monitoring.config"

# Flags added to tensorflow_model_server's command line by the image's CMD, docker compose,
# the Kubernetes Deployment, the KServe InferenceService and the Vertex AI container spec.
SERVER_FLAGS: tuple[str, ...] = (
    "--enable_batching=true",
    f"--batching_parameters_file={BATCHING_FILE}",
    f"--monitoring_config_file={MONITORING_FILE}",
    "--enable_model_warmup=true",
)

_PIN = re.compile(r"^tensorflow\s*==\s*([0-9][0-9A-Za-z.\-]*)\s*(;|$)")


def serving_tensorflow_version() -> str | None:
    """The TensorFlow version pinned by headswitch's ``tf`` extra (pyproject.toml), which is the
    ``tensorflow/serving`` image tag; None when headswitch's metadata cannot be read."""
    try:
        requirements = metadata.requires("headswitch") or []
    except metadata.PackageNotFoundError:
        return None
    for requirement in requirements:
        match = _PIN.match(requirement.strip())
        if match:
            return match.group(1)
    return None


def server_args(model_base_path: str) -> list[str]:
    """The full tensorflow_model_server argument list for a given model base path."""
    return [
        f"--port={GRPC_PORT}",
        f"--rest_api_port={REST_PORT}",
        f"--model_name={MODEL_NAME}",
        f"--model_base_path={model_base_path}",
        *SERVER_FLAGS,
    ]


def major_minor(version: str) -> tuple[int, int] | None:
    """``"2.19.1"`` -> ``(2, 19)``; None when the text does not start with two numbers."""
    match = re.match(r"^\s*(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else None
