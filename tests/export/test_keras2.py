"""Keras 2 (tf_keras) models as users saved them: SavedModel folders, .h5 and tf_keras .keras
files, on a TF-Hub backbone (hub.KerasLayer), as Sequential models, and as flat graphs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import tensorflow as tf
from formats_support import (
    WORDS,
    check_against_originals,
    check_cpp_loader,
    exported,
    keras_original,
    manifest_of,
    refused,
    write_hub_module,
)

tf_keras = pytest.importorskip("tf_keras")
hub = pytest.importorskip("tensorflow_hub")


def _hub_layer(handle: Path) -> Any:
    return hub.KerasLayer(str(handle), trainable=False, input_shape=[], dtype=tf.string,
                          name="encoder")


def _task(base: Any, width: int, activation: str, seed: int, hidden: int | None = None) -> Any:
    tf_keras.utils.set_random_seed(seed)
    text = tf_keras.Input(shape=(), dtype=tf.string, name="text")
    x = tf_keras.layers.Dropout(0.1)(base(text))
    if hidden:
        x = tf_keras.layers.Dense(hidden, activation="relu")(x)
    return tf_keras.Model(text, tf_keras.layers.Dense(width, activation=activation)(x))


@pytest.fixture(scope="module")
def hub_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Task models on one frozen base model wrapping a hub module, saved three ways."""
    folder = tmp_path_factory.mktemp("keras2")
    handle = write_hub_module(folder / "hub-module")
    text = tf_keras.Input(shape=(), dtype=tf.string)
    encoded = _hub_layer(handle)(text)
    features = tf_keras.layers.Dense(6, activation="relu", name="features")(encoded)
    base = tf_keras.Model(text, features, name="base_model")
    base.trainable = False
    models = [_task(base, 3, "softmax", 1), _task(base, 1, "sigmoid", 2, hidden=4),
              _task(base, 2, "linear", 3)]
    paths = [folder / "topic", folder / "spam.h5", folder / "score.keras"]
    for model, path in zip(models, paths):
        model.save(path)
    return {"folder": folder, "handle": handle, "base": base, "models": models, "paths": paths}


def test_saved_model_folder_h5_and_keras_on_a_hub_backbone(
        hub_models: dict[str, Any], capfd: pytest.CaptureFixture[str]) -> None:
    out = hub_models["folder"] / "out"
    report = exported(capfd, *hub_models["paths"], "--out", out)
    assert report["split_layer"] == "base_model"
    assert [t["source_format"] for t in report["tasks"]] == [
        "tf_keras SavedModel folder", "tf_keras .h5", "tf_keras .keras"]
    assert [t["head"] for t in report["tasks"]] == ["stacked"] * 3
    assert [t["name"] for t in report["tasks"]] == ["topic", "spam", "score"]
    worst = check_against_originals(report["path"],
                                    [keras_original(m) for m in hub_models["models"]])
    assert worst <= 1e-5 and report["max_abs_diff"] <= 1e-5
    check_cpp_loader(report["path"], 3)
    assert manifest_of(report["path"])["serving"]["non_core_ops"] == []


def test_hub_variables_must_be_identical(hub_models: dict[str, Any],
                                         capfd: pytest.CaptureFixture[str]) -> None:
    text = tf_keras.Input(shape=(), dtype=tf.string)
    layer = _hub_layer(hub_models["handle"])
    model = tf_keras.Model(text, tf_keras.layers.Dense(3, activation="softmax")(
        tf_keras.layers.Dense(6, activation="relu", name="features")(layer(text))))
    base = tf_keras.Model(text, model.layers[-2].output, name="base_model")
    base.set_weights(hub_models["base"].get_weights())
    changed = _task(base, 3, "softmax", 4)
    variable = layer._func.embedding  # the hub module's own variable
    variable.assign(variable + 1e-3)
    path = hub_models["folder"] / "changed"
    changed.save(path)
    err = refused(capfd, hub_models["folder"] / "refused", hub_models["paths"][0], path)
    assert "changed" in err and "differs" in err and "max abs diff 0.001" in err


def test_tf_hub_sequential_recipe(hub_models: dict[str, Any], tmp_path: Path,
                                  capfd: pytest.CaptureFixture[str]) -> None:
    """Sequential([hub.KerasLayer(...), Dense(...)]), the TF-Hub tutorial's model, saved as
    folders. The export carries the hub module: it answers the same once the module the models
    were built from is gone, as on a serving machine."""
    handle = write_hub_module(tmp_path / "module", seed=5)
    models, paths = [], []
    for i, (width, activation) in enumerate([(3, "softmax"), (2, None)]):
        tf_keras.utils.set_random_seed(10 + i)
        model = tf_keras.Sequential([_hub_layer(handle),
                                     tf_keras.layers.Dense(width, activation=activation)])
        model.save(tmp_path / f"seq{i}")
        models.append(model)
        paths.append(tmp_path / f"seq{i}")
    shutil.rmtree(handle)
    report = exported(capfd, *paths, "--out", tmp_path / "out")
    assert report["split_layer"] == "encoder"
    assert (Path(report["path"]) / "assets").is_dir()  # the module's vocabulary file
    check_against_originals(report["path"], [keras_original(m) for m in models])


def test_flat_graph_with_a_generic_head(hub_models: dict[str, Any],
                                        capfd: pytest.CaptureFixture[str]) -> None:
    folder = hub_models["folder"]
    vectorize = tf_keras.layers.TextVectorization(vocabulary=WORDS, output_sequence_length=5)
    embed = tf_keras.layers.Embedding(len(WORDS) + 2, 4)
    pool = tf_keras.layers.GlobalAveragePooling1D()
    features = tf_keras.layers.Dense(5, activation="tanh", name="features")
    models = []
    for i in range(2):
        tf_keras.utils.set_random_seed(20 + i)
        text = tf_keras.Input(shape=(), dtype=tf.string)
        x = features(pool(embed(vectorize(text))))
        if i == 1:
            x = tf_keras.layers.LayerNormalization()(x)
        models.append(tf_keras.Model(text, tf_keras.layers.Dense(3, activation="softmax")(x)))
    models[0].save(folder / "flat0.h5")
    models[1].save(folder / "flat1")
    report = exported(capfd, folder / "flat0.h5", folder / "flat1", "--out", folder / "flat-out")
    assert report["split_layer"] == "features"
    assert [t["head"] for t in report["tasks"]] == ["stacked", "generic"]
    check_against_originals(report["path"], [keras_original(m) for m in models])
    check_cpp_loader(report["path"], 2)


def test_missing_tf_keras_gives_the_install_hint(hub_models: dict[str, Any], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(__import__("sys").modules, "tf_keras", None)
    err = refused(capfd, tmp_path / "out", hub_models["paths"][1])
    assert "tf-keras" in err and 'pip install "headswitch[keras2]"' in err
