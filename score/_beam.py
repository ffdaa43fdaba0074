"""Batch scoring as an Apache Beam pipeline: RunInference with headswitch's own ModelHandler.

    MatchAll -> cut files in parts (16 MiB of whole lines; a big file is read by many workers)
    -> Reshuffle (spread the parts over workers) -> Read rows (batches of at most --batch-size
    rows, tasks mixed; unreadable rows to errors) -> RunInference (headswitch's ModelHandler:
    the model's task table refuses unknown tasks before the model runs; one model call per
    batch) -> Split -> WriteToText x 2

Beam moves parts of files and batches, never single rows: its per-element cost (a few
microseconds per transform, more through a shuffle) would otherwise be paid per row, several
times what the model itself costs per row.

Runs on Beam's in-process FnApiRunner (``direct``: offline, SDK workers as local processes),
Dataflow, Flink or Spark. This module imports Apache Beam; it is imported only when one of these
runners is chosen.
"""

from __future__ import annotations

import io
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.fileio import EmptyMatchTreatment
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import Metrics, MetricsFilter
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from headswitch._placeholders import PLACEHOLDERS, dry_run_note, placeholders_in, replace_hint

from ._errors import ScoreError
from ._input import COMPRESSED, detect_format, open_decompressed, read_chunks, split_lines
from ._job import RUNNERS, ScoreOptions, Summary
from ._jsonl import Columns
from ._model import (
    Scorer,
    cores,
    locate_model,
    op_threads_for,
    prepare,
    scored_lines,
    scored_record,
)
from ._rows import Row
from ._write import json_line

NAMESPACE = "headswitch"
ERRORS = "errors"
SHARDS = "-SSSSS-of-NNNNN"
_COUNTERS = ("rows", "scored", "errors")
_DATAFLOW_PLACES = ("project", "region", "temp_location", "staging_location",
                    "sdk_container_image")
_GCS_PATH = re.compile(r"^gs://[a-z0-9][-_.a-z0-9]{1,61}[a-z0-9](/.*)?$")
PART_BYTES = 16 << 20
_KIND = "errors_"  # counters of errors by kind: errors_unknown_task, ...


def output_patterns(prefix: str) -> tuple[str, str]:
    """Beam's sharded outputs as glob patterns: scored rows and error rows."""
    shards = "-?????-of-?????"
    return f"{prefix}{shards}.jsonl", f"{prefix}.errors{shards}.jsonl"


class PlanReads(beam.DoFn):
    """A matched file -> the parts it is read in, ``(path, start, end, first line)``. Files of
    JSON lines past ``part_bytes`` are cut at line ends, so that several workers read one big
    file; CSV/TSV (a quoted field may hold a newline) and compressed files are one part
    (``end`` -1)."""

    def __init__(self, fmt: str | None, part_bytes: int) -> None:
        self._fmt = fmt
        self._part_bytes = part_bytes

    def process(self, metadata: Any) -> Iterator[tuple[str, int, int, int]]:
        path = metadata.path
        fmt = self._fmt or detect_format(path) or "jsonl"
        if (fmt != "jsonl" or path.lower().endswith(COMPRESSED)
                or metadata.size_in_bytes <= self._part_bytes):
            yield path, 0, -1, 1
            return
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            for start, end, first_line in split_lines(f, self._part_bytes):
                yield path, start, end, first_line


@dataclass(frozen=True)
class RowBatch:
    """Rows read together, scored by one model call: ``rows`` (columns, for JSON lines) and
    each row's JSON line when its output line can be that line with the outputs appended
    (``Chunk.raws``), so a batch is written without a Python step per row."""

    rows: Sequence[Row]
    raws: list[bytes | None]

    def __len__(self) -> int:  # RunInference counts a batch's elements with len()
        return len(self.rows)


