"""``export_models``: N Keras models in, one verified task-switching SavedModel version out.

Stages, each in its own module: which files make which tasks (``_sources``) -> read every file,
find the shared backbone and read each task's head (``_collect``, which loads with ``_formats``
and splits with ``_split``) -> build the task-switching module (``_module``) -> save, check and
publish it (``_publish``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from headswitch._manifest import BackboneRecord
from headswitch.contract import DEFAULT_BASE as _DEFAULT_BASE
from headswitch.contract import DEFAULT_MODEL_NAME, INPUT_TEXT

from . import _backbones, _hf, _sources, _trunk
from ._collect import Collected, Progress, collect, labels_of
from ._errors import ExportError
from ._heads import TaskEntry
from ._keras import KerasModel
from ._module import build_module
from ._publish import BackboneWriter, FreshTask, Lineage, Release, publish
from ._report import ExportReport

DEFAULT_BASE = Path(_DEFAULT_BASE)


def export_models(
    models: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] = DEFAULT_BASE,
    *,
    split_layer: str | None = None,
    version: int | None = None,
    manifest: str | os.PathLike[str] | None = None,
    tolerance: float = 0.0,
    model_name: str = DEFAULT_MODEL_NAME,
    progress: Progress | None = None,
    unsafe_deserialization: bool = False,
    accept_shorter_backbone: bool = False,
    backbone_groups: bool = False,
    tokenizer: str | os.PathLike[str] | None = None,
) -> ExportReport:
    """Merge Keras models that share a backbone into ``out/<version>/``, verified and atomic.

    ``backbone_groups``: models that do not all share one backbone are grouped by backbone;
    the version stores each group's backbone once and runs it for its own tasks' examples."""
    from headswitch._quiet import import_tensorflow

    started = time.perf_counter()
    import_tensorflow()
    base = Path(out)
    _check_arguments(base, version, tolerance)
    sources = _sources.resolve(list(models), manifest)
    with _hf.tokenizer_from(tokenizer):  # issue 21: Hugging Face models' tokenizer files
        got = collect(sources, split_layer=split_layer, tolerance=tolerance,
                      unsafe=unsafe_deserialization, accept_shorter=accept_shorter_backbone,
                      grouped=backbone_groups, progress=progress)
    entries = [TaskEntry(i, t.name, labels_of(t), t.head, got.group_of(t).number)
               for i, t in enumerate(got.tasks)]
    backbones = [g.reference.up_to(g.split_op).with_text_input(INPUT_TEXT) for g in got.groups]
    trunk = _trunk.find(backbones) if len(backbones) > 1 else None
    if trunk is not None:  # the layers every group shares: one copy
        backbones = trunk.backbones
    module = build_module(backbones, entries)
    return publish(Release(
        base=base, version=version, model_name=model_name, module=module, texts=got.texts,
        fresh=[FreshTask(e, t) for e, t in zip(entries, got.tasks)], kept=[],
        backbone=_backbone_writer(got, backbones, module, "given" if split_layer else "auto",
                                  trunk is not None),
        trunk=trunk.layers if trunk is not None else (),
        lineage=Lineage(), tolerance=tolerance, unsafe=unsafe_deserialization,
        started=started, not_shared=_not_shared(got)))


def _not_shared(got: Collected) -> list[dict[str, Any]]:
    """The report's list of the layers that left the shared part (``BackboneGroup.left``)."""
    return [{"backbone": g.number, "split_layer": g.split_op.name, "layer": left.layer,
             "files": left.files, "max_abs_diff": left.max_abs_diff}
            for g in got.groups for left in g.left]


def _check_arguments(base: Path, version: int | None, tolerance: float) -> None:
    if tolerance < 0:
        raise ExportError(f"--tolerance must be >= 0, got {tolerance}")
    if version is not None and version < 0:
        raise ExportError(f"--version must be a non-negative integer, got {version}")
    if version is not None and (base / str(version)).exists():
        raise ExportError(f"version {version} already exists at {base / str(version)}; versions "
                          "are never overwritten", hint="omit --version to take the next number")


def _backbone_writer(got: Collected, backbones: list[KerasModel], module: Any, split_mode: str,
                     rebuilt: bool) -> BackboneWriter:
    """What a first version keeps of each backbone (``_backbones.fresh``)."""

    def write(assets_extra: Path, loaded: Any) -> list[BackboneRecord]:
        return [_backbones.fresh(group, backbone, module, group.number, len(got.groups),
                                 split_mode, assets_extra, rebuilt)
                for group, backbone in zip(got.groups, backbones)]

    return write
