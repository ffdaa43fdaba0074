"""Fixtures for the client tests: one embedded server (REST + gRPC on 127.0.0.1, metrics on)
serving the session's export of the example models (``exported`` in tests/conftest.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from client_support import KINDS, MODEL


@pytest.fixture(scope="session")
def base_path(exported: Any) -> Path:
    """The model base path (the folder holding version ``1``)."""
    return Path(exported.path).parent


@pytest.fixture(scope="session")
def server(base_path: Path) -> Iterator[Any]:
    from headswitch.serving import ModelServer

    with ModelServer(
        model_name=MODEL, model_base_path=base_path, grpc_port=0, rest_port=0, monitoring=True
    ) as started:
        started.wait_until_available()
        yield started


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """Each client: rest, grpc, async_rest, async_grpc."""
    return str(request.param)
