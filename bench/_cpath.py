"""TF Serving's execution path from Python: TensorFlow's C API through ctypes.

tensorflow_model_server has no Python: it loads a SavedModel with the C++ loader (tags
``serve``) and runs a signature's tensors in a C++ session (``Session::Run`` with the
SignatureDef's tensor names as feeds and fetches). The ``tensorflow`` wheel ships that code in
``libtensorflow_cc.so.2`` and exports the C API over it, so a benchmark can load and run a model
exactly that way, with no Python per op and inputs built once:

    session = CSession("models/headswitch/1")
    run = session.prepare("serving_default", {"text": texts, "task_id": ids})
    session.run(run)                      # outputs freed unread, as in a timing loop
    outputs = session.run(run, read=True)  # {name: numpy array}

What a call costs from Python is one ctypes call (the GIL is released inside it) and freeing
the output tensors; latency figures taken here are the session's own plus that.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

# TF_DataType values (tensorflow/c/tf_datatype.h) for the dtypes a signature here uses.
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 9: np.int64, 10: np.bool_,
           19: np.float16, 5: np.int16}
_TF_STRING = 7
_CODES = ("OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
          "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
          "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
          "UNAUTHENTICATED")
_TSTRING_BYTES = 24  # sizeof(TF_TString)


class CPathError(Exception):
    """A failed load or run: the status code's name and TensorFlow's message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class _Output(ctypes.Structure):
    _fields_ = [("oper", ctypes.c_void_p), ("index", ctypes.c_int)]


class _Buffer(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("length", ctypes.c_size_t),
                ("data_deallocator", ctypes.c_void_p)]


_lib: Any = None


def library() -> Any:
    """The C API of the TensorFlow already imported in this process (importing it first keeps
    one copy of the library; opening it before ``import tensorflow`` crashes that import)."""
    global _lib
    if _lib is not None:
        return _lib
    import tensorflow as tf

    lib = ctypes.CDLL(os.path.join(os.path.dirname(tf.__file__), "libtensorflow_cc.so.2"))
    p, i, sz = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
    signatures = {
        "TF_NewStatus": ([], p), "TF_DeleteStatus": ([p], None), "TF_GetCode": ([p], i),
        "TF_Message": ([p], ctypes.c_char_p), "TF_NewGraph": ([], p),
        "TF_DeleteGraph": ([p], None), "TF_NewSessionOptions": ([], p),
        "TF_DeleteSessionOptions": ([p], None), "TF_SetConfig": ([p, p, sz, p], None),
        "TF_NewBuffer": ([], ctypes.POINTER(_Buffer)),
        "TF_NewBufferFromString": ([p, sz], ctypes.POINTER(_Buffer)),
        "TF_DeleteBuffer": ([ctypes.POINTER(_Buffer)], None),
        "TF_LoadSessionFromSavedModel": (
            [p, p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), i, p,
             ctypes.POINTER(_Buffer), p], p),
        "TF_CloseSession": ([p, p], None), "TF_DeleteSession": ([p, p], None),
        "TF_GraphOperationByName": ([p, ctypes.c_char_p], p),
        "TF_SessionRun": ([p, p, ctypes.POINTER(_Output), ctypes.POINTER(p), i,
                           ctypes.POINTER(_Output), ctypes.POINTER(p), i, p, i, p, p], None),
        "TF_AllocateTensor": ([i, ctypes.POINTER(ctypes.c_int64), i, sz], p),
        "TF_DeleteTensor": ([p], None), "TF_TensorData": ([p], p),
        "TF_TensorType": ([p], i), "TF_NumDims": ([p], i), "TF_Dim": ([p, i], ctypes.c_int64),
        "TF_TensorByteSize": ([p], sz), "TF_StringInit": ([p], None),
        "TF_StringCopy": ([p, ctypes.c_char_p, sz], None), "TF_StringDealloc": ([p], None),
        "TF_StringGetDataPointer": ([p], p), "TF_StringGetSize": ([p], sz),
    }
    for name, (args, result) in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, result
    _lib = lib
    return lib


def _check(lib: Any, status: int) -> None:
    code = lib.TF_GetCode(status)
    if code:
        message = lib.TF_Message(status).decode("utf-8", "replace")
        raise CPathError(_CODES[code] if code < len(_CODES) else str(code), message)


