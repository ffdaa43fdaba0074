"""The task-switching tf.Module: one backbone call, then each example's own head.

Signatures (every input rank 1 so TF Serving's batcher can concatenate requests):
    serving_default(text: string[b], task_id: int32[b])
    by_name(text: string[b], task: string[b])
    tasks(unused: int32[b])

Every op of the predict graph runs on every request, so the graph is built to run few of them
(bench/overhead.py counts and times them):

- Head weights and per-task tables are graph constants of one shared function, stored once and
  read by every signature; a captured variable would cost each eager call more than an op does.
  Past ``CONSTANT_BYTES`` they become variables (a GraphDef must stay under 2 GB).
- One gather reads an example's row of the per-task int table (output columns, class count,
  label set, activation); one split hands out its parts.
- Padding columns (a task narrower than the widest head) get the logit -inf for activations that
  map it to 0 (softmax, sigmoid, ...) and 0 for the others (linear, tanh, ...), so ``scores``
  needs no mask and a softmax ignores its padding.
- A stacked group gives -inf logits to the examples of other groups, so groups combine with one
  elementwise maximum; a layer's bias is the last row of its kernel, its input ends with a 1.
- The input checks run beside the backbone; only the head's first read waits for them.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import numpy as np

from headswitch.contract import (
    INPUT_TASK,
    INPUT_TASK_ID,
    INPUT_TEXT,
    INPUT_UNUSED,
    OUTPUT_LABELS,
    OUTPUT_NUM_CLASSES,
    OUTPUT_SCORES,
    OUTPUT_TOP_LABEL,
    OUTPUT_TOP_SCORE,
    SIGNATURE_IDS,
    SIGNATURE_NAMES,
    SIGNATURE_TASKS,
    TASKS_OUTPUT_ACTIVATION,
    TASKS_OUTPUT_LABELS,
    TASKS_OUTPUT_NAME,
    TASKS_OUTPUT_NUM_CLASSES,
    TASKS_OUTPUT_TASK_ID,
)

from ._heads import STACKABLE_ACTIVATIONS, DenseChainHead, GenericHead, Head

_MAX_NAMES_IN_ERRORS = 20
# Output activations with f(-inf) == 0 and f >= 0: their padding is free and argmax needs no mask.
_ZERO_AT_NEG_INF = ("softmax", "sigmoid", "relu", "softplus", "exponential")
CONSTANT_BYTES = 64 * 2**20


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


def _padding_logit(activation: str) -> float:
    return -np.inf if activation in _ZERO_AT_NEG_INF else 0.0


def _with_bias(kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """[in + 1, out]: the bias as the last input row, for inputs that end with a 1."""
    return np.concatenate([kernel, bias[None]]).astype(np.float32)


def _append_one(tf: Any, x: Any) -> Any:
    return tf.raw_ops.PadV2(input=x, paddings=[[0, 0], [0, 1]],
                            constant_values=tf.constant(1.0, x.dtype))


class _Store:
    """The module's head weights and tables by name: graph constants of one shared tf.function
    while they are small in total, variables beyond ``CONSTANT_BYTES``."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def add(self, name: str, value: Any) -> str:
        name = f"{name}_{len(self.arrays)}"
        self.arrays[name] = np.asarray(value)
        return name

    def build(self, tf: Any, module: Any) -> None:
        as_variables = sum(a.nbytes for a in self.arrays.values()) > CONSTANT_BYTES
        arrays = dict(self.arrays)
        module._weight_variables = {k: tf.Variable(v.tolist() if v.dtype == object else v,
                                                   trainable=False, name=k)
                                    for k, v in arrays.items()} if as_variables else {}

        def read() -> dict[str, Any]:
            if as_variables:
                return {k: v.read_value() for k, v in module._weight_variables.items()}
            return {k: tf.constant(v.tolist() if v.dtype == object else v)
                    for k, v in arrays.items()}

        weights = tf.function(read, input_signature=[], autograph=False)
        module._weights = lambda: weights()  # not tracked: no object-graph entry of its own


