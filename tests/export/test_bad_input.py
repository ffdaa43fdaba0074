"""Bad tasks are reported per example (``error``), never failing the other examples of the run:
TF Serving's batcher merges concurrent requests into one run, so a failing run would fail
strangers' requests. What the graph cannot answer (wrong dtype, mismatched lengths) fails the
request with INVALID_ARGUMENT."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import tensorflow as tf

TEXTS = ["what a great match", "free prize, click now", "", "la comida estaba buena"]
# The backbone's kernels (matmuls) may round an example differently in batches of other sizes
# (seen: up to 2e-6 on an AVX2-only CPU, bit for bit elsewhere), so answers from batches of other
# sizes are compared within the export's verification limit; in one batch size, bit for bit.
ACROSS_BATCH_SIZES = 1e-5


def _ids(loaded: Any, texts: list[str], ids: list[int]) -> dict[str, npt.NDArray[Any]]:
    out = loaded.signatures["serving_default"](text=tf.constant(texts, tf.string),
                                               task_id=tf.constant(ids, tf.int32))
    return {k: v.numpy() for k, v in out.items()}


def _names(loaded: Any, texts: list[str], names: list[str]) -> dict[str, npt.NDArray[Any]]:
    out = loaded.signatures["by_name"](text=tf.constant(texts, tf.string),
                                       task=tf.constant(names, tf.string))
    return {k: v.numpy() for k, v in out.items()}


def _assert_bad(out: dict[str, npt.NDArray[Any]], i: int, message: str) -> None:
    assert message in out["error"][i].decode()
    assert not np.any(out["scores"][i]) and out["top_score"][i] == 0
    assert out["top_label"][i] == b""


@pytest.mark.parametrize("bad", [-1, 7, 1000, 2**31 - 1, -(2**31)])
def test_out_of_range_task_id_is_an_error_of_its_example_only(loaded: Any, bad: int) -> None:
    ids = [0, bad, 3, 5]
    out = _ids(loaded, TEXTS, ids)
    _assert_bad(out, 1, "task_id out of range: valid task ids are 0..6 (7 tasks)")
    good = [0, 2, 3]
    with_good_id = _ids(loaded, TEXTS, [0, 1, 3, 5])  # the same batch, a valid id at 1
    for key in ("scores", "top_label", "top_score", "error"):  # bit for bit
        np.testing.assert_array_equal(out[key][good], with_good_id[key][good])
    assert not any(out["error"][good])
    alone = _ids(loaded, [TEXTS[i] for i in good], [ids[i] for i in good])
    _assert_same_answers(out, good, alone)


def _assert_same_answers(out: dict[str, npt.NDArray[Any]], rows: list[int] | slice,
                         alone: dict[str, npt.NDArray[Any]]) -> None:
    """``out``'s ``rows`` answer as ``alone`` (a batch of another size) does."""
    for key in ("top_label", "error"):
        np.testing.assert_array_equal(out[key][rows], alone[key])
    for key in ("scores", "top_score"):
        np.testing.assert_allclose(out[key][rows], alone[key], rtol=0, atol=ACROSS_BATCH_SIZES)


def test_unknown_task_name_lists_the_valid_names(loaded: Any, task_names: list[str]) -> None:
    out = _names(loaded, TEXTS[:3], [task_names[0], "no_such_task", task_names[1]])
    _assert_bad(out, 1, "unknown task name")
    assert all(name in out["error"][1].decode() for name in task_names)
    assert out["error"][0] == out["error"][2] == b""


def test_every_example_bad_still_answers(loaded: Any) -> None:
    out = _ids(loaded, TEXTS[:2], [99, -3])
    for i in range(2):
        _assert_bad(out, i, "task_id out of range")


def test_a_merged_batch_answers_each_request_as_alone(loaded: Any) -> None:
    """What TF Serving's batcher does: concatenate requests, run once, split the outputs."""
    requests = [(TEXTS[:2], [0, 1]), (TEXTS[2:3], [42]), (TEXTS[1:4], [6, -1, 2])]
    merged = _ids(loaded, [t for texts, _ in requests for t in texts],
                  [i for _, ids in requests for i in ids])
    start = 0
    for texts, ids in requests:
        alone = _ids(loaded, texts, ids)
        _assert_same_answers(merged, slice(start, start + len(texts)), alone)
        start += len(texts)


def test_mismatched_lengths_fail_the_request(loaded: Any) -> None:
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"text and task_id must have the same length; got\] \[3\] "
                             r"\[texts and\] \[2\]"):
        _ids(loaded, ["a", "b", "c"], [0, 1])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="text and task must have the same length"):
        _names(loaded, ["a"], ["topic"] * 2)
    assert _ids(loaded, ["a"], [6])["scores"].shape[0] == 1  # still serving


def test_empty_batch_gives_empty_outputs(loaded: Any) -> None:
    out = _ids(loaded, [], [])
    assert all(value.shape[0] == 0 for value in out.values())


def test_wrong_dtype_is_refused_by_the_signature(loaded: Any) -> None:
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        loaded.signatures["serving_default"](text=tf.constant(["a"]),
                                             task_id=tf.constant([0.5], tf.float32))
