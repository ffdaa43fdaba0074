"""``<version>/assets.extra/headswitch.json``, typed: what a version holds, where it came from and
how it was checked. The exporter writes it; ``export --from``, ``backbone``, ``inspect``,
``diff`` and the deployers read it, all through :class:`Manifest`. Standard library only.

The file is compact JSON; records map to JSON objects field by field (``HistoryEntry.previous``
is the key ``"from"``). Keys added in later formats have defaults, so older files still read.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from headswitch.contract import ASSETS_EXTRA, MANIFEST_FILE

from ._errors import Error

FORMAT_VERSION = 3  # 2: stored heads, probe texts, backbone leaves, task history; 3: backbones
OLDEST_FORMAT = 2  # the first format a version can be built from
R = TypeVar("R", bound="_Record")


class ManifestError(Error):
    """``headswitch.json`` is missing, unreadable or not what headswitch writes."""


class _Record:
    """A dataclass read from and written to a JSON object, field by field; nested records and
    tuples of records convert too. ``_keys`` renames fields whose JSON key differs."""

    _keys: ClassVar[Mapping[str, str]] = {}

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue  # optional and absent: not written
            data[self._keys.get(f.name, f.name)] = _to_json(value)
        return data

    @classmethod
    def from_json(cls: type[R], data: Any) -> R:
        if not isinstance(data, Mapping):
            raise ManifestError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
        hints = typing.get_type_hints(cls, vars(sys.modules[__name__]))
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            key = cls._keys.get(f.name, f.name)
            if key not in data:
                if f.default is dataclasses.MISSING and \
                        f.default_factory is dataclasses.MISSING:
                    raise ManifestError(f"{cls.__name__}: no {key!r}")
                continue
            values[f.name] = _from_json(hints[f.name], data[key])
        return cls(**values)


def _to_json(value: Any) -> Any:
    if isinstance(value, _Record):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    return value


def _from_json(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if isinstance(hint, type) and issubclass(hint, _Record):
        return hint.from_json(value)
    if origin is tuple and args and args[-1] is Ellipsis:
        return tuple(_from_json(args[0], v) for v in value)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return _from_json(inner[0], value) if len(inner) == 1 else value
    return value


@dataclasses.dataclass(frozen=True)
class SourceFile(_Record):
    """The model file a task's head was read from."""

    file: str  # its name (no folder)
    format: str  # e.g. "Keras 3 .keras", "tf_keras SavedModel folder"
    sha256: str
    bytes: int
    output: str | None = None  # the output of a multi-output model this task is


@dataclasses.dataclass(frozen=True)
class TaskRecord(_Record):
    id: int
    name: str
    labels: tuple[str, ...]
    num_classes: int
    activation: str
    head: str  # "stacked" or "generic"
    head_bytes: int
    dtype: str  # the dtype the head computes in
    max_abs_diff: float
    checked_against: str  # "file" or "version N"
    since: int | None  # the version that first published the task
    head_since: int | None  # the version whose export read its head from its file
    source: SourceFile
    stored: dict[str, Any]  # its head-store entry (``export/_head_store.py``)
    head_sha256: str
    backbone: int = 0  # the id of the backbone it runs on (``Manifest.backbones``)


@dataclasses.dataclass(frozen=True)
class RemovedTask(_Record):
    id: int
    name: str
    version: int  # the version that removed it


@dataclasses.dataclass(frozen=True)
class HistoryEntry(_Record):
    """What one version of the lineage did to the tasks (by id)."""

    _keys: ClassVar[Mapping[str, str]] = {"previous": "from"}

    version: int
    previous: int | None  # the version it was built from
    created: str
    added: tuple[int, ...] = ()
    replaced: tuple[int, ...] = ()
    removed: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class BackboneRecord(_Record):
    """One backbone of the version: where it ends in its models, what it holds, its size."""

    split_layer: str
    split_mode: str  # "given" or "auto"
    layers: tuple[str, ...]  # the first model's layer calls up to the split
    features_dtype: str
    features_width: int
    fingerprint_sha256: str
    saved_bytes: int  # the backbone alone as a SavedModel
    keras_model: dict[str, Any]  # ``backbone.json`` entry (``export/_keras_backbone.py``)
    leaves: tuple[dict[str, Any], ...]  # leaf layers (``export/_leaves.py``)
    id: int = 0  # stable across versions; tasks name it (``TaskRecord.backbone``)


