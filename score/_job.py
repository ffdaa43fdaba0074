"""What a scoring job is, whichever runner runs it: options, the input files, the output paths,
and the summary a person reads at the end."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import _fs
from ._errors import ScoreError
from ._input import FORMATS, detect_format
from ._rows import RowSpec

DEFAULT_BATCH_SIZE = 256
STDIN = "-"
IN_PROCESS = "in-process"
# --runner NAME -> the Beam runner it selects ("direct" is Beam's FnApiRunner, run offline).
RUNNERS = {"direct": "FnApiRunner", "dataflow": "DataflowRunner", "flink": "FlinkRunner",
           "spark": "SparkRunner"}


@dataclass(frozen=True)
class ScoreOptions:
    """A scoring job. ``model`` is MODEL or MODEL/VERSION (local or gs://); ``inputs`` are file
    patterns (``-`` is standard input); ``output`` is the prefix of the output files."""

    model: str
    inputs: tuple[str, ...]
    output: str
    fmt: str | None = None  # jsonl, csv or tsv; None: from each file's name
    spec: RowSpec = RowSpec()
    with_scores: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    overwrite: bool = False

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ScoreError("no input", hint="--input PATTERN, e.g. --input 'data/*.jsonl'")
        if self.batch_size < 1:
            raise ScoreError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.fmt is not None and self.fmt not in FORMATS:
            raise ScoreError(f"unknown format {self.fmt!r}", hint=f"--format {'|'.join(FORMATS)}")
        if not self.output or self.output.endswith(("/", "\\")):
            raise ScoreError(f"--output must be a file prefix, got {self.output!r}",
                             hint="e.g. --output scored/part (writes scored/part.jsonl)")

    def format_of(self, path: str) -> str:
        fmt = self.fmt or detect_format(path)
        if fmt is None:
            raise ScoreError(f"cannot tell the format of {path} from its name",
                             hint=f"--format {'|'.join(FORMATS)}")
        return fmt


def match_inputs(options: ScoreOptions) -> list[str]:
    """Every file the input patterns match, in order, each once; each pattern must match."""
    files: list[str] = []
    for pattern in options.inputs:
        if pattern == STDIN:
            files.append(STDIN)
            continue
        found = _fs.glob(pattern)
        if not found:
            raise ScoreError(f"no file matches --input {pattern}",
                             hint="quote the pattern so the shell does not expand it, and check "
                             "the path")
        files.extend(f for f in found if f not in files)
    for path in files:
        if path != STDIN:
            options.format_of(path)
    if files.count(STDIN) and options.fmt is None:
        raise ScoreError("the format of standard input is unknown",
                         hint=f"--format {'|'.join(FORMATS)}")
    return files


@dataclass
class Summary:
    """What a finished job did. ``rows`` counts input rows (lines or records); each gives one
    output line per task or one error line."""

    runner: str
    model: str
    rows: int = 0
    scored: int = 0
    errors: int = 0
    seconds: float = 0.0  # reading, scoring and writing
    load_seconds: float = 0.0  # loading the model
    # Beam: from the first batch scored to the last, on any worker (the job's rate once started)
    scoring_seconds: float | None = None
    error_kinds: Counter[str] = field(default_factory=Counter)
    outputs: tuple[str, ...] = ()

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        return {"runner": self.runner, "model": self.model, "rows": self.rows,
                "scored": self.scored, "errors": self.errors,
                "error_kinds": dict(self.error_kinds), "seconds": round(self.seconds, 3),
                "load_seconds": round(self.load_seconds, 3),
                "scoring_seconds": (None if self.scoring_seconds is None
                                    else round(self.scoring_seconds, 3)),
                "rows_per_second": round(self.rows_per_second, 1), "outputs": list(self.outputs)}

    def render(self) -> object:
        """A rich Table."""
        from rich.table import Table

        table = Table(title=f"scored with {self.model} ({self.runner})", title_justify="left",
                      show_header=False)
        table.add_column("what")
        table.add_column("value", justify="right", overflow="fold")
        table.add_column("", style="dim")
        table.add_row("rows", f"{self.rows:,}", "")
        table.add_row("scored", f"{self.scored:,}", "")
        kinds = ", ".join(f"{k} {n:,}" for k, n in self.error_kinds.most_common())
        table.add_row("errors", f"{self.errors:,}", kinds)
        table.add_row("time", f"{self.seconds:,.1f} s",
                      f"+ {self.load_seconds:,.1f} s to load the model" if self.load_seconds
                      else "")
        table.add_row("rows/s", f"{self.rows_per_second:,.0f}",
                      "" if not self.scoring_seconds else
                      f"{self.scored / self.scoring_seconds:,.0f} once scoring had started")
        for label, path in zip(("output", "errors output"), self.outputs):
            table.add_row(label, path, "")
        return table


def output_paths(prefix: str) -> tuple[str, str]:
    """The in-process runner's two files: scored rows and error rows."""
    return f"{prefix}.jsonl", f"{prefix}.errors.jsonl"


def check_outputs_free(paths: Sequence[str], overwrite: bool) -> None:
    if overwrite:
        return
    taken = [p for p in paths if _fs.exists(p)]
    if taken:
        raise ScoreError(f"{taken[0]} exists", hint="--overwrite replaces it, or choose another "
                         "--output prefix")
