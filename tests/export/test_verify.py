"""The verification before publishing: a task above the 1e-5 limit passes only within its
original's own float32 variation (measured, never assumed), and says so."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from headswitch.export import ExportError, _verify


def _expected(originals: list[Any], texts: list[str]) -> list[Any]:
    return [np.asarray(m(tf.constant(texts), training=False), np.float64) for m in originals]


def test_own_variation_measures_the_original_against_itself(originals: list[Any]) -> None:
    texts = ["a short text", "", "another text that is a little longer than the first"]
    model = originals[0]

    def original(batch: list[str]) -> list[Any]:
        return [np.asarray(model(tf.constant(batch), training=False))]

    (noise,) = _verify.own_variation(original, texts, [0])
    assert 0.0 <= noise < 1e-5  # the small example backbone is well conditioned


@pytest.mark.parametrize("own", [1e-5, 1e-7])
def test_a_task_above_the_limit_passes_only_within_its_own_variation(
        loaded: Any, originals: list[Any], task_names: list[str], own: float) -> None:
    texts = ["free tickets", "the match was terrible", ""]
    expected = _expected(originals, texts)
    expected[1] = expected[1] + 2e-5  # task 1 now differs by 2e-5 from the merged model
    asked: list[list[int]] = []

    def variation(bad: list[int]) -> list[float]:
        asked.append(bad)
        return [own] * len(bad)

    notices: list[str] = []

    def check() -> list[float]:
        return _verify.check_merged(loaded, task_names, expected, texts, variation=variation,
                                    notices=notices)

    if own * _verify.VARIATION_FACTOR >= 2.1e-5:
        worst = check()
        assert worst[1] == pytest.approx(2e-5, abs=2e-6)
        assert max(w for t, w in enumerate(worst) if t != 1) <= _verify.ATOL
        (notice,) = notices
        assert f"task {task_names[1]!r}" in notice and "float32" in notice
    else:
        with pytest.raises(ExportError, match=r"the original's own variation 1e-07"):
            check()
        assert notices == []
    assert asked == [[1]]  # only the task above the limit was measured
