"""Turn N Keras models that share a backbone into one task-switching SavedModel.

    from headswitch.export import export_models
    report = export_models(["topic.keras", "spam.keras"], "models/headswitch")

The names of the SavedModel's signatures, inputs and outputs are in ``headswitch.contract``.
"""

from ._errors import ExportError
from ._exporter import DEFAULT_BASE, ExportReport, TaskResult, export_models
from ._inspect import InspectError, inspect_export
from ._report import render as render_report

__all__ = [
    "DEFAULT_BASE",
    "ExportError",
    "ExportReport",
    "InspectError",
    "TaskResult",
    "export_models",
    "inspect_export",
    "render_report",
]
