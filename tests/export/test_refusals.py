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
    export,
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
        if how[0] == "--accept-shorter-backbone":  # the report names what left the shared part
            [left] = report["not_shared"]
            assert left["layer"] == "features" and left["split_layer"] == "pool"
            assert [Path(f).name for f in left["files"]] == ["tuned.keras"]
        else:
            assert report["not_shared"] == []
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


def _adapted(folder: Path, seed: int) -> Any:
    """A Keras 3 model whose TextVectorization got its vocabulary from adapt()."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    text = keras.Input(shape=(), dtype="string")
    vectorize = keras.layers.TextVectorization(output_sequence_length=5, name="vectorize")
    vectorize.adapt(tf.constant(["alpha beta", "gamma delta", "epsilon zeta"]))
    trunk = vectorized_trunk(0)[1:]
    x = vectorize(text)
    for layer in trunk:
        x = layer(x)
    return keras.Model(text, keras.layers.Dense(3, activation="softmax")(x))


def test_keras3_h5_loses_an_adapted_vocabulary(tmp_path: Path,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    model = _adapted(tmp_path, 1)
    model.save(tmp_path / "adapted.h5")
    err = refused(capfd, tmp_path / "out", tmp_path / "adapted.h5")
    assert "a Keras 3 .h5 file does not keep the vocabulary of layer 'vectorize'" in err
    assert "Table not initialized" in err and 'save the model as .keras' in err
    # The hint, followed.
    model.save(tmp_path / "adapted.keras")
    report = exported(capfd, tmp_path / "adapted.keras", "--out", tmp_path / "out")
    check_against_originals(report["path"], [keras_original(model)])


def test_no_terminal_codes_in_a_pipe(flat: dict[str, Any], tmp_path: Path) -> None:
    """Run as a user pipes it: neither the report table nor a refusal carries terminal control
    sequences (a message that quotes Keras's own bold error text: the test below)."""
    import subprocess
    import sys

    _adapted(tmp_path, 2).save(tmp_path / "adapted.h5")
    for args in ([flat["paths"]["a"], "--out", tmp_path / "ok"],
                 [tmp_path / "adapted.h5", "--out", tmp_path / "no"]):
        run = subprocess.run([sys.executable, "-m", "headswitch", "export", *map(str, args)],
                             capture_output=True, text=True, timeout=600)
        assert run.returncode in (0, 2), run.stderr[-2000:]
        assert "\x1b[" not in run.stdout and "\x1b[" not in run.stderr
    assert (tmp_path / "ok" / "1").is_dir() and not (tmp_path / "no").exists()


def test_export_errors_drop_terminal_codes() -> None:
    from headswitch.export import ExportError

    error = ExportError("\x1b[1mTable not initialized.\x1b[0m", hint="\x1b[31mfix\x1b[0m")
    assert str(error) == "Table not initialized.\n  hint: fix"


def test_an_unforeseen_failure_is_a_refusal(flat: dict[str, Any], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    """A failure no stage foresaw (here: in the build stage) still ends in a refusal that says
    what to do, with nothing written; HEADSWITCH_TRACEBACK=1 shows the traceback."""
    from headswitch.export import _exporter

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("Shape must be rank 2 but is rank 3\nmore")

    monkeypatch.setattr(_exporter, "build_module", broken)
    err = refused(capfd, tmp_path / "out", flat["paths"]["a"])
    assert "a case it does not handle: ValueError: Shape must be rank 2 but is rank 3;" in err
    assert "headswitch bug" in err and "HEADSWITCH_TRACEBACK=1" in err and "more" not in err
    monkeypatch.setenv("HEADSWITCH_TRACEBACK", "1")
    with pytest.raises(ValueError, match="rank 3"):
        export(capfd, flat["paths"]["a"], "--out", tmp_path / "out")
