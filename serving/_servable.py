"""One loaded model version: a TF1-style session in its own graph, as TF Serving loads it,
and the predict logic of ``servables/tensorflow/predict_util.cc`` on top of it."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import numpy as np

from headswitch.contract import SIGNATURE_IDS

from ._errors import ServingError, code_from_number, failed_precondition, invalid_argument
from ._tensors import Array

# TF Serving's default signature key: a request without signature_name reaches it, and
# headswitch names its predict-by-id signature so.
DEFAULT_SIGNATURE = SIGNATURE_IDS
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
TFLITE_FILE = "model.tflite"

Feeds = list[tuple[str, Array]]
# (feeds, fetches, timeout in ms or None) -> outputs
Runner = Callable[[Feeds, list[str], "int | None"], list[Array]]
T = TypeVar("T")


def raw_tf_message(message: str) -> str:
    """The runtime's own message, without what Python's session wrapper adds around it."""
    prefix = "Graph execution error:\n\n"
    if message.startswith(prefix):
        message = message[len(prefix) :]
        while message.startswith("Detected at node "):
            end = message.find("\nNode: '")
            if end < 0:
                break
            newline = message.find("\n", end + 1)
            message = message[newline + 1 :] if newline >= 0 else ""
    return message


def error_from_tf(exc: Any) -> ServingError:
    return ServingError(code_from_number(int(exc.error_code)), raw_tf_message(str(exc.message)))


_MISSING_OP = re.compile(r"Op type not registered '([^']+)'")


def _load_error_from_tf(exc: Any) -> ServingError:
    """A failed load. An op the process lacks will be missing on every retry: the error says
    which package provides it (when headswitch knows) and is not retried."""
    from headswitch._quiet import package_for_op

    error = error_from_tf(exc)
    missing = _MISSING_OP.search(error.message)
    if missing is None:
        return error
    hint = package_for_op(missing.group(1)) or (
        f"{missing.group(1)} is not an op of TensorFlow or TF Text; TF Serving's stock "
        "image links TF Text's and TensorFlow Decision Forests' ops and no others"
    )
    return ServingError(error.code, f"{error.message} ({hint})", hint=hint, retryable=False)


class Servable:
    """A loaded SavedModel version. Requests hold it through :meth:`use` so unloading waits."""

    def __init__(
        self, name: str, version: int, path: str, session: Any, meta_graph_def: Any
    ) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.session = session
        self.meta_graph_def = meta_graph_def
        self.signature_defs: Mapping[str, Any] = meta_graph_def.signature_def
        self.runner: Runner = self.run_session
        self.batching: Any = None  # the BatchingSession when batching is on
        self._callables: dict[tuple[tuple[str, ...], tuple[str, ...], int], Any] = {}
        self._feed_dtypes: dict[str, int] = {}
        self._callables_lock = threading.Lock()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._users = 0
        self._closed = False

    @contextlib.contextmanager
    def use(self) -> Iterator[Servable]:
        self.acquire()
        try:
            yield self
        finally:
            self.release()

    def acquire(self) -> None:
        with self._lock:
            self._users += 1

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                self._idle.notify_all()

    def wait_idle(self) -> None:
        with self._lock:
            while self._users:
                self._idle.wait()

    def feed_dtype(self, name: str, signature: Any) -> int:
        """The dtype enum the graph has for a fed tensor (the signature's if not found)."""
        dtype = self._feed_dtypes.get(name)
        if dtype is None:
            try:
                dtype = int(self.session.graph.get_tensor_by_name(name).dtype.as_datatype_enum)
            except (KeyError, ValueError, TypeError):
                dtype = next(
                    (int(i.dtype) for i in signature.inputs.values() if i.name == name), 0
                )
            self._feed_dtypes[name] = dtype
        return dtype

    def _callable(self, feeds: tuple[str, ...], fetches: tuple[str, ...], timeout_ms: int) -> Any:
        """A session callable for these feeds and fetches; ``timeout_ms`` > 0 makes its runs
        fail with DEADLINE_EXCEEDED after that long (``RunOptions.timeout_in_ms``)."""
        key = (feeds, fetches, timeout_ms)
        fn = self._callables.get(key)
        if fn is None:
            with self._callables_lock:
                fn = self._callables.get(key)
                if fn is None:
                    from tensorflow.core.protobuf import config_pb2

                    options = config_pb2.CallableOptions(feed=list(feeds), fetch=list(fetches))
                    options.run_options.timeout_in_ms = timeout_ms
                    fn = self.session._make_callable_from_options(options)
                    self._callables[key] = fn
        return fn

    def run_session(
        self, feeds: Feeds, fetches: list[str], timeout_ms: int | None = None
    ) -> list[Array]:
        """``Session::Run`` with these feeds (tensor name, value) and fetches (tensor names),
        stopped after ``timeout_ms`` if given."""
        import tensorflow as tf

        try:
            fn = self._callable(
                tuple(name for name, _ in feeds), tuple(fetches), max(timeout_ms or 0, 0)
            )
            return [np.asarray(v) for v in fn(*(value for _, value in feeds))]
        except tf.errors.OpError as exc:
            raise error_from_tf(exc) from exc

    def close(self) -> None:
        with self._callables_lock:
            if self._closed:
                return
            self._closed = True
            self._callables.clear()
        self.session.close()


def load_servable(
    name: str,
    version: int,
    path: str,
    tags: Sequence[str] = ("serve",),
    session_config: Any = None,
    prefer_tflite: bool = False,
) -> Servable:
    """``LoadSavedModel``: restore the MetaGraphDef with these tags into a fresh session (with
    this ``ConfigProto``, if given). ``prefer_tflite``: a version with ``model.tflite`` would be
    TF Serving's TF Lite session; it is refused here, with that reason."""
    from google.protobuf.message import DecodeError

    from headswitch._quiet import import_tensorflow

    tf = import_tensorflow(keras=False)

    tflite = os.path.join(path, TFLITE_FILE)
    if prefer_tflite and os.path.exists(tflite):
        raise ServingError(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{tflite}: TF Lite models are not served by headswitch's embedded server "
            "(--prefer_tflite_model); serve the version's SavedModel, without "
            "--prefer_tflite_model, or the tensorflow/serving image",
            retryable=False,
        )
    pb = os.path.join(path, "saved_model.pb")
    if not os.path.exists(pb) and not os.path.exists(os.path.join(path, "saved_model.pbtxt")):
        raise ServingError(
            grpc.StatusCode.NOT_FOUND,
            "Could not find SavedModel .pb or .pbtxt at supplied export directory path: "
            f"{path}. Check that the directory exists and that you have the right permissions "
            "for accessing it.",
        )
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph, config=session_config)
    try:
        from tensorflow.python.util import deprecation

        quiet: Any = deprecation.silence()
    except (ImportError, AttributeError):
        quiet = contextlib.nullcontext()
    try:
        with graph.as_default(), quiet:
            meta_graph_def = tf.compat.v1.saved_model.loader.load(session, list(tags), path)
    except tf.errors.OpError as exc:
        session.close()
        raise _load_error_from_tf(exc) from exc
    except (DecodeError, OSError) as exc:
        session.close()
        if isinstance(exc, DecodeError) or "Cannot parse file" in str(exc):
            # ReadBinaryProto in the C++ loader: DATA_LOSS.
            raise ServingError(
                grpc.StatusCode.DATA_LOSS, f"Can't parse {pb} as binary proto"
            ) from exc
        raise ServingError(grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}") from exc
    except RuntimeError as exc:
        session.close()
        if "could not be found in SavedModel" in str(exc):
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                "Could not find meta graph def matching supplied tags: { "
                + " ".join(tags)
                + " }. To inspect available tag-sets in the SavedModel, please use the "
                "SavedModel CLI: `saved_model_cli`",
            ) from exc
        raise ServingError(grpc.StatusCode.UNKNOWN, str(exc)) from exc
    except Exception as exc:
        session.close()
        raise ServingError(grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}") from exc
    logging.getLogger(__name__).info(
        "Loaded servable version {name: %s version: %d}", name, version
    )
    return Servable(name, version, path, session, meta_graph_def)


