"""``headswitch deploy vertex``: the plan (dry run) for both containers, the real code path
against fake ``google.cloud.aiplatform`` / ``google.cloud.storage`` modules, the refusals."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headswitch.deploy import (
    MODEL_NAME,
    PREDICT_ROUTE,
    READY_ROUTE,
    REST_PORT,
    SERVER_FLAGS,
    DeployError,
    GoogleVertexBackend,
    VertexOptions,
    plan_vertex,
    prebuilt_image,
    run_vertex,
    sample_requests,
    scan_model_dir,
)
from headswitch.deploy import _cli as deploy_cli
from headswitch.export import DEFAULT_BASE

PROJECT, REGION, BUCKET = "my-project", "us-central1", "gs://my-bucket"
BASE_URI = f"{BUCKET}/{DEFAULT_BASE.as_posix()}"  # gs://my-bucket/models/headswitch


def _options(model_dir: Path, **kw: Any) -> VertexOptions:
    return VertexOptions(**{"project": PROJECT, "region": REGION, "bucket": BUCKET,
                            "model_dir": model_dir, **kw})


# ---------------------------------------------------------------------------------------------
# The plan


def test_custom_plan_uploads_every_version_saved_model_last(fake_export: Path) -> None:
    plan = plan_vertex(_options(fake_export))
    uris = [u.uri for u in plan.uploads]
    assert plan.gcs_base == BASE_URI
    for version in (1, 2):
        mine = [u for u in uris if u.startswith(f"{BASE_URI}/{version}/")]
        assert mine[-1] == f"{BASE_URI}/{version}/saved_model.pb"
        assert f"{BASE_URI}/{version}/variables/variables.index" in mine
        assert f"{BASE_URI}/{version}/assets.extra/tf_serving_warmup_requests" in mine
    assert uris.index(f"{BASE_URI}/1/saved_model.pb") < uris.index(f"{BASE_URI}/2/fingerprint.pb")
    # Exports in progress, non-integer folders and hidden files stay home.
    assert not any("headswitch-tmp" in u or "not-a-version" in u or ".DS_Store" in u
                   for u in uris)
    assert len(uris) == 2 * 6
    for upload in plan.uploads:
        assert upload.local.is_file() and upload.size == upload.local.stat().st_size
        assert upload.uri == f"{BASE_URI}/{upload.local.relative_to(fake_export).as_posix()}"


def test_custom_plan_container_spec(fake_export: Path, tf_version: str) -> None:
    plan = plan_vertex(_options(fake_export))
    spec = plan.model_upload
    assert plan.container == "custom"
    # The base folder with the numbered versions; TF Serving serves the newest.
    assert spec["artifact_uri"] == BASE_URI
    assert spec["serving_container_image_uri"] == (
        f"{REGION}-docker.pkg.dev/{PROJECT}/headswitch/headswitch-serving:{tf_version}")
    assert spec["serving_container_ports"] == [REST_PORT] == [8501]
    # 200 only while a version is AVAILABLE (the status route stays 200 after a failed load)
    assert spec["serving_container_health_route"] == READY_ROUTE == \
        "/v1/models/headswitch/metadata"
    assert spec["serving_container_predict_route"] == PREDICT_ROUTE == (
        "/v1/models/headswitch:predict")
    assert spec["serving_container_command"] == ["tensorflow_model_server"]
    args = spec["serving_container_args"]
    assert "--model_base_path=$(AIP_STORAGE_URI)" in args
    assert f"--rest_api_port={REST_PORT}" in args and f"--model_name={MODEL_NAME}" in args
    assert tuple(args[-len(SERVER_FLAGS):]) == SERVER_FLAGS
    assert spec["labels"]["model-version"] == "2"
    assert plan.deploy == {"deployed_model_display_name": "headswitch-v2",
                           "machine_type": "n1-standard-4", "min_replica_count": 1,
                           "max_replica_count": 1, "traffic_percentage": 100, "sync": True}
    assert plan.endpoint == {"display_name": MODEL_NAME}


@pytest.mark.parametrize("exported_with", ["2.15.1", "2.13.0"])
def test_prebuilt_plan_points_at_the_version_folder(make_export: Callable[..., Path],
                                                    exported_with: str) -> None:
    base = make_export({1: exported_with, 2: exported_with})
    plan = plan_vertex(_options(base, prebuilt=True, machine_type="n1-standard-2",
                                min_replicas=2, max_replicas=5, endpoint="1234567890"))
    spec = plan.model_upload
    assert plan.container == "prebuilt"
    # The folder that directly holds saved_model.pb: the newest version.
    assert spec["artifact_uri"] == f"{BASE_URI}/2"
    assert f"{spec['artifact_uri']}/saved_model.pb" in [u.uri for u in plan.uploads]
    assert spec["serving_container_image_uri"] == (
        "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest")
    assert not any(k.startswith("serving_container_") and k != "serving_container_image_uri"
                   for k in spec), "Vertex's own image knows its routes and ports"
    assert plan.endpoint == {"endpoint_name": "1234567890"}
    assert plan.deploy["machine_type"] == "n1-standard-2"
    assert (plan.deploy["min_replica_count"], plan.deploy["max_replica_count"]) == (2, 5)
    assert any("version 2 only" in n for n in plan.notes)


@pytest.mark.parametrize(("region", "repo"), [("us-central1", "us"), ("europe-west4", "europe"),
                                              ("asia-northeast1", "asia"),
                                              ("northamerica-northeast1", "us"),
                                              ("australia-southeast1", "asia")])
def test_prebuilt_image_region(region: str, repo: str) -> None:
    expected = f"{repo}-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
    assert prebuilt_image(region) == expected


def test_prebuilt_refused_for_the_projects_tensorflow(fake_export: Path, tf_version: str) -> None:
    with pytest.raises(DeployError) as caught:
        plan_vertex(_options(fake_export, prebuilt=True))
    message = str(caught.value)
    assert f"TensorFlow {tf_version}" in message and "2.15" in message
    assert "drop --prebuilt" in (caught.value.hint or "")


def test_prebuilt_refused_without_a_recorded_version(make_export: Callable[..., Path]) -> None:
    with pytest.raises(DeployError, match="cannot tell which TensorFlow"):
        plan_vertex(_options(make_export({1: None}), prebuilt=True))


def test_custom_refused_for_a_model_newer_than_the_image(make_export: Callable[..., Path],
                                                         tf_version: str) -> None:
    base = make_export({1: "99.0.0"})
    with pytest.raises(DeployError, match=f"newer than the serving image's TensorFlow "
                                          f"{tf_version}"):
        plan_vertex(_options(base))
    image = "europe-docker.pkg.dev/p/r/img:99.0.0"
    plan = plan_vertex(_options(base, image=image))
    assert plan.model_upload["serving_container_image_uri"] == image
    assert any("99.0.0" in n for n in plan.notes)


@pytest.mark.parametrize(("change", "message"), [
    ({"bucket": "my-bucket"}, "gs://"),
    ({"region": "central"}, "region"),
    ({"min_replicas": 0}, "at least 1"),
    ({"min_replicas": 3, "max_replicas": 2}, "below"),
    ({"prebuilt": True, "image": "x/y:z"}, "exclude"),
])
def test_bad_options(fake_export: Path, change: dict[str, Any], message: str) -> None:
    fields = {"project": PROJECT, "region": REGION, "bucket": BUCKET, "model_dir": fake_export,
              **change}
    with pytest.raises(DeployError, match=message):
        plan_vertex(VertexOptions(**fields))


def test_bad_region_and_bucket_hints_name_the_real_format(fake_export: Path) -> None:
    for options, real, given in [
            (_options(fake_export, region="Frankfurt"), "such as us-central1", "Frankfurt"),
            (_options(fake_export, bucket="gs://B"), "such as my-bucket", "gs://B")]:
        with pytest.raises(DeployError) as caught:
            plan_vertex(options)
        hint = caught.value.hint or ""
        assert real in hint and given not in hint


def test_placeholders_pass_a_dry_run_and_are_refused_for_a_deployment(
        fake_export: Path) -> None:
    """The README's placeholders: the plan shows them; a real run names what to give."""
    options = VertexOptions(project="PROJECT", region="REGION", bucket="gs://BUCKET",
                            model_dir=fake_export)
    plan = plan_vertex(options, allow_placeholders=True)
    assert plan.artifact_uri == "gs://BUCKET/models/headswitch"
    assert plan.model_upload["serving_container_image_uri"].startswith(
        "REGION-docker.pkg.dev/PROJECT/headswitch/")
    note = next(n for n in plan.notes if "placeholders" in n)
    assert "PROJECT, REGION, BUCKET" in note and "such as us-central1" in note
    with pytest.raises(DeployError) as caught:
        plan_vertex(options)
    assert "PROJECT, REGION, BUCKET are placeholders" in caught.value.message
    hint = caught.value.hint or ""
    assert "a region such as us-central1" in hint and "a project id such as" in hint
    assert "a bucket name such as my-bucket" in hint
    with pytest.raises(DeployError, match="REGION is a placeholder"):
        plan_vertex(_options(fake_export, region="REGION"))


