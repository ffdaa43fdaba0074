"""The two Keras APIs headswitch reads, behind one small interface.

Keras 3 (``keras``) and Keras 2 (``tf_keras``, what ``tf.keras`` was up to TensorFlow 2.15) both
keep a functional model as layers, call nodes and symbolic tensors, and both build a sub-model
from any two of its tensors. Reading Keras 2 models natively (rather than converting them to
Keras 3) keeps every layer a user may have working as it was trained: ``hub.KerasLayer``,
layers revived from a SavedModel folder without their Python class, custom layers. The merged
module calls the sub-models as they are.
"""

from __future__ import annotations

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

    def variable_name(self, variable: Any) -> str:
        return str(getattr(variable, "path", None) or variable.name)

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
    """The kit for a model or layer of either Keras."""
    tf_keras = sys.modules.get("tf_keras")
    if tf_keras is not None and isinstance(model, tf_keras.layers.Layer):
        return TF_KERAS
    return KERAS3
