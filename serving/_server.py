"""``ModelServer``: the embedded server (TF Serving's ``Server::BuildAndStart``)."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from headswitch.contract import GRPC_PORT, REST_PORT

from ._errors import invalid_argument, unavailable
from ._limits import Limits

if TYPE_CHECKING:
    from ._core import ServingCore
    from ._grpc import GrpcServer
    from ._rest import RestServer

_log = logging.getLogger(__name__)


class ModelServer:
    """Serve SavedModels over TF Serving's gRPC and REST APIs.

    ``start()`` loads the newest version of every model (warmup included) before it opens the
    ports, as ``tensorflow_model_server`` does, and raises :class:`ServingError` if a model does
    not become available. Port ``0`` picks a free port; read :attr:`grpc_port` and
    :attr:`rest_port` after ``start()``. ``rest_port=None`` disables REST. ``limits`` sets the
    request limits and timeouts (:class:`Limits`; TF Serving has none).
    """

    def __init__(
        self,
        *,
        model_name: str | None = None,
        model_base_path: str | os.PathLike[str] | None = None,
        model_config_file: str | os.PathLike[str] | None = None,
        grpc_port: int = GRPC_PORT,
        rest_port: int | None = REST_PORT,
        enable_batching: bool = False,
        batching_parameters_file: str | os.PathLike[str] | None = None,
        monitoring: bool = False,
        monitoring_config_file: str | os.PathLike[str] | None = None,
        poll_seconds: float = 1.0,
        host: str = "127.0.0.1",
        max_num_load_retries: int = 5,
        load_retry_interval_seconds: float = 60.0,
        enable_model_warmup: bool = True,
        startup_timeout: float | None = None,
        grpc_max_workers: int = 32,
        limits: Limits | None = None,
    ) -> None:
        if model_base_path is None and model_config_file is None:
            raise invalid_argument(
                "Both server_options.model_base_path and server_options.model_config_file "
                "are empty!"
            )
        if model_base_path is not None and model_config_file is not None:
            raise invalid_argument("Give either model_base_path or model_config_file, not both.")
        if batching_parameters_file is not None and not enable_batching:
            raise invalid_argument(
                "server_options.batching_parameters_file is set without setting "
                "server_options.enable_batching to true."
            )
        if rest_port is not None and rest_port != 0 and rest_port == grpc_port:
            raise invalid_argument("rest_port cannot be the same as grpc_port.")
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
        self._core: ServingCore | None = None
        self._grpc: GrpcServer | None = None
        self._rest: RestServer | None = None
        self._stopped = threading.Event()
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
        port = self.grpc_port
        return (
            None
            if port is None
            else (f"[{self.host}]:{port}" if ":" in self.host else f"{self.host}:{port}")
        )

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
        from ._servable import import_tensorflow

        import_tensorflow()  # first: it sets the C++ log level before anything loads TensorFlow
        from ._config import (
            ModelConfig,
            load_batching_options,
            load_model_config_file,
            load_monitoring_options,
        )
        from ._core import ServingCore
        from ._grpc import GrpcServer
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
        core = ServingCore(
            configs,
            batching=batching,
            poll_seconds=self.poll_seconds,
            max_load_retries=self.max_num_load_retries,
            load_retry_interval=self.load_retry_interval_seconds,
            enable_warmup=self.enable_model_warmup,
            limits=self.limits,
        )
        with self._lock:
            if self._stopping:
                core.stop()
                raise unavailable("The server is shutting down")
            self._core = core
        core.start(self.startup_timeout)
        with self._lock:  # stop() either sees the front ends, or start() sees stop()
            if self._stopping:
                raise unavailable("The server is shutting down")
            self._grpc = GrpcServer(
                core, self.host, self._grpc_port_requested, self.grpc_max_workers, self.limits
            )
            if self._rest_port_requested is not None:
                self._rest = RestServer(
                    core, self.host, self._rest_port_requested, monitoring, self.limits
                )
            self._grpc.start()
            if self._rest is not None:
                self._rest.start()

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
            if self._core is not None:
                self._core.stop()
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
