"""REST API conformance, run against every target kind (the embedded server, and the real
``tensorflow/serving`` image where a Docker engine is reachable). Each test cites, with
``@source``, the TF Serving 2.19.1 source (or the pinned rapidjson 1.1.0 / libevent 2.1.12) that
decides what it expects; the files are under ``tensorflow_serving/``."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
import serving_fixture_model as fm
from serving_targets import MODEL, Target, source

PREDICT = f"/v1/models/{MODEL}:predict"
OUTPUTS = {"labels", "num_classes", "scores", "top_label", "top_score"}


def _check_row(prediction: dict[str, Any], text: str | bytes, task_id: int) -> None:
    want = fm.expected(text, task_id)
    assert set(prediction) == OUTPUTS
    assert prediction["labels"] == want["labels"]
    assert prediction["num_classes"] == 3
    assert prediction["top_label"] == want["top_label"]
    np.testing.assert_allclose(prediction["scores"], want["scores"], rtol=1e-6)
    assert prediction["top_score"] == pytest.approx(float(want["top_score"]), rel=1e-6)


def _check_first_row(response: Any, text: str | bytes, task_id: int) -> None:
    """``response`` is a 200 whose first prediction is ``text``'s for task ``task_id``."""
    assert response.status_code == 200, response.text
    _check_row(response.json()["predictions"][0], text, task_id)


