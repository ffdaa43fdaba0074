"""The build stage: the task-switching tf.Module, the backbone once and each example's own head.

``TaskSwitchBuilder`` builds it the way Keras's ``ExportArchive`` does: track what the graph
reads (the backbone's variables and resources, the generic heads', the weight tables), add the
endpoints, hand the module to ``tf.saved_model.save`` with ``signatures(module)``:

    serving_default(text: string[b], task_id: int32[b])  -> PREDICT_OUTPUTS
    by_name(text: string[b], task: string[b])            -> PREDICT_OUTPUTS
    tasks(unused: int32[b])                              -> TASKS_OUTPUTS

(names from ``headswitch.contract``; every input is rank 1, so TF Serving's batcher can
concatenate requests). How heads compute is in ``_stacking``; this module plans the per-task
tables and writes the endpoints:

- Errors stay with their example. A bad task gives its example an ``error`` message, zero scores
  and an empty ``top_label`` instead of failing the run, so under TF Serving's batcher (which
  merges concurrent requests into one run) one client's bad id never fails another client's
  request; a request of bad tasks only, or an empty one, is answered the same way. Only ``text``
  and task inputs of different lengths fail the request (INVALID_ARGUMENT): the batcher refuses
  those before merging, so that failure is the request's own.
- Stacked groups: the largest group of Dense-chain heads of one shape runs on the whole batch
  (no routing ops at all when it is the only one), each other group on its own examples.
- Output activations: the commonest one on every row, each other kind selected per example.
- Static per-task facts (class count, label names, activation) are not predict outputs: they
  cost graph work, reply bytes and serialization on every request, and the ``tasks`` signature
  serves them once.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from headswitch import contract as c

from ._graph import saved_state
from ._heads import TaskEntry
from ._keras import KerasModel
from ._stacking import (
    ZERO_AT_NEG_INF,
    GenericHeads,
    Rows,
    SingleTask,
    StackedGroup,
    WeightStore,
    activation,
    append_one,
)

_MAX_NAMES_IN_ERRORS = 20

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


Backbone = KerasModel | SavedBackbone


def _shown(names: list[str]) -> str:
    return ", ".join(names[:_MAX_NAMES_IN_ERRORS]) + (
        ", ..." if len(names) > _MAX_NAMES_IN_ERRORS else "")


@dataclasses.dataclass
class TaskTables:
    """What the predict graph reads per task row, planned in numpy before any TensorFlow op.

    ``parts`` are named column blocks of one int table gathered once per request: the main
    group's output rows (``columns``) and what the other parts need (member index, activation
    kind, group, other groups' rows, generic head index)."""

    rows: Rows
    width: int  # the widest head: the width of ``scores``
    tasks: list[TaskEntry]
    errors: npt.NDArray[Any]  # [rows] the error message of each row ("" for a live task)
    valid: npt.NDArray[Any]  # [rows, 1] live tasks
    main: StackedGroup
    groups: list[StackedGroup | SingleTask]  # the main group first
    kinds: list[str]  # output activations, the commonest first
    zero_invalid: bool  # bad rows' scores zeroed by ``valid`` (one kind, not linear)
    masked_top: bool  # top_score/top_label must skip padding columns
    generic_tasks: list[TaskEntry]
    parts: dict[str, npt.NDArray[Any]]
    name_keys: list[str]  # by_name's table: names (live, then retired) ...
    name_rows: list[int]  # ... and their rows

    @property
    def table(self) -> npt.NDArray[Any]:
        joined: npt.NDArray[Any] = np.concatenate(list(self.parts.values()), 1).astype(np.int32)
        return joined

    @property
    def sizes(self) -> list[int]:
        return [p.shape[1] for p in self.parts.values()]