def _tensor(lib: Any, value: NDArray[Any]) -> int:
    """A new TF_Tensor holding ``value`` (strings as TF_TStrings)."""
    dims = (ctypes.c_int64 * value.ndim)(*value.shape)
    if value.dtype.kind in "OSU":
        flat = [v if isinstance(v, bytes) else str(v).encode() for v in value.reshape(-1)]
        tensor = lib.TF_AllocateTensor(_TF_STRING, dims, value.ndim, len(flat) * _TSTRING_BYTES)
        base = lib.TF_TensorData(tensor)
        for k, item in enumerate(flat):
            lib.TF_StringInit(base + k * _TSTRING_BYTES)
            lib.TF_StringCopy(base + k * _TSTRING_BYTES, item, len(item))
        return int(tensor)
    code = next(c for c, t in _DTYPES.items() if np.dtype(t) == value.dtype)
    data = np.ascontiguousarray(value)
    tensor = lib.TF_AllocateTensor(code, dims, value.ndim, data.nbytes)
    ctypes.memmove(lib.TF_TensorData(tensor), data.ctypes.data, data.nbytes)
    return int(tensor)


def _read(lib: Any, tensor: int) -> NDArray[Any]:
    shape = tuple(lib.TF_Dim(tensor, d) for d in range(lib.TF_NumDims(tensor)))
    kind = lib.TF_TensorType(tensor)
    base = lib.TF_TensorData(tensor)
    if kind == _TF_STRING:
        count = int(np.prod(shape)) if shape else 1
        out = [ctypes.string_at(lib.TF_StringGetDataPointer(base + k * _TSTRING_BYTES),
                                lib.TF_StringGetSize(base + k * _TSTRING_BYTES))
               for k in range(count)]
        return np.array(out, dtype=object).reshape(shape)
    size = lib.TF_TensorByteSize(tensor)
    raw = ctypes.string_at(base, size)
    return np.frombuffer(raw, dtype=_DTYPES[kind]).reshape(shape).copy()


@dataclass
class Prepared:
    """A signature's feeds as TF_Tensors built once, and its fetch list."""

    signature: str
    inputs: Any  # _Output array
    values: Any  # TF_Tensor* array
    ninputs: int
    outputs: Any  # _Output array
    names: list[str]
    results: Any  # TF_Tensor* array, filled by each run


