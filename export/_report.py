"""What an export reports: ``ExportReport`` with a ``TaskResult`` per task (``--json`` prints
``ExportReport.to_dict()``), and the tables a person reads."""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from pathlib import Path
from typing import Any

from headswitch._manifest import SourceFile, TaskRecord

MAX_TASK_ROWS = 25


@dataclasses.dataclass(frozen=True)
class TaskResult:
    task_id: int
    name: str
    labels: list[str]
    activation: str
    head: str  # "stacked" or "generic"
    head_bytes: int
    source: str
    source_sha256: str
    source_bytes: int
    max_abs_diff: float
    source_format: str = ""  # e.g. "tf_keras SavedModel folder"
    output: str | None = None  # the output of a multi-output model this task is
    compute_dtype: str = "float32"  # the dtype the head computes in
    change: str = "added"  # what this version did to the task: "added", "replaced", "unchanged"
    since: int | None = None  # the version that first published the task
    head_since: int | None = None  # the version whose export read its head from its file
    checked_against: str = "file"  # what max_abs_diff compares with: "file" or "version N"
    stored: dict[str, Any] = dataclasses.field(default_factory=dict)  # its head-store entry
    head_sha256: str = ""  # digest of the stored head
    backbone: int = 0  # the id of the backbone it runs on

    def record(self) -> TaskRecord:
        """The task's entry in ``headswitch.json``."""
        return TaskRecord(
            id=self.task_id, name=self.name, labels=tuple(self.labels),
            num_classes=len(self.labels), activation=self.activation, head=self.head,
            head_bytes=self.head_bytes, dtype=self.compute_dtype,
            max_abs_diff=float(f"{self.max_abs_diff:.3g}"), checked_against=self.checked_against,
            since=self.since, head_since=self.head_since,
            source=SourceFile(os.path.basename(self.source), self.source_format,
                              self.source_sha256, self.source_bytes, self.output),
            stored=self.stored, head_sha256=self.head_sha256, backbone=self.backbone)

    @classmethod
    def kept(cls, record: TaskRecord, head_bytes: int, max_abs_diff: float, previous: int,
             stored: dict[str, Any], head_sha256: str) -> TaskResult:
        """A task carried over unchanged from version ``previous``."""
        source = record.source
        return cls(record.id, record.name, list(record.labels), record.activation, record.head,
                   head_bytes, source.file, source.sha256, source.bytes, max_abs_diff,
                   source.format, source.output, record.dtype, change="unchanged",
                   since=record.since, head_since=record.head_since,
                   checked_against=f"version {previous}", stored=stored,
                   head_sha256=head_sha256, backbone=record.backbone)


@dataclasses.dataclass(frozen=True)
class ExportReport:
    path: Path
    version: int
    model_name: str
    split_layer: str
    split_mode: str  # "given" or "auto"
    tasks: list[TaskResult]
    originals_bytes: int
    merged_bytes: int  # the whole version folder, assets.extra included
    backbone_bytes: int
    heads_bytes: int
    backbone_fingerprint: str
    max_abs_diff: float
    seconds: float
    tensorflow_version: str
    features_dtype: str = "float32"  # the backbone output's dtype
    non_core_ops: list[str] = dataclasses.field(default_factory=list)  # TF Text ops used
    previous_version: int | None = None  # the version this one was built from (--from)
    removed: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # removed by it
    heads_store_bytes: int = 0  # the stored heads (assets.extra/heads.npy and heads/)
    served_bytes: int = 0  # what TF Serving loads: saved_model.pb, variables/, assets/
    # layers after an automatic split that every model of a backbone has, some of them
    # fine-tuned, so the shared part ends before them: backbone, layer, files, max_abs_diff
    not_shared: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # every backbone: id, split_layer, fingerprint, saved_bytes, tasks (the fields above
    # split_layer, backbone_bytes, backbone_fingerprint, features_dtype are the first one's)
    backbones: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # what the user should know although the export went on (e.g. a task accepted within its
    # original's own float32 variation)
    notices: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["path"] = str(self.path)
        return data


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _backbone_cell(backbone: dict[str, Any]) -> str:
    n = len(backbone["tasks"])
    return f"{backbone['id']}: {n} task{'' if n == 1 else 's'} up to {backbone['split_layer']!r}"


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
    for left in report.not_shared:
        console.print(f"not shared: layer {left['layer']!r} is fine-tuned in "
                      f"{', '.join(left['files'])} (max abs diff {left['max_abs_diff']:.3g}), "
                      f"so the shared part ends before it (at {left['split_layer']!r}) and it "
                      "runs in each task's head (--backbone-groups would give each copy a "
                      "backbone of its own instead)", highlight=False, markup=False)
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
        ("split layer", f"{report.split_layer} ({report.split_mode})")
        if len(report.backbones) <= 1 else
        ("backbones", "; ".join(map(_backbone_cell, report.backbones))),
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
        ("backbone alone (SavedModel)" if len(report.backbones) <= 1 else
         "backbones alone (SavedModels, summed)", human_bytes(report.backbone_bytes)),
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
    for notice in report.notices:
        console.print(f"notice: {notice}", highlight=False, markup=False)
