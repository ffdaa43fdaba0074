"""A published version read back: its manifest, its SavedModel (the backbone's ``features``
function and variables), its stored heads and probe texts. The source of a version built
``--from`` it, of ``headswitch backbone`` and of ``headswitch diff``."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from headswitch._manifest import Manifest, ManifestError, RemovedTask, TaskRecord
from headswitch.contract import ASSETS_EXTRA

from ._errors import ExportError
from ._versions import versions

REEXPORT_HINT = ("export it once more from its original model files with this headswitch; "
                 "later versions can then be built from it")


def resolve(spec: str | os.PathLike[str]) -> tuple[Path, int, Path]:
    """(base, version, version folder) of ``BASE`` (its newest version) or ``BASE/VERSION``."""
    path = Path(spec)
    if (path / "saved_model.pb").is_file():
        if not path.name.isdigit():
            raise ExportError(f"{path} is not a numbered version folder",
                              hint="pass BASE or BASE/VERSION, e.g. models/headswitch/3")
        return path.parent, int(path.name), path
    if not path.is_dir():
        raise ExportError(f"{path} does not exist",
                          hint="pass BASE or BASE/VERSION, e.g. models/headswitch/3")
    found = versions(path)
    if not found:
        raise ExportError(f"{path} holds no numbered version folders",
                          hint="pass BASE or BASE/VERSION, e.g. models/headswitch/3")
    return path, found[-1], path / str(found[-1])


def read_manifest(folder: Path) -> Manifest:
    """The version's ``headswitch.json``; refuses what headswitch did not write (or an older
    format) with the fix."""
    try:
        return Manifest.read(folder)
    except ManifestError as e:
        raise ExportError(str(e), hint=REEXPORT_HINT) from e


@dataclasses.dataclass
class PreviousVersion:
    base: Path
    version: int
    path: Path
    manifest: Manifest
    loaded: Any  # tf.saved_model.load of the version

    @property
    def label(self) -> str:
        return f"version {self.version}"

    @property
    def assets_extra(self) -> Path:
        return self.path / ASSETS_EXTRA

    @property
    def tasks(self) -> tuple[TaskRecord, ...]:
        return self.manifest.tasks

    @property
    def removed(self) -> tuple[RemovedTask, ...]:
        return self.manifest.removed

    @property
    def texts(self) -> list[str]:
        return list(self.manifest.probe_texts)

    @property
    def next_id(self) -> int:
        return self.manifest.next_task_id

    @property
    def features(self) -> Any:
        from ._module import FEATURES

        return getattr(self.loaded, FEATURES)

    def saved(self, backbone: int, name: str) -> Any:
        """A backbone's function (``features``) or variable list (``_backbone_variables``,
        ``_backbone_resources``) as the module saved it."""
        from ._backbones import saved

        return saved(self.loaded, name, backbone, len(self.manifest.backbones))

    def backbone(self, number: int | None = None) -> Any:
        """Backbone ``number`` (default: the first) as a ``SavedBackbone``, for a new module."""
        from ._module import FEATURES, SavedBackbone

        record = self.manifest.backbone if number is None else \
            self.manifest.backbone_of(number)
        return SavedBackbone(self.saved(record.id, FEATURES), record.features_width,
                             list(self.saved(record.id, "_backbone_variables")),
                             list(self.saved(record.id, "_backbone_resources")))

    def variable_values(self, number: int | None = None) -> list[npt.NDArray[Any]]:
        """The saved values of backbone ``number``'s variables (default: the first's)."""
        record = self.manifest.backbone if number is None else \
            self.manifest.backbone_of(number)
        return [np.asarray(v.numpy()) for v in self.saved(record.id, "_backbone_variables")]


def open_version(spec: str | os.PathLike[str]) -> PreviousVersion:
    """Read a version written by headswitch (format 2 or later) and load its SavedModel."""
    base, version, path = resolve(spec)
    manifest = read_manifest(path)
    if manifest.serving.non_core_ops:
        try:
            import tensorflow_text  # noqa: F401  (registers the TF Text ops the model uses)
        except ImportError as e:
            from ._formats import INSTALL_KERAS_HUB

            raise ExportError(f"version {version} uses TF Text ops and tensorflow-text is not "
                              "installed", hint=INSTALL_KERAS_HUB) from e
    from headswitch._quiet import import_tensorflow

    tf = import_tensorflow()
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as e:
        raise ExportError(f"cannot load version {version} ({path}): {type(e).__name__}: "
                          f"{str(e).splitlines()[0][:300] if str(e) else ''}",
                          hint="the version folder may be incomplete or corrupt") from e
    from ._module import FEATURES

    if not hasattr(loaded, FEATURES):
        raise ExportError(f"version {version} ({path}) has no backbone function "
                          f"({FEATURES!r})", hint=REEXPORT_HINT)
    return PreviousVersion(base, version, path, manifest, loaded)