class CSession:
    """A SavedModel loaded by TensorFlow's C++ loader, as tensorflow_model_server loads it."""

    def __init__(self, path: str | os.PathLike[str], tags: Sequence[str] = ("serve",),
                 config: bytes = b"") -> None:
        from tensorflow.core.protobuf import meta_graph_pb2

        lib = self._lib = library()
        self._status = lib.TF_NewStatus()
        self._graph = lib.TF_NewGraph()
        options = lib.TF_NewSessionOptions()
        try:
            if config:
                lib.TF_SetConfig(options, config, len(config), self._status)
                _check(lib, self._status)
            meta = lib.TF_NewBuffer()
            c_tags = (ctypes.c_char_p * len(tags))(*[t.encode() for t in tags])
            self._session = lib.TF_LoadSessionFromSavedModel(
                options, None, os.fspath(path).encode(), c_tags, len(tags), self._graph, meta,
                self._status)
            _check(lib, self._status)
            self.meta_graph = meta_graph_pb2.MetaGraphDef.FromString(
                ctypes.string_at(meta.contents.data, meta.contents.length))
            lib.TF_DeleteBuffer(meta)
        finally:
            lib.TF_DeleteSessionOptions(options)
        self._prepared: list[Prepared] = []

    @property
    def signatures(self) -> Mapping[str, Any]:
        signature_def: Mapping[str, Any] = self.meta_graph.signature_def
        return signature_def

    def _output(self, tensor_name: str) -> _Output:
        op, _, index = tensor_name.partition(":")
        handle = self._lib.TF_GraphOperationByName(self._graph, op.encode())
        if not handle:
            raise CPathError("NOT_FOUND", f"no operation {op!r} in the graph")
        return _Output(handle, int(index or 0))

    def prepare(self, signature: str, feeds: Mapping[str, Any],
                fetch: Sequence[str] | None = None) -> Prepared:
        """Build the input tensors of one call of ``signature`` (fetching every output unless
        ``fetch`` names some)."""
        # Look names up with ``in`` first: indexing a protobuf map inserts what it misses.
        if signature not in self.signatures:
            raise CPathError("NOT_FOUND", f"no signature {signature!r}; the model has "
                             f"{sorted(self.signatures)}")
        sig = self.signatures[signature]
        missing = set(sig.inputs) - set(feeds)
        unknown = set(feeds) - set(sig.inputs)
        if missing or unknown:
            raise CPathError("INVALID_ARGUMENT", f"signature {signature!r} takes inputs "
                             f"{sorted(sig.inputs)}; missing {sorted(missing)}, unknown "
                             f"{sorted(unknown)}")
        keys = sorted(feeds)
        names = sorted(sig.outputs) if fetch is None else list(fetch)
        if set(names) - set(sig.outputs):
            raise CPathError("INVALID_ARGUMENT", f"signature {signature!r} has outputs "
                             f"{sorted(sig.outputs)}; asked for {names}")
        inputs = (_Output * len(keys))(*[self._output(sig.inputs[k].name) for k in keys])
        values = (ctypes.c_void_p * len(keys))(
            *[_tensor(self._lib, np.asarray(feeds[k])) for k in keys])
        outputs = (_Output * len(names))(*[self._output(sig.outputs[n].name) for n in names])
        prepared = Prepared(signature, inputs, values, len(keys), outputs, names,
                            (ctypes.c_void_p * len(names))())
        self._prepared.append(prepared)
        return prepared

    def run(self, prepared: Prepared, read: bool = False,
            run_options: bytes = b"") -> dict[str, NDArray[Any]] | None:
        """One ``Session::Run``; the outputs are freed unread unless ``read``."""
        lib = self._lib
        options = lib.TF_NewBufferFromString(run_options, len(run_options)) if run_options \
            else None
        metadata = lib.TF_NewBuffer() if run_options else None
        lib.TF_SessionRun(self._session, options, prepared.inputs, prepared.values,
                          prepared.ninputs, prepared.outputs, prepared.results,
                          len(prepared.names), None, 0, metadata, self._status)
        try:
            _check(lib, self._status)
            out: dict[str, Any] | None = None
            if read:
                out = {n: _read(lib, prepared.results[k]) for k, n in enumerate(prepared.names)}
            if metadata is not None:
                out = dict(out or {})
                out["__run_metadata__"] = ctypes.string_at(metadata.contents.data,
                                                           metadata.contents.length)
            return out
        finally:
            for k in range(len(prepared.names)):
                if prepared.results[k]:
                    lib.TF_DeleteTensor(prepared.results[k])
                    prepared.results[k] = None
            if options is not None:
                lib.TF_DeleteBuffer(options)
            if metadata is not None:
                lib.TF_DeleteBuffer(metadata)

    def call(self, signature: str, feeds: Mapping[str, Any],
             fetch: Sequence[str] | None = None) -> dict[str, NDArray[Any]]:
        """Prepare, run once, read the outputs back and free the inputs."""
        prepared = self.prepare(signature, feeds, fetch)
        try:
            result = self.run(prepared, read=True)
            assert result is not None
            return result
        finally:
            self.release(prepared)

    def trace(self, prepared: Prepared) -> Any:
        """One run with RunOptions FULL_TRACE: the RunMetadata (per-node step stats)."""
        from tensorflow.core.protobuf import config_pb2

        options = config_pb2.RunOptions(trace_level=config_pb2.RunOptions.FULL_TRACE)
        out = self.run(prepared, run_options=options.SerializeToString())
        assert out is not None
        return config_pb2.RunMetadata.FromString(out["__run_metadata__"])

    def release(self, prepared: Prepared) -> None:
        if prepared in self._prepared:
            self._prepared.remove(prepared)
            self._free_inputs(prepared)

    def _free_inputs(self, prepared: Prepared) -> None:
        for k in range(prepared.ninputs):
            tensor = prepared.values[k]
            if tensor:
                self._lib.TF_DeleteTensor(tensor)  # frees the TF_TStrings it holds too
                prepared.values[k] = None

    def close(self) -> None:
        if self._session is None:
            return
        for prepared in self._prepared:
            self._free_inputs(prepared)
        self._prepared.clear()
        lib = self._lib
        lib.TF_CloseSession(self._session, self._status)
        lib.TF_DeleteSession(self._session, self._status)
        lib.TF_DeleteGraph(self._graph)
        lib.TF_DeleteStatus(self._status)
        self._session = None

    def __enter__(self) -> CSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
