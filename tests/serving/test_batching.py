"""Dynamic batching (``--enable_batching --batching_parameters_file``): concurrent requests run
as one session run (counted with TF Serving's own ``wrapped_run_count`` metric), a full queue
answers 503 / UNAVAILABLE, oversized requests are rejected or split, batches are padded to
``allowed_batch_sizes``."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import serving_fixture_model as fm
from serving_targets import MODEL, Factory, Target, add_version

PREDICT = f"/v1/models/{MODEL}:predict"


def _metric(text: str, name: str, labels: str = "") -> int:
    pattern = re.escape(f"{name}{{{labels}}}") + r" (\S+)"
    match = re.search(pattern, text)
    return int(float(match.group(1))) if match else 0


def _runs(target: Target) -> int:
    return _metric(target.metrics(), ":tensorflow:serving:batching_session:wrapped_run_count")


def _batch_sizes(target: Target) -> dict[str, int]:
    text = target.metrics()
    found = re.findall(
        r':tensorflow:serving:batching_session:processed_batch_size_bucket\{le="([^"]+)"\} (\d+)',
        text,
    )
    return {le: int(count) for le, count in found}


def _parameters(allowed: tuple[int, ...] = (), **values: int | bool) -> str:
    """A batching parameters file (text protobuf): ``name { value: v }`` lines, then
    ``allowed_batch_sizes`` lines."""
    lines = [f"{name} {{ value: {str(v).lower() if isinstance(v, bool) else v} }}"
             for name, v in values.items()]
    return "\n".join([*lines, *(f"allowed_batch_sizes: {n}" for n in allowed)]) + "\n"


def _start(
    factory: Factory, models_root: Path, template: Path, parameters: str, warmup: bool = False
) -> Target:
    base = models_root / MODEL
    version = add_version(base, 1, template)
    if not warmup:
        for item in (version / "assets.extra").iterdir():
            item.unlink()
    batching = models_root / "batching.config"
    batching.write_text(parameters)
    return factory.start(base=base, batching_file=batching)


Start = Callable[..., Target]


@pytest.fixture
def start(factory: Factory, models_root: Path, model_template: Path) -> Start:
    """Start a server of the fixture model with batching parameters given as keywords
    (``_parameters``)."""
    return lambda allowed=(), **values: _start(factory, models_root, model_template,
                                               _parameters(allowed, **values))


def _grpc_predict(target: Target, texts: list[str], tasks: list[int]) -> Any:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(texts, dtype=tf.string))
    request.inputs["task_id"].CopyFrom(tf.make_tensor_proto(tasks, dtype=tf.int32))
    return target.prediction.Predict(request, timeout=30)


def test_concurrent_requests_share_one_run(start: Start) -> None:
    target = start(
        max_batch_size=8, batch_timeout_micros=3000000, max_enqueued_batches=4,
        num_batch_threads=1)
    runs_before = _runs(target)
    sizes_before = _batch_sizes(target)
    # 1 + 1 + 2 + 2 + 2 = 8 examples from 5 requests over both APIs, different tasks each.
    jobs: list[tuple[str, list[str], list[int]]] = [
        ("rest", ["a"], [0]),
        ("grpc", ["bb"], [1]),
        ("rest", ["ccc", "dddd"], [2, 0]),
        ("grpc", ["eeeee", "f"], [1, 2]),
        ("rest", ["gg", "hhh"], [0, 1]),
    ]

    def run(job: tuple[str, list[str], list[int]]) -> list[tuple[str, float]]:
        kind, texts, tasks = job
        if kind == "rest":
            response = target.post(PREDICT, json={"inputs": {"text": texts, "task_id": tasks}})
            assert response.status_code == 200, response.text
            outputs = response.json()["outputs"]
            return list(zip(outputs["top_label"], outputs["top_score"]))
        import tensorflow as tf

        result = _grpc_predict(target, texts, tasks)
        labels = tf.make_ndarray(result.outputs["top_label"])
        scores = tf.make_ndarray(result.outputs["top_score"])
        return [(label.decode(), float(score)) for label, score in zip(labels, scores)]

    started = time.monotonic()
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(run, jobs))
    elapsed = time.monotonic() - started
    for (_, texts, tasks), rows in zip(jobs, results):
        assert len(rows) == len(texts)
        for (label, score), text, task in zip(rows, texts, tasks):
            want = fm.expected(text, task)
            assert label == want["top_label"]
            assert score == pytest.approx(float(want["top_score"]), rel=1e-6)
    assert _runs(target) - runs_before == 1
    sizes_after = _batch_sizes(target)
    assert sizes_after["8"] - sizes_before.get("8", 0) == 1
    assert sizes_after["4"] - sizes_before.get("4", 0) == 0
    assert elapsed < 3.0  # a full batch runs at once, without waiting for the timeout


def test_full_queue_and_oversized_requests(start: Start) -> None:
    target = start(
        max_batch_size=2, batch_timeout_micros=3000000, max_enqueued_batches=1,
        num_batch_threads=1)
    waiting: dict[str, Any] = {}

    def first() -> None:
        waiting["response"] = target.post(
            PREDICT, json={"instances": [{"text": "abc", "task_id": 0}]}
        )

    thread = threading.Thread(target=first)
    thread.start()
    time.sleep(0.4)  # the first request now sits in the open batch, waiting for its timeout
    full_message = (
        "The batch scheduling queue to which this task was submitted is full; currently 1 "
        "batches enqueued and max_enqueued_batches is 1"
    )
    rejected = target.post(PREDICT, json={"inputs": {"text": ["a", "b"], "task_id": [0, 1]}})
    assert rejected.status_code == 503
    assert rejected.json() == {"error": full_message}
    with pytest.raises(grpc.RpcError) as info:
        _grpc_predict(target, ["a", "b"], [0, 1])
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert info.value.details() == full_message
    thread.join()
    assert waiting["response"].status_code == 200

    too_big = target.post(PREDICT, json={"inputs": {"text": ["a", "b", "c"], "task_id": [0, 1, 2]}})
    assert too_big.status_code == 400
    assert too_big.json() == {"error": "Task size 3 is larger than maximum input batch size 2"}
    with pytest.raises(grpc.RpcError) as info:
        _grpc_predict(target, ["a", "b", "c"], [0, 1, 2])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Batching needs inputs of equal dim 0.
    with pytest.raises(grpc.RpcError) as info:
        _grpc_predict(target, ["a", "b"], [0])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "Batching Run() input tensors must have equal 0th-dimension size"


def test_large_batch_splitting(start: Start) -> None:
    target = start(
        max_batch_size=8, batch_timeout_micros=0, num_batch_threads=1,
        enable_large_batch_splitting=True, max_execution_batch_size=2)
    runs_before = _runs(target)
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    tasks = [0, 1, 2, 0, 1]
    response = target.post(PREDICT, json={"inputs": {"text": texts, "task_id": tasks}})
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    for row, (text, task) in enumerate(zip(texts, tasks)):
        np.testing.assert_allclose(
            outputs["scores"][row], fm.expected(text, task)["scores"], rtol=1e-6
        )
    assert _runs(target) - runs_before == 3  # 2 + 2 + 1


def test_padding_to_allowed_batch_sizes(start: Start) -> None:
    target = start(
        allowed=(2, 4), max_batch_size=4, batch_timeout_micros=0, num_batch_threads=1)
    before = _batch_sizes(target)
    response = target.post(
        PREDICT, json={"inputs": {"text": ["a", "bb", "ccc"], "task_id": [0, 1, 2]}}
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["outputs"]["top_label"]) == 3  # padding is cut off again
    after = _batch_sizes(target)
    assert after["4"] - before.get("4", 0) == 1  # 3 examples ran as a batch of 4
    assert after["2"] - before.get("2", 0) == 0


def test_invalid_batching_parameters(
    embedded_factory: Factory, models_root: Path, model_template: Path
) -> None:
    from headswitch.serving import ServingError

    with pytest.raises(ServingError) as info:
        _start(embedded_factory, models_root, model_template,
               _parameters(allowed=(2, 4), max_batch_size=8))
    assert info.value.message == (
        "Last entry in allowed_batch_sizes must match max_batch_size; last entry was 4; expected 8"
    )
