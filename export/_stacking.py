"""How heads compute inside the merged graph: per-task weights as tables, Dense-chain heads of one
shape stacked and gathered per example, generic heads run on their own examples.

Every node costs the same few microseconds on every request in TF Serving's C++ session, so the
pieces here are shaped for few nodes (``bench/overhead.py`` counts and times them on that path):

- Rows. Every task id has a row in the per-task tables, and so do "id below 0", "id past the
  last", "unknown name" and removed ids (``Rows``). One ``Bucketize`` maps a task id to its row.
- Stacked heads (``StackedGroup``): an example gathers its task's hidden kernels and, for the
  output layer, its task's rows of the group's output table: output columns are stored exactly,
  one row each (bias as the last input weight, the input ends with a 1), plus padding sentinel
  rows whose logit is -inf (softmax/sigmoid map it to 0) or 0 (linear and the like). Work per
  example does not depend on the number of tasks or of groups.
- A group of one task (``SingleTask``) runs plain matmuls on the whole batch: cheaper than
  routing its examples to it.
- Generic heads (``GenericHeads``): Keras models, each run once on its own examples.
- Weights and tables (``WeightStore``) are constants of one shared function read by every
  signature (stored once); past ``CONSTANT_BYTES`` they become variables (a GraphDef must stay
  under 2 GB).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ._graph import saved_state
from ._heads import DenseChainHead, GenericHead, TaskEntry

# Output activations with f(-inf) == 0 and f >= 0: their padding is free and argmax needs no mask.
ZERO_AT_NEG_INF = ("softmax", "sigmoid", "relu", "softplus", "exponential")
CONSTANT_BYTES = 64 * 2**20


def activation(tf: Any, name: str, z: Any) -> Any:
    if name == "softmax":
        # exp(log_softmax): the same values (within 1e-7), but oneDNN (on by default on recent
        # x86 CPUs) rewrites Softmax to a kernel far slower on small batches (bench/overhead.py
        # times the graph's ops on TF Serving's path).
        return tf.math.exp(tf.nn.log_softmax(z, axis=-1))
    if name == "linear":
        return z
    functions = {
        "relu": tf.nn.relu, "sigmoid": tf.math.sigmoid, "tanh": tf.math.tanh, "elu": tf.nn.elu,
        "selu": tf.nn.selu, "softplus": tf.math.softplus, "softsign": tf.math.softsign,
        "swish": tf.nn.silu, "silu": tf.nn.silu, "exponential": tf.math.exp,
        "gelu": lambda x: tf.nn.gelu(x, approximate=False),
    }
    return functions[name](z)


def with_bias(kernel: npt.NDArray[Any], bias: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """[in + 1, out]: the bias as the last input row, for inputs that end with a 1."""
    joined: npt.NDArray[Any] = np.concatenate([kernel, bias[None]]).astype(np.float32)
    return joined


def rowwise(tf: Any, x: Any, table: Any, rows: Any) -> Any:
    """Each example's ``x`` [b, in] times its own rows of ``table`` [b, k, in] -> [b, k].

    A multiply and a sum (Eigen's elementwise kernels): a batched matmul of b tiny matrices
    costs a kernel launch per example, and more with oneDNN (on by default for recent x86
    CPUs, in the TensorFlow wheel and the tensorflow/serving image alike)."""
    return tf.reduce_sum(x[:, None, :] * tf.gather(table, rows), axis=2)


def append_one(tf: Any, x: Any) -> Any:
    return tf.raw_ops.PadV2(input=x, paddings=[[0, 0], [0, 1]],
                            constant_values=tf.constant(1.0, x.dtype))


@dataclasses.dataclass(frozen=True)
class Rows:
    """The row space of the per-task tables: ids ``0..ids - 1`` at rows ``1..ids``, then the
    sentinels. ``Bucketize`` with boundaries ``0..ids`` maps any int32 id to its row."""

    ids: int

    BELOW = 0  # task_id < 0

    def of(self, task_id: int) -> int:
        return task_id + 1

    @property
    def above(self) -> int:  # task_id >= ids
        return self.ids + 1

    @property
    def unknown_name(self) -> int:
        return self.ids + 2

    @property
    def count(self) -> int:
        return self.ids + 3

    @property
    def boundaries(self) -> list[float]:
        return [float(i) for i in range(self.ids + 1)]


class WeightStore:
    """The module's head weights and tables by name: graph constants of one tf.function per
    section while they are small in total, variables beyond ``CONSTANT_BYTES``. Arrays are
    added to the ``current`` section; the module reads section ``key`` with ``read(key)``
    (the default section is also ``module._weights()``). Each backbone's heads have a section
    of their own, so the branch that runs them holds its constants and captures none."""

    def __init__(self) -> None:
        self.arrays: dict[str, npt.NDArray[Any]] = {}
        self.sections: dict[str, Any] = {}  # array name -> section
        self.current: Any = ""
        self._functions: dict[Any, Any] = {}

    def add(self, name: str, value: Any) -> str:
        name = f"{name}_{len(self.arrays)}"
        self.arrays[name] = np.asarray(value)
        self.sections[name] = self.current
        return name

    def build(self, tf: Any, module: Any) -> None:
        as_variables = sum(a.nbytes for a in self.arrays.values()) > CONSTANT_BYTES
        arrays = dict(self.arrays)
        module._weight_variables = {k: tf.Variable(v.tolist() if v.dtype == object else v,
                                                   trainable=False, name=k)
                                    for k, v in arrays.items()} if as_variables else {}

        def reader(section: Any) -> Any:
            mine = [k for k in arrays if self.sections[k] == section]

            def read() -> dict[str, Any]:
                if as_variables:
                    return {k: module._weight_variables[k].read_value() for k in mine}
                return {k: tf.constant(arrays[k].tolist() if arrays[k].dtype == object
                                       else arrays[k]) for k in mine}

            return tf.function(read, input_signature=[], autograph=False)

        self._functions = {section: reader(section)
                           for section in dict.fromkeys(self.sections.values())}
        default = self._functions.get("") or tf.function(lambda: {}, input_signature=[])
        module._weights = lambda: default()  # not tracked: no object-graph entry of its own

    def read(self, section: Any) -> dict[str, Any]:
        """The arrays of ``section`` (call while tracing)."""
        out: dict[str, Any] = self._functions[section]()
        return out


class StackedGroup:
    """Dense-chain heads of one shape: hidden layers stacked [members, out, in + 1] and gathered
    per example; the output layer stored exactly, one row per output column (``rows`` table).

    The main group (``others`` given) runs on every example, so its table also has a zero row
    for each output column of every other task (they carry that task's labels; the logits are
    replaced later) and a zero row for bad tasks. Every table ends with two padding rows:
    logit -inf (softmax, sigmoid: score 0) and logit 0 (linear and the like).

    ``columns`` [rows, width] holds each row's table rows; ``local`` [rows] its index among
    the members' stacked hidden kernels (0 for non-members: computed, then replaced)."""

    def __init__(self, store: WeightStore, rows: Rows, tasks: list[TaskEntry], width: int,
                 n_in: int, others: list[TaskEntry] | None = None) -> None:
        heads: list[DenseChainHead] = [t.head for t in tasks]  # type: ignore[misc]
        self.members = [rows.of(t.task_id) for t in tasks]
        self.hidden_activations = [s.activation for s in heads[0].steps[:-1]] if heads else []
        self.hidden = [store.add("hidden_kernels",
                                 np.stack([with_bias(h.steps[i].kernel, h.steps[i].bias).T
                                           for h in heads]))
                       for i in range(len(self.hidden_activations))]
        tables = [with_bias(h.steps[-1].kernel, h.steps[-1].bias).T for h in heads]
        n_in = tables[0].shape[1] if tables else n_in
        used = sum(len(t) for t in tables)
        zero_rows = sum(t.head.width for t in others or []) + (1 if others is not None else 0)
        self.first_padding = used + zero_rows
        neg, zero_pad = self.first_padding, self.first_padding + 1
        padding = np.zeros((2, n_in), np.float32)
        padding[0, -1] = -np.inf
        self.output = store.add("output_rows", np.concatenate(
            tables + [np.zeros((zero_rows, n_in), np.float32), padding]))
        self.columns = np.full((rows.count, width), zero_pad, np.int64)
        labels = [""] * (self.first_padding + 2)
        offset = 0
        for task, row in zip(tasks, self.members):
            pad = neg if task.activation in ZERO_AT_NEG_INF else zero_pad
            self.columns[row] = pad
            self.columns[row, : task.head.width] = np.arange(offset, offset + task.head.width)
            labels[offset: offset + task.head.width] = task.labels
            offset += task.head.width
        for other in others or []:
            row = rows.of(other.task_id)
            self.columns[row, : other.head.width] = np.arange(offset, offset + other.head.width)
            labels[offset: offset + other.head.width] = other.labels
            offset += other.head.width
        if others is not None:  # bad tasks: one real zero column, label ""
            served = set(self.members) | {rows.of(o.task_id) for o in others}
            self.columns[[r for r in range(rows.count) if r not in served], 0] = offset
        self.labels = np.array(labels, dtype=object)
        self.local = np.zeros(rows.count, np.int64)
        self.local[self.members] = np.arange(len(self.members))

    def logits(self, tf: Any, w: Mapping[str, Any], x1: Any, columns: Any, local: Any) -> Any:
        """[b, width] logits of examples ``x1`` (features with a 1 appended) whose output-table
        rows are ``columns`` [b, width] and member index ``local`` [b]."""
        h1 = x1
        for kernel, kind in zip(self.hidden, self.hidden_activations):
            h1 = append_one(tf, activation(tf, kind, rowwise(tf, h1, w[kernel], local)))
        return rowwise(tf, h1, w[self.output], columns)


class SingleTask:
    """A group of one task that is not the main group: its Dense chain on the whole batch with
    plain matmuls (a few small ops, cheaper than routing its examples to it), kept for its own
    examples. The output kernel is padded to ``width`` columns with padding logits."""

    def __init__(self, store: WeightStore, task: TaskEntry, width: int) -> None:
        head: DenseChainHead = task.head  # type: ignore[assignment]
        self.hidden = [store.add("kernel", with_bias(s.kernel, s.bias))
                       for s in head.steps[:-1]]
        self.hidden_activations = [s.activation for s in head.steps[:-1]]
        last = head.steps[-1]
        kernel = np.zeros((last.kernel.shape[0] + 1, width), np.float32)
        kernel[:, : head.width] = with_bias(last.kernel, last.bias)
        kernel[-1, head.width:] = -np.inf if task.activation in ZERO_AT_NEG_INF else 0.0
        self.output = store.add("output_kernel", kernel)

    def logits(self, tf: Any, w: Mapping[str, Any], x1: Any) -> Any:
        h1 = x1
        for kernel, kind in zip(self.hidden, self.hidden_activations):
            h1 = append_one(tf, activation(tf, kind, tf.matmul(h1, w[kernel])))
        return tf.matmul(h1, w[self.output])


class GenericHeads:
    """Heads of any structure, run as Keras models on their own examples: each task of the
    group present in the batch runs once on its examples. Outputs are final scores padded
    with 0."""

    def __init__(self, tf: Any, heads: list[GenericHead], task_ids: list[int], rows: Rows,
                 width: int) -> None:
        self._tf = tf
        self.models = [h.model for h in heads]
        self.variables: list[Any] = []
        self.resources: list[Any] = []
        for model in self.models:
            variables, resources = saved_state(model.model)
            self.variables += variables
            self.resources += resources
        self._squeeze = [h.squeeze for h in heads]
        self._widths = [h.width for h in heads]
        self._width = width
        self.local = np.full(rows.count, -1, np.int64)
        self.local[[rows.of(t) for t in task_ids]] = np.arange(len(task_ids))

    def _branch(self, index: int, features: Any) -> Any:
        tf = self._tf
        y = tf.cast(self.models[index](features, training=False), tf.float32)
        if self._squeeze[index]:
            y = y[:, None]
        return tf.pad(y, [[0, 0], [0, self._width - self._widths[index]]])

    def __call__(self, features: Any, local: Any, scores: Any) -> Any:
        """``scores`` with the rows of this group's examples replaced by their heads'.
        ``local``: [b] index of the example's task in the group, -1 if none."""
        tf = self._tf
        mine = local >= 0

        def run() -> Any:
            at = tf.where(mine)
            subset, sub_local = tf.gather_nd(features, at), tf.gather_nd(local, at)
            present = tf.unique(sub_local).y

            def body(i: Any, out: Any) -> Any:
                where = tf.where(tf.equal(sub_local, present[i]))
                branches = [lambda k=k: self._branch(k, tf.gather_nd(subset, where))
                            for k in range(len(self._widths))]
                y = tf.switch_case(tf.cast(present[i], tf.int32), branches)
                return i + 1, tf.tensor_scatter_nd_update(out, where, y)

            part = tf.zeros([tf.size(sub_local), self._width], tf.float32)
            _, part = tf.while_loop(lambda i, _: i < tf.size(present), body, [0, part])
            return tf.tensor_scatter_nd_update(scores, at, part)

        return tf.cond(tf.reduce_any(mine), run, lambda: scores)


