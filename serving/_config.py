"""TF Serving's configuration files: ``--model_config_file``, ``--batching_parameters_file``
(and a model's own ``batching_params.pbtxt``), ``--monitoring_config_file``,
``--ssl_config_file``, ``--tensorflow_session_config_file`` (all protobuf text format), and the
``--grpc_channel_arguments`` list.

``ModelServerConfig`` comes from the ``tensorflow-serving-api`` package and ``ConfigProto`` from
TensorFlow. ``BatchingParameters``, ``MonitoringConfig`` and ``SSLConfig`` are not in that
package, so their schema (field names and numbers as in ``session_bundle_config.proto``,
``monitoring_config.proto`` and ``ssl_config.proto``) is declared here and the text is parsed by
protobuf's own ``text_format``, which gives the same syntax and errors as the server.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import ServingError, failed_precondition, invalid_argument

DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


@dataclass(frozen=True)
class VersionPolicy:
    kind: str = "latest"  # "latest", "all" or "specific"
    num_versions: int = 1
    versions: tuple[int, ...] = ()


@dataclass(frozen=True)
class ModelConfig:
    name: str
    base_path: str
    policy: VersionPolicy = field(default_factory=VersionPolicy)
    version_labels: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class BatchingOptions:
    """``BatchingParameters`` with TF Serving's defaults filled in."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    thread_pool_name: str = "batch_threads"
    allowed_batch_sizes: tuple[int, ...] = ()
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int = 0
    pad_variable_length_inputs: bool = False

    @property
    def execution_batch_size(self) -> int:
        """The largest batch one session run gets."""
        if self.enable_large_batch_splitting and self.max_execution_batch_size > 0:
            return self.max_execution_batch_size
        return self.max_batch_size

    def validate(self) -> None:
        """The checks TF Serving makes when it wraps a session for batching."""
        if self.num_batch_threads < 1:
            raise invalid_argument(
                f"num_batch_threads must be positive; was {self.num_batch_threads}"
            )
        if self.max_batch_size <= 0:
            raise invalid_argument(f"max_batch_size must be positive; was {self.max_batch_size}")
        if self.batch_timeout_micros < 0:
            raise invalid_argument(
                f"batch_timeout_micros must be non-negative; was {self.batch_timeout_micros}"
            )
        if self.max_enqueued_batches < 0:
            raise invalid_argument(
                f"max_enqueued_batches must be non-negative; was {self.max_enqueued_batches}"
            )
        if self.allowed_batch_sizes and self.allowed_batch_sizes[-1] != self.max_batch_size:
            raise invalid_argument(
                "Last entry in allowed_batch_sizes must match max_batch_size; last entry was "
                f"{self.allowed_batch_sizes[-1]}; expected {self.max_batch_size}"
            )


@dataclass(frozen=True)
class MonitoringOptions:
    enable: bool = False
    path: str = DEFAULT_PROMETHEUS_PATH


_DYNAMIC: dict[str, Any] = {}


