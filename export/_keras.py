"""The two Keras APIs headswitch reads, behind one small interface.

Keras 3 (``keras``) and Keras 2 (``tf_keras``, what ``tf.keras`` was up to TensorFlow 2.15) both
keep a functional model as layers, call nodes and symbolic tensors, and both build a sub-model
from any two of its tensors. Reading Keras 2 models natively (rather than converting them to
Keras 3) keeps every layer a user may have working as it was trained: ``hub.KerasLayer``,
layers revived from a SavedModel folder without their Python class, custom layers. The merged
module calls the sub-models as they are.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from ._errors import ExportError

KERAS2_EXTRA = "keras2"
INSTALL_KERAS2 = f'pip install "headswitch[{KERAS2_EXTRA}]"  (tf-keras and tensorflow-hub)'


class Kit:
    """Graph access for one Keras API. ``operations`` lists a functional model's layer calls
    in topological order, inputs first; a layer called several times appears once."""

    name = "keras"

    @property
    def keras(self) -> Any:
        import keras

        return keras

    def operations(self, model: Any) -> list[Any]:
        return list(model.operations)

    def node_of(self, model: Any, op: Any) -> Any:
        """The call node of ``op`` that belongs to ``model``'s graph."""
        nodes = [n for i, n in enumerate(op._inbound_nodes) if self._node_key(op, i) in
                 self._model_nodes(model)]
        if len(nodes) != 1:
            raise ExportError(f"layer {op.name!r} is called {len(nodes)} times in model "
                              f"{model.name!r}; a split point must be a layer called once")
        return nodes[0]

    def _node_key(self, op: Any, index: int) -> str:
        return f"{id(op)}_ib-{index}"

    def _model_nodes(self, model: Any) -> Any:
        return model._nodes

    def node_outputs(self, node: Any) -> list[Any]:
        return list(node.output_tensors)

    def node_parents(self, node: Any) -> list[Any]:
        return [p.operation for p in node.parent_nodes]

    def is_functional(self, model: Any) -> bool:
        return hasattr(model, "_nodes_by_depth") and not self.is_sequential(model)

    def is_sequential(self, model: Any) -> bool:
        return isinstance(model, self.keras.Sequential)

    def model(self, inputs: Any, outputs: Any, name: str | None = None) -> Any:
        return self.keras.Model(inputs, outputs, name=name)

    def text_input(self, shape: tuple[int, ...] = (), name: str = "text") -> Any:
        return self.keras.Input(shape=shape, dtype="string", name=name)

    def expand_last(self, tensor: Any) -> Any:
        return self.keras.ops.expand_dims(tensor, -1)

    def clone(self, model: Any) -> Any:
        copy = self.keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
        return copy

    def activation_name(self, function: Any) -> str | None:
        try:
            name = self.keras.activations.serialize(function)
        except Exception:
            return None
        if isinstance(name, dict):
            module = name.get("module")
            name = name.get("config", {}).get("name") if module in (
                "keras.activations", None) else None
        return name if isinstance(name, str) else None

    def named_outputs(self, model: Any) -> list[tuple[str, Any]]:
        """The model's outputs in the order its call returns them, each with a name: the dict
        key for dict outputs (in the dict's order), else the name of the layer making it."""
        struct = self._output_struct(model)
        if isinstance(struct, dict):
            return [(str(k), t) for k, t in struct.items()]
        return [(self._maker(t, i), t) for i, t in enumerate(model.outputs)]

    def _output_struct(self, model: Any) -> Any:
        return getattr(model, "_outputs_struct", None)

    def _maker(self, tensor: Any, index: int) -> str:
        history = getattr(tensor, "_keras_history", None)
        return str(history.operation.name) if history is not None else f"output_{index}"


class TfKerasKit(Kit):
    """Keras 2 as the ``tf_keras`` package."""

    name = "tf_keras"

    @property
    def keras(self) -> Any:
        return import_tf_keras()

    def operations(self, model: Any) -> list[Any]:
        return list(model.layers)

    def _node_key(self, op: Any, index: int) -> str:
        return f"{op.name}_ib-{index}"

    def _model_nodes(self, model: Any) -> Any:
        return model._network_nodes

    def node_outputs(self, node: Any) -> list[Any]:
        import tensorflow as tf

        return list(tf.nest.flatten(node.outputs))

    def node_parents(self, node: Any) -> list[Any]:
        return [p.layer for p in node.parent_nodes]

    def is_functional(self, model: Any) -> bool:
        return bool(getattr(model, "_is_graph_network", False)) and not self.is_sequential(model)

    def expand_last(self, tensor: Any) -> Any:
        import tensorflow as tf

        return tf.expand_dims(tensor, -1)

    def _output_struct(self, model: Any) -> Any:
        return getattr(model, "_nested_outputs", None)

    def _maker(self, tensor: Any, index: int) -> str:
        history = getattr(tensor, "_keras_history", None)
        return str(history.layer.name) if history is not None else f"output_{index}"


KERAS3 = Kit()
TF_KERAS = TfKerasKit()


def import_tf_keras() -> Any:
    try:
        import tf_keras
    except ImportError as e:
        raise ExportError("reading Keras 2 models (tf.keras, tf_keras) needs the tf-keras package, "
                          "which is not installed", hint=INSTALL_KERAS2) from e
    return tf_keras


