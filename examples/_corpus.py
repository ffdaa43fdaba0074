"""A small synthetic, seeded text corpus whose sentences carry known signals.

Every sentence is built from word lists: a main topic (plus sometimes a second one), a sentiment
word, optional spam markers, optional urgency words, and filler words in one of four languages.
The generator is sequential, so the first ``n`` sentences for a seed never change with ``n``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

TOPICS: dict[str, tuple[str, ...]] = {
    "sports": ("football", "goal", "team", "match", "coach", "league", "player", "stadium",
               "tennis", "season"),
    "politics": ("election", "senate", "vote", "minister", "policy", "parliament", "campaign",
                 "law", "president", "debate"),
    "technology": ("software", "computer", "phone", "robot", "internet", "chip", "startup",
                   "code", "laptop", "data"),
    "food": ("pizza", "recipe", "chef", "restaurant", "soup", "bread", "cheese", "dinner",
             "pasta", "dessert"),
    "travel": ("flight", "hotel", "beach", "airport", "passport", "museum", "train", "island",
               "tour", "luggage"),
}
SENTIMENTS: dict[str, tuple[str, ...]] = {
    "negative": ("terrible", "awful", "horrible", "bad", "disappointing", "sad", "boring", "poor"),
    "neutral": ("okay", "average", "ordinary", "typical", "usual", "standard", "normal", "plain"),
    "positive": ("great", "wonderful", "excellent", "amazing", "lovely", "fantastic", "happy",
                 "brilliant"),
}
SPAM_WORDS: tuple[str, ...] = ("free", "winner", "click", "prize", "cash", "offer", "bonus",
                               "claim", "price", "guaranteed", "$$$")
URGENT_WORDS: tuple[str, ...] = ("urgent", "asap", "now", "immediately", "hurry", "deadline")
FILLERS: dict[str, tuple[str, ...]] = {
    "english": ("the", "a", "is", "was", "and", "this", "very", "with", "about", "really", "we",
                "it"),
    "spanish": ("el", "los", "es", "muy", "y", "con", "pero", "una", "esto", "nosotros", "fue",
                "sobre"),
    "french": ("le", "les", "est", "tres", "et", "avec", "mais", "une", "cette", "nous", "etait",
               "sur"),
    "german": ("der", "das", "ist", "sehr", "und", "mit", "aber", "ein", "nicht", "wir", "war",
               "uber"),
}

TOPIC_NAMES: list[str] = list(TOPICS)
SENTIMENT_NAMES: list[str] = list(SENTIMENTS)
LANGUAGE_NAMES: list[str] = list(FILLERS)
_LANGUAGE_P = (0.55, 0.15, 0.15, 0.15)
_URGENCY_P = (0.55, 0.25, 0.13, 0.07)
_SPAM_P = 0.25
_SECOND_TOPIC_P = 0.3

# What keras' TextVectorization(standardize="lower_and_strip_punctuation") removes.
_PUNCTUATION = re.compile(r"[!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~']")


@dataclass(frozen=True)
class Corpus:
    """Sentences with their ground truth; arrays are aligned with ``texts``."""

    texts: list[str]
    topic: npt.NDArray[Any]  # int, index into TOPIC_NAMES
    sentiment: npt.NDArray[Any]  # int, index into SENTIMENT_NAMES
    spam: npt.NDArray[Any]  # int, 1 = spam
    language: npt.NDArray[Any]  # int, index into LANGUAGE_NAMES
    tags: npt.NDArray[Any]  # float [n, len(TOPIC_NAMES)], 1 = topic mentioned
    urgency: npt.NDArray[Any]  # float, number of urgency words

    def __len__(self) -> int:
        return len(self.texts)

    def mentions(self, word: str) -> npt.NDArray[Any]:
        """1 where the sentence contains ``word`` as a token, else 0."""
        return np.array([word in tokenize(t) for t in self.texts], dtype=np.int64)


def tokenize(text: str) -> list[str]:
    """Split like the models' TextVectorization layer does (lower case, no punctuation)."""
    return _PUNCTUATION.sub("", text.lower()).split()


