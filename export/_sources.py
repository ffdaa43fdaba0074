"""Which model files make which tasks: arguments, the optional manifest, file hashes.

A model file (or SavedModel folder) gives one task per output: a single-output model one task
named after the file, a model with N outputs N tasks named after its outputs (output layers or
dict keys), in output order. The manifest (``tasks: [{name, model, output, labels}]``) renames
and labels them; ``output`` picks one output of a multi-output model.
"""

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
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclasses.dataclass(frozen=True)
class Entry:
    """One manifest entry for a model file."""

    index: int  # position in the manifest
    name: str | None
    output: str | None
    labels: tuple[str, ...] | None


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """One model file or folder to read, and its manifest entries."""

    index: int  # position among the files, in the order they are read
    path: Path
    entries: tuple[Entry, ...]
    manifest_only: bool  # the manifest, not the arguments, lists the models


@dataclasses.dataclass(frozen=True)
class TaskSource:
    task_id: int
    name: str
    path: Path
    labels: tuple[str, ...] | None
    output: str | None = None  # the output of a multi-output model this task is


def sha256(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (relative names and contents, sorted)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\x00")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


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


def check_model_path(path: Path) -> None:
    from ._hf import is_pretrained_folder

    if is_pretrained_folder(path):  # issue 21: a Hugging Face save_pretrained folder
        return
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ExportError(f"{path} is a folder without saved_model.pb",
                              hint="a model folder is a SavedModel written by model.save(folder) "
                              "(Keras 2 / tf_keras), or a Hugging Face save_pretrained folder "
                              "(config.json, tf_model.h5)")
        return
    if not path.exists():
        raise ExportError(f"model file not found: {path}")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ExportError(f"{path} is not a model headswitch reads",
                          hint="pass .keras or .h5 files, or SavedModel folders written by "
                          "model.save(folder)")


def _labels(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ExportError(f"manifest labels of {where} must be a non-empty list")
    return tuple(str(label) for label in value)


def resolve(models: list[str | os.PathLike[str]], manifest: str | os.PathLike[str] | None
            ) -> list[ModelSource]:
    """The model files to read, in task order: the argument order, or the manifest's order if
    the manifest alone names the models."""
    paths = [Path(m) for m in models]
    entries: dict[Path, list[Entry]] = {}
    order: list[Path] = []
    if manifest is not None:
        manifest_path = Path(manifest)
        for i, item in enumerate(_read_manifest(manifest_path)):
            if "model" not in item:
                raise ExportError(f"manifest {manifest_path}: task {i} has no 'model' path")
            model = Path(str(item["model"]))
            if not model.is_absolute():
                model = manifest_path.parent / model
            name = None if item.get("name") is None else str(item["name"])
            output = None if item.get("output") is None else str(item["output"])
            where = f"task {name!r}" if name else f"manifest task {i}"
            key = model.resolve()
            if key not in entries:
                order.append(model)
            entries.setdefault(key, []).append(Entry(i, name, output, _labels(item.get("labels"),
                                                                              where)))
    manifest_only = not paths
    if manifest_only:
        paths = order
    if not paths:
        raise ExportError("no models given",
                          hint="pass .keras/.h5 files or SavedModel folders, or --manifest FILE")
    sources = []
    for index, path in enumerate(paths):
        check_model_path(path)
        sources.append(ModelSource(index, path, tuple(entries.get(path.resolve(), ())),
                                   manifest_only))
    return sources


NamedTask = tuple[tuple[int, int], str, "str | None", "tuple[str, ...] | None"]


def task_names(source: ModelSource, outputs: list[str]) -> list[NamedTask]:
    """The tasks a model with these ``outputs`` gives: (order key, name, output, labels).

    ``output`` is None for a single-output model. The order key sorts tasks into task-id order.
    """
    path = source.path
    stem = path.name if path.is_dir() else path.stem
    if len(outputs) == 1:
        if len(source.entries) > 1:
            raise ExportError(f"manifest lists {path} {len(source.entries)} times, but the model "
                              "has one output", hint="list each single-output model once")
        entry = source.entries[0] if source.entries else None
        if entry is not None and entry.output not in (None, outputs[0]):
            raise ExportError(f"manifest task {entry.name or entry.index!r}: {path} has no output "
                              f"{entry.output!r}; its output is {outputs[0]!r}")
        key = (entry.index if source.manifest_only and entry else source.index, 0)
        return [(key, entry.name if entry and entry.name else stem, None,
                 entry.labels if entry else None)]
    listed = ", ".join(outputs)
    by_output = {e.output: e for e in source.entries if e.output is not None}
    for entry in source.entries:
        if entry.output is None and (entry.name or entry.labels):
            raise ExportError(
                f"{path} has {len(outputs)} outputs ({listed}); a manifest entry that names or "
                "labels a task must say which output it is",
                hint=f"one entry per output: {{model: {path.name}, output: {outputs[0]}, "
                "name: ..., labels: [...]}")
        if entry.output is not None and entry.output not in outputs:
            raise ExportError(f"manifest: {path} has no output {entry.output!r}; its outputs are "
                              f"{listed}")
    whole = any(e.output is None for e in source.entries) or not source.entries
    chosen = outputs if (whole or not source.manifest_only) else [
        o for o in outputs if o in by_output]
    tasks: list[NamedTask] = []
    for position, output in enumerate(chosen):
        entry = by_output.get(output)
        if source.manifest_only:
            first = entry.index if entry else min(e.index for e in source.entries) \
                if source.entries else source.index
            key = (first, position)
        else:
            key = (source.index, position)
        tasks.append((key, entry.name if entry and entry.name else output, output,
                      entry.labels if entry else None))
    return tasks


def check_name(name: str, path: Path, seen: dict[str, Path]) -> None:
    if not _NAME.match(name):
        raise ExportError(f"task name {name!r} (from {path}) may only hold letters, digits "
                          "and _ . : / -", hint="give the task a name in a manifest")
    if name in seen:
        raise ExportError(f"task name {name!r} is used twice: {seen[name]} and {path}",
                          hint="rename one file or give names in a manifest")
    seen[name] = path
