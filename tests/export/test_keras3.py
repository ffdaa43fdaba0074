"""Keras 3 models beyond functional .keras files: Sequential models (with or without an
Input), a TF-Hub-style SavedModel backbone through TFSMLayer, Lambda layers, Keras 3 .h5."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import pytest
import tensorflow as tf
from formats_support import (
    check_against_originals,
    check_cpp_loader,
    exported,
    keras_original,
    refused,
    vectorized_trunk,
    write_hub_module,
)


def test_sequential_models_with_and_without_input(tmp_path: Path,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    shared = vectorized_trunk(0)
    with_input = keras.Sequential([keras.Input(shape=(), dtype="string"), *shared,
                                   keras.layers.Dense(3, activation="softmax")])
    without = keras.Sequential([*shared, keras.layers.Dense(2, activation="sigmoid")])
    without(tf.constant(["alpha"]))  # built by a first call, as after fit()
    with_input.save(tmp_path / "a.keras")
    without.save(tmp_path / "b.keras")
    with_input.save(tmp_path / "c.h5")  # Keras 3's legacy .h5
    report = exported(capfd, tmp_path / "a.keras", tmp_path / "b.keras", tmp_path / "c.h5",
                      "--out", tmp_path / "out", "--manifest", _names(tmp_path))
    assert report["split_layer"] == "features"
    assert [t["source_format"] for t in report["tasks"]] == ["Keras 3 .keras"] * 2 + [
        "Keras 3 .h5"]
    check_against_originals(report["path"], [keras_original(m) for m in
                                             (with_input, without, with_input)])


def _names(folder: Path) -> Path:
    manifest = folder / "tasks.yaml"
    manifest.write_text("tasks:\n  - {model: a.keras, name: first}\n"
                        "  - {model: b.keras, name: second}\n  - {model: c.h5, name: third}\n")
    return manifest


@pytest.fixture(scope="module")
def tfsm_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("tfsm")
    handle = write_hub_module(folder / "encoder")
    models = []
    for i, width in enumerate((3, 2)):
        keras.utils.set_random_seed(i)
        text = keras.Input(shape=(), dtype="string")
        features = keras.layers.TFSMLayer(str(handle), call_endpoint="serving_default",
                                          name="encoder")(text)["output_0"]
        models.append(keras.Model(text, keras.layers.Dense(width, activation="softmax")(
            features)))
        models[-1].save(folder / f"task{i}.keras")
    return {"folder": folder, "models": models,
            "paths": [folder / "task0.keras", folder / "task1.keras"]}


def test_tfsmlayer_backbone_needs_the_unsafe_flag(tfsm_models: dict[str, Any],
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    folder = tfsm_models["folder"]
    err = refused(capfd, folder / "refused", *tfsm_models["paths"])
    assert "safe mode" in err and "--unsafe-deserialization" in err
    report = exported(capfd, *tfsm_models["paths"], "--out", folder / "out",
                      "--unsafe-deserialization")
    assert report["split_layer"] == "encoder"
    check_against_originals(report["path"], [keras_original(m) for m in tfsm_models["models"]])
    check_cpp_loader(report["path"], 2)


def test_lambda_layers_need_the_unsafe_flag(tmp_path: Path,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    models = []
    for i in range(2):
        text = keras.Input(shape=(), dtype="string")
        x = text
        for layer in vectorized_trunk(0):
            x = layer(x)
        x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(x)
        keras.utils.set_random_seed(i + 1)
        models.append(keras.Model(text, keras.layers.Dense(2 + i)(x)))
        models[-1].save(tmp_path / f"l{i}.keras")
    paths = [tmp_path / "l0.keras", tmp_path / "l1.keras"]
    err = refused(capfd, tmp_path / "refused", *paths)
    assert "Lambda" in err and "--unsafe-deserialization" in err
    report = exported(capfd, *paths, "--out", tmp_path / "out", "--unsafe-deserialization")
    assert report["split_layer"] == "double"
    check_against_originals(report["path"], [keras_original(m) for m in models])


def test_help_says_what_the_unsafe_flag_trusts(capfd: pytest.CaptureFixture[str]) -> None:
    from headswitch.cli import main

    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capfd.readouterr().out.split())
    assert "--unsafe-deserialization" in text
    assert "Python code stored in Lambda layers" in text and "TFSMLayers point to" in text
