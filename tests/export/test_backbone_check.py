"""Models whose backbone differs from the first model's are refused; nothing is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import pytest

from headswitch.export import ExportError, export_models


def version_folders(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir()) if base.exists() else []


def _altered_copy(source: Path, target: Path, change: str, amount: float = 1e-3) -> Path:
    model = keras.models.load_model(source, compile=False)
    backbone = model.get_layer("backbone")
    if change == "weights":
        embed = backbone.get_layer("embed")
        value = embed.embeddings.numpy()
        value[5, 3] += amount
        embed.embeddings.assign(value)
    else:  # same layers and weights, but two vocabulary entries swapped
        vectorize = backbone.get_layer("vectorize")
        vocab = vectorize.get_vocabulary()[2:]  # drop padding and OOV tokens
        vocab[10], vocab[11] = vocab[11], vocab[10]
        config = vectorize.get_config() | {"vocabulary": vocab, "name": "vectorize"}
        text = keras.Input(shape=(), dtype="string", name="text")
        x = keras.layers.TextVectorization.from_config(config)(text)
        for layer in backbone.layers[2:]:
            x = layer(x)
        x = keras.Model(text, x, name="backbone")(text)
        ops = model.operations
        for op in ops[ops.index(backbone) + 1:]:
            x = op(x)
        model = keras.Model(text, x)
    model.save(target)
    return target


@pytest.mark.parametrize("split_layer", [None, "backbone"])
def test_changed_weights_refused(example_models: Any, tmp_path: Path,
                                 split_layer: str | None) -> None:
    bad = _altered_copy(example_models.paths[2], tmp_path / "bad_weights.keras", "weights")
    base = tmp_path / "out"
    with pytest.raises(ExportError) as info:
        export_models([example_models.paths[0], example_models.paths[1], bad], base,
                      split_layer=split_layer)
    message = str(info.value)
    assert "bad_weights.keras" in message
    assert "embeddings" in message and "max abs diff 0.001" in message
    assert version_folders(base) == []


def test_changed_vocabulary_refused(example_models: Any, tmp_path: Path) -> None:
    bad = _altered_copy(example_models.paths[1], tmp_path / "bad_vocab.keras", "vocabulary")
    base = tmp_path / "out"
    with pytest.raises(ExportError) as info:
        export_models([example_models.paths[0], bad], base, split_layer="backbone")
    assert "bad_vocab.keras" in str(info.value) and "vocabulary" in str(info.value)
    assert version_folders(base) == []


def test_tolerance_accepts_tiny_differences(example_models: Any, tmp_path: Path) -> None:
    slightly = _altered_copy(example_models.paths[1], tmp_path / "slightly.keras", "weights",
                             amount=1e-7)
    with pytest.raises(ExportError):
        export_models([example_models.paths[0], slightly], tmp_path / "strict",
                      split_layer="backbone")
    report = export_models([example_models.paths[0], slightly], tmp_path / "loose",
                           split_layer="backbone", tolerance=1e-6)
    assert report.version == 1 and report.max_abs_diff <= 1e-5


def test_corrupt_and_missing_files(example_models: Any, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"this is not a zip file")
    with pytest.raises(ExportError, match="cannot load .*corrupt.keras"):
        export_models([example_models.paths[0], corrupt], tmp_path / "out")
    with pytest.raises(ExportError, match="not found"):
        export_models([tmp_path / "missing.keras"], tmp_path / "out")
    with pytest.raises(ExportError, match="no layer named 'nope'"):
        export_models([example_models.paths[0]], tmp_path / "out", split_layer="nope")
    assert version_folders(tmp_path / "out") == []


def test_manifest_labels_must_match_width(example_models: Any, tmp_path: Path) -> None:
    manifest = tmp_path / "tasks.json"
    manifest.write_text(json.dumps(
        {"tasks": [{"name": "t", "model": str(example_models.paths[0]), "labels": ["only-one"]}]}))
    with pytest.raises(ExportError, match="1 labels but the model .* outputs 5"):
        export_models([], tmp_path / "out", manifest=manifest)
