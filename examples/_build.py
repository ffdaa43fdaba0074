"""Build N example task models on one shared backbone, as a transfer-learning user would."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from . import _backbones
from ._corpus import Corpus, generate_corpus
from ._heads import train_head
from ._tasks import MENTIONS_PREFIX, TaskSpec, task_specs, task_targets

CORPUS_SIZE = 3000
BERT_CORPUS_SIZE = 512  # random-weight encoder used for timing: fewer sentences keep it quick
BACKBONES = ("small", "bert")


@dataclass(frozen=True)
class ExampleModels:
    """What :func:`build_example_models` wrote."""

    paths: list[pathlib.Path]  # one .keras file per task, in task order
    manifest: pathlib.Path  # out_dir/manifest.yaml
    tasks: list[TaskSpec]


def build_example_models(
    n_tasks: int,
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    backbone: str = "small",
    progress: Callable[[int, int], None] | None = None,
) -> ExampleModels:
    """Train one shared backbone and ``n_tasks`` independent heads; save each as ``<task>.keras``.

    Every saved model is ``text -> backbone -> [Dropout] -> [Dense(relu)] -> Dense(head_out)``
    with the same nested, frozen ``backbone``. ``progress(done, total)`` runs after each file.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    tasks = task_specs(n_tasks)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    shared, corpus = _trained_backbone(backbone, seed)
    features = _backbones.backbone_features(shared, corpus.texts)
    models = _TaskModels(shared)
    paths: list[pathlib.Path] = []
    for index, spec in enumerate(tasks):
        weights = train_head(
            features,
            task_targets(spec, corpus),
            kind=spec.kind,
            n_out=len(spec.labels),
            hidden_units=spec.hidden_units,
            seed=seed * 1_000_003 + index,
            balanced=spec.name.startswith(MENTIONS_PREFIX),
        )
        path = out / f"{spec.name}.keras"
        models.for_task(spec, weights).save(path)
        paths.append(path)
        if progress is not None:
            progress(index + 1, len(tasks))
    manifest = _write_manifest(out, tasks, paths)
    return ExampleModels(paths=paths, manifest=manifest, tasks=tasks)


def _trained_backbone(kind: str, seed: int) -> tuple[Any, Corpus]:
    if kind == "small":
        corpus = generate_corpus(CORPUS_SIZE, seed=seed)
        model = _backbones.small_backbone(corpus, seed=seed)
        _backbones.pretrain_small_backbone(model, corpus, seed=seed)
        return model, corpus
    corpus = generate_corpus(BERT_CORPUS_SIZE, seed=seed)
    model = _backbones.bert_backbone(corpus, seed=seed)
    model.trainable = False
    return model, corpus


class _TaskModels:
    """Task models on one shared backbone, one Keras model per head shape, reused across tasks.

    Tasks with the same head shape (kind, outputs, hidden units) get the same model with that
    task's name and head weights swapped in before it is saved. The saved files are what building
    each model afresh would give, but memory stays flat: every new Keras variable costs native
    memory that TensorFlow does not give back, which adds up over hundreds of heads.
    """

    def __init__(self, shared: Any) -> None:
        self._shared = shared
        self._models: dict[tuple[str, int, int | None], tuple[Any, list[Any]]] = {}

    def for_task(self, spec: TaskSpec, weights: list[npt.NDArray[Any]]) -> Any:
        key = (spec.kind, len(spec.labels), spec.hidden_units)
        if key not in self._models:
            self._models[key] = _task_model(self._shared, spec)
        model, dense_layers = self._models[key]
        model.name = spec.name
        for layer, i in zip(dense_layers, range(0, len(weights), 2), strict=True):
            layer.set_weights(weights[i : i + 2])
        return model


def _task_model(shared: Any, spec: TaskSpec) -> tuple[Any, list[Any]]:
    """``text -> backbone -> Dropout -> [Dense(relu)] -> Dense(head_out)``, and its Dense layers."""
    keras = _backbones.import_keras()
    text = keras.Input(shape=(), dtype="string", name="text")
    h = keras.layers.Dropout(0.1, name="head_dropout")(shared(text))
    dense_layers = []
    if spec.hidden_units is not None:
        dense_layers.append(
            keras.layers.Dense(spec.hidden_units, activation="relu", name="head_hidden")
        )
    dense_layers.append(
        keras.layers.Dense(len(spec.labels), activation=spec.kind, name="head_out")
    )
    for layer in dense_layers:
        h = layer(h)
    return keras.Model(text, h, name=spec.name), dense_layers


def _write_manifest(
    out: pathlib.Path, tasks: list[TaskSpec], paths: list[pathlib.Path]
) -> pathlib.Path:
    import yaml

    entries = [
        {"name": spec.name, "model": path.name, "labels": list(spec.labels)}
        for spec, path in zip(tasks, paths)
    ]
    manifest = out / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"tasks": entries}, sort_keys=False))
    return manifest
