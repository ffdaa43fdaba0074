"""The test models of TF Serving's own tests, built here (no file of theirs is used).

TF Serving 2.19.1 ships them as binaries under ``servables/tensorflow/testdata/`` (made by its
``saved_model_half_plus_two.py``); its tests state what they compute and which signatures they
have, and these builders make SavedModels with the same signatures, tensor names and values:

- ``half_plus_two_tf1``: a TF1 graph ``y = 0.5 x + 2`` (plus ``y2 = 0.5 x + 3`` and
  ``y3 = 0.5 x2 + 3``) whose examples come in as serialized ``tf.Example`` (``tf_example``, a
  string vector its signatures record with unknown rank) and are parsed into ``x`` and ``x2``
  ([-1, 1] floats).
  Signatures: ``serving_default`` (x -> y), ``classify_x_to_y``, ``regress_x_to_y``,
  ``regress_x_to_y2``, ``regress_x2_to_y3`` (and ``classify_x2_to_y3`` in the two-version
  model of ``http_rest_api_handler_test.cc``). An asset file and an init op that reads it.
- ``half_plus_two_tf2``: the same model written by ``tf.saved_model.save`` from a ``tf.Module``.
- ``half_plus_three``: ``y = 0.5 x + 3`` with signatures whose inputs have no shape at all
  (unknown rank): ``serving_default`` and ``tensorflow/serving/regress`` (the ``api_rest.md``
  example).
- ``tf_text_regression``: ``y = 0.5 x + 2`` through a graph that also runs TF Text ops (what
  ``test_tf_text`` checks: the server has TF Text's ops).

Versions are written as TF Serving's testdata names them (``00000123`` is version 123).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

VERSION = 123
VERSION_DIR = "00000123"
PREDICT = "tensorflow/serving/predict"
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"


def _tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    return tf


def _feature_spec(tf: Any) -> dict[str, Any]:
    """Two float features of one value each; ``x2`` may be left out (0.0 then)."""
    return {
        "x": tf.io.FixedLenFeature([1], tf.float32),
        "x2": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0]),
    }


@contextlib.contextmanager
def _tf1_session() -> Iterator[tuple[Any, Any, Any]]:
    """TensorFlow, its ``compat.v1``, and a session on a new graph that is the default graph
    meanwhile: where the TF1 models are built."""
    tf = _tf()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as session:
        yield tf, v1, session


def half_plus_two_tf1(
    base: Path, *, offset: float = 2.0, classify_x2: bool = False, version: str = VERSION_DIR
) -> Path:
    """``BASE/<version>``: the TF1 half-plus-two graph (``offset`` is b in y = 0.5 x + b)."""
    export_dir = base / version
    with _tf1_session() as (tf, v1, session):
        a = v1.Variable(0.5, name="a")
        b = v1.Variable(offset, name="b")
        c = v1.Variable(3.0, name="c")
        serialized = v1.placeholder(tf.string, [None], name="tf_example")
        features = v1.io.parse_example(serialized, _feature_spec(tf))
        x = tf.identity(features["x"], name="x")
        y = tf.identity(tf.add(tf.multiply(a, x), b), name="y")
        y2 = tf.identity(tf.add(tf.multiply(a, x), c), name="y2")
        x2 = tf.identity(features["x2"], name="x2")
        # Separate variables for the x2 path, as in TF Serving's model.
        a2 = v1.Variable(0.5, name="a2")
        c2 = v1.Variable(3.0, name="c2")
        y3 = tf.identity(tf.add(tf.multiply(a2, x2), c2), name="y3")
        init_op = _asset_init_op(tf, Path(tempfile.mkdtemp(prefix="half_plus_two_assets_")))

        def info(tensor: Any) -> Any:
            proto = v1.saved_model.utils.build_tensor_info(tensor)
            if tensor is serialized:  # recorded without a shape, as in TF Serving's model
                proto.tensor_shape.Clear()
                proto.tensor_shape.unknown_rank = True
            return proto

        def signature(inputs: dict[str, Any], outputs: dict[str, Any], method: str) -> Any:
            return v1.saved_model.signature_def_utils.build_signature_def(
                {k: info(t) for k, t in inputs.items()},
                {k: info(t) for k, t in outputs.items()},
                method,
            )

        signatures = {
            "serving_default": signature({"x": x}, {"y": y}, PREDICT),
            "classify_x_to_y": signature({"inputs": serialized}, {"scores": y}, CLASSIFY),
            "regress_x_to_y": signature({"inputs": serialized}, {"outputs": y}, REGRESS),
            "regress_x_to_y2": signature({"inputs": serialized}, {"outputs": y2}, REGRESS),
            "regress_x2_to_y3": signature({"inputs": x2}, {"outputs": y3}, REGRESS),
        }
        if classify_x2:
            signatures["classify_x2_to_y3"] = signature({"inputs": x2}, {"scores": y3}, CLASSIFY)
        session.run(v1.global_variables_initializer())
        builder = v1.saved_model.builder.SavedModelBuilder(str(export_dir))
        builder.add_meta_graph_and_variables(
            session,
            ["serve"],
            signature_def_map=signatures,
            assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS),
            main_op=tf.group(init_op),
        )
        builder.save()
    return export_dir


def _asset_init_op(tf: Any, folder: Path) -> Any:
    """An asset (``foo.txt``) registered in the graph, and an op that sets a variable to its
    name when the model loads (the SavedModel loader must copy and feed assets)."""
    v1 = tf.compat.v1
    path = folder / "foo.txt"
    path.write_text("asset-file-contents")
    v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, tf.constant(str(path)))
    name = v1.Variable("foo.txt", name="filename_tensor", trainable=False, collections=[])
    return name.assign("foo.txt")


def half_plus_two_tf2(base: Path, *, version: str = VERSION_DIR) -> Path:
    """``BASE/<version>``: half plus two as a TF2 ``tf.Module``."""
    tf = _tf()
    export_dir = base / version

    class HalfPlusTwo(tf.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.a = tf.Variable(0.5)
            self.b = tf.Variable(2.0)
            self.c = tf.Variable(3.0)

        def _x(self, serialized: Any) -> Any:
            return tf.io.parse_example(serialized, _feature_spec(tf))["x"]

        @tf.function(input_signature=[tf.TensorSpec([1], tf.float32)])
        def predict(self, x: Any) -> dict[str, Any]:
            return {"y": self.a * x + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress_xy(self, serialized: Any) -> dict[str, Any]:
            return {"outputs": self.a * self._x(serialized) + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress_xy2(self, serialized: Any) -> dict[str, Any]:
            return {"outputs": self.a * self._x(serialized) + self.c}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify_xy(self, serialized: Any) -> dict[str, Any]:
            return {"scores": self.a * self._x(serialized) + self.b}

    module = HalfPlusTwo()
    tf.saved_model.save(
        module,
        str(export_dir),
        signatures={
            "serving_default": module.predict,
            "regress_x_to_y": module.regress_xy,
            "regress_x_to_y2": module.regress_xy2,
            "classify_x_to_y": module.classify_xy,
        },
    )
    return export_dir


def half_plus_three(base: Path, *, version: str = VERSION_DIR) -> Path:
    """``BASE/<version>``: y = 0.5 x + 3, its signature inputs without any shape."""
    export_dir = base / version
    with _tf1_session() as (tf, v1, session):
        a = v1.Variable(0.5, name="a")
        c = v1.Variable(3.0, name="c")
        serialized = v1.placeholder(tf.string, name="tf_example")
        parsed = v1.io.parse_example(serialized, _feature_spec(tf))["x"]
        x = tf.identity(parsed, name="x")
        y = tf.identity(tf.add(tf.multiply(a, x), c), name="y")
        info = v1.saved_model.utils.build_tensor_info

        def unshaped(tensor: Any) -> Any:
            proto = info(tensor)
            proto.ClearField("tensor_shape")  # no shape recorded at all
            return proto

        build = v1.saved_model.signature_def_utils.build_signature_def
        signatures = {
            "serving_default": build({"x": unshaped(x)}, {"y": unshaped(y)}, PREDICT),
            REGRESS: build({"inputs": unshaped(serialized)}, {"outputs": unshaped(y)}, REGRESS),
        }
        session.run(v1.global_variables_initializer())
        builder = v1.saved_model.builder.SavedModelBuilder(str(export_dir))
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signatures)
        builder.save()
    return export_dir


def tf_text_regression(base: Path, *, version: str = "01") -> Path:
    """``BASE/<version>``: serving_default x -> y = 0.5 x + 2, computed through TF Text ops
    (the graph splits a constant text with ``WhitespaceTokenizer`` and case-folds it; the
    count of tokens, 4, is subtracted again). Needs ``tensorflow-text`` to build and to load."""
    tf = _tf()
    import tensorflow_text as text

    export_dir = base / version

    class TextRegression(tf.Module):  # type: ignore[name-defined]
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def predict(self, x: Any) -> dict[str, Any]:
            folded = text.case_fold_utf8(tf.constant(["One two THREE four"]))
            tokens = text.WhitespaceTokenizer().tokenize(folded)
            count = tf.cast(tf.size(tokens.flat_values), tf.float32)
            return {"y": 0.5 * x + 2.0 + count - 4.0}

    module = TextRegression()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.predict})
    return export_dir


_KERAS_BUILDER = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
import tf_keras as keras

export_dir, distributed = sys.argv[1], sys.argv[2] == "1"

def build():
    model = keras.models.Sequential()
    model.add(keras.layers.Input(dtype="float32", shape=(1,), name="x"))
    if distributed:
        model.add(keras.layers.Dense(1, kernel_initializer="ones", bias_initializer="zeros"))
    model.add(keras.layers.Lambda(lambda v: v, name="y"))
    return model

if distributed:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    with tf.distribute.MirroredStrategy(devices=["/cpu:0", "/cpu:1"]).scope():
        model = build()
else:
    model = build()
tf.saved_model.save(model, export_dir)
"""