def plan_tables(tasks: list[TaskEntry], retired: Mapping[int, tuple[str, str]],
                store: WeightStore, features_width: int) -> TaskTables:
    """The per-task tables; stacked heads' weights go into ``store``."""
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
    n_in = features_width + 1
    main = StackedGroup(store, rows, stacked[0] if stacked else [], width, n_in,
                        others=[t for group in stacked[1:] for t in group] + generic_tasks)
    groups: list[StackedGroup | SingleTask] = [main]
    groups += [SingleTask(store, group[0], width) if len(group) == 1
               else StackedGroup(store, rows, group, width, n_in) for group in stacked[1:]]
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

    parts: dict[str, npt.NDArray[Any]] = {"columns": main.columns}
    if main.hidden:
        parts["local"] = main.local[:, None]
    if len(kinds) > 1:
        parts["kind"] = kind_of[:, None]
    if len(groups) > 1:
        parts["group"] = group_of[:, None]
    for g, other in enumerate(groups[1:], 1):
        if isinstance(other, StackedGroup):
            parts[f"columns_{g}"] = other.columns
            if other.hidden:
                parts[f"local_{g}"] = other.local[:, None]

    # A retired name a live task took again is that task's; a name retired twice answers with
    # its latest id's message.
    live = set(names)
    by_name = {name: i for i, (name, _) in sorted(retired.items()) if name not in live}
    return TaskTables(
        rows=rows, width=width, tasks=tasks, errors=errors, valid=valid, main=main,
        groups=groups, kinds=kinds,
        zero_invalid=len(kinds) == 1 and kinds[0] != "linear",
        masked_top=bool(generic_tasks) or any(k not in ZERO_AT_NEG_INF for k in kinds),
        generic_tasks=generic_tasks, parts=parts, name_keys=names + list(by_name),
        name_rows=task_rows + [rows.of(i) for i in by_name.values()])


def _features_function(tf: Any, backbone: Backbone) -> tuple[Any, int, list[Any], list[Any]]:
    """(features function, output width, variables, resources) of a backbone."""
    if isinstance(backbone, SavedBackbone):
        return (backbone.features, backbone.width, list(backbone.variables),
                list(backbone.resources))
    model = backbone.model
    features = tf.function(lambda text: model(text, training=False), autograph=False,
                           input_signature=[tf.TensorSpec([None], tf.string, name=c.INPUT_TEXT)])
    variables, resources = saved_state(model)
    return features, backbone.width, variables, resources


