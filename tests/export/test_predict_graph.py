"""The predict graph itself (the build stage), on synthesized heads computed again with numpy:
every way a head is run (the main group on the whole batch, a group of several tasks on its
own examples, a group of one task by plain matmuls), every output activation, bad and retired
tasks, saved and run as TF Serving runs it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import numpy.typing as npt
import pytest
import tensorflow as tf

from headswitch.contract import OUTPUT_ERROR, OUTPUT_SCORES, OUTPUT_TOP_LABEL, OUTPUT_TOP_SCORE
from headswitch.export._heads import DenseChainHead, DenseStep, TaskEntry
from headswitch.export._module import SavedBackbone, build_module, signatures

WIDTH = 6  # the backbone's feature width
TEXTS = ["alpha beta", "", "gamma delta alpha", "unknown words", "beta " * 50, "delta"]
ACTIVATIONS: dict[str, Callable[[Any], Any]] = {
    "softmax": lambda z: np.exp(z - z.max(-1, keepdims=True))
    / np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True),
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "tanh": np.tanh,
}


def _backbone() -> Any:
    keras.utils.set_random_seed(3)
    text = keras.Input(shape=(), dtype="string", name="text")
    x = keras.layers.TextVectorization(vocabulary=["alpha", "beta", "gamma", "delta"],
                                       output_sequence_length=4)(text)
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(6, 5)(x))
    return keras.Model(text, keras.layers.Dense(WIDTH, activation="tanh")(x))


def _dense(rng: np.random.Generator, n_in: int, n_out: int, activation: str) -> DenseStep:
    return DenseStep(rng.normal(0, 1, (n_in, n_out)).astype(np.float32),
                     rng.normal(0, 0.5, n_out).astype(np.float32), activation)


def _tasks() -> list[TaskEntry]:
    """Ten single-Dense tasks (the main group: every output kind, widths 1 to 4), two tasks
    with a relu hidden layer (a group of several), one with a tanh hidden layer (alone)."""
    rng = np.random.default_rng(0)
    shapes: list[list[tuple[int, str]]] = [
        [(3, "softmax")], [(1, "sigmoid")], [(2, "linear")], [(4, "softmax")], [(2, "sigmoid")],
        [(1, "linear")], [(2, "softmax")], [(4, "sigmoid")], [(3, "softmax")], [(4, "linear")],
        [(5, "relu"), (3, "softmax")], [(5, "relu"), (2, "linear")], [(3, "tanh"), (2, "sigmoid")],
    ]
    tasks = []
    for t, steps in enumerate(shapes):
        n_in, dense = WIDTH, []
        for units, activation in steps:
            dense.append(_dense(rng, n_in, units, activation))
            n_in = units
        labels = [f"t{t}c{k}" for k in range(steps[-1][0])]
        tasks.append(TaskEntry(t, f"task{t}", labels, DenseChainHead(dense)))
    return tasks


def _numpy(task: TaskEntry, features: npt.NDArray[Any]) -> npt.NDArray[Any]:
    h = features.astype(np.float64)
    for step in task.head.steps:  # type: ignore[union-attr]
        h = ACTIVATIONS[step.activation](h @ step.kernel + step.bias)
    return h


Saved = tuple[Any, Any, list[TaskEntry], Path]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Saved:
    backbone = _backbone()
    tasks = _tasks()
    # Task ids need not be dense: 13 is retired, 14 is the last task.
    tasks.append(TaskEntry(14, "late", ["only"], DenseChainHead([
        _dense(np.random.default_rng(9), WIDTH, 1, "sigmoid")])))
    module = build_module(backbone, tasks, removed={13: ("gone", "task 13 ('gone') was removed "
                                                             "in version 2")})
    path = tmp_path_factory.mktemp("graph") / "1"
    tf.saved_model.save(module, str(path), signatures=signatures(module))
    return tf.saved_model.load(str(path)), backbone, tasks, path


def test_every_head_kind_matches_numpy(saved: Saved) -> None:
    loaded, backbone, tasks, _ = saved
    ids = [t.task_id for t in tasks] * len(TEXTS)
    texts = [TEXTS[i % len(TEXTS)] for i in range(len(ids))]
    features = np.asarray(backbone(tf.constant(texts)))
    by_id = {t.task_id: t for t in tasks}
    for out in (loaded.signatures["serving_default"](text=tf.constant(texts),
                                                     task_id=tf.constant(ids, tf.int32)),
                loaded.signatures["by_name"](text=tf.constant(texts), task=tf.constant(
                    [by_id[i].name for i in ids]))):
        scores = out[OUTPUT_SCORES].numpy()
        assert scores.shape == (len(ids), 4)
        assert not any(out[OUTPUT_ERROR].numpy())
        for row, task_id in enumerate(ids):
            task = by_id[task_id]
            want = _numpy(task, features[row:row + 1])[0]
            k = len(want)
            np.testing.assert_allclose(scores[row, :k], want, atol=2e-5, rtol=1e-5)
            assert np.all(scores[row, k:] == 0)
            top = int(np.argmax(want))
            assert out[OUTPUT_TOP_LABEL].numpy()[row].decode() == task.labels[top]
            assert out[OUTPUT_TOP_SCORE].numpy()[row] == pytest.approx(want[top], abs=2e-5)


@pytest.mark.parametrize("task_id,message", [
    (13, "task 13 ('gone') was removed in version 2"),
    (15, "task_id out of range: valid task ids are 0..14"),
    (-7, "task_id out of range"),
])
def test_bad_and_retired_ids(saved: Saved, task_id: int,
                             message: str) -> None:
    loaded, _, _, _ = saved
    out = loaded.signatures["serving_default"](text=tf.constant(["alpha", "beta"]),
                                               task_id=tf.constant([task_id, 0], tf.int32))
    assert message in out[OUTPUT_ERROR].numpy()[0].decode()
    assert out[OUTPUT_ERROR].numpy()[1] == b""
    assert not np.any(out[OUTPUT_SCORES].numpy()[0]) and out[OUTPUT_TOP_SCORE].numpy()[0] == 0
    assert out[OUTPUT_TOP_LABEL].numpy()[0] == b""


def test_retired_name(saved: Saved) -> None:
    loaded, _, _, _ = saved
    out = loaded.signatures["by_name"](text=tf.constant(["alpha"]), task=tf.constant(["gone"]))
    assert "was removed in version 2" in out[OUTPUT_ERROR].numpy()[0].decode()


def test_tasks_signature(saved: Saved) -> None:
    loaded, _, tasks, _ = saved
    out = loaded.signatures["tasks"](unused=tf.constant([0], tf.int32))
    assert list(out["task_id"].numpy()[0]) == [t.task_id for t in tasks]
    for i, task in enumerate(tasks):
        k = out["num_classes"].numpy()[0, i]
        assert [b.decode() for b in out["labels"].numpy()[0, i]] == \
            task.labels + [""] * (4 - k)
        assert out["activation"].numpy()[0, i].decode() == task.activation


def test_runs_in_a_tf1_session(saved: Saved) -> None:
    """As tensorflow_model_server runs it: the SavedModel loaded into a session, fed by name."""
    loaded, _, tasks, path = saved
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        sig = meta.signature_def["serving_default"]
        ids = np.array([t.task_id for t in tasks] + [99], np.int32)
        texts = np.array([b"alpha beta"] * len(ids), dtype=object)
        got = session.run(sig.outputs[OUTPUT_SCORES].name,
                          {sig.inputs["text"].name: texts, sig.inputs["task_id"].name: ids})
    want = loaded.signatures["serving_default"](text=tf.constant(texts),
                                                task_id=tf.constant(ids))[OUTPUT_SCORES]
    np.testing.assert_allclose(got, want.numpy(), atol=1e-6)


def test_features_function_and_a_module_built_on_it(saved: Saved, tmp_path: Path) -> None:
    """``features`` (not a signature) runs the backbone exactly; a module built on the restored
    function (a later version, ``SavedBackbone``) saves, loads in a TF1 session and answers as
    the first one."""
    loaded, backbone, tasks, _ = saved
    texts = tf.constant(TEXTS)
    features = loaded.features(texts).numpy()
    # Bit for bit against the backbone run as a graph (an eager Keras call rounds differently).
    graph = tf.function(lambda text: backbone(text, training=False), autograph=False)
    assert np.array_equal(features, graph(texts).numpy())
    assert "features" not in loaded.signatures
    reused = SavedBackbone(loaded.features, WIDTH, list(loaded._backbone_variables),
                           list(loaded._backbone_resources))
    module = build_module(reused, tasks[:3])
    path = tmp_path / "2"
    tf.saved_model.save(module, str(path), signatures=signatures(module))
    again = tf.saved_model.load(str(path))
    assert np.array_equal(again.features(texts).numpy(), features)
    ids = np.array([0, 1, 2, 0, 1, 2], np.int32)
    first = loaded.signatures["serving_default"](text=texts, task_id=tf.constant(ids))
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        sig = meta.signature_def["serving_default"]
        got = session.run(sig.outputs[OUTPUT_SCORES].name,
                          {sig.inputs["text"].name: np.array(TEXTS, dtype=object),
                           sig.inputs["task_id"].name: ids})
    np.testing.assert_allclose(got[:, :3], first[OUTPUT_SCORES].numpy()[:, :3], atol=1e-6)
