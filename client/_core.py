"""What every client shares, with no I/O: options, task resolution, and turning the server's
answers (already decoded by a transport) into typed values."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from headswitch.contract import TASK_REMOVED
from headswitch.tasks import TaskList

from ._chunking import encode_all, plan
from ._errors import HeadswitchError, client_error
from ._retry import RetryPolicy
from ._types import (
    ModelMetadata,
    ModelStatus,
    Prediction,
    SignatureInfo,
    TensorInfo,
    VersionStatus,
)

TaskRef = int | str
TaskArg = int | str | Sequence[TaskRef]

P = TypeVar("P")
P_co = TypeVar("P_co", covariant=True)


@dataclass(frozen=True)
class Options:
    model: str
    version: int | None
    version_label: str | None
    signature: str
    tasks_signature: str
    timeout: float | None
    deadline: float | None
    retry: RetryPolicy
    max_request_bytes: int | None
    max_batch_size: int | None

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model name must not be empty")
        if self.version is not None and self.version_label is not None:
            raise ValueError("give version or version_label, not both")
        if self.version is not None and self.version < 0:
            raise ValueError(f"version must be >= 0, got {self.version}")
        if self.max_request_bytes is not None and self.max_request_bytes <= 0:
            raise ValueError(f"max_request_bytes must be > 0, got {self.max_request_bytes}")
        if self.max_batch_size is not None and self.max_batch_size <= 0:
            raise ValueError(f"max_batch_size must be > 0, got {self.max_batch_size}")


# A predict answer decoded by a transport, one per text: (scores, top_label, top_score, error);
# scores are padded to the widest head, error is "" unless the example's task is bad. Class
# counts and labels come from the task list (the ``tasks`` signature).
Row = tuple[Sequence[float], str, float, str]


class Prepared(Protocol[P_co]):
    """A batch a transport has encoded item by item, ready to be cut into requests."""

    @property
    def sizes(self) -> Sequence[int]:
        """Each item's encoded size, its separator included."""
        ...

    @property
    def overhead(self) -> int:
        """The size of the rest of a request."""
        ...

    def encode(self, start: int, stop: int) -> tuple[P_co, int]:
        """The request for items ``start:stop`` and its exact encoded size."""
        ...


def split(prepared: Prepared[P], options: Options) -> list[tuple[int, int, P]]:
    ranges = plan(prepared.sizes, prepared.overhead, options.max_request_bytes,
                  options.max_batch_size)
    return encode_all(ranges, prepared.encode, options.max_request_bytes)


def user_agent() -> str:
    import headswitch

    return f"headswitch-client/{headswitch.__version__}"


# ------------------------------------------------------------------------------------ input


def as_texts(texts: Iterable[str]) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a sequence of strings, not a single string: "
                        "wrap it in a list")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is a {type(text).__name__}, not a str")
    return out


def _as_ref(value: object, where: str) -> TaskRef:
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"{where} must be a task id (int) or name (str), got {type(value).__name__}")


def as_task_refs(task: TaskArg, count: int) -> list[TaskRef]:
    """One task id or name per text."""
    if type(task) is int or type(task) is str:
        return [task] * count
    if isinstance(task, (str, numbers.Integral)) and not isinstance(task, bool):
        return [_as_ref(task, "task")] * count
    if not isinstance(task, Sequence):
        raise TypeError("task must be an id, a name, or a sequence of them (one per text)")
    refs: list[Any] = list(task)
    for i, ref in enumerate(refs):
        if type(ref) is not int and type(ref) is not str:  # the common cases, fast
            refs[i] = _as_ref(ref, f"task {i}")
    if len(refs) != count:
        raise client_error(
            f"'text' and 'task' must have the same length; got {count} texts and "
            f"{len(refs)} tasks"
        )
    return refs


# ------------------------------------------------------------------------------------ tasks


def resolve_refs(tasks: TaskList, refs: Sequence[TaskRef]
                 ) -> tuple[list[int], list[tuple[int, str]]]:
    """Task ids, and the (index, name) of names the list does not know. Ids are passed
    through as they are: the server checks them (and says which were removed)."""
    by_name = tasks.by_name
    ids: list[int] = []
    unknown: list[tuple[int, str]] = []
    for i, ref in enumerate(refs):
        if isinstance(ref, int):
            ids.append(ref)
        elif ref in by_name:
            ids.append(by_name[ref].id)
        else:
            ids.append(-1)
            unknown.append((i, ref))
    return ids, unknown


def knows_ids(tasks: TaskList, ids: Iterable[int]) -> bool:
    by_id = tasks.by_id
    return all(i in by_id for i in ids)


