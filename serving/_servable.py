"""One loaded model version: a TF1-style session in its own graph, as TF Serving loads it,
and the predict logic of ``servables/tensorflow/predict_util.cc`` on top of it."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
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

Feeds = list[tuple[str, Array]]
Runner = Callable[[Feeds, list[str]], list[Array]]
T = TypeVar("T")


def import_tensorflow(quiet: bool = False) -> Any:
    """Import TensorFlow with its C++ start-up logging turned down (unless the user chose).
    ``quiet`` also silences file descriptor 2 during the import (for the command line)."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # oneDNN's primitive cache keeps memory sized by the largest batch seen (a 16k-example
    # request left +180 MiB resident, +2 MiB without it) and was not faster here; TF Serving's
    # release build (.bazelrc --config=release, no --config=mkl) does not use it either.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    saved = -1
    if quiet:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    try:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2  # noqa: F401
    finally:
        if saved >= 0:
            os.dup2(saved, 2)
            os.close(saved)
    return tf


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
        self._callables: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = {}
        self._feed_dtypes: dict[str, int] = {}
        self._callables_lock = threading.Lock()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._users = 0
        self._closed = False

    @contextlib.contextmanager
    def use(self) -> Iterator[Servable]:
        with self._lock:
            self._users += 1
        try:
            yield self
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    self._idle.notify_all()

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

    def _callable(self, feeds: tuple[str, ...], fetches: tuple[str, ...]) -> Any:
        key = (feeds, fetches)
        fn = self._callables.get(key)
        if fn is None:
            with self._callables_lock:
                fn = self._callables.get(key)
                if fn is None:
                    from tensorflow.core.protobuf import config_pb2

                    options = config_pb2.CallableOptions(feed=list(feeds), fetch=list(fetches))
                    maker = getattr(self.session, "_make_callable_from_options", None)
                    if maker is not None:
                        fn = maker(options)
                    else:  # Public-API fallback: session.run with the same feeds and fetches.
                        session = self.session

                        def fn(*arrays: Array) -> list[Array]:
                            return list(session.run(list(fetches), dict(zip(feeds, arrays))))

                    self._callables[key] = fn
        return fn

    def run_session(self, feeds: Feeds, fetches: list[str]) -> list[Array]:
        """``Session::Run`` with these feeds (tensor name, value) and fetches (tensor names)."""
        import tensorflow as tf

        try:
            fn = self._callable(tuple(name for name, _ in feeds), tuple(fetches))
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


def load_servable(name: str, version: int, path: str, tags: Sequence[str] = ("serve",)) -> Servable:
    """``LoadSavedModel``: restore the MetaGraphDef with these tags into a fresh session."""
    tf = import_tensorflow()
    from google.protobuf.message import DecodeError

    pb = os.path.join(path, "saved_model.pb")
    if not os.path.exists(pb) and not os.path.exists(os.path.join(path, "saved_model.pbtxt")):
        raise ServingError(
            grpc.StatusCode.NOT_FOUND,
            "Could not find SavedModel .pb or .pbtxt at supplied export directory path: "
            f"{path}. Check that the directory exists and that you have the right permissions "
            "for accessing it.",
        )
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
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
        raise error_from_tf(exc) from exc
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


def _shape_text(dims: Sequence[int]) -> str:
    return "[" + ",".join(str(d) for d in dims) + "]"


def check_feeds(servable: Servable, signature: Any, feeds: Feeds) -> None:
    """What running the session would check first, checked before TensorFlow sees the inputs.

    Dtypes as ``DirectSession::Run`` checks them (its arguments are the feeds sorted by tensor
    name: the first one of the wrong dtype is reported). Then shapes against the signature:
    TF Serving feeds any shape and the model's ops decide (or fail); this server refuses a shape
    the signature does not allow, so that no malformed tensor reaches TensorFlow."""
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
    infos = {info.name: (alias, info) for alias, info in signature.inputs.items()}
    for name, array in feeds:
        alias, info = infos[name]
        shape = info.tensor_shape
        if shape.unknown_rank:
            continue
        dims = [int(d.size) for d in shape.dim]
        if len(dims) != array.ndim or any(
            d >= 0 and d != s for d, s in zip(dims, array.shape)
        ):
            raise invalid_argument(
                f"Input {alias} (feed name: {name}) has shape {_shape_text(array.shape)}, "
                f"which the signature's shape {_shape_text(dims)} does not allow"
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
) -> Prediction:
    """``RunPredict``: signature lookup, input checks, output filter, one session run."""
    from ._tensors import from_proto

    name = signature_name or DEFAULT_SIGNATURE
    signature = servable.signature_defs.get(name)
    if signature is None:
        raise failed_precondition(f'Serving signature key "{name}" not found.')
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
    results = servable.runner(feeds, fetches)
    if on_runtime is not None:
        on_runtime((time.perf_counter() - start) * 1e6)
    if len(results) != len(aliases):
        raise ServingError(grpc.StatusCode.UNKNOWN, "Predict internal error")
    return Prediction(name, dict(zip(aliases, results)))
