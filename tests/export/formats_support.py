"""Helpers for the model-format tests: run the CLI, compare a merged export with the original
models on one mixed batch, and run it through TensorFlow's C++ SavedModel loader."""

from __future__ import annotations

import ctypes
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from headswitch.cli import main

ATOL = 1e-5
TEXTS = ["alpha beta", "", "gamma delta alpha zeta", "unknown words!!", "Beta GAMMA",
         "delta " * 200, "¡café 東京 👍"]
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]


def vectorized_trunk(seed: int) -> list[Any]:
    """The layers of a small Keras 3 text backbone (TextVectorization, Embedding, pooling, a
    Dense "features" layer), with weights from ``seed``."""
    import keras

    keras.utils.set_random_seed(seed)
    return [keras.layers.TextVectorization(vocabulary=WORDS, output_sequence_length=5,
                                           name="vectorize"),
            keras.layers.Embedding(len(WORDS) + 2, 4, name="embed"),
            keras.layers.GlobalAveragePooling1D(name="pool"),
            keras.layers.Dense(5, activation="tanh", name="features")]


def tiny_bert(vocabulary: list[str]) -> tuple[Any, Any]:
    """A KerasHub BERT preprocessor (sequence length 16) and a one-layer BERT backbone of
    width 8 on ``vocabulary``, weights from seed 0."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=16)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(vocabulary), num_layers=1,
                                             num_heads=2, hidden_dim=8, intermediate_dim=16,
                                             max_sequence_length=16)
    return preprocessor, backbone


def export(capfd: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """``headswitch export ARGS --json`` in this process; (exit code, stdout, stderr)."""
    capfd.readouterr()
    code = main(["export", *map(str, args)])
    out, err = capfd.readouterr()
    return code, out, err


def exported(capfd: pytest.CaptureFixture[str], *args: str | Path) -> dict[str, Any]:
    code, out, err = export(capfd, *args, "--json")
    assert code == 0, err
    return dict(json.loads(out))


def refused(capfd: pytest.CaptureFixture[str], base: Path, *args: str | Path) -> str:
    """Run an export that must fail: exit 2, no traceback, nothing left in ``base``."""
    code, _, err = export(capfd, *args, "--out", base)
    assert code == 2, err
    assert "Traceback" not in err and "export failed:" in err
    assert not base.exists(), list(base.iterdir())
    return " ".join(err.split())  # the console wraps long lines


Original = Callable[[list[str]], Any]


def check_against_originals(path: str | Path, originals: Sequence[Original],
                            texts: Sequence[str] = TEXTS) -> float:
    """Every task of the export at ``path`` answers like its original model on one batch that
    mixes every task with every text, through both predict signatures. Returns the worst
    difference."""
    loaded = tf.saved_model.load(str(path))
    n = len(originals)
    order = np.random.default_rng(0).permutation(n * len(texts))
    task_of, text_of = (order // len(texts)).astype(np.int32), order % len(texts)
    batch = [texts[i] for i in text_of]
    names = [n.decode() for n in
             loaded.signatures["tasks"](unused=tf.constant([0]))["name"].numpy()[0]]
    assert len(names) == n
    wanted = [np.asarray(original(list(texts)), np.float32).reshape(len(texts), -1)
              for original in originals]
    worst = 0.0
    outs = [loaded.signatures["serving_default"](text=tf.constant(batch),
                                                 task_id=tf.constant(task_of)),
            loaded.signatures["by_name"](text=tf.constant(batch),
                                         task=tf.constant([names[t] for t in task_of]))]
    for out in outs:
        scores = out["scores"].numpy()
        for row, (t, q) in enumerate(zip(task_of, text_of)):
            want = wanted[t][q]
            assert not out["error"].numpy()[row]
            assert np.all(scores[row, want.shape[0]:] == 0)
            np.testing.assert_allclose(scores[row, : want.shape[0]], want, atol=ATOL, rtol=0,
                                       err_msg=f"task {names[t]} text {texts[q]!r}")
            worst = max(worst, float(np.max(np.abs(scores[row, : want.shape[0]] - want))))
    _record(path, worst)
    return worst


def _record(path: str | Path, worst: float) -> None:
    """With HEADSWITCH_FORMATS_TABLE=FILE set, append what was measured (bench/formats_table.py
    turns it into the table of formats)."""
    target = os.environ.get("HEADSWITCH_FORMATS_TABLE")
    if not target:
        return
    tasks = manifest_of(Path(path))["tasks"]
    entry = {"test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
             "formats": sorted({t["source"]["format"] for t in tasks}),
             "heads": [f"{t['head']} ({t['dtype']})" for t in tasks],
             "tasks": len(tasks), "max_abs_diff": worst}
    with open(target, "a") as f:
        f.write(json.dumps(entry) + "\n")


def keras_original(model: Any, output: int | str | None = None) -> Original:
    def run(texts: list[str]) -> Any:
        out = model(tf.constant(texts), training=False)
        return out if output is None else out[output]
    return run


def manifest_of(path: Path) -> dict[str, Any]:
    return dict(json.loads((Path(path) / "assets.extra" / "headswitch.json").read_text()))


# ------------------------------------------------------------------ TensorFlow's C++ loader


class _Output(ctypes.Structure):
    _fields_ = [("oper", ctypes.c_void_p), ("index", ctypes.c_int)]


def _c_api() -> Any:
    lib = ctypes.CDLL(os.path.join(os.path.dirname(tf.__file__), "libtensorflow_cc.so.2"))
    p, i, size = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
    for name, (args, result) in {
        "TF_NewStatus": ([], p), "TF_DeleteStatus": ([p], None), "TF_GetCode": ([p], i),
        "TF_Message": ([p], ctypes.c_char_p), "TF_NewGraph": ([], p),
        "TF_DeleteGraph": ([p], None), "TF_NewSessionOptions": ([], p),
        "TF_DeleteSessionOptions": ([p], None),
        "TF_LoadSessionFromSavedModel": (
            [p, p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), i, p, p, p], p),
        "TF_CloseSession": ([p, p], None), "TF_DeleteSession": ([p, p], None),
        "TF_GraphOperationByName": ([p, ctypes.c_char_p], p),
        "TF_AllocateTensor": ([i, ctypes.POINTER(ctypes.c_int64), i, size], p),
        "TF_TensorData": ([p], p), "TF_TensorByteSize": ([p], size),
        "TF_DeleteTensor": ([p], None), "TF_NumDims": ([p], i), "TF_Dim": ([p, i], ctypes.c_int64),
        "TF_StringInit": ([p], None), "TF_StringCopy": ([p, ctypes.c_char_p, size], None),
        "TF_SessionRun": ([p, p, ctypes.POINTER(_Output), ctypes.POINTER(p), i,
                           ctypes.POINTER(_Output), ctypes.POINTER(p), i, p, i, p, p], None),
    }.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = args, result
    return lib


def run_in_cpp_loader(path: str | Path, texts: Sequence[str], task_ids: Sequence[int]
                      ) -> np.ndarray[Any, Any]:
    """``scores`` of serving_default, with the model loaded by the C++ SavedModel loader
    (``TF_LoadSessionFromSavedModel``, as tensorflow_model_server loads it) and run in a
    session with the signature's tensor names."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    signature = proto.meta_graphs[0].signature_def["serving_default"]
    lib = _c_api()
    status, graph, options = lib.TF_NewStatus(), lib.TF_NewGraph(), lib.TF_NewSessionOptions()
    tags = (ctypes.c_char_p * 1)(b"serve")
    session = lib.TF_LoadSessionFromSavedModel(options, None, str(path).encode(), tags, 1, graph,
                                               None, status)
    try:
        if lib.TF_GetCode(status):
            raise AssertionError(f"C++ loader: {lib.TF_Message(status).decode()}")

        def tensor_name(name: str) -> _Output:
            op, index = name.rsplit(":", 1)
            return _Output(lib.TF_GraphOperationByName(graph, op.encode()), int(index))

        dims = (ctypes.c_int64 * 1)(len(texts))
        text = lib.TF_AllocateTensor(7, dims, 1, 24 * len(texts))  # TF_STRING, TF_TString each
        for j, value in enumerate(texts):
            data = value.encode()
            lib.TF_StringInit(lib.TF_TensorData(text) + 24 * j)
            lib.TF_StringCopy(lib.TF_TensorData(text) + 24 * j, data, len(data))
        ids = np.ascontiguousarray(task_ids, np.int32)
        task = lib.TF_AllocateTensor(3, dims, 1, ids.nbytes)  # TF_INT32
        ctypes.memmove(lib.TF_TensorData(task), ids.ctypes.data, ids.nbytes)
        feeds = (_Output * 2)(tensor_name(signature.inputs["text"].name),
                              tensor_name(signature.inputs["task_id"].name))
        fetch = (_Output * 1)(tensor_name(signature.outputs["scores"].name))
        result = (ctypes.c_void_p * 1)()
        lib.TF_SessionRun(session, None, feeds, (ctypes.c_void_p * 2)(text, task), 2, fetch,
                          result, 1, None, 0, None, status)
        lib.TF_DeleteTensor(text)
        lib.TF_DeleteTensor(task)
        if lib.TF_GetCode(status):
            raise AssertionError(f"C++ session run: {lib.TF_Message(status).decode()}")
        out = result[0]
        shape = [lib.TF_Dim(out, d) for d in range(lib.TF_NumDims(out))]
        buffer = (ctypes.c_char * lib.TF_TensorByteSize(out)).from_address(lib.TF_TensorData(out))
        scores = np.frombuffer(bytes(buffer), np.float32).reshape(shape)
        lib.TF_DeleteTensor(out)
        return scores
    finally:
        if session:
            lib.TF_CloseSession(session, status)
            lib.TF_DeleteSession(session, status)
        lib.TF_DeleteGraph(graph)
        lib.TF_DeleteSessionOptions(options)
        lib.TF_DeleteStatus(status)


