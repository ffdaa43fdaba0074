"""Deploy an export: ``headswitch deploy vertex`` (Vertex AI), and the values that the Dockerfile,
docker-compose.yml and k8s/ manifests share with it.

    from headswitch.deploy import VertexOptions, plan_vertex, run_vertex, GoogleVertexBackend
    plan = plan_vertex(VertexOptions(project="p", region="us-central1", bucket="gs://b"))
    print(plan.describe())                      # what would be called, nothing contacted
    run_vertex(plan, GoogleVertexBackend("p", "us-central1"))

The Google client libraries (``headswitch[vertex]``) are imported only by ``GoogleVertexBackend``.
"""

from headswitch.contract import GRPC_PORT, REST_PORT

from ._errors import DeployError
from ._layout import LocalModel, scan_model_dir
from ._serving import (
    HEALTH_ROUTE,
    METRICS_PATH,
    MODEL_NAME,
    PREDICT_ROUTE,
    READY_ROUTE,
    SERVER_FLAGS,
    server_args,
    serving_tensorflow_version,
)
from ._vertex import (
    PREBUILT_TF,
    GoogleVertexBackend,
    Upload,
    VertexBackend,
    VertexOptions,
    VertexPlan,
    VertexResult,
    plan_vertex,
    prebuilt_image,
    predict_url,
    run_vertex,
    sample_requests,
)

__all__ = [
    "GRPC_PORT",
    "HEALTH_ROUTE",
    "METRICS_PATH",
    "MODEL_NAME",
    "PREBUILT_TF",
    "PREDICT_ROUTE",
    "READY_ROUTE",
    "REST_PORT",
    "SERVER_FLAGS",
    "DeployError",
    "GoogleVertexBackend",
    "LocalModel",
    "Upload",
    "VertexBackend",
    "VertexOptions",
    "VertexPlan",
    "VertexResult",
    "plan_vertex",
    "prebuilt_image",
    "predict_url",
    "run_vertex",
    "sample_requests",
    "scan_model_dir",
    "server_args",
    "serving_tensorflow_version",
]