def _dynamic_message(name: str) -> Any:
    """A message class for ``tensorflow.serving.BatchingParameters`` or ``MonitoringConfig``."""
    if not _DYNAMIC:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

        pool = descriptor_pool.DescriptorPool()
        pool.Add(
            descriptor_pb2.FileDescriptorProto.FromString(wrappers_pb2.DESCRIPTOR.serialized_pb)
        )
        fdp = descriptor_pb2.FileDescriptorProto(
            name="headswitch/serving/tf_serving_config_subset.proto",
            package="tensorflow.serving",
            dependency=["google/protobuf/wrappers.proto"],
            syntax="proto3",
        )
        fd = descriptor_pb2.FieldDescriptorProto
        optional, repeated = fd.LABEL_OPTIONAL, fd.LABEL_REPEATED

        def add(
            message: Any,
            name: str,
            number: int,
            kind: int,
            type_name: str = "",
            label: int = optional,
        ) -> None:
            entry = message.field.add(name=name, number=number, type=kind, label=label)
            if type_name:
                entry.type_name = type_name

        batching = fdp.message_type.add(name="BatchingParameters")
        int64_value, string_value = ".google.protobuf.Int64Value", ".google.protobuf.StringValue"
        bool_value = ".google.protobuf.BoolValue"
        add(batching, "max_batch_size", 1, fd.TYPE_MESSAGE, int64_value)
        add(batching, "batch_timeout_micros", 2, fd.TYPE_MESSAGE, int64_value)
        add(batching, "max_enqueued_batches", 3, fd.TYPE_MESSAGE, int64_value)
        add(batching, "num_batch_threads", 4, fd.TYPE_MESSAGE, int64_value)
        add(batching, "thread_pool_name", 5, fd.TYPE_MESSAGE, string_value)
        add(batching, "allowed_batch_sizes", 6, fd.TYPE_INT64, label=repeated)
        add(batching, "pad_variable_length_inputs", 7, fd.TYPE_BOOL)
        add(batching, "enable_large_batch_splitting", 8, fd.TYPE_MESSAGE, bool_value)
        add(batching, "max_execution_batch_size", 9, fd.TYPE_MESSAGE, int64_value)

        ssl = fdp.message_type.add(name="SSLConfig")
        add(ssl, "server_key", 1, fd.TYPE_STRING)
        add(ssl, "server_cert", 2, fd.TYPE_STRING)
        add(ssl, "custom_ca", 3, fd.TYPE_STRING)
        add(ssl, "client_verify", 4, fd.TYPE_BOOL)

        prometheus = fdp.message_type.add(name="PrometheusConfig")
        add(prometheus, "enable", 1, fd.TYPE_BOOL)
        add(prometheus, "path", 2, fd.TYPE_STRING)
        monitoring = fdp.message_type.add(name="MonitoringConfig")
        add(
            monitoring,
            "prometheus_config",
            1,
            fd.TYPE_MESSAGE,
            ".tensorflow.serving.PrometheusConfig",
        )

        pool.Add(fdp)
        for message_name in ("BatchingParameters", "MonitoringConfig", "SSLConfig"):
            descriptor = pool.FindMessageTypeByName(f"tensorflow.serving.{message_name}")
            _DYNAMIC[message_name] = message_factory.GetMessageClass(descriptor)
    return _DYNAMIC[name]


def _batching_message_class() -> Any:
    try:  # Present in some builds of the API package; prefer it when it is there.
        from tensorflow_serving.servables.tensorflow import (
            session_bundle_config_pb2,
        )

        return session_bundle_config_pb2.BatchingParameters
    except ImportError:
        return _dynamic_message("BatchingParameters")


_LOCATION = re.compile(r"^\d+(?::\d+)? : ")


def _parse_text_file(path: str | Path, message: Any) -> Any:
    """``ParseProtoTextFile``: INVALID_ARGUMENT "Invalid protobuf file: 'PATH'", followed here
    by the line protobuf's C++ parser logs in TF Serving ("Error parsing text-format
    tensorflow.serving.ModelServerConfig: LINE:COLUMN: ...")."""
    from google.protobuf import text_format

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ServingError(_not_found_code(), f"{path}; {exc.strerror or exc}") from exc
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        detail = _LOCATION.sub("", str(exc.args[0]) if exc.args else str(exc))
        where = f"{exc.GetLine()}:{exc.GetColumn()}: " if exc.GetLine() is not None else ""
        raise invalid_argument(
            f"Invalid protobuf file: '{path}': Error parsing text-format "
            f"{message.DESCRIPTOR.full_name}: {where}{detail}"
        ) from exc
    return message


def _not_found_code() -> Any:
    import grpc

    return grpc.StatusCode.NOT_FOUND


def parse_batching_parameters(text: str) -> BatchingOptions:
    """Parse ``BatchingParameters`` text format (what ``--batching_parameters_file`` holds)."""
    from google.protobuf import text_format

    message = _batching_message_class()()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise invalid_argument(f"Invalid BatchingParameters: {exc}") from exc
    return _batching_from_message(message)


