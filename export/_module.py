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
from collections.abc import Mapping, Sequence
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
class TaskRows:
    """The row space every per-task table shares, and what every row answers whatever its
    backbone: its error message, whether it is a live task, the name table of ``by_name``."""

    rows: Rows
    width: int  # the widest head: the width of ``scores``
    tasks: list[TaskEntry]
    errors: npt.NDArray[Any]  # [rows] the error message of each row ("" for a live task)
    valid: npt.NDArray[Any]  # [rows, 1] live tasks
    name_keys: list[str]  # by_name's table: names (live, then retired) ...
    name_rows: list[int]  # ... and their rows


def plan_rows(tasks: list[TaskEntry], retired: Mapping[int, tuple[str, str]]) -> TaskRows:
    rows = Rows(max([t.task_id for t in tasks] + list(retired)) + 1)
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
    # A retired name a live task took again is that task's; a name retired twice answers with
    # its latest id's message.
    live = set(names)
    by_name = {name: i for i, (name, _) in sorted(retired.items()) if name not in live}
    return TaskRows(rows, max(t.head.width for t in tasks), tasks, errors, valid,
                    names + list(by_name), task_rows + [rows.of(i) for i in by_name.values()])


@dataclasses.dataclass
class HeadTables:
    """The heads of one backbone's tasks: stacked by shape, and what the predict graph reads
    per row. ``parts`` are named column blocks of one int table gathered once per request: the
    main stack's output rows (``columns``) and what the other parts need (member index,
    activation kind, stack, other stacks' rows, generic head index)."""

    main: StackedGroup
    stacks: list[StackedGroup | SingleTask]  # the main stack first
    kinds: list[str]  # output activations, the commonest first
    zero_invalid: bool  # bad rows' scores zeroed by ``valid`` (one kind, not linear)
    masked_top: bool  # top_score/top_label must skip padding columns
    generic_tasks: list[TaskEntry]
    parts: dict[str, npt.NDArray[Any]]

    @property
    def table(self) -> npt.NDArray[Any]:
        joined: npt.NDArray[Any] = np.concatenate(list(self.parts.values()), 1).astype(np.int32)
        return joined

    @property
    def sizes(self) -> list[int]:
        return [p.shape[1] for p in self.parts.values()]


def plan_heads(tasks: list[TaskEntry], rows: Rows, width: int, store: WeightStore,
               features_width: int, alone: bool = True) -> HeadTables:
    """The head tables of ``tasks`` (the tasks of one backbone); stacked heads' weights go into
    ``store``. ``alone``: the only backbone, whose heads also answer bad rows."""
    # Stacks by head shape, largest first: the main stack runs on every example, each other
    # stack on its own examples.
    shapes: dict[tuple[Any, ...], list[TaskEntry]] = {}
    for t in tasks:
        shapes.setdefault(t.head.shape_key, []).append(t)
    generic_tasks = shapes.pop(("generic",), [])
    stacked = sorted(shapes.values(), key=lambda group: -len(group))
    n_in = features_width + 1
    main = StackedGroup(store, rows, stacked[0] if stacked else [], width, n_in,
                        others=[t for group in stacked[1:] for t in group] + generic_tasks)
    stacks: list[StackedGroup | SingleTask] = [main]
    stacks += [SingleTask(store, group[0], width) if len(group) == 1
               else StackedGroup(store, rows, group, width, n_in) for group in stacked[1:]]
    stack_of = np.full(rows.count, -1, np.int64)
    for g, members in enumerate(stacked):
        stack_of[[rows.of(t.task_id) for t in members]] = g

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
    if len(stacks) > 1:
        parts["group"] = stack_of[:, None]
    for g, other in enumerate(stacks[1:], 1):
        if isinstance(other, StackedGroup):
            parts[f"columns_{g}"] = other.columns
            if other.hidden:
                parts[f"local_{g}"] = other.local[:, None]
    return HeadTables(
        main=main, stacks=stacks, kinds=kinds,
        zero_invalid=alone and len(kinds) == 1 and kinds[0] != "linear",
        masked_top=bool(generic_tasks) or any(k not in ZERO_AT_NEG_INF for k in kinds),
        generic_tasks=generic_tasks, parts=parts)


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


