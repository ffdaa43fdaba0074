"""The SavedModel as TensorFlow Serving sees it: SignatureDefs, a TF1 session, warmup."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from headswitch import contract as c


def _signature_defs(path: Any) -> Any:
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    (meta,) = [m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags]
    return meta.signature_def


def test_signature_defs(exported: Any) -> None:
    defs = _signature_defs(exported.path)
    assert set(c.SIGNATURES) <= set(defs)
    assert set(c.SIGNATURE_INPUTS) == set(c.SIGNATURES)
    for name, inputs in c.SIGNATURE_INPUTS.items():
        sig = defs[name]
        assert sig.method_name == "tensorflow/serving/predict"
        assert {k: v.dtype for k, v in sig.inputs.items()} == {
            k: tf.as_dtype(d).as_datatype_enum for k, d in inputs.items()}
        for tensor in sig.inputs.values():  # rank 1, batch dimension -1: batchable
            assert [d.size for d in tensor.tensor_shape.dim] == [-1]
        expected_outputs = c.PREDICT_OUTPUTS if name != c.SIGNATURE_TASKS else c.TASKS_OUTPUTS
        assert set(sig.outputs) == set(expected_outputs)
        for tensor in sig.outputs.values():
            assert tensor.tensor_shape.dim[0].size == -1
    outputs = defs[c.SIGNATURE_IDS].outputs
    assert outputs[c.OUTPUT_SCORES].dtype == tf.float32.as_datatype_enum
    assert outputs[c.OUTPUT_TOP_LABEL].dtype == tf.string.as_datatype_enum
    assert outputs[c.OUTPUT_TOP_SCORE].dtype == tf.float32.as_datatype_enum
    assert outputs[c.OUTPUT_ERROR].dtype == tf.string.as_datatype_enum


def test_tf1_session_run_like_tf_serving(exported: Any, loaded: Any) -> None:
    """TF Serving loads a SavedModel into a session and runs tensors by name."""
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(exported.path))
        sig = meta.signature_def[c.SIGNATURE_IDS]
        texts = np.array([b"what a great match", b"", b"free prize click now"], dtype=object)
        ids = np.array([0, 1, 2], np.int32)
        feed = {sig.inputs[c.INPUT_TEXT].name: texts, sig.inputs[c.INPUT_TASK_ID].name: ids}
        scores = session.run(sig.outputs[c.OUTPUT_SCORES].name, feed_dict=feed)
    want = loaded.signatures[c.SIGNATURE_IDS](
        **{c.INPUT_TEXT: tf.constant(texts), c.INPUT_TASK_ID: tf.constant(ids)}
    )[c.OUTPUT_SCORES].numpy()
    np.testing.assert_allclose(scores, want, atol=1e-6)


def test_warmup_records_cover_every_signature_and_run(exported: Any, loaded: Any) -> None:
    from tensorflow_serving.apis import prediction_log_pb2

    path = exported.path / c.ASSETS_EXTRA / c.WARMUP_FILE
    records = []
    for raw in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(raw.numpy())
        records.append(log)
    assert 0 < len(records) <= 1000
    seen = {r.predict_log.request.model_spec.signature_name for r in records}
    assert seen == set(c.SIGNATURES)
    for record in records:
        request = record.predict_log.request
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        loaded.signatures[request.model_spec.signature_name](**inputs)
