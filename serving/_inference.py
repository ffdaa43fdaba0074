"""Classify, Regress and MultiInference on a loaded version, as TF Serving's
``servables/tensorflow/classifier.cc``, ``regressor.cc`` and ``multi_inference.cc`` run them:
the signature is checked by its shape (one input named "inputs"; "classes" and/or "scores", or
one "outputs") and, with ``--enable_signature_method_name_check``, by its method name; the
examples are serialized into one string tensor (``util.cc`` ``InputToSerializedExampleTensor``)
and the outputs are checked and converted."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._errors import invalid_argument, unimplemented
from ._limits import Limits
from ._servable import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    REGRESS_METHOD,
    Servable,
    check_feeds,
)

_INPUTS = "inputs"
_CLASSES = "classes"
_SCORES = "scores"
_OUTPUTS = "outputs"


def _debug_string(signature: Any) -> str:
    """``SignatureDef::DebugString()`` (protobuf text format)."""
    from google.protobuf import text_format

    return str(text_format.MessageToString(signature))


def _signature(servable: Servable, request: Any) -> tuple[str, Any]:
    name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    signature = servable.signature_defs.get(name)
    if signature is None:
        raise invalid_argument(f"No signature was found with the name: {name}")
    return name, signature


@dataclass(frozen=True)
class Options:
    """How a request runs: the session run's timeout (ms) and whether the signature's method
    name is checked (``--enable_signature_method_name_check``)."""

    limits: Limits
    on_runtime: Callable[[float], None] | None = None
    timeout_ms: int | None = None
    method_name_check: bool = False


def _check_method(signature: Any, method: str, what: str, options: Options) -> None:
    if options.method_name_check and signature.method_name != method:
        raise invalid_argument(
            f"Expected {what} signature method_name to be {method}. Was: "
            f"{signature.method_name}"
        )


def _check_classification_signature(signature: Any, options: Options) -> tuple[str, list[str]]:
    """``PreProcessClassification``: (input tensor name, output tensor names)."""
    _check_method(signature, CLASSIFY_METHOD, "classification", options)
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise invalid_argument(
            f"Expected one or two output Tensors, found {len(signature.outputs)}"
        )
    if _INPUTS not in signature.inputs:
        raise invalid_argument(
            f"No classification inputs found in SignatureDef: {_debug_string(signature)}"
        )
    if _CLASSES not in signature.outputs and _SCORES not in signature.outputs:
        raise invalid_argument(
            'Expected classification signature outputs to contain at least one of "classes" '
            f'or "scores". Signature was: {_debug_string(signature)}'
        )
    outputs = [signature.outputs[k].name for k in (_CLASSES, _SCORES) if k in signature.outputs]
    return signature.inputs[_INPUTS].name, outputs


def _check_regression_signature(signature: Any, options: Options) -> tuple[str, list[str]]:
    """``PreProcessRegression``."""
    _check_method(signature, REGRESS_METHOD, "regression", options)
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise invalid_argument("Expected one output Tensor.")
    if _INPUTS not in signature.inputs:
        raise invalid_argument(
            f"No regression inputs found in SignatureDef: {_debug_string(signature)}"
        )
    if _OUTPUTS not in signature.outputs:
        raise invalid_argument(
            f"No regression outputs found in SignatureDef: {_debug_string(signature)}"
        )
    return signature.inputs[_INPUTS].name, [signature.outputs[_OUTPUTS].name]


def _serialized_examples(request_input: Any, limits: Limits) -> Any:
    """``InputToSerializedExampleTensor``: one serialized ``tf.Example`` per example (the
    context's bytes first when there is one)."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        examples = request_input.example_list.examples
        prefix = b""
    elif kind == "example_list_with_context":
        examples = request_input.example_list_with_context.examples
        prefix = request_input.example_list_with_context.context.SerializeToString()
    else:
        examples = []
        prefix = b""
    if len(examples) == 0:
        raise invalid_argument("Input is empty.")
    limits.check_examples(len(examples))
    array = np.empty(len(examples), dtype=object)
    array[:] = [prefix + example.SerializeToString() for example in examples]
    return array


def _shape_debug(array: Any) -> str:
    """``TensorShape::DebugString()``."""
    return "[" + ",".join(str(d) for d in array.shape) + "]"


def _dtype_enum_name(array: Any) -> str:
    from tensorflow.core.framework import types_pb2

    from ._tensors import dtype_enum_of

    return str(types_pb2.DataType.Name(dtype_enum_of(array)))


def _run(
    servable: Servable,
    feeds: list[tuple[str, Any]],
    signature: Any,
    output_names: list[str],
    options: Options,
) -> list[Any]:
    check_feeds(servable, signature, feeds)
    start = time.perf_counter()
    outputs = servable.runner(feeds, output_names, options.timeout_ms)
    if options.on_runtime is not None:
        options.on_runtime((time.perf_counter() - start) * 1e6)
    return outputs


def _classification_result(
    signature: Any, count: int, by_name: dict[str, Any], result: Any
) -> None:
    """``PostProcessClassificationResult``: check the outputs, fill ``result``."""
    classes = _output(by_name, signature, _CLASSES)
    scores = _output(by_name, signature, _SCORES)
    for tensor, what, dtype in ((classes, "classes", "DT_STRING"), (scores, "scores", "DT_FLOAT")):
        if tensor is None:
            continue
        if tensor.ndim != 2:
            raise invalid_argument(
                "Expected Tensor shape: [batch_size num_classes] but got "
                f"{_shape_debug(tensor)}"
            )
        if _dtype_enum_name(tensor) != dtype:
            raise invalid_argument(
                f"Expected {what} Tensor of {dtype}. Got: {_dtype_enum_name(tensor)}"
            )
        if tensor.shape[0] != count:
            raise invalid_argument(
                f"Expected {what} output batch size of {count}. Got: {tensor.shape[0]}"
            )
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid_argument(
            "Tensors class and score should match in dim_size(1). Got "
            f"{classes.shape[1]} vs. {scores.shape[1]}"
        )
    width = int((classes if classes is not None else scores).shape[1])
    for i in range(count):
        item = result.classifications.add()
        for c in range(width):
            entry = item.classes.add()
            if classes is not None:
                label = classes[i, c]
                entry.label = label if isinstance(label, bytes) else str(label).encode()
            if scores is not None:
                entry.score = float(scores[i, c])


def _regression_result(signature: Any, count: int, by_name: dict[str, Any], result: Any) -> None:
    """``PostProcessRegressionResult``."""
    output = by_name[signature.outputs[_OUTPUTS].name]
    if not (output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1)):
        raise invalid_argument(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but "
            f"got {_shape_debug(output)}"
        )
    if count != output.shape[0]:
        raise invalid_argument(
            f"Input batch size did not match output batch size: {count} vs. {output.shape[0]}"
        )
    if _dtype_enum_name(output) != "DT_FLOAT":
        raise invalid_argument(
            f"Expected output Tensor of DT_FLOAT.  Got: {_dtype_enum_name(output)}"
        )
    if output.size != count:
        raise invalid_argument(f"Expected output batch size to be {count}.  Got: {output.size}")
    for value in output.reshape(-1).tolist():
        result.regressions.add().value = value