@dataclasses.dataclass
class _Backbone:
    """One backbone of the module and the heads of its tasks."""

    features: Any  # its tf.function: text string[b] -> features
    width: int
    heads: HeadTables | None = None
    generic: GenericHeads | None = None
    names: dict[str, str] = dataclasses.field(default_factory=dict)  # its weight-store names


_ANSWERS = (c.OUTPUT_SCORES, c.OUTPUT_TOP_LABEL, c.OUTPUT_TOP_SCORE)


def _case(index: Any, branches: list[Any]) -> Any:
    """``tf.switch_case`` kept a ``Case`` op in the session graph: TensorFlow lowers functional
    control flow to Switch/Merge nodes unless the op says not to, and only its internal
    ``indexed_case`` lets a caller say so (TensorFlow is pinned; tests check the saved op)."""
    from tensorflow.python.ops import cond_v2

    return cond_v2.indexed_case(index, branches, lower_using_switch_merge=False)


class _Endpoints:
    """The bodies of the module's functions (named as the functions, which take their names),
    over the planned tables. Plain Python: TensorFlow ops are made only when the builder's
    tf.functions trace them."""

    def __init__(self, tf: Any, module: Any, rows: TaskRows, backbones: list[_Backbone],
                 names: Mapping[str, str], store: WeightStore) -> None:
        self.tf = tf
        self.module = module
        self.r = rows
        self.backbones = backbones
        self.names = names  # weight-store names of the shared tables
        self.store = store

    def _parts(self, b: _Backbone, w: Mapping[str, Any], row: Any) -> dict[str, Any]:
        assert b.heads is not None
        gathered = self.tf.gather(w[b.names["table"]], row)
        if len(b.heads.parts) == 1:
            return {"columns": gathered}
        return dict(zip(b.heads.parts, self.tf.split(gathered, b.heads.sizes, axis=1)))

    def _stacked_logits(self, t: HeadTables, w: Mapping[str, Any], features: Any,
                        part: Mapping[str, Any]) -> Any:
        """[b, width] logits of the stacked heads (features [b, d]); zero for other rows."""
        tf = self.tf
        # Stacked heads compute in float32 (DenseChainHead.compute_dtype): float16/bfloat16
        # features of a mixed-precision backbone are cast, exactly, as a float32 Dense layer
        # casts its input. A no-op for float32 features.
        x1 = append_one(tf, tf.cast(features, tf.float32))
        z = t.main.logits(tf, w, x1, part["columns"],
                          part["local"][:, 0] if t.main.hidden else None)
        for g, stack in enumerate(t.stacks[1:], 1):
            if isinstance(stack, SingleTask):
                z = tf.where(tf.equal(part["group"], g), stack.logits(tf, w, x1), z)
                continue
            at = tf.where(tf.equal(part["group"][:, 0], g))
            z = tf.tensor_scatter_nd_update(z, at, stack.logits(
                tf, w, tf.gather_nd(x1, at), tf.gather_nd(part[f"columns_{g}"], at),
                tf.gather_nd(part[f"local_{g}"][:, 0], at) if stack.hidden else None))
        return z

    def _heads(self, b: _Backbone, w: Mapping[str, Any], features: Any, row: Any
               ) -> dict[str, Any]:
        """Scores, top label and top score of examples with ``features`` of backbone ``b`` and
        task rows ``row``."""
        tf, t = self.tf, b.heads
        assert t is not None
        part = self._parts(b, w, row)
        columns = part["columns"]
        if t.main.members:
            z = self._stacked_logits(t, w, features, part)
        else:  # generic heads only (features of any rank, [b, T, d] too): zero logits
            z = tf.zeros(tf.stack([tf.size(row), self.r.width]), tf.float32)
        scores = activation(tf, t.kinds[0], z)
        for index, kind in enumerate(t.kinds[1:], 1):
            scores = tf.where(tf.equal(part["kind"], index), activation(tf, kind, z), scores)
        if t.zero_invalid:
            scores = tf.where(tf.gather(w[self.names["valid"]], row), scores, 0.0)
        if b.generic is not None:
            scores = b.generic(features, part["generic"][:, 0], scores)
        ranked = scores
        if t.masked_top:
            ranked = tf.where(columns >= t.main.first_padding, tf.constant(-np.inf), scores)
        top = tf.argmax(ranked, axis=1, output_type=tf.int32)
        return {
            c.OUTPUT_SCORES: scores,
            c.OUTPUT_TOP_LABEL: tf.gather(w[b.names["labels"]],
                                          tf.gather(columns, top, batch_dims=1)),
            c.OUTPUT_TOP_SCORE: tf.reduce_max(ranked, axis=1),
        }

    def _predict(self, text: Any, row: Any) -> dict[str, Any]:
        """Every output for examples ``text`` whose task rows are ``row``."""
        tf, module = self.tf, self.module
        w = module._weights()
        if len(self.backbones) == 1:
            b = self.backbones[0]
            outputs = self._heads(b, w, b.features(text), row)
        else:
            outputs = self._each_backbone(w, text, row)
        outputs[c.OUTPUT_ERROR] = tf.gather(w[self.names["errors"]], row)
        return outputs

    def _each_backbone(self, w: Mapping[str, Any], text: Any, row: Any) -> dict[str, Any]:
        """A batch whose examples all have one backbone runs that backbone and its heads on the
        whole batch; any other batch runs each backbone on its own examples (``_mixed``). One
        ``Case`` chooses, and it stays a function call in TF Serving's session (not lowered to
        Switch/Merge, whose every node, live or dead, costs executor time on every call)."""
        tf = self.tf
        count = len(self.backbones)
        part = tf.gather(w[self.names["backbone"]], row)
        low = tf.reduce_min(part)
        index = tf.where(tf.equal(low, tf.reduce_max(part)), low, count)

        def whole(b: _Backbone, position: int) -> Any:
            def run() -> tuple[Any, ...]:
                out = self._heads(b, self.store.read(position), b.features(text), row)
                return tuple(out[k] for k in _ANSWERS)
            return run

        def mixed() -> tuple[Any, ...]:
            out = self._mixed(w, text, row, part)  # built once: every answer reads this one
            return tuple(out[k] for k in _ANSWERS)

        branches = [whole(b, i) for i, b in enumerate(self.backbones)]
        branches.append(mixed)
        return dict(zip(_ANSWERS, _case(index, branches)))

    def _mixed(self, w: Mapping[str, Any], text: Any, row: Any, part: Any) -> dict[str, Any]:
        """Each backbone on its own examples only: the batch split by backbone
        (``dynamic_partition``), each part run in a cond that skips an empty part, the answers
        put back in order (``dynamic_stitch``). Rows of no live task keep zero scores, an empty
        label and a zero top score. A branch reads its heads' weights itself (its own section
        of the store), so it captures only its inputs and its backbone's variables."""
        tf, width = self.tf, self.r.width
        count = len(self.backbones)
        texts = tf.dynamic_partition(text, part, count + 1)
        rows = tf.dynamic_partition(row, part, count + 1)
        where = tf.dynamic_partition(tf.range(tf.size(row)), part, count + 1)
        keys = _ANSWERS
        answers: dict[str, list[Any]] = {k: [] for k in keys}
        for position, b in enumerate(self.backbones):

            def run(b: _Backbone = b, text: Any = texts[position], row: Any = rows[position],
                    position: int = position) -> tuple[Any, ...]:
                out = self._heads(b, self.store.read(position), b.features(text), row)
                return tuple(out[k] for k in keys)

            def skip() -> tuple[Any, ...]:
                return (tf.zeros([0, width], tf.float32), tf.constant([], tf.string),
                        tf.zeros([0], tf.float32))

            for k, value in zip(keys, tf.cond(tf.size(rows[position]) > 0, run, skip)):
                answers[k].append(value)
        bad = tf.size(rows[count])
        answers[c.OUTPUT_SCORES].append(tf.zeros(tf.stack([bad, width]), tf.float32))
        answers[c.OUTPUT_TOP_LABEL].append(tf.fill(tf.reshape(bad, [1]), ""))
        answers[c.OUTPUT_TOP_SCORE].append(tf.zeros(tf.reshape(bad, [1]), tf.float32))
        return {k: tf.dynamic_stitch(where, v) for k, v in answers.items()}

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
            row = tf.raw_ops.Bucketize(input=task_id, boundaries=self.r.rows.boundaries)
        outputs: dict[str, Any] = self.module._predict(text, row)
        return outputs

    def by_name(self, text: Any, task: Any) -> dict[str, Any]:
        tf = self.tf
        with tf.control_dependencies([self._same_length(text, task, c.INPUT_TASK)]):
            row = self.module._name_to_row.lookup(task)
        outputs: dict[str, Any] = self.module._predict(text, row)
        return outputs

    def tasks(self, unused: Any) -> dict[str, Any]:
        tf, r = self.tf, self.r
        w = self.module._weights()
        if len(self.backbones) == 1:  # the labels, read through the heads' tables
            b = self.backbones[0]
            task_rows = [r.rows.of(e.task_id) for e in r.tasks]
            label_rows = tf.gather(w[b.names["table"]], task_rows)[:, : r.width]
            labels = tf.gather(w[b.names["labels"]], label_rows)
        else:
            labels = w[self.names["task_labels"]]
        count = tf.size(unused)

        def tile(value: Any) -> Any:
            multiples = tf.concat([[count], tf.ones([tf.rank(value)], tf.int32)], 0)
            return tf.tile(value[None], multiples)

        real = tf.constant(np.arange(r.width)[None, :] <
                           np.array([e.head.width for e in r.tasks])[:, None])
        return {
            c.TASKS_OUTPUT_TASK_ID: tile(tf.constant([e.task_id for e in r.tasks], tf.int32)),
            c.TASKS_OUTPUT_NAME: tile(tf.constant([e.name for e in r.tasks])),
            c.TASKS_OUTPUT_NUM_CLASSES: tile(tf.constant([e.head.width for e in r.tasks],
                                                         tf.int32)),
            c.TASKS_OUTPUT_LABELS: tile(tf.where(real, labels, "")),
            c.TASKS_OUTPUT_ACTIVATION: tile(tf.constant([e.activation for e in r.tasks])),
        }