class ReadPart(beam.DoFn):
    """A part of a file -> batches of at most ``batch_size`` rows (``RowBatch``) and, tagged
    ``errors``, the rows that cannot be read."""

    def __init__(self, fmt: str | None, spec: Any, batch_size: int) -> None:
        self._fmt = fmt
        self._spec = spec
        self._batch_size = batch_size
        self._rows = Metrics.counter(NAMESPACE, "rows")
        self._errors = Metrics.counter(NAMESPACE, "errors")

    def process(self, part: tuple[str, int, int, int]) -> Iterator[Any]:
        path, start, end, first_line = part
        fmt = self._fmt or detect_format(path) or "jsonl"
        rows = errors = 0
        kinds: dict[str, int] = {}
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
            if end < 0:
                stream = open_decompressed(raw, path)
            else:
                raw.seek(start)
                stream = io.BytesIO(raw.read(end - start))
            for chunk in read_chunks(stream, path, fmt, self._spec, self._batch_size,
                                     first_line=first_line):
                rows += chunk.read
                if chunk.rows:
                    yield RowBatch(chunk.rows, chunk.raws)
                for error in chunk.errors:
                    errors += 1
                    kinds[error.kind] = kinds.get(error.kind, 0) + 1
                    yield beam.pvalue.TaggedOutput(ERRORS, error.to_dict())
        self._rows.inc(rows)
        self._errors.inc(errors)
        for kind, n in kinds.items():
            Metrics.counter(NAMESPACE, f"{_KIND}{kind}").inc(n)


class HeadswitchModelHandler(ModelHandler):
    """Loads a headswitch SavedModel once per worker process and scores batches of rows with
    ``serving_default(text, task_id)``; rows of any task mix in one batch. Each row's task is
    checked against the model's task table first: a row with an unknown task gets an error
    result and never reaches the model, so it cannot fail its batch.

    Elements are rows as tuples ``(fields, text, task, source, line)``, batched by Beam (at most
    ``batch_size``); each result's inference is the output record (a dict) or a ``RowError``.
    """

    def __init__(self, model_path: str, *, batch_size: int = 256,
                 with_scores: bool = False, op_threads: int | None = None) -> None:
        super().__init__(min_batch_size=1, max_batch_size=batch_size)
        self._model_path = model_path
        self._with_scores = with_scores
        self._op_threads = op_threads  # TensorFlow threads per op; None: its default

    def load_model(self) -> Scorer:
        return Scorer(self._model_path, op_threads=self._op_threads)

    def _score(self, batch: Sequence[Any], model: Scorer
               ) -> tuple[list[Row | None], list[Any]]:
        rows = [Row(*element) for element in batch]
        prepared = prepare(rows, model.tasks, why=model.why_unknown)
        predictions = model.predict(prepared.texts, prepared.task_ids)
        records = [scored_record(row, task_id, predictions, i, model.tasks, self._with_scores)
                   for i, (row, task_id) in enumerate(zip(prepared.rows, prepared.task_ids))]
        examples: list[Row | None] = [*prepared.rows, *([None] * len(prepared.errors))]
        return examples, [*records, *prepared.errors]

    def run_inference(self, batch: Sequence[Any], model: Scorer,
                      inference_args: dict[str, Any] | None = None
                      ) -> Iterable[PredictionResult]:
        examples, results = self._score(batch, model)
        return [PredictionResult(example, result) for example, result in zip(examples, results)]

    def get_num_bytes(self, batch: Sequence[Any]) -> int:
        return sum(len(element[1]) for element in batch)

    def get_metrics_namespace(self) -> str:
        return f"{NAMESPACE}_inference"


class ScoredBatch(NamedTuple):
    """What the pipeline's handler returns for one batch: its scored rows as JSON lines
    (``b"\\n"``-joined, one text element for WriteToText) and its errors."""

    lines: bytes
    scored: int
    errors: list[dict[str, Any]]


class BatchHandler(HeadswitchModelHandler):
    """The pipeline's handler: elements are batches already (``RowBatch`` from ReadPart, or
    lists of row tuples; at most ``--batch-size`` rows; RunInference is told so with
    ``with_no_batching``), and each batch's result is one :class:`ScoredBatch`, so that Beam
    moves one element per batch, not per row. Lines are made as the in-process runner makes
    them (``scored_lines``)."""

    def run_inference(self, batch: Any, model: Scorer,
                      inference_args: dict[str, Any] | None = None
                      ) -> Iterable[PredictionResult]:
        if isinstance(batch, RowBatch):
            prepared = prepare(batch.rows, model.tasks, batch.raws, model.why_unknown)
        else:
            prepared = prepare([Row(*element) for element in batch], model.tasks,
                               why=model.why_unknown)
        predictions = model.predict(prepared.texts, prepared.task_ids)
        block, scored, refused = scored_lines(prepared, predictions, model.tasks,
                                              self._with_scores)
        errors = [e.to_dict() for e in (*prepared.errors, *refused)]
        return [PredictionResult(None, ScoredBatch(block[:-1], scored, errors))]

    def get_num_bytes(self, batch: Any) -> int:
        if not isinstance(batch, RowBatch):
            return sum(len(element[1]) for element in batch)
        if type(batch.rows) is Columns:
            return sum(map(len, batch.rows.texts))
        return sum(len(row.text) for row in batch.rows)


