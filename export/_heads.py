"""Task heads: reading a head sub-model into stackable Dense weights, or keeping it as is.

The Head types are the interface between reading models and building the merged graph:

- ``DenseChainHead``: a chain of Dense layers (Dropout ignored) that computes in float32. The
  builder stacks it with the other heads of its shape. The features reach it cast to float32,
  which is exact for float16/bfloat16 backbones (a float32 Dense layer of a mixed-precision
  model casts its input the same way).
- ``GenericHead``: anything else, including Dense layers that compute in float16 or bfloat16
  (mixed precision): a stacked form (bias folded into the kernel, a per-example product)
  rounds float16 differently from the layer itself, while the same matmul on a subset of rows
  is exact, so they run as they are, on their examples only.

Both carry ``width`` (output values), ``activation`` (name of the final activation, or
"other"), ``compute_dtype`` (the dtype their layers compute in; "float32" for stacked heads),
``shape_key`` and ``nbytes``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

from ._errors import ExportError
from ._graph import INFERENCE_IDENTITY
from ._keras import KerasModel

# Activations the stacked heads apply themselves. Anything else keeps the head generic.
STACKABLE_ACTIVATIONS = ("linear", "relu", "sigmoid", "softmax", "tanh", "elu", "selu",
                         "softplus", "softsign", "swish", "silu", "gelu", "exponential")


@dataclasses.dataclass
class DenseStep:
    kernel: npt.NDArray[Any]  # [in, out]
    bias: npt.NDArray[Any]  # [out]
    activation: str


@dataclasses.dataclass
class DenseChainHead:
    """A head that is a chain of float32 Dense layers: stacked with the other heads of its
    shape."""

    steps: list[DenseStep]

    compute_dtype = "float32"

    @property
    def width(self) -> int:
        return int(self.steps[-1].kernel.shape[1])

    @property
    def activation(self) -> str:
        return self.steps[-1].activation

    @property
    def shape_key(self) -> tuple[Any, ...]:
        """Heads with equal keys stack: same input width and hidden layers. The output width
        and the final activation may differ."""
        hidden = tuple((int(s.kernel.shape[1]), s.activation) for s in self.steps[:-1])
        return ("dense", int(self.steps[0].kernel.shape[0]), hidden)

    @property
    def nbytes(self) -> int:
        return sum(s.kernel.nbytes + s.bias.nbytes for s in self.steps)


@dataclasses.dataclass
class GenericHead:
    """Any other head: kept as a Keras model (Keras 3 or tf_keras), run only for the examples
    that ask for it. Its output is cast to float32."""

    model: KerasModel
    width: int
    activation: str
    squeeze: bool  # the head returns [batch] rather than [batch, width]
    compute_dtype: str = "float32"  # the dtype its last layer computes in

    @property
    def shape_key(self) -> tuple[Any, ...]:
        return ("generic",)

    @property
    def nbytes(self) -> int:
        return sum(int(np.prod(w.shape)) * np.dtype(getattr(w.dtype, "as_numpy_dtype", w.dtype))
                   .itemsize for w in self.model.model.weights)


Head = DenseChainHead | GenericHead


@dataclasses.dataclass
class TaskEntry:
    """A task as the build stage takes it: its id, name, labels, head and the id of the
    backbone the head reads."""

    task_id: int
    name: str
    labels: list[str]
    head: Head
    backbone: int = 0

    @property
    def activation(self) -> str:
        return self.head.activation


def _activation_name(head: KerasModel, layer: Any) -> str | None:
    name = head.activation_name(layer)
    return name if name in STACKABLE_ACTIVATIONS else None


def _dtype_name(dtype: Any) -> str:
    return str(getattr(dtype, "name", dtype))


def _computes_in_float32(layer: Any) -> bool:
    return _dtype_name(getattr(layer, "compute_dtype", "float32")) == "float32"


def _dense_chain(head: KerasModel) -> DenseChainHead | None:
    ops = head.operations()
    if len(head.inputs) != 1 or len(head.inputs[0].shape) != 2:
        return None
    steps: list[DenseStep] = []
    previous = ops[0]
    for op in ops[1:]:
        parents = head.parents(op)
        if len(parents) != 1 or parents[0] is not previous:
            return None
        previous = op
        kind = type(op).__name__
        if kind in INFERENCE_IDENTITY:
            continue
        if not _computes_in_float32(op):
            return None
        if kind == "Dense":
            if getattr(op, "quantization_mode", None) or getattr(op, "lora_enabled", False):
                return None
            activation = _activation_name(head, op)
            if activation is None or _dtype_name(op.kernel.dtype) != "float32":
                return None
            kernel = np.asarray(op.kernel.numpy(), dtype=np.float32)
            bias = (np.asarray(op.bias.numpy(), dtype=np.float32) if op.use_bias
                    else np.zeros(kernel.shape[1], np.float32))
            steps.append(DenseStep(kernel, bias, activation))
        elif kind in ("Activation", "Softmax", "ReLU"):
            if not steps or steps[-1].activation != "linear":
                return None
            if kind == "Softmax":
                axis = op.axis if isinstance(op.axis, int) else None
                if axis not in (-1, 1):
                    return None
                name: str | None = "softmax"
            elif kind == "ReLU":
                config = op.get_config()
                plain = (config.get("max_value") is None and not config.get("negative_slope")
                         and not config.get("threshold"))
                name = "relu" if plain else None
            else:
                name = _activation_name(head, op)
            if name is None:
                return None
            steps[-1].activation = name
        else:
            return None
    if not steps:
        return None
    out_shape = head.outputs[0].shape
    if len(out_shape) != 2:
        return None
    return DenseChainHead(steps)


def _detached_copy(head: KerasModel) -> KerasModel:
    """A copy of the head with its own layers, so the source model can be freed; the head
    itself when its layers cannot be rebuilt from their config (layers revived from a
    SavedModel folder without their Python class, ...)."""
    try:
        return head.clone()
    except Exception:
        return head


def analyse_head(head: KerasModel) -> Head:
    """Turn a head sub-model into stacked Dense weights when it is a float32 Dense chain."""
    chain = _dense_chain(head)
    if chain is not None:
        return chain
    out_shape = head.outputs[0].shape
    if len(out_shape) not in (1, 2) or (len(out_shape) == 2 and out_shape[1] is None):
        raise ExportError(
            f"head of model {head.name!r} returns shape {tuple(out_shape)}; a head must return "
            "[batch] or [batch, classes]")
    width = 1 if len(out_shape) == 1 else int(out_shape[1])
    last = head.operations()[-1]
    activation = (_activation_name(head, last) if hasattr(last, "activation") else None) \
        or "other"
    return GenericHead(_detached_copy(head), width, activation, squeeze=len(out_shape) == 1,
                       compute_dtype=_dtype_name(getattr(last, "compute_dtype", "float32")))