class TaskSwitchBuilder:
    """Builds the task-switching module::

        module = TaskSwitchBuilder(backbone).add_tasks(tasks, removed).build()
        tf.saved_model.save(module, path, signatures=signatures(module))

    With several backbones (``TaskSwitchBuilder([b0, b1], ids=[0, 3])``), ``add_tasks`` takes
    each task's backbone; each backbone runs only on its own tasks' examples. The module keeps
    backbone ``id``'s function as ``features_<id>`` (the first also as ``features``) and its
    variables as ``_backbone_variables_<id>``; a module of one backbone keeps ``features`` and
    ``_backbone_variables``.
    """

    def __init__(self, backbone: Backbone | Sequence[Backbone],
                 ids: Sequence[int] | None = None) -> None:
        from headswitch._quiet import import_tensorflow

        tf: Any = import_tensorflow()
        self._tf = tf
        self.module = tf.Module(name="headswitch")
        chosen = list(backbone) if isinstance(backbone, Sequence) else [backbone]
        self.ids = list(ids) if ids is not None else list(range(len(chosen)))
        self._backbones: list[_Backbone] = []
        for number, one in zip(self.ids, chosen):
            features, width, variables, resources = _features_function(tf, one)
            suffix = backbone_suffix(number, len(chosen))
            # the names --from and the benchmarks read
            setattr(self.module, f"_backbone_variables{suffix}", variables)
            setattr(self.module, f"_backbone_resources{suffix}", resources)
            setattr(self.module, f"{FEATURES}{suffix}", features)
            self._backbones.append(_Backbone(features, width))
        if len(chosen) > 1:
            self.module.features = self._backbones[0].features  # FEATURES
        self._endpoints: _Endpoints | None = None

    def add_tasks(self, tasks: list[TaskEntry],
                  removed: Mapping[int, tuple[str, str]] | None = None) -> TaskSwitchBuilder:
        """The tasks (ids may have gaps; each names its backbone's id, ``TaskEntry.backbone``)
        and ``removed``: ids of retired tasks -> (name, message). Retired ids and names answer
        with their message and are never given to another task (a retired name may be a live
        task's again: it then names that task)."""
        tf, module = self._tf, self.module
        store = WeightStore()
        rows = plan_rows(tasks, dict(removed or {}))
        position = {number: i for i, number in enumerate(self.ids)}
        mine: list[list[TaskEntry]] = [[] for _ in self._backbones]
        for t in tasks:
            if t.backbone not in position:
                raise ValueError(f"task {t.name!r} names backbone {t.backbone}; the module has "
                                 f"{self.ids}")
            mine[position[t.backbone]].append(t)
        alone = len(self._backbones) == 1
        for number, (b, own) in enumerate(zip(self._backbones, mine)):
            if not own:
                raise ValueError("every backbone needs at least one task")
            store.current = "" if alone else number  # each backbone's heads: their section
            b.heads = plan_heads(own, rows.rows, rows.width, store, b.width, alone=alone)
        generic_variables: list[Any] = []
        generic_resources: list[Any] = []
        for b in self._backbones:
            assert b.heads is not None
            if b.heads.generic_tasks:
                b.generic = GenericHeads(tf, [t.head for t in b.heads.generic_tasks],  # type: ignore[misc]
                                         [t.task_id for t in b.heads.generic_tasks], rows.rows,
                                         rows.width)
                b.heads.parts["generic"] = b.generic.local[:, None]
                generic_variables += b.generic.variables
                generic_resources += b.generic.resources
        if generic_variables or generic_resources:
            module._generic_variables = generic_variables
            module._generic_resources = generic_resources
        for number, b in enumerate(self._backbones):
            assert b.heads is not None
            store.current = "" if alone else number
            b.names = {"table": store.add("per_task", b.heads.table),
                       "labels": store.add("labels", b.heads.main.labels.astype(str))}
        store.current = ""
        names = {"errors": store.add("errors", rows.errors.astype(str))}
        if alone and self._backbones[0].heads is not None and \
                self._backbones[0].heads.zero_invalid:
            names["valid"] = store.add("valid", rows.valid)
        if not alone:
            names["backbone"] = store.add("backbone", _partition_table(rows, mine))
            names["task_labels"] = store.add("task_labels", _labels_table(rows))
        store.build(tf, module)
        module._name_to_row = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(rows.name_keys, tf.string),
                                                tf.constant(rows.name_rows, tf.int32)),
            default_value=rows.rows.unknown_name)
        self._endpoints = _Endpoints(tf, module, rows, self._backbones, names, store)
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
        module.serving_default = tf.function(ep.serving_default, autograph=False,
                                             input_signature=[spec(tf.string, c.INPUT_TEXT),
                                                              spec(tf.int32, c.INPUT_TASK_ID)])
        module.by_name = tf.function(ep.by_name, autograph=False, input_signature=[
            spec(tf.string, c.INPUT_TEXT), spec(tf.string, c.INPUT_TASK)])
        module.tasks = tf.function(ep.tasks, autograph=False, input_signature=[
            spec(tf.int32, c.INPUT_UNUSED)])
        return module


