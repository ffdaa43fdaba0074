"""TF Serving warmup records: ``assets.extra/tf_serving_warmup_requests``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from headswitch.contract import (
    INPUT_TASK,
    INPUT_TASK_ID,
    INPUT_TEXT,
    INPUT_UNUSED,
    SIGNATURE_IDS,
    SIGNATURE_NAMES,
    SIGNATURE_TASKS,
    WARMUP_FILE,
)


def warmup_records(model_name: str, task_names: list[str], texts: list[str],
                   task_ids: list[int] | None = None, backbones: list[int] | None = None
                   ) -> list[Any]:
    """PredictionLogs for every signature, at batch size 1 and a small mixed batch.
    ``task_ids``: the tasks' ids (default ``0..n-1``); ``backbones``: each task's backbone id:
    with several, one more request runs one task of each backbone."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    n = len(task_names)
    sample = [t for t in texts if len(t) < 200] or ["hello"]
    records = []

    def add(signature: str, inputs: dict[str, Any]) -> None:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        records.append(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)))

    for size in (1, 8):
        texts_b = np.array([sample[i % len(sample)] for i in range(size)], dtype=object)
        at = [i % n for i in range(size)]
        ids = np.array([task_ids[i] if task_ids else i for i in at], dtype=np.int32)
        add(SIGNATURE_IDS, {INPUT_TEXT: texts_b, INPUT_TASK_ID: ids})
        add(SIGNATURE_NAMES, {INPUT_TEXT: texts_b,
                              INPUT_TASK: np.array([task_names[i] for i in at], dtype=object)})
    if backbones is not None and len(set(backbones)) > 1:
        first = [backbones.index(b) for b in dict.fromkeys(backbones)]  # a task of each
        ids = np.array([task_ids[i] if task_ids else i for i in first], dtype=np.int32)
        add(SIGNATURE_IDS, {INPUT_TEXT: np.array([sample[i % len(sample)]
                                                  for i in range(len(first))], dtype=object),
                            INPUT_TASK_ID: ids})
    add(SIGNATURE_TASKS, {INPUT_UNUSED: np.zeros(1, np.int32)})
    return records


def write_warmup(assets_extra: Path, records: list[Any]) -> Path:
    import tensorflow as tf

    assets_extra.mkdir(parents=True, exist_ok=True)
    path = assets_extra / WARMUP_FILE
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record.SerializeToString())
    return path
