"""``headswitch serve``: run the embedded TF Serving-compatible server from the command line.

It takes every flag of ``tensorflow_model_server`` 2.19.1 (``model_servers/main.cc``), so that
a deployment's TF Serving arguments run unchanged, with the same meaning (``--port=0`` opens no
TCP port for gRPC, ``--rest_api_port=0`` no REST port), next to this project's own spellings
(``BASE``, ``--grpc-port`` / ``--rest-port`` where 0 picks a free port, the request limits).
A flag that has no effect here (GPU, TPU, XLA, thread-pool tuning of TF Serving's own
runtime) is accepted and logged once. Nothing heavy is imported until the server runs.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

from headswitch.contract import ASSETS_EXTRA, GRPC_PORT, REST_PORT, WARMUP_FILE

from ._limits import Limits

_DEFAULTS = Limits()
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}
_log = logging.getLogger("headswitch.serving")


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _switch(parser: Any, *names: str, default: bool | None, help: str) -> None:
    """A boolean flag as TF Serving takes it: ``--flag``, ``--flag=true`` or ``--flag=false``."""
    parser.add_argument(*names, dest=names[-1].lstrip("-").replace("-", "_"), nargs="?",
                        const=True, default=default, type=_bool, help=help)


@dataclass(frozen=True)
class _Inert:
    """A ``tensorflow_model_server`` flag accepted with no effect here, and why."""

    name: str
    kind: Any
    reason: str


# Flags of tensorflow_model_server 2.19.1 that change nothing in the embedded server.
INERT_FLAGS = (
    _Inert("num_load_threads", int,
           "versions load one at a time in the manager's thread (TF Serving's default, 0)"),
    _Inert("num_unload_threads", int,
           "versions unload one at a time in the manager's thread (TF Serving's default, 0)"),
    _Inert("flush_filesystem_caches", _bool, "TensorFlow's file-system caches are not flushed"),
    _Inert("platform_config_file", str,
           "the embedded server serves TensorFlow SavedModels, configured by the other flags"),
    _Inert("per_process_gpu_memory_fraction", float, "no GPU is used"),
    _Inert("remove_unused_fields_from_bundle_metagraph", _bool,
           "the MetaGraphDef of a loaded version is kept whole"),
    _Inert("num_tflite_pools", int, "TF Lite models are not served here"),
    _Inert("num_tflite_interpreters_per_pool", int, "TF Lite models are not served here"),
    _Inert("xla_cpu_compilation_enabled", _bool,
           "XLA compilation is as TensorFlow's Python runtime has it"),
    _Inert("xla_gpu_compilation_enabled", _bool,
           "XLA compilation is as TensorFlow's Python runtime has it; no GPU is used"),
    _Inert("thread_pool_factory_config_file", str,
           "requests run on the sessions' own thread pools"),
    _Inert("mixed_precision", str, "models run in the precision they were saved in"),
    _Inert("skip_initialize_tpu", _bool, "no TPU is used"),
)


# Boolean flags of the gRPC server and of model loading: (flag, default, help).
_GRPC_AND_MODEL_SWITCHES = (
    ("--use_alts_credentials", False, "serve gRPC with Google ALTS credentials"),
    ("--enable_grpc_healthcheck_service", False,
     "answer the standard grpc.health.v1.Health service"),
    ("--enable_signature_method_name_check", False,
     "Classify / Regress / Predict check the signature's method_name"),
    ("--enable_serialization_as_tensor_content", False,
     "gRPC Predict answers carry tensor_content instead of typed values"),
    ("--enable_profiler", True,
     "TF Serving's profiler service: refused here with a message (default true)"),
    ("--prefer_tflite_model", False,
     "a version with model.tflite is refused (TF Lite is not served here)"),
)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``serve`` subcommand."""
    parser = subparsers.add_parser(
        "serve",
        help="serve SavedModels over TF Serving's gRPC and REST APIs",
        description=(
            "Serve BASE/<version>/saved_model.pb (newest version, polled for new ones) over "
            "TensorFlow Serving's gRPC (PredictionService, ModelService) and REST (/v1/models) "
            "APIs. Takes tensorflow_model_server's flags as they are. SIGTERM or SIGINT stops "
            "accepting connections, finishes in-flight requests and exits 0."
        ),
    )
    parser.add_argument("base", nargs="?", metavar="BASE",
                        help="model base path: the folder holding numbered version folders")
    parser.add_argument("--model-base-path", "--model_base_path", dest="model_base_path",
                        help="same as BASE")
    parser.add_argument("--model-name", "--model_name", dest="model_name", default=None,
                        help="model name in URLs and ModelSpec (default: 'default')")
    parser.add_argument("--model-config-file", "--model_config_file", dest="model_config_file",
                        help="ModelServerConfig text proto (several models, version policies, "
                        "labels)")
    parser.add_argument("--model_config_file_poll_wait_seconds", type=float, default=0.0,
                        help="re-read --model_config_file this often and apply it (models "
                        "added and removed, policies, labels); 0: never (default)")
    parser.add_argument("--grpc-port", dest="grpc_port", type=int, default=None,
                        help=f"gRPC port (default {GRPC_PORT}; 0 picks a free port)")
    parser.add_argument("--port", dest="port", type=int, default=None,
                        help="gRPC port as tensorflow_model_server takes it (0: no TCP port; "
                        "then give --grpc_socket_path)")
    parser.add_argument("--grpc_socket_path", default=None,
                        help="also listen for gRPC on this Unix socket")
    parser.add_argument("--rest-port", dest="rest_port", type=int, default=None,
                        help=f"REST port (default {REST_PORT}; 0 picks a free port; -1 disables "
                        "REST)")
    parser.add_argument("--rest_api_port", dest="rest_api_port", type=int, default=None,
                        help="REST port as tensorflow_model_server takes it (0: no REST)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for every "
                        "interface, as tensorflow_model_server listens)")
    parser.add_argument("--rest_api_num_threads", type=int, default=0,
                        help="threads for REST requests (default 4 per CPU, at least 8)")
    parser.add_argument("--rest_api_timeout_in_ms", type=int, default=30_000,
                        help="a REST request's model run fails with DEADLINE_EXCEEDED after "
                        "this long (default 30000; 0: no limit)")
    _switch(parser, "--rest_api_enable_cors_support", default=False,
            help="add CORS headers (Access-Control-Allow-*) to REST answers")
    _switch(parser, "--enable-batching", "--enable_batching", default=False,
            help="batch concurrent requests (TF Serving's --enable_batching)")
    parser.add_argument("--batching-parameters-file", "--batching_parameters_file",
                        dest="batching_parameters_file", help="BatchingParameters text proto")
    _switch(parser, "--enable_per_model_batching_parameters", default=False,
            help="with --enable_batching: batch each version with the batching_params.pbtxt in "
            "its folder, and not at all without one")
    _switch(parser, "--allow_version_labels_for_unavailable_models", default=False,
            help="allow new version labels to point at versions not loaded yet")
    _switch(parser, "--monitoring", default=False,
            help="serve Prometheus metrics at /monitoring/prometheus/metrics on the REST port")
    parser.add_argument("--monitoring-config-file", "--monitoring_config_file",
                        dest="monitoring_config_file", help="MonitoringConfig text proto")
    parser.add_argument("--poll-seconds", "--file_system_poll_wait_seconds", dest="poll_seconds",
                        type=float, default=1.0,
                        help="seconds between polls of the base path for new versions "
                        "(default 1; 0: once; negative: never)")
    parser.add_argument("--max-num-load-retries", "--max_num_load_retries",
                        dest="max_num_load_retries", type=int, default=5,
                        help="retries of a failed version load (default 5)")
    parser.add_argument("--load-retry-interval-micros", "--load_retry_interval_micros",
                        dest="load_retry_interval_micros", type=int, default=60_000_000,
                        help="wait between load retries in microseconds (default 60 s)")
    _switch(parser, "--enable-model-warmup", "--enable_model_warmup", default=True,
            help=f"replay {ASSETS_EXTRA}/{WARMUP_FILE} at load (default true)")
    parser.add_argument("--num_request_iterations_for_warmup", type=int, default=0,
                        help="replay each warmup record this many times (default 1)")
    parser.add_argument("--saved_model_tags", default="serve",
                        help="comma-separated tags of the MetaGraphDef to load (default serve)")
    parser.add_argument("--tensorflow_session_parallelism", type=int, default=0,
                        help="threads of each session's intra- and inter-op pools (0: auto)")
    parser.add_argument("--tensorflow_intra_op_parallelism", type=int, default=0,
                        help="threads of each session's intra-op pool (0: auto)")
    parser.add_argument("--tensorflow_inter_op_parallelism", type=int, default=0,
                        help="threads of each session's inter-op pool (0: auto)")
    parser.add_argument("--tensorflow_session_config_file", default=None,
                        help="TensorFlow ConfigProto text proto for every session")
    parser.add_argument("--grpc_channel_arguments", default="",
                        help="gRPC server arguments, e.g. grpc.max_connection_age_ms=2000,...")
    parser.add_argument("--grpc_max_threads", type=int, default=0,
                        help="threads for gRPC requests (default 32)")
    parser.add_argument("--ssl_config_file", default=None,
                        help="SSLConfig text proto: serve gRPC over TLS")
    for option, default, text in _GRPC_AND_MODEL_SWITCHES:
        _switch(parser, option, default=default, help=text)
    parser.add_argument("--version", action="store_true",
                        help="print the server and TensorFlow versions and exit")
    inert = parser.add_argument_group(
        "tensorflow_model_server flags without effect here (accepted, logged once)")
    for flag in INERT_FLAGS:
        if flag.kind is _bool:
            _switch(inert, f"--{flag.name}", default=None, help=flag.reason)
        else:
            inert.add_argument(f"--{flag.name}", type=flag.kind, default=None, help=flag.reason)
    limits = parser.add_argument_group(
        "request limits and timeouts (TF Serving has none; requests beyond a limit get an "
        "error that names it)"
    )
    limits.add_argument("--max-request-bytes", type=_positive_int,
                        default=_DEFAULTS.max_request_bytes,
                        help="largest REST body (413 beyond) or gRPC message "
                        f"(RESOURCE_EXHAUSTED) (default {_DEFAULTS.max_request_bytes}, 16 MiB)")
    limits.add_argument("--max-examples", type=_positive_int, default=_DEFAULTS.max_examples,
                        help="examples per request, dimension 0 of each input "
                        f"(default {_DEFAULTS.max_examples})")
    limits.add_argument("--max-string-bytes", type=_positive_int,
                        default=_DEFAULTS.max_string_bytes,
                        help=f"bytes in one string value (default {_DEFAULTS.max_string_bytes}, "
                        "1 MiB)")
    limits.add_argument("--max-values", type=_positive_int, default=_DEFAULTS.max_values,
                        help="values in one request (JSON numbers, strings, lists and objects; "
                        "tensor values over gRPC), counted before the request is read "
                        f"(default {_DEFAULTS.max_values})")
    limits.add_argument("--read-timeout", type=_positive_float, default=_DEFAULTS.read_timeout,
                        help="seconds a REST request may go without sending data while it "
                        f"arrives (default {_DEFAULTS.read_timeout:g})")
    limits.add_argument("--idle-timeout", type=_positive_float, default=_DEFAULTS.idle_timeout,
                        help="seconds a REST or gRPC connection may stay open without a request "
                        f"(default {_DEFAULTS.idle_timeout:g})")
    parser.add_argument("--drain-seconds", dest="drain_seconds", type=float, default=30.0,
                        help="on SIGTERM, how long in-flight requests may take to finish "
                        "(default 30)")
    parser.set_defaults(func=run)