def keras_sequential(base: Path, *, distributed: bool = False) -> Path:
    """``BASE/00000123``: a Keras 2 (tf_keras) Sequential model ``x`` -> ``y`` (identity, or
    a Dense of ones built under a two-CPU ``MirroredStrategy``), written by
    ``tf.saved_model.save``. Built in a child process: virtual CPUs must be configured before
    TensorFlow's runtime starts."""
    export_dir = base / VERSION_DIR
    subprocess.run(
        [sys.executable, "-c", _KERAS_BUILDER, str(export_dir), "1" if distributed else "0"],
        check=True,
        capture_output=True,
    )
    return export_dir


def checkpoint_module(base: Path, *, multiple_signatures: bool) -> Path:
    """``BASE/00000123``, as ``test_tf_saved_model_save`` and its multiple-signature sibling
    write it: a ``tf.train.Checkpoint`` with functions of an unknown-shape float ``x``.
    One signature: y = 3 * 2 * x (variables); two: ``serving_default`` answers 1,
    ``custom_signature_key`` answers 2."""
    tf = _tf()
    export_dir = base / VERSION_DIR
    root = tf.train.Checkpoint()
    spec = tf.TensorSpec(None, tf.float32)
    if multiple_signatures:
        root.f = tf.function(lambda x: {"y": 1.0}, input_signature=[spec])
        root.g = tf.function(lambda x: {"y": 2.0}, input_signature=[spec])
        tf.saved_model.save(
            root, str(export_dir),
            signatures={"serving_default": root.f, "custom_signature_key": root.g})
    else:
        root.v1 = tf.Variable(3.0)
        root.v2 = tf.Variable(2.0)
        root.f = tf.function(lambda x: {"y": root.v1 * root.v2 * x})
        tf.saved_model.save(root, str(export_dir), root.f.get_concrete_function(spec))
    return export_dir
