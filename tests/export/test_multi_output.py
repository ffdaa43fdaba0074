"""One model with N head outputs gives N tasks, named after its outputs, in output order; a
manifest renames, labels or picks them; such files mix with single-output files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import pytest
import tensorflow as tf
from formats_support import WORDS, check_against_originals, exported, keras_original, refused


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A list-output model, a dict-output model and a single-output model on one trunk."""
    folder = tmp_path_factory.mktemp("multi")
    keras.utils.set_random_seed(0)
    trunk = [keras.layers.TextVectorization(vocabulary=WORDS, output_sequence_length=5),
             keras.layers.Embedding(len(WORDS) + 2, 4),
             keras.layers.GlobalAveragePooling1D(),
             keras.layers.Dense(6, activation="relu", name="penultimate")]

    def features() -> tuple[Any, Any]:
        text = keras.Input(shape=(), dtype="string", name="text")
        x = text
        for layer in trunk:
            x = layer(x)
        return text, x

    text, x = features()
    listed = keras.Model(text, [keras.layers.Dense(3, activation="softmax", name="topic")(x),
                                keras.layers.Dense(1, activation="sigmoid", name="spam")(x),
                                keras.layers.Dense(2, name="score")(x)])
    text, x = features()
    keyed = keras.Model(text, {
        "sentiment": keras.layers.Dense(3, activation="softmax", name="s")(x),
        "language": keras.layers.Dense(4, activation="softmax", name="l")(
            keras.layers.Dense(5, activation="relu")(x))})
    text, x = features()
    single = keras.Model(text, keras.layers.Dense(2, activation="softmax")(x))
    paths = {"listed": folder / "listed.keras", "keyed": folder / "keyed.keras",
             "single": folder / "single.keras"}
    for name, model in (("listed", listed), ("keyed", keyed), ("single", single)):
        model.save(paths[name])
    return {"folder": folder, "paths": paths, "listed": listed, "keyed": keyed,
            "single": single}


def test_outputs_become_tasks_renamed_and_labelled_by_the_manifest(
        models: dict[str, Any], capfd: pytest.CaptureFixture[str]) -> None:
    folder, paths = models["folder"], models["paths"]
    manifest = folder / "rename.yaml"
    manifest.write_text(
        "tasks:\n"
        "  - {model: listed.keras, output: score, name: rating, labels: [low, high]}\n"
        "  - {model: listed.keras, output: topic, labels: [sports, news, food]}\n")
    report = exported(capfd, paths["listed"], paths["keyed"], paths["single"],
                      "--manifest", manifest, "--out", folder / "out")
    tasks = report["tasks"]
    assert [t["name"] for t in tasks] == ["topic", "spam", "rating", "sentiment", "language",
                                          "single"]
    assert [t["output"] for t in tasks] == ["topic", "spam", "score", "sentiment", "language",
                                            None]
    assert tasks[2]["labels"] == ["low", "high"] and tasks[0]["labels"][0] == "sports"
    assert report["split_layer"] == "penultimate"
    assert [t["head"] for t in tasks] == ["stacked"] * 6
    listed, keyed = models["listed"], models["keyed"]
    check_against_originals(report["path"], [
        keras_original(listed, 0), keras_original(listed, 1), keras_original(listed, 2),
        keras_original(keyed, "sentiment"), keras_original(keyed, "language"),
        keras_original(models["single"])])


def test_manifest_alone_picks_outputs(models: dict[str, Any],
                                      capfd: pytest.CaptureFixture[str]) -> None:
    folder = models["folder"]
    manifest = folder / "pick.yaml"
    manifest.write_text(
        "tasks:\n"
        "  - {model: keyed.keras, output: language, name: lang}\n"
        "  - {model: single.keras, name: one}\n"
        "  - {model: listed.keras, output: spam}\n")
    report = exported(capfd, "--manifest", manifest, "--out", folder / "picked")
    assert [t["name"] for t in report["tasks"]] == ["lang", "one", "spam"]
    check_against_originals(report["path"], [
        keras_original(models["keyed"], "language"), keras_original(models["single"]),
        keras_original(models["listed"], 1)])


def test_a_named_entry_must_say_which_output(models: dict[str, Any],
                                            capfd: pytest.CaptureFixture[str]) -> None:
    folder = models["folder"]
    manifest = folder / "vague.yaml"
    manifest.write_text("tasks:\n  - {model: listed.keras, name: everything}\n")
    err = refused(capfd, folder / "vague-out", "--manifest", manifest)
    assert "has 3 outputs (topic, spam, score)" in err and "output:" in err


def test_tf_keras_model_with_list_outputs(tmp_path: Path,
                                          capfd: pytest.CaptureFixture[str]) -> None:
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(0)
    text = tf_keras.Input(shape=(), dtype=tf.string)
    x = tf_keras.layers.TextVectorization(vocabulary=WORDS, output_sequence_length=4)(text)
    x = tf_keras.layers.GlobalAveragePooling1D()(tf_keras.layers.Embedding(8, 4)(x))
    x = tf_keras.layers.Dense(5, activation="relu", name="shared")(x)
    model = tf_keras.Model(text, [tf_keras.layers.Dense(2, activation="softmax", name="a")(x),
                                  tf_keras.layers.Dense(3, name="b")(x)])
    model.save(tmp_path / "both")
    report = exported(capfd, tmp_path / "both", "--out", tmp_path / "out")
    assert [t["name"] for t in report["tasks"]] == ["a", "b"]
    assert report["tasks"][0]["source_format"] == "tf_keras SavedModel folder"
    check_against_originals(report["path"], [keras_original(model, 0),
                                             keras_original(model, 1)])