@source(
    "model_servers/get_model_status_impl.cc: one ModelVersionStatus per version (state, "
    "status from the servable's health)",
    "model_servers/http_rest_api_util.cc: ToJsonString prints the response with "
    "add_whitespace and always_print_primitive_fields",
)
def test_status(target: Target) -> None:
    want = {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    response = target.get(f"/v1/models/{MODEL}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == want
    assert target.get(f"/v1/models/{MODEL}/versions/1").json() == want


@source(
    "model_servers/get_model_status_impl.cc: NOT_FOUND 'Could not find version V of model M' / "
    "'Could not find any versions of model M'",
    "model_servers/http_rest_api_handler.cc: ProcessModelStatusRequest refuses an empty name "
    "('Missing model name in request.')",
    "model_servers/http_server.cc: ToHTTPStatusCode maps NOT_FOUND to 404, INVALID_ARGUMENT to 400",
)
def test_status_errors(target: Target) -> None:
    response = target.get(f"/v1/models/{MODEL}/versions/9")
    assert response.status_code == 404
    assert response.json() == {"error": f"Could not find version 9 of model {MODEL}"}
    response = target.get("/v1/models/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "Could not find any versions of model nope"}
    response = target.get("/v1/models")
    assert response.status_code == 400
    assert response.json() == {"error": "Missing model name in request."}


@source(
    "model_servers/http_rest_api_util.cc: ToJsonString(GetModelMetadataResponse) prints "
    "model_spec and the SignatureDefMap with preserved field names",
    "servables/tensorflow/get_model_metadata_impl.cc: the servable handle is required "
    "(NOT_FOUND 'Servable not found for request: Specific(M, V)')",
)
def test_metadata(target: Target) -> None:
    response = target.get(f"/v1/models/{MODEL}/metadata")
    assert response.status_code == 200
    body = response.json()
    assert body["model_spec"] == {"name": MODEL, "signature_name": "", "version": "1"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "by_name", "tasks", "echo"} <= set(signatures)
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"]["text"]["dtype"] == "DT_STRING"
    assert default["inputs"]["task_id"]["dtype"] == "DT_INT32"
    assert default["inputs"]["task_id"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
    assert set(default["outputs"]) == OUTPUTS
    assert default["outputs"]["scores"]["tensor_shape"]["dim"][1]["size"] == "3"
    assert (
        target.get(f"/v1/models/{MODEL}/versions/1/metadata").json()["model_spec"]["version"] == "1"
    )
    missing = target.get(f"/v1/models/{MODEL}/versions/5/metadata")
    assert missing.status_code == 404
    assert missing.json() == {"error": f"Servable not found for request: Specific({MODEL}, 5)"}


@source(
    "util/json_tensor.cc: FillTensorMapFromInstancesList batches one object per instance; "
    "MakeRowFormatJsonFromTensors writes one object per row, arrays on one line",
    "util/json_tensor.cc: WriteDecimal prints a float with 6 significant digits when that reads "
    "back exactly",
)
def test_predict_row_format(target: Target) -> None:
    texts, tasks = ["abc", "hello", "a somewhat longer text"], [0, 1, 2]
    response = target.post(
        PREDICT, json={"instances": [{"text": t, "task_id": k} for t, k in zip(texts, tasks)]}
    )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 3
    for prediction, text, task in zip(predictions, texts, tasks):
        _check_row(prediction, text, task)
    # Floats are printed as TF Serving prints them: shortest form that reads back as float32.
    assert '"scores": [0.1, 0.2, 0.3]' in response.text


@source(
    "util/json_tensor.cc: FillTensorMapFromInputsMap (columnar 'inputs'); "
    "MakeColumnarFormatJsonFromTensors answers {'outputs': {...}}",
)
def test_predict_columnar_format(target: Target) -> None:
    response = target.post(PREDICT, json={"inputs": {"text": ["abc", "hello"], "task_id": [0, 2]}})
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    assert set(outputs) == OUTPUTS
    assert outputs["num_classes"] == [3, 3]
    assert outputs["labels"] == [fm.LABELS[0], fm.LABELS[2]]
    np.testing.assert_allclose(outputs["scores"][1], fm.expected("hello", 2)["scores"], rtol=1e-6)


@source("util/json_tensor.cc: FillSignature reads the optional 'signature_name'")
def test_signature_name_and_by_name(target: Target) -> None:
    response = target.post(
        PREDICT, json={"signature_name": "by_name", "instances": [{"text": "abcd", "task": "spam"}]}
    )
    _check_first_row(response, "abcd", 1)


@source(
    "util/json_tensor.cc: a single input may be a plain list; {'b64': ...} objects are decoded "
    "(JsonDecodeBase64Object); outputs named *_bytes are written as {'b64': ...}",
)
def test_single_input_plain_list_and_b64(target: Target) -> None:
    """One input: instances may be plain values; one output: predictions are plain values;
    ``*_bytes`` outputs come back as {"b64": ...}."""
    data = [b"\x00\x01\xfe", b"plain"]
    response = target.post(
        PREDICT,
        json={
            "signature_name": "echo",
            "instances": [{"b64": base64.b64encode(d).decode()} for d in data],
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [{"b64": base64.b64encode(d).decode()} for d in data]}
    columnar = target.post(
        PREDICT,
        json={"signature_name": "echo", "inputs": [{"b64": base64.b64encode(data[0]).decode()}]},
    )
    assert columnar.json() == {"outputs": [{"b64": base64.b64encode(data[0]).decode()}]}


@source("util/json_tensor.cc: IsNamedTensorBytes: a DT_STRING output whose name ends in _bytes")
def test_bytes_outputs_are_b64(target: Target) -> None:
    response = target.post(PREDICT, json={"signature_name": "tasks", "instances": [0, 0]})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 2
    assert predictions[0]["name"] == fm.TASK_NAMES
    assert predictions[0]["id"] == [0, 1, 2]
    assert predictions[0]["name_bytes"] == [
        {"b64": base64.b64encode(n.encode()).decode()} for n in fm.TASK_NAMES
    ]


@source("util/json_tensor.cc: FillTensorProto decodes a b64 object for a DT_STRING input")
def test_b64_string_input_in_default_signature(target: Target) -> None:
    response = target.post(
        PREDICT,
        json={"instances": [{"text": {"b64": base64.b64encode(b"abc").decode()}, "task_id": 0}]},
    )
    _check_first_row(response, "abc", 0)


@source(
    "util/json_tensor.cc: FillPredictRequestFromJson, FillTensorMapFromInstancesList, "
    "FillTensorMapFromInputsMap, AddValueToTensor and FormatError messages",
    "model_servers/http_rest_api_handler.cc: GetInfoMap ('Serving signature name: \"S\" not found "
    "in signature def')",
)
@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"instances": [{"text": "a", "task_id": 0}], "inputs": {"text": ["a"], "task_id": [0]}},
            400,
            (
                'JSON Value: {\n    "instances": [{\n            "text": "a",\n'
                '            "task_id": 0\n        }],\n    "inputs": {\n        "text": ["a"],\n'
                '        "task_id": [0]\n    }\n} Not formatted correctly expecting only one of '
                "'inputs' or 'instances' keys to exist "
            ),
        ),
        ({"signature_name": "serving_default"}, 400, "Missing 'inputs' or 'instances' key"),
        (
            {"instances": [{"text": "a"}]},
            400,
            (
                "Failed to process element: 0 of 'instances' list. JSON object: "
                '{\n    "text": "a"\n} keys must be equal to: task_id,text'
            ),
        ),
        (
            {"instances": [{"text": "a", "task_id": "zero"}]},
            400,
            (
                "Failed to process element: 0 key: task_id of 'instances' list. Error: "
                'INVALID_ARGUMENT: JSON Value: "zero" Type: String is not of expected type: int32'
            ),
        ),
        (
            {"instances": [{"text": "a", "task_id": 0, "extra": 1}]},
            400,
            (
                "Failed to process element: 0 key: extra of 'instances' list. Error: "
                "INVALID_ARGUMENT: JSON object: does not have named input: extra"
            ),
        ),
        (
            {"inputs": {"text": ["a"]}},
            400,
            "Missing named input: task_id in 'inputs' object.",
        ),
        (
            {"inputs": {"text": ["a"], "task_id": [1.5]}},
            400,
            "JSON Value: 1.5 Type: Number is not of expected type: int32",
        ),
        (
            {"instances": ["a", "b"]},
            400,
            (
                "instances is a plain list, but expecting list of objects as multiple input "
                "tensors required as per tensorinfo_map"
            ),
        ),
        (
            {"instances": []},
            400,
            "JSON Value: {\n    \"instances\": []\n} No values in 'instances' array",
        ),
        (
            {"signature_name": "nope", "instances": [1]},
            400,
            'Serving signature name: "nope" not found in signature def',
        ),
        (
            {"signature_name": 3, "instances": [1]},
            400,
            (
                'JSON Value: {\n    "signature_name": 3,\n    "instances": [1]\n} not formatted '
                "correctly. 'signature_name' key must be a string value."
            ),
        ),
    ],
)
def test_request_errors(target: Target, body: dict[str, Any], status: int, message: str
                        ) -> None:
    response = target.post(PREDICT, content=json.dumps(body))
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"error": message}