class SplitResults(beam.DoFn):
    """A batch's scored lines to the main output; its errors, tagged ``errors``, one by one."""

    def __init__(self) -> None:
        self._scored = Metrics.counter(NAMESPACE, "scored")
        self._errors = Metrics.counter(NAMESPACE, "errors")
        # When each batch was scored (ms since the epoch): min and max give the scoring span.
        self._done = Metrics.distribution(NAMESPACE, "batch_done_ms")

    def process(self, result: PredictionResult) -> Iterator[Any]:
        batch: ScoredBatch = result.inference
        self._done.update(int(time.time() * 1000))
        if batch.scored:
            self._scored.inc(batch.scored)
            yield batch.lines
        if batch.errors:
            self._errors.inc(len(batch.errors))
            for error in batch.errors:
                Metrics.counter(NAMESPACE, f"{_KIND}{error['error']}").inc()
                yield beam.pvalue.TaggedOutput(ERRORS, error)


def build(pipeline: beam.Pipeline, options: ScoreOptions, model_path: str,
          op_threads: int | None = None) -> None:
    """Add the scoring steps to ``pipeline``; each worker's model gets ``op_threads``
    TensorFlow threads per op (None: TensorFlow's default, all of the worker's cores)."""
    patterns = pipeline | "Input patterns" >> beam.Create(list(options.inputs))
    read = (patterns
            | "Match input files" >> fileio.MatchAll(EmptyMatchTreatment.DISALLOW)
            | "Cut files in parts" >> beam.ParDo(PlanReads(options.fmt, PART_BYTES))
            | "Spread parts over workers" >> beam.Reshuffle()
            | "Read rows" >> beam.ParDo(ReadPart(options.fmt, options.spec, options.batch_size))
            .with_outputs(ERRORS, main="batches"))
    handler = BatchHandler(model_path, batch_size=options.batch_size,
                           with_scores=options.with_scores,
                           op_threads=op_threads).with_no_batching()
    results = (read.batches
               | "Score" >> RunInference(handler)
               | "Split results" >> beam.ParDo(SplitResults()).with_outputs(ERRORS, main="scored"))
    _ = (results.scored
         | "Write scored rows" >> beam.io.WriteToText(
             options.output, file_name_suffix=".jsonl", shard_name_template=SHARDS,
             coder=beam.coders.BytesCoder()))
    _ = ((read[ERRORS], results[ERRORS])
         | "All errors" >> beam.Flatten()
         | "Errors as JSON" >> beam.Map(json_line)
         | "Write error rows" >> beam.io.WriteToText(
             f"{options.output}.errors", file_name_suffix=".jsonl", shard_name_template=SHARDS,
             coder=beam.coders.BytesCoder()))


