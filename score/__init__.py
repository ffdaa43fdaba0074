"""Batch scoring: every (text, task) row of JSON lines or CSV files through a headswitch
SavedModel, in this process or as an Apache Beam pipeline (Dataflow, Flink, Spark).

    from headswitch.score import ScoreOptions, run_in_process
    summary = run_in_process(ScoreOptions("models/headswitch", ("rows.jsonl",), "scored"))

The Beam runner lives in ``headswitch.score.beam`` (needs ``pip install "headswitch[beam]"``).
"""

from ._errors import ScoreError
from ._job import DEFAULT_BATCH_SIZE, RUNNERS, ScoreOptions, Summary
from ._local import run_in_process
from ._model import ModelLocation, Scorer, locate_model
from ._rows import Row, RowError, RowSpec
from ._tasks import TaskTable

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
    "TaskTable",
    "locate_model",
    "run_in_process",
]