def test_cli_dry_run_prints_the_plan_with_placeholders(
        fake_export: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["vertex", "--model-dir", str(fake_export), "--project", "PROJECT", "--region",
            "REGION", "--bucket", "gs://BUCKET"]
    parser = argparse.ArgumentParser()
    deploy_cli.register(parser.add_subparsers(dest="command"))
    dry = parser.parse_args(["deploy", *args, "--dry-run"])
    assert dry.func(dry) == 0
    out = capsys.readouterr().out
    assert "artifact_uri='gs://BUCKET/models/headswitch'" in out
    assert "note: placeholders PROJECT, REGION, BUCKET kept as they are" in out
    real = parser.parse_args(["deploy", *args])
    assert real.func(real) == 2
    err = capsys.readouterr().err
    assert "deploy failed: PROJECT, REGION, BUCKET are placeholders" in err
    assert "hint: replace PROJECT with a project id such as" in err


def test_bad_model_folders(tmp_path: Path, fake_export: Path) -> None:
    with pytest.raises(DeployError, match="does not exist"):
        plan_vertex(_options(tmp_path / "nothing"))
    with pytest.raises(DeployError, match="no numbered version"):
        plan_vertex(_options(fake_export / "1"))
    (fake_export / "3").mkdir()
    with pytest.raises(DeployError, match="version 3 has no saved_model.pb"):
        plan_vertex(_options(fake_export))


def test_bucket_prefix_is_kept(fake_export: Path) -> None:
    plan = plan_vertex(VertexOptions(project=PROJECT, region=REGION, model_dir=fake_export,
                                     bucket="gs://my-bucket/team/a/"))
    assert plan.artifact_uri == "gs://my-bucket/team/a/models/headswitch"


# ---------------------------------------------------------------------------------------------
# The real code path against fake Google client modules


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []


class _FakeStorage:
    """``google.cloud.storage``: Client(project).bucket(name).blob(path).upload_from_filename."""

    def __init__(self, recorder: _Recorder) -> None:
        calls = recorder.calls

        class Blob:
            def __init__(self, bucket: str, name: str) -> None:
                self.bucket, self.name = bucket, name

            def upload_from_filename(self, filename: str) -> None:
                assert Path(filename).is_file()
                calls.append(("upload", f"gs://{self.bucket}/{self.name}", filename))

        class Bucket:
            def __init__(self, name: str) -> None:
                self.name = name

            def blob(self, name: str) -> Blob:
                return Blob(self.name, name)

        class Client:
            def __init__(self, project: str | None = None) -> None:
                calls.append(("storage.Client", project))

            def bucket(self, name: str) -> Bucket:
                calls.append(("bucket", name))
                return Bucket(name)

        self.Client = Client


class _FakeAiplatform:
    """``google.cloud.aiplatform``: init, Model.upload, Model(...).deploy, Endpoint.*"""

    def __init__(self, recorder: _Recorder, endpoints: list[str] | None = None,
                 fail_upload: bool = False) -> None:
        calls = recorder.calls
        existing = list(endpoints or [])
        prefix = f"projects/123/locations/{REGION}"

        class Endpoint:
            def __init__(self, endpoint_name: str) -> None:
                calls.append(("Endpoint", endpoint_name))
                self.resource_name = (endpoint_name if endpoint_name.startswith("projects/")
                                      else f"{prefix}/endpoints/{endpoint_name}")

            @classmethod
            def list(cls, filter: str, order_by: str) -> list[Any]:
                calls.append(("Endpoint.list", filter, order_by))
                return [type("Found", (), {"resource_name": e})() for e in existing]

            @classmethod
            def create(cls, display_name: str) -> Any:
                calls.append(("Endpoint.create", display_name))
                return type("Created", (), {"resource_name": f"{prefix}/endpoints/777"})()

        class Model:
            def __init__(self, model_name: str) -> None:
                calls.append(("Model", model_name))
                self.resource_name = model_name

            @classmethod
            def upload(cls, **kwargs: Any) -> Any:
                calls.append(("Model.upload", kwargs))
                if fail_upload:
                    raise RuntimeError("403 Permission denied on resource project")
                return type("Uploaded", (), {"resource_name": f"{prefix}/models/555"})()

            def deploy(self, endpoint: Any, **kwargs: Any) -> None:
                calls.append(("Model.deploy", self.resource_name, endpoint.resource_name, kwargs))

        self.Endpoint = Endpoint
        self.Model = Model

        def init(project: str, location: str) -> None:
            calls.append(("init", project, location))

        self.init = init


def _run(plan: Any, **fake: Any) -> tuple[Any, list[tuple[Any, ...]]]:
    recorder = _Recorder()
    backend = GoogleVertexBackend(PROJECT, REGION, aiplatform=_FakeAiplatform(recorder, **fake),
                                  storage=_FakeStorage(recorder))
    log: list[str] = []
    return run_vertex(plan, backend, log=log.append), recorder.calls


def test_run_creates_the_endpoint_and_deploys(fake_export: Path) -> None:
    plan = plan_vertex(_options(fake_export, min_replicas=1, max_replicas=3))
    result, calls = _run(plan)
    uploads = [c for c in calls if c[0] == "upload"]
    assert [c[1] for c in uploads] == [u.uri for u in plan.uploads]
    assert [c[2] for c in uploads] == [str(u.local) for u in plan.uploads]
    assert calls[0] == ("storage.Client", PROJECT)
    assert [c for c in calls if c[0] == "bucket"] == [("bucket", "my-bucket")]
    rest = [c for c in calls if c[0] not in ("upload", "bucket", "storage.Client")]
    prefix = f"projects/123/locations/{REGION}"
    assert rest == [
        ("init", PROJECT, REGION),
        ("Model.upload", plan.model_upload),
        ("Endpoint.list", 'display_name="headswitch"', "create_time desc"),
        ("Endpoint.create", "headswitch"),
        ("Model", f"{prefix}/models/555"),
        ("Endpoint", f"{prefix}/endpoints/777"),
        ("Model.deploy", f"{prefix}/models/555", f"{prefix}/endpoints/777", plan.deploy),
    ]
    assert calls.index(uploads[-1]) < calls.index(("Model.upload", plan.model_upload))
    assert result.endpoint == f"{prefix}/endpoints/777" and result.endpoint_created
    assert result.predict_url == (
        f"https://{REGION}-aiplatform.googleapis.com/v1/{prefix}/endpoints/777:predict")
    assert plan.deploy["max_replica_count"] == 3


def test_run_reuses_an_endpoint(fake_export: Path) -> None:
    existing = f"projects/123/locations/{REGION}/endpoints/42"
    result, calls = _run(plan_vertex(_options(fake_export)), endpoints=[existing, "older"])
    assert not any(c[0] == "Endpoint.create" for c in calls)
    assert result.endpoint == existing and not result.endpoint_created
    plan = plan_vertex(_options(fake_export, endpoint=existing))
    result, calls = _run(plan)
    assert ("Endpoint", existing) in calls
    assert not any(c[0] in ("Endpoint.list", "Endpoint.create") for c in calls)


def test_run_prebuilt(make_export: Callable[..., Path]) -> None:
    plan = plan_vertex(_options(make_export({3: "2.15.0"}), prebuilt=True))
    _, calls = _run(plan)
    (upload,) = [c[1] for c in calls if c[0] == "Model.upload"]
    assert upload["artifact_uri"] == f"{BASE_URI}/3"
    assert upload["serving_container_image_uri"].endswith("/tf2-cpu.2-15:latest")


def test_run_names_the_failing_step(fake_export: Path) -> None:
    plan = plan_vertex(_options(fake_export))
    with pytest.raises(DeployError, match=r"step 2/4 \(registering model.*Permission denied"):
        _run(plan, fail_upload=True)


# ---------------------------------------------------------------------------------------------
# The command


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="headswitch")
    deploy_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def _without_google(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("google.cloud.aiplatform", "google.cloud.storage"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed


def _base_argv(model_dir: Path) -> list[str]:
    return ["deploy", "vertex", "--model-dir", str(model_dir), "--project", PROJECT,
            "--region", REGION, "--bucket", BUCKET]


def test_cli_dry_run_calls_nothing(fake_export: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    _without_google(monkeypatch)
    assert _cli([*_base_argv(fake_export), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for needle in ("dry run", "aiplatform.Model.upload(", f"artifact_uri='{BASE_URI}'",
                   "--model_base_path=$(AIP_STORAGE_URI)", f"serving_container_ports=[{REST_PORT}]",
                   f"serving_container_health_route='{READY_ROUTE}'",
                   f"serving_container_predict_route='{PREDICT_ROUTE}'",
                   f"{BASE_URI}/2/saved_model.pb", "Endpoint.create(display_name='headswitch')",
                   "machine_type='n1-standard-4'", "headswitch predict --vertex https://",
                   ":rawPredict", '"signature_name": "by_name"'):
        assert needle in out, needle


def test_sample_predict_command_is_one_the_cli_accepts(fake_export: Path) -> None:
    """The printed ``headswitch predict`` line parses with the real command's parser."""
    from headswitch import cli

    url = (f"https://{REGION}-aiplatform.googleapis.com/v1/projects/{PROJECT}/locations/{REGION}"
           "/endpoints/5:predict")
    text = sample_requests(url, scan_model_dir(fake_export))
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "headswitch predict" in line)
    command = ""
    for line in lines[start:]:
        command += line.strip().removesuffix("\\")
        if not line.rstrip().endswith("\\"):
            break
    argv = shlex.split(command.replace('"$(gcloud auth print-access-token)"', "TOKEN"))
    args = cli._parser().parse_args(argv[1:])
    assert args.command == "predict" and args.vertex.endswith("/endpoints/5:predict")
    assert args.token == "TOKEN" and args.task is not None and args.texts


def test_cli_dry_run_json(fake_export: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    _without_google(monkeypatch)
    assert _cli([*_base_argv(fake_export), "--dry-run", "--json", "--endpoint", "5"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["container"] == "custom" and plan["versions"] == [1, 2]
    assert [s["call"] for s in plan["steps"]] == [
        "storage: Blob.upload_from_filename", "aiplatform.Model.upload", "aiplatform.Endpoint",
        "aiplatform.Model.deploy"]
    assert plan["predict_url"].endswith(f"/locations/{REGION}/endpoints/5:predict")


def test_cli_without_google_libraries_says_what_to_install(
        fake_export: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    _without_google(monkeypatch)
    assert _cli(_base_argv(fake_export)) == 2
    err = capsys.readouterr().err
    assert "headswitch[vertex]" in err and "google-cloud-aiplatform" in err


def test_cli_prebuilt_refusal(fake_export: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str], tf_version: str) -> None:
    _without_google(monkeypatch)
    assert _cli([*_base_argv(fake_export), "--prebuilt", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"TensorFlow {tf_version}" in err and "tf2-cpu.2-15" in err


def test_wired_into_the_headswitch_command(fake_export: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from headswitch import cli

    _without_google(monkeypatch)
    assert cli.main([*_base_argv(fake_export), "--dry-run"]) == 0
    assert "aiplatform.Model.upload(" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# A real export


@pytest.mark.slow
def test_a_real_export(exported: Any, tf_version: str) -> None:
    """What the exporter writes (headswitch.json's tensorflow_version, tasks) drives the plan:
    the custom container is planned, the prebuilt one refused for the project's TensorFlow."""
    base = Path(exported.path).parent
    plan = plan_vertex(_options(base))
    assert plan.model.tensorflow_version == tf_version
    assert plan.model.first_task() == (0, exported.tasks[0].name)
    assert f"{BASE_URI}/{plan.model.newest}/saved_model.pb" == plan.uploads[-1].uri
    with pytest.raises(DeployError, match=f"TensorFlow {tf_version}"):
        plan_vertex(_options(base, prebuilt=True))


# ---------------------------------------------------------------------------------------------
# The real client libraries, when installed (headswitch[vertex]): the calls fit their signatures


def test_calls_fit_the_real_client_signatures(fake_export: Path) -> None:
    """Every call the fakes recorded binds to the real function's signature."""
    import inspect

    aiplatform = pytest.importorskip(
        "google.cloud.aiplatform", reason="google-cloud-aiplatform is not installed (the vertex "
        "extra); the fakes stand in for it")
    storage = pytest.importorskip("google.cloud.storage",
                                  reason="google-cloud-storage is not installed (the vertex extra)")
    for plan in (plan_vertex(_options(fake_export)),
                 plan_vertex(_options(fake_export, endpoint="42"))):
        _, calls = _run(plan)
        for call in calls:
            name = call[0]
            if name == "Model.upload":
                inspect.signature(aiplatform.Model.upload).bind(**call[1])
            elif name == "Model.deploy":
                inspect.signature(aiplatform.Model.deploy).bind(None, endpoint=object(),
                                                               **call[3])
            elif name == "Endpoint.list":
                inspect.signature(aiplatform.Endpoint.list).bind(filter=call[1],
                                                                 order_by=call[2])
            elif name == "Endpoint.create":
                inspect.signature(aiplatform.Endpoint.create).bind(display_name=call[1])
            elif name == "Model":
                inspect.signature(aiplatform.Model).bind(model_name=call[1])
            elif name == "Endpoint":
                inspect.signature(aiplatform.Endpoint).bind(endpoint_name=call[1])
            elif name == "init":
                inspect.signature(aiplatform.init).bind(project=call[1], location=call[2])
            elif name == "storage.Client":
                inspect.signature(storage.Client).bind(project=call[1])
            elif name == "bucket":
                inspect.signature(storage.Client.bucket).bind(None, call[1])
            elif name == "upload":
                inspect.signature(storage.Blob.upload_from_filename).bind(None, call[2])
            else:
                pytest.fail(f"unexpected call {name}")
