"""The regression check of a version built from a previous one, before it is published: every
task it keeps answers as in the previous version.

- ``tasks``: each kept task has the same id, name, labels and activation.
- ``serving_default``: every kept task on every probe text recorded in the previous version's
  ``headswitch.json``, in one shuffled mixed-task batch (run in chunks) through both versions:
  the same scores within ``ATOL`` (the verification's limit; a head regrouped with new heads of its
  shape may round differently), zero padding, no error, and the same ``top_label`` wherever the
  previous version's best class leads by more than ``2 * ATOL``.
- ``by_name``: each kept task once by name, answering as by id.
- removed tasks: their ids answer the "was removed" message.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from headswitch import contract as c
from headswitch.tasks import TaskList

from ._errors import ExportError
from ._verify import ATOL

CHUNK = 2048  # examples per call at most
CHUNK_TEXT_BYTES = 1 << 20  # text per call at most: the backbone's memory grows with it
# (bench/from_bench.py measures the peak RSS of a version of 1000 tasks built --from:
# bench/results/from-1000.json)
_SHOWN = 10


def _tasks(loaded: Any) -> TaskList:
    import tensorflow as tf

    out = loaded.signatures[c.SIGNATURE_TASKS](**{c.INPUT_UNUSED: tf.constant([0], tf.int32)})
    return TaskList.from_columns(*(out[name].numpy()[0] for name in c.TASKS_OUTPUTS))


def _chunks(sizes: list[int]) -> list[tuple[int, int]]:
    """(start, stop) of consecutive calls: at most CHUNK examples and about CHUNK_TEXT_BYTES of
    text each (always at least one example)."""
    spans, start, total = [], 0, 0
    for i, size in enumerate(sizes):
        if i > start and (i - start >= CHUNK or total + size > CHUNK_TEXT_BYTES):
            spans.append((start, i))
            start, total = i, 0
        total += size
    if start < len(sizes):
        spans.append((start, len(sizes)))
    return spans


def _run(loaded: Any, texts: npt.NDArray[Any], ids: npt.NDArray[Any]) -> dict[str, Any]:
    import tensorflow as tf

    parts: dict[str, list[Any]] = {k: [] for k in c.PREDICT_OUTPUTS}
    for start, stop in _chunks([len(t.encode()) for t in texts]):
        out = loaded.signatures[c.SIGNATURE_IDS](**{
            c.INPUT_TEXT: tf.constant(texts[start: stop], tf.string),
            c.INPUT_TASK_ID: tf.constant(ids[start: stop], tf.int32)})
        for k in c.PREDICT_OUTPUTS:
            parts[k].append(out[k].numpy())
    width = max(p.shape[1] for p in parts[c.OUTPUT_SCORES])
    parts[c.OUTPUT_SCORES] = [np.pad(p, [(0, 0), (0, width - p.shape[1])])
                              for p in parts[c.OUTPUT_SCORES]]
    return {k: np.concatenate(v) for k, v in parts.items()}


def check_kept(previous: Any, new: Any, kept: list[tuple[int, str, int]], texts: list[str],
               removed: list[tuple[int, str]], before: str, seed: int = 0) -> list[float]:
    """``kept``: (id, name, class count) of every task kept from ``before`` (e.g. "version 3");
    ``removed``: (id, message) of removed tasks. Returns each kept task's largest score
    difference; raises if a task answers differently."""
    import tensorflow as tf

    hint = ("their heads as stored in {before} do not reproduce what {before} serves (its "
            "assets.extra changed?); pass their model files again: --replace NAME=FILE")

    def fail(what: str, names: list[str]) -> ExportError:
        shown = ", ".join(names[:_SHOWN]) + (", ..." if len(names) > _SHOWN else "")
        return ExportError(f"regression check failed: {len(names)} kept task(s) {what}: "
                           f"{shown}", hint=hint.format(before=before))

    if not kept:
        return []
    old_tasks, new_tasks = _tasks(previous).by_id, _tasks(new).by_id
    moved = [name for task_id, name, _ in kept if new_tasks.get(task_id) != old_tasks[task_id]]
    if moved:
        raise fail(f"have another id, name, labels or activation than in {before}", moved)

    n, p = len(kept), len(texts)
    order = np.random.default_rng(seed).permutation(n * p)
    task_of, text_of = order // p, order % p
    ids = np.array([kept[t][0] for t in task_of], np.int32)
    batch = np.array(texts, dtype=object)[text_of]
    old, mine = _run(previous, batch, ids), _run(new, batch, ids)
    widths = np.array([kept[t][2] for t in task_of])
    columns = np.arange(max(old[c.OUTPUT_SCORES].shape[1], mine[c.OUTPUT_SCORES].shape[1]))
    real = columns[None, :] < widths[:, None]
    old_scores = np.pad(old[c.OUTPUT_SCORES], [(0, 0), (0, len(columns)
                                                      - old[c.OUTPUT_SCORES].shape[1])])
    new_scores = np.pad(mine[c.OUTPUT_SCORES], [(0, 0), (0, len(columns)
                                                       - mine[c.OUTPUT_SCORES].shape[1])])
    diff = np.where(real, np.abs(new_scores.astype(np.float64) - old_scores), 0.0)
    diff[~np.isfinite(diff)] = np.inf
    row_diff = diff.max(axis=1)
    worst = np.zeros(n)
    np.maximum.at(worst, task_of, row_diff)
    bad = [kept[t][1] for t in range(n) if not worst[t] <= ATOL]
    if bad:
        raise fail(f"answer differently than in {before} (max |score difference| "
                   f"{worst.max():.3g}, limit {ATOL})", bad)
    errors = np.array([bool(e) for e in mine[c.OUTPUT_ERROR]])
    padding = np.any(np.where(real, 0.0, new_scores) != 0, axis=1)
    ranked = np.sort(np.where(real, old_scores, -np.inf), axis=1)
    leads = (widths == 1) | (ranked[:, -1] - ranked[:, -2] > 2 * ATOL)
    labels = (mine[c.OUTPUT_TOP_LABEL] != old[c.OUTPUT_TOP_LABEL]) & leads
    for what, rows in (("report an error", errors), ("have non-zero padding scores", padding),
                       (f"give another top_label than in {before}", labels)):
        if rows.any():
            raise fail(what, sorted({kept[t][1] for t in task_of[rows]}))

    one = np.arange(n)
    by_id = _run(new, np.array(texts, dtype=object)[one % p],
                 np.array([k[0] for k in kept], np.int32))
    by_name = new.signatures[c.SIGNATURE_NAMES](**{
        c.INPUT_TEXT: tf.constant([texts[i % p] for i in one], tf.string),
        c.INPUT_TASK: tf.constant([k[1] for k in kept], tf.string)})
    named = by_name[c.OUTPUT_SCORES].numpy()
    mismatch = [kept[t][1] for t in one if not np.max(np.abs(
        named[t, : kept[t][2]] - by_id[c.OUTPUT_SCORES][t, : kept[t][2]])) <= ATOL]
    if mismatch:
        raise fail("answer differently by name than by id", mismatch)

    if removed:
        gone = _run(new, np.array([texts[0]] * len(removed), dtype=object),
                    np.array([i for i, _ in removed], np.int32))
        wrong = [str(i) for (i, message), got in zip(removed, gone[c.OUTPUT_ERROR])
                 if got.decode() != message]
        if wrong:
            raise ExportError(f"removed task ids {', '.join(wrong)} do not answer that they "
                              "were removed", hint="this is a headswitch bug; please report it")
    return [float(w) for w in worst]