def kit_of(model: Any) -> Kit:
    """The kit for a model or layer of either Keras: asked once, by the load stage."""
    tf_keras = sys.modules.get("tf_keras")
    if tf_keras is not None and isinstance(model, tf_keras.layers.Layer):
        return TF_KERAS
    return KERAS3


@dataclasses.dataclass(frozen=True)
class KerasModel:
    """A functional Keras model and the Keras API it belongs to.

    The load stage settles the API once (``kit``); every later stage reads the model's graph
    through this object, and the sub-models it makes (a head, the backbone) carry the same kit.
    Calling it calls the model.
    """

    model: Any
    kit: Kit

    @classmethod
    def of(cls, model: Any) -> KerasModel:
        """For a Keras model made outside the load stage (tests, benchmarks)."""
        return cls(model, kit_of(model))

    def derived(self, model: Any) -> KerasModel:
        """Another model of the same Keras (a sub-model, a rebuilt copy)."""
        return KerasModel(model, self.kit)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    @property
    def name(self) -> str:
        return str(self.model.name)

    @property
    def inputs(self) -> list[Any]:
        return list(self.model.inputs)

    @property
    def outputs(self) -> list[Any]:
        return list(self.model.outputs)

    @property
    def input_rank(self) -> int:
        return len(self.model.inputs[0].shape)

    @property
    def width(self) -> int:
        """The last dimension of the (first) output."""
        return int(self.model.outputs[0].shape[-1])

    # ------------------------------------------------------------------------- the layer graph

    def operations(self) -> list[Any]:
        """The layer calls in topological order, inputs first."""
        if not self.kit.is_functional(self.model):
            raise ExportError(
                f"model {self.name!r} is a {type(self.model).__name__}, not a functional Keras "
                "model", hint="build it with the functional API (keras.Model(inputs, outputs)) "
                "or keras.Sequential; a subclassed model has no graph headswitch can split")
        return self.kit.operations(self.model)

    def node_of(self, op: Any) -> Any:
        """The call node of ``op`` that belongs to this model's graph."""
        return self.kit.node_of(self.model, op)

    def parents(self, op: Any) -> list[Any]:
        """The layers whose outputs ``op``'s call reads."""
        return self.kit.node_parents(self.node_of(op))

    def output_tensor(self, op: Any) -> Any:
        outputs = self.kit.node_outputs(self.node_of(op))
        if len(outputs) != 1:
            raise ExportError(f"layer {op.name!r} has {len(outputs)} outputs; a split needs one")
        return outputs[0]

    def output_dtype(self, op: Any) -> str:
        """The dtype name of ``op``'s output ("float32", "int64", "string", ...)."""
        dtype = self.output_tensor(op).dtype
        return str(getattr(dtype, "name", dtype))

    def passes_mask(self, op: Any) -> bool:
        """Whether ``op``'s output carries a Keras mask to the layers after it (an
        ``Embedding(mask_zero=True)``, ``Masking``, ...): a sub-model from that output on
        would not get it."""
        try:
            tensor = self.output_tensor(op)
        except ExportError:
            return False
        return getattr(tensor, "_keras_mask", None) is not None

    def head(self, op: Any) -> KerasModel | None:
        """The sub-model from ``op``'s output to the model's output, or None if not a cut."""
        if len(self.model.outputs) != 1:
            raise ExportError(f"model {self.name!r} has {len(self.model.outputs)} outputs; "
                              "expected one")
        try:
            return self.derived(self.kit.model(self.output_tensor(op), self.model.outputs[0]))
        except ExportError:
            return None
        except Exception:  # Keras raises ValueError for a disconnected graph
            return None

    def up_to(self, op: Any, name: str = "backbone") -> KerasModel:
        """The sub-model from the inputs to ``op``'s output."""
        return self.derived(self.kit.model(self.model.inputs, self.output_tensor(op), name=name))

    def children(self, op: Any) -> list[Any] | None:
        """The layers of ``op`` when it is a nested functional or Sequential model, else None."""
        if self.kit.is_sequential(op):
            return list(op.layers)
        if self.kit.is_functional(op):
            return self.kit.operations(op)
        return None

    def flatten(self, op: Any = None) -> list[Any]:
        """The leaf layers of a layer (itself) or of a nested model (default: this model), in
        order; input layers left out."""
        op = self.model if op is None else op
        if type(op).__name__ == "InputLayer":
            return []
        inner = self.children(op)
        if inner is None:
            return [op]
        return [leaf for child in inner for leaf in self.flatten(child)]

    def leaves(self) -> list[tuple[int, Any]]:
        """(position of the top-level layer call it belongs to, leaf layer), in order."""
        return [(position, leaf) for position, op in enumerate(self.operations())
                for leaf in self.flatten(op)]

    # ----------------------------------------------------------------------------- making

    def with_text_input(self, name: str) -> KerasModel:
        """This model taking rank-1 text (it may take (batch, 1))."""
        if self.input_rank == 1:
            return self
        text = self.kit.text_input(name=name)
        return self.derived(self.kit.model(text, self.model(self.kit.expand_last(text)),
                                           name=self.name))

    def activation_name(self, layer: Any) -> str | None:
        """The name of a layer's activation function, if it is a stock one."""
        return self.kit.activation_name(layer.activation)

    def clone(self) -> KerasModel:
        """A copy with layers of its own and the same weights."""
        return self.derived(self.kit.clone(self.model))
