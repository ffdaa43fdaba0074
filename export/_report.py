"""Human-readable report tables for an export (``--json`` prints ExportReport.to_dict())."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ._exporter import ExportReport

MAX_TASK_ROWS = 25


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def render(report: ExportReport, console: Any) -> None:
    from rich.table import Table

    since = report.previous_version
    tasks = Table(title=f"Tasks in {report.path} (model {report.model_name!r}, version "
                  f"{report.version}" + (f", from version {since}" if since is not None else "")
                  + ")", title_justify="left")
    columns = ["id", "task", "labels", "activation", "head", "max |diff|"]
    if since is not None:
        columns += ["change", "checked against"]
    for column in columns:
        tasks.add_column(column, justify="right" if column in ("id", "max |diff|") else "left")
    shown = report.tasks
    if since is not None:  # changed tasks first: they are what this version is about
        shown = sorted(shown, key=lambda t: t.change == "unchanged")
    if len(shown) > MAX_TASK_ROWS:
        shown = shown[: MAX_TASK_ROWS - 5] + shown[-5:]
    for i, t in enumerate(shown):
        if len(report.tasks) > MAX_TASK_ROWS and i == MAX_TASK_ROWS - 5:
            tasks.add_row("…", f"{len(report.tasks) - MAX_TASK_ROWS + 1} more",
                          *[""] * (len(columns) - 2))
        labels = ", ".join(t.labels[:6]) + (", …" if len(t.labels) > 6 else "")
        head = t.head if t.compute_dtype == "float32" else f"{t.head} ({t.compute_dtype})"
        row = [str(t.task_id), t.name, labels, t.activation, head, f"{t.max_abs_diff:.1e}"]
        if since is not None:
            row += [t.change, t.checked_against]
        tasks.add_row(*row)
    console.print(tasks)
    for r in report.removed:
        console.print(f"removed: task {r['id']} ({r['name']!r}); its id answers that it was "
                      f"removed in version {r['version']}")

    summary = Table(title="Export summary", title_justify="left")
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    stacked = sum(t.head == "stacked" for t in report.tasks)
    merged_floor = report.backbone_bytes + report.heads_bytes
    rows = [
        ("tasks",
         f"{len(report.tasks)} ({stacked} stacked, {len(report.tasks) - stacked} generic)"),
        ("split layer", f"{report.split_layer} ({report.split_mode})"),
        ("worst |merged - original|" if since is None else
         "worst |merged - file or previous version|",
         f"{report.max_abs_diff:.2e} (limit 1e-05)"),
        ("read from", ", ".join(f"{n} x {fmt}" for fmt, n in Counter(
            t.source_format for t in report.tasks).items())),
        ("original model files" if since is None else "new model files read",
         human_bytes(report.originals_bytes)),
        ("merged SavedModel (served)", human_bytes(report.served_bytes)),
        ("  with assets.extra (warmup, manifest, stored heads)",
         human_bytes(report.merged_bytes)),
        *([("  merged / originals",
            f"{report.merged_bytes / max(report.originals_bytes, 1):.3f}")]
          if since is None else []),  # a version --from reads only its new files
        ("backbone alone (SavedModel)", human_bytes(report.backbone_bytes)),
        ("heads (weights)", human_bytes(report.heads_bytes)),
        ("stored heads (assets.extra)", human_bytes(report.heads_store_bytes)),
        ("  served / (backbone + heads)", f"{report.served_bytes / max(merged_floor, 1):.3f}"),
        ("backbone features", report.features_dtype),
        ("non-core ops (TF Text)", ", ".join(report.non_core_ops) or "none"),
        ("TensorFlow", report.tensorflow_version),
        ("time", f"{report.seconds:.1f} s"),
    ]
    for name, value in rows:
        summary.add_row(name, value)
    console.print(summary)