def _ports(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """(gRPC TCP port or None, REST port or None) from either spelling."""
    if args.port is not None:
        grpc_port = None if args.port == 0 else args.port
    else:
        grpc_port = GRPC_PORT if args.grpc_port is None else args.grpc_port
    if args.rest_api_port is not None:
        rest_port = None if args.rest_api_port == 0 else args.rest_api_port
    elif args.rest_port is not None:
        rest_port = None if args.rest_port < 0 else args.rest_port
    else:
        rest_port = REST_PORT
    return grpc_port, rest_port


def _setup_logging() -> None:
    """The server's log on stderr, one line an event (loads, unloads, refusals), as
    tensorflow_model_server logs its own."""
    if _log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname).1s %(name)s] %(message)s"))
    _log.addHandler(handler)
    _log.setLevel(logging.INFO)
    _log.propagate = False


def _version() -> int:
    from headswitch import __version__
    from headswitch._quiet import import_tensorflow

    tf = import_tensorflow(keras=False)
    print(f"TensorFlow ModelServer: headswitch {__version__} (embedded server, TF Serving "
          f"2.19.1 API)\nTensorFlow Library: {tf.__version__}")
    return 0


def server_options(args: argparse.Namespace) -> dict[str, Any]:
    """``ModelServer``'s keyword arguments for a parsed command line (logs each flag that has
    no effect here)."""
    from ._config import session_config

    grpc_port, rest_port = _ports(args)
    for flag in INERT_FLAGS:
        if getattr(args, flag.name) is not None:
            _log.warning("--%s has no effect in headswitch's embedded server: %s", flag.name,
                         flag.reason)
    base = args.base or args.model_base_path
    return dict(
        model_name=args.model_name,
        model_base_path=None if args.model_config_file else base,
        model_config_file=args.model_config_file,
        model_config_file_poll_seconds=args.model_config_file_poll_wait_seconds,
        grpc_port=grpc_port,
        rest_port=rest_port,
        host=args.host,
        grpc_socket_path=args.grpc_socket_path or None,
        grpc_channel_arguments=args.grpc_channel_arguments,
        grpc_max_workers=args.grpc_max_threads if args.grpc_max_threads > 0 else 32,
        ssl_config_file=args.ssl_config_file or None,
        use_alts_credentials=bool(args.use_alts_credentials),
        grpc_health_check=bool(args.enable_grpc_healthcheck_service),
        profiler=bool(args.enable_profiler),
        rest_threads=args.rest_api_num_threads if args.rest_api_num_threads > 0 else None,
        rest_timeout_ms=args.rest_api_timeout_in_ms,
        cors=bool(args.rest_api_enable_cors_support),
        enable_batching=bool(args.enable_batching),
        batching_parameters_file=args.batching_parameters_file or None,
        per_model_batching=bool(args.enable_per_model_batching_parameters),
        allow_version_labels_for_unavailable_models=bool(
            args.allow_version_labels_for_unavailable_models),
        monitoring=bool(args.monitoring),
        monitoring_config_file=args.monitoring_config_file or None,
        poll_seconds=args.poll_seconds,
        max_num_load_retries=args.max_num_load_retries,
        load_retry_interval_seconds=max(args.load_retry_interval_micros, 0) / 1e6,
        enable_model_warmup=bool(args.enable_model_warmup),
        warmup_iterations=max(args.num_request_iterations_for_warmup, 1),
        saved_model_tags=tuple(args.saved_model_tags.split(",")),
        session_config=session_config(
            config_file=args.tensorflow_session_config_file or None,
            session_parallelism=args.tensorflow_session_parallelism,
            intra_op_parallelism=args.tensorflow_intra_op_parallelism,
            inter_op_parallelism=args.tensorflow_inter_op_parallelism,
        ),
        signature_method_name_check=bool(args.enable_signature_method_name_check),
        tensor_content_responses=bool(args.enable_serialization_as_tensor_content),
        prefer_tflite_model=bool(args.prefer_tflite_model),
        limits=Limits(
            max_request_bytes=args.max_request_bytes,
            max_examples=args.max_examples,
            max_string_bytes=args.max_string_bytes,
            max_values=args.max_values,
            read_timeout=args.read_timeout,
            idle_timeout=args.idle_timeout,
        ),
    )


