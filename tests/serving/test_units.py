"""Pieces checked without a server: JSON layout and number formatting (json_tensor.cc),
configuration files, version folder rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from headswitch.serving import ServingError
from headswitch.serving._config import (
    ModelConfig,
    VersionPolicy,
    load_model_config_file,
    load_monitoring_options,
    parse_batching_parameters,
)
from headswitch.serving._json import fill_inputs, json_tensor_to_array, parse_document
from headswitch.serving._json._writer import (
    COLUMNAR,
    ROW,
    debug_string,
    error_body,
    format_decimal,
    make_response,
)
from headswitch.serving._limits import Limits
from headswitch.serving._manager import aspired_versions, parse_version


@pytest.mark.parametrize(
    ("value", "single", "text"),
    [
        (0.1, True, "0.1"),
        (3.0, True, "3.0"),
        (1e-5, True, "1e-05"),
        (1e6, True, "1e+06"),
        (123456.0, True, "123456.0"),
        (1234567.0, True, "1234567.0"),
        (1.0000001, True, "1.00000012"),
        (0.1, False, "0.1"),
        (1 / 3, False, "0.33333333333333331"),
        (float("nan"), True, "NaN"),
        (float("-inf"), True, "-Infinity"),
    ],
)
def test_float_formatting(value: float, single: bool, text: str) -> None:
    if single:
        value = float(np.float32(value))
    assert format_decimal(value, single) == text


def test_row_and_columnar_layout() -> None:
    """The exact bytes rapidjson's PrettyWriter produces in TF Serving."""
    one = {"y": np.array([3.5, 4.0, 5.5], np.float32)}
    assert make_response(one, ROW) == b'{\n    "predictions": [3.5, 4.0, 5.5\n    ]\n}'
    assert make_response(one, COLUMNAR) == (
        b'{\n    "outputs": [\n        3.5,\n        4.0,\n        5.5\n    ]\n}'
    )
    two = {"a": np.array([[1, 2]], np.int32), "b": np.array([b"x\n"], object)}
    assert make_response(two, ROW) == (
        b'{\n    "predictions": [\n        {\n            "a": [1, 2],\n'
        b'            "b": "x\\n"\n        }\n    ]\n}'
    )
    with pytest.raises(ServingError) as info:
        make_response({"a": np.array([1, 2]), "b": np.array([1])}, ROW)
    assert info.value.message == "Tensor name: b has inconsistent batch size: 1 expecting: 2"
    assert error_body("bad") == b'{\n    "error": "bad"\n}'


def _doc(value: object) -> Any:
    return parse_document(json.dumps(value).encode())


def _fill(value: object, dtypes: dict[str, str]) -> tuple[str, dict[str, np.ndarray[Any, Any]]]:
    fmt, tensors = fill_inputs(_doc(value), dtypes)
    return fmt, {k: json_tensor_to_array(k, t, Limits()) for k, t in tensors.items()}


def test_debug_string_is_truncated() -> None:
    long = _doc({"instances": list(range(500))})
    text = debug_string(long)
    assert text.startswith('{\n    "instances": [0, 1, 2')
    assert 256 <= len(text) < 270


def test_fill_inputs_shapes_and_types() -> None:
    fmt, inputs = _fill(
        {"instances": [{"x": [1.0, 2.0], "s": {"b64": "AAE="}}, {"x": [3, 4], "s": "t"}]},
        {"x": "float", "s": "string"},
    )
    assert fmt == ROW
    assert inputs["x"].dtype == np.float32 and inputs["x"].shape == (2, 2)
    assert list(inputs["s"]) == [b"\x00\x01", b"t"]
    with pytest.raises(ServingError) as info:
        _fill({"instances": [{"x": [1.0]}, {"x": [1.0, 2.0]}]}, {"x": "float"})
    assert info.value.message == (
        "Failed to process element: 1 key: x of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting tensor size: 1 but got: 2"
    )
    with pytest.raises(ServingError) as info:
        _fill({"inputs": {"x": [[1], [2, 3]]}}, {"x": "int32"})
    assert (
        info.value.message == "Encountered list at unexpected size: 2 at level: 1 expected size: 1"
    )
    with pytest.raises(ServingError) as info:
        _fill({"inputs": [1]}, {"x": "half"})
    assert info.value.code == grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(ServingError) as info:
        _fill({"inputs": [{"b64": "!!"}]}, {"x": "string"})
    assert info.value.message == "Unable to base64 decode"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"   ", "JSON Parse error: The document is empty. at offset: 3"),
        (b'{"a": 1,}', "JSON Parse error: Missing a name for object member. at offset: 8"),
        (
            b'{"a" 1}',
            "JSON Parse error: Missing a colon after a name of object member. at offset: 5",
        ),
        (
            b'{"a": [1 2]}',
            "JSON Parse error: Missing a comma or ']' after an array element. at offset: 9",
        ),
        (
            b'{"a": 1 "b": 2}',
            "JSON Parse error: Missing a comma or '}' after an object member. at offset: 8",
        ),
        (b'{"a": }', "JSON Parse error: Invalid value. at offset: 6"),
    ],
)
def test_parse_errors(body: bytes, message: str) -> None:
    with pytest.raises(ServingError) as info:
        parse_document(body)
    assert info.value.message == message


