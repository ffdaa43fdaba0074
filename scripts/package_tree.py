"""Lay the sources out as the installed package, with links: ``python scripts/package_tree.py
DIR`` makes ``DIR/headswitch`` (from pyproject.toml's package-dir) and ``DIR/tests``, then
prints DIR. For tools that read source trees, such as mypy, which cannot follow package-dir."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def build(target: Path) -> Path:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dir: dict[str, str] = config["package-dir"]
    target = target if target.is_absolute() else ROOT / target
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for package in sorted(package_dir, key=lambda name: name.count(".")):
        source = ROOT / package_dir[package]
        place = target.joinpath(*package.split("."))
        place.mkdir(parents=True, exist_ok=True)
        for entry in sorted(source.iterdir()):
            if entry.is_file() and entry.suffix in (".py", ".pyi", ".typed"):
                os.symlink(os.path.relpath(entry, place), place / entry.name)
    os.symlink(os.path.relpath(ROOT / "tests", target), target / "tests")
    return target


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "build/typecheck")))
