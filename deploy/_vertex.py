"""``headswitch deploy vertex``: an export to a Vertex AI endpoint.

Planning (``plan_vertex``) reads the model folder and decides every call with its exact
parameters; nothing is contacted. Running (``run_vertex``) performs the plan through a
``VertexBackend``: ``GoogleVertexBackend`` calls google-cloud-storage and google-cloud-aiplatform
(imported only then), tests pass fake client modules to it.

Two containers:

- custom (default): the headswitch image (../Dockerfile: tensorflow/serving at the version pinned
  in pyproject.toml, plus the batching and monitoring configs). ``artifact_uri`` is the base
  folder with the numbered versions; Vertex copies it and hands the copy to the container as
  ``AIP_STORAGE_URI``, which TF Serving reads itself (``--model_base_path=$(AIP_STORAGE_URI)``).
- prebuilt (``--prebuilt``): Vertex's own TensorFlow image, whose newest release is 2.15.
  ``artifact_uri`` is the folder that directly holds ``saved_model.pb`` (the newest version).
  Refused for a model exported by a newer TensorFlow than the image's.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from headswitch import contract
from headswitch._placeholders import PLACEHOLDERS, dry_run_note, placeholders_in, replace_hint
from headswitch.contract import REST_PORT

from ._errors import DeployError
from ._layout import SAVED_MODEL, LocalModel, scan_model_dir
from ._serving import (
    MODEL_NAME,
    PREDICT_ROUTE,
    READY_ROUTE,
    major_minor,
    server_args,
    serving_tensorflow_version,
)

_MANIFEST = f"{contract.ASSETS_EXTRA}/{contract.MANIFEST_FILE}"

# Newest TensorFlow of Vertex AI's prebuilt prediction images (tf2-cpu.2-15).
PREBUILT_TF = (2, 15)
PREBUILT_IMAGE = "{multi_region}-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
DEFAULT_MACHINE_TYPE = "n1-standard-4"
SAMPLE_TEXT = "free prize, click now"
INSTALL_HINT = 'pip install "headswitch[vertex]"  (google-cloud-aiplatform, google-cloud-storage)'

_BUCKET = re.compile(r"^gs://([a-z0-9][a-z0-9._-]{1,220}[a-z0-9])(/.*)?$")
_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")  # us-central1, europe-west4, me-central2
_ENDPOINT_RESOURCE = re.compile(r"^projects/[^/]+/locations/[^/]+/endpoints/[^/]+$")


@dataclass(frozen=True)
class VertexOptions:
    project: str
    region: str
    bucket: str
    model_dir: Path = Path(contract.DEFAULT_BASE)
    image: str | None = None
    machine_type: str = DEFAULT_MACHINE_TYPE
    min_replicas: int = 1
    max_replicas: int | None = None  # default: min_replicas
    endpoint: str | None = None  # display name, numeric id or projects/.../endpoints/ID
    prebuilt: bool = False
    display_name: str = MODEL_NAME


@dataclass(frozen=True)
class Upload:
    local: Path
    uri: str
    size: int


@dataclass(frozen=True)
class VertexPlan:
    """Every call ``run_vertex`` makes, with its exact parameters."""

    options: VertexOptions
    model: LocalModel
    container: str  # "custom" or "prebuilt"
    gcs_base: str  # gs://.../models/headswitch, holding the numbered versions
    uploads: tuple[Upload, ...]
    # aiplatform.Model.upload(**model_upload)
    model_upload: dict[str, Any]
    # {"endpoint_name": ...}: aiplatform.Endpoint(endpoint_name=...), an existing endpoint;
    # {"display_name": ...}: the newest endpoint of that name, else
    #     Endpoint.create(display_name=...)
    endpoint: dict[str, str]
    # Model.deploy(endpoint=<endpoint>, **deploy)
    deploy: dict[str, Any]
    notes: tuple[str, ...] = field(default=())

    @property
    def artifact_uri(self) -> str:
        return str(self.model_upload["artifact_uri"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "container": self.container,
            "project": self.options.project,
            "region": self.options.region,
            "model_dir": str(self.model.base),
            "versions": list(self.model.versions),
            "tensorflow_version": self.model.tensorflow_version,
            "gcs_base": self.gcs_base,
            "uploads": [{"local": str(u.local), "uri": u.uri, "bytes": u.size}
                        for u in self.uploads],
            "steps": [
                {"call": "storage: Blob.upload_from_filename", "count": len(self.uploads)},
                {"call": "aiplatform.Model.upload", "kwargs": self.model_upload},
                _endpoint_step(self.endpoint),
                {"call": "aiplatform.Model.deploy", "kwargs": {
                    "endpoint": "<the endpoint of step 3>", **self.deploy}},
            ],
            "predict_url": predict_url(self.options.region, _endpoint_placeholder(self)),
            "notes": list(self.notes),
        }

    def describe(self) -> str:
        """The dry-run text: every step and its exact parameters."""
        model = self.model
        lines = [
            (f"Vertex AI deployment plan ({self.container} container), project "
             f"{self.options.project}, region {self.options.region}"),
            (f"model: {model.base} versions {', '.join(map(str, model.versions))} (TensorFlow "
             f"{model.tensorflow_version or 'unknown'})"),
            "",
            (f"1. upload {len(self.uploads)} files ({_size(model.total_bytes)}) to "
             f"{self.gcs_base}/ (saved_model.pb of each version last)"),
        ]
        lines += [f"     {u.local} -> {u.uri}" for u in self.uploads]
        lines += ["", "2. register the model: aiplatform.Model.upload("]
        lines += [f"       {k}={v!r}," for k, v in self.model_upload.items()]
        lines += ["   )", ""]
        if "endpoint_name" in self.endpoint:
            lines.append(f"3. use endpoint: aiplatform.Endpoint("
                         f"endpoint_name={self.endpoint['endpoint_name']!r})")
        else:
            name = self.endpoint["display_name"]
            lines.append(f"3. reuse the newest endpoint named {name!r}: aiplatform.Endpoint.list("
                         f"filter={_display_filter(name)!r}, order_by='create_time desc'); "
                         f"if none: aiplatform.Endpoint.create(display_name={name!r})")
        lines += ["", "4. deploy: model.deploy(", "       endpoint=<the endpoint of step 3>,"]
        lines += [f"       {k}={v!r}," for k, v in self.deploy.items()]
        lines += ["   )", ""]
        url = predict_url(self.options.region, _endpoint_placeholder(self))
        lines.append(f"then: predict URL {url}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass(frozen=True)
class VertexResult:
    model: str  # projects/.../models/ID
    endpoint: str  # projects/.../endpoints/ID
    endpoint_created: bool
    predict_url: str


class VertexBackend(Protocol):
    """The Google calls, one method per step."""

    def upload_folder(self, uploads: Sequence[Upload]) -> None:
        """Copy every file to its gs:// URI, in the given order."""

    def upload_model(self, kwargs: dict[str, Any]) -> str:
        """``aiplatform.Model.upload(**kwargs)``; returns the model resource name."""

    def get_or_create_endpoint(self, spec: dict[str, str]) -> tuple[str, bool]:
        """Returns (endpoint resource name, whether it was created)."""

    def deploy(self, model: str, endpoint: str, kwargs: dict[str, Any]) -> None:
        """``Model(model).deploy(endpoint=Endpoint(endpoint), **kwargs)``."""


