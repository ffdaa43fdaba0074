"""The Dataflow worker image (Dockerfile.beam, checked statically: no Docker engine here) and the
"beam" extra's pins, which must co-install with the project's TensorFlow."""

from __future__ import annotations

import re
import subprocess
import sys

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from importlib.metadata import version
from pathlib import Path

import pytest
from dockerfiles import hadolint_findings, instructions

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile.beam"
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
    "optional-dependencies"]


def _pin(extra: str, package: str) -> str:
    pins: list[str] = [r for r in EXTRAS[extra]
                       if re.match(rf"^{package}(\[[^\]]*\])?\s*==", r)]
    assert len(pins) == 1, f"one {package}==X pin expected in the {extra} extra: {pins}"
    return pins[0].split("==", 1)[1].strip()


def test_hadolint_passes_without_any_finding() -> None:
    assert hadolint_findings(DOCKERFILE) == []


def test_image_is_beams_sdk_image_of_the_pinned_beam_and_a_supported_python() -> None:
    found = instructions(DOCKERFILE)
    args = dict(rest.split("=", 1) for kw, rest in found if kw == "ARG")
    assert args["BEAM_VERSION"] == _pin("beam", "apache-beam")
    python = args["PYTHON_VERSION"]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    low, high = re.findall(r"3\.(\d+)", requires)
    assert int(low) <= int(python.split(".")[1]) < int(high)
    assert [rest for kw, rest in found if kw == "FROM"] == [
        "apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION}"]
    assert not [kw for kw, _ in found if kw in ("ENTRYPOINT", "CMD")], \
        "Beam's boot program must stay the entrypoint"


def test_image_installs_the_beam_extra_and_checks_it() -> None:
    (run,) = [rest for kw, rest in instructions(DOCKERFILE) if kw == "RUN"]
    assert '"/tmp/headswitch[beam]"' in run and "pip check" in run
    assert "import tensorflow, apache_beam, headswitch.score.beam" in run
    ignored = (ROOT / "Dockerfile.beam.dockerignore").read_text().split()
    assert {".venv", ".git", "models", "example-models"} <= set(ignored)


def test_the_beam_pins_co_install_with_the_pinned_tensorflow() -> None:
    """This environment installed every extra (scripts/install): it must hold exactly the pinned
    TensorFlow and Beam, a protobuf both accept, and no broken requirement at all."""
    pytest.importorskip("apache_beam", reason="needs headswitch[beam]")
    assert version("tensorflow") == _pin("tf", "tensorflow")
    assert version("tensorflow-serving-api") == _pin("tf", "tensorflow-serving-api")
    assert version("apache-beam") == _pin("beam", "apache-beam")
    assert int(version("protobuf").split(".")[0]) < 6
    done = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
