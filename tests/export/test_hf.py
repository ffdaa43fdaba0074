"""Hugging Face TF classifiers (three tiny models on one frozen encoder per family) export as
save_pretrained folders, as SavedModels and as functional wrappers; the merged model answers
like the Hugging Face model fed by the Hugging Face tokenizer, and TensorFlow's C++ loader runs
it. Tokenizers and models headswitch cannot reproduce are refused with the reason."""

from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from formats_support import check_against_originals, check_cpp_loader, exported, refused

from headswitch.cli import main

transformers = pytest.importorskip("transformers")
pytest.importorskip("tensorflow_text")
tf_keras = pytest.importorskip("tf_keras")

TEXTS = ["the quick brown fox", "", "Café CAFÉ naïve!", "中文 and 東京 👍", "hello [SEP] world",
         "the " * 80, "unknownword zzz", "Fox, Dog; LAZY dog?"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz",
         *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"], "the", "quick", "brown", "fox",
         "lazy", "dog", "hello", "world", "cafe", "naive", "中", "文", "東", "京", "!", "?", ",",
         ";", ".", "[", "]"]
SIZES = dict(hidden=32, layers=2, heads=2, intermediate=37, positions=64)


def _config(family: str, labels: int) -> Any:
    s = SIZES
    common = dict(vocab_size=len(VOCAB), max_position_embeddings=s["positions"],
                  num_labels=labels)
    if family == "bert":
        return transformers.BertConfig(hidden_size=s["hidden"], num_hidden_layers=s["layers"],
                                       num_attention_heads=s["heads"],
                                       intermediate_size=s["intermediate"], **common)
    if family == "distilbert":
        return transformers.DistilBertConfig(dim=s["hidden"], n_layers=s["layers"],
                                             n_heads=s["heads"], hidden_dim=s["intermediate"],
                                             **common)
    if family == "electra":
        return transformers.ElectraConfig(embedding_size=16, hidden_size=s["hidden"],
                                          num_hidden_layers=s["layers"],
                                          num_attention_heads=s["heads"],
                                          intermediate_size=s["intermediate"], **common)
    return transformers.MobileBertConfig(
        hidden_size=s["hidden"], num_hidden_layers=s["layers"], num_attention_heads=2,
        intermediate_size=s["intermediate"], embedding_size=16, intra_bottleneck_size=16,
        true_hidden_size=16, num_feedforward_networks=1, **common)


CLASSES = {"bert": "TFBertForSequenceClassification",
           "distilbert": "TFDistilBertForSequenceClassification",
           "electra": "TFElectraForSequenceClassification",
           "mobilebert": "TFMobileBertForSequenceClassification"}
BASES = {"bert": "bert", "distilbert": "distilbert", "electra": "electra",
         "mobilebert": "mobilebert"}


def _tokenizer(folder: Path) -> Any:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab-source.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tokenizer = transformers.BertTokenizerFast(str(folder / "vocab-source.txt"),
                                               do_lower_case=True, model_max_length=48)
    (folder / "vocab-source.txt").unlink()
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def _classifiers(family: str) -> list[Any]:
    """Three classifiers (2, 3, 5 classes) sharing one frozen encoder's weights."""
    cls = getattr(transformers, CLASSES[family])
    models: list[Any] = []
    for seed, labels in enumerate((2, 3, 5)):
        tf_keras.utils.set_random_seed(seed)
        model = cls(_config(family, labels))
        model(model.dummy_inputs, training=False)
        if models:
            getattr(model, BASES[family]).set_weights(
                getattr(models[0], BASES[family]).get_weights())
        getattr(model, BASES[family]).trainable = False
        models.append(model)
    return models


