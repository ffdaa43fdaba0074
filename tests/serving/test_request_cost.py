"""What a request would cost, counted before it is read: the JSON structure scan (nesting and
values, outside strings, a chunk at a time) and the protobuf wire walk (values of repeated
fields), checked against what parsing finds."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from headswitch.serving import Limits, ServingError
from headswitch.serving._json import _scan
from headswitch.serving._json._scan import check_structure, measure
from headswitch.serving._wire import WALK_BYTES, Refused, count_values, request_deserializer

_TRICKY = ['"', "\\", "[", "]", "{", "}", ",", ":", "\\\\", '\\"', "x", "é", "\u2028"]


def _value(rng: random.Random, depth: int) -> Any:
    kind = rng.random()
    if depth > 6 or kind < 0.35:
        return rng.choice([0, -1.5, True, None, "".join(rng.choices(_TRICKY, k=rng.randint(0, 6))),
                           1e300, "plain"])
    if kind < 0.7:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {"".join(rng.choices(_TRICKY, k=rng.randint(0, 4))) + str(i): _value(rng, depth + 1)
            for i in range(rng.randint(0, 4))}


def _expected(value: Any) -> tuple[int, int]:
    """(depth, values below the root) of a parsed document."""
    if isinstance(value, list):
        inner = [_expected(v) for v in value]
        return 1 + max((d for d, _ in inner), default=0), len(value) + sum(n for _, n in inner)
    if isinstance(value, dict):
        inner = [_expected(v) for v in value.values()]
        return 1 + max((d for d, _ in inner), default=0), len(value) + sum(n for _, n in inner)
    return 0, 0


@pytest.mark.parametrize("chunk", [3, 7, 64, 1 << 18])
def test_scan_matches_the_parsed_document(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_scan, "_CHUNK", chunk)
    rng = random.Random(chunk)
    for _ in range(300):
        document = {"instances": [_value(rng, 1) for _ in range(rng.randint(0, 5))]}
        body = json.dumps(document, ensure_ascii=rng.random() < 0.5,
                          separators=rng.choice([(",", ":"), (", ", ": ")])).encode()
        assert measure(body) == _expected(document), body


def test_scan_refuses_deep_and_crowded_bodies() -> None:
    limits = Limits(max_values=100)
    with pytest.raises(ServingError, match="nesting deeper than 67 levels at offset: 67"):
        check_structure(b"[" * 10_000, limits)
    check_structure(b"[" * 67 + b"]" * 67, limits)
    with pytest.raises(ServingError, match="more than this server's limit of 100 values"):
        check_structure(b"[" + b"0," * 100 + b"0]", limits)
    check_structure(b'["' + b"[," * 5000 + b'"]', limits)  # brackets and commas in a string


def _tensor(request: Any, name: str, strings: int) -> None:
    tensor = request.inputs[name]
    tensor.dtype = 7
    tensor.tensor_shape.dim.add().size = strings
    tensor.string_val.extend([b"s" * (i % 200) for i in range(strings)])


def test_wire_count_is_what_the_message_holds() -> None:
    from tensorflow_serving.apis import classification_pb2, predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    _tensor(request, "text", 3000)
    ids = request.inputs["task_id"]
    ids.dtype = 3
    ids.int_val.extend(range(-5, 995))  # packed varints, some of ten bytes
    request.output_filter.extend(["a", "b"])
    raw = request.SerializeToString()
    descriptor = predict_pb2.PredictRequest.DESCRIPTOR
    # string values, int values, the map's two entries, one dim, the output filter
    assert count_values(raw, descriptor, 10**9) == 3000 + 1000 + 2 + 1 + 2
    assert count_values(raw, descriptor, 3500) is None
    examples = classification_pb2.ClassificationRequest()
    for i in range(50):
        feature = examples.input.example_list.examples.add().features.feature
        feature["x"].float_list.value.extend([1.0] * i)
        feature["y"].bytes_list.value.extend([b"b"] * 3)
    assert count_values(examples.SerializeToString(),
                        classification_pb2.ClassificationRequest.DESCRIPTOR, 10**9) == (
        50 + 100 + sum(range(50)) + 50 * 3)  # examples, map entries, floats, bytes


def test_deserializer_refuses_large_crowded_messages_only() -> None:
    from tensorflow_serving.apis import predict_pb2

    parse = request_deserializer(predict_pb2.PredictRequest, Limits(max_values=1000))
    small = predict_pb2.PredictRequest()
    small.inputs["text"].string_val.extend([b""] * 2000)  # too small to be walked: parsed
    assert len(small.SerializeToString()) < WALK_BYTES
    assert parse(small.SerializeToString()) == small
    crowded = predict_pb2.PredictRequest()
    crowded.inputs["text"].string_val.extend([b""] * 60_000)
    refused = parse(crowded.SerializeToString())
    assert isinstance(refused, Refused)
    assert refused.error.message == (
        "Request message holds more than this server's limit of 1000 values per request "
        "(--max-values)")
    roomy = predict_pb2.PredictRequest()
    roomy.inputs["text"].string_val.extend([b"x" * 100] * 900)
    assert parse(roomy.SerializeToString()) == roomy