class GoogleVertexBackend:
    """``VertexBackend`` on google-cloud-storage and google-cloud-aiplatform.

    ``aiplatform`` and ``storage`` default to ``google.cloud.aiplatform`` and
    ``google.cloud.storage``, imported on first use; tests pass fakes of the same shape.
    """

    def __init__(self, project: str, region: str, *, aiplatform: Any = None,
                 storage: Any = None) -> None:
        self.project = project
        self.region = region
        self._aiplatform = aiplatform
        self._storage = storage
        self._initialised = False

    @staticmethod
    def check_installed() -> None:
        """Raise ``DeployError`` with the install hint when the client libraries are missing."""
        _import_google()

    def _aip(self) -> Any:
        if self._aiplatform is None:
            self._aiplatform = _import_google()[0]
        if not self._initialised:
            self._aiplatform.init(project=self.project, location=self.region)
            self._initialised = True
        return self._aiplatform

    def upload_folder(self, uploads: Sequence[Upload]) -> None:
        if self._storage is None:
            self._storage = _import_google()[1]
        client = self._storage.Client(project=self.project)
        buckets: dict[str, Any] = {}
        for upload in uploads:
            bucket_name, object_name = split_gcs_uri(upload.uri)
            if bucket_name not in buckets:
                buckets[bucket_name] = client.bucket(bucket_name)
            blob = buckets[bucket_name].blob(object_name)
            blob.upload_from_filename(str(upload.local))

    def upload_model(self, kwargs: dict[str, Any]) -> str:
        model = self._aip().Model.upload(**kwargs)
        return str(model.resource_name)

    def get_or_create_endpoint(self, spec: dict[str, str]) -> tuple[str, bool]:
        aip = self._aip()
        if "endpoint_name" in spec:
            return str(aip.Endpoint(endpoint_name=spec["endpoint_name"]).resource_name), False
        name = spec["display_name"]
        found = list(aip.Endpoint.list(filter=_display_filter(name),
                                       order_by="create_time desc"))
        if found:
            return str(found[0].resource_name), False
        return str(aip.Endpoint.create(display_name=name).resource_name), True

    def deploy(self, model: str, endpoint: str, kwargs: dict[str, Any]) -> None:
        aip = self._aip()
        aip.Model(model_name=model).deploy(endpoint=aip.Endpoint(endpoint_name=endpoint),
                                            **kwargs)


