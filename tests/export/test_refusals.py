"""Exports that must stop: the message names the cause and the fix, the exit status is 2,
there is no traceback, and nothing is written (not even an empty BASE folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from formats_support import (
    check_against_originals,
    exported,
    keras_original,
    refused,
    vectorized_trunk,
    write_hub_module,
)


def _flat(folder: Path, name: str, layers: list[Any], head_seed: int, width: int = 3) -> Any:
    text = keras.Input(shape=(), dtype="string")
    x = text
    for layer in layers:
        x = layer(x)
    keras.utils.set_random_seed(head_seed)
    model = keras.Model(text, keras.layers.Dense(width, activation="softmax")(x))
    model.save(folder / f"{name}.keras")
    return model


@pytest.fixture(scope="module")
def flat(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """a, b, c share a trunk; 'tuned' fine-tuned its top layer 'features'; 'own' trained its
    own embedding (only the vectorizer is shared with the others)."""
    folder = tmp_path_factory.mktemp("refusals")
    trunk = vectorized_trunk(0)
    models = {name: _flat(folder, name, trunk, seed) for seed, name in enumerate("abc", 1)}
    tuned = trunk[:3] + [keras.layers.Dense(5, activation="tanh", name="features")]
    tuned[3].build((None, 4))
    tuned[3].set_weights([w + 0.01 for w in trunk[3].get_weights()])
    models["tuned"] = _flat(folder, "tuned", tuned, 7)
    models["own"] = _flat(folder, "own", [trunk[0], *vectorized_trunk(9)[1:]], 8)
    return {"folder": folder, "models": models,
            "paths": {name: folder / f"{name}.keras" for name in models}}


def test_split_earlier_than_the_heads_needs_a_decision(flat: dict[str, Any],
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    folder, paths = flat["folder"], flat["paths"]
    err = refused(capfd, folder / "x" / "base", paths["a"], paths["b"], paths["tuned"])
    assert "they form 2 backbone groups" in err
    assert "group 1: 2 models up to layer 'features'" in err
    assert "group 2: 1 model up to layer 'pool'" in err and "tuned.keras" in err
    assert "variable 'features/kernel' differs (max abs diff 0.01) at layer 'features'" in err
    assert "--backbone-groups" in err
    assert "--split-layer pool" in err and "--accept-shorter-backbone" in err
    assert not (folder / "x").exists()
    # The first model is the odd one: the others share 'features' with each other.
    err = refused(capfd, folder / "y", paths["tuned"], paths["a"], paths["b"])
    assert "group 1: 1 model up to layer 'pool'" in err and "tuned.keras" in err
    assert "group 2: 2 models up to layer 'features'" in err
    for how in (["--accept-shorter-backbone"], ["--split-layer", "pool"]):
        report = exported(capfd, paths["a"], paths["b"], paths["tuned"], *how,
                          "--out", folder / how[0])
        assert report["split_layer"] == "pool"
    check_against_originals(report["path"], [keras_original(flat["models"][n])
                                             for n in ("a", "b", "tuned")])


def test_only_preprocessing_shared(flat: dict[str, Any],
                                   capfd: pytest.CaptureFixture[str]) -> None:
    folder, paths = flat["folder"], flat["paths"]
    err = refused(capfd, folder / "pre", paths["a"], paths["own"])
    assert "share only up to layer 'vectorize', whose output is int64" in err
    assert "only the text preprocessing is shared" in err
    assert "own.keras; differs from group 1: variable 'embed/embeddings' differs" in err
    assert "--backbone-groups" in err
    err = refused(capfd, folder / "pre", paths["a"], paths["b"], "--split-layer", "vectorize")
    assert "whose output is int64" in err


def test_tolerance_failure_blames_the_tolerance(flat: dict[str, Any], tmp_path: Path,
                                                capfd: pytest.CaptureFixture[str]) -> None:
    model = keras.models.load_model(flat["paths"]["b"])
    embed = model.get_layer("embed")
    noise = np.random.default_rng(0).choice([-1.0, 1.0], embed.embeddings.shape) * 2e-3
    embed.embeddings.assign(embed.embeddings.numpy() + noise.astype("float32"))
    model.save(tmp_path / "drifted.keras")
    err = refused(capfd, tmp_path / "out", flat["paths"]["a"], tmp_path / "drifted.keras",
                  "--tolerance", "0.01")
    assert "verification failed" in err and "drifted" in err
    assert "which --tolerance 0.01 allowed" in err and "lower --tolerance" in err
    assert "headswitch bug" not in err


def test_saved_model_without_keras_metadata(tmp_path: Path,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    module = write_hub_module(tmp_path / "module")
    err = refused(capfd, tmp_path / "out", module)
    assert "SavedModel without Keras metadata" in err and "TFSMLayer" in err
