"""The exported model folder as a deployer sees it: numbered versions and the files to upload."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from headswitch._manifest import Manifest, ManifestError

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
    manifest: Manifest | None = field(default=None, compare=False)  # the newest version's

    @property
    def newest(self) -> int:
        return self.versions[-1]

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes)

    @property
    def tensorflow_version(self) -> str | None:
        """The TensorFlow that exported the newest version (its ``headswitch.json``)."""
        return self.manifest.tensorflow_version if self.manifest else None

    def first_task(self) -> tuple[int, str]:
        """(id, name) of the first task of the newest version, for sample requests."""
        if self.manifest and self.manifest.tasks:
            return self.manifest.tasks[0].id, self.manifest.tasks[0].name
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
    newest = root / str(versions[-1])
    if Manifest.path(newest).is_file():
        try:
            manifest = Manifest.read(newest)
        except ManifestError as exc:
            raise DeployError(str(exc), hint="export the version again with this headswitch"
                              ) from exc
    return LocalModel(base=root, versions=tuple(versions), files=tuple(files),
                      sizes=tuple(sizes), manifest=manifest)
