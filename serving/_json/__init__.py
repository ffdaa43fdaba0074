"""TF Serving's REST JSON: request bodies read as its rapidjson reads them (``_reader``), turned
into tensors or examples as ``util/json_tensor.cc`` does (``_request``), and responses written as
it writes them (``_writer``)."""

from ._reader import JsonObject, JsonSyntaxError
from ._request import (
    JsonTensor,
    examples_from_document,
    fill_inputs,
    json_tensor_to_array,
    parse_document,
    read_signature_name,
)
from ._writer import (
    COLUMNAR,
    ROW,
    error_body,
    make_classification_response,
    make_regression_response,
    make_response,
)

__all__ = [
    "COLUMNAR",
    "ROW",
    "JsonObject",
    "JsonSyntaxError",
    "JsonTensor",
    "error_body",
    "examples_from_document",
    "fill_inputs",
    "json_tensor_to_array",
    "make_classification_response",
    "make_regression_response",
    "make_response",
    "parse_document",
    "read_signature_name",
]
