"""The values the clients return: plain frozen dataclasses, the same for every transport."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from headswitch.tasks import TaskInfo, TaskList

__all__ = ["ModelMetadata", "ModelStatus", "Prediction", "SignatureInfo", "TaskInfo", "TaskList",
           "TensorInfo", "VersionStatus"]


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one text. ``index`` is the text's position in the input."""

    index: int
    text: str
    task_id: int
    task_name: str
    top_label: str
    top_score: float
    scores: Mapping[str, float] = field(hash=False)  # label -> score, in label order

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "text": self.text,
            "task_id": self.task_id,
            "task": self.task_name,
            "top_label": self.top_label,
            "top_score": self.top_score,
            "scores": dict(self.scores),
        }


@dataclass(frozen=True)
class VersionStatus:
    version: int
    state: str  # START, LOADING, AVAILABLE, UNLOADING, END
    error_code: str = "OK"
    error_message: str = ""


@dataclass(frozen=True)
class ModelStatus:
    model: str
    versions: tuple[VersionStatus, ...]

    @property
    def available(self) -> bool:
        """True when at least one version can serve."""
        return any(v.state == "AVAILABLE" for v in self.versions)


@dataclass(frozen=True)
class TensorInfo:
    dtype: str  # e.g. DT_STRING
    shape: tuple[int, ...] | None  # None: unknown rank; -1: unknown dimension


@dataclass(frozen=True)
class SignatureInfo:
    inputs: Mapping[str, TensorInfo]
    outputs: Mapping[str, TensorInfo]
    method_name: str


@dataclass(frozen=True)
class ModelMetadata:
    model: str
    version: int
    signatures: Mapping[str, SignatureInfo]
