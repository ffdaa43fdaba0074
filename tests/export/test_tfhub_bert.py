"""The TF-Hub BERT tutorial's classifiers (TF Text preprocessing hub layer, encoder hub layer
with dict outputs, pooled_output, Dropout, Dense) export from tf_keras SavedModel folders and
.h5: the backbone is both hub layers up to ``pooled_output``; without TF Text the refusal names
the ops and the extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from formats_support import (
    check_against_originals,
    check_cpp_loader,
    exported,
    keras_original,
    refused,
)

from headswitch.cli import main

pytest.importorskip("tensorflow_text")
pytest.importorskip("tensorflow_hub")
pytest.importorskip("tf_keras")

TEXTS = ["the quick brown fox", "", "The LAZY dog jumped!", "great movie, bad cafe.",
         "unknown words here", "fox " * 40, "Café 東京 👍"]
SPLIT = "BERT_encoder:pooled_output"


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tfhub_bert import classifiers

    folder = tmp_path_factory.mktemp("tfhub-bert")
    paths, models = classifiers(folder)
    return {"folder": folder, "paths": paths, "models": models}


@pytest.mark.slow
def test_folders_and_h5_export_with_the_backbone_ending_at_pooled_output(
        tutorial: dict[str, Any], capfd: pytest.CaptureFixture[str]) -> None:
    report = exported(capfd, *tutorial["paths"], "--out", tutorial["folder"] / "out")
    assert report["split_layer"] == SPLIT and report["split_mode"] == "auto"
    assert {t["head"] for t in report["tasks"]} == {"stacked"}
    assert {"CaseFoldUTF8", "WordpieceTokenizeWithOffsets"} <= set(report["non_core_ops"])
    worst = check_against_originals(report["path"], [keras_original(m)
                                                     for m in tutorial["models"]], TEXTS)
    assert worst <= 1e-5
    check_cpp_loader(report["path"], 3)
    capfd.readouterr()
    assert main(["backbone", report["path"], "--out", str(tutorial["folder"] / "bb")]) == 2
    err = " ".join(capfd.readouterr().err.split())
    assert "does not rebuild as a Keras model yet" in err and "Traceback" not in err


@pytest.mark.slow
def test_split_layer_names_a_dict_output(tutorial: dict[str, Any], tmp_path: Path,
                                         capfd: pytest.CaptureFixture[str]) -> None:
    paths = tutorial["paths"][:2]
    report = exported(capfd, *paths, "--split-layer", SPLIT, "--out", tmp_path / "out")
    assert report["split_layer"] == SPLIT and report["split_mode"] == "given"
    # The layer's plain name names the one output the heads read.
    report = exported(capfd, *paths, "--split-layer", "BERT_encoder", "--out", tmp_path / "plain")
    assert report["split_layer"] == SPLIT and report["max_abs_diff"] <= 1e-5
    err = refused(capfd, tmp_path / "refused", *paths, "--split-layer", "BERT")
    assert "no layer named 'BERT'" in err and SPLIT in err


@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1], ids=["folder", "h5"])
def test_without_tf_text_the_refusal_names_the_ops_and_the_extra(
        tutorial: dict[str, Any], tmp_path: Path, which: int) -> None:
    """In a process where tensorflow_text cannot be imported (as where it is not installed)."""
    code = ("import sys; sys.modules['tensorflow_text'] = None\n"
            "from headswitch.cli import main\n"
            f"sys.exit(main(['export', {str(tutorial['paths'][which])!r}, "
            f"'--out', {str(tmp_path / 'out')!r}]))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    err = " ".join(run.stderr.split())
    assert run.returncode == 2, err[-2000:]
    assert "Traceback" not in err
    assert "TF Text ops (" in err and "CaseFoldUTF8" in err, err[-2000:]
    assert 'headswitch[text]' in err
    assert "corrupt" not in err and "keras2" not in err
