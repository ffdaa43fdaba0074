"""``ModelServer``: the embedded server (TF Serving's ``Server::BuildAndStart``)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headswitch.contract import GRPC_PORT, REST_PORT

from ._errors import ServingError, invalid_argument, unavailable
from ._limits import Limits

if TYPE_CHECKING:
    from ._core import ServingCore
    from ._grpc import GrpcServer
    from ._rest import RestServer

_log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


class ModelServer:
    """Serve SavedModels over TF Serving's gRPC and REST APIs.

    ``start()`` loads the newest version of every model (warmup included) before it opens the
    ports, as ``tensorflow_model_server`` does, and raises :class:`ServingError` if a model does
    not become available. Port ``0`` picks a free port; read :attr:`grpc_port` and
    :attr:`rest_port` after ``start()``. ``grpc_port=None`` opens no TCP port for gRPC (give
    ``grpc_socket_path`` then); ``rest_port=None`` disables REST. ``limits`` sets the request
    limits and timeouts (:class:`Limits`; TF Serving has none).

    The other arguments are ``tensorflow_model_server``'s flags of the same meaning:
    ``model_config_file_poll_seconds`` (``--model_config_file_poll_wait_seconds``, 0: read once),
    ``rest_timeout_ms`` (``--rest_api_timeout_in_ms``), ``rest_threads``, ``cors``,
    ``grpc_socket_path``, ``grpc_channel_arguments`` (``"key=value,..."`` or pairs),
    ``grpc_max_workers`` (``--grpc_max_threads``), ``ssl_config_file``,
    ``use_alts_credentials``, ``grpc_health_check``, ``profiler``, ``saved_model_tags``,
    ``session_config`` (a TensorFlow ``ConfigProto``), ``warmup_iterations``,
    ``per_model_batching``, ``allow_version_labels_for_unavailable_models``,
    ``signature_method_name_check``, ``tensor_content_responses``
    (``--enable_serialization_as_tensor_content``) and ``prefer_tflite_model`` (a version with
    ``model.tflite`` is refused: TF Lite is not served here).
    """

    def __init__(
        self,
        *,
        model_name: str | None = None,
        model_base_path: PathLike | None = None,
        model_config_file: PathLike | None = None,
        grpc_port: int | None = GRPC_PORT,
        rest_port: int | None = REST_PORT,
        enable_batching: bool = False,
        batching_parameters_file: PathLike | None = None,
        monitoring: bool = False,
        monitoring_config_file: PathLike | None = None,
        poll_seconds: float = 1.0,
        host: str = "127.0.0.1",
        max_num_load_retries: int = 5,
        load_retry_interval_seconds: float = 60.0,
        enable_model_warmup: bool = True,
        startup_timeout: float | None = None,
        grpc_max_workers: int = 32,
        limits: Limits | None = None,
        model_config_file_poll_seconds: float = 0.0,
        rest_timeout_ms: int = 30_000,
        rest_threads: int | None = None,
        cors: bool = False,
        grpc_socket_path: PathLike | None = None,
        grpc_channel_arguments: str | Sequence[tuple[str, int | str]] = (),
        ssl_config_file: PathLike | None = None,
        use_alts_credentials: bool = False,
        grpc_health_check: bool = False,
        profiler: bool = True,
        saved_model_tags: Sequence[str] = ("serve",),
        session_config: Any = None,
        warmup_iterations: int = 1,
        per_model_batching: bool = False,
        allow_version_labels_for_unavailable_models: bool = False,
        signature_method_name_check: bool = False,
        tensor_content_responses: bool = False,
        prefer_tflite_model: bool = False,
    ) -> None:
        if model_base_path is None and model_config_file is None:
            raise invalid_argument(
                "Both server_options.model_base_path and server_options.model_config_file "
                "are empty!"
            )
        if model_base_path is not None and model_config_file is not None:
            raise invalid_argument("Give either model_base_path or model_config_file, not both.")
        if grpc_port is None and not grpc_socket_path:
            raise invalid_argument(
                "At least one of server_options.grpc_port or server_options.grpc_socket_path "
                "must be set."
            )
        if use_alts_credentials and ssl_config_file is not None:
            raise invalid_argument(
                "Either use_alts_credentials must be false or ssl_config_file must be empty."
            )
        if batching_parameters_file is not None and not enable_batching:
            raise invalid_argument(
                "server_options.batching_parameters_file is set without setting "
                "server_options.enable_batching to true."
            )
        if rest_port is not None and rest_port != 0 and rest_port == grpc_port:
            # Server::BuildAndStart logs this and starts without REST.
            _log.error(
                "server_options.http_port cannot be same as grpc_port. Please use a different "
                "port for HTTP/REST API. Skipped exporting HTTP/REST API."
            )
            rest_port = None
        self.limits = limits or Limits()
        self.limits.validate()
        self.model_name = model_name or "default"
        self.model_base_path = (
            None if model_base_path is None else str(Path(model_base_path).absolute())
        )
        self.model_config_file = None if model_config_file is None else str(model_config_file)
        self.host = host
        self._grpc_port_requested = grpc_port
        self._rest_port_requested = rest_port
        self.enable_batching = enable_batching
        self.batching_parameters_file = (
            None if batching_parameters_file is None else str(batching_parameters_file)
        )
        self.monitoring = monitoring
        self.monitoring_config_file = (
            None if monitoring_config_file is None else str(monitoring_config_file)
        )
        self.poll_seconds = poll_seconds
        self.max_num_load_retries = max_num_load_retries
        self.load_retry_interval_seconds = load_retry_interval_seconds
        self.enable_model_warmup = enable_model_warmup
        self.startup_timeout = startup_timeout
        self.grpc_max_workers = grpc_max_workers
        self.model_config_file_poll_seconds = model_config_file_poll_seconds
        self.rest_timeout_ms = rest_timeout_ms
        self.rest_threads = rest_threads
        self.cors = cors
        self.grpc_socket_path = None if grpc_socket_path is None else str(grpc_socket_path)
        self.grpc_channel_arguments = grpc_channel_arguments
        self.ssl_config_file = None if ssl_config_file is None else str(ssl_config_file)
        self.use_alts_credentials = use_alts_credentials
        self.grpc_health_check = grpc_health_check
        self.profiler = profiler
        self.saved_model_tags = tuple(saved_model_tags)
        self.session_config = session_config
        self.warmup_iterations = warmup_iterations
        self.per_model_batching = per_model_batching
        self.allow_version_labels_for_unavailable_models = (
            allow_version_labels_for_unavailable_models
        )
        self.signature_method_name_check = signature_method_name_check
        self.tensor_content_responses = tensor_content_responses
        self.prefer_tflite_model = prefer_tflite_model
        self._core: ServingCore | None = None
        self._grpc: GrpcServer | None = None
        self._rest: RestServer | None = None
        self._config_poller: threading.Thread | None = None
        self._stopped = threading.Event()
        self._closing = threading.Event()  # tells the config poller to end
        self._lock = threading.Lock()
        self._started = False
        self._stopping = False
        self._shutdown_lock = threading.Lock()

    # ---------------------------------------------------------------- properties

    @property
    def grpc_port(self) -> int | None:
        return self._grpc.port if self._grpc is not None else None

    @property
    def rest_port(self) -> int | None:
        return self._rest.port if self._rest is not None else None

    @property
    def grpc_address(self) -> str | None:
        """``host:port`` of the gRPC TCP port, else ``unix:PATH`` of its socket."""
        port = self.grpc_port
        if port is None:
            return f"unix:{self.grpc_socket_path}" if self._grpc is not None else None
        return f"[{self.host}]:{port}" if ":" in self.host else f"{self.host}:{port}"

    @property
    def rest_url(self) -> str | None:
        port = self.rest_port
        host = f"[{self.host}]" if ":" in self.host else self.host
        return None if port is None else f"http://{host}:{port}"

    @property
    def model_names(self) -> list[str]:
        return self._core.manager.model_names if self._core is not None else []

    def loaded_versions(self, model_name: str | None = None) -> list[int]:
        """Versions of a model that are loaded (AVAILABLE) now."""
        if self._core is None:
            return []
        return self._core.manager.loaded_versions(model_name or self.model_names[0])

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Load the models, then open the ports. Raises :class:`ServingError` (or ``OSError``
        for a port in use); a concurrent :meth:`stop` makes it raise too."""
        with self._lock:
            if self._started:
                raise RuntimeError("ModelServer already started")
            self._started = True
        try:
            self._start()
        except BaseException:
            self._shutdown(grace=0)
            raise
        _log.info(
            "Serving %s: gRPC %s, REST %s",
            ", ".join(self.model_names),
            self.grpc_address,
            self.rest_url,
        )

    def _start(self) -> None:
        from headswitch._quiet import import_tensorflow

        import_tensorflow(keras=False)  # first: its settings apply before TensorFlow loads
        from ._config import (
            ModelConfig,
            load_batching_options,
            load_model_config_file,
            load_monitoring_options,
            load_ssl_config,
            parse_channel_arguments,
        )
        from ._core import ServingCore
        from ._grpc import GrpcOptions, GrpcServer
        from ._rest import RestServer

        if self.model_config_file is not None:
            configs = load_model_config_file(self.model_config_file)
        else:
            assert self.model_base_path is not None
            configs = [ModelConfig(self.model_name, self.model_base_path)]
        batching = (
            load_batching_options(self.batching_parameters_file) if self.enable_batching else None
        )
        monitoring = load_monitoring_options(self.monitoring_config_file, self.monitoring)
        channel_arguments = (
            parse_channel_arguments(self.grpc_channel_arguments)
            if isinstance(self.grpc_channel_arguments, str)
            else list(self.grpc_channel_arguments)
        )
        grpc_options = GrpcOptions(
            port=self._grpc_port_requested,
            socket_path=self.grpc_socket_path,
            max_workers=self.grpc_max_workers,
            channel_arguments=channel_arguments,
            ssl=None if self.ssl_config_file is None else load_ssl_config(self.ssl_config_file),
            alts=self.use_alts_credentials,
            health_check=self.grpc_health_check,
            profiler=self.profiler,
        )
        core = ServingCore(
            configs,
            batching=batching,
            poll_seconds=self.poll_seconds,
            max_load_retries=self.max_num_load_retries,
            load_retry_interval=self.load_retry_interval_seconds,
            enable_warmup=self.enable_model_warmup,
            limits=self.limits,
            per_model_batching=self.per_model_batching,
            saved_model_tags=self.saved_model_tags,
            session_config=self.session_config,
            warmup_iterations=self.warmup_iterations,
            method_name_check=self.signature_method_name_check,
            tensor_content=self.tensor_content_responses,
            allow_labels_for_unavailable=self.allow_version_labels_for_unavailable_models,
            prefer_tflite=self.prefer_tflite_model,
        )
        with self._lock:
            if self._stopping:
                core.stop()
                raise unavailable("The server is shutting down")
            self._core = core
        core.start(self.startup_timeout)
        if self.model_config_file is not None and self.model_config_file_poll_seconds > 0:
            self._config_poller = threading.Thread(
                target=self._poll_config, name="headswitch-config-poll", daemon=True
            )
            self._config_poller.start()
        with self._lock:  # stop() either sees the front ends, or start() sees stop()
            if self._stopping:
                raise unavailable("The server is shutting down")
            self._grpc = GrpcServer(core, self.host, grpc_options, self.limits)
            if self._rest_port_requested is not None:
                self._rest = RestServer(
                    core, self.host, self._rest_port_requested, monitoring, self.limits,
                    threads=self.rest_threads, timeout_ms=self.rest_timeout_ms, cors=self.cors,
                )
            self._grpc.start()
            if self._rest is not None:
                self._rest.start()

    def _poll_config(self) -> None:
        """``PollFilesystemAndReloadConfig``, every ``model_config_file_poll_seconds``: a file
        that does not parse, or a config that cannot be applied, is logged and the server goes
        on with the config it has."""
        from ._config import load_model_config_file

        assert self.model_config_file is not None and self._core is not None
        last_error = ""
        while not self._closing.wait(self.model_config_file_poll_seconds):
            try:
                configs = load_model_config_file(self.model_config_file)
            except ServingError as exc:
                error = f"Failed to read ModelServerConfig file: {exc.message}"
            else:
                try:
                    self._core.reload(configs)
                    error = ""
                except ServingError as exc:
                    error = f"PollFilesystemAndReloadConfig failed to ReloadConfig: {exc.message}"
            if error and error != last_error:
                _log.error("%s", error)
            last_error = error

    def reload_config(self, config_file: PathLike | None = None) -> None:
        """Read the model config file (this one, or the server's) and apply it now, as a poll
        of ``--model_config_file_poll_wait_seconds`` does; raises :class:`ServingError`."""
        from ._config import load_model_config_file

        if self._core is None:
            raise RuntimeError("ModelServer not started")
        path = config_file if config_file is not None else self.model_config_file
        if path is None:
            raise invalid_argument("This server was started without a model config file")
        self._core.reload(load_model_config_file(os.fspath(path)))

    def stop(self, grace: float | None = 10.0) -> None:
        """Stop accepting connections, finish in-flight requests (up to ``grace`` seconds),
        then unload every model. Safe to call more than once, and while ``start`` runs."""
        with self._lock:
            self._stopping = True
            if not self._started:
                self._stopped.set()
                return
        self._shutdown(grace)

    def _shutdown(self, grace: float | None) -> None:
        with self._shutdown_lock:
            if self._stopped.is_set():
                return
            grpc_done = self._grpc.stop(grace) if self._grpc is not None else None
            if self._rest is not None:
                self._rest.stop(grace)
            if grpc_done is not None:
                grpc_done.wait(None if grace is None else grace + 5)
            self._closing.set()
            if self._core is not None:
                self._core.stop()
            if self._config_poller is not None:
                self._config_poller.join()
            self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server is stopped; False if ``timeout`` passed first."""
        return self._stopped.wait(timeout)

    def wait_until_available(self, model_name: str | None = None, timeout: float = 60.0) -> None:
        """Wait until the model (every model if None) has a loaded version."""
        if self._core is None:
            raise RuntimeError("ModelServer not started")
        self._core.manager.wait_until_available(model_name, timeout)

    def __enter__(self) -> ModelServer:  # noqa: PYI034
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"ModelServer(models={self.model_names or [self.model_name]}, "
            f"grpc={self.grpc_address}, rest={self.rest_url})"
        )
