"""The Dockerfile, .dockerignore, docker-compose.yml and the serving configs in docker/."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from dockerfiles import hadolint_findings, instructions

from headswitch.contract import DEFAULT_MODEL_NAME
from headswitch.deploy import (
    GRPC_PORT,
    HEALTH_ROUTE,
    METRICS_PATH,
    PREDICT_ROUTE,
    READY_ROUTE,
    REST_PORT,
    SERVER_FLAGS,
)
from headswitch.export import DEFAULT_BASE

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"


def _args(keyword: str) -> list[str]:
    return [rest for kw, rest in instructions(DOCKERFILE) if kw == keyword]


def test_hadolint_passes_without_any_finding() -> None:
    assert hadolint_findings(DOCKERFILE) == []


def test_dockerfile_base_image_is_the_pinned_tensorflow(tf_version: str) -> None:
    args = dict(a.split("=", 1) for a in _args("ARG") if "=" in a)
    assert args["TF_SERVING_TAG"] == tf_version
    assert _args("FROM") == ["tensorflow/serving:${TF_SERVING_TAG}"]
    # The ARG is declared before FROM (so FROM can use it) and nowhere else.
    kinds = [kw for kw, _ in instructions(DOCKERFILE)]
    assert kinds.index("ARG") < kinds.index("FROM")


def test_dockerfile_bakes_the_export_default_layout() -> None:
    args = dict(a.split("=", 1) for a in _args("ARG") if "=" in a)
    assert args["MODEL_DIR"] == DEFAULT_BASE.as_posix()
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(_args("ENV"))))
    assert env["MODEL_NAME"] == DEFAULT_MODEL_NAME
    # The stock entrypoint serves $MODEL_BASE_PATH/$MODEL_NAME: that must be where the model goes.
    served = f"{env['MODEL_BASE_PATH']}/{env['MODEL_NAME']}"
    copies = [shlex.split(c) for c in _args("COPY")]
    model_copy = [c for c in copies if "${MODEL_DIR}" in c]
    assert len(model_copy) == 1 and model_copy[0][-1] == served
    config_copy = [[s for s in c if not s.startswith("--")]
                   for c in copies if any(s.startswith("docker/") for s in c)]
    assert config_copy == [["docker/batching_parameters.txt", "docker/monitoring.config",
                            "/etc/headswitch/"]]


def test_dockerfile_flags_user_and_ports() -> None:
    (cmd,) = _args("CMD")
    assert tuple(json.loads(cmd)) == SERVER_FLAGS
    assert not _args("ENTRYPOINT"), "the stock entrypoint (MODEL_NAME, MODEL_BASE_PATH) is kept"
    users = _args("USER")
    assert users, "the image must not run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root uid (runAsNonRoot can check it)"
    exposed = {int(p) for e in _args("EXPOSE") for p in e.split()}
    assert exposed == {GRPC_PORT, REST_PORT}


def test_dockerfile_documents_the_vertex_contract() -> None:
    text = DOCKERFILE.read_text()
    for needle in (str(REST_PORT), READY_ROUTE, PREDICT_ROUTE, "$(AIP_STORAGE_URI)",
                   "--model_base_path"):
        assert needle in text, f"the Vertex AI notes in the Dockerfile should mention {needle}"


def test_dockerignore_sends_only_configs_and_models() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", "an allowlist keeps .venv and the rest out of the build context"
    kept = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert kept == {"docker/batching_parameters.txt", "docker/monitoring.config",
                    DEFAULT_BASE.parent.as_posix()}
    assert f"{DEFAULT_BASE.parent.as_posix()}/**/.*" in lines, "exports in progress are hidden"


def test_serving_configs_parse_as_tf_serving_parses_them() -> None:
    pytest.importorskip("google.protobuf", reason="protobuf comes with the tf extra")
    pytest.importorskip("grpc", reason="grpcio comes with the serve extra")
    from headswitch.serving._config import load_batching_options, load_monitoring_options

    batching = load_batching_options(ROOT / "docker" / "batching_parameters.txt")
    assert batching.allowed_batch_sizes[-1] == batching.max_batch_size
    assert batching.batch_timeout_micros > 0 and batching.num_batch_threads >= 1
    # The clients' requests fit: the batcher takes them whole and cuts them into model runs.
    from headswitch.client import DEFAULT_MAX_BATCH_SIZE

    assert DEFAULT_MAX_BATCH_SIZE <= batching.max_batch_size
    assert batching.enable_large_batch_splitting
    assert batching.max_execution_batch_size in batching.allowed_batch_sizes
    monitoring = load_monitoring_options(ROOT / "docker" / "monitoring.config", enable=False)
    assert monitoring.enable and monitoring.path == METRICS_PATH


# ---------------------------------------------------------------------------------------------
# docker-compose.yml


@pytest.fixture(scope="module")
def compose(yaml_docs: Callable[[str], list[dict[str, Any]]]) -> dict[str, Any]:
    (doc,) = yaml_docs(COMPOSE.read_text())
    return doc


def _check_compose_spec(path: Path) -> subprocess.CompletedProcess[str]:
    """The Compose Specification's JSON schema, as check-jsonschema vendors it (test extra)."""
    tool = Path(sys.executable).with_name("check-jsonschema")
    if not tool.is_file():
        pytest.fail("check-jsonschema is missing: pip install -e '.[test]'")
    return subprocess.run([str(tool), "--builtin-schema", "vendor.compose-spec", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)


def test_compose_file_follows_the_compose_specification() -> None:
    done = _check_compose_spec(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("broken", [
    ("services:", "servicez:"),                   # an unknown top-level key
    ("restart: unless-stopped", "restart: [unless-stopped]"),  # a list for a string
    ("      retries: 3", "      retries: 3\n      every: 1s"),  # an unknown healthcheck key
])
def test_compose_validation_catches_mistakes(broken: tuple[str, str], tmp_path: Path) -> None:
    """The check is real: the same file with one mistake is refused."""
    old, new = broken
    text = COMPOSE.read_text()
    assert old in text
    path = tmp_path / "docker-compose.yml"
    path.write_text(text.replace(old, new, 1))
    done = _check_compose_spec(path)
    assert done.returncode != 0, f"accepted: {new!r}"


def test_compose_serves_the_export_folder(compose: dict[str, Any], tf_version: str) -> None:
    assert set(compose["services"]) == {"serving"}
    service = compose["services"]["serving"]
    assert service["image"] == f"tensorflow/serving:{tf_version}"
    assert service["restart"] == "unless-stopped"
    env = service["environment"]
    assert env["MODEL_NAME"] == DEFAULT_MODEL_NAME
    mounts = {v["target"]: v for v in service["volumes"]}
    models = mounts[env["MODEL_BASE_PATH"]]
    # ./models (the export default's parent) at /models: /models/headswitch is the export.
    assert models["type"] == "bind" and models["read_only"] is True
    assert Path(models["source"]) == Path(".") / DEFAULT_BASE.parent
    assert f"{env['MODEL_BASE_PATH']}/{env['MODEL_NAME']}" == f"/{DEFAULT_BASE.as_posix()}"


def test_compose_ports_batching_and_monitoring(compose: dict[str, Any]) -> None:
    service = compose["services"]["serving"]
    assert sorted(service["ports"]) == sorted([f"{GRPC_PORT}:{GRPC_PORT}",
                                               f"{REST_PORT}:{REST_PORT}"])
    assert tuple(service["command"]) == SERVER_FLAGS
    mounts = {v["target"]: v for v in service["volumes"]}
    for name in ("batching_parameters.txt", "monitoring.config"):
        mount = mounts[f"/etc/headswitch/{name}"]
        assert mount["source"] == f"./docker/{name}" and mount["read_only"] is True
        assert (ROOT / "docker" / name).is_file()


def test_compose_hardening(compose: dict[str, Any]) -> None:
    service = compose["services"]["serving"]
    assert service["user"].split(":")[0] != "0"
    assert service["read_only"] is True and "/tmp" in service["tmpfs"]
    assert service["cap_drop"] == ["ALL"]


def test_compose_healthcheck_asks_for_a_loaded_version(compose: dict[str, Any]) -> None:
    check = compose["services"]["serving"]["healthcheck"]
    command = check["test"]
    assert command[:3] == ["CMD", "bash", "-c"], "the image has bash but no curl or wget"
    assert f"/dev/tcp/127.0.0.1/{REST_PORT}" in command[3]
    assert f"GET {READY_ROUTE} " in command[3]
    assert "$" not in command[3], "compose would interpolate it"


class _TfServing(BaseHTTPRequestHandler):
    """Answers the two routes as TF Serving 2.19.1 does for a model whose only version is in
    ``state``: the status route is 200 whatever the state (get_model_status_impl.cc), the
    metadata route needs an AVAILABLE version (get_model_metadata_impl.cc: 404 otherwise)."""

    state = "AVAILABLE"

    def do_GET(self) -> None:
        if self.path == HEALTH_ROUTE:
            body = json.dumps({"model_version_status": [{
                "version": "1", "state": self.state,
                "status": {"error_code": "OK", "error_message": ""}}]}, indent=1)
            self.send_response(200)
        elif self.path == READY_ROUTE and self.state == "AVAILABLE":
            body = json.dumps({"model_spec": {"name": DEFAULT_MODEL_NAME, "version": "1"},
                               "metadata": {"signature_def": {}}})
            self.send_response(200)
        else:
            body = json.dumps(
                {"error": f"Servable not found for request: Latest({DEFAULT_MODEL_NAME})"})
            self.send_response(404)
        data = body.encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def status_server() -> Iterator[Callable[[str], int]]:
    """A loopback stand-in for TF Serving's status and metadata routes, in a given state."""
    servers: list[ThreadingHTTPServer] = []

    def start(state: str) -> int:
        handler = type("Handler", (_TfServing,), {"state": state})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_compose_healthcheck_command_runs(compose: dict[str, Any],
                                          status_server: Callable[[str], int]) -> None:
    """The healthcheck's bash line against a server replying as TF Serving does: healthy only
    while a version is AVAILABLE: not while loading, not once every version failed or was
    removed (END), and not before the port opens."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed here")
    script = compose["services"]["serving"]["healthcheck"]["test"][3]

    def run(port: int) -> int:
        line = script.replace(f"/{REST_PORT}", f"/{port}")
        done = subprocess.run([bash, "-c", line], check=False, capture_output=True, timeout=20)
        return done.returncode

    assert run(status_server("AVAILABLE")) == 0
    assert run(status_server("LOADING")) != 0
    assert run(status_server("END")) != 0
    with socket.socket() as probe:  # a port nobody listens on: the server is still loading
        probe.bind(("127.0.0.1", 0))
        closed = int(probe.getsockname()[1])
    assert run(closed) != 0