def hf_original(model: Any, tokenizer: Any) -> Any:
    """The Hugging Face model fed by the Hugging Face tokenizer."""
    def run(texts: list[str]) -> Any:
        encoded = tokenizer(texts, padding=True, truncation=True, return_tensors="tf")
        if "token_type_ids" not in inspect.signature(model.call).parameters:
            del encoded["token_type_ids"]  # DistilBERT takes none
        return model(dict(encoded), training=False).logits.numpy()
    return run


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Per family: the models, the tokenizer and their save_pretrained folders."""
    base = tmp_path_factory.mktemp("hf")
    tokenizer = _tokenizer(base / "tokenizer")
    out: dict[str, Any] = {"base": base, "tokenizer": tokenizer}
    for family in CLASSES:
        models = _classifiers(family)
        folders = []
        for i, model in enumerate(models):
            folder = base / family / f"task{i}"
            model.save_pretrained(str(folder))
            tokenizer.save_pretrained(str(folder))
            folders.append(folder)
        out[family] = {"models": models, "folders": folders,
                       "originals": [hf_original(m, tokenizer) for m in models]}
    return out


def _check(report: dict[str, Any], originals: list[Any], tasks: int = 3) -> float:
    assert report["non_core_ops"] == ["FastWordpieceTokenizeWithOffsets"]
    worst = float(check_against_originals(report["path"], originals, TEXTS))
    assert worst <= 1e-5
    check_cpp_loader(report["path"], tasks)
    return worst


@pytest.mark.slow
@pytest.mark.parametrize("family", list(CLASSES))
def test_save_pretrained_folders(made: dict[str, Any], family: str,
                                 capfd: pytest.CaptureFixture[str]) -> None:
    got = made[family]
    report = exported(capfd, *got["folders"], "--out", made["base"] / f"out-{family}")
    assert report["split_layer"] == BASES[family]
    assert {t["head"] for t in report["tasks"]} == {"stacked"}
    assert report["tasks"][0]["source_format"] == \
        f"Hugging Face save_pretrained folder ({CLASSES[family]})"
    _check(report, got["originals"])
    if family == "bert":  # the backbone (tokenizer and encoder) as a frozen Keras model
        capfd.readouterr()
        assert main(["backbone", report["path"], "--out",
                     str(made["base"] / "backbone")]) == 0, capfd.readouterr().err
        assert "identical to the version's" in capfd.readouterr().out


@pytest.mark.slow
def test_saved_models_and_the_tf_model_h5(made: dict[str, Any], tmp_path: Path,
                                          capfd: pytest.CaptureFixture[str]) -> None:
    """model.save(dir) with the tokenizer beside it, save_pretrained(saved_model=True)'s
    dir/saved_model/1, and the folder named by its tf_model.h5, in one export (DistilBERT)."""
    models = made["distilbert"]["models"]
    plain = tmp_path / "saved"
    models[0].save(str(plain))
    made["tokenizer"].save_pretrained(str(plain))
    pretrained = tmp_path / "pretrained"
    models[1].save_pretrained(str(pretrained), saved_model=True)
    made["tokenizer"].save_pretrained(str(pretrained))
    h5 = made["distilbert"]["folders"][2] / "tf_model.h5"
    report = exported(capfd, plain, pretrained / "saved_model" / "1", h5,
                      "--out", tmp_path / "out")
    formats = [t["source_format"] for t in report["tasks"]]
    assert formats[0].startswith("Hugging Face SavedModel") and formats[1] == formats[0]
    assert formats[2].startswith("Hugging Face save_pretrained folder")
    _check(report, made["distilbert"]["originals"])


def _wrapper(model: Any, family: str) -> Any:
    """A functional tf_keras classifier on token ids around the Hugging Face base model (its
    main layer for BERT, reading pooler_output; the whole TF*Model for DistilBERT, first
    token), with a Dense head."""
    ids = tf_keras.Input((None,), dtype=tf.int32, name="input_ids")
    mask = tf_keras.Input((None,), dtype=tf.int32, name="attention_mask")
    if family == "bert":
        encoder = model.bert
        features = encoder(input_ids=ids, attention_mask=mask).pooler_output
    else:
        base = transformers.TFDistilBertModel(model.config)
        base(base.dummy_inputs)
        base.distilbert.set_weights(model.distilbert.get_weights())
        base.trainable = False
        features = base(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
    hidden = tf_keras.layers.Dense(8, activation="relu")(features)
    return tf_keras.Model([ids, mask], tf_keras.layers.Dense(3)(hidden))


@pytest.mark.slow
@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_functional_wrappers_with_the_tokenizer_elsewhere(
        made: dict[str, Any], family: str, tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    models = made[family]["models"]
    wrappers, paths = [], []
    for i in range(3):
        tf_keras.utils.set_random_seed(10 + i)
        wrapper = _wrapper(models[0], family)
        path = tmp_path / (f"w{i}.h5" if i % 2 == 0 else f"w{i}")
        wrapper.save(str(path))
        wrappers.append(wrapper)
        paths.append(path)
    tokenizer = made["tokenizer"]
    err = refused(capfd, tmp_path / "refused", *paths)
    assert "no tokenizer files beside the model" in err and "--tokenizer DIR" in err

    def original(wrapper: Any) -> Any:
        def run(texts: list[str]) -> Any:
            encoded = tokenizer(texts, padding=True, truncation=True, return_tensors="tf")
            return wrapper([encoded["input_ids"], encoded["attention_mask"]], training=False)
        return run

    report = exported(capfd, *paths, "--tokenizer", made["base"] / "tokenizer",
                      "--out", tmp_path / "out")
    expected = "bert:pooler_output" if family == "bert" else "tf.__operators__.getitem"
    assert report["split_layer"] == expected
    _check(report, [original(w) for w in wrappers])


def test_refusals_name_the_reason(made: dict[str, Any], tmp_path: Path,
                                  capfd: pytest.CaptureFixture[str]) -> None:
    folder = made["bert"]["folders"][0]
    roberta = tmp_path / "roberta"
    shutil.copytree(folder, roberta)
    for name in ("vocab.txt", "tokenizer.json"):
        (roberta / name).unlink()
    (roberta / "vocab.json").write_text(json.dumps({"a": 0}))
    (roberta / "merges.txt").write_text("#version: 0.2\n")
    err = refused(capfd, tmp_path / "out", roberta)
    assert "byte-level BPE" in err and "WordPiece" in err

    base_only = tmp_path / "base-model"
    base_model = transformers.TFBertModel(_config("bert", 2))
    base_model(base_model.dummy_inputs)
    base_model.save_pretrained(str(base_only))
    err = refused(capfd, tmp_path / "out", base_only)
    assert "not a sequence classifier" in err

    torch_only = tmp_path / "torch-only"
    shutil.copytree(folder, torch_only)
    (torch_only / "tf_model.h5").unlink()
    err = refused(capfd, tmp_path / "out", torch_only)
    assert "no TensorFlow weights" in err and "from_pt=True" in err

    no_tokenizer = tmp_path / "no-tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "tf_model.h5"):
        shutil.copy(folder / name, no_tokenizer / name)
    err = refused(capfd, tmp_path / "out", no_tokenizer)
    assert "--tokenizer DIR" in err


def test_the_ids_equal_hugging_face_on_the_test_texts(made: dict[str, Any]) -> None:
    from headswitch.export._wordpiece import TokenizerGraph, read_spec

    folder = made["bert"]["folders"][0]
    out = TokenizerGraph(read_spec(folder, max_position_embeddings=64))(tf.constant(TEXTS))
    want = made["tokenizer"](TEXTS, padding=True, truncation=True, return_tensors="np")
    np.testing.assert_array_equal(out["input_ids"].numpy(), want["input_ids"])
    np.testing.assert_array_equal(out["attention_mask"].numpy(), want["attention_mask"])