def _import_google() -> tuple[Any, Any]:
    try:
        import google.cloud.aiplatform as aiplatform
        import google.cloud.storage as storage
    except ImportError as exc:
        raise DeployError(f"deploying to Vertex AI needs the Google Cloud client libraries "
                          f"({exc})", hint=INSTALL_HINT) from exc
    return aiplatform, storage


def split_gcs_uri(uri: str) -> tuple[str, str]:
    match = re.match(r"^gs://([^/]+)/(.+)$", uri)
    if not match:
        raise DeployError(f"not a gs://BUCKET/OBJECT URI: {uri}")
    return match.group(1), match.group(2)


def prebuilt_image(region: str) -> str:
    """Vertex's prebuilt TF images live in the us, europe and asia multi-regions."""
    first = region.split("-", 1)[0]
    multi = {"northamerica": "us", "southamerica": "us", "australia": "asia",
             "me": "europe", "africa": "europe"}.get(first, first)
    if multi not in ("us", "europe", "asia"):
        multi = "us"
    return PREBUILT_IMAGE.format(multi_region=multi)


def default_image(project: str, region: str, tensorflow_version: str) -> str:
    """Where the README's steps push the headswitch image (Artifact Registry repo `headswitch`)."""
    return f"{region}-docker.pkg.dev/{project}/headswitch/headswitch-serving:{tensorflow_version}"


def predict_url(region: str, endpoint: str) -> str:
    return f"https://{region}-aiplatform.googleapis.com/v1/{endpoint}:predict"


def _display_filter(name: str) -> str:
    return f'display_name="{name}"'


def _endpoint_step(endpoint: dict[str, str]) -> dict[str, Any]:
    if "endpoint_name" in endpoint:
        return {"call": "aiplatform.Endpoint", "kwargs": dict(endpoint)}
    name = endpoint["display_name"]
    return {"call": "aiplatform.Endpoint.list or aiplatform.Endpoint.create",
            "list_kwargs": {"filter": _display_filter(name), "order_by": "create_time desc"},
            "create_kwargs": {"display_name": name}}


def _endpoint_placeholder(plan: VertexPlan) -> str:
    given = plan.endpoint.get("endpoint_name")
    if given and _ENDPOINT_RESOURCE.match(given):
        return given
    endpoint_id = given or "ENDPOINT_ID"
    options = plan.options
    return f"projects/{options.project}/locations/{options.region}/endpoints/{endpoint_id}"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


def _label_value(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]


