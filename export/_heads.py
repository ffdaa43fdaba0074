"""Task heads: reading a head sub-model into stackable Dense weights, or keeping it as is."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

from ._graph import INFERENCE_IDENTITY, node_of, operations

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
    """A head that is a chain of Dense layers: stacked with the other heads of its shape."""

    steps: list[DenseStep]

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
    """Any other head: kept as a Keras model, run only for the examples that ask for it."""

    model: Any
    width: int
    activation: str
    squeeze: bool  # the head returns [batch] rather than [batch, width]

    @property
    def shape_key(self) -> tuple[Any, ...]:
        return ("generic",)

    @property
    def nbytes(self) -> int:
        return sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in self.model.weights)


Head = DenseChainHead | GenericHead


def _activation_name(layer: Any) -> str | None:
    import keras

    try:
        name = keras.activations.serialize(layer.activation)
    except Exception:
        return None
    if isinstance(name, dict):
        name = name.get("config", {}).get("name") if name.get("module") == "keras.activations" \
            else None
    return name if name in STACKABLE_ACTIVATIONS else None


def _dense_chain(head: Any) -> DenseChainHead | None:
    ops = operations(head)
    if len(head.inputs) != 1 or len(head.inputs[0].shape) != 2:
        return None
    steps: list[DenseStep] = []
    previous = ops[0]
    for op in ops[1:]:
        node = node_of(head, op)
        parents = [p.operation for p in node.parent_nodes]
        if len(parents) != 1 or parents[0] is not previous:
            return None
        previous = op
        kind = type(op).__name__
        if kind in INFERENCE_IDENTITY:
            continue
        if kind == "Dense":
            if getattr(op, "quantization_mode", None) or getattr(op, "lora_enabled", False):
                return None
            activation = _activation_name(op)
            if activation is None:
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
                name = _activation_name(op)
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


def _detached_copy(head: Any) -> Any:
    """A copy of the head with its own layers, so the source model can be freed."""
    import keras

    copy = keras.models.clone_model(head)
    copy.set_weights(head.get_weights())
    return copy


def analyse_head(head: Any) -> Head:
    """Turn a head sub-model into stacked Dense weights when it is a Dense chain."""
    chain = _dense_chain(head)
    if chain is not None:
        return chain
    out_shape = head.outputs[0].shape
    if len(out_shape) not in (1, 2) or (len(out_shape) == 2 and out_shape[1] is None):
        from ._errors import ExportError

        raise ExportError(
            f"head of model {head.name!r} returns shape {tuple(out_shape)}; a head must return "
            "[batch] or [batch, classes]")
    width = 1 if len(out_shape) == 1 else int(out_shape[1])
    last = operations(head)[-1]
    activation = _activation_name(last) or "other"
    return GenericHead(_detached_copy(head), width, activation, squeeze=len(out_shape) == 1)