@dataclasses.dataclass(frozen=True)
class HeadsFile(_Record):
    """The stored Dense heads' vector (``export/_head_store.py``)."""

    file: str
    values: int
    bytes: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class ServingRecord(_Record):
    image: str  # the TF Serving image the ops were checked against
    non_core_ops: tuple[str, ...]
    non_core_ops_from: str


@dataclasses.dataclass(frozen=True)
class Verification(_Record):
    passed: bool
    atol: float
    probe_texts: int
    max_abs_diff: float


@dataclasses.dataclass(frozen=True)
class Manifest(_Record):
    format_version: int
    headswitch_version: str
    tensorflow_version: str
    keras_version: str
    model_name: str
    version: int
    created: str
    backbones: tuple[BackboneRecord, ...]  # one unless exported with --backbone-groups
    signatures: dict[str, Any]
    serving: ServingRecord
    tasks: tuple[TaskRecord, ...]
    history: tuple[HistoryEntry, ...]
    removed: tuple[RemovedTask, ...]
    next_task_id: int
    heads: HeadsFile
    probe_texts: tuple[str, ...]
    verification: Verification
    tf_keras_version: str | None = None
    next_backbone_id: int = 1
    trunk: tuple[str, ...] = ()  # layers every backbone shares, stored once (first export)

    @property
    def backbone(self) -> BackboneRecord:
        """The first backbone (the only one unless exported with --backbone-groups)."""
        return self.backbones[0]

    def backbone_of(self, number: int) -> BackboneRecord:
        for b in self.backbones:
            if b.id == number:
                return b
        raise ManifestError(f"no backbone {number} (backbones: "
                            f"{', '.join(str(b.id) for b in self.backbones)})")

    def tasks_of(self, number: int) -> tuple[TaskRecord, ...]:
        """The tasks running on backbone ``number``."""
        return tuple(t for t in self.tasks if t.backbone == number)

    def task(self, ref: int | str) -> TaskRecord | None:
        """The live task with this id or name."""
        for t in self.tasks:
            if t.id == ref or t.name == ref:
                return t
        return None

    @staticmethod
    def path(version_folder: str | Path) -> Path:
        return Path(version_folder) / ASSETS_EXTRA / MANIFEST_FILE

    @classmethod
    def read(cls, version_folder: str | Path) -> Manifest:
        """The manifest of a version folder; ``ManifestError`` says why it cannot be read."""
        path = cls.path(version_folder)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as e:
            raise ManifestError(f"{version_folder} has no {ASSETS_EXTRA}/{MANIFEST_FILE}: it "
                                "was not written by headswitch export") from e
        except (OSError, ValueError) as e:
            raise ManifestError(f"cannot read {path}: {e}") from e
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: Any, where: str = MANIFEST_FILE) -> Manifest:
        fmt = data.get("format_version", 1) if isinstance(data, Mapping) else None
        if not isinstance(fmt, int) or fmt < OLDEST_FORMAT:
            raise ManifestError(f"{where} is in manifest format {fmt}, written by an older "
                                "headswitch that kept neither its heads nor its probe texts")
        if fmt > FORMAT_VERSION:
            raise ManifestError(f"{where} is in manifest format {fmt}, written by a newer "
                                f"headswitch (this one reads formats {OLDEST_FORMAT} to "
                                f"{FORMAT_VERSION})")
        if "backbones" not in data and "backbone" in data:  # format 2: one backbone
            data = {**data, "backbones": [data["backbone"]]}
        try:
            return cls.from_json(data)
        except (TypeError, ValueError, KeyError) as e:
            raise ManifestError(f"{where} is not a headswitch manifest: {e}") from e
        except ManifestError as e:
            raise ManifestError(f"{where} is not a headswitch manifest: {e}") from e

    def write(self, version_folder: str | Path) -> Path:
        """Write compact JSON (it grows with the number of tasks)."""
        path = self.path(version_folder)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), separators=(",", ":")))
        return path
