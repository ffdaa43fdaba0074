"""headswitch.examples: real TensorFlow, one small build of 7 tasks shared by the tests."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import yaml

import headswitch.examples
from headswitch.examples import (
    ExampleModels,
    TaskSpec,
    build_example_models,
    sample_texts,
)
from headswitch.examples._corpus import generate_corpus
from headswitch.examples._tasks import task_specs

N_TASKS = 7
EXPECTED = [
    ("topic", "softmax", ["sports", "politics", "technology", "food", "travel"], None),
    ("sentiment", "softmax", ["negative", "neutral", "positive"], None),
    ("spam", "softmax", ["ham", "spam"], None),
    ("language", "softmax", ["english", "spanish", "french", "german"], 16),
    ("tags", "sigmoid", ["sports", "politics", "technology", "food", "travel"], None),
    ("urgency", "linear", ["urgency"], None),
    ("mentions_football", "softmax", ["no", "yes"], None),
]


def _batch(texts: list[str]) -> npt.NDArray[Any]:
    """A rank-1 string batch as Keras wants it (object dtype, not numpy unicode)."""
    return np.array(texts, dtype=object)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[ExampleModels, list[tuple[int, int]]]:
    calls: list[tuple[int, int]] = []
    out = tmp_path_factory.mktemp("example-models")

    def progress(done: int, total: int) -> None:
        assert len(list(out.glob("*.keras"))) == done  # called after each file is written
        calls.append((done, total))

    result = build_example_models(N_TASKS, out, seed=0, progress=progress)
    return result, calls


@pytest.fixture(scope="module")
def models(built: tuple[ExampleModels, list[tuple[int, int]]]) -> dict[str, Any]:
    import keras

    result, _ = built
    return {
        spec.name: keras.models.load_model(path) for spec, path in zip(result.tasks, result.paths)
    }


def test_public_api() -> None:
    assert sorted(headswitch.examples.__all__) == [
        "ExampleModels", "TaskSpec", "build_example_models", "sample_texts"
    ]


def test_import_does_not_load_tensorflow() -> None:
    code = (
        "import sys, headswitch.examples; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_writes_one_model_per_task_and_manifest(
    built: tuple[ExampleModels, list[tuple[int, int]]],
) -> None:
    result, calls = built
    got = [(t.name, t.kind, t.labels, t.hidden_units) for t in result.tasks]
    assert got == EXPECTED
    assert [p.name for p in result.paths] == [f"{name}.keras" for name, *_ in EXPECTED]
    assert all(p.is_file() for p in result.paths)
    assert result.manifest == result.paths[0].parent / "manifest.yaml"
    manifest = yaml.safe_load(result.manifest.read_text())
    assert manifest == {
        "tasks": [
            {"name": t.name, "model": p.name, "labels": t.labels}
            for t, p in zip(result.tasks, result.paths)
        ]
    }
    assert calls == [(i, N_TASKS) for i in range(1, N_TASKS + 1)]


def test_models_predict_on_raw_strings(
    built: tuple[ExampleModels, list[tuple[int, int]]], models: dict[str, Any]
) -> None:
    result, _ = built
    texts = _batch(["Great football match!", "", "FREE prize, click now!!!", "el es muy"])
    for spec in result.tasks:
        model = models[spec.name]
        assert model.name == spec.name
        assert [tuple(i.shape) for i in model.inputs] == [(None,)]
        assert model.inputs[0].dtype == "string"
        out = np.asarray(model.predict(texts, verbose=0))
        assert out.shape == (len(texts), len(spec.labels))
        assert np.isfinite(out).all()
        if spec.kind == "softmax":
            np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
        if spec.kind == "sigmoid":
            assert ((out >= 0) & (out <= 1)).all()


def test_backbone_is_shared_and_heads_differ(models: dict[str, Any]) -> None:
    backbones = [m.get_layer("backbone") for m in models.values()]
    reference = backbones[0]
    vocabulary = reference.get_layer("vectorize").get_vocabulary()
    assert len(vocabulary) > 50
    for other in backbones[1:]:
        assert other.get_layer("vectorize").get_vocabulary() == vocabulary
        for a, b in zip(reference.get_weights(), other.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    heads = [m.get_layer("head_out").get_weights()[0] for m in models.values()]
    for i, a in enumerate(heads):
        for b in heads[i + 1 :]:
            assert a.shape != b.shape or not np.allclose(a, b)
    # The two binary softmax heads have equal shapes: they must still have learned different things.
    assert not np.allclose(heads[2], heads[6])


@pytest.mark.parametrize(
    ("task", "truth", "minimum"),
    [("topic", "topic", 0.8), ("sentiment", "sentiment", 0.8), ("spam", "spam", 0.9),
     ("language", "language", 0.8)],
)
def test_heads_beat_chance_on_fresh_sentences(
    models: dict[str, Any], task: str, truth: str, minimum: float
) -> None:
    fresh = generate_corpus(600, seed=4242)  # not the training corpus (seed 0)
    predicted = np.asarray(models[task].predict(_batch(fresh.texts), verbose=0)).argmax(axis=1)
    labels = getattr(fresh, truth)
    majority = np.bincount(labels).max() / len(labels)
    accuracy = float((predicted == labels).mean())
    assert accuracy >= minimum
    assert accuracy > majority + 0.1


def test_tags_and_urgency_heads_learn(models: dict[str, Any]) -> None:
    fresh = generate_corpus(600, seed=99)
    texts = _batch(fresh.texts)
    tags = np.asarray(models["tags"].predict(texts, verbose=0)) > 0.5
    assert (tags == fresh.tags.astype(bool)).mean() > 0.9
    urgency = np.asarray(models["urgency"].predict(texts, verbose=0))[:, 0]
    assert np.corrcoef(urgency, fresh.urgency)[0, 1] > 0.5


def test_sample_texts_deterministic_per_seed() -> None:
    assert sample_texts(20, seed=3) == sample_texts(20, seed=3)
    assert sample_texts(20, seed=3) != sample_texts(20, seed=4)
    assert sample_texts(5, seed=3) == sample_texts(20, seed=3)[:5]
    assert sample_texts(0) == []
    texts = sample_texts(200)
    assert all(isinstance(t, str) and t for t in texts)
    assert len(set(texts)) > 190


def test_task_list_scales_to_a_thousand() -> None:
    specs = task_specs(1000)
    assert len(specs) == 1000
    assert len({s.name for s in specs}) == 1000
    assert all(isinstance(s, TaskSpec) for s in specs)
    generated = specs[6:]
    assert all(s.name.startswith("mentions_") for s in generated)
    assert {s.kind for s in generated} == {"softmax", "sigmoid"}
    assert [s.name for s in task_specs(3)] == ["topic", "sentiment", "spam"]
    assert any(s.name.endswith("_2") for s in generated)


def test_rejects_bad_arguments(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError):
        build_example_models(0, tmp_path)
    with pytest.raises(ValueError):
        build_example_models(1, tmp_path, backbone="huge")
