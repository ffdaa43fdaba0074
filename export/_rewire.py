"""Re-running a tf_keras functional model's layers on new inputs, with every layer call that
returns several tensors (a dict, a list, a Hugging Face ``ModelOutput``) of which the model
reads only one wrapped as a layer that returns that one.

The split between backbone and heads needs a layer call with one output: a TF-Hub BERT
encoder returns ``{pooled_output, sequence_output, encoder_outputs}`` and the heads read
``pooled_output``; rewired, the encoder call is the layer ``encoder:pooled_output``, whose
output feeds the heads alone, so it can end the backbone (automatically, or named with
``--split-layer encoder:pooled_output``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

OUTPUT_SEPARATOR = ":"


def by_path(structure: Any, prefix: str = "") -> dict[str, Any]:
    """The leaves of a nest of dicts, lists and tuples by path ("pooled_output",
    "encoder_outputs/0", ...)."""
    if isinstance(structure, Mapping):
        items: Any = structure.items()
    elif isinstance(structure, (list, tuple)):
        items = enumerate(structure)
    else:
        return {prefix: structure}
    found: dict[str, Any] = {}
    for key, value in items:
        found.update(by_path(value, f"{prefix}/{key}" if prefix else str(key)))
    return found


def _paths(structure: Any) -> list[str]:
    """The paths of ``tf.nest.flatten(structure)``, in its order."""
    import tensorflow as tf

    path_of = {id(leaf): path for path, leaf in by_path(structure).items()}
    return [path_of[id(leaf)] for leaf in tf.nest.flatten(structure)]


@functools.lru_cache(maxsize=1)
def output_of_class() -> type:
    """The tf_keras layer ``OutputOf(layer, output)``: calls ``layer``, returns the output at
    path ``output`` of what it returns (a dict key, ``list/0``, ...). Named
    ``<layer>:<output>``."""
    import tensorflow as tf

    from ._keras import import_tf_keras

    tf_keras = import_tf_keras()

    @tf_keras.utils.register_keras_serializable(package="headswitch")
    class OutputOf(tf_keras.layers.Layer):  # type: ignore[name-defined]
        def __init__(self, layer: Any, output: str, **kwargs: Any) -> None:
            if isinstance(layer, dict):
                layer = tf_keras.layers.deserialize(layer, custom_objects=_hub_objects())
            kwargs.setdefault("name", f"{layer.name}{OUTPUT_SEPARATOR}{output}")
            kwargs.setdefault("trainable", layer.trainable)
            kwargs.setdefault("dtype", layer.dtype_policy)
            super().__init__(**kwargs)
            self.layer = layer
            self.output_path = output

        def _name_scope(self) -> str:  # TensorFlow name scopes take no ':'
            return str(self.layer.name)

        @tf.autograph.experimental.do_not_convert
        def call(self, *args: Any, **kwargs: Any) -> Any:
            return by_path(self.layer(*args, **kwargs))[self.output_path]

        def get_config(self) -> dict[str, Any]:
            config = super().get_config()
            # The inner layer by class name and configuration (not by the module that made it:
            # a hub.KerasLayer revived from a folder and one read from an .h5 are the same).
            inner = tf_keras.layers.serialize(self.layer)
            config.update(layer={"class_name": inner["class_name"], "config": inner["config"]},
                          output=self.output_path)
            return dict(config)

    return OutputOf


def _hub_objects() -> dict[str, Any]:
    try:
        import tensorflow_hub as hub
    except ImportError:
        return {}
    return {"KerasLayer": hub.KerasLayer}


def rerun(model: Any, inputs: list[Any]) -> Any:
    """``model``'s layers called on ``inputs`` (symbolic tensors, one per model input, in
    ``model.inputs`` order): its outputs, as a new graph. A layer call with several outputs of
    which one is used becomes an ``OutputOf`` call."""
    import tensorflow as tf

    usage = model._tensor_usage_count
    tensors: dict[str, list[Any]] = {}
    for x, y in zip(model.inputs, inputs):
        tensors[str(id(x))] = [y] * usage[str(id(x))]
    wrapper = None
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input or any(i not in tensors for i in node.flat_input_ids):
                continue
            args, kwargs = node.map_arguments(tensors)
            ids = list(node.flat_output_ids)
            used = [k for k, i in enumerate(ids) if usage.get(i, 0) > 0]
            if len(ids) > 1 and len(used) == 1:
                wrapper = wrapper or output_of_class()
                path = _paths(node.outputs)[used[0]]
                outputs: list[Any] = [None] * len(ids)
                outputs[used[0]] = wrapper(node.layer, path)(*args, **kwargs)
            else:
                outputs = tf.nest.flatten(node.layer(*args, **kwargs))
            for i, y in zip(ids, outputs):
                tensors[i] = [y] * usage.get(i, 0)
    flat = [tensors[str(id(x))].pop() for x in model.outputs]
    return tf.nest.pack_sequence_as(model._nested_outputs, flat)


def needs_rewiring(model: Any) -> bool:
    """Whether some layer call of the tf_keras functional ``model`` has several outputs of
    which the model uses one."""
    usage = model._tensor_usage_count
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            ids = list(node.flat_output_ids)
            if not node.is_input and len(ids) > 1 and \
                    sum(usage.get(i, 0) > 0 for i in ids) == 1:
                return True
    return False


def single_outputs(model: Any) -> Any:
    """The tf_keras functional ``model`` rewired (``rerun`` on new inputs like its own), or
    ``model`` itself when no layer call needs it."""
    if not needs_rewiring(model):
        return model
    from ._keras import import_tf_keras

    tf_keras = import_tf_keras()
    inputs = [tf_keras.Input(type_spec=x.type_spec, name=x._keras_history.layer.name)
              for x in model.inputs]
    import tensorflow as tf

    nested = tf.nest.pack_sequence_as(model._nested_inputs, inputs) \
        if tf.nest.is_nested(model._nested_inputs) else inputs[0]
    return tf_keras.Model(nested, rerun(model, inputs), name=model.name)