def _known_beam_flags(flags: Sequence[str]) -> list[str]:
    """The flags Beam does not know (every PipelineOptions class's arguments are checked)."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False)
    seen: dict[str, Any] = {}
    for cls in PipelineOptions.__subclasses__():
        seen.setdefault(str(cls), cls)
    for cls in seen.values():
        cls._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(list(flags))
    return [u for u in unknown if u.startswith("-")]


@dataclass
class BeamPlan:
    """A Beam job, ready to run or to describe."""

    runner: str
    options: ScoreOptions
    model: str  # the version folder, or a description when it is resolved at launch
    model_pinned: bool
    pipeline_options: PipelineOptions
    notes: list[str] = field(default_factory=list)
    # Local workers share this machine's cores: each model gets its share as threads per op.
    # Remote workers (one SDK process per vCPU on Dataflow) keep TensorFlow's default.
    op_threads: int | None = None

    def flags(self) -> dict[str, Any]:
        return dict(self.pipeline_options.get_all_options(drop_default=True))


def plan(options: ScoreOptions, runner: str, beam_args: Sequence[str], *,
         dry_run: bool = False) -> BeamPlan:
    """Check the job and pin the model version (not in a dry run of a remote model: nothing
    remote is contacted then)."""
    if runner not in RUNNERS:
        raise ScoreError(f"unknown runner {runner!r}", hint=f"--runner {'|'.join(RUNNERS)}")
    unknown = _known_beam_flags(beam_args)
    if unknown:
        raise ScoreError(f"unrecognised option(s): {' '.join(unknown)} (neither headswitch "
                         "score nor Apache Beam knows them)",
                         hint="`headswitch score --help` lists headswitch's options; Beam's are "
                         "in its PipelineOptions documentation")
    flags = list(beam_args)
    given = PipelineOptions(flags).get_all_options(drop_default=True)
    overrides: dict[str, Any] = {}
    notes: list[str] = []
    op_threads = None
    if runner == "direct":  # every core, as local processes, unless the flags say otherwise
        named = {f.split("=", 1)[0] for f in flags}
        if "--direct_num_workers" not in named:
            overrides["direct_num_workers"] = cores()
        op_threads = op_threads_for(int(given.get("direct_num_workers") or cores()))
        if "--direct_running_mode" not in named:
            overrides["direct_running_mode"] = "multi_processing"
    else:
        overrides["runner"] = RUNNERS[runner]
    if runner == "dataflow":
        notes += _check_dataflow(options, given, dry_run=dry_run)
    elif "-" in options.inputs:
        raise ScoreError("standard input cannot feed a Beam pipeline",
                         hint="write the rows to a file and give it to --input")
    remote_model = "://" in options.model
    if dry_run and remote_model:
        model = f"{options.model.rstrip('/')}/<newest numbered version, pinned at launch>"
        pinned = False
        if _looks_versioned(options.model):
            model, pinned = options.model.rstrip("/"), True
    else:
        location = locate_model(options.model)
        model, pinned = location.path, True
    if not dry_run and not options.overwrite:
        from . import _fs

        taken = [f for pattern in output_patterns(options.output) for f in _fs.glob(pattern)]
        if taken:
            raise ScoreError(f"{taken[0]} exists", hint="--overwrite replaces the outputs, or "
                             "choose another --output prefix")
    if runner == "dataflow":
        notes.append(f"\nthe worker image must run Python {sys.version_info.major}."
                     f"{sys.version_info.minor} and Apache Beam {beam.__version__}, as this "
                     "launcher does (Dockerfile.beam builds it)")
    pipeline_options = PipelineOptions(flags, **overrides)
    return BeamPlan(runner, options, model, pinned, pipeline_options, notes, op_threads)


def _looks_versioned(path: str) -> bool:
    return path.rstrip("/").rsplit("/", 1)[-1].isdigit()


def _check_dataflow(options: ScoreOptions, given: dict[str, Any], *,
                    dry_run: bool = False) -> list[str]:
    """Refuse what Dataflow cannot run. The README's placeholders (PROJECT, REGION,
    gs://BUCKET/...) pass in a dry run, noted; a real run refuses them with what to give."""
    words = placeholders_in(options.model, options.output, *options.inputs,
                            *(str(given.get(k) or "") for k in _DATAFLOW_PLACES))
    if words and not dry_run:
        verb = "is a placeholder" if len(words) == 1 else "are placeholders"
        raise ScoreError(f"{', '.join(words)} {verb} (the README's); --dry-run shows the job "
                         "with them, a real run needs the real values", hint=replace_hint(words))
    local = [p for p in (options.model, options.output, *options.inputs) if "://" not in p]
    if local:
        raise ScoreError(f"{local[0]} is a local path; Dataflow workers read and write "
                         "Cloud Storage only",
                         hint="copy it to gs://BUCKET/... (gcloud storage cp -r) and give the "
                         "gs:// path")
    missing = [f"--{name}" for name in ("project", "region", "temp_location")
               if not given.get(name)]
    if missing:
        raise ScoreError(f"Dataflow needs {', '.join(missing)}",
                         hint="e.g. --project=my-project --region=europe-west4 "
                         "--temp_location=gs://BUCKET/tmp")
    for name in ("temp_location", "staging_location"):
        value = given.get(name)
        if value and not _GCS_PATH.match(value.replace("gs://BUCKET", "gs://bucket", 1)):
            raise ScoreError(f"--{name}={value} is not a Cloud Storage path",
                             hint="gs:// and " + PLACEHOLDERS["BUCKET"] + ", then a folder: "
                             "gs://my-bucket/tmp")
    if not any(given.get(k) for k in ("sdk_container_image", "setup_file", "requirements_file",
                                      "extra_packages")):
        raise ScoreError("Dataflow workers need TensorFlow and headswitch: give "
                         "--sdk_container_image",
                         hint="build Dockerfile.beam and push it (README: Batch scoring "
                         "on Dataflow), then --sdk_container_image REGION-docker.pkg.dev/"
                         "PROJECT/REPO/headswitch-beam:TAG")
    return [dry_run_note(words)] if words else []


