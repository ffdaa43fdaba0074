"""SavedModel warmup: ``assets.extra/tf_serving_warmup_requests`` is replayed at load, and a
failing record fails that version's load."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import serving_fixture_model as fm
from serving_targets import MODEL, Factory, add_version

from headswitch.serving import ServingError


def _runtime_count(text: str) -> int:
    key = (
        f':tensorflow:serving:runtime_latency_count{{model_name="{MODEL}",API="Predict",'
        'runtime="TF1"} '
    )
    for line in text.splitlines():
        if line.startswith(key):
            return int(float(line[len(key) :]))
    return 0


def test_warmup_replayed_at_load(factory: Factory, models_root: Path, model_template: Path) -> None:
    """The fixture's two warmup records run before the first request (TF Serving records their
    runtime latency under the warmup request's model name)."""
    add_version(models_root / MODEL, 1, model_template)
    target = factory.start(base=models_root / MODEL)
    assert _runtime_count(target.metrics()) == len(fm.default_warmup_records())


def _bad_records() -> list[bytes]:
    return [
        fm.predict_log_record(
            {"text": np.array([b"ok"], dtype=object), "task_id": np.array([0], np.int32)}
        ),
        fm.predict_log_record(
            {"text": np.array([b"bad"], dtype=object), "task_id": np.array([9], np.int32)}
        ),
    ]


def test_failing_warmup_record_fails_the_version(
    factory: Factory, models_root: Path, model_template: Path
) -> None:
    base = models_root / MODEL
    add_version(base, 1, model_template)
    target = factory.start(base=base, poll_seconds=0.3)
    version = add_version(base, "staging", model_template)  # not an integer: ignored for now
    fm.write_warmup(version, _bad_records())
    version.rename(base / "2")
    deadline = time.monotonic() + 30
    while True:
        statuses = {
            s["version"]: s
            for s in target.get(f"/v1/models/{MODEL}").json()["model_version_status"]
        }
        if statuses.get("2", {}).get("state") == "END":
            break
        assert time.monotonic() < deadline, statuses
        time.sleep(0.1)
    error = statuses["2"]["status"]
    assert error["error_code"] == "INVALID_ARGUMENT"
    assert error["error_message"].startswith(
        "assertion failed: [task_id must be in the valid range 0..2; got] [9]"
    )
    assert statuses["1"]["state"] == "AVAILABLE"
    ok = target.post(
        f"/v1/models/{MODEL}:predict", json={"instances": [{"text": "a", "task_id": 0}]}
    )
    assert ok.status_code == 200


def test_failing_warmup_fails_start(
    embedded_factory: Factory, models_root: Path, model_template: Path
) -> None:
    version = add_version(models_root / MODEL, 1, model_template)
    fm.write_warmup(version, _bad_records())
    with pytest.raises(ServingError) as info:
        embedded_factory.start(base=models_root / MODEL)
    assert info.value.code == grpc.StatusCode.UNKNOWN
    assert "due to error: INVALID_ARGUMENT: assertion failed" in info.value.message


def test_warmup_record_limit_and_corrupt_file(tmp_path: Path) -> None:
    from headswitch.serving._warmup import MAX_RECORDS, run_warmup

    version = tmp_path / "1"
    record = fm.predict_log_record({"unused": np.array([0], np.int32)}, signature_name="tasks")
    fm.write_warmup(version, [record] * (MAX_RECORDS + 1))
    seen: list[object] = []
    with pytest.raises(ServingError) as info:
        run_warmup(str(version), seen.append)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.message == (
        f"Number of warmup records exceeds the maximum (1000) at "
        f"{version}/assets.extra/tf_serving_warmup_requests"
    )
    assert len(seen) == MAX_RECORDS + 1

    fm.write_warmup(version, [record] * 3)
    assert run_warmup(str(version), seen.append) == 3

    path = version / "assets.extra" / "tf_serving_warmup_requests"
    path.write_bytes(b"this is not a TFRecord file at all")
    with pytest.raises(ServingError) as info:
        run_warmup(str(version), seen.append)
    assert info.value.code == grpc.StatusCode.DATA_LOSS
    assert info.value.message.endswith(". Please verify your warmup data is in TFRecord format.")
