"""Turn N Keras models that share a backbone into one task-switching SavedModel.

    from headswitch.export import export_models
    report = export_models(["topic.keras", "spam.keras"], "models/headswitch")

The names of the SavedModel's signatures, inputs and outputs are in ``headswitch.contract``.
Importing this package is cheap: each name loads its module (numpy, and TensorFlow when an
export runs) on first use, so the ``headswitch`` command starts without them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._errors import ExportError
    from ._exporter import DEFAULT_BASE, ExportReport, TaskResult, export_models
    from ._inspect import InspectError, inspect_export
    from ._keras_backbone import BackboneReport, export_backbone
    from ._next import export_from
    from ._report import render as render_report

__all__ = [
    "DEFAULT_BASE",
    "BackboneReport",
    "ExportError",
    "ExportReport",
    "InspectError",
    "TaskResult",
    "export_backbone",
    "export_from",
    "export_models",
    "inspect_export",
    "render_report",
]

_WHERE = {
    "DEFAULT_BASE": ("_exporter", "DEFAULT_BASE"),
    "BackboneReport": ("_keras_backbone", "BackboneReport"),
    "ExportError": ("_errors", "ExportError"),
    "ExportReport": ("_exporter", "ExportReport"),
    "InspectError": ("_inspect", "InspectError"),
    "TaskResult": ("_exporter", "TaskResult"),
    "export_backbone": ("_keras_backbone", "export_backbone"),
    "export_from": ("_next", "export_from"),
    "export_models": ("_exporter", "export_models"),
    "inspect_export": ("_inspect", "inspect_export"),
    "render_report": ("_report", "render"),
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _WHERE[name]
    value = getattr(import_module(f"{__name__}.{module}"), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
