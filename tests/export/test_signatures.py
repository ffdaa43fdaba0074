"""The SavedModel as TensorFlow Serving sees it: SignatureDefs, a TF1 session, warmup."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from headswitch.export import PREDICT_OUTPUTS, TASKS_OUTPUTS


def _signature_defs(path: Any) -> Any:
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    (meta,) = [m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags]
    return meta.signature_def


def test_signature_defs(exported: Any) -> None:
    defs = _signature_defs(exported.path)
    assert {"serving_default", "by_name", "tasks"} <= set(defs)
    expect_inputs = {
        "serving_default": {"text": tf.string, "task_id": tf.int32},
        "by_name": {"text": tf.string, "task": tf.string},
        "tasks": {"unused": tf.int32},
    }
    for name, inputs in expect_inputs.items():
        sig = defs[name]
        assert sig.method_name == "tensorflow/serving/predict"
        assert {k: v.dtype for k, v in sig.inputs.items()} == {
            k: d.as_datatype_enum for k, d in inputs.items()}
        for tensor in sig.inputs.values():  # rank 1, batch dimension -1: batchable
            assert [d.size for d in tensor.tensor_shape.dim] == [-1]
        expected_outputs = PREDICT_OUTPUTS if name != "tasks" else TASKS_OUTPUTS
        assert set(sig.outputs) == set(expected_outputs)
        for tensor in sig.outputs.values():
            assert tensor.tensor_shape.dim[0].size == -1
    outputs = defs["serving_default"].outputs
    assert outputs["scores"].dtype == tf.float32.as_datatype_enum
    assert outputs["num_classes"].dtype == tf.int32.as_datatype_enum
    assert outputs["labels"].dtype == tf.string.as_datatype_enum
    assert outputs["top_score"].dtype == tf.float32.as_datatype_enum


def test_tf1_session_run_like_tf_serving(exported: Any, loaded: Any) -> None:
    """TF Serving loads a SavedModel into a session and runs tensors by name."""
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(exported.path))
        sig = meta.signature_def["serving_default"]
        texts = np.array([b"what a great match", b"", b"free prize click now"], dtype=object)
        ids = np.array([0, 1, 2], np.int32)
        feed = {sig.inputs["text"].name: texts, sig.inputs["task_id"].name: ids}
        scores = session.run(sig.outputs["scores"].name, feed_dict=feed)
    want = loaded.signatures["serving_default"](text=tf.constant(texts),
                                                task_id=tf.constant(ids))["scores"].numpy()
    np.testing.assert_allclose(scores, want, atol=1e-6)


def test_warmup_records_cover_every_signature_and_run(exported: Any, loaded: Any) -> None:
    from tensorflow_serving.apis import prediction_log_pb2

    path = exported.path / "assets.extra" / "tf_serving_warmup_requests"
    records = []
    for raw in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(raw.numpy())
        records.append(log)
    assert 0 < len(records) <= 1000
    seen = {r.predict_log.request.model_spec.signature_name for r in records}
    assert seen == {"serving_default", "by_name", "tasks"}
    for record in records:
        request = record.predict_log.request
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        loaded.signatures[request.model_spec.signature_name](**inputs)
