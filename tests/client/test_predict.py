"""The four clients give the same answers, and the same as the SavedModel called in-process."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from client_support import KINDS, MODEL, TEXTS, run

from headswitch.client import HeadswitchError, Prediction, TaskInfo

MIXED: list[int | str] = [0, "sentiment", 2, "language", "tags", 5, "mentions_football",
                          "topic"]


def _all(server: Any, call: Any, **options: Any) -> dict[str, Any]:
    return {kind: run(kind, server, call, **options) for kind in KINDS}


def test_every_client_gives_the_same_predictions(server: Any, task_names: list[str]) -> None:
    results = _all(server, lambda c: c.predict(TEXTS, MIXED))
    first = results["rest"]
    for kind, predictions in results.items():
        assert predictions == first, kind
    assert [p.index for p in first] == list(range(len(TEXTS)))
    assert [p.text for p in first] == TEXTS
    assert [p.task_name for p in first] == [
        task_names[t] if isinstance(t, int) else t for t in MIXED]
    assert [p.task_id for p in first] == [
        t if isinstance(t, int) else task_names.index(t) for t in MIXED]
    for p in first:
        assert isinstance(p, Prediction)
        assert p.top_label in p.scores and p.scores[p.top_label] == p.top_score
        assert p.top_score == max(p.scores.values())
        assert "" not in p.scores  # the padding columns are dropped


def test_predictions_equal_the_saved_model_in_process(server: Any, loaded: Any,
                                                     example_models: Any) -> None:
    import tensorflow as tf

    ids = list(range(7)) + [0]
    expected = loaded.signatures["serving_default"](
        text=tf.constant(TEXTS), task_id=tf.constant(ids, tf.int32))
    for kind in ("rest", "grpc"):
        predictions = run(kind, server, lambda c: c.predict(TEXTS, ids))
        for i, p in enumerate(predictions):
            labels = example_models.tasks[ids[i]].labels
            n = len(labels)
            assert list(p.scores) == labels
            np.testing.assert_allclose(list(p.scores.values()),
                                       expected["scores"][i].numpy()[:n], rtol=1e-5, atol=1e-6)
            assert p.top_label == expected["top_label"][i].numpy().decode()


@pytest.mark.parametrize("task", [3, "language", [3] * len(TEXTS), ["language"] * len(TEXTS),
                                  np.int32(3)])
def test_task_forms_agree(server: Any, task: Any) -> None:
    assert run("rest", server, lambda c: c.predict(TEXTS, task)) == run(
        "grpc", server, lambda c: c.predict(TEXTS, 3))


def test_empty_input_sends_nothing(kind: str, server: Any) -> None:
    assert run(kind, server, lambda c: c.predict([], "topic")) == []


def test_bad_python_arguments(server: Any) -> None:
    with pytest.raises(TypeError, match="not a single string"):
        run("rest", server, lambda c: c.predict("one text", "topic"))
    with pytest.raises(TypeError, match="task"):
        run("rest", server, lambda c: c.predict(["a"], 1.5))
    with pytest.raises(TypeError, match="task"):
        run("rest", server, lambda c: c.predict(["a"], True))
    with pytest.raises(ValueError, match="version or version_label"):
        run("rest", server, lambda c: None, version=1, version_label="stable")


def test_tasks_status_metadata_agree(server: Any, example_models: Any) -> None:
    tasks = _all(server, lambda c: c.tasks())
    status = _all(server, lambda c: c.status())
    metadata = _all(server, lambda c: c.metadata())
    for kind in KINDS:
        assert tasks[kind] == tasks["rest"], kind
        assert status[kind] == status["rest"], kind
        assert metadata[kind] == metadata["rest"], kind
    listed = tasks["rest"]
    assert [t.name for t in listed] == [t.name for t in example_models.tasks]
    assert [t.id for t in listed] == list(range(len(listed)))
    for info, spec in zip(listed, example_models.tasks):
        assert isinstance(info, TaskInfo)
        assert list(info.labels) == list(spec.labels)
    assert {t.activation for t in listed} <= {"softmax", "sigmoid", "linear", "other"}
    assert status["rest"].model == MODEL and status["rest"].available
    assert [(v.version, v.state) for v in status["rest"].versions] == [(1, "AVAILABLE")]
    signatures = metadata["rest"].signatures
    assert set(signatures) == {"serving_default", "by_name", "tasks"}
    assert metadata["rest"].version == 1
    default = signatures["serving_default"]
    assert {k: (v.dtype, v.shape) for k, v in default.inputs.items()} == {
        "text": ("DT_STRING", (-1,)), "task_id": ("DT_INT32", (-1,))}
    assert set(default.outputs) == {"scores", "top_label", "top_score", "error"}


def test_version_and_label_selection(kind: str, server: Any) -> None:
    pinned = run(kind, server, lambda c: c.predict(TEXTS[:2], 0), version=1)
    assert pinned == run(kind, server, lambda c: c.predict(TEXTS[:2], 0))
    with pytest.raises(HeadswitchError) as info:
        run(kind, server, lambda c: c.predict(TEXTS[:2], 0), version_label="stable")
    assert info.value.code == "INVALID_ARGUMENT"
    assert "stable" in info.value.message


def test_preloaded_task_list_skips_the_tasks_call(server: Any) -> None:
    from client_support import predict_count

    tasks = run("grpc", server, lambda c: c.tasks())
    before = predict_count(server, "GRPC")
    predictions = run("grpc", server, lambda c: c.predict(TEXTS[:3], "spam"), tasks=tasks)
    assert predict_count(server, "GRPC") - before == 1
    assert [p.task_name for p in predictions] == ["spam"] * 3


def test_prediction_is_a_frozen_value(server: Any) -> None:
    p = run("rest", server, lambda c: c.predict(TEXTS[:1], "topic"))[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.top_label = "x"
    assert hash(p) == hash(dataclasses.replace(p))
    assert p.to_dict()["task"] == "topic" and p.to_dict()["scores"] == dict(p.scores)
