"""The package as a whole: its public names are the README's, one error base, the contract
needs nothing but the standard library, and nothing at the repository root shadows it."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

import headswitch

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("headswitch", "headswitch.contract", "headswitch.tasks", "headswitch.export",
         "headswitch.examples", "headswitch.serving", "headswitch.client", "headswitch.deploy",
         "headswitch.score")


def _readme_api() -> dict[str, set[str]]:
    """The README's "Python API" table: module -> the names in backquotes on its row."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    table: dict[str, set[str]] = {}
    for line in section.splitlines():
        match = re.match(r"\| `([\w.]+)` \| (.*) \|$", line)
        if match:
            table[match.group(1)] = set(re.findall(r"`([\w.]+)`", match.group(2)))
    return table


def test_readme_documents_every_part() -> None:
    assert set(_readme_api()) == set(PARTS)


@pytest.mark.parametrize("name", PARTS)
def test_public_names_are_the_readme_s(name: str) -> None:
    module = importlib.import_module(name)
    public = set(module.__all__)
    assert len(public) == len(module.__all__), "a name is listed twice"
    assert public == _readme_api()[name]
    for attribute in public:
        assert getattr(module, attribute) is not None, attribute


def test_every_error_is_a_headswitch_error() -> None:
    from headswitch.client import HeadswitchError
    from headswitch.deploy import DeployError
    from headswitch.export import ExportError, InspectError
    from headswitch.serving import ServingError

    for kind in (ExportError, InspectError, DeployError, ServingError, HeadswitchError):
        assert issubclass(kind, headswitch.Error), kind
    error = ExportError("no models", hint="give .keras files")
    assert (error.message, error.hint) == ("no models", "give .keras files")
    assert str(error) == "no models\n  hint: give .keras files"
    assert str(headswitch.Error("plain")) == "plain"


def test_version_comes_from_the_package_metadata() -> None:
    assert headswitch.__version__ == metadata.version("headswitch")
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{headswitch.__version__}"' in pyproject
    written = [p for p in ROOT.glob("*/*.py") if headswitch.__version__ in p.read_text()]
    assert written == [], "the version is written in pyproject.toml only"


def _modules_after(code: str) -> list[str]:
    probe = textwrap.dedent(f"""
        import sys
        {code}
        print(" ".join(sorted(sys.modules)))
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, check=True, cwd=ROOT)
    return done.stdout.split()


def test_the_contract_needs_the_standard_library_only() -> None:
    # What the interpreter loads before any import (a namespace package's .pth file, e.g.
    # google-cloud-aiplatform's, imports google at start) is not the contract's doing.
    at_start = {m.split(".")[0] for m in _modules_after("pass")}
    loaded = {m.split(".")[0] for m in _modules_after("import headswitch.contract")} - at_start
    outside = loaded - set(sys.stdlib_module_names) - {"headswitch", "__main__"}
    outside = {m for m in outside if not m.startswith("_")}  # editable-install finders
    assert outside == set()


@pytest.mark.parametrize("code, absent", [
    ("import headswitch.deploy", "headswitch.export"),
    ("import headswitch.deploy", "numpy"),
    ("from headswitch import cli; cli._parser()", "numpy"),
    ("import headswitch.score", "numpy"),
    ("from headswitch import cli; cli._parser()", "headswitch.export._exporter"),
])
def test_cheap_imports_stay_cheap(code: str, absent: str) -> None:
    assert absent not in _modules_after(code)


def test_nothing_at_the_root_is_importable_as_headswitch() -> None:
    """Python run from the repository root puts the root first on sys.path: a folder or module
    named headswitch there would shadow the installed package."""
    assert not (ROOT / "headswitch").exists() and not (ROOT / "headswitch.py").exists()
    sys_path_first = textwrap.dedent("""
        import importlib.util, sys
        sys.path.insert(0, sys.argv[1])
        spec = importlib.util.find_spec("headswitch")
        print(spec.origin)
    """)
    done = subprocess.run([sys.executable, "-c", sys_path_first, str(ROOT)],
                          capture_output=True, text=True, timeout=60, check=True, cwd=ROOT)
    assert Path(done.stdout.strip()).resolve() == (ROOT / "core" / "__init__.py").resolve() or \
        not Path(done.stdout.strip()).is_relative_to(ROOT)
