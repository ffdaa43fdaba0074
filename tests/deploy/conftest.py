"""Fixtures for the deployment files (Dockerfile, compose, k8s/) and ``headswitch.deploy``."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"


def _ensure_deploy_importable() -> None:
    """``headswitch.deploy`` comes from ../../deploy through pyproject's package-dir mapping.
    Until an installed copy has that mapping, load the folder under that name ourselves."""
    try:
        import headswitch.deploy
    except ImportError:
        import headswitch

        spec = importlib.util.spec_from_file_location(
            "headswitch.deploy", ROOT / "deploy" / "__init__.py",
            submodule_search_locations=[str(ROOT / "deploy")])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["headswitch.deploy"] = module
        spec.loader.exec_module(module)
        setattr(headswitch, "deploy", module)  # noqa: B010


_ensure_deploy_importable()


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            pytest.skip("reading pyproject.toml needs tomllib (Python 3.11+) or tomli")
    with path.open("rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="session")
def tf_version() -> str:
    """The one TensorFlow pin: pyproject.toml's ``tf`` extra."""
    pyproject = _load_toml(ROOT / "pyproject.toml")
    pins = [r for r in pyproject["project"]["optional-dependencies"]["tf"]
            if re.match(r"^tensorflow\s*==", r)]
    assert len(pins) == 1, f"expected one tensorflow==X pin in the tf extra, found {pins}"
    return str(pins[0].split("==", 1)[1].strip())


def load_yaml_documents(text: str) -> list[dict[str, Any]]:
    import yaml

    return [d for d in yaml.safe_load_all(text) if d is not None]


def kubectl() -> tuple[str | None, str]:
    """(kubectl path, why not) for a kubectl whose built-in kustomize is v5 or newer."""
    binary = shutil.which("kubectl")
    if binary is None:
        return None, ("kubectl is not installed (kubectl 1.27+ has kustomize v5; the machine "
                      "image's Google Cloud CLI ships one as /usr/bin/kubectl)")
    done = subprocess.run([binary, "version", "--client", "-o", "json"], check=False,
                          capture_output=True, text=True, timeout=60)
    try:
        kustomize = str(json.loads(done.stdout).get("kustomizeVersion", ""))
    except ValueError:
        kustomize = ""
    match = re.match(r"^v?(\d+)\.", kustomize)
    if not match or int(match.group(1)) < 5:
        return None, (f"{binary} has kustomize {kustomize or 'of unknown version'}; "
                      "these kustomizations need v5+ (kubectl 1.27+)")
    return binary, ""