@source(
    "util/json_tensor.cc: ParseJson ('The document is empty' for an empty body; rapidjson's "
    "message and offset; the root must be an object)",
    "rapidjson 1.1.0 include/rapidjson/error/en.h: GetParseError_En messages",
)
def test_malformed_json(target: Target) -> None:
    response = target.post(PREDICT, content=b"{")
    assert response.status_code == 400
    assert response.json() == {
        "error": "JSON Parse error: Missing a name for object member. at offset: 1"
    }
    empty = target.post(PREDICT, content=b"")
    assert empty.status_code == 400
    assert empty.json() == {"error": "JSON Parse error: The document is empty"}
    not_object = target.post(PREDICT, content=b"[1]")
    assert not_object.json() == {"error": "JSON Value: [1] Is not object"}


@source(
    "core/basic_manager.cc: NOT_FOUND 'Servable not found for request: Latest(M)' / "
    "'Specific(M, V)' when no such version is loaded",
    "model_servers/server_core.cc: INVALID_ARGUMENT 'Unrecognized servable version label: L'",
)
def test_model_errors(target: Target) -> None:
    response = target.post("/v1/models/nope:predict", json={"instances": [1]})
    assert response.status_code == 404
    assert response.json() == {"error": "Servable not found for request: Latest(nope)"}
    response = target.post(f"/v1/models/{MODEL}/versions/7:predict", json={"instances": [1]})
    assert response.status_code == 404
    assert response.json() == {"error": f"Servable not found for request: Specific({MODEL}, 7)"}
    response = target.post(f"/v1/models/{MODEL}/labels/canary:predict", json={"instances": [1]})
    assert response.status_code == 400
    assert response.json() == {"error": "Unrecognized servable version label: canary"}


