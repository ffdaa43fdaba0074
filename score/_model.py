"""The SavedModel to score with: which version, its task table, and batched predict calls."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np
import orjson

from headswitch import contract as c
from headswitch.tasks import TaskList

from . import _fs
from ._errors import ScoreError
from ._jsonl import Columns
from ._rows import Row, RowError
from ._write import json_line

_MODEL_FILE = "saved_model.pb"
_WITHOUT_LAST = itemgetter(slice(None, -1))  # a JSON object line without its closing brace


@dataclass(frozen=True)
class ModelLocation:
    """The version folder to load (``path``), its version and the base folder holding the
    numbered versions (both None when MODEL was a lone SavedModel folder)."""

    path: str
    version: int | None
    base: str | None

    def describe(self) -> str:
        if self.version is None:
            return self.path
        return f"{self.path} (version {self.version} of {self.base})"


def _versions(base: str) -> list[int]:
    return sorted(int(name) for name in _fs.listdir(base)
                  if name.isdigit() and _fs.exists(_fs.join(base, name, _MODEL_FILE)))


def locate_model(spec: str) -> ModelLocation:
    """``MODEL`` (a base folder: its newest numbered version, pinned now) or ``MODEL/VERSION``
    or any folder holding a ``saved_model.pb``, locally or on gs://."""
    path = spec.rstrip("/") or spec
    name = _fs.basename(path)
    if _fs.exists(_fs.join(path, _MODEL_FILE)):
        if name.isdigit():
            return ModelLocation(path, int(name), _fs.dirname(path))
        return ModelLocation(path, None, None)
    if _fs.isdir(path):
        versions = _versions(path)
        if versions:
            return ModelLocation(_fs.join(path, str(versions[-1])), versions[-1], path)
        raise ScoreError(f"no SavedModel in {spec}: no {_MODEL_FILE} and no numbered version "
                         "folder holding one",
                         hint="give the base folder `headswitch export --out` wrote to, or one "
                         "of its version folders")
    parent = _fs.dirname(path)
    if name.isdigit() and parent and _fs.isdir(parent):
        versions = _versions(parent)
        listed = ", ".join(map(str, versions)) or "none"
        raise ScoreError(f"no version {name} in {parent} (versions: {listed})",
                         hint=f"leave the version out to score with the newest one: {parent}")
    raise ScoreError(f"no model at {spec}", hint="give the folder `headswitch export --out` "
                     "wrote to (BASE or BASE/VERSION), local or gs://")


class Predictions(NamedTuple):
    """One model call's outputs; ``errors[i]`` is "" for a row that was scored."""

    scores: np.ndarray[Any, np.dtype[np.float32]]  # [b, K]
    top_label: list[bytes]  # UTF-8, as the model gives it
    top_score: np.ndarray[Any, np.dtype[np.float32]]  # [b]
    errors: list[str]


class Prepared(NamedTuple):
    """Rows ready for one model call, and the rows refused before it. ``raws`` are the kept
    rows' JSON lines, when given (see ``Chunk.raws``)."""

    rows: Sequence[Row]
    texts: list[bytes]
    task_ids: list[int]
    errors: list[RowError]
    raws: list[bytes | None]


def prepare(rows: Sequence[Row], tasks: TaskList,
            raws: Sequence[bytes | None] | None = None,
            why: Callable[[int | str], str] | None = None) -> Prepared:
    """Check each row's task against the task list and encode its text; refused rows become
    errors here, so they never reach the model. ``why``: the reason given for a task that is
    none of the list's (``Scorer.why_unknown``; by default the list's own message)."""
    if type(rows) is Columns:
        return _prepare_columns(rows, tasks, why or tasks.unknown)
    good: list[Row] = []
    texts: list[bytes] = []
    ids: list[int] = []
    errors: list[RowError] = []
    kept: list[bytes | None] = []
    raw_of = raws if raws is not None else [None] * len(rows)
    find = tasks.find
    known: dict[int | str, int] = {}  # a batch names few distinct tasks; -1: no task
    for row, raw in zip(rows, raw_of):
        task_id = known.get(row.task)
        if task_id is None:
            found = find(row.task)
            task_id = known[row.task] = -1 if found is None else found
        if task_id < 0:
            errors.append(RowError(row.source, row.line, "unknown_task",
                                   (why or tasks.unknown)(row.task), row.fields))
            continue
        try:
            text = row.text.encode("utf-8")
        except UnicodeEncodeError as exc:
            errors.append(RowError(row.source, row.line, "bad_text",
                                   f"text is not valid Unicode: {exc.reason}", row.fields))
            continue
        good.append(row)
        texts.append(text)
        ids.append(task_id)
        kept.append(raw)
    return Prepared(good, texts, ids, errors, kept)


