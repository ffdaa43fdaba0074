"""Batch scoring: every (text, task) row of JSON lines or CSV files through a headswitch
SavedModel, in this process or as an Apache Beam pipeline (Dataflow, Flink, Spark).

    from headswitch.score import ScoreOptions, run_in_process
    summary = run_in_process(ScoreOptions("models/headswitch", ("rows.jsonl",), "scored"))

The Beam runner lives in ``headswitch.score.beam`` (needs ``pip install "headswitch[beam]"``).
Each name loads its module on first use: the ``headswitch`` command starts without numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headswitch._lazy import lazy_names

if TYPE_CHECKING:
    from ._errors import ScoreError
    from ._job import DEFAULT_BATCH_SIZE, RUNNERS, ScoreOptions, Summary
    from ._local import run_in_process
    from ._model import ModelLocation, Scorer, locate_model
    from ._rows import Row, RowError, RowSpec

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "RUNNERS",
    "ModelLocation",
    "Row",
    "RowError",
    "RowSpec",
    "ScoreError",
    "ScoreOptions",
    "Scorer",
    "Summary",
    "locate_model",
    "run_in_process",
]

__getattr__, __dir__ = lazy_names(__name__, {
    "DEFAULT_BATCH_SIZE": "_job", "RUNNERS": "_job", "ScoreOptions": "_job", "Summary": "_job",
    "ModelLocation": "_model", "Scorer": "_model", "locate_model": "_model",
    "Row": "_rows", "RowError": "_rows", "RowSpec": "_rows", "ScoreError": "_errors",
    "run_in_process": "_local",
}, globals())
