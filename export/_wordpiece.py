"""An in-graph WordPiece tokenizer that gives the token ids a Hugging Face tokenizer gives.

Configured from the files ``save_pretrained`` writes (``tokenizer.json`` when present, else
``vocab.txt`` with ``tokenizer_config.json`` and ``special_tokens_map.json``, read through
transformers' own conversion), for the WordPiece families: BERT, DistilBERT, ELECTRA,
MobileBERT and the like. What runs in the graph, per text (TensorFlow core ops, plus TF Text's
``FastWordpieceTokenizeWithOffsets``, which TF Serving links):

1. the added tokens (``[CLS]``, ``[SEP]``, ... written in the text itself) are split out of
   the raw text (leftmost, longest first), as the Hugging Face tokenizer matches them before
   normalizing; invalid UTF-8 becomes U+FFFD, which the normalizer removes;
2. every character is replaced by what the tokenizer's normalizer and pre-tokenizer make of it
   (removed, a space, isolated between spaces, lower-cased, accents stripped, ...): a table of
   code-point ranges computed from the Hugging Face ``tokenizers`` normalizer itself, one
   lookup (``searchsorted``) per character, so the Unicode tables are the tokenizer's own;
3. words are split on spaces; a word longer than the tokenizer's ``max_input_chars_per_word``
   becomes the unknown token; WordPiece (greedy longest match first, ``##`` continuation) on
   the rest;
4. truncation to ``max_length`` (on the tokenizer's truncation side), the special tokens of the
   post-processor's single-sequence template, padding to the longest text of the batch.

The normalizer's steps must be per character (BertNormalizer, NFD, lower case, strip accents);
tokenizers that TF Text cannot reproduce exactly are refused: byte-level BPE (RoBERTa, GPT-2),
SentencePiece / Unigram (ALBERT, T5, XLM-R), and other normalizers or pre-tokenizers.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ._errors import ExportError
from ._text_ops import import_tf_text

TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_FILES = (TOKENIZER_JSON, "vocab.txt", "tokenizer_config.json",
                   "special_tokens_map.json")
INSTALL_HF = 'pip install "headswitch[hf]"  (transformers 4.x with TensorFlow, tf-keras, ' \
    "tensorflow-text)"
# Normalizers whose every step maps each character on its own (NFD reorders combining marks,
# which every char-local step here leaves in place or strips).
_CHAR_NORMALIZERS = ("BertNormalizer", "NFD", "NFKD", "Lowercase", "StripAccents")
_BPE_FILES = ("merges.txt", "vocab.json")
_SENTENCEPIECE_FILES = ("spiece.model", "sentencepiece.bpe.model", "sentencepiece.model",
                        "spm.model", "tokenizer.model")
_BIG = 10**8  # model_max_length above this means "not set" (transformers uses 1e30)
_SELF = -1  # in the character table: the character itself
_SPACE = 32
_MARK = b"\xff"  # never in UTF-8 text
_SEPARATOR = "!"  # joins characters for the bulk normalization (no other character makes it)


@dataclasses.dataclass(frozen=True)
class WordPieceSpec:
    """Everything the in-graph tokenizer needs, JSON-serializable (``to_config``)."""

    tokens: tuple[str, ...]  # the vocabulary
    ids: tuple[int, ...]  # each token's id
    normalizer: str  # the ``tokenizers`` normalizer as JSON ("null" for none)
    unknown: str
    prefix: str  # continuing-subword prefix, "##"
    max_word_chars: int
    added: tuple[tuple[str, int], ...]  # tokens matched in the raw text: (content, id)
    before: tuple[tuple[int, int], ...]  # (id, type id) of special tokens before the text
    after: tuple[tuple[int, int], ...]  # ... and after it
    type_id: int  # the type id of the text's tokens
    pad_id: int
    max_length: int
    truncation_side: str  # "right" or "left"

    def to_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> WordPieceSpec:
        fields = dict(config)
        for name in ("tokens", "ids"):
            fields[name] = tuple(fields[name])
        for name in ("added", "before", "after"):
            fields[name] = tuple(tuple(pair) for pair in fields[name])
        return cls(**fields)

    @property
    def vocabulary(self) -> list[str]:
        """The tokens in id order (how layer comparisons and probe texts read a vocabulary)."""
        return [token for _, token in sorted(zip(self.ids, self.tokens))]


# ---------------------------------------------------------------- reading the files


def _json_file(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ExportError(f"cannot read {path}: {e}") from e


def has_tokenizer(folder: Path) -> bool:
    return (folder / TOKENIZER_JSON).is_file() or (folder / "vocab.txt").is_file() or any(
        (folder / name).is_file() for name in (*_BPE_FILES, *_SENTENCEPIECE_FILES))


def _refuse(folder: Path, what: str) -> ExportError:
    return ExportError(
        f"the tokenizer in {folder} is {what}: TF Text cannot reproduce its token ids exactly, "
        "so the merged model could not take raw text",
        hint="headswitch tokenizes in the graph for WordPiece tokenizers (BERT, DistilBERT, "
        "ELECTRA, MobileBERT and the like); for other tokenizers, export Keras models that "
        "take raw text themselves")


def _check_family(folder: Path, tokenizer: dict[str, Any] | None) -> None:
    """Refuse tokenizers that are not WordPiece, naming what they are."""
    model = (tokenizer or {}).get("model") or {}
    kind = model.get("type")
    pre = json.dumps((tokenizer or {}).get("pre_tokenizer"))
    if kind == "BPE" or (kind is None and any((folder / f).is_file() for f in _BPE_FILES)):
        if "ByteLevel" in pre or kind is None:
            raise _refuse(folder, "a byte-level BPE tokenizer (RoBERTa, GPT-2 and the like)")
        raise _refuse(folder, "a BPE tokenizer")
    if kind == "Unigram" or (kind is None and any((folder / f).is_file()
                                                  for f in _SENTENCEPIECE_FILES)):
        raise _refuse(folder, "a SentencePiece (Unigram) tokenizer (ALBERT, T5, XLM-R and the "
                      "like)")
    if kind is not None and kind != "WordPiece":
        raise _refuse(folder, f"a {kind} tokenizer")


def _fast_tokenizer_json(folder: Path) -> dict[str, Any]:
    """tokenizer.json, or the fast tokenizer transformers builds from the slow tokenizer's
    files (vocab.txt and tokenizer_config.json), as ``AutoTokenizer`` does."""
    data = _json_file(folder / TOKENIZER_JSON)
    if data is not None:
        return dict(data)
    try:
        from transformers import AutoTokenizer
    except ImportError as e:
        raise ExportError(f"{folder} has no tokenizer.json; reading vocab.txt and "
                          "tokenizer_config.json needs transformers", hint=INSTALL_HF) from e
    auto: Any = AutoTokenizer
    try:
        tokenizer = auto.from_pretrained(str(folder), use_fast=True, local_files_only=True)
    except Exception as e:
        raise ExportError(f"cannot read the tokenizer in {folder}: {type(e).__name__}: "
                          f"{str(e).splitlines()[0][:300] if str(e) else ''}",
                          hint="the folder needs the files tokenizer.save_pretrained(folder) "
                          "writes") from e
    if not getattr(tokenizer, "is_fast", False):
        raise _refuse(folder, f"a {type(tokenizer).__name__} without a fast version")
    return dict(json.loads(tokenizer.backend_tokenizer.to_str()))


def _check_normalizer(folder: Path, normalizer: Any) -> None:
    steps = [] if normalizer is None else (
        normalizer.get("normalizers", []) if normalizer.get("type") == "Sequence"
        else [normalizer])
    odd = [str(s.get("type")) for s in steps if s.get("type") not in _CHAR_NORMALIZERS]
    if odd:
        raise _refuse(folder, f"a WordPiece tokenizer whose normalizer uses {', '.join(odd)}")


def _template(folder: Path, processor: Any, ids: dict[str, int]
              ) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int]:
    """(before, after, type id of the text) for one sequence, from the post-processor."""
    if processor is None:
        return [], [], 0
    kind = processor.get("type")
    if kind == "Sequence":
        found = [p for p in processor.get("processors", [])
                 if p.get("type") in ("TemplateProcessing", "BertProcessing")]
        if len(found) != 1:
            raise _refuse(folder, "a tokenizer with an unusual post-processor")
        return _template(folder, found[0], ids)
    if kind == "BertProcessing":
        (_, cls_id), (_, sep_id) = processor["cls"], processor["sep"]
        return [(int(cls_id), 0)], [(int(sep_id), 0)], 0
    if kind != "TemplateProcessing":
        raise _refuse(folder, f"a tokenizer with a {kind} post-processor")
    specials = processor.get("special_tokens", {})
    before: list[tuple[int, int]] = []
    after: list[tuple[int, int]] = []
    type_id: int | None = None
    for piece in processor["single"]:
        if "Sequence" in piece:
            type_id = int(piece["Sequence"].get("type_id", 0))
            continue
        token = piece["SpecialToken"]
        name, piece_type = token["id"], int(token.get("type_id", 0))
        token_ids = specials.get(name, {}).get("ids") or [ids[name]]
        (before if type_id is None else after).extend((int(i), piece_type) for i in token_ids)
    return before, after, type_id or 0


def read_spec(folder: Path, *, max_length: int | None = None,
              max_position_embeddings: int | None = None) -> WordPieceSpec:
    """The tokenizer the files in ``folder`` describe. ``max_length`` overrides the
    tokenizer's ``model_max_length``; ``max_position_embeddings`` (the model's) is the limit
    when neither is set."""
    folder = Path(folder)
    if not has_tokenizer(folder):
        raise ExportError(f"no tokenizer files in {folder} (tokenizer.json or vocab.txt)",
                          hint="save the tokenizer beside the model "
                          "(tokenizer.save_pretrained(folder)) or pass --tokenizer DIR")
    _check_family(folder, _json_file(folder / TOKENIZER_JSON))
    data = _fast_tokenizer_json(folder)
    _check_family(folder, data)
    config = _json_file(folder / "tokenizer_config.json") or {}
    model = data["model"]
    vocab: dict[str, int] = {str(k): int(v) for k, v in model["vocab"].items()}
    pre = data.get("pre_tokenizer")
    if pre is None or pre.get("type") != "BertPreTokenizer":
        raise _refuse(folder, "a WordPiece tokenizer with the pre-tokenizer "
                      f"{(pre or {}).get('type')} (headswitch reproduces BertPreTokenizer)")
    _check_normalizer(folder, data.get("normalizer"))
    added: list[tuple[str, int]] = []
    for token in data.get("added_tokens", []):
        if token.get("single_word"):
            raise _refuse(folder, f"a tokenizer with the single-word added token "
                          f"{token['content']!r}")
        if token.get("normalized") and not token.get("special"):
            raise _refuse(folder, f"a tokenizer with the added token {token['content']!r}, "
                          "matched after normalization")
        added.append((str(token["content"]), int(token["id"])))
        vocab.setdefault(str(token["content"]), int(token["id"]))
    unknown = str(model.get("unk_token", "[UNK]"))
    if unknown not in vocab:
        raise ExportError(f"the tokenizer in {folder}: its unknown token {unknown!r} is not in "
                          "its vocabulary")
    before, after, type_id = _template(folder, data.get("post_processor"), vocab)
    pad = config.get("pad_token") or "[PAD]"
    pad = pad.get("content") if isinstance(pad, dict) else pad
    if max_length is None:
        limit = config.get("model_max_length")
        max_length = int(limit) if isinstance(limit, (int, float)) and limit < _BIG else (
            max_position_embeddings)
    if max_length is None:
        raise ExportError(f"the tokenizer in {folder} sets no maximum length "
                          "(model_max_length)", hint="set model_max_length in "
                          "tokenizer_config.json")
    if max_length <= len(before) + len(after):
        raise ExportError(f"the tokenizer in {folder}: maximum length {max_length} leaves no "
                          "room for the text after its special tokens")
    side = str(config.get("truncation_side", "right"))
    if side not in ("right", "left"):
        raise ExportError(f"the tokenizer in {folder}: unknown truncation_side {side!r}")
    tokens = sorted(vocab, key=lambda t: vocab[t])
    return WordPieceSpec(
        tokens=tuple(tokens), ids=tuple(vocab[t] for t in tokens),
        normalizer=json.dumps(data.get("normalizer"), sort_keys=True), unknown=unknown,
        prefix=str(model.get("continuing_subword_prefix", "##")),
        max_word_chars=int(model.get("max_input_chars_per_word", 100)),
        added=tuple(sorted(added, key=lambda a: -len(a[0]))),
        before=tuple(before), after=tuple(after), type_id=type_id,
        pad_id=int(vocab.get(str(pad), 0)), max_length=int(max_length), truncation_side=side)


# ---------------------------------------------------------------- the character table


def _normalizer_and_pre_tokenizer(normalizer: str) -> tuple[Any, Any]:
    from tokenizers import Tokenizer

    return_tokenizer = Tokenizer.from_str(json.dumps({
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
        "normalizer": json.loads(normalizer), "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": None, "decoder": None,
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}}))
    return return_tokenizer.normalizer, return_tokenizer.pre_tokenizer


def _normalize_each(normalizer: Any, chars: list[str]) -> list[str]:
    """What the normalizer makes of each character on its own, in bulk."""
    if normalizer is None:
        return list(chars)
    out: list[str] = []
    step = 4096
    for i in range(0, len(chars), step):
        part = chars[i: i + step]
        joined = normalizer.normalize_str(_SEPARATOR + _SEPARATOR.join(part) + _SEPARATOR)
        pieces = joined.split(_SEPARATOR)[1:-1]
        if len(pieces) != len(part):  # a character normalized into the separator
            pieces = [normalizer.normalize_str(c) for c in part]
        out += pieces
    return out


def _kinds(pre_tokenizer: Any, chars: list[str]) -> dict[str, int]:
    """How the pre-tokenizer treats each character: 0 splits (whitespace), 1 isolated
    (punctuation), 2 part of a word. Each character is read between two letters."""
    kinds: dict[str, int] = {}
    step = 4096
    for i in range(0, len(chars), step):
        part = chars[i: i + step]
        text = "a" + "a".join(part) + "a"
        cover = np.zeros(len(text), np.int8)
        for _, (start, end) in pre_tokenizer.pre_tokenize_str(text):
            cover[start:end] = 1 if end - start == 1 else 2
        for j, c in enumerate(part):
            kinds[c] = int(cover[2 * j + 1])
    return kinds


@functools.lru_cache(maxsize=4)
def char_table(normalizer: str) -> tuple[npt.NDArray[np.int32], list[list[int]]]:
    """Code-point ranges and what each character of a range becomes: ``starts[r]`` is the
    first code point of range r, ``pieces[r]`` its code points, where -1 stands for the
    character itself and 32 (a space) separates words. Computed from the ``tokenizers``
    normalizer and BertPreTokenizer themselves (a few seconds; cached per normalizer)."""
    norm, pre = _normalizer_and_pre_tokenizer(normalizer)
    points = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    chars = [chr(c) for c in points]
    normalized = _normalize_each(norm, chars)
    kinds = _kinds(pre, sorted(set("".join(normalized))))
    starts: list[int] = []
    pieces: list[list[int]] = []
    previous: list[int] | None = None
    for c, char, out in zip(points, chars, normalized):
        if out == char and kinds[char] == 2:
            piece = [_SELF]
        elif out == char and kinds[char] == 1:
            piece = [_SPACE, _SELF, _SPACE]
        else:
            piece = []
            for x in out:
                kind = kinds[x]
                point = _SELF if x == char else ord(x)
                piece += [_SPACE] if kind == 0 else ([_SPACE, point, _SPACE] if kind == 1
                                                     else [point])
        if piece != previous:
            starts.append(c)
            pieces.append(piece)
            previous = piece
    # surrogates cannot come out of UTF-8 decoding; a gap in the table keeps them with the
    # range before, which is harmless.
    return np.asarray(starts, np.int32), pieces


# ---------------------------------------------------------------- the graph


def _re2_literal(token: str) -> str:
    """``token`` as an RE2 pattern that matches it literally."""
    return "".join("\\" + c if c in "\\.+*?()|[]{}^$" else c for c in token)


def wordpiece_model(spec: WordPieceSpec) -> npt.NDArray[np.uint8]:
    """TF Text's FastWordpiece model (a flatbuffer) for the vocabulary, built once and kept in
    the graph as a constant."""
    tf_text = import_tf_text("the in-graph WordPiece tokenizer")
    # Words longer than max_word_chars become the unknown token before WordPiece runs, so the
    # byte limit (TF Text counts bytes, Hugging Face characters) never applies.
    built = tf_text.FastWordpieceTokenizer(
        vocab=list(spec.tokens), suffix_indicator=spec.prefix,
        max_bytes_per_word=4 * spec.max_word_chars + 4, unknown_token=spec.unknown,
        no_pretokenization=True)
    return np.asarray(built._model.numpy(), np.uint8)


class TokenizerGraph:
    """The tokenizer's computation, with its tables as constants (numpy arrays)."""

    def __init__(self, spec: WordPieceSpec) -> None:
        self.spec = spec
        self.starts, pieces = char_table(spec.normalizer)
        self.piece_values = np.asarray([v for p in pieces for v in p], np.int32)
        self.piece_splits = np.cumsum([0] + [len(p) for p in pieces]).astype(np.int64)
        self.model = wordpiece_model(spec)
        order = np.asarray(spec.ids, np.int64)
        self.id_map = None if np.array_equal(order, np.arange(len(order))) else order
        self.added = [token for token, _ in spec.added]
        self.added_ids = np.asarray([i for _, i in spec.added], np.int64)
        self.pattern = "|".join(_re2_literal(token) for token in self.added)

    def _words(self, tf: Any, text: Any) -> Any:
        """[n] texts -> [n, (words)] normalized, pre-tokenized words."""
        points = tf.strings.unicode_decode(text, "UTF-8", errors="replace")
        flat = points.flat_values
        rows = tf.searchsorted(tf.constant(self.starts), flat, side="right") - 1
        table = tf.RaggedTensor.from_row_splits(tf.constant(self.piece_values),
                                                tf.constant(self.piece_splits))
        pieces = tf.gather(table, rows)
        values = tf.where(pieces.flat_values == _SELF,
                          tf.gather(flat, pieces.value_rowids()), pieces.flat_values)
        out = points.with_flat_values(pieces.with_flat_values(values)).merge_dims(1, 2)
        return tf.strings.split(tf.strings.unicode_encode(out, "UTF-8"))

    def _pieces(self, tf: Any, words: Any) -> Any:
        """[n, (words)] -> [n, (tokens)] WordPiece ids."""
        tf_text = import_tf_text("the in-graph WordPiece tokenizer")
        spec = self.spec
        flat = words.flat_values
        long = tf.strings.length(flat, unit="UTF8_CHAR") > spec.max_word_chars
        flat = tf.where(long, tf.constant(spec.unknown), flat)
        wordpiece = tf_text.FastWordpieceTokenizer(model_buffer=tf.constant(self.model),
                                                   token_out_type=tf.int64)
        ids = wordpiece.tokenize(flat)
        if self.id_map is not None:
            ids = tf.gather(tf.constant(self.id_map), ids)
        return words.with_flat_values(ids).merge_dims(1, 2)

    def ids(self, tf: Any, text: Any) -> tuple[Any, Any]:
        """[b] texts -> ragged [b, (tokens)] ids and type ids, special tokens included,
        truncated."""
        spec = self.spec
        # Valid UTF-8 from here on: no 0xFF byte, which marks the added tokens.
        text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace",
                                            replacement_char=0xFFFD)
        if self.added:
            # Each added token found in the raw text (leftmost, longest first) is put between
            # two marks; split there, they are the odd segments.
            marked = tf.strings.regex_replace(text, self.pattern, _MARK + b"\\0" + _MARK)
            segments = tf.strings.split(marked, sep=_MARK)
            flat = segments.flat_values
            special = tf.math.floormod(tf.ragged.range(segments.row_lengths()).flat_values,
                                       2) == 1
            equal = tf.equal(flat[:, None], tf.constant(self.added)[None, :])
            tokens = self._pieces(tf, self._words(tf, tf.where(special, "", flat)))
            found = tf.gather(tf.constant(self.added_ids),
                              tf.argmax(tf.cast(equal, tf.int32), axis=1))
            tokens = tf.concat([tokens, tf.RaggedTensor.from_row_lengths(
                found[special], tf.cast(special, tf.int64))], axis=1)
            tokens = segments.with_flat_values(tokens).merge_dims(1, 2)
        else:
            tokens = self._pieces(tf, self._words(tf, text))
        room = spec.max_length - len(spec.before) - len(spec.after)
        tokens = tokens[:, :room] if spec.truncation_side == "right" else tokens[:, -room:]
        count = tokens.nrows()
        parts = [tokens]
        types = [tf.fill([tf.size(tokens.flat_values)], tf.constant(spec.type_id, tf.int64))]
        types = [tokens.with_flat_values(types[0])]
        for where, pairs in ((0, spec.before), (1, spec.after)):
            if not pairs:
                continue
            fixed = tf.tile(tf.constant([[i for i, _ in pairs]], tf.int64), [count, 1])
            kinds = tf.tile(tf.constant([[t for _, t in pairs]], tf.int64), [count, 1])
            fixed_r = tf.RaggedTensor.from_tensor(fixed)
            kinds_r = tf.RaggedTensor.from_tensor(kinds)
            if where == 0:
                parts.insert(0, fixed_r)
                types.insert(0, kinds_r)
            else:
                parts.append(fixed_r)
                types.append(kinds_r)
        return tf.concat(parts, axis=1), tf.concat(types, axis=1)

    def __call__(self, text: Any, dtype: Any = None, length: int | None = None
                 ) -> dict[str, Any]:
        """[b] texts -> {input_ids, attention_mask, token_type_ids}, [b, T] each, padded with
        the pad id to the longest text of the batch (or to ``length``)."""
        import tensorflow as tf

        dtype = dtype or tf.int32
        ids, types = self.ids(tf, tf.reshape(text, [-1]))
        shape = None if length is None else [None, length]
        return {
            "input_ids": tf.cast(ids.to_tensor(self.spec.pad_id, shape=shape), dtype),
            "attention_mask": tf.cast(tf.ones_like(ids).to_tensor(0, shape=shape), dtype),
            "token_type_ids": tf.cast(types.to_tensor(0, shape=shape), dtype),
        }


