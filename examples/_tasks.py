"""Which tasks the example heads solve, and their targets on a corpus."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from ._corpus import LANGUAGE_NAMES, SENTIMENT_NAMES, TOPIC_NAMES, Corpus, mention_words


@dataclass(frozen=True)
class TaskSpec:
    """One head: its output activation, label names (one per output) and head shape."""

    name: str
    kind: str  # "softmax" | "sigmoid" | "linear"
    labels: list[str]
    hidden_units: int | None = None  # None: a single Dense; n: Dense(n, relu) -> Dense(k)


_FIXED: tuple[TaskSpec, ...] = (
    TaskSpec("topic", "softmax", list(TOPIC_NAMES)),
    TaskSpec("sentiment", "softmax", list(SENTIMENT_NAMES)),
    TaskSpec("spam", "softmax", ["ham", "spam"]),
    TaskSpec("language", "softmax", list(LANGUAGE_NAMES), hidden_units=16),
    TaskSpec("tags", "sigmoid", list(TOPIC_NAMES)),
    TaskSpec("urgency", "linear", ["urgency"]),
)
MENTIONS_PREFIX = "mentions_"


def task_specs(n_tasks: int) -> list[TaskSpec]:
    """The first ``n_tasks`` tasks: six fixed ones, then generated ``mentions_<word>`` tasks."""
    if n_tasks < 1:
        raise ValueError(f"n_tasks must be >= 1, got {n_tasks}")
    specs = [replace(spec, labels=list(spec.labels)) for spec in _FIXED[:n_tasks]]
    words = mention_words()
    for g in range(n_tasks - len(specs)):
        word, repeat = words[g % len(words)], g // len(words)
        name = f"{MENTIONS_PREFIX}{word}" + (f"_{repeat + 1}" if repeat else "")
        if g % 10 == 9:
            specs.append(TaskSpec(name, "sigmoid", ["yes"]))
        else:
            specs.append(TaskSpec(name, "softmax", ["no", "yes"]))
    return specs


def task_targets(spec: TaskSpec, corpus: Corpus) -> npt.NDArray[Any]:
    """Training targets: class indices for softmax, a 0/1 or real matrix [n, k] otherwise."""
    if spec.name.startswith(MENTIONS_PREFIX):
        word = spec.name[len(MENTIONS_PREFIX):].split("_")[0]
        hits = corpus.mentions(word)
        return hits if spec.kind == "softmax" else hits[:, None].astype(np.float32)
    fixed: dict[str, npt.NDArray[Any]] = {
        "topic": corpus.topic,
        "sentiment": corpus.sentiment,
        "spam": corpus.spam,
        "language": corpus.language,
        "tags": corpus.tags,
        "urgency": corpus.urgency[:, None],
    }
    return fixed[spec.name]
