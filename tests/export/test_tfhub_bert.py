"""The TF-Hub BERT tutorial's classifiers (TF Text preprocessing hub layer, encoder hub layer
with dict outputs, pooled_output, Dropout, Dense) export from tf_keras SavedModel folders and
.h5: the backbone is both hub layers up to ``pooled_output``; without TF Text the refusal names
the ops and the extra."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_plain_headswitch_serve_answers_as_the_export(
        tutorial: dict[str, Any], capfd: pytest.CaptureFixture[str]) -> None:
    """`headswitch serve` in a fresh process (nothing imported by hand) registers TF Text's ops,
    reports the version AVAILABLE and answers REST requests as the exported SavedModel."""
    import tensorflow as tf

    report = exported(capfd, *tutorial["paths"], "--out", tutorial["folder"] / "served")
    rest = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "headswitch", "serve", str(Path(report["path"]).parent),
         "--model-name", "bert", "--rest-port", str(rest), "--grpc-port", str(_free_port())],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{rest}/v1/models/bert"
    try:
        deadline, state = time.monotonic() + 240, None
        while time.monotonic() < deadline and state != "AVAILABLE":
            assert server.poll() is None, server.stderr.read()[-3000:] if server.stderr else ""
            try:
                with urllib.request.urlopen(url, timeout=5) as answer:
                    state = json.load(answer)["model_version_status"][0]["state"]
            except OSError:
                pass
            time.sleep(0.5)
        assert state == "AVAILABLE"
        tasks = [i % 3 for i in range(len(TEXTS))]
        body = json.dumps({"instances": [{"text": t, "task_id": k}
                                         for t, k in zip(TEXTS, tasks)]}).encode()
        request = urllib.request.Request(f"{url}:predict", body,
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            served = np.array([p["scores"] for p in json.load(answer)["predictions"]])
    finally:
        server.terminate()
        server.wait(timeout=30)
    loaded = tf.saved_model.load(report["path"])
    direct = loaded.signatures["serving_default"](text=tf.constant(TEXTS),
                                                  task_id=tf.constant(tasks, tf.int32))
    np.testing.assert_allclose(served, direct["scores"].numpy(), atol=1e-6, rtol=0)
