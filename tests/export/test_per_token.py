"""Splits at a per-token layer: BiLSTM heads on a shared Embedding ([b, T, d] features), two
of three models having fine-tuned the LSTM. Plain, with --accept-shorter-backbone and with
--split-layer at the sequence, the export is exact (the heads run generically on their own
examples) and TF Serving's C++ loader runs it; the report names the layer that left the shared
part. An Embedding that passes a mask (mask_zero=True) to the LSTM never ends the backbone:
the refusal says why, and its hint (--backbone-groups) exports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from formats_support import (
    WORDS,
    check_against_originals,
    check_cpp_loader,
    exported,
    keras_original,
    refused,
)

SUFFIX = {"keras": ".keras", "tf_keras": ""}  # tf_keras: SavedModel folders


def _api(name: str) -> Any:
    if name == "tf_keras":
        return pytest.importorskip("tf_keras")
    import keras

    return keras


def _bilstm_models(folder: Path, api_name: str, mask: bool) -> tuple[list[Path], list[Any]]:
    """Three models: TextVectorization -> Embedding (shared) -> BiLSTM -> Dense(3); the second
    and third fine-tuned the BiLSTM (each its own way)."""
    import tensorflow as tf

    api = _api(api_name)
    tf.random.set_seed(0)
    vectorize = api.layers.TextVectorization(vocabulary=WORDS, output_sequence_length=5,
                                             name="vectorize")
    embed = api.layers.Embedding(len(WORDS) + 2, 4, mask_zero=mask, name="embedding")
    start = api.layers.Bidirectional(api.layers.LSTM(3), name="bilstm")
    start.build((None, 5, 4))
    folder.mkdir(parents=True, exist_ok=True)
    paths, models = [], []
    for i in range(3):
        text = api.Input(shape=(), dtype="string")
        lstm = api.layers.Bidirectional(api.layers.LSTM(3), name="bilstm")
        lstm.build((None, 5, 4))
        lstm.set_weights([w + 0.01 * i for w in start.get_weights()])
        head = api.layers.Dense(3, activation="softmax", name=f"head{i}")
        model = api.Model(text, head(lstm(embed(vectorize(text)))))
        paths.append(folder / f"task{i}{SUFFIX[api_name]}")
        model.save(paths[-1])
        models.append(model)
    return paths, models


@pytest.fixture(scope="module", params=["keras", "tf_keras"])
def bilstm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp(f"per-token-{request.param}")
    paths, models = _bilstm_models(folder / "plain", request.param, mask=False)
    masked, masked_models = _bilstm_models(folder / "masked", request.param, mask=True)
    return {"folder": folder, "paths": paths, "models": models, "masked": masked,
            "masked_models": masked_models}


@pytest.mark.parametrize("how", [[], ["--accept-shorter-backbone"],
                                 ["--split-layer", "embedding"]],
                         ids=["auto", "shorter", "split-layer"])
def test_split_at_the_sequence_exports_exactly(bilstm: dict[str, Any], how: list[str],
                                              capfd: pytest.CaptureFixture[str]) -> None:
    out = bilstm["folder"] / f"out-{'-'.join(how) or 'auto'}"
    report = exported(capfd, *bilstm["paths"], *how, "--out", out)
    assert report["split_layer"] == "embedding"
    assert {t["head"] for t in report["tasks"]} == {"generic"}
    assert report["max_abs_diff"] <= 1e-5
    worst = check_against_originals(report["path"], [keras_original(m)
                                                     for m in bilstm["models"]])
    assert worst <= 1e-5
    check_cpp_loader(report["path"], 3)
    if how[:1] == ["--split-layer"]:
        assert report["not_shared"] == []
    else:  # found automatically: the report says which layer left the shared part, and why
        [left] = report["not_shared"]
        assert left["layer"] == "bilstm" and left["split_layer"] == "embedding"
        assert [Path(f).name for f in left["files"]] == [p.name for p in bilstm["paths"][1:]]
        assert 0.019 < left["max_abs_diff"] < 0.021


def test_the_table_names_the_layer_that_left(bilstm: dict[str, Any],
                                             capfd: pytest.CaptureFixture[str]) -> None:
    from formats_support import export

    code, out, err = export(capfd, *bilstm["paths"], "--out", bilstm["folder"] / "table")
    assert code == 0, err
    out = " ".join(out.split())
    assert "not shared: layer 'bilstm' is fine-tuned in" in out
    assert "shared part ends before it (at 'embedding')" in out and "--backbone-groups" in out


def test_a_mask_never_ends_the_backbone(bilstm: dict[str, Any],
                                        capfd: pytest.CaptureFixture[str]) -> None:
    folder, paths = bilstm["folder"], bilstm["masked"]
    err = refused(capfd, folder / "m1", *paths, "--split-layer", "embedding")
    assert "layer 'embedding' cannot be the split: its output carries a mask" in err
    assert "--backbone-groups" in err
    for how in ([], ["--accept-shorter-backbone"]):
        err = refused(capfd, folder / "m2", *paths, *how)
        assert "the models also share 'embedding', but its output carries a mask" in err
        assert "--backbone-groups" in err
    # The hint, followed: each fine-tuned LSTM on a backbone of its own, the mask inside it.
    report = exported(capfd, *paths, "--backbone-groups", "--out", folder / "masked-groups")
    assert len(report["backbones"]) == 3
    check_against_originals(report["path"], [keras_original(m)
                                             for m in bilstm["masked_models"]])