def scored_record(row: Row, task_id: int, predictions: Predictions, i: int, tasks: TaskList,
                  with_scores: bool, *, in_place: bool = False) -> dict[str, Any] | RowError:
    """The output line of row ``i`` of a model call: the row's own fields, ``top_label``,
    ``top_score``, and with ``with_scores`` the task's ``scores`` and ``labels``. With
    ``in_place`` the row's own field dict becomes the record (for rows parsed for this output
    alone); otherwise it is copied."""
    error = predictions.errors[i]
    if error:
        return RowError(row.source, row.line, "model_error", error, row.fields)
    record = row.fields if in_place else dict(row.fields)
    record["top_label"] = predictions.top_label[i].decode("utf-8", "replace")
    record["top_score"] = float(predictions.top_score[i])
    if with_scores:
        task = tasks.by_id[task_id]
        record["scores"] = predictions.scores[i, :task.num_classes].tolist()
        record["labels"] = list(task.labels)
    return record


def _model_message(message: str) -> str:
    """The line of a TensorFlow error that says what is wrong (an assertion's text), without
    the graph's node names and stack notes around it."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("assertion failed:"):
            return line[len("assertion failed:"):].strip()
    skip = ("Graph execution error", "Detected at node", "<stack traces", "[[{{node")
    useful = [line for line in lines if not line.startswith(skip)]
    return (useful or lines or ["the model refused this row"])[0]


def _prepare_columns(rows: Columns, tasks: TaskList, why: Callable[[int | str], str]
                     ) -> Prepared:
    """``prepare`` for rows read as columns: their tasks are ints and strings (see
    ``_columns``), looked up at once; their texts are encoded already."""
    lookup = tasks.refs.get
    ids = [lookup(task, -1) for task in rows.tasks]
    if -1 not in ids:
        return Prepared(rows, rows.texts, ids, [], rows.raws)
    refused: list[RowError] = []
    for k in [k for k, task_id in enumerate(ids) if task_id < 0]:
        found = tasks.find(rows.tasks[k])  # " 2 ", or no task
        if found is not None:
            ids[k] = found
        else:
            refused.append(RowError(rows.source, rows.numbers[k], "unknown_task",
                                    why(rows.tasks[k]), rows.items[k]))
    keep = [k for k, task_id in enumerate(ids) if task_id >= 0]
    good = rows.select(keep)
    return Prepared(good, good.texts, [ids[k] for k in keep], refused, good.raws)


def scored_lines(prepared: Prepared, predictions: Predictions, tasks: TaskList,
                 with_scores: bool) -> tuple[bytes, int, list[RowError]]:
    """The output lines of one model call's rows, in order, as one block (each line ends with
    a newline), their number, and the rows the model refused. A row given as a JSON object line
    without any output field (``raws[i]`` set) is that line, its own fields exactly as they
    were, with the outputs appended: what ``scored_record`` gives, without parsing and writing
    the row's fields again. For a batch of such rows only, the block is made by C loops
    (``map``, ``zip``, ``join``): no Python step per row."""
    raws = prepared.raws
    if raws and not with_scores and None not in raws and not any(predictions.errors):
        dumps = orjson.dumps
        tails = {label: b',"top_label":' + dumps(label.decode("utf-8", "replace"))
                 + b',"top_score":' for label in set(predictions.top_label)}
        # One dumps for the batch's scores: "[s0,s1]" -> [b"s0}\n", b"s1}\n"].
        scores = (dumps(predictions.top_score.tolist())[1:-1] + b",").replace(
            b",", b"}\n,").split(b",")[:-1]
        heads = map(_WITHOUT_LAST, map(bytes.rstrip, raws))  # type: ignore[arg-type]
        return b"".join(chain.from_iterable(zip(
            heads, map(tails.__getitem__, predictions.top_label), scores))), len(raws), []
    lines: list[bytes] = []
    refused: list[RowError] = []
    for i, (row, task_id, raw) in enumerate(zip(prepared.rows, prepared.task_ids, raws)):
        if raw is not None and not predictions.errors[i]:
            lines.append(_scored_line(raw, task_id, predictions, i, tasks, with_scores))
            continue
        record = scored_record(row, task_id, predictions, i, tasks, with_scores, in_place=True)
        if type(record) is dict:
            lines.append(json_line(record))
        else:
            refused.append(record)  # type: ignore[arg-type]
    return b"".join(line + b"\n" for line in lines), len(lines), refused


def _scored_line(raw: bytes, task_id: int, predictions: Predictions, i: int, tasks: TaskList,
                 with_scores: bool) -> bytes:
    dumps = orjson.dumps
    tail = (b',"top_label":' + dumps(predictions.top_label[i].decode("utf-8", "replace"))
            + b',"top_score":'
            + dumps(float(predictions.top_score[i])))
    if with_scores:
        task = tasks.by_id[task_id]
        tail += (b',"scores":' + dumps(predictions.scores[i, :task.num_classes].tolist())
                 + b',"labels":' + dumps(list(task.labels)))
    return raw.rstrip()[:-1] + tail + b"}"


def cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def op_threads_for(calls: int) -> int:
    """TensorFlow threads per op when ``calls`` model calls run at once: the cores shared out.
    For throughput, concurrent calls on one thread each scored more rows than calls that split
    every op over all cores (TensorFlow's default) when this was chosen; the pipeline's rate is
    measured by ``bench/score_bench.py``: ``bench/results/score.md``."""
    return max(1, cores() // max(1, calls))


def _set_op_threads(tf: Any, threads: int) -> int:
    """Ask TensorFlow for ``threads`` threads per op; it can be told only before it has run
    anything in this process (a notebook that has keeps its own setting). The setting in use."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:
        pass
    return _op_threads_in_use(tf)


def _op_threads_in_use(tf: Any) -> int:
    return int(tf.config.threading.get_intra_op_parallelism_threads()) or cores()  # 0: all


class Scorer:
    """A loaded headswitch SavedModel: its task table (read once, from the ``tasks``
    signature) and batched calls of ``serving_default`` with both inputs. ``op_threads``:
    TensorFlow threads per op (see ``op_threads_for``); None leaves TensorFlow's default."""

    def __init__(self, path: str, *, op_threads: int | None = None) -> None:
        from headswitch._quiet import import_tensorflow

        tf = import_tensorflow()
        self._tf = tf
        self.path = path
        self.op_threads = (_op_threads_in_use(tf) if op_threads is None
                           else _set_op_threads(tf, op_threads))
        try:
            loaded = tf.saved_model.load(path)
        except (OSError, ValueError, tf.errors.OpError) as exc:
            raise ScoreError(f"cannot load the SavedModel at {path}: {exc}".split("\n")[0],
                             hint="export it again with `headswitch export`") from exc
        self._loaded = loaded  # keeps the signatures' variables alive
        signatures = loaded.signatures
        missing = [s for s in (c.SIGNATURE_IDS, c.SIGNATURE_TASKS) if s not in signatures]
        if missing:
            raise ScoreError(f"{path} is not a headswitch model: no signature "
                             f"{', '.join(missing)} (it has {', '.join(signatures) or 'none'})",
                             hint="export the task models with `headswitch export`")
        self._predict = signatures[c.SIGNATURE_IDS]
        inputs = set(self._predict.structured_input_signature[1])
        outputs = set(self._predict.structured_outputs)
        needed_out = {c.OUTPUT_SCORES, c.OUTPUT_TOP_LABEL, c.OUTPUT_TOP_SCORE}
        if not {c.INPUT_TEXT, c.INPUT_TASK_ID} <= inputs or not needed_out <= outputs:
            raise ScoreError(
                f"{path}: {c.SIGNATURE_IDS} takes {sorted(inputs)} and returns "
                f"{sorted(outputs)}; batch scoring needs inputs {c.INPUT_TEXT}, "
                f"{c.INPUT_TASK_ID} and outputs {', '.join(sorted(needed_out))}",
                hint="export the task models with `headswitch export`")
        self._has_error = c.OUTPUT_ERROR in outputs
        table = signatures[c.SIGNATURE_TASKS](**{c.INPUT_UNUSED: tf.constant([0], tf.int32)})
        self.tasks = TaskList.from_columns(*(table[k].numpy()[0] for k in c.TASKS_OUTPUTS))
        self.width = max((task.num_classes for task in self.tasks), default=0)
        self._by_name = signatures.get(c.SIGNATURE_NAMES)
        self._why: dict[int | str, str] = {}

    def why_unknown(self, task: int | str) -> str:
        """Why ``task`` (none of the task list's) is refused: the model's own message for a
        removed task ("task 2 ('spam') was removed in version 2"), else the task list's. Asked
        of the model once per task."""
        reason = self._why.get(task)
        if reason is None:
            reason = self._why[task] = self._removal(task) or self.tasks.unknown(task)
        return reason

    def _removal(self, task: int | str) -> str:
        """The model's message for ``task`` if it says the task was removed, else ""."""
        tf = self._tf
        number = task if isinstance(task, int) else (
            int(task.strip()) if task.strip().lstrip("+-").isdigit() else None)
        try:
            if number is not None:
                if not -(1 << 31) <= number < 1 << 31 or not self._has_error:
                    return ""
                out = self._predict(**{c.INPUT_TEXT: tf.constant([b""]),
                                       c.INPUT_TASK_ID: tf.constant([number], tf.int32)})
            elif self._by_name is not None:
                out = self._by_name(**{c.INPUT_TEXT: tf.constant([b""]),
                                       c.INPUT_TASK: tf.constant([str(task).encode()])})
            else:
                return ""
        except tf.errors.OpError:
            return ""
        errors = out.get(c.OUTPUT_ERROR)
        message = "" if errors is None else errors.numpy()[0].decode("utf-8", "replace")
        return message if c.TASK_REMOVED in message else ""

    def _call(self, texts: Sequence[bytes], task_ids: Sequence[int]) -> Predictions:
        tf = self._tf
        out = self._predict(**{c.INPUT_TEXT: tf.constant(texts, tf.string),
                               c.INPUT_TASK_ID: tf.constant(task_ids, tf.int32)})
        labels = out[c.OUTPUT_TOP_LABEL].numpy().tolist()
        refused = out[c.OUTPUT_ERROR].numpy() if self._has_error else np.zeros(0, object)
        if refused.astype(bool).any():
            errors = [e.decode("utf-8", "replace") for e in refused]
        else:
            errors = [""] * len(texts)
        return Predictions(out[c.OUTPUT_SCORES].numpy(), labels, out[c.OUTPUT_TOP_SCORE].numpy(),
                           errors)

    def predict(self, texts: Sequence[bytes], task_ids: Sequence[int]) -> Predictions:
        """One call for the whole batch. Should the model refuse it (which the checks before
        should make impossible), the batch is halved until the refused rows are found; they
        get the model's message in ``errors`` and the others are scored."""
        if not texts:
            return Predictions(np.zeros((0, self.width), np.float32), [],
                               np.zeros((0,), np.float32), [])
        try:
            return self._call(texts, task_ids)
        except self._tf.errors.OpError as exc:
            if len(texts) == 1:
                message = _model_message(exc.message or str(exc))
                return Predictions(np.full((1, self.width), np.nan, np.float32), [b""],
                                   np.full((1,), np.nan, np.float32), [message])
        half = len(texts) // 2
        a = self.predict(texts[:half], task_ids[:half])
        b = self.predict(texts[half:], task_ids[half:])
        return Predictions(np.concatenate([a.scores, b.scores]), a.top_label + b.top_label,
                           np.concatenate([a.top_score, b.top_score]), a.errors + b.errors)