class _StackedGroup:
    """Dense-chain heads with the same hidden layers: logits [batch, width] for every example.

    One task: plain matmuls on the whole batch, the output kernel padded to ``width`` columns;
    the module keeps the rows of its task's examples. Several tasks: hidden kernels are stacked
    as [tasks, in + 1, out] and gathered per example; output layers, whose widths differ, are
    stored exactly as one row per output column ([sum of widths + 2, in + 1]; the last two rows
    are the padding sentinels, logit -inf and logit 0) and each example gathers its own task's
    rows through its ``columns`` in the per-task table; examples of other tasks get -inf. Nothing
    is padded on disk for several tasks, and the work per example does not depend on their number.
    """

    def __init__(self, store: _Store, index: int, heads: list[DenseChainHead],
                 task_ids: list[int], num_tasks: int, width: int) -> None:
        self.index = index
        self.single = len(heads) == 1
        self.hidden_activations = [s.activation for s in heads[0].steps[:-1]]
        # This group's columns of the per-task table: name -> [tasks, k] int32.
        self.columns: dict[str, np.ndarray] = {}
        if self.single:
            head = heads[0]
            self.hidden_kernels = [store.add("kernel", _with_bias(s.kernel, s.bias))
                                   for s in head.steps[:-1]]
            last = head.steps[-1]
            kernel = np.zeros((last.kernel.shape[0] + 1, width), np.float32)
            kernel[:, : head.width] = _with_bias(last.kernel, last.bias)
            kernel[-1, head.width:] = _padding_logit(head.activation)
            self.output = store.add("output_kernel", kernel)
            return
        self.hidden_kernels = [
            store.add("hidden_kernels", np.stack([_with_bias(h.steps[i].kernel, h.steps[i].bias)
                                                  for h in heads]))
            for i in range(len(self.hidden_activations))]
        rows = [_with_bias(h.steps[-1].kernel, h.steps[-1].bias).T for h in heads]
        n_in = rows[0].shape[1]
        sentinel_neg = np.zeros((1, n_in), np.float32)
        sentinel_neg[0, -1] = -np.inf
        rows_all = np.concatenate(rows + [sentinel_neg, np.zeros((1, n_in), np.float32)])
        neg, zero = len(rows_all) - 2, len(rows_all) - 1
        self.output = store.add("output_rows", rows_all)
        columns = np.full((num_tasks, width), neg, np.int32)
        offset = 0
        for head, task in zip(heads, task_ids):
            columns[task, head.width:] = neg if head.activation in _ZERO_AT_NEG_INF else zero
            columns[task, : head.width] = np.arange(offset, offset + head.width)
            offset += head.width
        self.columns[f"columns_{index}"] = columns
        if self.hidden_kernels:  # the example's row in the stacked hidden kernels
            local = np.zeros((num_tasks, 1), np.int32)
            local[task_ids, 0] = np.arange(len(task_ids))
            self.columns[f"local_{index}"] = local

    def __call__(self, tf: Any, w: dict[str, Any], features1: Any,
                 row: dict[str, Any]) -> Any:
        """``features1``: the features with a 1 appended; ``row``: the examples' per-task table
        rows, split by column name."""
        h1 = features1
        if self.single:
            for kernel, activation in zip(self.hidden_kernels, self.hidden_activations):
                h1 = _append_one(tf, _activation(tf, activation, tf.matmul(h1, w[kernel])))
            return tf.matmul(h1, w[self.output])
        for kernel, activation in zip(self.hidden_kernels, self.hidden_activations):
            kernels = tf.gather(w[kernel], row[f"local_{self.index}"])  # [b, 1, in + 1, out]
            h1 = _append_one(tf, _activation(tf, activation, tf.einsum("bi,bjio->bo", h1, kernels)))
        return tf.einsum("bi,bki->bk", h1, tf.gather(w[self.output], row[f"columns_{self.index}"]))


