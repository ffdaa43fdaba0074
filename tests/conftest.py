"""Shared fixtures: example models and one export of them, built once per test session."""

from __future__ import annotations

import os
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

EXAMPLE_TASKS = 7


@pytest.fixture(scope="session")
def example_models(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from headswitch.examples import build_example_models

    return build_example_models(EXAMPLE_TASKS, tmp_path_factory.mktemp("example-models"))


@pytest.fixture(scope="session")
def exported(example_models: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from headswitch.export import export_models

    base = tmp_path_factory.mktemp("exports") / "headswitch"
    return export_models(example_models.paths, base, manifest=example_models.manifest)


@pytest.fixture(scope="session")
def loaded(exported: Any) -> Any:
    import tensorflow as tf

    return tf.saved_model.load(str(exported.path))


@pytest.fixture(scope="session")
def originals(example_models: Any) -> list[Any]:
    import keras

    return [keras.models.load_model(p, compile=False) for p in example_models.paths]


@pytest.fixture(scope="session")
def task_names(example_models: Any) -> list[str]:
    return [t.name for t in example_models.tasks]