def check_cpp_loader(path: str | Path, n_tasks: int) -> None:
    """The C++ loader's answers equal the Python loader's for a mixed batch."""
    ids = [i % n_tasks for i in range(len(TEXTS))]
    cpp = run_in_cpp_loader(path, TEXTS, ids)
    python = tf.saved_model.load(str(path)).signatures["serving_default"](
        text=tf.constant(TEXTS), task_id=tf.constant(ids, tf.int32))["scores"].numpy()
    np.testing.assert_allclose(cpp, python, atol=ATOL, rtol=0)


# ------------------------------------------------------------------ a TF-Hub-style text module


def write_hub_module(path: Path, *, seed: int = 1, dim: int = 8) -> Path:
    """A small text encoder saved as a SavedModel, shaped like a TF-Hub text module: a
    vocabulary asset file read into a lookup table, an embedding and a projection variable, a
    ``__call__`` taking a batch of strings. ``hub.KerasLayer`` loads it from the local path."""
    path.mkdir(parents=True, exist_ok=True)
    vocab = path.parent / f"{path.name}-vocab.txt"
    vocab.write_text("\n".join(["[UNK]", *WORDS]))

    class TextEncoder(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vocab_file = tf.saved_model.Asset(str(vocab))
            self.table = tf.lookup.StaticHashTable(tf.lookup.TextFileInitializer(
                self.vocab_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64,
                tf.lookup.TextFileIndex.LINE_NUMBER), 0)
            self.embedding = tf.Variable(tf.random.stateless_normal([len(WORDS) + 1, dim],
                                                                    seed=[seed, 0]))
            self.projection = tf.Variable(tf.random.stateless_normal([dim, dim],
                                                                     seed=[seed, 1]))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, text: Any) -> Any:
            ids = self.table.lookup(tf.strings.split(tf.strings.lower(text)))
            total = tf.reduce_sum(tf.gather(self.embedding, ids), axis=1)
            count = tf.cast(tf.maximum(ids.row_lengths(), 1), tf.float32)[:, None]
            return tf.tanh(tf.matmul(total / count, self.projection))

    tf.saved_model.save(TextEncoder(), str(path))
    vocab.unlink()
    return path
