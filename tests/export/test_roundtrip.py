"""The merged SavedModel gives each task the original model's answer, in mixed batches."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import tensorflow as tf

from headswitch.examples import sample_texts

Array = npt.NDArray[Any]

ATOL = 1e-5


def _expected(originals: list[Any], texts: list[str], tasks: Array) -> list[Array]:
    out = []
    for text, task in zip(texts, tasks):
        y = np.asarray(originals[task](tf.constant([text]), training=False), np.float32)
        out.append(y.reshape(-1))
    return out


@pytest.mark.parametrize("batch", [1, 7, 64])
@pytest.mark.parametrize("signature", ["serving_default", "by_name"])
def test_mixed_batch_matches_originals(loaded: Any, originals: list[Any], example_models: Any,
                                       batch: int, signature: str) -> None:
    rng = np.random.default_rng(batch)
    texts = sample_texts(batch, seed=batch)
    texts[0] = ""  # the empty text is a valid input too
    tasks = rng.integers(0, len(originals), size=batch).astype(np.int32)
    if signature == "serving_default":
        out = loaded.signatures[signature](text=tf.constant(texts), task_id=tf.constant(tasks))
    else:
        names = [example_models.tasks[t].name for t in tasks]
        out = loaded.signatures[signature](text=tf.constant(texts), task=tf.constant(names))
    scores = out["scores"].numpy()
    assert scores.shape[0] == batch
    assert not any(out["error"].numpy())
    for row, want in enumerate(_expected(originals, texts, tasks)):
        k = want.shape[0]
        np.testing.assert_allclose(scores[row, :k], want, atol=ATOL, rtol=0)
        assert np.all(scores[row, k:] == 0)
        labels = example_models.tasks[tasks[row]].labels
        top = int(np.argmax(want))
        assert out["top_label"].numpy()[row].decode() == labels[top]
        assert out["top_score"].numpy()[row] == pytest.approx(want[top], abs=ATOL)


def test_tasks_signature_lists_every_task(loaded: Any, example_models: Any) -> None:
    out = loaded.signatures["tasks"](unused=tf.constant([0, 0], tf.int32))
    names = [n.decode() for n in out["name"].numpy()[1]]
    assert names == [t.name for t in example_models.tasks]
    assert list(out["task_id"].numpy()[0]) == list(range(len(names)))
    for i, task in enumerate(example_models.tasks):
        k = out["num_classes"].numpy()[0, i]
        assert k == len(task.labels)
        assert [b.decode() for b in out["labels"].numpy()[0, i, :k]] == task.labels
    activations = {a.decode() for a in out["activation"].numpy()[0]}
    assert {"softmax", "sigmoid", "linear"} <= activations


def test_report_and_manifest(exported: Any, example_models: Any) -> None:
    import json

    manifest = json.loads((exported.path / "assets.extra" / "headswitch.json").read_text())
    assert [t["name"] for t in manifest["tasks"]] == [t.name for t in example_models.tasks]
    assert [t["id"] for t in manifest["tasks"]] == list(range(len(example_models.tasks)))
    assert manifest["tensorflow_version"] == tf.__version__
    assert len(manifest["backbones"][0]["fingerprint_sha256"]) == 64
    for entry, path in zip(manifest["tasks"], example_models.paths):
        import hashlib

        assert entry["source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["verification"]["passed"] is True
    assert manifest["verification"]["max_abs_diff"] <= ATOL
    assert exported.max_abs_diff <= ATOL
    assert exported.merged_bytes < exported.originals_bytes
    assert exported.heads_bytes > 0 and exported.backbone_bytes > 0
    assert {t.head for t in exported.tasks} == {"stacked"}
