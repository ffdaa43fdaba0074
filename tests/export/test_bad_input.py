"""Bad requests fail with INVALID_ARGUMENT naming the problem; the model keeps working."""

from __future__ import annotations

from typing import Any

import pytest
import tensorflow as tf


def _ids(loaded: Any, texts: list[str], ids: list[int]) -> Any:
    return loaded.signatures["serving_default"](text=tf.constant(texts, tf.string),
                                                task_id=tf.constant(ids, tf.int32))


@pytest.mark.parametrize("bad", [-1, 7, 1000])
def test_out_of_range_task_id_names_value_and_range(loaded: Any, bad: int) -> None:
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        _ids(loaded, ["a", "b"], [0, bad])
    message = info.value.message
    assert "task_id out of range" in message
    assert "0..6" in message and "7 tasks" in message
    assert f"[{bad}]" in message
    assert _ids(loaded, ["a"], [6])["scores"].shape[0] == 1  # still serving


def test_unknown_task_name(loaded: Any) -> None:
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        loaded.signatures["by_name"](text=tf.constant(["a", "b"]),
                                     task=tf.constant(["topic", "no_such_task"]))
    message = info.value.message
    assert "unknown task name" in message and "no_such_task" in message
    assert "topic" in message  # lists valid names


def test_mismatched_lengths(loaded: Any) -> None:
    with pytest.raises(tf.errors.InvalidArgumentError, match="same length"):
        _ids(loaded, ["a", "b", "c"], [0, 1])
    with pytest.raises(tf.errors.InvalidArgumentError, match="same length"):
        loaded.signatures["by_name"](text=tf.constant(["a"]), task=tf.constant(["topic"] * 2))


def test_empty_batch(loaded: Any) -> None:
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty batch"):
        _ids(loaded, [], [])


def test_wrong_dtype_is_refused_by_the_signature(loaded: Any) -> None:
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        loaded.signatures["serving_default"](text=tf.constant(["a"]),
                                             task_id=tf.constant([0.5], tf.float32))
