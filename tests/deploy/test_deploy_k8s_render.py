"""``kubectl kustomize`` renders the base, every overlay and KServe without a warning; everything
rendered passes ``kubernetes-validate --strict`` (Kubernetes 1.30 and the newest bundled
version); and the rendered objects agree with each other, the image, the exporter and
docker/ (ports, probes, labels, ConfigMap, flags, model location)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headswitch.deploy import (
    GRPC_PORT,
    HEALTH_ROUTE,
    METRICS_PATH,
    MODEL_NAME,
    READY_ROUTE,
    REST_PORT,
    SERVER_FLAGS,
)
from headswitch.export import DEFAULT_BASE

ROOT = Path(__file__).resolve().parents[2]
Render = Callable[[str], list[dict[str, Any]]]
KUSTOMIZATIONS = ("base", "overlays/baked", "overlays/gcs", "overlays/gpu", "kserve")
OVERLAYS = ("overlays/baked", "overlays/gcs", "overlays/gpu")
GCS_POLL = "--file_system_poll_wait_seconds=30"


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_renders_and_validates(name: str, rendered: Render,
                               k8s_validate: Callable[[dict[str, Any], str], None]) -> None:
    docs = rendered(name)
    assert docs
    for doc in docs:
        if doc["kind"] == "InferenceService":
            continue  # CRD; its Kubernetes parts: test_deploy_k8s_files.py
        k8s_validate(doc, f"kubectl kustomize k8s/{name}")


def test_strict_validation_rejects_unknown_fields(
        rendered: Render, k8s_validate: Callable[[dict[str, Any], str], None]) -> None:
    """The validator is really strict: a misspelt field fails."""
    import copy

    deployment = copy.deepcopy(_one(rendered("base"), "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(pytest.fail.Exception, match="readinesProbe"):
        k8s_validate(deployment, "mutated")


@pytest.mark.parametrize("name", ("base", *OVERLAYS))
def test_service_ports_and_probes_agree(name: str, rendered: Render) -> None:
    docs = rendered(name)
    container = _container(docs)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": GRPC_PORT, "http": REST_PORT}
    service = _one(docs, "Service")
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        "grpc": (GRPC_PORT, "grpc"), "http": (REST_PORT, "http")}
    # Startup and readiness fail while no version is AVAILABLE (the metadata route needs a
    # loaded version); liveness only asks whether the server answers (the status route).
    for probe, route in (
        ("startupProbe", READY_ROUTE),
        ("readinessProbe", READY_ROUTE),
        ("livenessProbe", HEALTH_ROUTE),
    ):
        get = container[probe]["httpGet"]
        assert get["path"] == route and ports[get["port"]] == REST_PORT, probe
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, "covers a model load"
    annotations = _one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(REST_PORT)
    assert annotations["prometheus.io/path"] == METRICS_PATH


@pytest.mark.parametrize("name", ("base", *OVERLAYS))
def test_selectors_match_the_pods(name: str, rendered: Render) -> None:
    docs = rendered(name)
    deployment = _one(docs, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [deployment["spec"]["selector"]["matchLabels"],
                 _one(docs, "Service")["spec"]["selector"],
                 _one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]]
    selectors += [c["labelSelector"]["matchLabels"]
                  for c in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]]
    for selector in selectors:
        assert selector.items() <= labels.items()


@pytest.mark.parametrize("name", ("base", *OVERLAYS))
def test_autoscaling_disruption_and_drain(name: str, rendered: Render) -> None:
    docs = rendered(name)
    deployment = _one(docs, "Deployment")
    hpa = _one(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert "cpu" in _container(docs)["resources"]["requests"], "a CPU target needs CPU requests"
    assert hpa["spec"]["minReplicas"] >= 2
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert _one(docs, "PodDisruptionBudget")["apiVersion"] == "policy/v1"
    pod = deployment["spec"]["template"]["spec"]
    sleep = _container(docs)["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep" and pod["terminationGracePeriodSeconds"] > int(sleep[1])
    keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert "kubernetes.io/hostname" in keys


@pytest.mark.parametrize("name", ("base", *OVERLAYS))
def test_restricted_security_context(name: str, rendered: Render) -> None:
    docs = rendered(name)
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    container = _container(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "a writable /tmp on a read-only root"


@pytest.mark.parametrize("name", ("base", *OVERLAYS, "kserve"))
def test_configmap_is_docker_folder_verbatim(name: str, rendered: Render) -> None:
    docs = rendered(name)
    config = _one(docs, "ConfigMap")
    for file_name in ("batching_parameters.txt", "monitoring.config"):
        assert config["data"][file_name] == (ROOT / "docker" / file_name).read_text()
    generated = config["metadata"]["name"]
    assert generated.startswith("headswitch-serving-config-"), "name carries a content hash"
    if name == "kserve":
        predictor = _one(docs, "InferenceService")["spec"]["predictor"]
        volumes, mounts = predictor["volumes"], predictor["model"]["volumeMounts"]
        args = predictor["model"]["args"]
    else:
        volumes = _one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
        mounts = _container(docs)["volumeMounts"]
        args = _container(docs)["args"]
    (volume,) = [v for v in volumes if "configMap" in v]
    assert volume["configMap"]["name"] == generated, "the reference follows the hashed name"
    (mount,) = [m for m in mounts if m["name"] == volume["name"]]
    assert mount["mountPath"] == "/etc/headswitch" and mount["readOnly"] is True
    extra = (GCS_POLL,) if name in ("overlays/gcs", "overlays/gpu") else ()
    assert tuple(args) == SERVER_FLAGS + extra


def test_images_per_overlay(rendered: Render, tf_version: str) -> None:
    assert _container(rendered("base"))["image"] == f"tensorflow/serving:{tf_version}"
    assert _container(rendered("overlays/gcs"))["image"] == f"tensorflow/serving:{tf_version}"
    assert _container(rendered("overlays/gpu"))["image"] == f"tensorflow/serving:{tf_version}-gpu"
    baked = _container(rendered("overlays/baked"))["image"]
    assert not baked.startswith("tensorflow/serving"), "the image built from the Dockerfile"
    assert ":" in baked.rsplit("/", 1)[-1] and not baked.endswith(":latest")


def test_model_location_per_overlay(rendered: Render) -> None:
    """The image's entrypoint serves $MODEL_BASE_PATH/$MODEL_NAME."""
    for name in ("base", "overlays/baked"):
        env = _env(_container(rendered(name)))
        assert f"{env['MODEL_BASE_PATH']}/{env['MODEL_NAME']}" == f"/{DEFAULT_BASE.as_posix()}"
    for name in ("overlays/gcs", "overlays/gpu"):
        env = _env(_container(rendered(name)))
        assert env["MODEL_NAME"] == MODEL_NAME
        served = f"{env['MODEL_BASE_PATH']}/{env['MODEL_NAME']}"
        assert served.startswith("gs://") and served.endswith(f"/{DEFAULT_BASE.as_posix()}")


@pytest.mark.parametrize("name", ("overlays/gcs", "overlays/gpu"))
def test_workload_identity(name: str, rendered: Render) -> None:
    docs = rendered(name)
    account = _one(docs, "ServiceAccount")
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(
        ".iam.gserviceaccount.com")
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_gpu_overlay(rendered: Render) -> None:
    docs = rendered("overlays/gpu")
    container = _container(docs)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["cpu"], "the HPA still measures CPU"
    tolerations = _one(docs, "Deployment")["spec"]["template"]["spec"]["tolerations"]
    assert any(t["key"] == "nvidia.com/gpu" and t["effect"] == "NoSchedule" for t in tolerations)
    for other in ("base", "overlays/baked", "overlays/gcs"):
        assert "nvidia.com/gpu" not in _container(rendered(other))["resources"]["limits"]


def test_kserve_renders_one_inference_service(rendered: Render, tf_version: str) -> None:
    docs = rendered("kserve")
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "InferenceService"]
    model = _one(docs, "InferenceService")["spec"]["predictor"]["model"]
    assert str(model["runtimeVersion"]) == tf_version
