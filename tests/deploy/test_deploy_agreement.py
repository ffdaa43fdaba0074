"""Every deployment file names the same TensorFlow version (pyproject.toml's pin), model name,
paths, ports and routes as the exporter and ``headswitch.deploy``."""

from __future__ import annotations

import re
from pathlib import Path

from headswitch.contract import DEFAULT_MODEL_NAME
from headswitch.deploy import (
    HEALTH_ROUTE,
    MODEL_NAME,
    PREDICT_ROUTE,
    READY_ROUTE,
    SERVER_FLAGS,
    serving_tensorflow_version,
)
from headswitch.export import DEFAULT_BASE

ROOT = Path(__file__).resolve().parents[2]


def _deployment_files() -> list[Path]:
    files = [ROOT / "Dockerfile", ROOT / "docker-compose.yml", ROOT / ".dockerignore",
             ROOT / "README.md"]
    files += sorted((ROOT / "docker").iterdir())
    files += sorted((ROOT / "k8s").rglob("*.yaml"))
    return [f for f in files if f.is_file()]


def test_installed_metadata_has_the_pyproject_pin(tf_version: str) -> None:
    """headswitch.deploy reads the pin from the installed metadata (default image tag, version
    check); a stale install would disagree with pyproject.toml."""
    assert serving_tensorflow_version() == tf_version


def test_shared_values_come_from_the_exporter() -> None:
    assert MODEL_NAME == DEFAULT_MODEL_NAME == DEFAULT_BASE.name
    assert HEALTH_ROUTE == f"/v1/models/{DEFAULT_MODEL_NAME}"
    assert PREDICT_ROUTE == f"/v1/models/{DEFAULT_MODEL_NAME}:predict"
    assert READY_ROUTE == f"/v1/models/{DEFAULT_MODEL_NAME}/metadata"


def test_every_tensorflow_serving_tag_is_the_pinned_version(tf_version: str) -> None:
    allowed = {tf_version, f"{tf_version}-gpu"}
    seen = 0
    for path in _deployment_files():
        text = path.read_text()
        for tag in re.findall(r"tensorflow/serving:([A-Za-z0-9_.${}\-]+)", text):
            seen += 1
            assert tag in allowed | {"${TF_SERVING_TAG}"}, f"{path}: {tag}"
    assert seen >= 3  # Dockerfile, compose, k8s/base


def test_kustomize_image_tags_are_the_pinned_version(tf_version: str) -> None:
    import yaml

    for path in (ROOT / "k8s").rglob("kustomization.yaml"):
        for image in yaml.safe_load(path.read_text()).get("images", []):
            assert image["name"] == "tensorflow/serving"
            if "newName" not in image:  # still TF Serving: only the variant may change
                assert str(image["newTag"]) in (tf_version, f"{tf_version}-gpu"), path


def _version_section(readme: str) -> tuple[str, str]:
    """The README without its "TensorFlow version" section, and that section (which tells
    why the pin is what it is, so it names other versions)."""
    head, found, rest = readme.partition("### TensorFlow version")
    assert found, "README.md has no '### TensorFlow version' section"
    section, heading, tail = rest.partition("\n## ")
    return head + heading + tail, section


def test_no_other_tensorflow_version_is_mentioned(tf_version: str) -> None:
    """Any x.y.z in the deployment files is the pinned version (no stale copies)."""
    for path in _deployment_files():
        text = path.read_text()
        if path.name == "README.md":
            text, _ = _version_section(text)
        for found in re.findall(r"(?<![\w.])(\d+\.\d+\.\d+)(?![\w.])", text):
            assert found == tf_version, f"{path} mentions {found}, pyproject pins {tf_version}"


def test_readme_says_which_version_and_why(tf_version: str) -> None:
    _, section = _version_section((ROOT / "README.md").read_text())
    first = section.strip().split("\n\n")[0]
    assert f"tensorflow=={tf_version}" in first and f"tensorflow/serving:{tf_version}" in first
    assert f"Why {tf_version}" in section


def test_runtime_version_and_build_args_are_the_pin(tf_version: str) -> None:
    kserve = (ROOT / "k8s" / "kserve" / "inferenceservice.yaml").read_text()
    assert re.findall(r"runtimeVersion:\s*\"?([^\s\"]+)", kserve) == [tf_version]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.findall(r"^ARG TF_SERVING_TAG=(\S+)$", dockerfile, re.MULTILINE) == [tf_version]


def test_every_file_uses_the_same_flags_and_paths() -> None:
    """The flag list appears verbatim (one flag a line) in compose, the Deployment and the
    InferenceService, and in the Dockerfile's CMD."""
    for rel in ("docker-compose.yml", "k8s/base/deployment.yaml",
                "k8s/kserve/inferenceservice.yaml"):
        text = (ROOT / rel).read_text()
        for flag in SERVER_FLAGS:
            assert re.search(rf"^\s*- {re.escape(flag)}$", text, re.MULTILINE), f"{rel}: {flag}"
    dockerfile = (ROOT / "Dockerfile").read_text()
    for flag in SERVER_FLAGS:
        assert f'"{flag}"' in dockerfile
    for path in _deployment_files():
        text = path.read_text()
        for route in re.findall(r"/v1/models/[\w\-]+(?:/metadata)?", text):
            assert route in (HEALTH_ROUTE, READY_ROUTE, "/v1/models/NAME",
                             "/v1/models/NAME/metadata"), f"{path}: {route}"


def test_one_non_root_uid_everywhere() -> None:
    """The image's USER, the owner of what it copies, compose's user and the pods' runAsUser."""
    import yaml

    dockerfile = (ROOT / "Dockerfile").read_text()
    uids = set(re.findall(r"^USER (\d+):\d+$", dockerfile, re.MULTILINE))
    uids |= set(re.findall(r"--chown=(\d+):\d+", dockerfile))
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    uids.add(compose["services"]["serving"]["user"].split(":")[0])
    deployment = yaml.safe_load((ROOT / "k8s" / "base" / "deployment.yaml").read_text())
    context = deployment["spec"]["template"]["spec"]["securityContext"]
    uids |= {str(context["runAsUser"]), str(context["runAsGroup"]), str(context["fsGroup"])}
    assert len(uids) == 1 and uids != {"0"}, uids
