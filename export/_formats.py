"""Reading every accepted model format into normalized task models.

A normalized task model is a functional Keras model (Keras 3 or tf_keras) with one string
input of shape [batch] or [batch, 1] and one output, plus a way to compute what the original
model answers for that output. Accepted:

- Keras 3 ``.keras`` (and Keras 3 ``.h5``), functional or Sequential, KerasHub text classifiers
  with their preprocessor attached (the preprocessor becomes the first layer, so the model
  takes raw strings);
- Keras 2 / tf_keras ``.h5``, ``.keras`` and SavedModel folders written by ``model.save(dir)``
  (needs the ``keras2`` extra), hub.KerasLayer backbones included;
- one model with N outputs gives N task models.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _hf, _rewire, _text_ops
from ._errors import ExportError
from ._keras import INSTALL_KERAS2, KERAS3, TF_KERAS, KerasModel, Kit, import_tf_keras
from ._sources import ModelSource

UNSAFE_FLAG = "--unsafe-deserialization"
UNSAFE_HINT = (f"if you trust these files, pass {UNSAFE_FLAG}: it lets Keras run the Python "
               "code stored in Lambda layers and load the SavedModels TFSMLayers point to")
INSTALL_KERAS_HUB = 'pip install "headswitch[kerashub]"  (keras-hub and tensorflow-text)'


@dataclasses.dataclass
class TaskModel:
    """One output of a model file, as a functional model with one string input and one
    output."""

    model: KerasModel
    output: str | None  # the output's name when the file has several


@dataclasses.dataclass
class LoadedModel:
    """A model file read and normalized."""

    format: str  # e.g. "tf_keras SavedModel folder"
    kit: Kit
    tasks: list[TaskModel]
    notes: list[str]  # what headswitch did to read it ("Sequential made functional", ...)
    original: Callable[[list[str]], list[npt.NDArray[Any]]]  # the file's own outputs, float32

    @property
    def outputs(self) -> list[str]:
        return [t.output or "" for t in self.tasks]


# ---------------------------------------------------------------- which Keras wrote the file


def _keras_version_of_zip(path: Path) -> tuple[str, str]:
    """(keras_version, config.json text) of a .keras file."""
    try:
        with zipfile.ZipFile(path) as archive:
            metadata = json.loads(archive.read("metadata.json"))
            config = archive.read("config.json").decode()
    except Exception as e:
        raise ExportError(f"cannot load {path} as a Keras model: {type(e).__name__}: {e}",
                          hint="the file may be corrupt or not a .keras file") from e
    return str(metadata.get("keras_version", "3")), config


def _h5_attributes(path: Path) -> tuple[str, str]:
    """(keras_version, model_config JSON) of an .h5 file."""
    try:
        import h5py

        with h5py.File(path, "r") as f:
            version = f.attrs.get("keras_version", "")
            config = f.attrs.get("model_config", "")
    except Exception as e:
        raise ExportError(f"cannot load {path} as a Keras model: {type(e).__name__}: {e}",
                          hint="the file may be corrupt or not an HDF5 file") from e
    if not config:
        raise ExportError(f"{path} holds weights only, no model",
                          hint="save the whole model (model.save), not model.save_weights")
    return _text(version), _text(config)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _has_lambda_code(text: str) -> bool:
    return '"function_type": "lambda"' in text or '"function_type":"lambda"' in text


# ---------------------------------------------------------------- loading


def _explain(path: Path, error: Exception, api: str) -> ExportError:
    # issue 21: ops that are not registered (TF Text's) are named, with the package to install.
    missing = _text_ops.missing_ops_error(path, error)
    if missing is not None:
        return missing
    text = str(error)
    if "safe_mode" in text or "unsafe_deserialization" in text:
        return ExportError(f"{path}: Keras refuses to load it in safe mode: "
                           f"{text.splitlines()[0][:300]}", hint=UNSAFE_HINT)
    if "KerasLayer" in text:
        return ExportError(f"{path}: the model uses hub.KerasLayer, which tensorflow_hub "
                           "provides", hint=INSTALL_KERAS2)
    if "keras_hub" in text or "keras_nlp" in text:
        return ExportError(f"{path}: the model uses KerasHub classes", hint=INSTALL_KERAS_HUB)
    if "Could not locate" in text or "Unknown layer" in text or "Unknown " in text:
        first = text.splitlines()[0][:300]
        return ExportError(f"cannot load {path}: {first}",
                           hint="the model uses a class this Python cannot find: import or "
                           "install the package that defines it; a tf_keras model saved as a "
                           "SavedModel folder (model.save('dir')) loads without its classes")
    return ExportError(f"cannot load {path} as a {api} model: {type(error).__name__}: "
                       f"{text.splitlines()[0][:300] if text else ''}",
                       hint="the file may be corrupt or saved by an incompatible Keras")


def _load_keras3(path: Path, config: str, unsafe: bool) -> Any:
    import keras

    if "keras_hub" in config or "keras_nlp" in config:
        try:
            import keras_hub  # noqa: F401  (registers its classes)
        except ImportError as e:
            raise ExportError(f"{path} is a KerasHub model and keras-hub is not installed",
                              hint=INSTALL_KERAS_HUB) from e
    try:
        return keras.models.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as e:
        raise _explain(path, e, "Keras 3") from e


def _hub_objects(config: str) -> dict[str, Any]:
    if "KerasLayer" not in config:
        return {}
    try:
        import tensorflow_hub as hub
    except ImportError as e:
        raise ExportError("the model uses hub.KerasLayer and tensorflow_hub is not installed",
                          hint=INSTALL_KERAS2) from e
    return {"KerasLayer": hub.KerasLayer}


def _load_tf_keras(path: Path, config: str, unsafe: bool) -> Any:
    tf_keras = import_tf_keras()
    if not unsafe and _has_lambda_code(config):
        raise ExportError(f"{path} holds a Lambda layer with Python code, which would run when "
                          "the model is loaded", hint=UNSAFE_HINT)
    try:
        if path.is_dir():
            # Revived from the folder itself: hub modules and custom layers load from what was
            # saved, without their Python classes or the network.
            return tf_keras.models.load_model(path, compile=False)
        return tf_keras.models.load_model(path, compile=False, safe_mode=not unsafe,
                                          custom_objects=_hub_objects(config))
    except ExportError:
        raise
    except Exception as e:
        raise _explain(path, e, "tf_keras") from e


def _read(path: Path, unsafe: bool) -> tuple[Any, Kit, str]:
    if path.is_dir():
        metadata = path / "keras_metadata.pb"
        if not metadata.is_file():
            raise ExportError(
                f"{path} is a SavedModel without Keras metadata (written by tf.saved_model.save "
                "or Keras 3 model.export): its layers cannot be split into backbone and heads",
                hint="export the Keras models themselves (model.save); a SavedModel can be the "
                "backbone of Keras 3 models through keras.layers.TFSMLayer")
        config = metadata.read_bytes().decode("utf-8", errors="replace")
        return _load_tf_keras(path, config, unsafe), TF_KERAS, "tf_keras SavedModel folder"
    if path.suffix.lower() == ".keras":
        version, config = _keras_version_of_zip(path)
        if version.startswith("2."):
            return _load_tf_keras(path, config, unsafe), TF_KERAS, "tf_keras .keras"
        return _load_keras3(path, config, unsafe), KERAS3, "Keras 3 .keras"
    version, config = _h5_attributes(path)
    if version.startswith("2."):
        return _load_tf_keras(path, config, unsafe), TF_KERAS, "tf_keras .h5"
    _check_h5_vocabularies(path, config)
    return _load_keras3(path, config, unsafe), KERAS3, "Keras 3 .h5"


_LOOKUPS = ("TextVectorization", "StringLookup", "IntegerLookup")


def _lookups_without_vocabulary(node: Any) -> list[str]:
    """Names of the lookup layers in a model config (nested models too) whose vocabulary is
    not in their configuration (it came from ``adapt()`` or ``set_vocabulary()``)."""
    found: list[str] = []
    if isinstance(node, dict):
        inner = node.get("config")
        if node.get("class_name") in _LOOKUPS and isinstance(inner, dict) \
                and inner.get("vocabulary") is None:
            found.append(f"layer {inner.get('name', '?')!r} ({node['class_name']})")
        for value in node.values():
            found += _lookups_without_vocabulary(value)
    elif isinstance(node, list):
        for value in node:
            found += _lookups_without_vocabulary(value)
    return found


def _check_h5_vocabularies(path: Path, config: str) -> None:
    """A Keras 3 ``.h5`` keeps layer configurations and weights, not the lookup tables of
    preprocessing layers: a vocabulary set by ``adapt()`` is lost (the loaded model fails
    with "Table not initialized")."""
    try:
        lost = _lookups_without_vocabulary(json.loads(config))
    except ValueError:
        return
    if lost:
        raise ExportError(
            f"{path}: a Keras 3 .h5 file does not keep the vocabulary of {', '.join(lost)}, "
            "set by adapt() or set_vocabulary(): loaded from it, the layer has no vocabulary "
            "and the model fails (\"Table not initialized\")",
            hint="save the model as .keras (model.save(\"t.keras\")), which keeps the "
            "vocabulary, and export that file")


# ---------------------------------------------------------------- normalizing


def _sequential_to_functional(model: Any, kit: Kit, path: Path) -> Any:
    """The same layers called on a new string input: a functional model."""
    shape: tuple[Any, ...] | None = None
    try:
        inputs = model.inputs
        if inputs:
            shape = tuple(inputs[0].shape)
            dtype = str(getattr(inputs[0].dtype, "name", inputs[0].dtype))
            if dtype != "string":
                _refuse_input(path, f"the model input is {dtype}, not string")
    except (AttributeError, ValueError):
        pass
    if shape is None:
        built = getattr(model, "_build_input_shape", None) or (
            getattr(model, "_build_shapes_dict", None) or {}).get("input_shape")
        shape = tuple(built) if built is not None else (None,)
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    if not layers:
        _refuse_input(path, "the Sequential model has no layers")
    text = kit.text_input(tuple(shape[1:]))
    x = text
    try:
        for layer in layers:
            x = layer(x)
    except Exception as e:
        raise ExportError(f"{path}: cannot call the Sequential model's layers on a string "
                          f"input of shape {tuple(shape)}: {type(e).__name__}: {e}") from e
    return kit.model(text, x, name=model.name)


def _refuse_input(path: Path, why: str) -> None:
    raise ExportError(f"{path}: {why}; a text model takes one string input",
                      hint="put the text preprocessing (e.g. TextVectorization) inside the "
                      "model so it takes raw text")


def _with_preprocessor(model: Any) -> Any:
    """A KerasHub task model with its preprocessor as the first layer: raw strings in."""
    import keras
    import tensorflow as tf

    if not isinstance(model._inputs_struct, dict):
        raise ExportError(f"KerasHub model {model.name!r} takes {len(model.inputs)} inputs that "
                          "are not named: cannot attach its preprocessor")
    specs: dict[str, Any] = dict(model._inputs_struct)

    class Preprocessor(keras.layers.Layer):
        def __init__(self, preprocessor: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.preprocessor = preprocessor

        def call(self, text: Any) -> Any:
            out = self.preprocessor(text)
            return {k: tf.cast(out[k], specs[k].dtype) for k in specs}

        def compute_output_spec(self, text: Any) -> Any:
            return {k: keras.KerasTensor((None, *v.shape[1:]), dtype=v.dtype, name=k)
                    for k, v in specs.items()}

    text = keras.Input(shape=(), dtype="string", name="text")
    features = Preprocessor(model.preprocessor, name="preprocessor")(text)
    # The task model's own layers called on them: its graph, inlined, so its layers are split
    # points as in any functional model.
    output = model._run_through_graph(features, operation_fn=lambda op: op)
    return keras.Model(text, output, name=model.name)


def _check_input(model: Any, path: Path) -> None:
    if len(model.inputs) != 1:
        _refuse_input(path, f"the model has {len(model.inputs)} inputs")
    spec = model.inputs[0]
    dtype = str(getattr(spec.dtype, "name", spec.dtype))
    if dtype != "string":
        _refuse_input(path, f"the model input is {dtype}, not string")
    shape = tuple(spec.shape)
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise ExportError(f"{path}: the model input has shape {shape}; expected (batch,) or "
                          "(batch, 1)")


def _scores(value: Any, path: Path) -> npt.NDArray[Any]:
    out = np.asarray(value, dtype=np.float32)
    if out.ndim == 1:
        out = out[:, None]
    if not np.all(np.isfinite(out)):
        raise ExportError(f"{path}: the original model returns non-finite values on probe texts "
                          "(for example the empty text)", hint="check masking/pooling in the model")
    return out


def load(source: ModelSource, *, unsafe: bool = False) -> LoadedModel:
    """Read ``source.path`` and normalize it into one task model per output."""
    import tensorflow as tf

    path = source.path
    # issue 21: TF Text's ops registered before any model is read; Hugging Face models read by
    # _hf.
    _text_ops.register()
    if _hf.kind_of(path) is not None:
        hf: LoadedModel = _hf.load(source, unsafe=unsafe)
        return hf
    raw, kit, fmt = _read(path, unsafe)
    notes: list[str] = []
    model = raw
    preprocess: Any = None
    if kit is KERAS3 and getattr(raw, "preprocessor", None) is not None and not (
            len(raw.inputs) == 1 and str(raw.inputs[0].dtype) == "string"):
        preprocess = raw.preprocessor
        model = _with_preprocessor(raw)
        notes.append("KerasHub preprocessor attached")
        fmt = f"KerasHub {type(raw).__name__} ({fmt})"
    elif kit.is_sequential(raw):
        model = _sequential_to_functional(raw, kit, path)
        notes.append("Sequential made functional")
    elif not kit.is_functional(raw):
        raise ExportError(
            f"{path}: the model is a subclassed {type(raw).__name__}, not a functional or "
            "Sequential Keras model: it has no layer graph headswitch can split",
            hint="rebuild it with the functional API (keras.Model(inputs, outputs)) and save it")
    if kit is TF_KERAS and model is raw:
        # issue 21: a layer call with several outputs of which one is read (a hub encoder's
        # dict) becomes a layer of that output, which can end the backbone.
        model = _rewire.single_outputs(model)
    _check_input(model, path)
    policy = {str(getattr(layer, "compute_dtype", "")) for layer in kit.operations(model)}
    for dtype in ("float16", "bfloat16"):
        if dtype in policy:
            notes.append(f"mixed precision ({dtype})")
    named = kit.named_outputs(model)
    names = [name for name, _ in named]
    if len(named) == 1:
        tasks = [TaskModel(KerasModel(model, kit), None)]
    else:
        tasks = [TaskModel(KerasModel(kit.model(model.inputs, out, name=f"{model.name}_{name}"),
                                      kit), name)
                 for name, out in named]
        notes.append(f"{len(names)} outputs")
    rank = len(model.inputs[0].shape)

    def run_original(batch: Any) -> Any:
        return raw(batch if preprocess is None else preprocess(batch), training=False)

    def original(texts: list[str]) -> list[npt.NDArray[Any]]:
        batch = tf.constant(texts, tf.string)
        if rank == 2:
            batch = batch[:, None]
        try:
            out = run_original(batch)
        except Exception as e:
            raise ExportError(f"{path}: the model fails on probe texts: {e}") from e
        if isinstance(out, dict):
            out = [out[name] for name in names]
        elif not isinstance(out, (list, tuple)):
            out = [out]
        elif len(out) != len(names):
            raise ExportError(f"{path}: the model returns {len(out)} values for "
                              f"{len(names)} outputs")
        return [_scores(value, path) for value in out]

    return LoadedModel(fmt, kit, tasks, notes, original)
