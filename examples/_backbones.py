"""The shared text backbones (string in, feature vector out), built from stock Keras layers only.

Keras is imported inside the functions so that importing ``headswitch.examples`` stays cheap.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ._corpus import LANGUAGE_NAMES, SENTIMENT_NAMES, TOPIC_NAMES, Corpus, tokenize, vocabulary

SMALL_MAX_TOKENS = 5000
SMALL_EMBEDDING = 64
SMALL_SEQUENCE_LENGTH = 32
BERT_MAX_TOKENS = 8000
BERT_SEQUENCE_LENGTH = 128
BERT_HIDDEN, BERT_HEADS, BERT_FFN, BERT_LAYERS = 256, 4, 1024, 4


def import_keras() -> Any:
    """Import Keras on the TensorFlow backend (the only one the saved models are built for),
    with the settings every headswitch entry point uses (``headswitch._quiet``)."""
    from headswitch._quiet import import_tensorflow

    import_tensorflow()
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "headswitch.examples needs the TensorFlow Keras backend, "
            f"not {keras.backend.backend()!r}"
        )
    return keras


def _text_input(keras: Any) -> Any:
    return keras.Input(shape=(), dtype="string", name="text")


def _vectorizer(keras: Any, vocab: list[str], max_tokens: int, length: int) -> Any:
    return keras.layers.TextVectorization(
        max_tokens=max_tokens,
        output_sequence_length=length,
        standardize="lower_and_strip_punctuation",
        vocabulary=vocab,
        name="vectorize",
    )


def small_backbone(corpus: Corpus, *, seed: int) -> Any:
    """Vectorize -> Embedding(64) -> mean pool -> Dense(64, relu); not yet trained.

    The vocabulary is the corpus vocabulary padded with generated word pieces to 5000 entries,
    the size of a real small text model's (the corpus alone has a few hundred words).
    """
    keras = import_keras()
    init = keras.initializers
    text = _text_input(keras)
    vocab = vocabulary(corpus.texts, SMALL_MAX_TOKENS)
    vocab += [f"wp{i:04d}" for i in range(SMALL_MAX_TOKENS - 2 - len(vocab))]
    vectorize = _vectorizer(keras, vocab, SMALL_MAX_TOKENS, SMALL_SEQUENCE_LENGTH)
    x = vectorize(text)
    x = keras.layers.Embedding(
        vectorize.vocabulary_size(), SMALL_EMBEDDING,
        embeddings_initializer=init.RandomUniform(-0.05, 0.05, seed=seed), name="embed",
    )(x)
    # No mask on purpose: an empty text pools the padding embeddings and stays finite.
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    x = keras.layers.Dense(
        64, activation="relu", kernel_initializer=init.GlorotUniform(seed=seed + 1), name="features"
    )(x)
    return keras.Model(text, x, name="backbone")


def pretrain_small_backbone(backbone: Any, corpus: Corpus, *, seed: int, epochs: int = 5) -> None:
    """Fit the backbone through temporary heads, then freeze it.

    Topic alone would make the features forget everything else (sentiment heads then sit near
    chance), so the temporary heads also cover sentiment, spam and language, like a general
    pre-trained encoder. The temporary heads are thrown away; task heads are trained later.
    """
    keras = import_keras()
    import tensorflow as tf

    targets = {
        "topic": (corpus.topic, len(TOPIC_NAMES)),
        "sentiment": (corpus.sentiment, len(SENTIMENT_NAMES)),
        "spam": (corpus.spam, 2),
        "language": (corpus.language, len(LANGUAGE_NAMES)),
    }
    text = _text_input(keras)
    features = backbone(text)
    dense = keras.layers.Dense
    glorot = keras.initializers.GlorotUniform
    outputs = {
        name: dense(k, activation="softmax", name=name, kernel_initializer=glorot(seed + 2 + i))(
            features
        )
        for i, (name, (_, k)) in enumerate(targets.items())
    }
    losses = {name: "sparse_categorical_crossentropy" for name in targets}
    labels = {name: y for name, (y, _) in targets.items()}
    vocab = backbone.get_layer("vectorize").get_vocabulary()
    labels["words"] = _bag_of_words(corpus.texts, vocab)
    outputs["words"] = dense(
        len(vocab), activation="sigmoid", name="words", kernel_initializer=glorot(seed + 1000)
    )(features)
    losses["words"] = "binary_crossentropy"
    model = keras.Model(text, outputs, name="pretrain")
    model.compile(optimizer=keras.optimizers.Adam(5e-3), loss=losses)
    order = np.random.default_rng(seed).permutation(len(corpus))
    data = tf.data.Dataset.from_tensor_slices(
        (
            np.array(corpus.texts, dtype=object)[order],
            {name: y[order] for name, y in labels.items()},
        )
    ).batch(64)
    model.fit(data, epochs=epochs, shuffle=False, verbose=0)
    backbone.trainable = False


def _bag_of_words(texts: list[str], vocab: list[str]) -> npt.NDArray[Any]:
    """[n, len(vocab)] multi-hot of which vocabulary words each text contains."""
    index = {word: i for i, word in enumerate(vocab)}
    bags = np.zeros((len(texts), len(vocab)), dtype=np.float32)
    for row, text in enumerate(texts):
        bags[row, [index[t] for t in tokenize(text) if t in index]] = 1.0
    return bags


def bert_backbone(corpus: Corpus, *, seed: int) -> Any:
    """A BERT-sized encoder (4 layers, hidden 256, 4 heads, FFN 1024) with random weights.

    The vocabulary is the corpus vocabulary padded with generated word pieces to ~8000 entries.
    Positions come from stock ops on the token ids, so the model needs no custom layers.
    """
    keras = import_keras()
    ops, layers, init = keras.ops, keras.layers, keras.initializers
    vocab = vocabulary(corpus.texts, BERT_MAX_TOKENS)
    vocab += [f"wp{i:04d}" for i in range(BERT_MAX_TOKENS - 2 - len(vocab))]
    text = _text_input(keras)
    ids = _vectorizer(keras, vocab, BERT_MAX_TOKENS, BERT_SEQUENCE_LENGTH)(text)
    positions = ops.cumsum(ops.ones_like(ids), axis=1) - 1
    tokens = layers.Embedding(
        BERT_MAX_TOKENS, BERT_HIDDEN, embeddings_initializer=init.TruncatedNormal(0, 0.02, seed),
        name="token_embed",
    )(ids)
    where = layers.Embedding(
        BERT_SEQUENCE_LENGTH, BERT_HIDDEN,
        embeddings_initializer=init.TruncatedNormal(0, 0.02, seed + 1), name="position_embed",
    )(positions)
    x = layers.Add(name="embed_sum")([tokens, where])
    x = layers.LayerNormalization(epsilon=1e-12, name="embed_norm")(x)
    for i in range(BERT_LAYERS):
        x = _encoder_layer(keras, x, name=f"encoder_{i}", seed=seed + 10 * (i + 1))
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(text, x, name="backbone")


def _encoder_layer(keras: Any, x: Any, *, name: str, seed: int) -> Any:
    layers, init = keras.layers, keras.initializers
    attention = layers.MultiHeadAttention(
        BERT_HEADS, BERT_HIDDEN // BERT_HEADS,
        kernel_initializer=init.TruncatedNormal(0, 0.02, seed), name=f"{name}_attention",
    )(x, x)
    x = layers.LayerNormalization(epsilon=1e-12, name=f"{name}_attention_norm")(
        layers.Add(name=f"{name}_attention_residual")([x, attention])
    )
    h = layers.Dense(
        BERT_FFN, activation="gelu", kernel_initializer=init.TruncatedNormal(0, 0.02, seed + 1),
        name=f"{name}_ffn_in",
    )(x)
    h = layers.Dense(
        BERT_HIDDEN, kernel_initializer=init.TruncatedNormal(0, 0.02, seed + 2),
        name=f"{name}_ffn_out",
    )(h)
    return layers.LayerNormalization(epsilon=1e-12, name=f"{name}_ffn_norm")(
        layers.Add(name=f"{name}_ffn_residual")([x, h])
    )


def backbone_features(backbone: Any, texts: list[str], batch_size: int = 128) -> npt.NDArray[Any]:
    """Run the backbone over ``texts`` once; heads are then trained on these features."""
    import tensorflow as tf

    batches = tf.data.Dataset.from_tensor_slices(np.array(texts, dtype=object)).batch(batch_size)
    return np.asarray(backbone.predict(batches, verbose=0), dtype=np.float32)