def plan_vertex(options: VertexOptions, *, allow_placeholders: bool = False) -> VertexPlan:
    """Check the options and the model folder; decide every call. Contacts nothing.

    The README's placeholders (``PROJECT``, ``REGION``, ``gs://BUCKET``) are refused with what
    to give instead, unless ``allow_placeholders`` (a dry run): then the plan shows them."""
    if not options.project.strip():
        raise DeployError("--project is empty", hint=PLACEHOLDERS["PROJECT"])
    words = placeholders_in(options.project, options.region, options.bucket, options.image,
                            options.endpoint)
    if words and not allow_placeholders:
        verb = "is a placeholder" if len(words) == 1 else "are placeholders"
        raise DeployError(f"{', '.join(words)} {verb} (the README's); a dry run shows the plan "
                          "with them, a deployment needs the real values",
                          hint=replace_hint(words))
    if options.region != "REGION" and (not options.region.strip()
                                        or not _REGION.match(options.region)):
        raise DeployError(f"--region {options.region!r} is not a Google Cloud region",
                          hint=PLACEHOLDERS["REGION"])
    bucket = _BUCKET.match(options.bucket.rstrip("/").replace("gs://BUCKET", "gs://bucket", 1))
    if not bucket:
        raise DeployError(f"--bucket {options.bucket!r} is not a Cloud Storage URI",
                          hint="gs:// and " + PLACEHOLDERS["BUCKET"]
                          + ", then an optional /prefix: gs://my-bucket/serving")
    if options.min_replicas < 1:
        raise DeployError(f"--min-replicas must be at least 1, got {options.min_replicas}")
    max_replicas = options.min_replicas if options.max_replicas is None else options.max_replicas
    if max_replicas < options.min_replicas:
        raise DeployError(f"--max-replicas {max_replicas} is below --min-replicas "
                          f"{options.min_replicas}")

    model = scan_model_dir(options.model_dir)
    gcs_base = f"{options.bucket.rstrip('/')}/models/{MODEL_NAME}"
    uploads = tuple(Upload(local=model.base / rel, uri=f"{gcs_base}/{rel.as_posix()}", size=size)
                    for rel, size in zip(model.files, model.sizes, strict=True))
    exported_with = model.tensorflow_version
    exported_mm = major_minor(exported_with) if exported_with else None
    notes: list[str] = [dry_run_note(words)] if words else []
    labels = {"app": MODEL_NAME, "model-version": str(model.newest)}
    if exported_with:
        labels["tensorflow"] = _label_value(exported_with)
    description = (f"headswitch task-switching SavedModel, versions "
                   f"{', '.join(map(str, model.versions))} from {model.base}")

    if options.prebuilt:
        if options.image:
            raise DeployError("--prebuilt and --image exclude each other",
                              hint="--prebuilt uses Vertex AI's own TensorFlow image")
        if exported_mm is None:
            raise DeployError(
                f"--prebuilt: cannot tell which TensorFlow exported {model.base}/{model.newest} "
                f"(no tensorflow_version in {_MANIFEST}), so cannot check it "
                f"against the prebuilt image's TensorFlow {PREBUILT_TF[0]}.{PREBUILT_TF[1]}",
                hint="drop --prebuilt to serve it with the headswitch image")
        if exported_mm > PREBUILT_TF:
            raise DeployError(
                f"--prebuilt refused: the model was exported with TensorFlow {exported_with}, "
                f"newer than the newest Vertex AI prebuilt TensorFlow image "
                f"({PREBUILT_TF[0]}.{PREBUILT_TF[1]}, tf2-cpu.2-15); a SavedModel from a newer "
                f"TensorFlow may use ops an older server does not know",
                hint="drop --prebuilt to serve it as a custom container with the headswitch "
                     "image (tensorflow/serving at the exporter's version), or export with "
                     f"TensorFlow {PREBUILT_TF[0]}.{PREBUILT_TF[1]} or older")
        artifact_uri = f"{gcs_base}/{model.newest}"
        if len(model.versions) > 1:
            notes.append(f"the prebuilt container serves the folder holding {SAVED_MODEL}: "
                         f"version {model.newest} only ({artifact_uri})")
        model_upload: dict[str, Any] = {
            "display_name": options.display_name,
            "artifact_uri": artifact_uri,
            "serving_container_image_uri": prebuilt_image(options.region),
            "description": description,
            "labels": labels,
            "sync": True,
        }
    else:
        serving_tf = serving_tensorflow_version()
        image = options.image
        if image is None:
            if serving_tf is None:
                raise DeployError("cannot tell the TensorFlow version of the headswitch image "
                                  "(headswitch's package metadata is missing)",
                                  hint="pass --image URI of the image built from the Dockerfile")
            image = default_image(options.project, options.region, serving_tf)
            serving_mm = major_minor(serving_tf)
            if exported_mm and serving_mm and exported_mm > serving_mm:
                raise DeployError(
                    f"the model was exported with TensorFlow {exported_with}, newer than the "
                    f"serving image's TensorFlow {serving_tf}; a SavedModel from a newer "
                    f"TensorFlow may use ops an older server does not know",
                    hint="export with the TensorFlow pinned in pyproject.toml, or pass --image "
                         "built from a newer tensorflow/serving")
            notes.append(f"the image {image} must exist: build the Dockerfile and push it there "
                         "(see the README), or pass --image")
        elif exported_with:
            notes.append(f"--image must run TensorFlow Serving {exported_with} or newer "
                         f"(the model was exported with TensorFlow {exported_with})")
        if exported_with is None:
            notes.append(f"no TensorFlow version recorded in {model.base}/{model.newest}/"
                         f"{_MANIFEST}; not checked against the image")
        model_upload = {
            "display_name": options.display_name,
            "artifact_uri": gcs_base,
            "serving_container_image_uri": image,
            # Vertex expands $(AIP_STORAGE_URI) to its copy of artifact_uri; TF Serving reads
            # gs:// itself and serves the newest numbered version.
            "serving_container_command": ["tensorflow_model_server"],
            "serving_container_args": server_args("$(AIP_STORAGE_URI)"),
            "serving_container_ports": [REST_PORT],
            "serving_container_health_route": READY_ROUTE,
            "serving_container_predict_route": PREDICT_ROUTE,
            "description": description,
            "labels": labels,
            "sync": True,
        }

    if options.endpoint is None:
        endpoint = {"display_name": options.display_name}
    elif options.endpoint.isdigit() or _ENDPOINT_RESOURCE.match(options.endpoint):
        endpoint = {"endpoint_name": options.endpoint}
    else:
        endpoint = {"display_name": options.endpoint}
    deploy = {
        "deployed_model_display_name": f"{options.display_name}-v{model.newest}",
        "machine_type": options.machine_type,
        "min_replica_count": options.min_replicas,
        "max_replica_count": max_replicas,
        "traffic_percentage": 100,
        "sync": True,
    }
    return VertexPlan(options=options, model=model,
                      container="prebuilt" if options.prebuilt else "custom",
                      gcs_base=gcs_base, uploads=uploads, model_upload=model_upload,
                      endpoint=endpoint, deploy=deploy, notes=tuple(notes))


