"""Build a small task-switching SavedModel (plain TensorFlow) for the serving tests.

The model mimics the product's contract:

- ``serving_default``: ``text`` (string [-1]) + ``task_id`` (int32 [-1]) ->
  ``scores`` float32 [-1, 3], ``num_classes`` int32 [-1], ``labels`` string [-1, 3],
  ``top_label`` string [-1], ``top_score`` float32 [-1].
- ``by_name``: ``text`` + ``task`` (string [-1]) -> the same outputs.
- ``tasks``: ``unused`` int32 [-1] -> ``name`` / ``name_bytes`` string [-1, 3],
  ``id`` int32 [-1, 3].
- ``echo``: ``data_bytes`` string [-1] -> ``data_bytes`` (one input, one output; binary data).

Scores depend on the text length L: ``scores[j] = ((L + j) % 3 + 1) / 10 + task_id`` (float32),
so the best class is the ``j`` with ``(L + j) % 3 == 2`` and ``top_score = 0.3 + task_id``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

TASK_NAMES = ["sentiment", "spam", "topic"]
LABELS = [["negative", "neutral", "positive"], ["ham", "spam", "unsure"], ["news", "sport", "tech"]]
WARMUP_TEXTS = [b"warm up", b"hello"]


def expected(text: bytes | str, task_id: int) -> dict[str, Any]:
    """What the model returns for one example (float32 values as numpy scalars)."""
    length = len(text.encode() if isinstance(text, str) else text)
    # Computed in float32 exactly as the graph does it.
    scores = [
        np.float32(np.float32((length + j) % 3 + 1) / np.float32(10.0)) + np.float32(task_id)
        for j in range(3)
    ]
    best = int(np.argmax(scores))
    return {
        "scores": scores,
        "num_classes": 3,
        "labels": LABELS[task_id],
        "top_label": LABELS[task_id][best],
        "top_score": scores[best],
    }


def _tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    return tf


def build_model(export_dir: str | Path) -> None:
    """Export the SavedModel to ``export_dir`` (a version folder, e.g. ``base/1``)."""
    tf = _tf()

    class Heads(tf.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.labels = tf.constant(LABELS)
            self.task_names = tf.constant(TASK_NAMES)

        def _run(self, text: Any, task_id: Any) -> dict[str, Any]:
            n_text = tf.shape(text)[0]
            n_task = tf.shape(task_id)[0]
            same = tf.debugging.Assert(
                tf.equal(n_text, n_task),
                ["text and task_id must have the same length; got", n_text, n_task],
            )
            valid = tf.logical_and(task_id >= 0, task_id < len(TASK_NAMES))
            in_range = tf.debugging.Assert(
                tf.reduce_all(valid),
                [
                    "task_id must be in the valid range 0..2; got",
                    tf.boolean_mask(task_id, tf.logical_not(valid)),
                ],
                summarize=10,
            )
            with tf.control_dependencies([same, in_range]):
                length = tf.strings.length(text)
                j = tf.range(3, dtype=tf.int32)
                raw = tf.math.floormod(length[:, None] + j[None, :], 3) + 1
                scores = tf.cast(raw, tf.float32) / 10.0 + tf.cast(task_id, tf.float32)[:, None]
                labels = tf.gather(self.labels, task_id)
                best = tf.argmax(scores, axis=1, output_type=tf.int32)
                return {
                    "scores": scores,
                    "num_classes": tf.fill([n_text], 3),
                    "labels": labels,
                    "top_label": tf.gather(labels, best, batch_dims=1),
                    "top_score": tf.reduce_max(scores, axis=1),
                }

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.string, name="text"),
                tf.TensorSpec([None], tf.int32, name="task_id"),
            ]
        )
        def serve(self, text: Any, task_id: Any) -> dict[str, Any]:
            return self._run(text, task_id)

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.string, name="text"),
                tf.TensorSpec([None], tf.string, name="task"),
            ]
        )
        def by_name(self, text: Any, task: Any) -> dict[str, Any]:
            matches = tf.equal(task[:, None], self.task_names[None, :])
            known = tf.reduce_any(matches, axis=1)
            check = tf.debugging.Assert(
                tf.reduce_all(known),
                [
                    "unknown task name; known tasks are sentiment, spam, topic; got",
                    tf.boolean_mask(task, tf.logical_not(known)),
                ],
                summarize=10,
            )
            with tf.control_dependencies([check]):
                task_id = tf.argmax(tf.cast(matches, tf.int32), axis=1, output_type=tf.int32)
                return self._run(text, task_id)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="unused")])
        def tasks(self, unused: Any) -> dict[str, Any]:
            n = tf.shape(unused)[0]
            names = tf.tile(self.task_names[None, :], [n, 1])
            return {
                "name": names,
                "name_bytes": names,
                "id": tf.tile(tf.range(3, dtype=tf.int32)[None, :], [n, 1]),
            }

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="data_bytes")])
        def echo(self, data_bytes: Any) -> dict[str, Any]:
            return {"data_bytes": tf.identity(data_bytes)}

    module = Heads()
    tf.saved_model.save(
        module,
        str(export_dir),
        signatures={
            "serving_default": module.serve,
            "by_name": module.by_name,
            "tasks": module.tasks,
            "echo": module.echo,
        },
    )


def predict_log_record(inputs: dict[str, Any], signature_name: str = "", name: str = "m") -> bytes:
    """One serialized ``PredictionLog`` (predict_log with a PredictRequest)."""
    tf = _tf()
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=name, signature_name=signature_name)
    )
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )
    return bytes(log.SerializeToString())


def write_warmup(version_dir: str | Path, records: list[bytes]) -> Path:
    """Write ``assets.extra/tf_serving_warmup_requests`` (TFRecord) into a version folder."""
    tf = _tf()
    path = Path(version_dir) / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return path


def default_warmup_records() -> list[bytes]:
    return [
        predict_log_record(
            {"text": np.array(WARMUP_TEXTS, dtype=object), "task_id": np.array([0, 1], np.int32)}
        ),
        predict_log_record({"unused": np.array([0], np.int32)}, signature_name="tasks"),
    ]