def _build_generic_group(tf: Any, heads: list[GenericHead], task_ids: list[int],
                         num_tasks: int, width: int) -> Any:
    class GenericHeads(tf.Module):
        """Heads of any structure, run after the stacked ones: each task of the group present
        in the batch runs on its own examples. Outputs are final scores padded with 0."""

        def __init__(self) -> None:
            super().__init__(name="generic_heads")
            models = [h.model for h in heads]
            self._models = lambda: models  # called through a closure, not tracked
            self._variables, self._resources = [], []
            for model in models:
                variables, resources = keras_state(tf, model)
                self._variables += variables
                self._resources += resources
            self._squeeze = [h.squeeze for h in heads]
            self._widths = [h.width for h in heads]
            local = np.full((num_tasks, 1), -1, np.int32)
            local[task_ids, 0] = np.arange(len(task_ids))
            self.columns = {"generic": local}

        def _branch(self, index: int, features: Any) -> Any:
            y = tf.cast(self._models()[index](features, training=False), tf.float32)
            if self._squeeze[index]:
                y = y[:, None]
            return tf.pad(y, [[0, 0], [0, width - self._widths[index]]])

        def __call__(self, features: Any, local: Any, scores: Any) -> Any:
            """``scores`` with the rows of this group's examples replaced by their heads'.
            ``local``: [b, 1] index of the example's task in the group, -1 if none."""
            local = local[:, 0]
            mine = local >= 0

            def run() -> Any:
                rows = tf.where(mine)
                subset, sub_local = tf.gather_nd(features, rows), tf.gather_nd(local, rows)
                present = tf.unique(sub_local).y

                def body(i: Any, out: Any) -> Any:
                    at = tf.where(tf.equal(sub_local, present[i]))
                    branches = [lambda k=k: self._branch(k, tf.gather_nd(subset, at))
                                for k in range(len(self._widths))]
                    y = tf.switch_case(present[i], branches)
                    return i + 1, tf.tensor_scatter_nd_update(out, at, y)

                part = tf.zeros([tf.size(sub_local), width], tf.float32)
                _, part = tf.while_loop(lambda i, _: i < tf.size(present), body, [0, part])
                return tf.tensor_scatter_nd_update(scores, rows, part)

            return tf.cond(tf.reduce_any(mine), run, lambda: scores)

    return GenericHeads()


