"""Checking the merged SavedModel against the original models before it is published."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from headswitch import contract as c

from ._errors import ExportError
from ._graph import vocabularies

ATOL = 1e-5
# A task above ATOL still passes when its difference stays within this many times the original
# model's own float32 variation (its answers one text at a time against the whole batch): the
# merged model computes the same function in another summation order, and a head with large
# weights turns that order's rounding into differences the original shows against itself.
VARIATION_FACTOR = 4.0


def own_variation(original: Callable[[list[str]], list[npt.NDArray[Any]]], texts: list[str],
                  outputs: list[int]) -> list[float]:
    """How far an original model's answers move when each text runs alone instead of in the
    batch: the float32 rounding noise of the model itself, per output (task) asked for."""
    batch = original(texts)
    alone = [original([text]) for text in texts]
    return [max(float(np.max(np.abs(batch[k][i].astype(np.float64) - one[k][0])))
                for i, one in enumerate(alone)) for k in outputs]


def probe_texts(backbone_ops: list[Any], seed: int = 0) -> list[str]:
    """Texts that exercise the backbone: vocabulary words, an empty text, odd characters
    and a very long text."""
    words: list[str] = []
    for op in backbone_ops:
        for vocab in vocabularies(op):
            words = [w for w in vocab if w and not w.startswith("[")]
            if words:
                break
        if words:
            break
    if not words:
        words = "the quick brown fox jumps over the lazy dog".split()
    rng = np.random.default_rng(seed)

    def sentence(n: int) -> str:
        return " ".join(str(w) for w in rng.choice(words, size=n))

    return [
        sentence(1), sentence(4), sentence(12).upper(), sentence(30),
        "", "   ", "zzqxj unknown-word!!! 12345",
        "¡Hola! ¿Qué tal? café — 東京 👍",
        sentence(4000),
    ]


def check_merged(loaded: Any, names: list[str], expected: list[npt.NDArray[Any]], texts: list[str],
                 seed: int = 0, labels: list[list[str]] | None = None,
                 tolerated: list[float] | None = None, tolerance: float = 0.0,
                 ids: list[int] | None = None,
                 variation: Callable[[list[int]], list[float]] | None = None,
                 notices: list[str] | None = None) -> list[float]:
    """Run one mixed-task batch through both predict signatures of the loaded model; return the
    worst absolute difference per task and raise if any exceeds ATOL. Also checks that no
    example reports an error, padding scores are 0, and ``top_score``/``top_label`` name the
    original's best class (where it leads by more than ATOL).

    ``ids``: the tasks' ids (default ``0..n-1``); the tasks checked may be some of the model's.

    ``tolerated[t]``: the largest backbone weight difference that ``--tolerance`` let through
    for task t (the merged model runs the first model's backbone for every task).

    ``variation(tasks)``: the originals' own float32 variation (``own_variation``) for tasks
    above ATOL; a task within ``VARIATION_FACTOR`` times it passes, with a line in
    ``notices``."""
    import tensorflow as tf

    n, p = len(names), len(texts)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n * p)
    task_of = (order // p).astype(np.int32)
    text_of = order % p
    batch_text = tf.constant([texts[i] for i in text_of], tf.string)
    batch_ids = task_of if ids is None else np.asarray(ids, np.int32)[task_of]
    worst = np.zeros(n, np.float64)
    results = {
        c.SIGNATURE_IDS: loaded.signatures[c.SIGNATURE_IDS](
            **{c.INPUT_TEXT: batch_text, c.INPUT_TASK_ID: tf.constant(batch_ids)}),
        c.SIGNATURE_NAMES: loaded.signatures[c.SIGNATURE_NAMES](
            **{c.INPUT_TEXT: batch_text,
               c.INPUT_TASK: tf.constant([names[t] for t in task_of], tf.string)}),
    }

    def fail(signature: str, task: int, what: str) -> ExportError:
        return ExportError(f"verification failed ({signature}): task {names[task]!r} {what}",
                           hint="this is a headswitch bug; please report it with the models")

    for signature, out in results.items():
        scores = out[c.OUTPUT_SCORES].numpy()
        top_score = out[c.OUTPUT_TOP_SCORE].numpy()
        top_label = out[c.OUTPUT_TOP_LABEL].numpy()
        errors = out[c.OUTPUT_ERROR].numpy()
        for row, (t, q) in enumerate(zip(task_of, text_of)):
            want = expected[t][q]
            if errors[row]:
                raise fail(signature, t, f"reports an error: {errors[row].decode()}")
            got = scores[row, : want.shape[0]]
            diff = float(np.max(np.abs(got.astype(np.float64) - want)))
            if not np.isfinite(diff):
                diff = np.inf
            worst[t] = max(worst[t], diff)
            if np.any(scores[row, want.shape[0]:] != 0):
                raise fail(signature, t, f"has non-zero padding in {c.OUTPUT_SCORES!r}")
            if abs(float(top_score[row]) - float(np.max(want))) > ATOL + diff:
                raise fail(signature, t, f"top_score {top_score[row]:.6g} is not the best "
                           f"score {np.max(want):.6g}")
            ranked = np.sort(want)
            leads = want.shape[0] == 1 or ranked[-1] - ranked[-2] > 2 * ATOL
            if labels is not None and leads and diff <= ATOL and \
                    top_label[row].decode() != labels[t][int(np.argmax(want))]:
                raise fail(signature, t, f"top_label {top_label[row].decode()!r} is not the "
                           f"original's best class {labels[t][int(np.argmax(want))]!r}")
    bad = [t for t in range(n) if not worst[t] <= ATOL]
    noise: dict[int, float] = {}
    if bad and variation is not None and not (tolerated and any(tolerated[t] > 0 for t in bad)):
        noise = dict(zip(bad, variation(bad)))
        within = [t for t in bad if worst[t] <= VARIATION_FACTOR * noise[t]]
        if notices is not None:
            notices.extend(
                f"task {names[t]!r}: the merged model differs from the original by "
                f"{worst[t]:.3g} (above {ATOL}), within float32 rounding: the original itself "
                f"moves by {noise[t]:.3g} when a text runs alone instead of in a batch "
                f"(its head's large weights amplify summation order)" for t in within)
        bad = [t for t in bad if t not in within]
    if bad:
        listed = ", ".join(f"{names[t]} ({worst[t]:.3g}" + (
            f"; the original's own variation {noise[t]:.3g}" if t in noise else "") + ")"
            for t in bad[:10])
        message = (f"verification failed: the merged model differs from the originals by more "
                   f"than {ATOL} for {len(bad)} task(s): {listed}")
        loosened = [t for t in bad if tolerated and tolerated[t] > 0]
        if tolerated and loosened:
            largest = max(tolerated[t] for t in loosened)
            raise ExportError(
                f"{message}. Their backbones differ from the first model's by up to "
                f"{largest:.3g}, which --tolerance {tolerance:g} allowed, and the merged model "
                "runs the first model's backbone for every task",
                hint="lower --tolerance (0 is exact) or export those models from the same "
                "backbone weights")
        raise ExportError(message, hint="the backbones are identical, so this is a headswitch "
                          "bug; please report it with the models")
    return [float(w) for w in worst]


def replay_warmup(loaded: Any, records: list[Any]) -> None:
    """Run every warmup PredictRequest through the saved model, as TF Serving does at load."""
    import tensorflow as tf

    for record in records:
        request = record.predict_log.request
        signature = loaded.signatures[request.model_spec.signature_name or c.SIGNATURE_IDS]
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        signature(**{k: tf.constant(v) for k, v in inputs.items()})