def backbone_suffix(number: int, count: int) -> str:
    """How a module names backbone ``number``'s function and variables (``features`` +
    suffix): no suffix when it is the only one."""
    return "" if count == 1 else f"_{number}"


def _partition_table(rows: TaskRows, mine: list[list[TaskEntry]]) -> npt.NDArray[Any]:
    """[rows] each row's backbone (its position); the number of backbones for rows of no live
    task (their partition)."""
    table = np.full(rows.rows.count, len(mine), np.int32)
    for position, own in enumerate(mine):
        table[[rows.rows.of(t.task_id) for t in own]] = position
    return table


def _labels_table(rows: TaskRows) -> npt.NDArray[Any]:
    """[tasks, width] every task's labels, padded with ""."""
    table = np.full((len(rows.tasks), rows.width), "", dtype=object)
    for i, t in enumerate(rows.tasks):
        table[i, : len(t.labels)] = t.labels
    return table.astype(str)


def build_module(backbone: Any, tasks: list[TaskEntry],
                 removed: Mapping[int, tuple[str, str]] | None = None,
                 ids: Sequence[int] | None = None) -> Any:
    """The tf.Module to save: ``backbone`` (a ``KerasModel`` or a Keras model taking text
    string[b], or a ``SavedBackbone``; or a list of them, with their ``ids``) once, the heads
    grouped and stacked."""
    chosen = list(backbone) if isinstance(backbone, (list, tuple)) else [backbone]
    chosen = [b if isinstance(b, (KerasModel, SavedBackbone)) else KerasModel.of(b)
              for b in chosen]
    return TaskSwitchBuilder(chosen, ids).add_tasks(tasks, removed).build()


def signatures(module: Any) -> dict[str, Any]:
    return {c.SIGNATURE_IDS: module.serving_default, c.SIGNATURE_NAMES: module.by_name,
            c.SIGNATURE_TASKS: module.tasks}