def _label_sets(tasks: list[TaskEntry], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct label lists [sets, width] ("" padded) and each task's set index [tasks]."""
    distinct: dict[tuple[str, ...], int] = {}
    set_of = np.zeros(len(tasks), np.int32)
    for t in tasks:
        set_of[t.task_id] = distinct.setdefault(tuple(t.labels), len(distinct))
    sets = np.full((len(distinct), width), "", dtype=object)
    for labels, index in distinct.items():
        sets[index, : len(labels)] = labels
    return sets.astype(str), set_of


def build_module(backbone: Any, tasks: list[TaskEntry]) -> Any:
    """The tf.Module to save: the backbone once, the heads grouped and stacked."""
    from headswitch._quiet import import_tensorflow

    tf = import_tensorflow()
    n = len(tasks)
    width = max(t.head.width for t in tasks)
    names = [t.name for t in tasks]
    shown = ", ".join(names[:_MAX_NAMES_IN_ERRORS]) + (", ..." if n > _MAX_NAMES_IN_ERRORS else "")

    # One group per stackable head shape, one group for everything else. Groups of several
    # tasks (largest first) combine by maximum; one-task groups then overwrite their rows.
    members: dict[tuple[Any, ...], list[int]] = {}
    for t in tasks:
        members.setdefault(t.head.shape_key, []).append(t.task_id)
    generic_ids = members.pop(("generic",), [])
    stacked_ids = sorted(members.values(), key=lambda ids: (len(ids) == 1, -len(ids)))
    store = _Store()
    groups = [_StackedGroup(store, g, [tasks[i].head for i in ids], ids, n, width)
              for g, ids in enumerate(stacked_ids)]
    group_of = np.zeros((n, 1), np.int32)
    for g, ids in enumerate(stacked_ids):
        group_of[ids, 0] = g

    # Output activations: the commonest stacked one on every row, the others selected by kind.
    kinds = [k for k, _ in Counter(tasks[i].activation for ids in stacked_ids for i in ids)
             .most_common()]
    kinds += sorted({t.activation for t in tasks} - set(kinds))  # generic heads' own
    masked_top = bool(generic_ids) or any(k not in _ZERO_AT_NEG_INF for k in kinds)
    label_sets, set_of = _label_sets(tasks, width)

    # The per-task int32 table: one gather per request reads an example's row, one split
    # hands out its parts by name.
    columns: dict[str, np.ndarray] = {}
    for group in groups:
        columns.update(group.columns)
    if len(groups) > 1 and groups[-1].single:
        columns["group"] = group_of
    columns["num_classes"] = np.array([[t.head.width] for t in tasks], np.int32)
    columns["label_set"] = set_of[:, None]
    columns["kind"] = np.array([[kinds.index(t.activation)] for t in tasks], np.int32)

    class TaskSwitch(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="headswitch")
            self._backbone_variables, self._backbone_resources = keras_state(tf, backbone)
            self.generic = None
            if generic_ids:
                self.generic = _build_generic_group(tf, [tasks[i].head for i in generic_ids],
                                                    generic_ids, n, width)
                columns.update(self.generic.columns)
            self._column_names = list(columns)
            self._column_sizes = [c.shape[1] for c in columns.values()]
            self._num_classes_at = sum(self._column_sizes[: self._column_names.index(
                "num_classes")])
            table = np.concatenate(list(columns.values()), axis=1)
            # int16 halves the table; one cast after the gather costs less than its bytes do.
            narrow = table.min() >= -(2**15) and table.max() < 2**15
            self._table = store.add("per_task", table.astype(np.int16 if narrow else np.int32))
            self._labels = store.add("label_sets", label_sets)
            store.build(tf, self)
            self._name_to_id = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(names, tf.string), tf.range(n, dtype=tf.int32)),
                default_value=-1)

        def _checked(self, text: Any, task: Any, task_input: str) -> list[Any]:
            """Asserts that the batch is not empty and ``text`` and ``task`` are as long."""
            size, size_task = tf.size(text), tf.size(task)
            return [
                tf.debugging.Assert(size > 0, [f"empty batch: '{INPUT_TEXT}' has no elements"]),
                tf.debugging.Assert(tf.equal(size, size_task), [
                    f"'{INPUT_TEXT}' and '{task_input}' must have the same length; got", size,
                    "texts and", size_task]),
            ]

        def _predict(self, features: Any, task_id: Any, checks: list[Any]) -> dict[str, Any]:
            w = self._weights()
            with tf.control_dependencies(checks):
                row = tf.cast(tf.gather(w[self._table], task_id), tf.int32)
            row = dict(zip(self._column_names, tf.split(row, self._column_sizes, axis=1)))
            features1 = _append_one(tf, features)
            z = None
            for group in groups:
                part = group(tf, w, features1, row)
                if z is None:
                    z = part
                elif group.single:
                    z = tf.where(tf.equal(row["group"], group.index), part, z)
                else:
                    z = tf.maximum(z, part)
            if z is None:  # generic heads only
                scores = tf.zeros([tf.size(task_id), width])
            else:
                scores = _activation(tf, kinds[0], z)
                for index, kind in enumerate(kinds[1:], 1):
                    if kind in STACKABLE_ACTIVATIONS:  # not a generic head's own
                        scores = tf.where(tf.equal(row["kind"], index),
                                          _activation(tf, kind, z), scores)
            if self.generic is not None:
                scores = self.generic(features, row["generic"], scores)
            ranked = scores
            if masked_top:
                ranked = tf.where(tf.range(width)[None] < row["num_classes"], scores,
                                  tf.constant(-np.inf, tf.float32))
            top = tf.argmax(ranked, axis=1, output_type=tf.int32)
            label_set = row["label_set"]
            return {
                OUTPUT_SCORES: scores,
                OUTPUT_NUM_CLASSES: tf.squeeze(row["num_classes"], 1),
                OUTPUT_LABELS: tf.gather_nd(w[self._labels], label_set),
                OUTPUT_TOP_LABEL: tf.gather_nd(w[self._labels],
                                               tf.concat([label_set, top[:, None]], 1)),
                OUTPUT_TOP_SCORE: tf.reduce_max(ranked, axis=1),
            }

        @tf.function(autograph=False, input_signature=[
            tf.TensorSpec([None], tf.string, name=INPUT_TEXT),
            tf.TensorSpec([None], tf.int32, name=INPUT_TASK_ID)])
        def serving_default(self, text: Any, task_id: Any) -> dict[str, Any]:
            features = backbone(text, training=False)
            # Negative ids wrap around to large unsigned values: one comparison checks both ends,
            # and the largest unsigned value is a bad id whenever there is one.
            largest = tf.reduce_max(tf.bitcast(task_id, tf.uint32))
            in_range = tf.debugging.Assert(largest < n, [
                f"task_id out of range: valid task ids are 0..{n - 1} ({n} tasks); got",
                tf.bitcast(largest, tf.int32)])
            checks = self._checked(text, task_id, INPUT_TASK_ID) + [in_range]
            return self._predict(features, task_id, checks)

        @tf.function(autograph=False, input_signature=[
            tf.TensorSpec([None], tf.string, name=INPUT_TEXT),
            tf.TensorSpec([None], tf.string, name=INPUT_TASK)])
        def by_name(self, text: Any, task: Any) -> dict[str, Any]:
            task_id = self._name_to_id.lookup(task)
            checks = self._checked(text, task, INPUT_TASK)
            with tf.control_dependencies(checks):  # argmin needs a non-empty batch
                unknown = tf.gather(task, tf.argmin(task_id, output_type=tf.int32))
            known = tf.debugging.Assert(tf.reduce_min(task_id) >= 0, [
                f"unknown task name (valid names, {n} tasks: {shown}); got", unknown])
            with tf.control_dependencies(checks + [known]):
                task_id = tf.identity(task_id)
            # serving_default's graph, called rather than traced again: stored once.
            return self.serving_default(text, task_id)

        @tf.function(autograph=False, input_signature=[
            tf.TensorSpec([None], tf.int32, name=INPUT_UNUSED)])
        def tasks(self, unused: Any) -> dict[str, Any]:
            w = self._weights()
            at = self._num_classes_at  # then label_set, then kind
            table = tf.cast(w[self._table], tf.int32)
            # Names in id order from the name -> id table, so that they are stored once.
            keys, ids = self._name_to_id.export()
            rows = tf.size(unused)

            def tile(value: Any) -> Any:
                multiples = tf.concat([[rows], tf.ones([tf.rank(value)], tf.int32)], 0)
                return tf.tile(value[None], multiples)

            return {
                TASKS_OUTPUT_TASK_ID: tile(tf.range(n, dtype=tf.int32)),
                TASKS_OUTPUT_NAME: tile(tf.scatter_nd(ids[:, None], keys, [n])),
                TASKS_OUTPUT_NUM_CLASSES: tile(table[:, at]),
                TASKS_OUTPUT_LABELS: tile(tf.gather(w[self._labels], table[:, at + 1])),
                TASKS_OUTPUT_ACTIVATION: tile(tf.gather(kinds, table[:, at + 2])),
            }

    return TaskSwitch()


def signatures(module: Any) -> dict[str, Any]:
    return {SIGNATURE_IDS: module.serving_default, SIGNATURE_NAMES: module.by_name,
            SIGNATURE_TASKS: module.tasks}
