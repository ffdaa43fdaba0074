"""Versions built from a previous one (``--from``) whose backbone is not plain Keras 3 layers: a
TF-Hub-style module read from tf_keras SavedModel folders (a lookup table fed by an asset file),
and KerasHub BERT classifiers (TF Text ops). The previous version's backbone function, its
tables and assets are carried over as saved, through a chain of versions, and still load in the
C++ loader."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from formats_support import (
    WORDS,
    check_against_originals,
    check_cpp_loader,
    tiny_bert,
    write_hub_module,
)

from headswitch.export import ExportError, export_backbone, export_from, export_models


def _tf_keras_models(folder: Path) -> list[tuple[Any, Path]]:
    tf_keras = pytest.importorskip("tf_keras")
    hub = pytest.importorskip("tensorflow_hub")
    handle = write_hub_module(folder / "hub-module")
    text = tf_keras.Input(shape=(), dtype=tf.string)
    encoded = hub.KerasLayer(str(handle), trainable=False, input_shape=[], dtype=tf.string,
                             name="encoder")(text)
    base = tf_keras.Model(text, tf_keras.layers.Dense(6, activation="relu")(encoded),
                          name="base_model")
    base.trainable = False
    made = []
    for i, width in enumerate((3, 2, 4)):
        tf_keras.utils.set_random_seed(i)
        text = tf_keras.Input(shape=(), dtype=tf.string, name="text")
        model = tf_keras.Model(text, tf_keras.layers.Dense(width, activation="softmax")(
            base(text)))
        model.save(folder / f"task{i}")  # SavedModel folders: the hub module inside each
        made.append((model, folder / f"task{i}"))
    return made


@pytest.mark.slow
def test_hub_module_backbone(tmp_path: Path) -> None:
    made = _tf_keras_models(tmp_path)
    base = tmp_path / "out"
    export_models([made[0][1], made[1][1]], base)
    v2 = export_from(base, [made[2][1]])
    assert [(t.task_id, t.change) for t in v2.tasks] == [(0, "unchanged"), (1, "unchanged"),
                                                         (2, "added")]
    export_from(base, remove=["task1"])  # 3: the carried-over table is saved once more
    originals = [lambda texts, m=m: m(tf.constant(texts), training=False) for m, _ in made]
    assert check_against_originals(base / "2", originals) <= 1e-5
    check_cpp_loader(base / "3", 3)  # ids 0 and 2 answer, 1 is removed
    # The backbone as a tf_keras model (a SavedModel folder holding the hub module), rebuilt
    # from its configuration: the hub layer reloads its module from its handle.
    report = export_backbone(base / "3", tmp_path / "backbone")
    assert report.keras == "tf_keras" and (tmp_path / "backbone" / "saved_model.pb").is_file()
    shutil.rmtree(tmp_path / "hub-module")
    with pytest.raises(ExportError, match="cannot rebuild version 3's backbone") as info:
        export_backbone(base / "3", tmp_path / "again")
    assert "compares its backbone with the version" in (info.value.hint or "")


@pytest.mark.slow
def test_kerashub_backbone(tmp_path: Path) -> None:
    keras_hub = pytest.importorskip("keras_hub")
    pytest.importorskip("tensorflow_text")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s"]
    preprocessor, backbone = tiny_bert(vocab)
    models, paths = [], []
    for i, classes in enumerate((3, 2, 4)):
        keras.utils.set_random_seed(i + 1)
        model = keras_hub.models.BertTextClassifier(backbone, num_classes=classes,
                                                    preprocessor=preprocessor,
                                                    activation="softmax")
        model.save(tmp_path / f"bert{i}.keras")
        models.append(model)
        paths.append(tmp_path / f"bert{i}.keras")
    base = tmp_path / "out"
    export_models(paths[:2], base)
    v2 = export_from(base, [paths[2]], remove=["bert0"])
    assert [(t.task_id, t.change) for t in v2.tasks] == [(1, "unchanged"), (2, "added")]
    assert "FastWordpieceTokenizeWithOffsets" in v2.non_core_ops
    originals = [lambda texts, m=m: m(m.preprocessor(tf.constant(texts)), training=False)
                 for m in models]
    got = tf.saved_model.load(str(base / "2"))
    for task_id in (1, 2):
        texts = ["the match was great", "", "unknown zzz"]
        out = got.signatures["serving_default"](text=tf.constant(texts),
                                                task_id=tf.constant([task_id] * 3, tf.int32))
        want = np.asarray(originals[task_id](texts))
        np.testing.assert_allclose(out["scores"].numpy()[:, : want.shape[1]], want, atol=1e-5)
    check_cpp_loader(base / "2", 3)
    with pytest.raises(ExportError, match="version 2's backbone cannot be written as a Keras "
                       "model: keras cannot serialize the backbone: layer 'preprocessor'") as info:
        export_backbone(base / "2", tmp_path / "backbone.keras")  # headswitch's own wrapper
    assert "compares its backbone with the version" in (info.value.hint or "")
