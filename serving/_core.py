"""What both front ends share (``ServerCore`` plus the predict / metadata / status
implementations): model versions and config reloads, batching, warmup and metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import numpy as np

from ._batching import BatchingSession, BatchScheduler
from ._config import BatchingOptions, ModelConfig, per_model_batching_options
from ._errors import ServingError, invalid_argument
from ._inference import Options
from ._limits import Limits
from ._manager import ModelManager, VersionStatus
from ._memory import MemoryReleaser
from ._metrics import Metrics
from ._servable import Prediction, Servable, load_servable, run_predict
from ._tensors import from_proto, to_proto, to_proto_content
from ._warmup import run_warmup

_log = logging.getLogger(__name__)

SIGNATURE_DEF_FIELD = "signature_def"
_STATE_ENUM = {"START": 10, "LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}
# Warmup records are the model's own: TF Serving replays them whatever their size.
_NO_LIMITS = Limits(max_request_bytes=2**62, max_examples=2**62, max_string_bytes=2**62)


class ServingCore:
    """``ServerCore``: ``batching`` (None: off) applies to every model, unless
    ``per_model_batching``: then a version is batched with its own ``batching_params.pbtxt``
    and not at all without one (``--enable_per_model_batching_parameters``)."""

    def __init__(
        self,
        configs: list[ModelConfig],
        *,
        batching: BatchingOptions | None,
        poll_seconds: float,
        max_load_retries: int,
        load_retry_interval: float,
        enable_warmup: bool = True,
        limits: Limits | None = None,
        per_model_batching: bool = False,
        saved_model_tags: tuple[str, ...] = ("serve",),
        session_config: Any = None,
        warmup_iterations: int = 1,
        method_name_check: bool = False,
        tensor_content: bool = False,
        allow_labels_for_unavailable: bool = False,
        prefer_tflite: bool = False,
    ) -> None:
        self.limits = limits or Limits()
        self.metrics = Metrics()
        self.memory = MemoryReleaser()
        self.batching = batching
        self.per_model_batching = per_model_batching and batching is not None
        self.scheduler = BatchScheduler(batching, self.metrics) if batching is not None else None
        self.enable_warmup = enable_warmup
        self.saved_model_tags = saved_model_tags
        self.session_config = session_config
        self.warmup_iterations = max(warmup_iterations, 1)
        self.method_name_check = method_name_check
        self.tensor_content = tensor_content
        self.prefer_tflite = prefer_tflite
        self.manager = ModelManager(
            configs, self._load, self._unload, poll_seconds, max_load_retries,
            load_retry_interval, allow_labels_for_unavailable,
        )

    # ---------------------------------------------------------------- load / unload

    def _load(self, config: ModelConfig, version: int, path: str) -> Servable:
        try:
            servable = load_servable(
                config.name, version, path, self.saved_model_tags, self.session_config,
                self.prefer_tflite,
            )
            options = self.batching
            if self.per_model_batching:
                options = per_model_batching_options(path)
        except ServingError as exc:
            self.metrics.load_attempt_count.labels(path, exc.code_name).inc()
            raise
        try:
            if self.scheduler is not None and options is not None:
                batching = BatchingSession(self.scheduler, servable, options)
                servable.runner = batching.run
                servable.batching = batching
            if self.enable_warmup:
                run_warmup(path, lambda request: self._warmup_one(servable, request),
                           self.warmup_iterations)
        except BaseException as exc:
            self._unload(servable)
            code = exc.code_name if isinstance(exc, ServingError) else "UNKNOWN"
            self.metrics.load_attempt_count.labels(path, code).inc()
            raise
        self.metrics.load_attempt_count.labels(path, "success").inc()
        return servable

    def _warmup_one(self, servable: Servable, request: Any) -> None:
        """One warmup record, run like TF Serving's warmup ``RunPredict`` (its runtime latency
        is recorded under the model name the record carries)."""
        self.predict_arrays(
            servable,
            request.model_spec.name,
            request.model_spec.signature_name,
            dict(request.inputs),
            lambda alias, proto: from_proto(proto, alias, _NO_LIMITS),
            list(request.output_filter),
        )

    def _unload(self, servable: Servable) -> None:
        if servable.batching is not None:
            servable.batching.close()
        servable.close()

    def start(self, timeout: float | None) -> None:
        self.manager.start()
        self.manager.wait_initial(timeout)

    def reload(self, configs: list[ModelConfig]) -> None:
        """``ServerCore::ReloadConfig`` (see ``ModelManager.reload``)."""
        self.manager.reload(configs)

    def reload_config_request(self, request: Any) -> Any:
        """``ModelService.HandleReloadConfigRequest``. A failure is the RPC's status (gRPC
        sends no response with it). Requested metrics are reported with an increase of 0: the
        embedded server has none of TensorFlow's C++ metrics they name."""
        from tensorflow_serving.apis import model_management_pb2

        from ._config import model_configs_from_message

        response = model_management_pb2.ReloadConfigResponse()
        error: ServingError | None = None
        if request.config.WhichOneof("config") != "model_config_list":
            error = invalid_argument(
                "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
                "ModelConfigList is currently supported"
            )
        else:
            try:
                self.reload(model_configs_from_message(request.config))
            except ServingError as exc:
                error = exc.with_traceback(None)  # no frame (and its data) kept
        if error is not None:
            _log.error("ReloadConfig failed: %s", error.message)
            raise error
        for name in request.metric_names:
            response.metric.add(name=name, int64_value_increase=0)
        return response

    def stop(self) -> None:
        self.manager.stop()
        if self.scheduler is not None:
            self.scheduler.shutdown()
        self.memory.close()

    # ---------------------------------------------------------------- requests

    @contextmanager
    def servable(self, model_spec: Any) -> Iterator[Servable]:
        """The servable a ``ModelSpec`` asks for (``ServableRequestFromModelSpec``)."""
        choice = model_spec.WhichOneof("version_choice")
        version = int(model_spec.version.value) if choice == "version" else None
        label = str(model_spec.version_label) if choice == "version_label" else None
        with self.manager.acquire(model_spec.name, version, label) as servable:
            yield servable

    def options(self, model_name: str, api: str, timeout_ms: int | None) -> Options:
        return Options(self.limits, self._runtime_recorder(model_name, api), timeout_ms,
                       self.method_name_check)

    def predict_arrays(
        self,
        servable: Servable,
        model_name: str,
        signature_name: str,
        inputs: dict[str, Any],
        to_array: Any,
        output_filter: list[str],
        timeout_ms: int | None = None,
    ) -> Prediction:
        result = run_predict(
            servable,
            signature_name,
            inputs,
            to_array,
            output_filter,
            self._runtime_recorder(model_name, "Predict"),
            timeout_ms,
            self.method_name_check,
        )
        shapes = [getattr(v, "shape", ()) for v in result.outputs.values()]
        self.memory.note(examples=max((int(s[0]) for s in shapes if s), default=0))
        return result

    def predict(self, request: Any, timeout_ms: int | None = None) -> Any:
        """``PredictionService.Predict`` (gRPC semantics)."""
        from tensorflow_serving.apis import predict_pb2

        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        with self.servable(request.model_spec) as servable:
            limits = self.limits
            result = self.predict_arrays(
                servable,
                request.model_spec.name,
                request.model_spec.signature_name,
                dict(request.inputs),
                lambda alias, proto: from_proto(proto, alias, limits),
                list(request.output_filter),
                timeout_ms,
            )
            response = predict_pb2.PredictResponse()
            spec = response.model_spec
            spec.name = request.model_spec.name
            spec.signature_name = result.signature_name
            spec.version.value = servable.version
        # --enable_serialization_as_tensor_content: tensor_content instead of typed values
        convert = to_proto_content if self.tensor_content else to_proto
        for alias, value in result.outputs.items():
            response.outputs[alias].CopyFrom(convert(np.asarray(value)))
        return response

    def classify(self, request: Any, timeout_ms: int | None = None) -> Any:
        """``PredictionService.Classify`` (``TensorflowClassificationServiceImpl``)."""
        from ._inference import classify

        return self._on_examples(classify, "Classify", request, timeout_ms)

    def regress(self, request: Any, timeout_ms: int | None = None) -> Any:
        """``PredictionService.Regress`` (``TensorflowRegressionServiceImpl``)."""
        from ._inference import regress

        return self._on_examples(regress, "Regress", request, timeout_ms)

    def _on_examples(self, run: Callable[[Servable, Any, Options], Any], api: str, request: Any,
                     timeout_ms: int | None) -> Any:
        """``run`` (``classify`` or ``regress``) on the servable ``request``'s ModelSpec
        names."""
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        with self.servable(request.model_spec) as servable:
            return run(servable, request, self.options(request.model_spec.name, api, timeout_ms))

    def multi_inference(self, request: Any, timeout_ms: int | None = None) -> Any:
        """``PredictionService.MultiInference`` (``RunMultiInferenceWithServerCore``): the
        first task's ModelSpec chooses the servable."""
        from tensorflow_serving.apis import model_pb2

        from ._inference import multi_inference

        spec = request.tasks[0].model_spec if request.tasks else model_pb2.ModelSpec()
        with self.servable(spec) as servable:
            return multi_inference(servable, request,
                                   self.options(spec.name, "MultiInference", timeout_ms))

    def _runtime_recorder(self, model_name: str, api: str) -> Any:
        def on_runtime(micros: float) -> None:
            self.metrics.runtime_latency.labels(model_name, api, "TF1").observe(micros)

        return on_runtime

    def get_model_metadata(self, request: Any) -> Any:
        """``PredictionService.GetModelMetadata``."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        if not request.metadata_field:
            raise invalid_argument(
                "GetModelMetadataRequest must specify at least one metadata_field"
            )
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                raise invalid_argument(f"Metadata field {field} is not supported")
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        with self.servable(request.model_spec) as servable:
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, signature in servable.signature_defs.items():
                signature_map.signature_def[key].CopyFrom(signature)
            response.model_spec.name = servable.name
            response.model_spec.version.value = servable.version
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
        return response

    def get_model_status(self, request: Any) -> Any:
        """``ModelService.GetModelStatus`` (a version label is ignored, as upstream)."""
        from tensorflow_serving.apis import get_model_status_pb2

        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        spec = request.model_spec
        version = (
            int(spec.version.value) if spec.WhichOneof("version_choice") == "version" else None
        )
        response = get_model_status_pb2.GetModelStatusResponse()
        for number, status in self.manager.status(spec.name, version):
            _add_status(response, number, status)
        return response

    def record(
        self, model_name: str, api: str, entrypoint: str, error: ServingError | None, started: float
    ) -> None:
        status = "OK" if error is None else error.code_name
        self.metrics.record_request(
            model_name, api, entrypoint, status, (time.perf_counter() - started) * 1e6
        )


def _add_status(response: Any, version: int, status: VersionStatus) -> None:
    entry = response.model_version_status.add()
    entry.version = version
    entry.state = _STATE_ENUM[status.state]
    entry.status.error_code = status.code.value[0] if status.code != grpc.StatusCode.OK else 0
    entry.status.error_message = status.message
