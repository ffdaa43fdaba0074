"""Turn N Keras models that share a backbone into one task-switching SavedModel.

    from headswitch.export import export_models
    report = export_models(["topic.keras", "spam.keras"], "models/headswitch")
"""

from ._errors import ExportError
from ._exporter import (
    DEFAULT_BASE,
    DEFAULT_MODEL_NAME,
    MANIFEST_FILE,
    ExportReport,
    TaskResult,
    export_models,
)
from ._inspect import InspectError, inspect_export
from ._module import PREDICT_OUTPUTS, SIGNATURE_IDS, SIGNATURE_NAMES, SIGNATURE_TASKS, TASKS_OUTPUTS

__all__ = [
    "DEFAULT_BASE",
    "DEFAULT_MODEL_NAME",
    "MANIFEST_FILE",
    "PREDICT_OUTPUTS",
    "SIGNATURE_IDS",
    "SIGNATURE_NAMES",
    "SIGNATURE_TASKS",
    "TASKS_OUTPUTS",
    "ExportError",
    "ExportReport",
    "InspectError",
    "TaskResult",
    "export_models",
    "inspect_export",
]
