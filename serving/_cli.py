"""``headswitch serve``: run the embedded TF Serving-compatible server from the command line.

Accepts this project's spellings and ``tensorflow_model_server``'s (``--model_name``, ``--port``,
``--rest_api_port``, ``--enable_batching``, ...). Nothing heavy is imported until it runs.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from headswitch.contract import ASSETS_EXTRA, GRPC_PORT, REST_PORT, WARMUP_FILE

from ._limits import Limits

_DEFAULTS = Limits()
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


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


def _switch(parser: argparse.ArgumentParser, *names: str, default: bool, help: str) -> None:
    """A boolean flag as TF Serving takes it: ``--flag``, ``--flag=true`` or ``--flag=false``."""
    parser.add_argument(*names, dest=names[-1].lstrip("-").replace("-", "_"), nargs="?",
                        const=True, default=default, type=_bool, help=help)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``serve`` subcommand."""
    parser = subparsers.add_parser(
        "serve",
        help="serve SavedModels over TF Serving's gRPC and REST APIs",
        description=(
            "Serve BASE/<version>/saved_model.pb (newest version, polled for new ones) over "
            "TensorFlow Serving's gRPC (PredictionService, ModelService) and REST (/v1/models) "
            "APIs. SIGTERM or SIGINT stops accepting connections, finishes in-flight requests "
            "and exits 0."
        ),
    )
    parser.add_argument(
        "base",
        nargs="?",
        metavar="BASE",
        help="model base path: the folder holding numbered version folders",
    )
    parser.add_argument(
        "--model-base-path", "--model_base_path", dest="model_base_path", help="same as BASE"
    )
    parser.add_argument(
        "--model-name",
        "--model_name",
        dest="model_name",
        default=None,
        help="model name in URLs and ModelSpec (default: 'default')",
    )
    parser.add_argument(
        "--model-config-file",
        "--model_config_file",
        dest="model_config_file",
        help="ModelServerConfig text proto (several models, version policies, labels)",
    )
    parser.add_argument(
        "--grpc-port",
        "--port",
        dest="grpc_port",
        type=int,
        default=GRPC_PORT,
        help=f"gRPC port (default {GRPC_PORT}; 0 picks a free port)",
    )
    parser.add_argument(
        "--rest-port",
        "--rest_api_port",
        dest="rest_port",
        type=int,
        default=REST_PORT,
        help=f"REST port (default {REST_PORT}; 0 picks a free port; -1 disables REST)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)",
    )
    _switch(parser, "--enable-batching", "--enable_batching", default=False,
            help="batch concurrent requests (TF Serving's --enable_batching)")
    parser.add_argument(
        "--batching-parameters-file",
        "--batching_parameters_file",
        dest="batching_parameters_file",
        help="BatchingParameters text proto",
    )
    _switch(parser, "--monitoring", default=False,
            help="serve Prometheus metrics at /monitoring/prometheus/metrics on the REST port")
    parser.add_argument(
        "--monitoring-config-file",
        "--monitoring_config_file",
        dest="monitoring_config_file",
        help="MonitoringConfig text proto",
    )
    parser.add_argument(
        "--poll-seconds",
        "--file_system_poll_wait_seconds",
        dest="poll_seconds",
        type=float,
        default=1.0,
        help="seconds between polls of the base path for new versions (default 1)",
    )
    parser.add_argument(
        "--max-num-load-retries",
        "--max_num_load_retries",
        dest="max_num_load_retries",
        type=int,
        default=5,
        help="retries of a failed version load (default 5)",
    )
    parser.add_argument(
        "--load-retry-interval-micros",
        "--load_retry_interval_micros",
        dest="load_retry_interval_micros",
        type=int,
        default=60_000_000,
        help="wait between load retries in microseconds (default 60 s)",
    )
    _switch(parser, "--enable-model-warmup", "--enable_model_warmup", default=True,
            help=f"replay {ASSETS_EXTRA}/{WARMUP_FILE} at load (default true)")
    limits = parser.add_argument_group(
        "request limits and timeouts (TF Serving has none; requests beyond a limit get an "
        "error that names it)"
    )
    limits.add_argument(
        "--max-request-bytes",
        type=_positive_int,
        default=_DEFAULTS.max_request_bytes,
        help="largest REST body (413 beyond) or gRPC message (RESOURCE_EXHAUSTED) "
        f"(default {_DEFAULTS.max_request_bytes}, 16 MiB)",
    )
    limits.add_argument(
        "--max-examples",
        type=_positive_int,
        default=_DEFAULTS.max_examples,
        help=f"examples per request, dimension 0 of each input (default {_DEFAULTS.max_examples})",
    )
    limits.add_argument(
        "--max-string-bytes",
        type=_positive_int,
        default=_DEFAULTS.max_string_bytes,
        help=f"bytes in one string value (default {_DEFAULTS.max_string_bytes}, 1 MiB)",
    )
    limits.add_argument(
        "--read-timeout",
        type=_positive_float,
        default=_DEFAULTS.read_timeout,
        help="seconds a REST request may go without sending data while it arrives "
        f"(default {_DEFAULTS.read_timeout:g})",
    )
    limits.add_argument(
        "--idle-timeout",
        type=_positive_float,
        default=_DEFAULTS.idle_timeout,
        help="seconds a REST or gRPC connection may stay open without a request "
        f"(default {_DEFAULTS.idle_timeout:g})",
    )
    parser.add_argument(
        "--drain-seconds",
        dest="drain_seconds",
        type=float,
        default=30.0,
        help="on SIGTERM, how long in-flight requests may take to finish (default 30)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the server, print one line, serve until SIGTERM / SIGINT, drain, return 0."""
    from . import ModelServer, ServingError
    from ._servable import import_tensorflow

    base = args.base or args.model_base_path
    if args.base and args.model_base_path and args.base != args.model_base_path:
        print("headswitch serve: give BASE or --model_base_path, not both", file=sys.stderr)
        return 2
    if base is None and args.model_config_file is None:
        print(
            "headswitch serve: give BASE (or --model_base_path) or --model_config_file",
            file=sys.stderr,
        )
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    import_tensorflow(quiet=True)
    try:
        server = ModelServer(
            model_name=args.model_name,
            model_base_path=None if args.model_config_file else base,
            model_config_file=args.model_config_file,
            grpc_port=args.grpc_port,
            rest_port=None if args.rest_port < 0 else args.rest_port,
            enable_batching=bool(args.enable_batching),
            batching_parameters_file=args.batching_parameters_file,
            monitoring=bool(args.monitoring),
            monitoring_config_file=args.monitoring_config_file,
            poll_seconds=args.poll_seconds,
            host=args.host,
            max_num_load_retries=args.max_num_load_retries,
            load_retry_interval_seconds=args.load_retry_interval_micros / 1e6,
            enable_model_warmup=bool(args.enable_model_warmup),
            limits=Limits(
                max_request_bytes=args.max_request_bytes,
                max_examples=args.max_examples,
                max_string_bytes=args.max_string_bytes,
                read_timeout=args.read_timeout,
                idle_timeout=args.idle_timeout,
            ),
        )
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
        print(f"headswitch serve: serving {models} on gRPC {server.grpc_address}{rest}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop(grace=args.drain_seconds)
        _restore(previous)
    return 0


def _restore(previous: dict[signal.Signals, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