@functools.lru_cache(maxsize=1)
def layer_class() -> type:
    """The tf_keras layer: [b] (or [b, 1]) strings in, the dict of [b, T] token tensors out.
    Its vocabulary (``get_vocabulary``) and configuration are what layer comparisons read."""
    import tensorflow as tf

    from ._keras import import_tf_keras

    tf_keras = import_tf_keras()

    @tf_keras.utils.register_keras_serializable(package="headswitch")
    class WordPieceTokenizer(tf_keras.layers.Layer):  # type: ignore[name-defined]
        def __init__(self, spec: dict[str, Any], output_dtype: str = "int32",
                     length: int | None = None, **kwargs: Any) -> None:
            kwargs["trainable"] = False  # nothing to train
            super().__init__(**kwargs)
            self.spec = WordPieceSpec.from_config(spec)
            self.output_dtype = output_dtype
            self.length = length
            self.graph = TokenizerGraph(self.spec)

        @tf.autograph.experimental.do_not_convert  # plain TensorFlow: nothing to convert
        def call(self, text: Any, training: Any = None) -> Any:
            return self.graph(text, tf.as_dtype(self.output_dtype), self.length)

        def get_vocabulary(self) -> list[str]:
            return self.spec.vocabulary

        def get_config(self) -> dict[str, Any]:
            # The vocabulary under "vocabulary" (which layer comparisons leave to
            # get_vocabulary), its digest in the configuration.
            config = super().get_config()
            spec = self.spec.to_config()
            spec["vocabulary"] = {"tokens": spec.pop("tokens"), "ids": spec.pop("ids")}
            spec["vocabulary_sha256"] = _digest(self.spec.tokens, self.spec.ids)
            config.update(spec=spec, output_dtype=self.output_dtype, length=self.length)
            return dict(config)

        @classmethod
        def from_config(cls, config: dict[str, Any]) -> Any:
            config = dict(config)
            spec = dict(config.pop("spec"))
            spec.pop("vocabulary_sha256", None)
            spec.update(spec.pop("vocabulary"))
            return cls(spec, **config)

        def compute_output_signature(self, input_signature: Any) -> Any:
            spec = tf.TensorSpec([None, self.length], tf.as_dtype(self.output_dtype))
            return {k: spec for k in ("input_ids", "attention_mask", "token_type_ids")}

    return WordPieceTokenizer


def _digest(tokens: tuple[str, ...], ids: tuple[int, ...]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for token, i in zip(tokens, ids):
        digest.update(f"{i}\x00{token}\x00".encode())
    return digest.hexdigest()


def tokenizer_layer(spec: WordPieceSpec, *, dtype: str = "int32", length: int | None = None,
                    name: str = "tokenizer") -> Any:
    return layer_class()(spec.to_config(), output_dtype=dtype, length=length, name=name)