@source(
    "servables/tensorflow/predict_util.cc: RunPredict returns the session's own error (here the "
    "model's Assert, INVALID_ARGUMENT)",
)
def test_model_op_errors_and_server_keeps_serving(target: Target) -> None:
    bad_task = target.post(PREDICT, json={"inputs": {"text": ["abc"], "task_id": [7]}})
    assert bad_task.status_code == 400
    error = bad_task.json()["error"]
    assert error.startswith("assertion failed: [task_id must be in the valid range 0..2; got] [7]")
    mismatch = target.post(PREDICT, json={"inputs": {"text": ["a", "b"], "task_id": [0]}})
    assert mismatch.status_code == 400
    assert "text and task_id must have the same length; got] [2] [1]" in mismatch.json()["error"]
    unknown = target.post(
        PREDICT, json={"signature_name": "by_name", "instances": [{"text": "a", "task": "weather"}]}
    )
    assert unknown.status_code == 400
    assert "unknown task name" in unknown.json()["error"] and "[weather]" in unknown.json()["error"]
    ok = target.post(PREDICT, json={"instances": [{"text": "abc", "task_id": 1}]})
    _check_first_row(ok, "abc", 1)


@source(
    "model_servers/http_server.cc: the dispatcher takes '(?i)/v1/.*'; other paths get libevent's "
    "404 page",
    "model_servers/http_rest_api_handler.cc: ProcessRequest answers 'Malformed request: METHOD "
    "PATH' when the API regexes do not match",
)
def test_paths(target: Target) -> None:
    assert target.get("/nothing/here").status_code == 404
    response = target.get("/v1/foo")
    assert response.status_code == 400
    assert response.json() == {"error": "Malformed request: GET /v1/foo"}
    response = target.post(f"/v1/models/{MODEL}", json={})
    assert response.status_code == 400
    assert response.json() == {"error": f"Malformed request: POST /v1/models/{MODEL}"}


@source(
    "util/prometheus_exporter.cc and servables/tensorflow/util.cc: request_count by model and "
    "status, request_latency by model, API and entrypoint",
)
def test_metrics(target: Target) -> None:
    assert (
        target.post(PREDICT, json={"instances": [{"text": "x", "task_id": 0}]}).status_code == 200
    )
    target.post("/v1/models/nope:predict", json={"instances": [1]})
    text = target.metrics()
    assert f':tensorflow:serving:request_count{{model_name="{MODEL}",status="OK"}}' in text
    assert ':tensorflow:serving:request_count{model_name="nope",status="NOT_FOUND"}' in text
    assert "# TYPE :tensorflow:serving:request_latency histogram" in text
    assert (
        f':tensorflow:serving:request_latency_bucket{{model_name="{MODEL}",API="predict",'
        'entrypoint="REST",le="10"}' in text
    )


# ------------------------------------------------------------------------------------------
# The request target is the path with its query string