def _pick(rng: np.random.Generator, words: tuple[str, ...], k: int = 1) -> list[str]:
    return [words[i] for i in rng.choice(len(words), size=k, replace=False)]


def _sentence(rng: np.random.Generator) -> tuple[str, int, int, int, int, list[int], int]:
    topic = int(rng.integers(len(TOPIC_NAMES)))
    sentiment = int(rng.integers(len(SENTIMENT_NAMES)))
    language = int(rng.choice(len(LANGUAGE_NAMES), p=_LANGUAGE_P))
    spam = int(rng.random() < _SPAM_P)
    urgency = int(rng.choice(len(_URGENCY_P), p=_URGENCY_P))
    tags = [topic]
    body = _pick(rng, TOPICS[TOPIC_NAMES[topic]], int(rng.integers(1, 3)))
    if rng.random() < _SECOND_TOPIC_P:
        other = int(rng.choice([t for t in range(len(TOPIC_NAMES)) if t != topic]))
        tags.append(other)
        body += _pick(rng, TOPICS[TOPIC_NAMES[other]])
    body += _pick(rng, SENTIMENTS[SENTIMENT_NAMES[sentiment]])
    if spam:
        markers = _pick(rng, SPAM_WORDS, int(rng.integers(1, 3)))
        body += [m.upper() if rng.random() < 0.3 else m for m in markers]
    body += _pick(rng, FILLERS[LANGUAGE_NAMES[language]], int(rng.integers(3, 7)))
    body = [body[i] for i in rng.permutation(len(body))]
    words = _pick(rng, URGENT_WORDS, urgency) + body
    end = "!" * urgency if urgency else rng.choice([".", ".", "?"])
    text = " ".join(words)
    text = text[0].upper() + text[1:] + str(end)
    return text, topic, sentiment, spam, language, tags, urgency


def generate_corpus(n: int, *, seed: int = 0) -> Corpus:
    """``n`` labelled sentences, deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    rows = [_sentence(rng) for _ in range(n)]
    tags = np.zeros((n, len(TOPIC_NAMES)), dtype=np.float32)
    for i, row in enumerate(rows):
        tags[i, row[5]] = 1.0
    return Corpus(
        texts=[r[0] for r in rows],
        topic=np.array([r[1] for r in rows], dtype=np.int64),
        sentiment=np.array([r[2] for r in rows], dtype=np.int64),
        spam=np.array([r[3] for r in rows], dtype=np.int64),
        language=np.array([r[4] for r in rows], dtype=np.int64),
        tags=tags,
        urgency=np.array([r[6] for r in rows], dtype=np.float32),
    )


def sample_texts(n: int, *, seed: int = 0) -> list[str]:
    """``n`` sentences of the generated corpus, deterministic per seed (for demos, benchmarks)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return generate_corpus(n, seed=seed).texts


def vocabulary(texts: list[str], max_tokens: int) -> list[str]:
    """Most frequent tokens first (ties alphabetical), leaving room for padding and OOV."""
    counts = Counter(tok for text in texts for tok in tokenize(text))
    ranked = sorted(counts, key=lambda tok: (-counts[tok], tok))
    return ranked[: max_tokens - 2]


def mention_words() -> list[str]:
    """Distinct corpus words for the generated ``mentions_<word>`` tasks.

    Cycles through topic, sentiment and spam words so that neighbouring tasks differ in kind.
    """
    groups = [
        _round_robin(list(TOPICS.values())),
        _round_robin(list(SENTIMENTS.values())),
        [w for w in SPAM_WORDS if w.isalnum()],
    ]
    words = _round_robin([tuple(g) for g in groups])
    return list(dict.fromkeys(words))


def _round_robin(groups: list[tuple[str, ...]]) -> list[str]:
    out: list[str] = []
    for i in range(max(len(g) for g in groups)):
        out += [g[i] for g in groups if i < len(g)]
    return out
