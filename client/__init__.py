"""Call a served headswitch model with (text, task) pairs, over REST or gRPC, sync or async.

The four clients have the same methods and return the same values::

    from headswitch.client import RestClient

    with RestClient("http://localhost:8501") as client:
        for p in client.predict(["great match!", "refund please"], task="sentiment"):
            print(p.text, p.task_name, p.top_label, p.top_score)

``RestClient`` / ``AsyncRestClient`` need httpx (``pip install "headswitch[rest]"``),
``GrpcClient`` / ``AsyncGrpcClient`` need grpcio and protobuf (``pip install
"headswitch[grpc]"``), imported when a client is made; no client imports TensorFlow.
Every failure is a :class:`HeadswitchError`.
"""

from ._chunking import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_REQUEST_BYTES
from ._errors import HeadswitchError
from ._grpc import AsyncGrpcClient, GrpcClient
from ._rest import AsyncRestClient, RestClient
from ._retry import RetryPolicy
from ._types import (
    ModelMetadata,
    ModelStatus,
    Prediction,
    SignatureInfo,
    TaskInfo,
    TensorInfo,
    VersionStatus,
)

__all__ = [
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MAX_REQUEST_BYTES",
    "AsyncGrpcClient",
    "AsyncRestClient",
    "GrpcClient",
    "HeadswitchError",
    "ModelMetadata",
    "ModelStatus",
    "Prediction",
    "RestClient",
    "RetryPolicy",
    "SignatureInfo",
    "TaskInfo",
    "TensorInfo",
    "VersionStatus",
]
