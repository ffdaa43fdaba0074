"""The task-switching tf.Module: one backbone call, then each example's own head.

Signatures (every input rank 1 so TF Serving's batcher can concatenate requests):
    serving_default(text: string[b], task_id: int32[b])
    by_name(text: string[b], task: string[b])
    tasks(unused: int32[b])
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ._heads import DenseChainHead, GenericHead, Head

SIGNATURE_IDS = "serving_default"
SIGNATURE_NAMES = "by_name"
SIGNATURE_TASKS = "tasks"
PREDICT_OUTPUTS = ("scores", "num_classes", "labels", "top_label", "top_score")
TASKS_OUTPUTS = ("task_id", "name", "num_classes", "labels", "activation")
_MAX_NAMES_IN_ERRORS = 20


@dataclasses.dataclass
class TaskEntry:
    task_id: int
    name: str
    labels: list[str]
    head: Head

    @property
    def activation(self) -> str:
        return self.head.activation


def keras_state(tf: Any, model: Any) -> tuple[list[Any], list[Any]]:
    """The tf.Variables and lookup-table resources a Keras model's call captures.

    Modules track these rather than the Keras model itself: a tracked Keras model would save
    its own traced call functions too, doubling the graph in saved_model.pb.
    """
    from tensorflow.saved_model.experimental import TrackableResource

    variables = [getattr(w, "value", w) for w in model.weights]
    resources = [t for t in tf.train.TrackableView(model).descendants()
                 if isinstance(t, TrackableResource)]
    return variables, resources


def _activation(tf: Any, name: str, z: Any) -> Any:
    if name == "softmax":
        return tf.nn.softmax(z, axis=-1)
    if name == "linear":
        return z
    functions = {
        "relu": tf.nn.relu, "sigmoid": tf.math.sigmoid, "tanh": tf.math.tanh, "elu": tf.nn.elu,
        "selu": tf.nn.selu, "softplus": tf.math.softplus, "softsign": tf.math.softsign,
        "swish": tf.nn.silu, "silu": tf.nn.silu, "exponential": tf.math.exp,
        "gelu": lambda x: tf.nn.gelu(x, approximate=False),
    }
    return functions[name](z)


def _build_stacked_group(tf: Any, heads: list[DenseChainHead]) -> Any:
    class StackedDenseHeads(tf.Module):
        """Dense-chain heads with the same hidden layers, stacked.

        Hidden layers are stacked as [tasks, in, out]. Output layers, whose widths differ, are
        stored exactly as one row per output column of every task ([sum of widths + 1, in]; the
        last row is zero) and each example gathers its own task's rows. Nothing is padded on
        disk, and the work per example does not depend on the number of tasks.
        """

        subset_only = False  # cheap enough to run on the whole batch

        def __init__(self) -> None:
            super().__init__(name="stacked_heads")
            hidden = len(heads[0].steps) - 1
            self.width = max(h.width for h in heads)
            self.single = len(heads) == 1
            if self.single:  # one task: plain matmuls, nothing to gather per example
                steps = heads[0].steps
                self.kernels = [tf.Variable(s.kernel, trainable=False, name=f"kernel_{i}")
                                for i, s in enumerate(steps)]
                self.biases = [tf.Variable(s.bias, trainable=False, name=f"bias_{i}")
                               for i, s in enumerate(steps)]
                self.activations = [s.activation for s in steps]
                return
            self.kernels = [tf.Variable(np.stack([h.steps[i].kernel for h in heads]),
                                        trainable=False, name=f"hidden_kernel_{i}")
                            for i in range(hidden)]
            self.biases = [tf.Variable(np.stack([h.steps[i].bias for h in heads]),
                                       trainable=False, name=f"hidden_bias_{i}")
                           for i in range(hidden)]
            self.hidden_activations = [s.activation for s in heads[0].steps[:-1]]
            rows = np.concatenate([h.steps[-1].kernel.T for h in heads]
                                  + [np.zeros((1, heads[0].steps[-1].kernel.shape[0]), np.float32)])
            self.output_rows = tf.Variable(rows, trainable=False, name="output_rows")
            self.output_bias = tf.Variable(
                np.concatenate([h.steps[-1].bias for h in heads] + [np.zeros(1, np.float32)]),
                trainable=False, name="output_bias")
            sentinel = rows.shape[0] - 1
            columns = np.full((len(heads), self.width), sentinel, np.int32)
            offset = 0
            for j, head in enumerate(heads):
                columns[j, : head.width] = np.arange(offset, offset + head.width)
                offset += head.width
            self.columns = tf.Variable(columns, trainable=False, name="output_columns")
            finals = [h.activation for h in heads]
            self.final_kinds = sorted(set(finals))
            self.final_kind_of = tf.constant([self.final_kinds.index(a) for a in finals], tf.int32)

        def __call__(self, features: Any, local: Any, valid: Any) -> Any:
            h = features
            if self.single:
                for i, activation in enumerate(self.activations):
                    h = tf.matmul(h, self.kernels[i]) + self.biases[i]
                    h = _final(tf, activation, h, None)
                return h
            for i, activation in enumerate(self.hidden_activations):
                w = tf.gather(self.kernels[i], local)
                h = tf.einsum("bi,bio->bo", h, w) + tf.gather(self.biases[i], local)
                h = _activation(tf, activation, h)
            columns = tf.gather(self.columns, local)
            w = tf.gather(self.output_rows, columns)  # [batch, width, in]
            z = tf.einsum("bi,bki->bk", h, w) + tf.gather(self.output_bias, columns)
            if len(self.final_kinds) == 1:
                return _final(tf, self.final_kinds[0], z, valid)
            kind = tf.gather(self.final_kind_of, local)
            out = z
            for index, name in enumerate(self.final_kinds):
                if name != "linear":
                    out = tf.where(tf.equal(kind, index)[:, None], _final(tf, name, z, valid), out)
            return out

    return StackedDenseHeads()


def _final(tf: Any, name: str, z: Any, valid: Any | None) -> Any:
    """An output activation; softmax ignores the padding columns (``valid`` False)."""
    if name == "softmax":
        if valid is not None:
            z = tf.where(valid, z, tf.constant(-np.inf, z.dtype))
        return tf.nn.softmax(z, axis=-1)
    return _activation(tf, name, z)


def _build_generic_group(tf: Any, heads: list[GenericHead]) -> Any:
    class GenericHeads(tf.Module):
        """Heads of any structure: each task present in the batch runs on its examples."""

        subset_only = True  # run on this group's examples only, not the whole batch

        def __init__(self) -> None:
            super().__init__(name="generic_heads")
            self.width = max(h.width for h in heads)
            models = [h.model for h in heads]
            self._models = lambda: models  # called through a closure, not tracked
            self._variables, self._resources = [], []
            for model in models:
                variables, resources = keras_state(tf, model)
                self._variables += variables
                self._resources += resources
            self._squeeze = [h.squeeze for h in heads]
            self._widths = [h.width for h in heads]

        def _branch(self, index: int, features: Any) -> Any:
            y = tf.cast(self._models()[index](features, training=False), tf.float32)
            if self._squeeze[index]:
                y = y[:, None]
            return tf.pad(y, [[0, 0], [0, self.width - self._widths[index]]])

        def __call__(self, features: Any, local: Any, valid: Any) -> Any:
            present = tf.unique(local).y
            out = tf.zeros([tf.shape(features)[0], self.width], tf.float32)

            def body(i: Any, out: Any) -> Any:
                task = present[i]
                rows = tf.where(tf.equal(local, task))
                subset = tf.gather_nd(features, rows)
                branches = [lambda k=k: self._branch(k, subset) for k in range(len(self._models()))]
                y = tf.switch_case(task, branches)
                return i + 1, tf.tensor_scatter_nd_update(out, rows, y)

            _, out = tf.while_loop(lambda i, _: i < tf.size(present), body, [0, out])
            return out

    return GenericHeads()


def build_module(backbone: Any, tasks: list[TaskEntry]) -> Any:
    """The tf.Module to save: the backbone once, the heads grouped and stacked."""
    from headswitch._quiet import import_tensorflow

    tf = import_tensorflow()
    n = len(tasks)
    width = max(t.head.width for t in tasks)
    names = [t.name for t in tasks]

    # Group heads: one group per stackable shape, one group for everything else.
    keys: list[tuple[Any, ...]] = []
    members: list[list[int]] = []
    for t in tasks:
        key = t.head.shape_key
        if key not in keys:
            keys.append(key)
            members.append([])
        members[keys.index(key)].append(t.task_id)
    order = sorted(range(len(keys)), key=lambda g: -len(members[g]))
    keys = [keys[g] for g in order]
    members = [members[g] for g in order]
    group_of = np.zeros(n, np.int32)
    local_index = np.zeros((len(members), n), np.int32)  # 0 for tasks of other groups
    for g, ids in enumerate(members):
        for j, task_id in enumerate(ids):
            group_of[task_id] = g
            local_index[g, task_id] = j
    valid = np.zeros((n, width), bool)
    for t in tasks:
        valid[t.task_id, : t.head.width] = True

    labels = np.full((n, width), "", dtype=object)
    for t in tasks:
        labels[t.task_id, : len(t.labels)] = t.labels
    shown = ", ".join(names[:_MAX_NAMES_IN_ERRORS]) + (", ..." if n > _MAX_NAMES_IN_ERRORS else "")

    class TaskSwitch(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="headswitch")
            self._backbone_variables, self._backbone_resources = keras_state(tf, backbone)
            self.groups = []
            for key, ids in zip(keys, members):
                heads = [tasks[i].head for i in ids]
                self.groups.append(_build_generic_group(tf, heads) if key == ("generic",)
                                   else _build_stacked_group(tf, heads))
            self.num_tasks = n
            self.width = width
            self._labels = tf.constant(labels.astype(str).tolist(), tf.string)
            self._num_classes = tf.constant([t.head.width for t in tasks], tf.int32)
            self._names = tf.constant(names, tf.string)
            self._activations = tf.constant([t.activation for t in tasks], tf.string)
            self._group_of = tf.constant(group_of)
            self._local_index = [tf.constant(row) for row in local_index]
            self._valid = tf.constant(valid)
            self._name_to_id = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(names, tf.string), tf.range(n, dtype=tf.int32)),
                default_value=-1)

        def _checked(self, text: Any, task: Any, task_input: str, ids: Any, bad: Any,
                     bad_message: str) -> Any:
            """``ids`` once the batch is known to be valid: a handful of cheap ops, since they
            run on every request. ``bad`` marks invalid task values; the message names the first
            one."""
            size, size_task = tf.size(text), tf.size(task)
            first_bad = tf.gather(task, tf.argmax(tf.cast(bad, tf.int32), output_type=tf.int32))
            checks = [
                tf.debugging.Assert(size > 0, ["empty batch: 'text' has no elements"]),
                tf.debugging.Assert(tf.equal(size, size_task), [
                    f"'text' and '{task_input}' must have the same length; got", size,
                    "texts and", size_task, f"{task_input} values"]),
                tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), [bad_message, first_bad]),
            ]
            with tf.control_dependencies(checks):
                return tf.identity(ids)

        def _heads(self, features: Any, task_id: Any, valid: Any) -> Any:
            """Stacked groups (a handful, each as cheap as one head) run on the whole batch; the
            generic group runs only when one of its tasks is present, on its own examples."""
            first = self.groups[0]
            if len(self.groups) == 1:
                return self._pad(first(features, task_id, self._narrow(valid, first.width)))
            group = tf.gather(self._group_of, task_id)
            scores = None
            for g, heads in enumerate(self.groups):
                mine = tf.equal(group, g)
                local = tf.gather(self._local_index[g], task_id)
                if heads.subset_only:
                    def run(heads: Any = heads, mine: Any = mine, local: Any = local) -> Any:
                        rows = tf.where(mine)
                        part = heads(tf.gather_nd(features, rows), tf.gather_nd(local, rows),
                                     self._narrow(tf.gather_nd(valid, rows), heads.width))
                        shape = tf.stack([tf.size(task_id, out_type=tf.int64), self.width])
                        return tf.scatter_nd(rows, self._pad(part), shape)

                    out = tf.cond(tf.reduce_any(mine), run,
                                  lambda: tf.zeros([tf.size(task_id), self.width]))
                else:
                    out = self._pad(heads(features, local, self._narrow(valid, heads.width)))
                scores = out if scores is None else tf.where(mine[:, None], out, scores)
            return scores

        def _narrow(self, valid: Any, width: int) -> Any:
            return valid if width == self.width else valid[:, :width]

        def _pad(self, scores: Any) -> Any:
            group_width = scores.shape[-1]
            if group_width == self.width:
                return scores
            return tf.pad(scores, [[0, 0], [0, self.width - group_width]])

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string),
                                      tf.TensorSpec([None], tf.int32)])
        def _predict(self, text: Any, task_id: Any) -> dict[str, Any]:
            """Shared by both predict signatures, so saved_model.pb holds the graph once."""
            features = backbone(text, training=False)
            valid = tf.gather(self._valid, task_id)
            scores = tf.where(valid, self._heads(features, task_id, valid), 0.0)
            labels = tf.gather(self._labels, task_id)
            top = tf.argmax(tf.where(valid, scores, tf.constant(-np.inf, tf.float32)), axis=1,
                            output_type=tf.int32)
            return {
                "scores": scores,
                "num_classes": tf.gather(self._num_classes, task_id),
                "labels": labels,
                "top_label": tf.gather(labels, top, batch_dims=1),
                "top_score": tf.gather(scores, top, batch_dims=1),
            }

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                      tf.TensorSpec([None], tf.int32, name="task_id")])
        def serving_default(self, text: Any, task_id: Any) -> dict[str, Any]:
            bad = tf.cast(task_id, tf.uint32) >= n  # negative ids wrap around to large values
            message = f"task_id out of range: valid task ids are 0..{n - 1} ({n} tasks); got"
            return self._predict(text, self._checked(text, task_id, "task_id", task_id, bad,
                                                     message))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                      tf.TensorSpec([None], tf.string, name="task")])
        def by_name(self, text: Any, task: Any) -> dict[str, Any]:
            task_id = self._name_to_id.lookup(task)
            message = f"unknown task name (valid names, {n} tasks: {shown}); got"
            return self._predict(text, self._checked(text, task, "task", task_id, task_id < 0,
                                                     message))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="unused")])
        def tasks(self, unused: Any) -> dict[str, Any]:
            rows = tf.size(unused)

            def tile(value: Any) -> Any:
                multiples = tf.concat([[rows], tf.ones([tf.rank(value)], tf.int32)], 0)
                return tf.tile(value[None], multiples)

            return {
                "task_id": tile(tf.range(self.num_tasks, dtype=tf.int32)),
                "name": tile(self._names),
                "num_classes": tile(self._num_classes),
                "labels": tile(self._labels),
                "activation": tile(self._activations),
            }

    return TaskSwitch()


def signatures(module: Any) -> dict[str, Any]:
    return {SIGNATURE_IDS: module.serving_default, SIGNATURE_NAMES: module.by_name,
            SIGNATURE_TASKS: module.tasks}