@source(
    "util/net_http/server/internal/evhttp_request.cc: uri_path() is the path, then '?' and the "
    "query when there is one",
    "model_servers/http_rest_api_util.cc: ParseModelInfo full-matches kPredictionApiGegex / "
    "kModelStatusApiRegex against uri_path(); a model name is '[^/:]+', so it takes the query",
    "model_servers/http_rest_api_handler.cc: no match leaves 'Malformed request: METHOD URI'",
    "model_servers/http_server.cc: ProcessPrometheusRequest answers 400 text/plain 'Unexpected "
    "path: URI. Should be PATH' when uri_path() is not exactly the metrics path",
)
def test_query_strings(target: Target) -> None:
    body = {"instances": [{"text": "abc", "task_id": 0}]}
    response = target.post(PREDICT + "?x=1", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": f"Malformed request: POST {PREDICT}?x=1"}
    response = target.get(f"/v1/models/{MODEL}?x=1")
    assert response.status_code == 404
    assert response.json() == {"error": f"Could not find any versions of model {MODEL}?x=1"}
    for path in (f"/v1/models/{MODEL}/metadata?x=1", f"/v1/models/{MODEL}/versions/1?v=2"):
        response = target.get(path)
        assert response.status_code == 400
        assert response.json() == {"error": f"Malformed request: GET {path}"}
    metrics = "/monitoring/prometheus/metrics"
    response = target.get(metrics + "?x=1")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == f"Unexpected path: {metrics}?x=1. Should be {metrics}"


# ------------------------------------------------------------------------------------------
# Strings as rapidjson 1.1.0 reads them (ParseJson: kParseIterativeFlag | kParseNanAndInfFlag
# | kParseStopWhenDoneFlag, no kParseValidateEncodingFlag)


def _predict_raw(target: Target, text: bytes, task_id: bytes = b"0") -> Any:
    return target.post(
        PREDICT, content=b'{"instances": [{"text": "' + text + b'", "task_id": ' + task_id + b"}]}"
    )


_TEXT_OFFSET = len(b'{"instances": [{"text": "')


@source(
    "rapidjson 1.1.0 include/rapidjson/reader.h: ParseStringToStream: a \\u escape of a high "
    "surrogate must be followed by a low one ('The surrogate pair in string is invalid.' at the "
    "escape); a lone low surrogate is encoded as three bytes; a raw byte below 0x20 is 'Invalid "
    "escape character in string.'; bytes from 0x80 are copied without validation",
    "rapidjson 1.1.0 include/rapidjson/memorystream.h: a NUL byte reads as the end of input",
    "rapidjson 1.1.0 include/rapidjson/encodedstream.h: the UTF-8 MemoryStream stream skips "
    "leading 0xEF 0xBB 0xBF",
    "util/json_tensor.cc: ParseJson reports 'JSON Parse error: MESSAGE at offset: N'",
)
def test_strings_as_rapidjson_reads_them(target: Target) -> None:
    surrogate = _predict_raw(target, b"ab\\ud800cd")
    assert surrogate.status_code == 400
    assert surrogate.json() == {
        "error": "JSON Parse error: The surrogate pair in string is invalid. at offset: "
        f"{_TEXT_OFFSET + 2}"
    }
    for escaped, raw in [
        (b"\\ud83d\\ude00", "\U0001f600".encode()),  # a pair: one 4-byte character
        (b"\\udc00", b"\xed\xb0\x80"),  # a lone low surrogate: kept, 3 bytes
        (b"a\xffb", b"a\xffb"),  # not UTF-8: kept as it is
        (b"\xc3", b"\xc3"),  # a truncated sequence: kept too
    ]:
        response = _predict_raw(target, escaped)
        assert response.status_code == 200, (escaped, response.text)
        # The fixture's scores depend on the text's length in bytes.
        _check_row(response.json()["predictions"][0], raw, 0)
    control = _predict_raw(target, b"ab\x01")
    assert control.status_code == 400
    assert control.json() == {
        "error": "JSON Parse error: Invalid escape character in string. at offset: "
        f"{_TEXT_OFFSET + 2}"
    }
    nul = _predict_raw(target, b"ab\x00cd")
    assert nul.status_code == 400
    assert nul.json() == {
        "error": "JSON Parse error: Missing a closing quotation mark in string. at offset: "
        f"{_TEXT_OFFSET + 2}"
    }
    body = json.dumps({"instances": [{"text": "abc", "task_id": 1}]}).encode()
    bom = target.post(PREDICT, content=b"\xef\xbb\xbf" + body)
    _check_first_row(bom, "abc", 1)


@source(
    "rapidjson 1.1.0 include/rapidjson/reader.h: ParseNumber with kParseNanAndInfFlag reads NaN, "
    "Inf and Infinity; 'Miss fraction part in number.' / 'Number too big to be stored in double.'",
    "rapidjson 1.1.0 include/rapidjson/writer.h: WriteDouble refuses NaN and infinities, which "
    "ends the debug string JsonValueToDebugString writes (util/json_tensor.cc)",
    "util/json_tensor.cc: AddValueToTensor: an int32 input needs IsInt()",
)
def test_numbers_as_rapidjson_reads_them(target: Target) -> None:
    for literal in (b"NaN", b"Infinity", b"-Inf"):
        response = _predict_raw(target, b"abc", literal)
        assert response.status_code == 400
        assert response.json() == {
            "error": "Failed to process element: 0 key: task_id of 'instances' list. Error: "
            "INVALID_ARGUMENT: JSON Value:  Type: Number is not of expected type: int32"
        }
    number_at = _TEXT_OFFSET + len(b'abc", "task_id": ')
    response = _predict_raw(target, b"abc", b"1.")
    assert response.json() == {
        "error": f"JSON Parse error: Miss fraction part in number. at offset: {number_at + 2}"
    }
    response = _predict_raw(target, b"abc", b"1e400")
    assert response.json() == {
        "error": "JSON Parse error: Number too big to be stored in double. at offset: "
        f"{number_at}"
    }
    response = _predict_raw(target, b"abc", b"3000000000")
    assert response.json() == {
        "error": "Failed to process element: 0 key: task_id of 'instances' list. Error: "
        "INVALID_ARGUMENT: JSON Value: 3000000000 Type: Number is not of expected type: int32"
    }


@source(
    "rapidjson 1.1.0 include/rapidjson/document.h: an object keeps every member, duplicates "
    "included; FindMember returns the first",
    "util/json_tensor.cc: FillTensorMapFromInstancesList adds every member of an instance to its "
    "tensor and sets the shape from the number of instances",
    "TensorFlow 2.19 core/framework/tensor.cc: Tensor::FromProto keeps the first n values when "
    "there are more",
)
def test_duplicate_member_names(target: Target) -> None:
    response = target.post(
        PREDICT, content=b'{"instances": [{"text": "abc", "text": "zzzz", "task_id": 2}]}'
    )
    _check_first_row(response, "abc", 2)
    # The duplicate's value takes the next instance's place.
    response = target.post(
        PREDICT,
        content=b'{"instances": [{"text": "a", "text": "bb", "task_id": 0}, '
        b'{"text": "cccc", "task_id": 1}]}',
    )
    assert response.status_code == 200, response.text
    first, second = response.json()["predictions"]
    _check_row(first, "a", 0)
    _check_row(second, "bb", 1)
    response = target.post(
        PREDICT,
        content=b'{"signature_name": "by_name", "signature_name": "nope", '
        b'"inputs": {"text": ["abcd"], "text": ["x"], "task": ["spam"]}}',
    )
    assert response.status_code == 200, response.text
    _check_row({k: v[0] for k, v in response.json()["outputs"].items()}, "abcd", 1)


@source(
    "util/json_tensor.cc: GetDenseTensorShape / FillTensorProto give a deeply nested list one "
    "dimension per level (the parser is iterative: no depth limit)",
    "TensorFlow 2.19 core/framework/tensor_shape.cc: a shape with more than 254 dimensions is "
    "invalid, so Tensor::FromProto fails",
    "TensorFlow 2.19 cc/saved_model/util.cc: GetInputValues answers 'tensor parsing error: ALIAS'",
    "the embedded server refuses JSON nested deeper than 67 levels before reading it (a "
    "difference: README, Differences from TF Serving)",
)
def test_deep_nesting(target: Target) -> None:
    depth = 300
    item = b"[" * depth + b'{"b64": "YQ=="}' + b"]" * depth
    response = target.post(
        PREDICT, content=b'{"signature_name": "echo", "instances": [' + item + b"]}"
    )
    assert response.status_code == 400
    if target.kind == "embedded":
        offset = len(b'{"signature_name": "echo", "instances": [') + 67 - 2
        assert response.json() == {"error": (
            f"JSON Parse error: nesting deeper than 67 levels at offset: {offset}; no request "
            "needs more (tensors of rank 64, the most this server accepts, nest 67 levels)")}
    else:
        assert response.json() == {"error": "tensor parsing error: data_bytes"}


# ------------------------------------------------------------------------------------------
# Classify and regress on a predict-only model


@source(
    "model_servers/http_rest_api_handler.cc: ProcessClassifyRequest / ProcessRegressRequest "
    "read the JSON first (FillClassificationRequestFromJson), then look the model up",
    "util/json_tensor.cc: FillClassifyRegressRequestFromJson ('When method is classify, key "
    "'examples' is expected and was not found' for both methods; ''examples' value is an empty "
    "array'); AddValueToFeature",
    "servables/tensorflow/classifier.cc: with the method name check off (its default), "
    "PreProcessClassification checks the signature's shape: 'Expected one input Tensor.', "
    "'Expected one or two output Tensors, found N', 'No classification inputs found in "
    "SignatureDef: ...'",
    "servables/tensorflow/regressor.cc: PreProcessRegression: 'Expected one input Tensor.', "
    "'Expected one output Tensor.'",
)
def test_classify_and_regress(target: Target) -> None:
    def post(action: str, body: bytes, model: str = MODEL) -> Any:
        return target.post(f"/v1/models/{model}:{action}", content=body)

    examples = b'{"examples": [{"text": "abc", "n": [1, 2]}]}'
    for action in ("classify", "regress"):
        response = post(action, examples)
        assert response.status_code == 400
        assert response.json() == {"error": "Expected one input Tensor."}
        response = post(action, b"{}")
        assert response.json() == {
            "error": "JSON Value: {} When method is classify, key 'examples' is expected and was "
            "not found"
        }
        response = post(action, b'{"examples": []}')
        assert response.json() == {
            "error": 'JSON Value: {\n    "examples": []\n} \'examples\' value is an empty array'
        }
        response = post(action, b'{"examples": [{"a": null}]}')
        assert response.json() == {
            "error": "Feature: a has element with unexpected JSON type: Null"
        }
        response = post(action, b'{"examples": [{"a": [1, "x"]}]}')
        assert response.json() == {
            "error": "Unexpected element type in feature: a expecting type: int64"
        }
        missing = post(action, examples, model="nope")
        assert missing.status_code == 404
        assert missing.json() == {"error": "Servable not found for request: Latest(nope)"}
    tasks = b'{"signature_name": "tasks", "examples": [{"a": 1}]}'
    assert post("classify", tasks).json() == {
        "error": "Expected one or two output Tensors, found 3"
    }
    assert post("regress", tasks).json() == {"error": "Expected one output Tensor."}
    echo = post("classify", b'{"signature_name": "echo", "examples": [{"a": 1}]}').json()
    assert echo["error"].startswith("No classification inputs found in SignatureDef: inputs {")
    assert 'key: "data_bytes"' in echo["error"]
    nope = post("regress", b'{"signature_name": "nope", "examples": [{"a": 1}]}')
    assert nope.json() == {"error": "No signature was found with the name: nope"}
    upper = post("CLASSIFY", examples)
    assert upper.json() == {"error": f"Malformed request: POST /v1/models/{MODEL}:CLASSIFY"}


# ------------------------------------------------------------------------------------------
# HTTP around the API


@source(
    "model_servers/http_server.cc: RestApiRequestDispatcher answers OPTIONS itself: OK when the "
    "Origin header matches 'https?://', else FAILED_PRECONDITION (400); no handler runs, so no "
    "body and no Content-Type of its own",
    "libevent 2.1.12 http.c: evhttp_make_header_response adds the default Content-Type "
    "'text/html; charset=ISO-8859-1'",
    "util/net_http/server/internal/evhttp_server.cc: TRACE and CONNECT are not allowed methods; "
    "libevent http.c answers them 501 with its error page",
)
def test_options_and_methods(target: Target) -> None:
    import httpx

    url = target.rest_url + PREDICT
    response = httpx.request("OPTIONS", url, timeout=30)
    assert (response.status_code, response.content) == (400, b"")
    assert response.headers["content-type"] == "text/html; charset=ISO-8859-1"
    response = httpx.request("OPTIONS", url, headers={"Origin": "https://example.com"}, timeout=30)
    assert (response.status_code, response.content) == (200, b"")
    response = httpx.request("OPTIONS", url, headers={"Origin": "example.com"}, timeout=30)
    assert (response.status_code, response.content) == (400, b"")
    for method in ("PUT", "DELETE", "PATCH"):
        response = httpx.request(method, url, timeout=30)
        assert response.status_code == 400
        assert response.json() == {"error": f"Malformed request: {method} {PREDICT}"}
    response = httpx.request("TRACE", url, timeout=30)
    assert response.status_code == 501
    assert b"<H1>Not Implemented</H1>" in response.content


@source(
    "util/net_http/server/internal/evhttp_request.cc: ParsedEvRequest::decode parses the target "
    "with libevent's strict evhttp_uri_parse; evhttp_server.cc answers a failure with "
    "evhttp_send_error(400)",
    "libevent 2.1.12 http.c: end_of_path allows unreserved characters, sub-delims, ':', '@', "
    "'/' and %XX escapes in the path, '?' too in the query and fragment; a path may not start "
    "with '//'",
)
def test_uri_characters(target: Target) -> None:
    import httpx

    for path in ("/v1/models/a|b", "/v1/models/%zz", "//v1/models/m"):
        response = httpx.get(target.rest_url + path, timeout=30)
        assert response.status_code == 400, path
        assert b"<TITLE>400 Bad Request</TITLE>" in response.content, path
    response = httpx.get(target.rest_url + "/v1/models/%6D", timeout=30)  # %6D is "m"
    assert response.status_code == 200