class _Endpoints:
    """The bodies of the module's functions (named as the functions, which take their names),
    over the planned tables. Plain Python: TensorFlow ops are made only when the builder's
    tf.functions trace them."""

    def __init__(self, tf: Any, module: Any, tables: TaskTables, generic: GenericHeads | None,
                 names: Mapping[str, str]) -> None:
        self.tf = tf
        self.module = module
        self.t = tables
        self.generic = generic
        self.names = names  # weight-store names: table, labels, errors, valid

    def _parts(self, w: Mapping[str, Any], row: Any) -> dict[str, Any]:
        gathered = self.tf.gather(w[self.names["table"]], row)
        if len(self.t.parts) == 1:
            return {"columns": gathered}
        return dict(zip(self.t.parts, self.tf.split(gathered, self.t.sizes, axis=1)))

    def _predict(self, text: Any, row: Any) -> dict[str, Any]:
        """Every output for examples ``text`` whose task rows are ``row``."""
        tf, t, module = self.tf, self.t, self.module
        w = module._weights()
        features = module.features(text)
        part = self._parts(w, row)
        columns = part["columns"]
        # Stacked heads compute in float32 (DenseChainHead.compute_dtype): float16/bfloat16
        # features of a mixed-precision backbone are cast, exactly, as a float32 Dense layer
        # casts its input. A no-op for float32 features.
        x1 = append_one(tf, tf.cast(features, tf.float32))
        z = t.main.logits(tf, w, x1, columns, part["local"][:, 0] if t.main.hidden else None)
        for g, group in enumerate(t.groups[1:], 1):
            if isinstance(group, SingleTask):
                z = tf.where(tf.equal(part["group"], g), group.logits(tf, w, x1), z)
                continue
            at = tf.where(tf.equal(part["group"][:, 0], g))
            z = tf.tensor_scatter_nd_update(z, at, group.logits(
                tf, w, tf.gather_nd(x1, at), tf.gather_nd(part[f"columns_{g}"], at),
                tf.gather_nd(part[f"local_{g}"][:, 0], at) if group.hidden else None))
        scores = activation(tf, t.kinds[0], z)
        for index, kind in enumerate(t.kinds[1:], 1):
            scores = tf.where(tf.equal(part["kind"], index), activation(tf, kind, z), scores)
        if t.zero_invalid:
            scores = tf.where(tf.gather(w[self.names["valid"]], row), scores, 0.0)
        if self.generic is not None:
            scores = self.generic(features, part["generic"][:, 0], scores)
        ranked = scores
        if t.masked_top:
            ranked = tf.where(columns >= t.main.first_padding, tf.constant(-np.inf), scores)
        top = tf.argmax(ranked, axis=1, output_type=tf.int32)
        return {
            c.OUTPUT_SCORES: scores,
            c.OUTPUT_TOP_LABEL: tf.gather(w[self.names["labels"]],
                                          tf.gather(columns, top, batch_dims=1)),
            c.OUTPUT_TOP_SCORE: tf.reduce_max(ranked, axis=1),
            c.OUTPUT_ERROR: tf.gather(w[self.names["errors"]], row),
        }

    def _same_length(self, text: Any, task: Any, task_input: str) -> Any:
        """An Assert that ``text`` and the task input hold as many values. TF Serving's batcher
        refuses such a request before merging it, so this fails a request alone."""
        tf = self.tf
        size, size_task = tf.size(text), tf.size(task)
        return tf.debugging.Assert(tf.equal(size, size_task), [
            f"{c.INPUT_TEXT} and {task_input} must have the same length; got", size,
            "texts and", size_task])

    def serving_default(self, text: Any, task_id: Any) -> dict[str, Any]:
        tf = self.tf
        with tf.control_dependencies([self._same_length(text, task_id, c.INPUT_TASK_ID)]):
            row = tf.raw_ops.Bucketize(input=task_id, boundaries=self.t.rows.boundaries)
        outputs: dict[str, Any] = self.module._predict(text, row)
        return outputs

    def by_name(self, text: Any, task: Any) -> dict[str, Any]:
        tf = self.tf
        with tf.control_dependencies([self._same_length(text, task, c.INPUT_TASK)]):
            row = self.module._name_to_row.lookup(task)
        outputs: dict[str, Any] = self.module._predict(text, row)
        return outputs

    def tasks(self, unused: Any) -> dict[str, Any]:
        tf, t = self.tf, self.t
        w = self.module._weights()
        task_rows = [t.rows.of(e.task_id) for e in t.tasks]
        label_rows = tf.gather(w[self.names["table"]], task_rows)[:, : t.width]
        count = tf.size(unused)

        def tile(value: Any) -> Any:
            multiples = tf.concat([[count], tf.ones([tf.rank(value)], tf.int32)], 0)
            return tf.tile(value[None], multiples)

        real = tf.constant(np.arange(t.width)[None, :] <
                           np.array([e.head.width for e in t.tasks])[:, None])
        return {
            c.TASKS_OUTPUT_TASK_ID: tile(tf.constant([e.task_id for e in t.tasks], tf.int32)),
            c.TASKS_OUTPUT_NAME: tile(tf.constant([e.name for e in t.tasks])),
            c.TASKS_OUTPUT_NUM_CLASSES: tile(tf.constant([e.head.width for e in t.tasks],
                                                         tf.int32)),
            c.TASKS_OUTPUT_LABELS: tile(tf.where(real, tf.gather(w[self.names["labels"]],
                                                                 label_rows), "")),
            c.TASKS_OUTPUT_ACTIVATION: tile(tf.constant([e.activation for e in t.tasks])),
        }


