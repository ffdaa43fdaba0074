"""Which model files make which tasks: arguments, the optional manifest, file hashes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from ._errors import ExportError

_NAME = re.compile(r"^[A-Za-z0-9_.:/-]+$")


@dataclasses.dataclass(frozen=True)
class TaskSource:
    task_id: int
    name: str
    path: Path
    labels: tuple[str, ...] | None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_manifest(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text()
    except OSError as e:
        raise ExportError(f"cannot read manifest {path}: {e.strerror}") from e
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:
        kind = path.suffix[1:].upper() or "YAML"
        raise ExportError(f"manifest {path} is not valid {kind}: {e}") from e
    tasks = data.get("tasks") if isinstance(data, dict) else data
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise ExportError(f"manifest {path} must hold a list 'tasks' of mappings",
                          hint="tasks: [{name: topic, model: topic.keras, labels: [a, b]}]")
    return tasks


def resolve(models: list[str | os.PathLike[str]], manifest: str | os.PathLike[str] | None
            ) -> list[TaskSource]:
    """Task sources in task-id order: the argument order, or the manifest's order if the
    manifest alone names the models."""
    paths = [Path(m) for m in models]
    entries: dict[Path, dict[str, Any]] = {}
    if manifest is not None:
        manifest_path = Path(manifest)
        listed = _read_manifest(manifest_path)
        for i, entry in enumerate(listed):
            if "model" not in entry:
                raise ExportError(f"manifest {manifest_path}: task {i} has no 'model' path")
            model = Path(str(entry["model"]))
            if not model.is_absolute():
                model = manifest_path.parent / model
            entries[model.resolve()] = entry
        if not paths:
            paths = [manifest_path.parent / Path(str(e["model"])) if not Path(str(e["model"]))
                     .is_absolute() else Path(str(e["model"])) for e in listed]
    if not paths:
        raise ExportError("no models given", hint="pass .keras files or --manifest FILE")
    sources = []
    seen: dict[str, Path] = {}
    for task_id, path in enumerate(paths):
        if not path.is_file():
            raise ExportError(f"model file not found: {path}")
        if path.suffix != ".keras":
            raise ExportError(f"{path} is not a .keras file",
                              hint="save each model with model.save('name.keras')")
        entry = entries.get(path.resolve(), {})
        name = str(entry.get("name", path.stem))
        if not _NAME.match(name):
            raise ExportError(f"task name {name!r} (from {path}) may only hold letters, digits "
                              "and _ . : / -")
        if name in seen:
            raise ExportError(f"task name {name!r} is used twice: {seen[name]} and {path}",
                              hint="rename one file or give names in a manifest")
        seen[name] = path
        labels = entry.get("labels")
        if labels is not None:
            if not isinstance(labels, list) or not labels:
                raise ExportError(f"manifest labels of task {name!r} must be a non-empty list")
            labels = tuple(str(label) for label in labels)
        sources.append(TaskSource(task_id, name, path, labels))
    return sources
