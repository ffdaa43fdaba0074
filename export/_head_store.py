"""Task heads kept inside each version, so that a later version can be built from it (``--from``)
without the original model files.

In ``<version>/assets.extra/``:

- ``heads.npy``: one float32 vector (numpy's ``.npy`` format) with every Dense-chain head in
  task-id order; a head is its layers in order, each layer its kernel ``[in, out]`` (row-major)
  then its bias ``[out]``. The task's entry in ``headswitch.json`` says where it starts and what
  its layers are: ``"stored": {"kind": "dense", "offset": 1234, "layers": [[64, 16, "relu"],
  [16, 5, "softmax"]]}`` (offset counted in values). Nothing else is stored per task, so the
  stored head data is its weights plus that entry.
- ``heads/<task id>.keras``: any other head (a Keras sub-model, Keras 3 or tf_keras), saved by its
  own Keras and reloaded when stored to check that it computes exactly what it computed before:
  ``"stored": {"kind": "keras", "file": "heads/3.keras", "keras": "keras", ...}``.
- A head Keras cannot save or reload exactly (layers revived from a SavedModel folder without
  their class, ...) is ``"stored": {"kind": "none", "reason": "..."}``: a version built from this
  one needs that task's model file again (``--replace NAME=FILE``).

Every task entry also has ``head_sha256``, a digest of what is stored (layer list and values, or
the file), so two versions tell an unchanged head from a replaced one. ``headswitch.json``'s
``heads`` names the vector's file, its size and its SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from headswitch._manifest import HeadsFile

from ._errors import ExportError
from ._heads import DenseChainHead, DenseStep, GenericHead, Head
from ._keras import KERAS3, TF_KERAS, KerasModel

HEADS_FILE = "heads.npy"
HEADS_DIR = "heads"
REPLACE_HINT = "pass the task's model file again: --replace {name}=FILE"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _dense_digest(layers: list[list[Any]], values: npt.NDArray[Any]) -> str:
    digest = hashlib.sha256(json.dumps(layers).encode())
    digest.update(np.ascontiguousarray(values, dtype="<f4").tobytes())
    return digest.hexdigest()


class HeadWriter:
    """Writes the heads of one version into its ``assets.extra`` folder."""

    def __init__(self, assets_extra: Path) -> None:
        self.folder = assets_extra
        self._parts: list[npt.NDArray[Any]] = []
        self._offset = 0

    def dense(self, head: DenseChainHead) -> tuple[dict[str, Any], str]:
        """Append a Dense-chain head to the vector: its ``stored`` entry and digest."""
        layers = [[int(s.kernel.shape[0]), int(s.kernel.shape[1]), s.activation]
                  for s in head.steps]
        values = np.concatenate([np.concatenate([s.kernel.astype("<f4").ravel(),
                                                 s.bias.astype("<f4").ravel()])
                                 for s in head.steps])
        record = {"kind": "dense", "offset": self._offset, "layers": layers}
        self._parts.append(values)
        self._offset += values.size
        return record, _dense_digest(layers, values)

    def keras(self, task_id: int, head: GenericHead, features: Any, *, unsafe: bool
              ) -> tuple[dict[str, Any], str]:
        """Save a generic head with its own Keras and check that the saved file reloads into a
        head that computes exactly the same on ``features``; else a ``none`` entry saying why."""
        kit = head.model.kit
        relative = f"{HEADS_DIR}/{task_id}.keras"
        target = self.folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        fields = {"keras": kit.name, "width": head.width, "activation": head.activation,
                  "squeeze": head.squeeze, "compute_dtype": head.compute_dtype}
        try:
            head.model.model.save(str(target))
            again = _load_keras(target, kit.name, unsafe)
            same = np.array_equal(np.asarray(head.model(features, training=False)),
                                  np.asarray(again(features, training=False)))
        except Exception as e:  # Keras cannot save or reload it
            target.unlink(missing_ok=True)
            first = str(e).splitlines()[0][:200] if str(e) else ""
            return {"kind": "none", "reason": f"{kit.name} cannot save and reload this head: "
                    f"{type(e).__name__}: {first}"}, ""
        if not same:
            target.unlink()
            return {"kind": "none", "reason": f"the head reloaded from a {kit.name} .keras file "
                    "does not compute exactly what it computed before"}, ""
        return {"kind": "keras", "file": relative, **fields}, _sha256_file(target)

    def copy(self, record: dict[str, Any], previous_assets_extra: Path, task_id: int
             ) -> tuple[dict[str, Any], str]:
        """Carry a stored Keras head over from the previous version, file unchanged."""
        relative = f"{HEADS_DIR}/{task_id}.keras"
        target = self.folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(previous_assets_extra / record["file"], target)
        return {**record, "file": relative}, _sha256_file(target)

    def finish(self) -> HeadsFile:
        """Write the vector; the manifest's ``heads`` entry."""
        values = np.concatenate(self._parts) if self._parts else np.zeros(0, "<f4")
        path = self.folder / HEADS_FILE
        self.folder.mkdir(parents=True, exist_ok=True)
        np.save(path, values.astype("<f4"), allow_pickle=False)
        return HeadsFile(HEADS_FILE, int(values.size), path.stat().st_size, _sha256_file(path))


