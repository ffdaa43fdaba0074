"""Can the stock ``tensorflow/serving`` image run every op of a SavedModel?

``tensorflow_model_server`` 2.19.1 links TensorFlow 2.19.1's ops and kernels (the ``tensorflow``
wheel headswitch pins exports the same core ops as ``tf.raw_ops``), plus the ops of TF Text
**2.12.1** (``@org_tensorflow_text//tensorflow_text:ops_lib`` in
tensorflow_serving/model_servers/BUILD, version pinned in tensorflow_serving/workspace.bzl at
tag 2.19.1) and TensorFlow Decision Forests' inference ops. It has no Python: ``tf.py_function``
and ``tf.numpy_function`` cannot run there.

``TF_TEXT_OPS`` below is every op the ``tensorflow-text`` 2.19 wheel registers that is also
registered by TF Text 2.12.1's ``ops_lib`` (checked against the v2.12.1 sources; attributes
compared too). The one 2.19 op missing from 2.12.1 is ``TFText>Utf8Binarize``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from headswitch import _quiet

from ._errors import ExportError

SERVING_IMAGE = "tensorflow/serving:2.19.1"
TF_TEXT_IN_SERVING = "2.12.1"
# TF Text 2.19's ops (``headswitch._quiet``) but the one TF Text 2.12.1 lacks.
TF_TEXT_OPS = _quiet.TF_TEXT_OPS - {"TFText>Utf8Binarize"}
PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})


def graph_ops(saved_model_dir: Path) -> set[str]:
    """Every op type in a SavedModel's graphs and functions (function calls excluded)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((saved_model_dir / "saved_model.pb").read_bytes())
    ops: set[str] = set()
    for meta in proto.meta_graphs:
        functions = {f.signature.name for f in meta.graph_def.library.function}
        ops.update(node.op for node in meta.graph_def.node)
        for function in meta.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
        ops -= functions
    return ops


def _core_ops(tf: Any) -> set[str]:
    return {name for name in dir(tf.raw_ops) if not name.startswith("_")} - PYTHON_OPS


def check_servable(saved_model_dir: Path) -> list[str]:
    """The non-core ops (TF Text) the SavedModel uses; refuses ops the stock image lacks."""
    import tensorflow as tf

    ops = graph_ops(saved_model_dir)
    core = _core_ops(tf)
    text = sorted(op for op in ops if op in TF_TEXT_OPS)
    missing = sorted(op for op in ops if op not in core and op not in TF_TEXT_OPS)
    if missing:
        python = [op for op in missing if op in PYTHON_OPS]
        why = ("Python code (tf.py_function / tf.numpy_function), which the server cannot run"
               if python and len(python) == len(missing) else
               f"ops that are neither TensorFlow {tf.__version__} core ops nor TF Text "
               f"{TF_TEXT_IN_SERVING} ops (what the server links)")
        raise ExportError(
            f"the stock {SERVING_IMAGE} image cannot serve the merged model: it uses "
            f"{', '.join(missing)}: {why}",
            hint="replace those ops (or the layers that use them) with TensorFlow ops, or with "
            f"TF Text ops that exist in TF Text {TF_TEXT_IN_SERVING}")
    return text