def check_feeds(servable: Servable, signature: Any, feeds: Feeds) -> None:
    """The dtype check ``DirectSession::Run`` makes, made before TensorFlow sees the inputs (its
    arguments are the feeds sorted by tensor name: the first one of the wrong dtype is
    reported). Shapes are not checked: as in TF Serving, the model's ops decide."""
    from ._tensors import dtype_enum_of, dtype_name

    ordered = sorted(feeds, key=lambda item: item[0])
    for index, (name, array) in enumerate(ordered):
        expected = servable.feed_dtype(name, signature)
        actual = dtype_enum_of(array)
        if actual != expected:
            raise invalid_argument(
                f"Expects arg[{index}] to be {dtype_name(expected)} but {dtype_name(actual)} is "
                "provided"
            )


@dataclass
class Prediction:
    signature_name: str
    outputs: dict[str, Array]


def _keys(items: Any) -> str:
    return ",".join(sorted(items))


def run_predict(
    servable: Servable,
    signature_name: str,
    inputs: Mapping[str, T],
    to_array: Callable[[str, T], Array],
    output_filter: Sequence[str] = (),
    on_runtime: Callable[[float], None] | None = None,
    timeout_ms: int | None = None,
    method_name_check: bool = False,
) -> Prediction:
    """``RunPredict``: signature lookup, input checks, output filter, one session run (stopped
    after ``timeout_ms``). ``method_name_check``: ``--enable_signature_method_name_check``."""
    from ._tensors import from_proto

    name = signature_name or DEFAULT_SIGNATURE
    signature = servable.signature_defs.get(name)
    if signature is None:
        raise failed_precondition(f'Serving signature key "{name}" not found.')
    if method_name_check and signature.method_name not in (
        PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD
    ):
        raise ServingError(
            grpc.StatusCode.INTERNAL,
            "Expected prediction signature method_name to be one of {"
            f"{PREDICT_METHOD}, {CLASSIFY_METHOD}, {REGRESS_METHOD}}}. Was: "
            f"{signature.method_name}",
        )
    request_keys, signature_keys = set(inputs), set(signature.inputs)
    if len(inputs) > len(signature.inputs) or (
        len(inputs) < len(signature.inputs) and not signature.defaults
    ):
        raise invalid_argument(
            f"input size does not match signature: {len(inputs)}!={len(signature.inputs)} "
            f"len({{{_keys(request_keys)}}}) != len({{{_keys(signature_keys)}}}). "
            f"Sent extra: {{{_keys(request_keys - signature_keys)}}}. "
            f"Missing but required: {{{_keys(signature_keys - request_keys)}}}."
        )
    feeds: Feeds = []
    seen: set[str] = set()
    for alias in sorted(signature.inputs):
        info = signature.inputs[alias]
        if alias in inputs:
            array = to_array(alias, inputs[alias])
            seen.add(alias)
        elif alias in signature.defaults:
            array = from_proto(signature.defaults[alias], alias)
        else:
            raise invalid_argument(
                f"Signature input alias: {alias}(feed name: {info.name}) not found in request "
                "and no default value provided. Inputs expected to be in the request "
                f"{{{_keys(request_keys)}}}, or default input alias set: "
                f"{_keys(signature.defaults)}"
            )
        feeds.append((info.name, array))
    if inputs and len(seen) != len(inputs):
        raise invalid_argument(
            f"Inputs contains invalid name. Used request inputs: {_keys(seen)}, "
            f"request input: {_keys(request_keys)}"
        )
    fetches: list[str] = []
    aliases: list[str] = []
    for alias in output_filter:
        if alias not in signature.outputs:
            raise invalid_argument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be "
                f"in the set {{{_keys(signature.outputs)}}}."
            )
        if alias in aliases:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        fetches.append(signature.outputs[alias].name)
        aliases.append(alias)
    if not fetches:
        for alias in sorted(signature.outputs):
            fetches.append(signature.outputs[alias].name)
            aliases.append(alias)
    check_feeds(servable, signature, feeds)
    start = time.perf_counter()
    results = servable.runner(feeds, fetches, timeout_ms)
    if on_runtime is not None:
        on_runtime((time.perf_counter() - start) * 1e6)
    if len(results) != len(aliases):
        raise ServingError(grpc.StatusCode.UNKNOWN, "Predict internal error")
    return Prediction(name, dict(zip(aliases, results)))