class TaskSwitchBuilder:
    """Builds the task-switching module::

        module = TaskSwitchBuilder(backbone).add_tasks(tasks, removed).build()
        tf.saved_model.save(module, path, signatures=signatures(module))
    """

    def __init__(self, backbone: Backbone) -> None:
        from headswitch._quiet import import_tensorflow

        tf: Any = import_tensorflow()
        self._tf = tf
        self.module = tf.Module(name="headswitch")
        features, self.features_width, variables, resources = _features_function(tf, backbone)
        self.module._backbone_variables = variables  # the names --from and bench read
        self.module._backbone_resources = resources
        self.module.features = features  # FEATURES
        self._endpoints: _Endpoints | None = None

    def add_tasks(self, tasks: list[TaskEntry],
                  removed: Mapping[int, tuple[str, str]] | None = None) -> TaskSwitchBuilder:
        """The tasks (ids may have gaps), and ``removed``: ids of retired tasks -> (name,
        message). Their ids and names answer with that message and are never given to another
        task (a retired name may be a live task's again: it then names that task)."""
        tf, module = self._tf, self.module
        store = WeightStore()
        tables = plan_tables(tasks, dict(removed or {}), store, self.features_width)
        generic = None
        if tables.generic_tasks:
            generic = GenericHeads(tf, [t.head for t in tables.generic_tasks],  # type: ignore[misc]
                                   [t.task_id for t in tables.generic_tasks], tables.rows,
                                   tables.width)
            tables.parts["generic"] = generic.local[:, None]
            module._generic_variables = generic.variables
            module._generic_resources = generic.resources
        names = {"table": store.add("per_task", tables.table),
                 "labels": store.add("labels", tables.main.labels.astype(str)),
                 "errors": store.add("errors", tables.errors.astype(str))}
        if tables.zero_invalid:
            names["valid"] = store.add("valid", tables.valid)
        store.build(tf, module)
        module._name_to_row = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(tables.name_keys, tf.string),
                                                tf.constant(tables.name_rows, tf.int32)),
            default_value=tables.rows.unknown_name)
        self._endpoints = _Endpoints(tf, module, tables, generic, names)
        return self

    def build(self) -> Any:
        """The module, with its endpoints: ``_predict`` (shared by both predict signatures)
        and the three signatures' functions."""
        if self._endpoints is None:
            raise ValueError("add_tasks() before build()")
        tf, ep, module = self._tf, self._endpoints, self.module

        def spec(dtype: Any, name: str) -> Any:
            return tf.TensorSpec([None], dtype, name=name)

        module._predict = tf.function(ep._predict, autograph=False, input_signature=[
            spec(tf.string, c.INPUT_TEXT), spec(tf.int32, "row")])
        module.serving_default = tf.function(ep.serving_default, autograph=False, input_signature=[
            spec(tf.string, c.INPUT_TEXT), spec(tf.int32, c.INPUT_TASK_ID)])
        module.by_name = tf.function(ep.by_name, autograph=False, input_signature=[
            spec(tf.string, c.INPUT_TEXT), spec(tf.string, c.INPUT_TASK)])
        module.tasks = tf.function(ep.tasks, autograph=False, input_signature=[
            spec(tf.int32, c.INPUT_UNUSED)])
        return module


def build_module(backbone: Any, tasks: list[TaskEntry],
                 removed: Mapping[int, tuple[str, str]] | None = None) -> Any:
    """The tf.Module to save: ``backbone`` (a ``KerasModel`` or a Keras model taking text
    string[b], or a ``SavedBackbone``) once, the heads grouped and stacked."""
    if not isinstance(backbone, (KerasModel, SavedBackbone)):
        backbone = KerasModel.of(backbone)
    return TaskSwitchBuilder(backbone).add_tasks(tasks, removed).build()


def signatures(module: Any) -> dict[str, Any]:
    return {c.SIGNATURE_IDS: module.serving_default, c.SIGNATURE_NAMES: module.by_name,
            c.SIGNATURE_TASKS: module.tasks}