def new_pipeline(plan_: BeamPlan) -> beam.Pipeline:
    if plan_.runner == "direct":
        return beam.Pipeline(runner=_offline_runner(plan_.pipeline_options),
                             options=plan_.pipeline_options)
    return beam.Pipeline(options=plan_.pipeline_options)


def _offline_runner(options: PipelineOptions) -> Any:
    """Beam's FnApiRunner, as the DirectRunner builds it for batch pipelines, but chosen
    directly: the DirectRunner would first try the Prism runner, which downloads a binary."""
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    return fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)))


def describe(plan_: BeamPlan) -> str:
    """The job's options and steps, as a dry run prints them. The steps are built on the local
    runner: a Dataflow pipeline object checks its buckets on Cloud Storage as it is made."""
    pipeline = beam.Pipeline(runner=_offline_runner(plan_.pipeline_options),
                             options=plan_.pipeline_options)
    build(pipeline, plan_.options, plan_.model, plan_.op_threads)
    scored, errors = output_patterns(plan_.options.output)
    runner = RUNNERS[plan_.runner] + (" (in-process, offline)" if plan_.runner == "direct" else "")
    lines = [
        f"runner:   {runner}",
        f"model:    {plan_.model}",
        f"input:    {', '.join(plan_.options.inputs)}"
        f" ({plan_.options.fmt or 'format from each file name'})",
        f"outputs:  {scored}",
        f"          {errors}",
        f"batches:  at most {plan_.options.batch_size} rows, tasks mixed",
        "",
        "pipeline options:",
    ]
    for name, value in sorted(plan_.flags().items()):
        lines.append(f"  --{name}={value}")
    lines += ["", "steps:"]
    for depth, label, kind in _steps(pipeline):
        lines.append(f"  {'  ' * depth}{label}  [{kind}]")
    lines += plan_.notes
    return "\n".join(lines)


def _steps(pipeline: beam.Pipeline) -> list[tuple[int, str, str]]:
    out: list[tuple[int, str, str]] = []

    def walk(node: Any, depth: int) -> None:
        for part in node.parts:
            out.append((depth, part.full_label.rsplit("/", 1)[-1], type(part.transform).__name__))
            if depth < 1:
                walk(part, depth + 1)

    walk(pipeline.transforms_stack[0], 0)
    return out


def run(plan_: BeamPlan, *, on_started: Any = None) -> Summary:
    """Run the job to the end and sum up its counters."""
    started = time.perf_counter()
    pipeline = new_pipeline(plan_)
    build(pipeline, plan_.options, plan_.model, plan_.op_threads)
    result = pipeline.run()
    if on_started is not None:
        on_started(result)
    result.wait_until_finish()
    state = str(result.state)
    if "DONE" not in state:
        raise ScoreError(f"the Beam job ended in state {state}",
                         hint="the runner's log (Dataflow: the job page) says why")
    counts: Counter[str] = Counter()
    metrics = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    for counter in metrics["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        counts[counter.key.metric.name] += int(value or 0)
    span = None
    for distribution in metrics["distributions"]:
        value = distribution.committed or distribution.attempted
        if value is not None and value.count > 1:
            span = (value.max - value.min) / 1000
    kinds = Counter({name[len(_KIND):]: n for name, n in counts.items()
                     if name.startswith(_KIND)})
    return Summary(runner=RUNNERS[plan_.runner], model=plan_.model, rows=counts["rows"],
                   scored=counts["scored"], errors=counts["errors"], error_kinds=kinds,
                   seconds=time.perf_counter() - started, scoring_seconds=span,
                   outputs=output_patterns(plan_.options.output))
