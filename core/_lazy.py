"""Packages whose public names load their modules on first use, so that importing a package
(and building the ``headswitch`` command's parser) costs no numpy or TensorFlow."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_names(package: str, where: Mapping[str, str | tuple[str, str]],
               namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``where`` maps a public name to its
    private module (``"_build"``) or to a module and another attribute name. A loaded name is
    cached in the package's ``namespace`` (its ``globals()``)."""

    def getattr_(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        place = where[name]
        module, attribute = (place, name) if isinstance(place, str) else place
        value = getattr(import_module(f"{package}.{module}"), attribute)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *where})

    return getattr_, dir_
