"""``headswitch diff BASE/A BASE/B``: what changed between two versions, read from their
``headswitch.json`` files and folders (no TensorFlow).

A task is matched by id. Same id and name: ``unchanged`` when its stored head and labels are the
same, else ``replaced``. An id only in B is ``added``, only in A ``removed``; the same id with
another name (versions of unrelated exports) is ``other task``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from headswitch._manifest import Manifest, TaskRecord
from headswitch.contract import ASSETS_EXTRA

from ._errors import ExportError
from ._head_store import stored_heads_bytes
from ._previous import read_manifest, resolve
from ._versions import folder_bytes, served_bytes

CHANGES = ("added", "removed", "replaced", "other task", "unchanged")


def _side(spec: str | os.PathLike[str]) -> tuple[Path, int, Manifest]:
    _, version, folder = resolve(spec)
    return folder, version, read_manifest(folder)


def _task(t: TaskRecord) -> dict[str, Any]:
    return {"id": t.id, "name": t.name}


def diff_versions(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> dict[str, Any]:
    """Tasks added, removed, replaced and unchanged from version ``a`` to version ``b``, the
    backbone fingerprints and the sizes."""
    folder_a, version_a, ma = _side(a)
    folder_b, version_b, mb = _side(b)
    if folder_a.resolve() == folder_b.resolve():
        raise ExportError(f"both arguments name {folder_a}", hint="pass two versions")
    tasks_a = {t.id: t for t in ma.tasks}
    tasks_b = {t.id: t for t in mb.tasks}
    removed_in_b = {r.id: r for r in mb.removed}
    rows: list[dict[str, Any]] = []
    for task_id in sorted(set(tasks_a) | set(tasks_b)):
        ta, tb = tasks_a.get(task_id), tasks_b.get(task_id)
        if ta is None and tb is not None:
            rows.append({**_task(tb), "change": "added"})
        elif tb is None and ta is not None:
            gone = removed_in_b.get(task_id)
            rows.append({**_task(ta), "change": "removed",
                         **({"removed_in": gone.version} if gone else {})})
        elif ta is not None and tb is not None:
            if ta.name != tb.name:
                change = "other task"
            elif (ta.head_sha256, ta.labels, ta.activation) == (
                    tb.head_sha256, tb.labels, tb.activation) and ta.head_sha256:
                change = "unchanged"
            else:
                change = "replaced"
            rows.append({**_task(tb), "change": change,
                         **({"was": ta.name} if change == "other task" else {})})
    counts = {k: sum(r["change"] == k for r in rows) for k in CHANGES}
    fingerprint_a = ma.backbone.fingerprint_sha256
    fingerprint_b = mb.backbone.fingerprint_sha256
    backbones_a = {b.id: b.fingerprint_sha256 for b in ma.backbones}
    backbones_b = {b.id: b.fingerprint_sha256 for b in mb.backbones}

    def sizes(folder: Path, manifest: Manifest) -> dict[str, Any]:
        return {"total_bytes": folder_bytes(folder), "served_bytes": served_bytes(folder),
                "stored_heads_bytes": stored_heads_bytes(folder / ASSETS_EXTRA),
                "tasks": len(manifest.tasks)}

    return {
        "a": {"path": str(folder_a), "version": version_a, **sizes(folder_a, ma)},
        "b": {"path": str(folder_b), "version": version_b, **sizes(folder_b, mb)},
        "backbone": {"a": fingerprint_a, "b": fingerprint_b,
                     "same": fingerprint_a == fingerprint_b},
        "backbones": [{"id": i, "a": backbones_a.get(i), "b": backbones_b.get(i),
                       "tasks_a": len(ma.tasks_of(i)), "tasks_b": len(mb.tasks_of(i)),
                       "change": "added" if i not in backbones_a else "removed"
                       if i not in backbones_b else "unchanged"
                       if backbones_a[i] == backbones_b[i] else "different"}
                      for i in sorted(set(backbones_a) | set(backbones_b))],
        "counts": counts,
        "tasks": rows,
    }


def render_diff(info: dict[str, Any], console: Any, *, all_tasks: bool = False) -> None:
    from rich.table import Table

    from ._report import human_bytes

    a, b = info["a"], info["b"]
    summary = Table(title=f"{a['path']} -> {b['path']}", title_justify="left")
    for column in ("", f"version {a['version']}", f"version {b['version']}"):
        summary.add_column(column, justify="right" if column else "left")
    backbones = info["backbones"]
    if len(backbones) == 1:
        backbone = info["backbone"]
        summary.add_row("backbone fingerprint", backbone["a"][:16], backbone["b"][:16] + (
            " (same)" if backbone["same"] else " (DIFFERENT)"))
    else:
        for b in backbones:
            note = {"unchanged": "", "added": " (added)", "removed": " (removed)",
                    "different": " (DIFFERENT)"}[b["change"]]
            summary.add_row(f"backbone {b['id']} (tasks)",
                            f"{(b['a'] or '-')[:16]} ({b['tasks_a']})",
                            f"{(b['b'] or '-')[:16]} ({b['tasks_b']}){note}")
    summary.add_row("tasks", str(a["tasks"]), str(b["tasks"]))
    for key, name in (("total_bytes", "version folder"),
                      ("served_bytes", "served (saved_model.pb, variables, assets)"),
                      ("stored_heads_bytes", "stored heads")):
        summary.add_row(name, human_bytes(a[key]), human_bytes(b[key]))
    console.print(summary)
    counts = ", ".join(f"{n} {k}" for k, n in info["counts"].items() if n)
    console.print(f"tasks: {counts or 'none'}")
    changed = [r for r in info["tasks"] if all_tasks or r["change"] != "unchanged"]
    if changed:
        table = Table(title="Tasks" if all_tasks else "Changed tasks", title_justify="left")
        for column in ("id", "task", "change"):
            table.add_column(column, justify="right" if column == "id" else "left")
        for r in changed:
            note = f" (was {r['was']!r})" if "was" in r else (
                f" (in version {r['removed_in']})" if "removed_in" in r else "")
            table.add_row(str(r["id"]), r["name"], r["change"] + note)
        console.print(table)
