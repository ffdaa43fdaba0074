"""The TF-Hub "Classify text with BERT" recipe, built locally and tiny: a preprocessing
SavedModel on TF Text (BERT tokenizer: case folding, WordPiece; returns ``input_word_ids``,
``input_mask``, ``input_type_ids``, as ``bert_en_uncased_preprocess`` does), a BERT-like
encoder SavedModel with dict outputs (``pooled_output``, ``sequence_output``,
``encoder_outputs``), and classifiers made exactly as the tutorial makes them: text ->
``hub.KerasLayer(preprocess)`` -> ``hub.KerasLayer(encoder, trainable=False)`` ->
``outputs["pooled_output"]`` -> Dropout -> Dense, saved as tf_keras SavedModel folders and
``.h5``.

    python tests/export/tfhub_bert.py DIR   # writes DIR/classifier0 (folder), classifier1.h5,
                                             # classifier2 (folder) and the two hub modules
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "quick", "brown", "fox", "lazy",
         "dog", "jump", "##s", "##ed", "over", "movie", "great", "bad", "cafe", "!", ",", "."]
SEQUENCE_LENGTH = 16
HIDDEN = 8


def write_preprocessor(path: Path) -> Path:
    import tensorflow as tf
    import tensorflow_text as text

    path.mkdir(parents=True, exist_ok=True)
    vocab_file = path.parent / f"{path.name}-vocab.txt"
    vocab_file.write_text("\n".join(VOCAB) + "\n")

    class Preprocess(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vocab = tf.saved_model.Asset(str(vocab_file))
            self.table = tf.lookup.StaticVocabularyTable(tf.lookup.TextFileInitializer(
                self.vocab, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64,
                tf.lookup.TextFileIndex.LINE_NUMBER), num_oov_buckets=1)
            self.tokenizer = text.BertTokenizer(self.table, token_out_type=tf.int64,
                                                lower_case=True, unknown_token="[UNK]")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, sentences: Any) -> Any:
            tokens = self.tokenizer.tokenize(sentences).merge_dims(-2, -1)
            trimmed = tokens[:, : SEQUENCE_LENGTH - 2]
            packed, segments = text.combine_segments([trimmed], start_of_sequence_id=2,
                                                     end_of_segment_id=3)
            ids, mask = text.pad_model_inputs(packed, SEQUENCE_LENGTH)
            types, _ = text.pad_model_inputs(segments, SEQUENCE_LENGTH)
            return {"input_word_ids": tf.cast(ids, tf.int32),
                    "input_mask": tf.cast(mask, tf.int32),
                    "input_type_ids": tf.cast(types, tf.int32)}

    tf.saved_model.save(Preprocess(), str(path))
    vocab_file.unlink()
    return path


def write_encoder(path: Path, seed: int = 3) -> Path:
    import tensorflow as tf

    class Encoder(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            normal = tf.random.stateless_normal
            self.embedding = tf.Variable(normal([len(VOCAB) + 1, HIDDEN], [seed, 0]))
            self.types = tf.Variable(normal([2, HIDDEN], [seed, 1]))
            self.layer = tf.Variable(normal([HIDDEN, HIDDEN], [seed, 2]) * 0.5)
            self.pool = tf.Variable(normal([HIDDEN, HIDDEN], [seed, 3]) * 0.5)

        @tf.function(input_signature=[{
            "input_word_ids": tf.TensorSpec([None, None], tf.int32),
            "input_mask": tf.TensorSpec([None, None], tf.int32),
            "input_type_ids": tf.TensorSpec([None, None], tf.int32)}])
        def __call__(self, inputs: Any) -> Any:
            x = tf.gather(self.embedding, inputs["input_word_ids"]) + tf.gather(
                self.types, inputs["input_type_ids"])
            mask = tf.cast(inputs["input_mask"], tf.float32)[:, :, None]
            hidden = tf.tanh(tf.einsum("btd,de->bte", x, self.layer)) * mask
            mean = tf.reduce_sum(hidden, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)
            pooled = tf.tanh(tf.matmul(mean + hidden[:, 0], self.pool))
            return {"pooled_output": pooled, "sequence_output": hidden,
                    "encoder_outputs": [x * mask, hidden]}

    tf.saved_model.save(Encoder(), str(path))
    return path


def classifiers(folder: Path, count: int = 3) -> tuple[list[Path], list[Any]]:
    """The tutorial's classifier ``count`` times on one frozen encoder (different heads),
    saved as folder, .h5, folder, ...; the paths and the models."""
    import tensorflow as tf
    import tensorflow_hub as hub
    import tf_keras

    preprocess = write_preprocessor(folder / "preprocess")
    encoder_path = write_encoder(folder / "encoder")
    paths, models = [], []
    for i in range(count):
        tf_keras.utils.set_random_seed(i)
        text_input = tf_keras.layers.Input(shape=(), dtype=tf.string, name="text")
        encoder_inputs = hub.KerasLayer(str(preprocess), name="preprocessing")(text_input)
        encoder = hub.KerasLayer(str(encoder_path), trainable=False, name="BERT_encoder")
        outputs = encoder(encoder_inputs)
        net = outputs["pooled_output"]
        net = tf_keras.layers.Dropout(0.1)(net)
        net = tf_keras.layers.Dense(i + 1, activation=None, name="classifier")(net)
        model = tf_keras.Model(text_input, net)
        path = folder / (f"classifier{i}.h5" if i % 2 else f"classifier{i}")
        model.save(str(path))
        paths.append(path)
        models.append(model)
    return paths, models


if __name__ == "__main__":
    written, _ = classifiers(Path(sys.argv[1]))
    print(" ".join(str(p) for p in written))
