"""The build stage: the task-switching tf.Module, one backbone call and each example's own head.

Signatures (every input rank 1, so TF Serving's batcher can concatenate requests):
    serving_default(text: string[b], task_id: int32[b])  -> PREDICT_OUTPUTS
    by_name(text: string[b], task: string[b])            -> PREDICT_OUTPUTS
    tasks(unused: int32[b])                              -> TASKS_OUTPUTS
(names from ``headswitch.contract``)

TF Serving runs the graph in a C++ session, where every node costs the same few microseconds on
every request whatever its size, so the graph is shaped for few nodes (bench/overhead.py counts
and times them on that path):

- Rows. Every task id has a row in the per-task tables, and so do "id below 0", "id past the
  last", "unknown name" and removed ids, each with its error message. One ``Bucketize`` maps a
  task id to its row (out-of-range ids land on the two sentinel rows); a hash table maps names.
- Errors stay with their example. A bad task gives its example an ``error`` message, zero scores
  and an empty ``top_label`` instead of failing the run, so under TF Serving's batcher (which
  merges concurrent requests into one run) one client's bad id never fails another client's
  request; a request of bad tasks only, or an empty one, is answered the same way. Only ``text``
  and task inputs of different lengths fail the request (INVALID_ARGUMENT): the batcher refuses
  those before merging, so that failure is the request's own.
- Heads. Dense-chain heads of one shape form a group; the largest group runs on the whole batch
  (no routing ops at all when it is the only one), each other group on its own examples only
  (gathered, computed, scattered back), except a group of one task, whose plain matmuls on the
  whole batch cost less than routing. An example gathers its task's hidden kernels and, for the
  output layer, its task's rows of the group's output table: output columns are stored exactly,
  one row each (bias as the last input weight, the input ends with a 1), plus padding sentinel
  rows whose logit is -inf (softmax/sigmoid map it to 0) or 0 (linear and the like). Work per
  example does not depend on the number of tasks or of groups.
- Output activations: the commonest one on every row, each other kind selected per example.
- Static per-task facts (class count, label names, activation) are not predict outputs: they
  cost graph work, reply bytes and serialization on every request, and the ``tasks`` signature
  serves them once.
- Head weights and tables are constants of one shared function read by every signature (stored
  once); past ``CONSTANT_BYTES`` they become variables (a GraphDef must stay under 2 GB).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from headswitch import contract as c

from ._heads import DenseChainHead, GenericHead, Head
from ._keras import KerasModel

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
    """The tf.Variables, lookup-table resources and asset files a Keras model's call captures
    (Keras 3 or tf_keras; a hub module's or a revived SavedModel's variables included).

    Modules track these rather than the Keras model itself: a tracked Keras model would save
    its own traced call functions too, doubling the graph in saved_model.pb.
    """
    from ._graph import saved_state

    return saved_state(model)


def _activation(tf: Any, name: str, z: Any) -> Any:
    if name == "softmax":
        # exp(log_softmax): the same values (within 1e-7), but oneDNN (on by default on recent
        # x86 CPUs) rewrites Softmax to a kernel that takes 70-90 us on a [64, 5] batch.
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


def _with_bias(kernel: npt.NDArray[Any], bias: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """[in + 1, out]: the bias as the last input row, for inputs that end with a 1."""
    joined: npt.NDArray[Any] = np.concatenate([kernel, bias[None]]).astype(np.float32)
    return joined


def _rowwise(tf: Any, x: Any, table: Any, rows: Any) -> Any:
    """Each example's ``x`` [b, in] times its own rows of ``table`` [b, k, in] -> [b, k].

    A multiply and a sum (Eigen's elementwise kernels): a batched matmul of b tiny matrices
    costs a kernel launch per example, and with oneDNN (on by default for recent x86 CPUs, in
    the TensorFlow wheel and the tensorflow/serving image alike) 100+ us at batch 64."""
    return tf.reduce_sum(x[:, None, :] * tf.gather(table, rows), axis=2)


def _same_length(tf: Any, text: Any, task: Any, task_input: str) -> Any:
    """An Assert that ``text`` and the task input hold as many values. TF Serving's batcher
    refuses such a request before merging it, so this fails a request alone."""
    size, size_task = tf.size(text), tf.size(task)
    return tf.debugging.Assert(tf.equal(size, size_task), [
        f"{c.INPUT_TEXT} and {task_input} must have the same length; got", size,
        "texts and", size_task])


def _append_one(tf: Any, x: Any) -> Any:
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


class _Store:
    """The module's head weights and tables by name: graph constants of one shared tf.function
    while they are small in total, variables beyond ``CONSTANT_BYTES``."""

    def __init__(self) -> None:
        self.arrays: dict[str, npt.NDArray[Any]] = {}

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
    """Dense-chain heads of one shape: hidden layers stacked [members, out, in + 1] and gathered
    per example; the output layer stored exactly, one row per output column (``rows`` table).

    The main group (``others`` given) runs on every example, so its table also has a zero row
    for each output column of every other task (they carry that task's labels; the logits are
    replaced later) and a zero row for bad tasks. Every table ends with two padding rows:
    logit -inf (softmax, sigmoid: score 0) and logit 0 (linear and the like).

    ``columns`` [rows, width] holds each row's table rows; ``local`` [rows] its index among
    the members' stacked hidden kernels (0 for non-members: computed, then replaced)."""

    def __init__(self, store: _Store, rows: Rows, tasks: list[TaskEntry], width: int,
                 n_in: int, others: list[TaskEntry] | None = None) -> None:
        heads: list[DenseChainHead] = [t.head for t in tasks]  # type: ignore[misc]
        self.members = [rows.of(t.task_id) for t in tasks]
        self.hidden_activations = [s.activation for s in heads[0].steps[:-1]] if heads else []
        self.hidden = [store.add("hidden_kernels",
                                 np.stack([_with_bias(h.steps[i].kernel, h.steps[i].bias).T
                                           for h in heads]))
                       for i in range(len(self.hidden_activations))]
        tables = [_with_bias(h.steps[-1].kernel, h.steps[-1].bias).T for h in heads]
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
            pad = neg if task.activation in _ZERO_AT_NEG_INF else zero_pad
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
        for kernel, activation in zip(self.hidden, self.hidden_activations):
            h1 = _append_one(tf, _activation(tf, activation, _rowwise(tf, h1, w[kernel], local)))
        return _rowwise(tf, h1, w[self.output], columns)


class _SingleTask:
    """A group of one task that is not the main group: its Dense chain on the whole batch with
    plain matmuls (a few small ops, cheaper than routing its examples to it), kept for its own
    examples. The output kernel is padded to ``width`` columns with padding logits."""

    def __init__(self, store: _Store, task: TaskEntry, width: int) -> None:
        head: DenseChainHead = task.head  # type: ignore[assignment]
        self.hidden = [store.add("kernel", _with_bias(s.kernel, s.bias))
                       for s in head.steps[:-1]]
        self.hidden_activations = [s.activation for s in head.steps[:-1]]
        last = head.steps[-1]
        kernel = np.zeros((last.kernel.shape[0] + 1, width), np.float32)
        kernel[:, : head.width] = _with_bias(last.kernel, last.bias)
        kernel[-1, head.width:] = -np.inf if task.activation in _ZERO_AT_NEG_INF else 0.0
        self.output = store.add("output_kernel", kernel)

    def logits(self, tf: Any, w: Mapping[str, Any], x1: Any) -> Any:
        h1 = x1
        for kernel, activation in zip(self.hidden, self.hidden_activations):
            h1 = _append_one(tf, _activation(tf, activation, tf.matmul(h1, w[kernel])))
        return tf.matmul(h1, w[self.output])


class _GenericHeads:
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
            variables, resources = keras_state(tf, model.model)
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


def _shown(names: list[str]) -> str:
    return ", ".join(names[:_MAX_NAMES_IN_ERRORS]) + (
        ", ..." if len(names) > _MAX_NAMES_IN_ERRORS else "")


FEATURES = "features"
"""The module's backbone function (text string[b] -> features), saved with the module but not a
signature: TF Serving does not serve it; ``tf.saved_model.load(version).features(texts)`` runs
it, and a later version built ``--from`` this one reuses it."""


@dataclasses.dataclass(frozen=True)
class SavedBackbone:
    """A backbone read back from a saved version: its ``features`` function as
    ``tf.saved_model.load`` restored it, the variables and resources that function reads, and
    its output width. A module built on it saves the same function again, so a chain of
    versions never nests backbone calls."""

    features: Any
    width: int
    variables: list[Any]
    resources: list[Any]


def _features_function(tf: Any, backbone: Any) -> tuple[Any, int, list[Any], list[Any]]:
    """(features function, output width, variables, resources) of a Keras backbone or a
    SavedBackbone."""
    if isinstance(backbone, SavedBackbone):
        return (backbone.features, backbone.width, list(backbone.variables),
                list(backbone.resources))
    model = backbone.model if isinstance(backbone, KerasModel) else backbone
    features = tf.function(lambda text: model(text, training=False), autograph=False,
                           input_signature=[tf.TensorSpec([None], tf.string, name=c.INPUT_TEXT)])
    variables, resources = keras_state(tf, model)
    return features, int(model.outputs[0].shape[-1]), variables, resources


def build_module(backbone: Any, tasks: list[TaskEntry],
                 removed: Mapping[int, tuple[str, str]] | None = None) -> Any:
    """The tf.Module to save: the backbone once, the heads grouped and stacked.

    ``backbone``: a Keras model taking text string[b], or a ``SavedBackbone``. Either way the
    module's ``features`` function runs it (``FEATURES``).
    ``removed`` maps ids of retired tasks to (name, message): their ids and names answer with
    that message and are never given to another task (a retired name may be a live task's
    again: it then names that task).
    """
    from headswitch._quiet import import_tensorflow

    tf: Any = import_tensorflow()
    features_fn, features_width, backbone_variables, backbone_resources = \
        _features_function(tf, backbone)
    retired = dict(removed or {})
    rows = Rows(max([t.task_id for t in tasks] + list(retired)) + 1)
    width = max(t.head.width for t in tasks)
    names = [t.name for t in tasks]
    task_rows = [rows.of(t.task_id) for t in tasks]

    errors = np.full(rows.count, "", dtype=object)
    errors[[rows.BELOW, rows.above]] = (f"task_id out of range: valid task ids are "
                                        f"0..{rows.ids - 1} ({len(tasks)} tasks)")
    errors[rows.unknown_name] = (f"unknown task name (valid names, {len(tasks)} tasks: "
                                 f"{_shown(names)})")
    for task_id, (_, message) in retired.items():
        errors[rows.of(task_id)] = message
    valid = np.zeros((rows.count, 1), bool)
    valid[task_rows] = True

    # Stacked groups by head shape, largest first: the main group runs on every example, each
    # other group on its own examples.
    shapes: dict[tuple[Any, ...], list[TaskEntry]] = {}
    for t in tasks:
        shapes.setdefault(t.head.shape_key, []).append(t)
    generic_tasks = shapes.pop(("generic",), [])
    stacked = sorted(shapes.values(), key=lambda group: -len(group))
    store = _Store()
    n_in = features_width + 1
    main = _StackedGroup(store, rows, stacked[0] if stacked else [], width, n_in,
                         others=[t for group in stacked[1:] for t in group] + generic_tasks)
    groups: list[_StackedGroup | _SingleTask] = [main]
    groups += [_SingleTask(store, group[0], width) if len(group) == 1
               else _StackedGroup(store, rows, group, width, n_in) for group in stacked[1:]]
    group_of = np.full(rows.count, -1, np.int64)
    for g, members in enumerate(stacked):
        group_of[[rows.of(t.task_id) for t in members]] = g

    # Output activations: the commonest on every row, each other kind selected per example.
    # Rows without a stacked head (bad tasks, generic heads) have zero logits: "linear" when
    # there are several kinds; with one kind, bad tasks' scores are zeroed by validity.
    kinds = [k for k, _ in Counter(t.activation for group in stacked for t in group)
             .most_common()] or ["linear"]
    if len(kinds) > 1 and "linear" not in kinds:
        kinds.append("linear")
    kind_of = np.full(rows.count, kinds.index("linear") if "linear" in kinds else 0, np.int64)
    for group in stacked:
        kind_of[[rows.of(t.task_id) for t in group]] = [kinds.index(t.activation)
                                                        for t in group]
    zero_invalid = len(kinds) == 1 and kinds[0] != "linear"
    masked_top = bool(generic_tasks) or any(k not in _ZERO_AT_NEG_INF for k in kinds)

    # One int table, one gather per request, split into named parts: the main group's output
    # rows, and what the other parts need.
    parts: dict[str, npt.NDArray[Any]] = {"columns": main.columns}
    if main.hidden:
        parts["local"] = main.local[:, None]
    if len(kinds) > 1:
        parts["kind"] = kind_of[:, None]
    if len(groups) > 1:
        parts["group"] = group_of[:, None]
    for g, other in enumerate(groups[1:], 1):
        if isinstance(other, _StackedGroup):
            parts[f"columns_{g}"] = other.columns
            if other.hidden:
                parts[f"local_{g}"] = other.local[:, None]
    generic = _GenericHeads(tf, [t.head for t in generic_tasks],  # type: ignore[misc]
                            [t.task_id for t in generic_tasks], rows, width) \
        if generic_tasks else None
    if generic is not None:
        parts["generic"] = generic.local[:, None]
    table = np.concatenate(list(parts.values()), 1).astype(np.int32)
    sizes = [p.shape[1] for p in parts.values()]

    class TaskSwitch(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="headswitch")
            self._backbone_variables = backbone_variables
            self._backbone_resources = backbone_resources
            self.features = features_fn  # FEATURES
            if generic is not None:
                self._generic_variables = generic.variables
                self._generic_resources = generic.resources
            self._table = store.add("per_task", table)
            self._labels = store.add("labels", main.labels.astype(str))
            self._errors = store.add("errors", errors.astype(str))
            self._valid = store.add("valid", valid) if zero_invalid else ""
            store.build(tf, self)
            # A retired name a live task took again is that task's; a name retired twice
            # answers with its latest id's message.
            live = set(names)
            by_name = {name: i for i, (name, _) in sorted(retired.items()) if name not in live}
            keys = names + list(by_name)
            values = task_rows + [rows.of(i) for i in by_name.values()]
            self._name_to_row = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(keys, tf.string), tf.constant(values, tf.int32)),
                default_value=rows.unknown_name)

        def _parts(self, w: Mapping[str, Any], row: Any) -> dict[str, Any]:
            gathered = tf.gather(w[self._table], row)
            if len(parts) == 1:
                return {"columns": gathered}
            return dict(zip(parts, tf.split(gathered, sizes, axis=1)))

        @tf.function(autograph=False, input_signature=[
            tf.TensorSpec([None], tf.string, name=c.INPUT_TEXT),
            tf.TensorSpec([None], tf.int32, name="row")])
        def _predict(self, text: Any, row: Any) -> dict[str, Any]:
            w = self._weights()
            features = self.features(text)
            part = self._parts(w, row)
            columns = part["columns"]
            # Stacked heads compute in float32 (DenseChainHead.compute_dtype): float16/bfloat16
            # features of a mixed-precision backbone are cast, exactly, as a float32 Dense
            # layer casts its input. A no-op for float32 features.
            x1 = _append_one(tf, tf.cast(features, tf.float32))
            z = main.logits(tf, w, x1, columns, part["local"][:, 0] if main.hidden else None)
            for g, group in enumerate(groups[1:], 1):
                if isinstance(group, _SingleTask):
                    z = tf.where(tf.equal(part["group"], g), group.logits(tf, w, x1), z)
                    continue
                at = tf.where(tf.equal(part["group"][:, 0], g))
                z = tf.tensor_scatter_nd_update(z, at, group.logits(
                    tf, w, tf.gather_nd(x1, at), tf.gather_nd(part[f"columns_{g}"], at),
                    tf.gather_nd(part[f"local_{g}"][:, 0], at) if group.hidden else None))
            scores = _activation(tf, kinds[0], z)
            for index, kind in enumerate(kinds[1:], 1):
                scores = tf.where(tf.equal(part["kind"], index), _activation(tf, kind, z),
                                  scores)
            if zero_invalid:
                scores = tf.where(tf.gather(w[self._valid], row), scores, 0.0)
            if generic is not None:
                scores = generic(features, part["generic"][:, 0], scores)
            ranked = scores
            if masked_top:
                ranked = tf.where(columns >= main.first_padding, tf.constant(-np.inf), scores)
            top = tf.argmax(ranked, axis=1, output_type=tf.int32)
            return {
                c.OUTPUT_SCORES: scores,
                c.OUTPUT_TOP_LABEL: tf.gather(w[self._labels],
                                            tf.gather(columns, top, batch_dims=1)),
                c.OUTPUT_TOP_SCORE: tf.reduce_max(ranked, axis=1),
                c.OUTPUT_ERROR: tf.gather(w[self._errors], row),
            }

        @tf.function(autograph=False, input_signature=[
            tf.TensorSpec([None], tf.string, name=c.INPUT_TEXT),
            tf.TensorSpec([None], tf.int32, name=c.INPUT_TASK_ID)])
        def serving_default(self, text: Any, task_id: Any) -> dict[str, Any]:
            with tf.control_dependencies([_same_length(tf, text, task_id, c.INPUT_TASK_ID)]):
                row = tf.raw_ops.Bucketize(input=task_id, boundaries=rows.boundaries)
            outputs: dict[str, Any] = self._predict(text, row)
            return outputs

        @tf.function(autograph=False, input_signature=[
            tf.TensorSpec([None], tf.string, name=c.INPUT_TEXT),
            tf.TensorSpec([None], tf.string, name=c.INPUT_TASK)])
        def by_name(self, text: Any, task: Any) -> dict[str, Any]:
            with tf.control_dependencies([_same_length(tf, text, task, c.INPUT_TASK)]):
                row = self._name_to_row.lookup(task)
            outputs: dict[str, Any] = self._predict(text, row)
            return outputs

        @tf.function(autograph=False, input_signature=[
            tf.TensorSpec([None], tf.int32, name=c.INPUT_UNUSED)])
        def tasks(self, unused: Any) -> dict[str, Any]:
            w = self._weights()
            label_rows = tf.gather(w[self._table], task_rows)[:, :width]
            count = tf.size(unused)

            def tile(value: Any) -> Any:
                multiples = tf.concat([[count], tf.ones([tf.rank(value)], tf.int32)], 0)
                return tf.tile(value[None], multiples)

            real = tf.constant(np.arange(width)[None, :] <
                               np.array([t.head.width for t in tasks])[:, None])
            return {
                c.TASKS_OUTPUT_TASK_ID: tile(tf.constant([t.task_id for t in tasks], tf.int32)),
                c.TASKS_OUTPUT_NAME: tile(tf.constant(names)),
                c.TASKS_OUTPUT_NUM_CLASSES: tile(tf.constant([t.head.width for t in tasks],
                                                           tf.int32)),
                c.TASKS_OUTPUT_LABELS: tile(tf.where(real, tf.gather(w[self._labels], label_rows),
                                                   "")),
                c.TASKS_OUTPUT_ACTIVATION: tile(tf.constant([t.activation for t in tasks])),
            }

    return TaskSwitch()


def signatures(module: Any) -> dict[str, Any]:
    return {c.SIGNATURE_IDS: module.serving_default, c.SIGNATURE_NAMES: module.by_name,
            c.SIGNATURE_TASKS: module.tasks}
