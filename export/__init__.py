"""Turn N Keras models that share a backbone into one task-switching SavedModel.

    from headswitch.export import export_models
    report = export_models(["topic.keras", "spam.keras"], "models/headswitch")

The names of the SavedModel's signatures, inputs and outputs are in ``headswitch.contract``.
Importing this package is cheap: each name loads its module (numpy, and TensorFlow when an
export runs) on first use, so the ``headswitch`` command starts without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headswitch._lazy import lazy_names

if TYPE_CHECKING:
    from ._errors import ExportError
    from ._exporter import DEFAULT_BASE, export_models
    from ._inspect import InspectError, inspect_export
    from ._keras_backbone import BackboneReport, export_backbone
    from ._next import export_from
    from ._report import ExportReport, TaskResult
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

__getattr__, __dir__ = lazy_names(__name__, {
    "DEFAULT_BASE": "_exporter",
    "BackboneReport": "_keras_backbone",
    "ExportError": "_errors",
    "ExportReport": "_report",
    "InspectError": "_inspect",
    "TaskResult": "_report",
    "export_backbone": "_keras_backbone",
    "export_from": "_next",
    "export_models": "_exporter",
    "inspect_export": "_inspect",
    "render_report": ("_report", "render"),
}, globals())
