"""TF Serving's REST API (and a Vertex AI endpoint in front of it) without I/O: URLs, request
bodies, and answers decoded into the shared types. Standard library only."""

from __future__ import annotations

import email.utils
import json
import time
from array import array
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from headswitch import contract as c

from ._core import Options, Row, metadata_from_json, status_from_json
from ._errors import HeadswitchError, client_error, code_of_http_status
from ._types import ModelMetadata, ModelStatus, TaskInfo, TaskList

_BODY_EXCERPT = 500


class Routes:
    """Where each call goes. TF Serving: ``{base}/v1/models/{name}[/versions/{v}|/labels/{l}]``
    + ``:predict`` / ``/metadata``. Vertex AI: ``...endpoints/{id}:predict`` takes only
    ``{"instances": [...]}`` and reaches the default signature; other signatures go through
    ``:rawPredict``, whose body reaches TF Serving unchanged."""

    def __init__(
        self,
        base_url: str,
        options: Options,
        *,
        vertex_predict_url: str | None = None,
        vertex_raw_predict_url: str | None = None,
    ) -> None:
        self.vertex = vertex_predict_url is not None
        if vertex_predict_url is not None:
            self.predict_url = vertex_predict_url
            self.raw_predict_url = vertex_raw_predict_url or raw_predict_url_of(vertex_predict_url)
            self.model_url = ""
            return
        model_url = f"{base_url.rstrip('/')}/v1/models/{quote(options.model, safe='')}"
        if options.version is not None:
            model_url += f"/versions/{options.version}"
        elif options.version_label is not None:
            model_url += f"/labels/{quote(options.version_label, safe='')}"
        self.model_url = model_url
        self.predict_url = self.raw_predict_url = model_url + ":predict"

    def for_signature(self, signature: str) -> tuple[str, bytes]:
        """The URL to post to and the start of the body (before the instances)."""
        if signature == c.SIGNATURE_IDS:
            return self.predict_url, b'{"instances":['
        url = self.raw_predict_url if self.vertex else self.predict_url
        return url, b'{"signature_name":' + _json(signature) + b',"instances":['

    def status_url(self) -> str:
        self._not_on_vertex("status()")
        return self.model_url

    def metadata_url(self) -> str:
        self._not_on_vertex("metadata()")
        return self.model_url + "/metadata"

    def _not_on_vertex(self, what: str) -> None:
        if self.vertex:
            raise client_error(
                f"{what} is not available through a Vertex AI endpoint: it only forwards "
                "predict requests to the model server",
                code="UNIMPLEMENTED",
            )


def raw_predict_url_of(predict_url: str) -> str:
    if predict_url.endswith(":predict"):
        return predict_url[: -len(":predict")] + ":rawPredict"
    return predict_url


def vertex_predict_url(endpoint: str | tuple[str, str, str]) -> str:
    """``https://{region}-aiplatform.googleapis.com/v1/projects/{p}/locations/{r}/endpoints/{e}
    :predict`` from ``(project, region, endpoint_id)``, a resource name
    ``projects/{p}/locations/{r}/endpoints/{e}``, or a URL (``:predict`` is added if missing)."""
    if isinstance(endpoint, tuple):
        project, region, endpoint_id = endpoint
        return (f"https://{region}-aiplatform.googleapis.com/v1/projects/{project}/locations/"
                f"{region}/endpoints/{endpoint_id}:predict")
    text = endpoint.strip()
    if text.startswith("projects/"):
        parts = text.split("/")
        if len(parts) != 6 or parts[2] != "locations" or parts[4] != "endpoints":
            raise ValueError(f"not an endpoint resource name: {endpoint!r} (expected "
                             "projects/P/locations/R/endpoints/E)")
        return f"https://{parts[3]}-aiplatform.googleapis.com/v1/{text}:predict"
    if not text.startswith(("https://", "http://")):
        raise ValueError(f"not a Vertex AI endpoint: {endpoint!r} (give a URL, a resource name "
                         "or (project, region, endpoint_id))")
    if text.endswith(":rawPredict"):
        return text[: -len(":rawPredict")] + ":predict"
    return text if text.endswith(":predict") else text + ":predict"


# ------------------------------------------------------------------------------------ bodies


def _json(value: str) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


class RestPrepared:
    """``{"instances": [{"text": ..., "task_id": ...}, ...]}``, each instance encoded once so
    that request sizes are exact."""

    def __init__(self, texts: Sequence[str], ids: Sequence[int], head: bytes) -> None:
        items: list[bytes] = []
        for i, (text, task_id) in enumerate(zip(texts, ids)):
            try:
                items.append(b'{"%s":%s,"%s":%d}' % (
                    c.INPUT_TEXT.encode(), _json(text), c.INPUT_TASK_ID.encode(), task_id))
            except UnicodeEncodeError as exc:
                raise client_error(f"text {i} is not valid Unicode: {exc}", index=i) from exc
        self._items = items
        self._head = head
        self.sizes = [len(item) + 1 for item in items]  # + the comma
        self.overhead = len(head) + 2 - 1  # + "]}", - the last item's missing comma

    def encode(self, start: int, stop: int) -> tuple[bytes, int]:
        body = self._head + b",".join(self._items[start:stop]) + b"]}"
        return body, len(body)


