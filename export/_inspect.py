"""``headswitch inspect``: what a base folder or one version holds, read from disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from headswitch import Error
from headswitch._manifest import Manifest, ManifestError
from headswitch.contract import ASSETS_EXTRA, WARMUP_FILE

from ._versions import TEMP_PREFIX, folder_bytes, versions

_DTYPES = {1: "float32", 2: "float64", 3: "int32", 7: "string", 9: "int64", 10: "bool"}


class InspectError(Error):
    """An export folder cannot be read: missing, no versions, or not a SavedModel."""


def _signatures(version_dir: Path) -> dict[str, Any]:
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    except Exception as e:
        raise InspectError(f"{version_dir / 'saved_model.pb'} is not a SavedModel: {e}") from e
    result: dict[str, Any] = {}
    for meta in proto.meta_graphs:
        if "serve" not in meta.meta_info_def.tags:
            continue
        for name, sig in sorted(meta.signature_def.items()):
            if name.startswith("__"):
                continue

            def describe(tensors: Any) -> dict[str, str]:
                return {k: f"{_DTYPES.get(v.dtype, str(v.dtype))}"
                        f"{[d.size for d in v.tensor_shape.dim]}"
                        for k, v in sorted(tensors.items())}

            result[name] = {"inputs": describe(sig.inputs), "outputs": describe(sig.outputs)}
    return result


def inspect_export(path: str | Path) -> dict[str, Any]:
    """Versions, signatures, tasks and sizes of ``BASE`` (newest version) or ``BASE/VERSION``."""
    path = Path(path)
    if not path.exists():
        raise InspectError(f"{path} does not exist")
    if (path / "saved_model.pb").is_file():
        base, chosen = path.parent, path
    else:
        base = path
        found = versions(base)
        if not found:
            raise InspectError(f"{path} holds no numbered version folders with a SavedModel")
        chosen = base / str(found[-1])
    listed = []
    for v in versions(base):
        folder = base / str(v)
        listed.append({"version": v, "bytes": folder_bytes(folder),
                       "complete": (folder / "saved_model.pb").is_file()})
    info: dict[str, Any] = {
        "base": str(base),
        "versions": listed,
        "temporary_folders": sorted(p.name for p in base.iterdir()
                                    if p.name.startswith(TEMP_PREFIX)),
        "version": int(chosen.name) if chosen.name.isdigit() else None,
        "path": str(chosen),
        "bytes": folder_bytes(chosen),
        "signatures": _signatures(chosen),
        "warmup": (chosen / ASSETS_EXTRA / WARMUP_FILE).is_file(),
    }
    if Manifest.path(chosen).is_file():
        try:
            info["manifest"] = Manifest.read(chosen).to_json()
        except ManifestError as e:
            info["manifest_error"] = str(e)
    return info


def render_inspection(info: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    from ._report import human_bytes

    versions_table = Table(title=f"Versions in {info['base']}", title_justify="left")
    for column in ("version", "size", "complete"):
        versions_table.add_column(column)
    for v in info["versions"]:
        versions_table.add_row(str(v["version"]), human_bytes(v["bytes"]),
                               "yes" if v["complete"] else "NO")
    console.print(versions_table)
    if info["temporary_folders"]:
        console.print(f"unpublished temporary folders (ignored by TF Serving): "
                      f"{', '.join(info['temporary_folders'])}")
    sigs = Table(title=f"Signatures of {info['path']}", title_justify="left")
    for column in ("signature", "inputs", "outputs"):
        sigs.add_column(column)
    for name, sig in info["signatures"].items():
        sigs.add_row(name, "\n".join(f"{k}: {v}" for k, v in sig["inputs"].items()),
                     "\n".join(f"{k}: {v}" for k, v in sig["outputs"].items()))
    console.print(sigs)
    if "manifest_error" in info:
        console.print(f"headswitch.json: {info['manifest_error']}", markup=False)
    if "manifest" in info:
        manifest = Manifest.parse(info["manifest"])
        split = f"split at {manifest.backbone.split_layer!r}" if len(manifest.backbones) == 1 \
            else f"{len(manifest.backbones)} backbones"
        tasks = Table(title=f"Tasks (TensorFlow {manifest.tensorflow_version}, {split})",
                      title_justify="left")
        grouped = len(manifest.backbones) > 1
        columns = ["id", "task", "labels", "activation", "head", "since", "head from"]
        for column in columns + (["backbone"] if grouped else []):
            tasks.add_column(column)
        for t in manifest.tasks:
            labels = ", ".join(t.labels[:8]) + (", …" if len(t.labels) > 8 else "")
            head = t.head if t.dtype == "float32" else f"{t.head} ({t.dtype})"
            tasks.add_row(str(t.id), t.name, labels, t.activation, head,
                          "" if t.since is None else str(t.since),
                          "" if t.head_since is None else str(t.head_since),
                          *([str(t.backbone)] if grouped else []))
        console.print(tasks)
        if len(manifest.backbones) > 1:
            _render_backbones(manifest, console)
        _render_history(manifest, console)
        console.print(f"verified: max |merged - original| = "
                      f"{manifest.verification.max_abs_diff:.2e}")
        serving = manifest.serving
        ops = ", ".join(serving.non_core_ops) or "none"
        console.print(f"non-core ops: {ops} (served by {serving.image}: "
                      f"{serving.non_core_ops_from})")


def _render_backbones(manifest: Manifest, console: Any) -> None:
    """Each backbone of a version exported with --backbone-groups: its tasks, where it ends,
    its fingerprint and its size alone."""
    from rich.table import Table

    from ._report import human_bytes

    table = Table(title=f"Backbones ({len(manifest.backbones)})", title_justify="left")
    for column in ("backbone", "tasks", "split at", "fingerprint", "size alone"):
        table.add_column(column)
    for b in manifest.backbones:
        names = [t.name for t in manifest.tasks_of(b.id)]
        shown = ", ".join(names[:4]) + (f", … ({len(names)})" if len(names) > 4 else "")
        table.add_row(str(b.id), shown, b.split_layer, b.fingerprint_sha256[:16],
                      human_bytes(b.saved_bytes))
    console.print(table)
    if manifest.trunk:
        console.print(f"shared by every backbone, one copy: {', '.join(manifest.trunk)}")


def _render_history(manifest: Manifest, console: Any) -> None:
    """The versions this one descends from, and the tasks each added, replaced and removed."""
    from rich.table import Table

    history = manifest.history
    if not history:
        return
    names = {t.id: t.name for t in manifest.removed}
    names.update({t.id: t.name for t in manifest.tasks})

    def listed(ids: list[int]) -> str:
        shown = [f"{names.get(i, '?')} ({i})" for i in ids[:6]]
        return ", ".join(shown) + (f", … ({len(ids)} in all)" if len(ids) > 6 else "")

    table = Table(title="Task history", title_justify="left")
    for column in ("version", "from", "created", "added", "replaced", "removed"):
        table.add_column(column)
    for h in history:
        table.add_row(str(h.version), "" if h.previous is None else str(h.previous),
                      h.created, listed(list(h.added)), listed(list(h.replaced)),
                      listed(list(h.removed)))
    console.print(table)