def run_vertex(plan: VertexPlan, backend: VertexBackend,
               log: Callable[[str], None] = print) -> VertexResult:
    """Carry out the plan: upload, register, find or create the endpoint, deploy."""

    def step(number: int, what: str, call: Callable[[], Any]) -> Any:
        log(f"[{number}/4] {what}")
        try:
            return call()
        except DeployError:
            raise
        except Exception as exc:  # the Google libraries raise many types; name the step
            raise DeployError(f"step {number}/4 ({what}) failed: {type(exc).__name__}: {exc}",
                              hint="nothing later was attempted; fix the cause and run again "
                                   "(uploads are simply repeated)") from exc

    step(1, f"uploading {len(plan.uploads)} files ({_size(plan.model.total_bytes)}) to "
            f"{plan.gcs_base}/", lambda: backend.upload_folder(plan.uploads))
    model = step(2, f"registering model {plan.model_upload['display_name']!r} "
                    f"(artifact_uri {plan.artifact_uri})",
                 lambda: backend.upload_model(dict(plan.model_upload)))
    log(f"      model {model}")
    endpoint, created = step(3, "finding or creating the endpoint",
                             lambda: backend.get_or_create_endpoint(dict(plan.endpoint)))
    log(f"      endpoint {endpoint} ({'created' if created else 'existing'})")
    step(4, f"deploying on {plan.deploy['machine_type']} x {plan.deploy['min_replica_count']}"
            f"-{plan.deploy['max_replica_count']} (this takes several minutes)",
         lambda: backend.deploy(model, endpoint, dict(plan.deploy)))
    return VertexResult(model=model, endpoint=endpoint, endpoint_created=created,
                        predict_url=predict_url(plan.options.region, endpoint))


def sample_requests(url: str, model: LocalModel) -> str:
    """How to call the deployed model: ``headswitch predict`` and curl, both signatures."""
    task_id, task_name = model.first_task()
    token = '"Authorization: Bearer $(gcloud auth print-access-token)"'
    c = contract
    by_id = json.dumps({"instances": [{c.INPUT_TEXT: SAMPLE_TEXT, c.INPUT_TASK_ID: task_id}]})
    raw_url = url[: -len(":predict")] + ":rawPredict" if url.endswith(":predict") else url
    by_name = json.dumps({"signature_name": c.SIGNATURE_NAMES,
                          "instances": [{c.INPUT_TEXT: SAMPLE_TEXT, c.INPUT_TASK: task_name}]})
    reply = ", ".join(f'"{name}": ...' for name in c.PREDICT_OUTPUTS)
    return "\n".join([
        f"Send a request ({c.SIGNATURE_IDS}: {c.INPUT_TEXT} + {c.INPUT_TASK_ID}):",
        f"  headswitch predict --vertex {url} \\",
        '      --token "$(gcloud auth print-access-token)" \\',
        f"      --task {task_id} {shlex.quote(SAMPLE_TEXT)}",
        f"  curl -s -X POST {url} \\",
        f"      -H {token} -H \"Content-Type: application/json\" \\",
        f"      -d {shlex.quote(by_id)}",
        (f"By task name ({c.SIGNATURE_NAMES} signature) through :rawPredict, which hands the "
         "body to TF Serving unchanged:"),
        f"  curl -s -X POST {raw_url} \\",
        f"      -H {token} -H \"Content-Type: application/json\" \\",
        f"      -d {shlex.quote(by_name)}",
        (f'Reply of :predict: {{"predictions": [{{{reply}}}], "deployedModelId": "...", '
         '...}; :rawPredict returns TF Serving\'s reply as is.'),
    ])
