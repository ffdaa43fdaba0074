"""SavedModel warmup: replay ``assets.extra/tf_serving_warmup_requests`` while loading
(``servables/tensorflow/saved_model_warmup_util.cc``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import grpc

from headswitch.contract import ASSETS_EXTRA, WARMUP_FILE

from ._errors import ServingError, invalid_argument, unimplemented

MAX_RECORDS = 1000

_log = logging.getLogger(__name__)


def warmup_path(export_dir: str) -> str:
    return os.path.join(export_dir, ASSETS_EXTRA, WARMUP_FILE)


def run_warmup(export_dir: str, predict: Callable[[Any], None], iterations: int = 1) -> int:
    """Replay every record ``iterations`` times through ``predict`` (a ``PredictRequest``
    callback; ``--num_request_iterations_for_warmup``); the first failure fails the load.
    Returns the number of records read."""
    path = warmup_path(export_dir)
    if not os.path.exists(path):
        _log.info("No warmup data file found at %s", path)
        return 0
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow_serving.apis import prediction_log_pb2

    count = 0
    try:
        for record in tf.data.TFRecordDataset(path):
            raw = bytes(record.numpy())
            log = prediction_log_pb2.PredictionLog()
            try:
                log.ParseFromString(raw)
            except DecodeError as exc:
                raise invalid_argument(
                    f"Failed to parse warmup record: {raw!r} from {path}"
                ) from exc
            kind = log.WhichOneof("log_type")
            if kind == "predict_log":
                for _ in range(max(iterations, 1)):
                    predict(log.predict_log.request)
            elif kind is not None:
                number = log.DESCRIPTOR.fields_by_name[kind].number
                raise unimplemented(f"Unsupported log_type for warmup: {number}")
            count += 1
            if count > MAX_RECORDS:
                raise invalid_argument(
                    f"Number of warmup records exceeds the maximum ({MAX_RECORDS}) at {path}"
                )
    except tf.errors.DataLossError as exc:
        message = str(exc.message)
        raise ServingError(
            grpc.StatusCode.DATA_LOSS,
            f"{message}. Please verify your warmup data is in TFRecord format.",
        ) from exc
    except tf.errors.OpError as exc:
        from ._servable import error_from_tf

        raise error_from_tf(exc) from exc
    _log.info(
        "Finished reading warmup data for model at %s. Number of warmup records read: %d.",
        path,
        count,
    )
    return count