@pytest.fixture(scope="session")
def rendered() -> Callable[[str], list[dict[str, Any]]]:
    """``kubectl kustomize k8s/<name>`` -> documents (cached). Skips when kubectl is absent."""
    cache: dict[str, list[dict[str, Any]]] = {}
    binary, why = kubectl()

    def render(name: str) -> list[dict[str, Any]]:
        if binary is None:
            pytest.skip(f"{why}; the manifests are still validated file by file in "
                        "test_deploy_k8s_files.py")
        if name not in cache:
            done = subprocess.run([binary, "kustomize", str(K8S / name)], check=False,
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, f"kubectl kustomize k8s/{name} failed:\n{done.stderr}"
            # Deprecation notices and other warnings count as failures.
            assert not done.stderr.strip(), f"kubectl kustomize k8s/{name} warned:\n{done.stderr}"
            cache[name] = load_yaml_documents(done.stdout)
        return cache[name]

    return render


FAKE_TASKS = [("topic", ("sports", "politics")), ("spam", ("ham", "spam"))]


def fake_manifest(version: int, tensorflow_version: str) -> Any:
    """A ``headswitch.json`` as the exporter writes it, with placeholder digests and sizes."""
    from headswitch import _manifest as m

    source = m.SourceFile("x.keras", "Keras 3 .keras", "0" * 64, 1)
    tasks = tuple(m.TaskRecord(i, name, labels, len(labels), "softmax", "stacked", 8, "float32",
                               0.0, "file", version, version, source, {"kind": "none"}, "")
                  for i, (name, labels) in enumerate(FAKE_TASKS))
    backbone = m.BackboneRecord("backbone", "auto", ("text", "backbone"), "float32", 4, "0" * 64,
                                1, {"unavailable": "fake"}, ())
    return m.Manifest(
        format_version=m.FORMAT_VERSION, headswitch_version="0", keras_version="3",
        tensorflow_version=tensorflow_version, model_name="headswitch", version=version,
        created="2026-01-01T00:00:00Z", backbones=(backbone,), signatures={},
        serving=m.ServingRecord("tensorflow/serving", (), ""), tasks=tasks,
        history=(m.HistoryEntry(version, None, "2026-01-01T00:00:00Z", (0, 1)),), removed=(),
        next_task_id=len(tasks), heads=m.HeadsFile("heads.npy", 0, 0, ""), probe_texts=("",),
        verification=m.Verification(True, 1e-5, 1, 0.0))


def write_fake_export(base: Path, versions: dict[int, str | None]) -> Path:
    """An export's layout with placeholder bytes: ``{version: tensorflow_version}``; None writes
    no headswitch.json. Adds an export in progress and hidden files, which must be skipped."""
    for version, tf in versions.items():
        folder = base / str(version)
        (folder / "variables").mkdir(parents=True)
        (folder / "assets").mkdir()
        (folder / "assets.extra").mkdir()
        (folder / "saved_model.pb").write_bytes(b"pb" * 100)
        (folder / "fingerprint.pb").write_bytes(b"fp")
        (folder / "variables" / "variables.index").write_bytes(b"ix" * 10)
        (folder / "variables" / "variables.data-00000-of-00001").write_bytes(b"d" * 5000)
        (folder / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"w" * 50)
        (folder / ".DS_Store").write_bytes(b"junk")
        if tf is not None:
            fake_manifest(version, tf).write(folder)
    temp = base / ".headswitch-tmp-9-12345-abcdef12"
    (temp / "variables").mkdir(parents=True)
    (temp / "saved_model.pb").write_bytes(b"partial")
    (base / "not-a-version").mkdir()
    (base / "not-a-version" / "saved_model.pb").write_bytes(b"x")
    return base


@pytest.fixture
def make_export(tmp_path: Path) -> Callable[..., Path]:
    """``make_export({1: "2.15.0", 2: None}, name="x")`` -> a fake export base folder."""

    def make(versions: dict[int, str | None], name: str = "headswitch") -> Path:
        return write_fake_export(tmp_path / name / "models" / "headswitch", versions)

    return make


@pytest.fixture
def fake_export(make_export: Callable[..., Path], tf_version: str) -> Path:
    """models/headswitch with versions 1 and 2, exported by the project's TensorFlow."""
    return make_export({1: tf_version, 2: tf_version})


@pytest.fixture(scope="session")
def yaml_docs() -> Callable[[str], list[dict[str, Any]]]:
    return load_yaml_documents


@pytest.fixture(scope="session")
def k8s_versions() -> list[str]:
    """Kubernetes 1.30 and the newest version kubernetes-validate bundles."""
    utils = pytest.importorskip(
        "kubernetes_validate.utils",
        reason="kubernetes-validate is not installed (it belongs in the test extra)")
    return sorted({"1.30.0", utils.latest_version()})


@pytest.fixture(scope="session")
def k8s_validate(k8s_versions: list[str]) -> Callable[[dict[str, Any], str], None]:
    """What ``kubernetes-validate --strict`` does for one document, for every version in
    ``k8s_versions``; a missing schema (a warning for the command) fails too."""
    import kubernetes_validate
    from kubernetes_validate import utils

    def validate(doc: dict[str, Any], where: str) -> None:
        what = f"{where}: {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        for version in k8s_versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except utils.SchemaNotFoundError as e:
                pytest.fail(f"{what}: {e.message} (a warning for kubernetes-validate; a "
                            "failure here)")
            except utils.ValidationError as e:
                path = ".".join(str(p) for p in e.absolute_path)
                pytest.fail(f"{what} is invalid for Kubernetes {version}: {path}: {e.message}")

    return validate


@pytest.fixture(scope="session")
def k8s_schema(k8s_versions: list[str]) -> Callable[[str, str], Any]:
    """A strict validator for one bundled schema file (``podspec-v1``, ``container-v1``,
    ``objectmeta-meta-v1``, ...): for the parts of a custom resource that are Kubernetes types."""
    import jsonschema
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    def validator(name: str, version: str) -> Any:
        folder = f"kubernetes-json-schema/v{version}-local-strict"
        schema = utils.schema_contents(f"{folder}/{name}.json", version)
        definitions = utils.schema_contents(f"{folder}/_definitions.json", version)
        registry = Resource.from_contents(definitions) @ (
            Resource.from_contents(schema) @ Registry())
        return jsonschema.validators.Draft202012Validator(schema, registry=registry)

    return validator
