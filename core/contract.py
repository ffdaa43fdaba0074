"""The names a headswitch SavedModel, its servers and its clients agree on.

The exporter writes these signatures, inputs and outputs; the embedded server, the REST and
gRPC clients, the deployers and the tests read them from here. Standard library only, so that
any part (and any user) can import it without the part's dependencies::

    from headswitch import contract
    body = {"signature_name": contract.SIGNATURE_NAMES,
            "instances": [{contract.INPUT_TEXT: "free prize", contract.INPUT_TASK: "spam"}]}
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = [
    "ASSETS_EXTRA",
    "DEFAULT_BASE",
    "DEFAULT_MODEL_NAME",
    "GRPC_PORT",
    "HTTP_STATUS_OF_CODE",
    "INPUT_TASK",
    "INPUT_TASK_ID",
    "INPUT_TEXT",
    "INPUT_UNUSED",
    "MANIFEST_FILE",
    "TASK_REMOVED",
    "OUTPUT_ERROR",
    "OUTPUT_SCORES",
    "OUTPUT_TOP_LABEL",
    "OUTPUT_TOP_SCORE",
    "PREDICT_OUTPUTS",
    "REST_PORT",
    "SIGNATURES",
    "SIGNATURE_IDS",
    "SIGNATURE_INPUTS",
    "SIGNATURE_NAMES",
    "SIGNATURE_TASKS",
    "STATUS_CODES",
    "TASKS_OUTPUTS",
    "TASKS_OUTPUT_ACTIVATION",
    "TASKS_OUTPUT_LABELS",
    "TASKS_OUTPUT_NAME",
    "TASKS_OUTPUT_NUM_CLASSES",
    "TASKS_OUTPUT_TASK_ID",
    "WARMUP_FILE",
]

# ---------------------------------------------------------------------------------- signatures

SIGNATURE_IDS: Final = "serving_default"
"""Predict with task ids: ``text`` string[b], ``task_id`` int32[b]. TF Serving's default."""
SIGNATURE_NAMES: Final = "by_name"
"""Predict with task names: ``text`` string[b], ``task`` string[b]."""
SIGNATURE_TASKS: Final = "tasks"
"""The task list: ``unused`` int32[b] (send ``[0]``)."""
SIGNATURES: Final = (SIGNATURE_IDS, SIGNATURE_NAMES, SIGNATURE_TASKS)

# -------------------------------------------------------------------------------------- inputs

INPUT_TEXT: Final = "text"
INPUT_TASK_ID: Final = "task_id"
INPUT_TASK: Final = "task"
INPUT_UNUSED: Final = "unused"

SIGNATURE_INPUTS: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType({
    SIGNATURE_IDS: MappingProxyType({INPUT_TEXT: "string", INPUT_TASK_ID: "int32"}),
    SIGNATURE_NAMES: MappingProxyType({INPUT_TEXT: "string", INPUT_TASK: "string"}),
    SIGNATURE_TASKS: MappingProxyType({INPUT_UNUSED: "int32"}),
})
"""Each signature's inputs and their TensorFlow dtype names; every input is rank 1."""

# ------------------------------------------------------------------------------------- outputs

OUTPUT_SCORES: Final = "scores"
"""float32[b, K]: the head's own output, padded with 0 to the widest head (K)."""
OUTPUT_TOP_LABEL: Final = "top_label"
"""string[b]: the label of the best score ("" for an example with an error)."""
OUTPUT_TOP_SCORE: Final = "top_score"
"""float32[b]: the best score (0 for an example with an error)."""
OUTPUT_ERROR: Final = "error"
"""string[b]: "" or why the example has no prediction (a bad task id or name). Reported per
example, so that a batching server never fails other requests merged into the same run."""
PREDICT_OUTPUTS: Final = (OUTPUT_SCORES, OUTPUT_TOP_LABEL, OUTPUT_TOP_SCORE, OUTPUT_ERROR)
"""The outputs of both predict signatures. Class counts and labels are in ``tasks``."""

TASKS_OUTPUT_TASK_ID: Final = "task_id"
TASKS_OUTPUT_NAME: Final = "name"
TASKS_OUTPUT_NUM_CLASSES: Final = "num_classes"
TASKS_OUTPUT_LABELS: Final = "labels"
TASKS_OUTPUT_ACTIVATION: Final = "activation"
TASKS_OUTPUTS: Final = (TASKS_OUTPUT_TASK_ID, TASKS_OUTPUT_NAME, TASKS_OUTPUT_NUM_CLASSES,
                        TASKS_OUTPUT_LABELS, TASKS_OUTPUT_ACTIVATION)
"""The outputs of the ``tasks`` signature."""

# ------------------------------------------------------------------------- model and its files

DEFAULT_MODEL_NAME: Final = "headswitch"
"""The model name exports, servers, deployments and clients use unless told otherwise."""
DEFAULT_BASE: Final = f"models/{DEFAULT_MODEL_NAME}"
"""The model base folder (numbered versions inside) exports go to and deployments read."""
GRPC_PORT: Final = 8500
REST_PORT: Final = 8501

ASSETS_EXTRA: Final = "assets.extra"
"""The folder of a version that TF Serving reads warmup requests from."""
WARMUP_FILE: Final = "tf_serving_warmup_requests"
"""``<version>/assets.extra/tf_serving_warmup_requests``: TFRecord of PredictionLog."""
MANIFEST_FILE: Final = "headswitch.json"
"""``<version>/assets.extra/headswitch.json``: tasks, labels, sources and verification."""
TASK_REMOVED: Final = "was removed in version"
"""In the ``error`` of an example whose task was removed: "task 3 ('spam') was removed in
version 4" (the clients recognise a removed task's name by it)."""

# ------------------------------------------------------------------------------- status codes

STATUS_CODES: Final = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
)
"""gRPC / ``tensorflow.error.Code`` status code names; a name's index is its number."""

HTTP_STATUS_OF_CODE: Final[Mapping[str, int]] = MappingProxyType({
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
})
"""The HTTP status TF Serving's REST API answers with for each status code
(``model_servers/http_server.cc``)."""