def test_trailing_bytes_are_ignored() -> None:
    assert parse_document(b'{"a": 1} trailing') == {"a": 1}


def test_batching_parameters() -> None:
    options = parse_batching_parameters(
        "max_batch_size { value: 64 }\nbatch_timeout_micros { value: 2000 }\n"
        "max_enqueued_batches { value: 3 }\nnum_batch_threads { value: 2 }\n"
        "allowed_batch_sizes: 32\nallowed_batch_sizes: 64\npad_variable_length_inputs: true\n"
    )
    assert (
        options.max_batch_size,
        options.batch_timeout_micros,
        options.max_enqueued_batches,
        options.num_batch_threads,
    ) == (64, 2000, 3, 2)
    assert options.allowed_batch_sizes == (32, 64)
    options.validate()
    with pytest.raises(ServingError):
        parse_batching_parameters("max_batch_size: 3\n")  # must be a wrapper message
    with pytest.raises(ServingError):
        parse_batching_parameters("no_such_field { value: 1 }\n")


def test_monitoring_config(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.config"
    path.write_text('prometheus_config { enable: true, path: "/metrics" }\n')
    options = load_monitoring_options(path, enable=False)
    assert options.enable and options.path == "/metrics"
    path.write_text("prometheus_config { enable: true }\n")
    assert load_monitoring_options(path, enable=False).path == "/monitoring/prometheus/metrics"


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.config"
    path.write_text(text)
    return path


def test_model_config_file(tmp_path: Path) -> None:
    configs = load_model_config_file(
        _config(
            tmp_path,
            (
                'model_config_list { config { name: "a" base_path: "/models/a"\n'
                '  model_platform: "tensorflow"\n'
                "  model_version_policy { latest { num_versions: 2 } }\n"
                '  version_labels { key: "stable" value: 3 } } }\n'
            ),
        )
    )
    assert configs == [ModelConfig("a", "/models/a", VersionPolicy("latest", 2), (("stable", 3),))]
    relative = (
        'model_config_list { config { name: "a" base_path: "models/a" '
        'model_platform: "tensorflow" } }'
    )
    no_platform = 'model_config_list { config { name: "a" base_path: "/a" } }'
    twice = (
        'model_config_list { config { name: "a" base_path: "/a" model_platform: "tensorflow" }'
        ' config { name: "a" base_path: "/b" model_platform: "tensorflow" } }'
    )
    errors = {
        relative: "Expected model a to have an absolute path or URI; got base_path()=models/a",
        no_platform: (
            "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
            "ModelServerConfig::model_platform, model name is a"
        ),
        twice: "Illegal to list model a multiple times in config list",
    }
    for text, message in errors.items():
        with pytest.raises(ServingError) as info:
            load_model_config_file(_config(tmp_path, text))
        assert info.value.message == message


def test_version_folders(tmp_path: Path) -> None:
    assert [parse_version(n) for n in ["1", "007", " 3", "1.5", "temp-2", "v2", ""]] == [
        1,
        7,
        3,
        None,
        None,
        None,
        None,
    ]
    for name in ["1", "2", "10", "tmp", "3.partial"]:
        (tmp_path / name).mkdir()
    latest = aspired_versions(ModelConfig("m", str(tmp_path)))
    assert list(latest) == [10]
    two = aspired_versions(ModelConfig("m", str(tmp_path), VersionPolicy("latest", 2)))
    assert sorted(two) == [2, 10]
    assert sorted(aspired_versions(ModelConfig("m", str(tmp_path), VersionPolicy("all")))) == [
        1,
        2,
        10,
    ]
    specific = aspired_versions(
        ModelConfig("m", str(tmp_path), VersionPolicy("specific", versions=(1, 5)))
    )
    assert list(specific) == [1]


def test_conformance_cites_source() -> None:
    """Every conformance expectation names the TF Serving source that specifies it."""
    import test_grpc_conformance
    import test_rest_conformance

    for module in (test_rest_conformance, test_grpc_conformance):
        tests = [getattr(module, n) for n in dir(module) if n.startswith("test_")]
        assert tests
        for test in tests:
            citations = getattr(test, "tf_serving_source", ())
            assert citations, f"{module.__name__}.{test.__name__} cites no source"
            assert all(": " in c for c in citations), test.__name__
