"""headswitch on Apache Beam: the ModelHandler for RunInference, for pipelines of your own.

    from headswitch.score.beam import HeadswitchModelHandler
    results = rows | RunInference(HeadswitchModelHandler("gs://bucket/models/headswitch/3"))

Elements are rows as tuples ``(fields, text, task, source, line)`` (``task`` a name or an id);
each result's ``inference`` is the output record (a dict) or a ``RowError``.
"""

try:
    from ._beam import (
        BatchHandler,
        HeadswitchModelHandler,
        PlanReads,
        ReadPart,
        RowBatch,
        ScoredBatch,
        SplitResults,
        build,
    )
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(f'headswitch.score.beam needs Apache Beam: pip install "headswitch[beam]" '
                      f"({exc})") from exc

__all__ = ["BatchHandler", "HeadswitchModelHandler", "PlanReads", "ReadPart", "RowBatch",
           "ScoredBatch", "SplitResults", "build"]