def _batching_from_message(message: Any) -> BatchingOptions:
    defaults = BatchingOptions()

    def wrapped(name: str, default: Any) -> Any:
        return getattr(message, name).value if message.HasField(name) else default

    return BatchingOptions(
        max_batch_size=int(wrapped("max_batch_size", defaults.max_batch_size)),
        batch_timeout_micros=int(wrapped("batch_timeout_micros", defaults.batch_timeout_micros)),
        max_enqueued_batches=int(wrapped("max_enqueued_batches", defaults.max_enqueued_batches)),
        num_batch_threads=int(wrapped("num_batch_threads", defaults.num_batch_threads)),
        thread_pool_name=str(wrapped("thread_pool_name", "model_server_batch_threads")),
        allowed_batch_sizes=tuple(int(v) for v in message.allowed_batch_sizes),
        enable_large_batch_splitting=bool(wrapped("enable_large_batch_splitting", False)),
        max_execution_batch_size=int(wrapped("max_execution_batch_size", 0)),
        pad_variable_length_inputs=bool(message.pad_variable_length_inputs),
    )


def load_batching_options(path: str | Path | None) -> BatchingOptions:
    """``--enable_batching`` with an optional ``--batching_parameters_file``."""
    if path is None:
        options = BatchingOptions(thread_pool_name="model_server_batch_threads")
    else:
        options = _batching_from_message(_parse_text_file(path, _batching_message_class()()))
    options.validate()
    return options


PER_MODEL_BATCHING_FILE = "batching_params.pbtxt"


def per_model_batching_options(version_dir: str) -> BatchingOptions | None:
    """``GetPerModelBatchingParams`` with ``--enable_per_model_batching_parameters``: the
    version's own ``batching_params.pbtxt``, or None (that version is not batched)."""
    path = os.path.join(version_dir, PER_MODEL_BATCHING_FILE)
    if not os.path.exists(path):
        return None
    options = _batching_from_message(_parse_text_file(path, _batching_message_class()()))
    options.validate()
    return options


@dataclass(frozen=True)
class SslOptions:
    """``SSLConfig``: the server's key and certificate (PEM), a CA for client certificates."""

    server_key: str
    server_cert: str
    custom_ca: str = ""
    client_verify: bool = False


def load_ssl_config(path: str | Path) -> SslOptions:
    """``--ssl_config_file``."""
    message = _parse_text_file(path, _dynamic_message("SSLConfig")())
    return SslOptions(str(message.server_key), str(message.server_cert),
                      str(message.custom_ca), bool(message.client_verify))


def load_session_config(path: str | Path) -> Any:
    """``--tensorflow_session_config_file``: a TensorFlow ``ConfigProto``."""
    from tensorflow.core.protobuf import config_pb2

    return _parse_text_file(path, config_pb2.ConfigProto())


_INT32 = re.compile(r"^\s*[+-]?\d+\s*$")


def parse_channel_arguments(text: str) -> list[tuple[str, int | str]]:
    """``parseGrpcChannelArgs``: ``key=value`` pairs split at commas; a value that reads as a
    32-bit integer is passed as one, any other as a string."""
    arguments: list[tuple[str, int | str]] = []
    if not text:
        return arguments
    for item in text.split(","):
        key, equals, value = item.partition("=")
        if not equals:
            raise invalid_argument(
                f"grpc_channel_arguments: expected key=value, got {item!r} in {text!r}"
            )
        if _INT32.match(value) and -(2**31) <= int(value) < 2**31:
            arguments.append((key, int(value)))
        else:
            arguments.append((key, value))
    return arguments


def load_monitoring_options(path: str | Path | None, enable: bool) -> MonitoringOptions:
    """``--monitoring_config_file`` (``prometheus_config { enable: true path: ... }``)."""
    if path is None:
        return MonitoringOptions(enable=enable)
    message = _parse_text_file(path, _dynamic_message("MonitoringConfig")())
    prometheus = message.prometheus_config
    return MonitoringOptions(
        enable=bool(prometheus.enable) or enable,
        path=str(prometheus.path) or DEFAULT_PROMETHEUS_PATH,
    )


