"""Mixed-precision models (float16 and bfloat16 backbones and heads) answer exactly as the
originals compute, with float32 outputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import pytest
import tensorflow as tf
from formats_support import WORDS, check_against_originals, exported, keras_original


def _models(api: Any, policy: str, seed: int) -> list[Any]:
    """Task models whose shared layers compute in ``policy``; heads: one in ``policy``, one
    float32 Dense (as the mixed-precision guide advises for outputs), one ``policy`` hidden
    layer under a float32 output."""
    api.utils.set_random_seed(seed)
    layers = api.layers
    shared = [layers.TextVectorization(vocabulary=WORDS, output_sequence_length=5),
              layers.Embedding(len(WORDS) + 2, 8, dtype=policy),
              layers.GlobalAveragePooling1D(dtype=policy),
              layers.Dense(8, activation="relu", dtype=policy, name="features")]
    heads: list[Callable[[Any], Any]] = [
        lambda x: layers.Dense(3, activation="softmax", dtype=policy)(x),
        lambda x: layers.Dense(2, dtype="float32")(x),
        lambda x: layers.Dense(2, activation="softmax", dtype="float32")(
            layers.Dense(4, activation="relu", dtype=policy)(x))]
    models = []
    for head in heads:
        text = api.Input(shape=(), dtype="string")
        x = text
        for layer in shared:
            x = layer(x)
        models.append(api.Model(text, head(x)))
    return models


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_keras3_mixed_precision(tmp_path: Path, policy: str,
                                capfd: pytest.CaptureFixture[str]) -> None:
    models = _models(keras, policy, 0)
    paths = [tmp_path / f"m{i}.keras" for i in range(len(models))]
    for model, path in zip(models, paths):
        model.save(path)
    report = exported(capfd, *paths, "--out", tmp_path / "out")
    dtype = policy.removeprefix("mixed_")
    assert report["features_dtype"] == dtype
    assert [(t["head"], t["compute_dtype"]) for t in report["tasks"]] == [
        ("generic", dtype), ("stacked", "float32"), ("generic", "float32")]
    assert check_against_originals(report["path"], [keras_original(m) for m in models]) <= 1e-5
    out = tf.saved_model.load(report["path"]).signatures["serving_default"](
        text=tf.constant(["alpha"]), task_id=tf.constant([0]))
    assert out["scores"].dtype == tf.float32


def test_tf_keras_mixed_float16(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    tf_keras = pytest.importorskip("tf_keras")
    models = _models(tf_keras, "mixed_float16", 1)
    for i, model in enumerate(models):
        model.save(tmp_path / f"m{i}")
    report = exported(capfd, *[tmp_path / f"m{i}" for i in range(len(models))],
                      "--out", tmp_path / "out")
    assert report["features_dtype"] == "float16"
    assert [t["head"] for t in report["tasks"]] == ["generic", "stacked", "generic"]
    check_against_originals(report["path"], [keras_original(m) for m in models])
