"""KerasHub text classifiers with their preprocessor attached: the export takes raw strings,
its TF Text ops are listed, and ops the stock tensorflow/serving image lacks are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import pytest
import tensorflow as tf
from formats_support import (
    WORDS,
    check_against_originals,
    check_cpp_loader,
    exported,
    manifest_of,
    refused,
    tiny_bert,
)

from headswitch.cli import main

keras_hub = pytest.importorskip("keras_hub")
tf_text = pytest.importorskip("tensorflow_text")

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s", "##a"]


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("kerashub")
    preprocessor, backbone = tiny_bert(VOCAB)
    models, paths = [], []
    for i, (classes, activation) in enumerate([(3, None), (2, "softmax")]):
        keras.utils.set_random_seed(i + 1)
        model = keras_hub.models.BertTextClassifier(backbone, num_classes=classes,
                                                    preprocessor=preprocessor,
                                                    activation=activation)
        model.save(folder / f"bert{i}.keras")
        models.append(model)
        paths.append(folder / f"bert{i}.keras")
    return {"folder": folder, "models": models, "paths": paths}


def _with_preprocessor(model: Any) -> Any:
    return lambda texts: model(model.preprocessor(tf.constant(texts)), training=False)


def test_bert_classifiers_take_raw_strings(classifiers: dict[str, Any],
                                           capfd: pytest.CaptureFixture[str]) -> None:
    folder = classifiers["folder"]
    report = exported(capfd, *classifiers["paths"], "--out", folder / "out")
    assert report["tasks"][0]["source_format"].startswith("KerasHub BertTextClassifier")
    assert [t["head"] for t in report["tasks"]] == ["stacked", "stacked"]
    assert "FastWordpieceTokenizeWithOffsets" in report["non_core_ops"]
    check_against_originals(report["path"], [_with_preprocessor(m)
                                             for m in classifiers["models"]])
    check_cpp_loader(report["path"], 2)
    listed = manifest_of(report["path"])["serving"]["non_core_ops"]
    assert listed == report["non_core_ops"]
    capfd.readouterr()
    assert main(["inspect", report["path"]]) == 0
    shown = " ".join(capfd.readouterr().out.split())
    assert "non-core ops:" in shown and "FastWordpieceTokenizeWithOffsets" in shown
    assert main(["inspect", report["path"], "--json"]) == 0
    info = json.loads(capfd.readouterr().out)
    assert info["manifest"]["serving"]["non_core_ops"] == listed


@keras.saving.register_keras_serializable(package="headswitch_tests")
class Binarized(keras.layers.Layer):
    """Features from tensorflow_text.utf8_binarize: an op added after TF Text 2.12."""

    def call(self, text: Any) -> Any:
        return tf_text.utf8_binarize(text, word_length=4, bits_per_char=8)


@keras.saving.register_keras_serializable(package="headswitch_tests")
class PythonLength(keras.layers.Layer):
    """Features computed in Python through tf.numpy_function."""

    def call(self, text: Any) -> Any:
        length = tf.numpy_function(lambda t: __import__("numpy").array(
            [[len(s)] for s in t], "float32"), [text], tf.float32)
        return tf.reshape(length, [-1, 1])


@pytest.mark.parametrize("layer,reason", [
    (Binarized, "TFText>Utf8Binarize"), (PythonLength, "Python code")])
def test_ops_the_stock_server_lacks_are_refused(tmp_path: Path, layer: type, reason: str,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    text = keras.Input(shape=(), dtype="string")
    model = keras.Model(text, keras.layers.Dense(2)(layer(name="features")(text)))
    model.save(tmp_path / "m.keras")
    err = refused(capfd, tmp_path / "out", tmp_path / "m.keras")
    assert "tensorflow/serving:2.19.1 image cannot serve" in err and reason in err