def run(args: argparse.Namespace) -> int:
    """Start the server, print one line, serve until SIGTERM / SIGINT, drain, return 0."""
    from headswitch._quiet import import_tensorflow

    from . import ModelServer, ServingError

    if args.version:
        return _version()
    if args.base and args.model_base_path and args.base != args.model_base_path:
        print("headswitch serve: give BASE or --model_base_path, not both", file=sys.stderr)
        return 2
    if (args.base or args.model_base_path) is None and args.model_config_file is None:
        print(
            "headswitch serve: give BASE (or --model_base_path) or --model_config_file",
            file=sys.stderr,
        )
        return 2
    _setup_logging()
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    import_tensorflow(keras=False)
    try:
        server = ModelServer(**server_options(args))
    except ServingError as exc:
        print(f"headswitch serve: {exc.to_string()}", file=sys.stderr)
        return 1
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    # Start in a thread so that SIGTERM / SIGINT still work while models load (TF Serving
    # waits for the first versions before it opens its ports, possibly for a long time).
    failure: list[BaseException] = []

    def start() -> None:
        try:
            server.start()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failure.append(exc)

    starter = threading.Thread(target=start, name="headswitch-serve-start", daemon=True)
    starter.start()
    while starter.is_alive():
        if stop.wait(0.2):
            server.stop(grace=args.drain_seconds)
            starter.join()
            _restore(previous)
            return 0
    if failure:
        _restore(previous)
        error = failure[0]
        message = error.to_string() if isinstance(error, ServingError) else str(error)
        print(f"headswitch serve: {message}", file=sys.stderr)
        return 1
    try:
        models = ", ".join(
            f"{name} (version {', '.join(str(v) for v in server.loaded_versions(name)) or '-'})"
            for name in server.model_names
        )
        rest = f", REST {server.rest_url}" if server.rest_url else ""
        socket = (f" (gRPC also on unix:{server.grpc_socket_path})"
                  if server.grpc_socket_path and server.grpc_port is not None else "")
        print(f"headswitch serve: serving {models} on gRPC {server.grpc_address}{rest}{socket}",
              flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop(grace=args.drain_seconds)
        _restore(previous)
    return 0


def _restore(previous: dict[signal.Signals, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