def _is_relative(path: str) -> bool:
    return "://" not in path and not os.path.isabs(path)


def model_configs_from_message(message: Any) -> list[ModelConfig]:
    """Validate a ``ModelServerConfig`` as ``ServerCore`` does and turn it into configs."""
    if message.WhichOneof("config") != "model_config_list":
        raise invalid_argument("Invalid ServerModelConfig")
    configs: list[ModelConfig] = []
    seen: set[str] = set()
    for entry in message.model_config_list.config:
        if entry.name in seen:
            raise invalid_argument(
                f"Illegal to list model {entry.name} multiple times in config list"
            )
        seen.add(entry.name)
        if _is_relative(entry.base_path):
            raise invalid_argument(
                f"Expected model {entry.name} to have an absolute path or URI; "
                f"got base_path()={entry.base_path}"
            )
    for entry in message.model_config_list.config:
        platform = entry.model_platform
        if entry.model_type != 0:  # Deprecated ModelType field.
            if platform:
                raise invalid_argument(
                    "Illegal setting both ModelServerConfig::model_type (deprecated) and "
                    f"ModelServerConfig::model_platform, model name is {entry.name}"
                )
            if entry.model_type != 1:
                raise invalid_argument(
                    f"ModelServerConfig::model_type choice {entry.model_type} not supported."
                )
            platform = "tensorflow"
        if not platform:
            raise invalid_argument(
                "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
                f"ModelServerConfig::model_platform, model name is {entry.name}"
            )
        if platform != "tensorflow":
            raise failed_precondition(f"PlatformConfigMap has no entry for platform {platform}")
        if "://" in entry.base_path:
            raise invalid_argument(
                f"Model {entry.name}: only local base paths are supported, got {entry.base_path}"
            )
        policy_message = entry.model_version_policy
        choice = policy_message.WhichOneof("policy_choice")
        if choice == "all":
            policy = VersionPolicy(kind="all")
        elif choice == "specific":
            policy = VersionPolicy(
                kind="specific", versions=tuple(int(v) for v in policy_message.specific.versions)
            )
        else:
            policy = VersionPolicy(
                kind="latest", num_versions=max(int(policy_message.latest.num_versions), 1)
            )
        labels = tuple(sorted((str(k), int(v)) for k, v in entry.version_labels.items()))
        configs.append(ModelConfig(entry.name, entry.base_path, policy, labels))
    return configs


def load_model_config_file(path: str | Path) -> list[ModelConfig]:
    from tensorflow_serving.config import model_server_config_pb2

    message = _parse_text_file(path, model_server_config_pb2.ModelServerConfig())
    return model_configs_from_message(message)


def session_config(
    *,
    config_file: str | Path | None = None,
    session_parallelism: int = 0,
    intra_op_parallelism: int = 0,
    inter_op_parallelism: int = 0,
) -> Any:
    """The ``ConfigProto`` TF Serving gives every session (``Server::BuildAndStart``): the
    ``--tensorflow_session_config_file``, then the thread-count flags over it. None when
    nothing is set."""
    if intra_op_parallelism > 0 and inter_op_parallelism > 0 and session_parallelism > 0:
        raise invalid_argument(
            "Either configure server_options.tensorflow_session_parallelism or "
            "(server_options.tensorflow_intra_op_parallelism, "
            "server_options.tensorflow_inter_op_parallelism) separately. You cannot configure "
            "all."
        )
    if config_file is None and not (
        intra_op_parallelism or inter_op_parallelism or session_parallelism
    ):
        return None
    from tensorflow.core.protobuf import config_pb2

    config = config_pb2.ConfigProto() if config_file is None else load_session_config(config_file)
    if intra_op_parallelism > 0 or inter_op_parallelism > 0:
        config.intra_op_parallelism_threads = intra_op_parallelism
        config.inter_op_parallelism_threads = inter_op_parallelism
    else:
        config.intra_op_parallelism_threads = session_parallelism
        config.inter_op_parallelism_threads = session_parallelism
    return config
