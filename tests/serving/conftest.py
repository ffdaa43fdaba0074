"""Fixtures for the serving tests: a small task-switching SavedModel, and "targets" — a
running server reached by its REST URL and gRPC address (see ``serving_targets.py``).

Every conformance test runs against each target kind:

- ``embedded``: ``headswitch.serving.ModelServer`` in this process, on free ports.
- ``tfserving-docker``: the real ``tensorflow/serving`` image started with the ``docker`` Python
  SDK, when a Docker engine is reachable (image from ``$TFSERVING_IMAGE``, default
  ``tensorflow/serving:2.19.1``). Otherwise those cases are skipped with the reason.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import serving_fixture_model as fixture_model
from serving_targets import (
    KINDS,
    MODEL,
    Factory,
    Target,
    add_version,
    docker_unavailable_reason,
)

# ------------------------------------------------------------------------------------ model


@pytest.fixture(scope="session")
def model_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One exported version folder (with warmup records), copied into each base path."""
    path = tmp_path_factory.mktemp("template") / "version"
    fixture_model.build_model(path)
    fixture_model.write_warmup(path, fixture_model.default_warmup_records())
    return path


@pytest.fixture
def models_root(tmp_path: Path) -> Path:
    """Folder that holds every base path and config file of one test (mounted as /models
    into a TF Serving container)."""
    root = tmp_path / "models"
    root.mkdir()
    return root


def _factory(kind: str, root: Path) -> Factory:
    if kind != "embedded":
        reason = docker_unavailable_reason()
        if reason is not None:
            pytest.skip(f"{kind} target skipped: {reason}")
    return Factory(kind, root)


@pytest.fixture(params=KINDS)
def factory(request: pytest.FixtureRequest, models_root: Path) -> Iterator[Factory]:
    """A server factory for each target kind (per test)."""
    made = _factory(request.param, models_root)
    yield made
    made.close()


@pytest.fixture
def embedded_factory(models_root: Path) -> Iterator[Factory]:
    """For behaviour only the embedded server can show (internals, speed-ups, signals)."""
    made = Factory("embedded", models_root)
    yield made
    made.close()


@pytest.fixture(scope="session", params=KINDS)
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, model_template: Path
) -> Iterator[Target]:
    """The shared server of the conformance suite: model ``m``, version 1, monitoring on."""
    root = tmp_path_factory.mktemp("shared") / "models"
    root.mkdir()
    made = _factory(request.param, root)
    add_version(root / MODEL, 1, model_template)
    served = made.start(base=root / MODEL)
    yield served
    made.close()
