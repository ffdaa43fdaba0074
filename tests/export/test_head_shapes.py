"""Split points and head structures beyond the example models: flat graphs, generic heads,
(batch, 1) text inputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from headswitch import contract as c
from headswitch.export import export_models

TEXTS = ["alpha beta", "", "gamma delta alpha", "unknown words here", "beta " * 300]


def _flat_models(folder: Path, input_shape: tuple[int, ...] = ()) -> list[Path]:
    """Models built without a nested base model: the shared layers are reused directly."""
    keras.utils.set_random_seed(1)
    vectorize = keras.layers.TextVectorization(vocabulary=["alpha", "beta", "gamma", "delta"],
                                               output_sequence_length=6, name="vectorize")
    embed = keras.layers.Embedding(8, 6, name="embed")
    pool = keras.layers.GlobalAveragePooling1D(name="pool")
    features = keras.layers.Dense(5, activation="tanh", name="features")
    heads: list[Callable[[Any], Any]] = [
        lambda x: keras.layers.Dense(3, activation="softmax")(x),
        lambda x: keras.layers.Dense(1)(keras.layers.Dense(4, activation="relu")(x)),
        # Not a Dense chain: kept as a generic head.
        lambda x: keras.layers.Dense(2, activation="sigmoid")(keras.layers.LayerNormalization()(x)),
        lambda x: keras.layers.Softmax()(keras.layers.Dense(4)(x)),
        lambda x: keras.layers.Dense(2)(keras.layers.BatchNormalization()(x)),
    ]
    paths = []
    for i, head in enumerate(heads):
        text = keras.Input(shape=input_shape, dtype="string", name="text")
        x = vectorize(text)
        if input_shape:
            x = keras.ops.squeeze(x, 1) if len(x.shape) == 3 else x
        out = head(features(pool(embed(x))))
        model = keras.Model(text, out, name=f"flat{i}")
        # make heads differ from initialisation luck alone
        for layer in model.layers[model.layers.index(features) + 1:]:
            for w in layer.weights:
                value = np.random.default_rng(i).normal(size=w.shape).astype("float32")
                w.assign(np.abs(value) + 0.1 if "variance" in w.path else value)
        paths.append(folder / f"flat{i}.keras")
        model.save(paths[-1])
    return paths


def _check(report_path: Path, paths: list[Path], rank: int = 1) -> None:
    loaded = tf.saved_model.load(str(report_path))
    originals = [keras.models.load_model(p, compile=False) for p in paths]
    n = len(paths)
    ids = np.array([i % n for i in range(len(TEXTS) * n)], np.int32)
    texts = [TEXTS[i % len(TEXTS)] for i in range(len(ids))]
    out = loaded.signatures[c.SIGNATURE_IDS](text=tf.constant(texts), task_id=tf.constant(ids))
    for row, (text, task) in enumerate(zip(texts, ids)):
        batch = tf.constant([text]) if rank == 1 else tf.constant([[text]])
        want = np.asarray(originals[task](batch, training=False)).reshape(-1)
        got = out[c.OUTPUT_SCORES].numpy()[row, : want.shape[0]]
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("split_layer", ["features", None])
def test_flat_graph_with_mixed_heads(tmp_path: Path, split_layer: str | None) -> None:
    paths = _flat_models(tmp_path)
    report = export_models(paths, tmp_path / "out", split_layer=split_layer)
    assert report.split_layer == "features"
    heads = [t.head for t in report.tasks]
    assert heads == ["stacked", "stacked", "generic", "stacked", "generic"]
    assert [t.activation for t in report.tasks][:2] == ["softmax", "linear"]
    assert report.tasks[3].activation == "softmax"
    _check(report.path, paths)


def test_text_input_of_shape_batch_by_one(tmp_path: Path) -> None:
    paths = _flat_models(tmp_path, input_shape=(1,))
    report = export_models(paths[:2], tmp_path / "out", split_layer="features")
    _check(report.path, paths[:2], rank=2)


def test_heads_past_the_constant_budget_are_variables(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Past CONSTANT_BYTES the head weights and tables are variables; the answers are the same."""
    from headswitch.export import _stacking

    monkeypatch.setattr(_stacking, "CONSTANT_BYTES", 0)
    paths = _flat_models(tmp_path)
    report = export_models(paths, tmp_path / "out", split_layer="features")
    keys = [k for k, _ in tf.train.list_variables(str(report.path / "variables" / "variables"))]
    assert any("per_task" in key for key in keys), keys
    _check(report.path, paths)
