"""The exported model folder as a deployer sees it: numbered versions and the files to upload."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headswitch.contract import ASSETS_EXTRA, MANIFEST_FILE

from ._errors import DeployError

SAVED_MODEL = "saved_model.pb"


@dataclass(frozen=True)
class LocalModel:
    """``base/<version>/...`` on disk."""

    base: Path
    versions: tuple[int, ...]
    # Paths relative to ``base``, in upload order: versions ascending; in each version every
    # other file first and ``saved_model.pb`` last, so a server polling the destination never
    # finds a saved_model.pb whose variables are still on their way.
    files: tuple[Path, ...]
    sizes: tuple[int, ...]
    manifest: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def newest(self) -> int:
        return self.versions[-1]

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes)

    @property
    def tensorflow_version(self) -> str | None:
        """The TensorFlow that exported the newest version (its ``headswitch.json``)."""
        if not self.manifest:
            return None
        value = self.manifest.get("tensorflow_version")
        return str(value) if value else None

    def first_task(self) -> tuple[int, str]:
        """(id, name) of task 0 of the newest version, for sample requests."""
        tasks = (self.manifest or {}).get("tasks") or []
        if tasks and isinstance(tasks[0], dict):
            return int(tasks[0].get("id", 0)), str(tasks[0].get("name", "0"))
        return 0, "TASK"


def _hidden(name: str) -> bool:
    return name.startswith(".")


def scan_model_dir(base: str | os.PathLike[str]) -> LocalModel:
    """Read a model base folder. Only integer-named folders are versions (as for TF Serving);
    temporary and hidden entries, at any depth, are skipped."""
    root = Path(base)
    if not root.is_dir():
        raise DeployError(f"model folder {root} does not exist",
                          hint="export first: headswitch export MODEL.keras ... --out " + str(root))
    versions = sorted(int(p.name) for p in root.iterdir()
                      if p.is_dir() and p.name.isdigit() and not _hidden(p.name))
    if not versions:
        raise DeployError(f"{root} holds no numbered version folder (expected {root}/1/"
                          f"{SAVED_MODEL}, ...)",
                          hint="pass the model base folder given to `headswitch export --out`, "
                          "not a version folder")
    files: list[Path] = []
    sizes: list[int] = []
    for version in versions:
        folder = root / str(version)
        if not (folder / SAVED_MODEL).is_file():
            raise DeployError(f"version {version} has no {SAVED_MODEL} ({folder})",
                              hint="remove the broken version folder or export again")
        found: list[Path] = []
        for current, dirs, names in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not _hidden(d))
            for name in sorted(names):
                if not _hidden(name):
                    found.append(Path(current, name).relative_to(root))
        last = Path(str(version), SAVED_MODEL)
        ordered = sorted(p for p in found if p != last) + [last]
        files.extend(ordered)
        sizes.extend((root / p).stat().st_size for p in ordered)
    manifest = None
    manifest_path = root / str(versions[-1]) / ASSETS_EXTRA / MANIFEST_FILE
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise DeployError(f"cannot read {manifest_path}: {exc}") from exc
    return LocalModel(base=root, versions=tuple(versions), files=tuple(files),
                      sizes=tuple(sizes), manifest=manifest)