def classify(servable: Servable, request: Any, options: Options) -> Any:
    """``RunClassify``: a ``ClassificationResponse``."""
    from tensorflow_serving.apis import classification_pb2

    return _single(servable, request, options, classification_pb2.ClassificationResponse(),
                   _check_classification_signature, _classification_result)


def regress(servable: Servable, request: Any, options: Options) -> Any:
    """``RunRegress``: a ``RegressionResponse``."""
    from tensorflow_serving.apis import regression_pb2

    return _single(servable, request, options, regression_pb2.RegressionResponse(),
                   _check_regression_signature, _regression_result)


def _single(
    servable: Servable,
    request: Any,
    options: Options,
    response: Any,
    check: Callable[[Any, Options], tuple[str, list[str]]],
    write: Callable[[Any, int, dict[str, Any], Any], None],
) -> Any:
    """What ``classify`` and ``regress`` share: ``check`` the signature, run it on the
    request's examples, ``write`` the outputs into ``response.result``."""
    _, signature = _signature(servable, request)
    input_name, output_names = check(signature, options)
    _model_spec(response.model_spec, request.model_spec, servable)
    examples = _serialized_examples(request.input, options.limits)
    outputs = _run(servable, [(input_name, examples)], signature, output_names, options)
    write(signature, len(examples), dict(zip(output_names, outputs)), response.result)
    return response


def multi_inference(servable: Servable, request: Any, options: Options) -> Any:
    """``TensorFlowMultiInferenceRunner::Infer``: classify and regress tasks of one model on the
    same examples, in one session run."""
    from tensorflow_serving.apis import inference_pb2

    model_name = ""
    seen: set[str] = set()
    inputs: set[str] = set()
    outputs: set[str] = set()
    tasks: list[tuple[Any, Any]] = []
    for task in request.tasks:
        if not task.model_spec.name:
            raise invalid_argument("Found ModelSpec with an empty model name.")
        if not model_name:
            model_name = task.model_spec.name
        elif model_name != task.model_spec.name:
            raise invalid_argument(
                "All ModelSpecs in a MultiInferenceRequest must access the same model name."
            )
        name = task.model_spec.signature_name or DEFAULT_SIGNATURE
        if name in seen:
            raise invalid_argument(f"Duplicate evaluation of signature: {name}")
        seen.add(name)
        signature = servable.signature_defs.get(name)
        if signature is None:
            raise invalid_argument(f"Requested signature not found in model graph: {name}")
        if task.method_name == CLASSIFY_METHOD:
            input_name, names = _check_classification_signature(signature, options)
        elif task.method_name == REGRESS_METHOD:
            input_name, names = _check_regression_signature(signature, options)
        else:
            raise unimplemented(f"Unsupported signature method_name: {task.method_name}")
        inputs.add(input_name)
        outputs.update(names)
        tasks.append((task, signature))
    output_names = sorted(outputs)
    examples = _serialized_examples(request.input, options.limits)
    feeds = [(name, examples) for name in sorted(inputs)]
    check_signature = tasks[0][1] if tasks else None
    results = _run(servable, feeds, check_signature, output_names, options) if tasks else []
    by_name = dict(zip(output_names, results))
    response = inference_pb2.MultiInferenceResponse()
    for task, signature in tasks:
        result = response.results.add()
        if task.method_name == CLASSIFY_METHOD:
            _classification_result(signature, len(examples), by_name,
                                   result.classification_result)
        else:
            _regression_result(signature, len(examples), by_name, result.regression_result)
        _model_spec(result.model_spec, task.model_spec, servable)
    return response


def _output(by_name: dict[str, Any], signature: Any, key: str) -> Any:
    return by_name.get(signature.outputs[key].name) if key in signature.outputs else None


def _model_spec(spec: Any, requested: Any, servable: Servable) -> None:
    """``MakeModelSpec`` with the requested signature name (empty: the default)."""
    spec.name = requested.name
    spec.signature_name = requested.signature_name or DEFAULT_SIGNATURE
    spec.version.value = servable.version

