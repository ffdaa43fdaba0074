"""k8s/ and docker/kustomization.yaml file by file, without kubectl: every YAML parses, every
complete manifest passes ``kubernetes-validate --strict`` (Kubernetes 1.30 and the newest bundled
version), the KServe InferenceService's Kubernetes parts pass the same schemas.

Strategic-merge patches (partial objects) are validated after rendering, in
test_deploy_k8s_render.py, with everything else kustomize produces.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headswitch.deploy import METRICS_PATH, MODEL_NAME, SERVER_FLAGS
from headswitch.export import DEFAULT_BASE

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
KUSTOMIZE_FILES = {"kustomization.yaml", "kustomizeconfig.yaml"}


def _yaml_files() -> list[Path]:
    return sorted(K8S.rglob("*.yaml")) + [ROOT / "docker" / "kustomization.yaml"]


def _patch_files() -> set[Path]:
    import yaml

    patches = set()
    for kustomization in K8S.rglob("kustomization.yaml"):
        doc = yaml.safe_load(kustomization.read_text())
        for patch in doc.get("patches", []) + doc.get("patchesStrategicMerge", []):
            path = patch.get("path") if isinstance(patch, dict) else patch
            if path:
                patches.add((kustomization.parent / path).resolve())
    return patches


def test_every_yaml_file_parses(yaml_docs: Callable[[str], list[dict[str, Any]]]) -> None:
    for path in _yaml_files():
        docs = yaml_docs(path.read_text())
        assert docs, f"{path} is empty"
        assert all(isinstance(d, dict) for d in docs), path


def test_kustomizations_reference_existing_files(
        yaml_docs: Callable[[str], list[dict[str, Any]]]) -> None:
    for path in [*K8S.rglob("kustomization.yaml"), ROOT / "docker" / "kustomization.yaml"]:
        (doc,) = yaml_docs(path.read_text())
        assert doc["kind"] == "Kustomization"
        refs = list(doc.get("resources", [])) + list(doc.get("configurations", []))
        refs += [p["path"] for p in doc.get("patches", []) if "path" in p]
        refs += [f for g in doc.get("configMapGenerator", []) for f in g.get("files", [])]
        for ref in refs:
            assert (path.parent / ref).exists(), f"{path}: {ref} does not exist"
    assert (K8S / "base" / "kustomization.yaml").read_text().count("../../docker") == 1


def test_every_complete_manifest_validates(
        yaml_docs: Callable[[str], list[dict[str, Any]]],
        k8s_validate: Callable[[dict[str, Any], str], None]) -> None:
    patches = _patch_files()
    validated = 0
    for path in _yaml_files():
        if path.name in KUSTOMIZE_FILES or path.resolve() in patches:
            continue
        for doc in yaml_docs(path.read_text()):
            if doc["kind"] == "InferenceService":
                continue  # a custom resource: test_inferenceservice_kubernetes_parts_validate
            k8s_validate(doc, str(path.relative_to(ROOT)))
            validated += 1
    assert validated >= 5  # Deployment, Service, HPA, PDB, ServiceAccount


def test_patches_name_real_targets(yaml_docs: Callable[[str], list[dict[str, Any]]]) -> None:
    base = {(d["kind"], d["metadata"]["name"])
            for f in (K8S / "base").glob("*.yaml") if f.name not in KUSTOMIZE_FILES
            for d in yaml_docs(f.read_text())}
    for patch in _patch_files():
        for doc in yaml_docs(patch.read_text()):
            assert (doc["kind"], doc["metadata"]["name"]) in base, patch


# ---------------------------------------------------------------------------------------------
# KServe


@pytest.fixture(scope="module")
def inference_service(yaml_docs: Callable[[str], list[dict[str, Any]]]) -> dict[str, Any]:
    (doc,) = yaml_docs((K8S / "kserve" / "inferenceservice.yaml").read_text())
    return doc


# Fields of KServe's v1beta1 PredictorSpec (ComponentExtensionSpec) and ModelSpec
# (PredictorExtensionSpec) beyond the embedded PodSpec / Container.
_PREDICTOR_ONLY = {"model", "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric",
                   "containerConcurrency", "timeout", "canaryTrafficPercent", "logger",
                   "batcher", "labels", "annotations"}
_MODEL_ONLY = {"modelFormat", "runtime", "runtimeVersion", "storageUri", "protocolVersion",
               "storage"}


def test_inferenceservice_kubernetes_parts_validate(
        inference_service: dict[str, Any], k8s_versions: list[str],
        k8s_schema: Callable[[str, str], Any]) -> None:
    """kubernetes-validate has no schema for KServe's CRD. The predictor embeds a PodSpec and
    its model a Container: those parts are checked against the Kubernetes schemas, and the
    KServe-only keys against the CRD's field names."""
    doc = inference_service
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert doc["kind"] == "InferenceService"
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(doc["spec"]) == {"predictor"}
    predictor = doc["spec"]["predictor"]
    model = predictor["model"]
    pod = {k: v for k, v in predictor.items() if k not in _PREDICTOR_ONLY}
    container = {k: v for k, v in model.items() if k not in _MODEL_ONLY}
    pod["containers"] = [{"name": "kserve-container", **container}]
    for version in k8s_versions:
        for schema, part in (("objectmeta-meta-v1", doc["metadata"]), ("podspec-v1", pod)):
            errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
                      for e in k8s_schema(schema, version).iter_errors(part)]
            assert not errors, f"InferenceService {schema} for Kubernetes {version}: {errors}"
    assert set(model["modelFormat"]) <= {"name", "version"}


def test_inferenceservice_serves_the_export_layout(inference_service: dict[str, Any],
                                                   tf_version: str) -> None:
    doc = inference_service
    # KServe's TF Serving runtime names the model after the InferenceService.
    assert doc["metadata"]["name"] == MODEL_NAME
    model = doc["spec"]["predictor"]["model"]
    assert model["modelFormat"]["name"] == "tensorflow"
    assert str(model["runtimeVersion"]) == tf_version
    # The base folder with the numbered versions, laid out as the export (models/headswitch).
    assert model["storageUri"].startswith("gs://")
    assert model["storageUri"].endswith(f"/{DEFAULT_BASE.as_posix()}")
    assert tuple(model["args"]) == SERVER_FLAGS
    assert doc["metadata"]["annotations"]["prometheus.kserve.io/path"] == METRICS_PATH
