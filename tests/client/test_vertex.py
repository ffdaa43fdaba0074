"""A Vertex AI endpoint as a REST target. Google cannot be reached from here, so the requests
Vertex would forward to TF Serving's predict route go to the embedded server's route directly;
URL building and Google's own answer shapes are checked without a network."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import httpx
import pytest
from client_support import TEXTS, run

from headswitch import contract
from headswitch.client import AsyncRestClient, HeadswitchError, RestClient


def test_vertex_requests_work_against_tf_serving(server: Any) -> None:
    route = f"{server.rest_url}/v1/models/headswitch:predict"
    sent: list[tuple[str, dict[str, Any], str | None]] = []

    def record(request: httpx.Request) -> None:
        sent.append((str(request.url), json.loads(request.content),
                     request.headers.get("authorization")))

    tokens = iter(["t1", "t2", "t3"])
    with httpx.Client(event_hooks={"request": [record]}) as http, RestClient.for_vertex(
            route, raw_predict_url=route, token=lambda: next(tokens), http_client=http) as client:
        predictions = client.predict(TEXTS, ["topic", 1, "spam", 3, 4, 5, 6, 0])
        with pytest.raises(HeadswitchError) as info:
            client.status()
    assert predictions == run("rest", server, lambda c: c.predict(
        TEXTS, ["topic", 1, "spam", 3, 4, 5, 6, 0]))
    (tasks_url, tasks_body, auth1), (predict_url, predict_body, auth2) = sent
    assert tasks_body == {"signature_name": contract.SIGNATURE_TASKS,
                          "instances": [{contract.INPUT_UNUSED: 0}]}
    assert set(predict_body) == {"instances"}  # the default signature: nothing but instances
    assert predict_body["instances"][0] == {contract.INPUT_TEXT: TEXTS[0],
                                            contract.INPUT_TASK_ID: 0}
    assert tasks_url == predict_url == route
    assert (auth1, auth2) == ("Bearer t1", "Bearer t2")  # a token getter is asked each time
    assert info.value.code == "UNIMPLEMENTED"


def test_vertex_urls() -> None:
    expected = ("https://europe-west4-aiplatform.googleapis.com/v1/projects/p1/locations/"
                "europe-west4/endpoints/123:predict")
    endpoints: list[str | tuple[str, str, str]] = [
        ("p1", "europe-west4", "123"),
                     "projects/p1/locations/europe-west4/endpoints/123",
                     expected, expected[: -len(":predict")],
        expected.replace(":predict", ":rawPredict")]
    for endpoint in endpoints:
        with RestClient.for_vertex(endpoint, token="t") as client:
            assert client.url == expected, endpoint
            assert client._setup.routes.raw_predict_url == expected.replace(
                ":predict", ":rawPredict")
    with pytest.raises(ValueError, match="endpoint"):
        RestClient.for_vertex("projects/p1/endpoints/123", token="t")


def test_google_answer_shapes(server: Any) -> None:
    """Vertex adds fields next to ``predictions`` and answers errors in Google's format."""
    with RestClient(server.rest_url) as plain:
        document = json.loads(plain._http.post(
            f"{server.rest_url}/v1/models/headswitch:predict",
            json={"instances": [{"text": TEXTS[0], "task_id": 0}]}).content)
        tasks = plain.tasks()
    seen: list[str] = []

    def vertex(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if b'"task_id":6' in request.content:
            return httpx.Response(403, json={"error": {
                "code": 403, "status": "PERMISSION_DENIED",
                "message": "Permission 'aiplatform.endpoints.predict' denied"}})
        return httpx.Response(200, json={**document, "deployedModelId": "42",
                                         "model": "projects/1/locations/r/models/9",
                                         "modelDisplayName": "headswitch"})

    with RestClient.for_vertex(("p", "us-central1", "7"), token="t", tasks=tasks,
                               http_client=httpx.Client(transport=httpx.MockTransport(vertex))
                               ) as client:
        (p,) = client.predict(TEXTS[:1], "topic")
        with pytest.raises(HeadswitchError) as info:
            client.predict(TEXTS[:1], 6)
    assert p.top_label == document["predictions"][0][contract.OUTPUT_TOP_LABEL]
    assert seen[0] == "/v1/projects/p/locations/us-central1/endpoints/7:predict"
    assert (info.value.code, info.value.http_status) == ("PERMISSION_DENIED", 403)
    assert "aiplatform.endpoints.predict" in info.value.message


@pytest.mark.skipif(importlib.util.find_spec("google.auth") is not None,
                    reason="google-auth is installed")
def test_vertex_without_token_or_google_auth() -> None:
    with pytest.raises(ImportError, match="google-auth"):
        RestClient.for_vertex(("p", "r", "e"))
    with pytest.raises(ImportError, match="google-auth"):
        AsyncRestClient.for_vertex(("p", "r", "e"))