def tasks_body(head: bytes) -> bytes:
    return head + b'{"%s":0}]}' % c.INPUT_UNUSED.encode()


def names_body(head: bytes, names: Sequence[str]) -> bytes:
    """A ``by_name`` request of one empty text per task name: the model's per-example
    ``error`` says why a name is not served (removed, and in which version, or unknown)."""
    return head + b",".join(b'{"%s":"","%s":%s}' % (c.INPUT_TEXT.encode(), c.INPUT_TASK.encode(),
                                                     _json(name)) for name in names) + b"]}"


# ------------------------------------------------------------------------------------ answers


def _float32(values: Sequence[float]) -> list[float]:
    """Round to float32 as the model computed them (JSON prints 9 digits): the same floats
    gRPC's ``float_val`` gives."""
    return array("f", values).tolist()


def predict_rows(document: Any, context: Mapping[str, Any]) -> list[Row]:
    predictions = _predictions(document, context)
    rows: list[Row] = []
    try:
        for p in predictions:
            rows.append((
                _float32(p[c.OUTPUT_SCORES]),
                str(p[c.OUTPUT_TOP_LABEL]),
                _float32([p[c.OUTPUT_TOP_SCORE]])[0],
                str(p.get(c.OUTPUT_ERROR, "")),  # exports before per-example errors have none
            ))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _bad_answer(f"a prediction is not headswitch's ({exc!r}); is the signature "
                          f"the one of {c.SIGNATURE_IDS}?", context) from exc
    return rows


def tasks_from_document(document: Any, context: Mapping[str, Any]) -> list[TaskInfo]:
    predictions = _predictions(document, context)
    try:
        first = predictions[0]
        return list(TaskList.from_columns(*(first[name] for name in c.TASKS_OUTPUTS)))
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        raise _bad_answer(f"the tasks answer is not headswitch's ({exc!r})", context) from exc


def status_from_document(model: str, document: Any, context: Mapping[str, Any]) -> ModelStatus:
    if not isinstance(document, dict):
        raise _bad_answer("the status answer is not a JSON object", context)
    return status_from_json(model, document)


def metadata_from_document(
    model: str, document: Any, context: Mapping[str, Any]
) -> ModelMetadata:
    try:
        signature_map = document["metadata"]["signature_def"]
        return metadata_from_json(model, document.get("model_spec") or {}, signature_map)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _bad_answer(f"the metadata answer is not TF Serving's ({exc!r})", context) from exc


def _predictions(document: Any, context: Mapping[str, Any]) -> list[Any]:
    predictions = document.get("predictions") if isinstance(document, dict) else None
    if not isinstance(predictions, list):
        raise _bad_answer("the answer has no 'predictions' list", context)
    return predictions


def _bad_answer(message: str, context: Mapping[str, Any]) -> HeadswitchError:
    return HeadswitchError("INTERNAL", message, http_status=200, transport="rest",
                           details=context, retryable=False)


def decode(status: int, headers: Mapping[str, str], content: bytes,
           context: Mapping[str, Any]) -> Any:
    """The JSON document of a 200 answer; any other answer raises its HeadswitchError."""
    if status != 200:
        raise error_from_answer(status, headers, content, context)
    try:
        return json.loads(content)
    except ValueError as exc:
        raise HeadswitchError(
            "INTERNAL",
            f"HTTP 200 with a body that is not JSON ({headers.get('content-type', '?')}): "
            f"{_excerpt(content)!r}",
            http_status=status,
            transport="rest",
            details={**context, "body": _excerpt(content)},
            retryable=False,
        ) from exc


def error_from_answer(status: int, headers: Mapping[str, str], content: bytes,
                      context: Mapping[str, Any]) -> HeadswitchError:
    """TF Serving's ``{"error": "message"}``, Google's ``{"error": {"code", "message",
    "status"}}``, or any other body (a proxy's HTML page, say)."""
    code = code_of_http_status(status)
    content_type = headers.get("content-type", "")
    details: dict[str, Any] = {**context, "content_type": content_type}
    try:
        document = json.loads(content)
    except ValueError:
        document = None
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, str):
        message = error
    elif isinstance(error, dict) and "message" in error:
        message = str(error["message"])
        if isinstance(error.get("status"), str) and error["status"]:
            code = error["status"]
        details["error"] = error
    else:
        message = (f"HTTP {status} with a body that is not a TF Serving error "
                   f"({content_type or 'no content type'}): {_excerpt(content)!r}")
        details["body"] = _excerpt(content)
        if status in (502, 504):  # a proxy or load balancer, not the model server
            code = "UNAVAILABLE"
    return HeadswitchError(code, message, http_status=status, transport="rest", details=details,
                           retry_after=_retry_after(headers.get("retry-after")))


def _excerpt(content: bytes) -> str:
    text = content[:_BODY_EXCERPT].decode("utf-8", "replace")
    return text + ("..." if len(content) > _BODY_EXCERPT else "")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