def _load_keras(path: Path, kit: str, unsafe: bool) -> KerasModel:
    chosen = TF_KERAS if kit == TF_KERAS.name else KERAS3
    return KerasModel(chosen.keras.models.load_model(str(path), compile=False,
                                                     safe_mode=not unsafe), chosen)


class HeadReader:
    """Reads heads back from a version written by ``HeadWriter``."""

    def __init__(self, assets_extra: Path, heads: HeadsFile, where: str) -> None:
        self.folder = assets_extra
        self.where = where
        path = assets_extra / heads.file
        if not path.is_file():
            raise ExportError(f"{where}: {path} is missing", hint="the version folder is "
                              "incomplete; copy it again or build from another version")
        if _sha256_file(path) != heads.sha256:
            raise ExportError(f"{where}: {path} does not match the SHA-256 recorded in "
                              "headswitch.json (the file was changed or is corrupt)",
                              hint="copy the version again, or build from another version")
        self._values = np.load(path, mmap_mode="r", allow_pickle=False)

    def read(self, name: str, record: dict[str, Any], digest: str, *, unsafe: bool) -> Head:
        kind = record.get("kind")
        if kind == "dense":
            return self._dense(name, record, digest)
        if kind == "keras":
            return self._keras(name, record, digest, unsafe)
        reason = record.get("reason", "it was not stored")
        raise ExportError(f"{self.where}: the head of task {name!r} is not stored in the "
                          f"version ({reason})", hint=REPLACE_HINT.format(name=name))

    def _dense(self, name: str, record: dict[str, Any], digest: str) -> DenseChainHead:
        layers = record["layers"]
        size = sum(n_in * n_out + n_out for n_in, n_out, _ in layers)
        offset = int(record["offset"])
        values = np.array(self._values[offset: offset + size], dtype=np.float32)
        if values.size != size or _dense_digest(layers, values) != digest:
            raise ExportError(f"{self.where}: the stored head of task {name!r} does not match "
                              "its recorded SHA-256", hint=REPLACE_HINT.format(name=name))
        steps = []
        for n_in, n_out, activation in layers:
            kernel = values[: n_in * n_out].reshape(n_in, n_out)
            bias = values[n_in * n_out: n_in * n_out + n_out]
            values = values[n_in * n_out + n_out:]
            steps.append(DenseStep(kernel.copy(), bias.copy(), str(activation)))
        return DenseChainHead(steps)

    def _keras(self, name: str, record: dict[str, Any], digest: str, unsafe: bool
               ) -> GenericHead:
        path = self.folder / record["file"]
        if not path.is_file() or _sha256_file(path) != digest:
            raise ExportError(f"{self.where}: the stored head of task {name!r} ({path}) is "
                              "missing or does not match its recorded SHA-256",
                              hint=REPLACE_HINT.format(name=name))
        try:
            model = _load_keras(path, record["keras"], unsafe)
        except Exception as e:
            text = str(e)
            from ._formats import UNSAFE_HINT

            unsafe_needed = "safe_mode" in text or "unsafe" in text
            raise ExportError(f"{self.where}: cannot load the stored head of task {name!r} "
                              f"({path}): {text.splitlines()[0][:200] if text else e!r}",
                              hint=UNSAFE_HINT if unsafe_needed
                              else REPLACE_HINT.format(name=name)) from e
        return GenericHead(model, int(record["width"]), str(record["activation"]),
                           bool(record["squeeze"]), str(record["compute_dtype"]))


def stored_heads_bytes(assets_extra: Path) -> int:
    """Bytes of a version's stored heads: the vector and the Keras head files."""
    files = [assets_extra / HEADS_FILE, *(assets_extra / HEADS_DIR).glob("*")]
    return sum(f.stat().st_size for f in files if f.is_file())


def stored_bytes(record: dict[str, Any], assets_extra: Path) -> int:
    """Bytes a task's stored head takes: its values in the vector, or its file."""
    if record.get("kind") == "dense":
        return 4 * sum(int(n_in) * int(n_out) + int(n_out) for n_in, n_out, _ in record["layers"])
    if record.get("kind") == "keras":
        return int((assets_extra / record["file"]).stat().st_size)
    return 0

