"""REST API conformance (the behaviours in shared/notes/serving-facts.md and TF Serving's
``http_rest_api_handler.cc`` / ``json_tensor.cc``), run against every target kind."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
import serving_fixture_model as fm
from serving_targets import MODEL, Target

PREDICT = f"/v1/models/{MODEL}:predict"
OUTPUTS = {"labels", "num_classes", "scores", "top_label", "top_score"}


def _check_row(prediction: dict[str, Any], text: str, task_id: int) -> None:
    want = fm.expected(text, task_id)
    assert set(prediction) == OUTPUTS
    assert prediction["labels"] == want["labels"]
    assert prediction["num_classes"] == 3
    assert prediction["top_label"] == want["top_label"]
    np.testing.assert_allclose(prediction["scores"], want["scores"], rtol=1e-6)
    assert prediction["top_score"] == pytest.approx(float(want["top_score"]), rel=1e-6)


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


def test_predict_columnar_format(target: Target) -> None:
    response = target.post(PREDICT, json={"inputs": {"text": ["abc", "hello"], "task_id": [0, 2]}})
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    assert set(outputs) == OUTPUTS
    assert outputs["num_classes"] == [3, 3]
    assert outputs["labels"] == [fm.LABELS[0], fm.LABELS[2]]
    np.testing.assert_allclose(outputs["scores"][1], fm.expected("hello", 2)["scores"], rtol=1e-6)


def test_signature_name_and_by_name(target: Target) -> None:
    response = target.post(
        PREDICT, json={"signature_name": "by_name", "instances": [{"text": "abcd", "task": "spam"}]}
    )
    assert response.status_code == 200, response.text
    _check_row(response.json()["predictions"][0], "abcd", 1)


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


def test_b64_string_input_in_default_signature(target: Target) -> None:
    response = target.post(
        PREDICT,
        json={"instances": [{"text": {"b64": base64.b64encode(b"abc").decode()}, "task_id": 0}]},
    )
    assert response.status_code == 200, response.text
    _check_row(response.json()["predictions"][0], "abc", 0)


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
    assert ok.status_code == 200
    _check_row(ok.json()["predictions"][0], "abc", 1)


def test_paths(target: Target) -> None:
    assert target.get("/nothing/here").status_code == 404
    response = target.get("/v1/foo")
    assert response.status_code == 400
    assert response.json() == {"error": "Malformed request: GET /v1/foo"}
    response = target.post(f"/v1/models/{MODEL}", json={})
    assert response.status_code == 400
    assert response.json() == {"error": f"Malformed request: POST /v1/models/{MODEL}"}


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
