"""Model versions: file-system polling (``FileSystemStoragePathSource``), the
availability-preserving load/unload policy, version states (``ServableStateMonitor``) and
request routing to a loaded version (``ServerCore::GetServableHandle``)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc

from ._config import ModelConfig
from ._errors import (
    ServingError,
    failed_precondition,
    invalid_argument,
    not_found,
    unavailable,
    unknown,
)
from ._servable import Servable

_log = logging.getLogger(__name__)

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"
_VERSION_RE = re.compile(r"^\s*[+-]?\d+\s*$")
_INT64_MAX = 2**63 - 1


@dataclass
class VersionStatus:
    state: str
    code: grpc.StatusCode = grpc.StatusCode.OK
    message: str = ""

    def health(self) -> str:
        return "OK" if self.code == grpc.StatusCode.OK else f"{self.code.name}: {self.message}"


class _Model:
    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.statuses: dict[int, VersionStatus] = {}
        self.loaded: dict[int, Servable] = {}
        self.aspired: set[int] = set()
        self.paths: dict[int, str] = {}
        self.errored: set[int] = set()
        self.labels: dict[str, int] = {}
        self.removed = False  # dropped from the config: every version unloads


def parse_version(child: str) -> int | None:
    """``absl::SimpleAtoi`` on a child folder name; None if it is not an integer."""
    if not _VERSION_RE.match(child):
        return None
    value = int(child.strip())
    return value if -_INT64_MAX - 1 <= value <= _INT64_MAX else None


def aspired_versions(config: ModelConfig) -> dict[int, str]:
    """Which versions the version policy wants, by version -> path."""
    base = config.base_path
    if not os.path.exists(base):
        raise invalid_argument(
            f"Could not find base path {base} for servable {config.name} with error "
            f"NOT_FOUND: {base} not found"
        )
    by_version: dict[int, str] = {}
    for child in sorted(os.listdir(base)):
        version = parse_version(child)
        if version is not None:
            by_version[version] = os.path.join(base, child)
    policy = config.policy
    if policy.kind == "all":
        chosen = sorted(by_version)
    elif policy.kind == "specific":
        chosen = [v for v in sorted(by_version) if v in policy.versions]
    else:
        chosen = sorted(by_version)[-max(policy.num_versions, 1) :]
    if not by_version:
        _log.warning(
            "No versions of servable %s found under base path %s. Did you forget to name your "
            "leaf directory as a number (eg. '/1/')?",
            config.name,
            base,
        )
    return {v: by_version[v] for v in chosen}


LoadFn = Callable[[ModelConfig, int, str], Servable]
UnloadFn = Callable[[Servable], None]


class ModelManager:
    def __init__(
        self,
        configs: list[ModelConfig],
        load: LoadFn,
        unload: UnloadFn,
        poll_seconds: float = 1.0,
        max_load_retries: int = 5,
        load_retry_interval: float = 60.0,
        allow_labels_for_unavailable: bool = False,
    ) -> None:
        self._models: dict[str, _Model] = {}
        self._order: list[str] = []
        self._initial = configs
        self._allow_unavailable_labels = allow_labels_for_unavailable
        self._reload_lock = threading.Lock()
        self._wake = threading.Event()
        self._load = load
        self._unload = unload
        self._poll_seconds = poll_seconds
        self._max_retries = max_load_retries
        self._retry_interval = load_retry_interval
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def model_names(self) -> list[str]:
        with self._cond:
            return list(self._order)

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Apply the first config (its labels checked first, as in ``ServerCore::Create``) and
        start polling; :meth:`wait_initial` waits for the models."""
        self._apply(self._initial)
        self._thread = threading.Thread(
            target=self._run, name="headswitch-model-manager", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        """``FileSystemStoragePathSource``: poll every model's base path, then act. A poll
        interval of 0 polls once, a negative one never (both as TF Serving); a config reload
        wakes the loop at once."""
        while not self._stop.is_set():
            if self._poll_seconds >= 0:
                with self._cond:
                    models = list(self._models.values())
                for model in models:
                    if self._stop.is_set():
                        break
                    self._poll_and_act(model)
                self._drop_removed()
            wait = self._poll_seconds if self._poll_seconds > 0 else None
            self._wake.wait(wait)
            self._wake.clear()

    # ---------------------------------------------------------------- config reload

    def reload(self, configs: list[ModelConfig]) -> None:
        """``ServerCore::ReloadConfig``: the labels are checked first (against the versions
        available now), then models are added, changed (policy, labels) or removed, and the
        call waits until every new model is available. Requests in flight keep the versions
        they hold; a removed model's versions unload once those requests are done."""
        with self._reload_lock:
            before = set(self._models)
            self._apply(configs)
            added = [c.name for c in configs if c.name not in before]
        self._wake.set()
        if added:
            self._wait_available(added, None)

    def _apply(self, configs: list[ModelConfig]) -> None:
        with self._cond:
            labels = {c.name: self._checked_labels(c) for c in configs}
            names = {c.name for c in configs}
            for name, model in self._models.items():
                if name not in names:
                    model.removed = True
                    model.labels = {}
                    _log.info("Removing model %s: it is no longer in the config", name)
            for config in configs:
                existing = self._models.get(config.name)
                if existing is None or existing.removed:
                    _log.info("Adding model %s (base path %s)", config.name, config.base_path)
                if existing is None:
                    model = self._models[config.name] = _Model(config)
                else:  # kept, or re-added before its versions were unloaded
                    model = existing
                    model.removed = False
                model.config = config
                model.labels = labels[config.name]
            self._order = [c.name for c in configs]
            self._cond.notify_all()

    def _checked_labels(self, config: ModelConfig) -> dict[str, int]:
        """``UpdateModelVersionLabelMap``: a label may point only at an AVAILABLE version,
        unless unavailable versions are allowed for labels that are new or keep their version."""
        model = self._models.get(config.name)
        current = model.labels if model is not None else {}
        statuses = model.statuses if model is not None else {}
        labels: dict[str, int] = {}
        for label, version in config.version_labels:
            allowed = self._allow_unavailable_labels and current.get(label, version) == version
            status = statuses.get(version)
            if not allowed and (status is None or status.state != AVAILABLE):
                raise failed_precondition(
                    f"Request to assign label to version {version} of model {config.name}, "
                    "which is not currently available for inference"
                )
            labels[label] = version
        return labels

    def _drop_removed(self) -> None:
        with self._cond:
            for name in [n for n, m in self._models.items() if m.removed and not m.loaded]:
                states = {s.state for s in self._models[name].statuses.values()}
                if not states & {LOADING, UNLOADING}:
                    del self._models[name]
                    _log.info("Model %s removed", name)

    def stop(self) -> None:
        """Stop polling and unload every version (waiting for requests that still use it)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        for model in list(self._models.values()):
            for version in sorted(model.loaded):
                self._do_unload(model, version)

    def wait_initial(self, timeout: float | None) -> None:
        """Wait until the first config's models are available (see :meth:`_wait_available`)."""
        self._wait_available([c.name for c in self._initial], timeout)

    def _wait_available(self, names: list[str], timeout: float | None) -> None:
        """``ServerCore::WaitUntilModelsAvailable``: the newest version of every model must
        become available; an error there fails start-up (or the reload) with TF Serving's
        message."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._stop.is_set():
                    raise unavailable("The server is shutting down")
                failed: list[str] = []
                pending = False
                for name in names:
                    model = self._models.get(name)
                    if model is None or model.removed:
                        continue
                    statuses = model.statuses
                    if not statuses:
                        pending = True
                        continue
                    newest = max(statuses)
                    status = statuses[newest]
                    if status.state == END:
                        error = (
                            ""
                            if status.code == grpc.StatusCode.OK
                            else (f" due to error: {status.health()}")
                        )
                        failed.append(f"{{{{name: {name} version: {newest}}}{error}}}, ")
                    elif status.state != AVAILABLE:
                        pending = True
                if failed and not pending:
                    raise unknown(
                        f"{len(failed)} model(s) did not become available: {{{''.join(failed)}}}"
                    )
                if not pending:
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise ServingError(
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        "Timed out waiting for models to become available",
                    )
                self._cond.wait(remaining)

    def wait_until_available(self, name: str | None, timeout: float) -> None:
        names = self._order if name is None else [name]
        deadline = time.monotonic() + timeout
        with self._cond:
            while not all(name in self._models and self._models[name].loaded for name in names):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"model(s) {', '.join(names)} not available after {timeout}s"
                    )
                self._cond.wait(remaining)

    # ---------------------------------------------------------------- polling and policy

    def _poll_and_act(self, model: _Model) -> None:
        try:
            found = {} if model.removed else aspired_versions(model.config)
        except (ServingError, OSError) as exc:
            _log.error("Failed to poll base path of model %s: %s", model.config.name, exc)
            return
        with self._cond:
            for version in model.aspired - set(found):
                model.errored.discard(version)
            model.aspired = set(found)
            model.paths.update(found)
            for version in found:
                if version not in model.loaded and version not in model.errored:
                    current = model.statuses.get(version)
                    if current is None or current.state == END:
                        model.statuses[version] = VersionStatus(START)
            self._cond.notify_all()
        while not self._stop.is_set():
            action = self._next_action(model)
            if action is None:
                return
            kind, version = action
            if kind == "unload":
                self._do_unload(model, version)
            else:
                self._do_load(model, version)

    def _next_action(self, model: _Model) -> tuple[str, int] | None:
        """``AvailabilityPreservingPolicy::GetNextAction``."""
        with self._cond:
            aspired_ready = any(v in model.loaded for v in model.aspired)
            unaspired_ready = sorted(v for v in model.loaded if v not in model.aspired)
            if (not model.aspired or aspired_ready or len(unaspired_ready) > 1) and unaspired_ready:
                return "unload", unaspired_ready[0]
            new = [
                v
                for v in model.aspired
                if v not in model.loaded
                and v not in model.errored
                and model.statuses.get(v, VersionStatus(START)).state == START
            ]
            if new:
                return "load", max(new)
            return None

    def _set(self, model: _Model, version: int, status: VersionStatus) -> None:
        with self._cond:
            model.statuses[version] = status
            self._cond.notify_all()

    def _still_aspired(self, model: _Model, version: int) -> bool:
        if model.removed:
            return False
        try:
            return version in aspired_versions(model.config)
        except (ServingError, OSError):
            return True

    def _do_load(self, model: _Model, version: int) -> None:
        name = model.config.name
        self._set(model, version, VersionStatus(LOADING))
        attempt = 0
        while True:
            try:
                servable = self._load(model.config, version, model.paths[version])
                break
            except ServingError as exc:
                error = exc.with_traceback(None)  # no frame (and its data) kept
            except Exception as exc:  # noqa: BLE001 - a broken version must not stop the server
                error = ServingError(grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}")
            _log.error(
                "Loading servable {name: %s version: %d} failed: %s",
                name,
                version,
                error.to_string(),
            )
            cancelled = False
            if error.retryable and attempt < self._max_retries and not self._stop.is_set():
                attempt += 1
                # TF Serving keeps LOADING / OK until the last retry fails; the embedded server
                # shows the error at once, while the state says a retry is still coming.
                self._set(model, version, VersionStatus(LOADING, error.code, error.message))
                deadline = time.monotonic() + self._retry_interval
                while time.monotonic() < deadline and not self._stop.is_set():
                    step = min(deadline - time.monotonic(), max(self._poll_seconds, 0.05))
                    self._stop.wait(max(step, 0))
                    if not self._still_aspired(model, version):
                        cancelled = True
                        break
                if not cancelled and not self._stop.is_set():
                    continue
            with self._cond:
                model.errored.add(version)
                model.statuses[version] = VersionStatus(END, error.code, error.message)
                self._cond.notify_all()
            return
        with self._cond:
            model.loaded[version] = servable
            model.statuses[version] = VersionStatus(AVAILABLE)
            self._cond.notify_all()
        _log.info("Successfully loaded servable version {name: %s version: %d}", name, version)

    def _do_unload(self, model: _Model, version: int) -> None:
        with self._cond:
            servable = model.loaded.pop(version, None)
            if servable is None:
                return
            model.statuses[version] = VersionStatus(UNLOADING)
            self._cond.notify_all()
        try:
            servable.wait_idle()
            self._unload(servable)
        finally:
            self._set(model, version, VersionStatus(END))
        _log.info("Unloaded servable version {name: %s version: %d}", model.config.name, version)

    # ---------------------------------------------------------------- requests

    @contextlib.contextmanager
    def acquire(
        self, name: str, version: int | None = None, label: str | None = None
    ) -> Iterator[Servable]:
        """``GetServableHandle``: the servable stays loaded while the block runs."""
        if not name:
            raise invalid_argument("ModelSpec has no name specified.")
        with self._cond:
            model = self._models.get(name)
            if model is not None and model.removed:
                model = None
            if label is not None:
                if model is None or label not in model.labels:
                    raise invalid_argument(f"Unrecognized servable version label: {label}")
                version = model.labels[label]
            servable: Servable | None = None
            if model is not None and model.loaded:
                servable = (
                    model.loaded.get(version)
                    if version is not None
                    else (model.loaded[max(model.loaded)])
                )
            if servable is None:
                request = (
                    f"Specific({name}, {version})" if version is not None else f"Latest({name})"
                )
                raise not_found(f"Servable not found for request: {request}")
            servable.acquire()
        try:
            yield servable
        finally:
            servable.release()

    def status(self, name: str, version: int | None = None) -> list[tuple[int, VersionStatus]]:
        """``GetModelStatusImpl``: one version, or every version newest first."""
        with self._cond:
            model = self._models.get(name)
            statuses = dict(model.statuses) if model is not None else {}
        if version is not None:
            if version not in statuses:
                raise not_found(f"Could not find version {version} of model {name}")
            return [(version, statuses[version])]
        if not statuses:
            raise not_found(f"Could not find any versions of model {name}")
        return [(v, statuses[v]) for v in sorted(statuses, reverse=True)]

    def loaded_versions(self, name: str) -> list[int]:
        with self._cond:
            model = self._models.get(name)
            return sorted(model.loaded) if model is not None else []