def unknown_names_error(tasks: TaskList, unknown: list[tuple[int, str]],
                        removed: Mapping[str, str] | None = None) -> HeadswitchError:
    """The error for names the list does not have; ``removed``: the model's message for
    names of removed tasks (see ``removal_messages``)."""
    index, name = unknown[0]
    more = f" (and {len(unknown) - 1} more unknown)" if len(unknown) > 1 else ""
    if removed and name in removed:
        return client_error(f"{removed[name]} (text {index}, task {name!r}){more}",
                            index=index, task=name, reason=removed[name])
    return client_error(f"unknown task name {name!r} for text {index}{more}; the model has "
                        f"{tasks.describe()}", index=index, task=name,
                        reason=tasks.unknown(name))


def removal_messages(names: Sequence[str], rows: Sequence[Row]) -> dict[str, str]:
    """The model's errors for task names (a ``by_name`` answer, one row per name) that say the
    task was removed; unknown names are left to the client's own message."""
    return {name: row[3] for name, row in zip(names, rows) if f" {TASK_REMOVED} " in row[3]}


def build_predictions(
    texts: Sequence[str], ids: Sequence[int], rows: Sequence[Row], tasks: TaskList
) -> list[Prediction]:
    predictions = []
    for index, (text, task_id, (scores, top_label, top_score, _)) in enumerate(
            zip(texts, ids, rows)):
        task = tasks.by_id[task_id]
        predictions.append(Prediction(index, text, task_id, task.name, top_label, top_score,
                                      dict(zip(task.labels, scores))))
    return predictions


def example_errors(rows: Sequence[Row], refs: Sequence[TaskRef], transport: str,
                   offset: int = 0) -> HeadswitchError | None:
    """The model's per-example errors (a bad task id or name) as one INVALID_ARGUMENT error
    naming the first bad text (``details["reason"]``: the model's message for it), or None.
    The model reports them per example so that one bad example never fails the others merged
    into the same run by the server's batcher."""
    bad = [i for i, row in enumerate(rows) if row[3]]
    if not bad:
        return None
    first = bad[0]
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    ref = refs[offset + first]
    return HeadswitchError(
        "INVALID_ARGUMENT",
        f"text {offset + first}, task {ref!r}: {rows[first][3]}{more}",
        transport="rest" if transport == "rest" else "grpc",
        details={"index": offset + first, "task": ref, "bad_examples": len(bad),
                 "reason": rows[first][3]},
        retryable=False,
    )


def check_rows(rows: Sequence[Row], expected: int, transport: str) -> None:
    if len(rows) != expected:
        raise HeadswitchError(
            "INTERNAL",
            f"the server answered {len(rows)} predictions for {expected} texts",
            transport="rest" if transport == "rest" else "grpc",
            retryable=False,
        )


# ------------------------------------------------------------------------------------ status


def status_from_json(model: str, document: Mapping[str, Any]) -> ModelStatus:
    """``GetModelStatusResponse`` as TF Serving's REST API (or ``MessageToDict``) writes it."""
    versions = []
    for entry in document.get("model_version_status", []):
        status = entry.get("status") or {}
        versions.append(
            VersionStatus(
                version=int(entry.get("version", 0)),
                state=str(entry.get("state", "UNKNOWN")),
                error_code=str(status.get("error_code", "OK")),
                error_message=str(status.get("error_message", "")),
            )
        )
    return ModelStatus(model, tuple(versions))


def _tensor_info(entry: Mapping[str, Any]) -> TensorInfo:
    shape_doc = entry.get("tensor_shape") or {}
    if shape_doc.get("unknown_rank"):
        shape = None
    else:
        shape = tuple(int(d.get("size", -1)) for d in shape_doc.get("dim", []))
    return TensorInfo(str(entry.get("dtype", "DT_INVALID")), shape)


def metadata_from_json(
    model: str, spec: Mapping[str, Any], signature_map: Mapping[str, Any]
) -> ModelMetadata:
    """``spec``: the answer's ``model_spec``; ``signature_map``: a ``SignatureDefMap`` as JSON
    (``{"signature_def": {name: {"inputs": ..., "outputs": ..., "method_name": ...}}}``).
    Internal signatures (``__saved_model_init_op``) are left out."""
    signatures = {
        name: SignatureInfo(
            inputs={k: _tensor_info(v) for k, v in (sig.get("inputs") or {}).items()},
            outputs={k: _tensor_info(v) for k, v in (sig.get("outputs") or {}).items()},
            method_name=str(sig.get("method_name", "")),
        )
        for name, sig in sorted((signature_map.get("signature_def") or {}).items())
        if not name.startswith("__")
    }
    version = spec.get("version")
    if isinstance(version, Mapping):  # MessageToDict of a wrapper
        version = version.get("value")
    return ModelMetadata(str(spec.get("name") or model), int(version or 0), signatures)
