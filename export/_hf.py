"""Hugging Face TF text classifiers (transformers 4.x), read into normalized task models.

Accepted, each with its tokenizer files (``save_pretrained``'s) beside it or in ``--tokenizer
DIR``:

- the ``save_pretrained`` folder of a ``TF*ForSequenceClassification`` (``config.json``,
  ``tf_model.h5``); its ``tf_model.h5`` names the folder;
- the SavedModel that ``model.save(dir)`` or ``save_pretrained(dir, saved_model=True)``
  (``dir/saved_model/1``) writes: the model is rebuilt from the configuration it stores and
  its variables are restored from the SavedModel; its own ``serving_default`` signature gives
  the original answers;
- a functional tf_keras model around a Hugging Face model or main layer (``.h5``, ``.keras``
  or SavedModel folder) taking token ids (``input_ids``, ``attention_mask``,
  ``token_type_ids``, by input name), or raw text.

Each becomes a functional tf_keras model: text -> in-graph WordPiece tokenizer (``_wordpiece``)
-> the Hugging Face base model with its pooling (one layer, ``HFEncoder``, or the wrapper's own
layers) -> the classifier layers. The base model is what the task models share (the backbone),
the classifier layers are the heads. The original answers are the Hugging Face model's, fed by
the Hugging Face tokenizer.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import inspect
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import ExportError
from ._wordpiece import INSTALL_HF, WordPieceSpec, has_tokenizer, read_spec, tokenizer_layer

HF_EXTRA = "hf"
TOKENIZER_FLAG = "--tokenizer"
_TOKENIZER: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "headswitch_tokenizer", default=None)
# Configuration entries of a task (its labels, head, name), left out of the base model's
# configuration so that the layer comparison sees the base model only.
_TASK_KEYS = frozenset({
    "architectures", "finetuning_task", "id2label", "label2id", "num_labels", "problem_type",
    "_name_or_path", "transformers_version", "classifier_dropout", "seq_classif_dropout",
    "torch_dtype", "dtype", "_commit_hash", "task_specific_params", "prefix",
    "tokenizer_class", "summary_type", "summary_use_proj", "summary_activation",
    "summary_last_dropout"})
_IDS, _MASK, _TYPES = "input_ids", "attention_mask", "token_type_ids"


@contextlib.contextmanager
def tokenizer_from(folder: str | os.PathLike[str] | None) -> Iterator[None]:
    """Within it, Hugging Face models read their tokenizer from ``folder`` (``--tokenizer``)."""
    token = _TOKENIZER.set(None if folder is None else Path(folder))
    try:
        yield
    finally:
        _TOKENIZER.reset(token)


# ---------------------------------------------------------------- families


@dataclasses.dataclass(frozen=True)
class Family:
    """Where a ``TF*ForSequenceClassification`` keeps its base model and what its head is."""

    base: str  # the attribute holding the main layer
    pooling: str  # "pooler": the main layer's pooled output; "first": the first token's state
    head: Callable[[Any, Any], list[Any]]  # (model, tf_keras) -> the layers after the pooling


def _dropout(tf_keras: Any, layer: Any) -> Any:
    # A Dropout of its own in the normalized graph (it does nothing at inference; a layer the
    # Hugging Face model calls twice would be called twice in the head too).
    return tf_keras.layers.Dropout(layer.rate)


FAMILIES: dict[str, Family] = {
    "TFBertForSequenceClassification": Family(
        "bert", "pooler", lambda m, k: [_dropout(k, m.dropout), m.classifier]),
    "TFMobileBertForSequenceClassification": Family(
        "mobilebert", "pooler", lambda m, k: [_dropout(k, m.dropout), m.classifier]),
    "TFDistilBertForSequenceClassification": Family(
        "distilbert", "first",
        lambda m, k: [m.pre_classifier, _dropout(k, m.dropout), m.classifier]),
    "TFElectraForSequenceClassification": Family(
        "electra", "first",
        lambda m, k: [_dropout(k, m.classifier.dropout), m.classifier.dense,
                      k.layers.Activation("gelu"), _dropout(k, m.classifier.dropout),
                      m.classifier.out_proj]),
}


def _supported() -> str:
    return ", ".join(sorted(FAMILIES))


# ---------------------------------------------------------------- what a path is


def _keras_metadata(path: Path) -> dict[str, Any] | None:
    """The root object's entry in a tf_keras SavedModel's keras_metadata.pb."""
    file = path / "keras_metadata.pb"
    if not file.is_file():
        return None
    from tf_keras.protobuf import saved_metadata_pb2

    metadata = saved_metadata_pb2.SavedMetadata()
    metadata.ParseFromString(file.read_bytes())
    for node in metadata.nodes:
        if node.node_path == "root":
            return dict(json.loads(node.metadata))
    return None


def _h5_config(path: Path) -> str:
    try:
        import h5py

        with h5py.File(path, "r") as f:
            value = f.attrs.get("model_config", "")
    except Exception:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _keras_zip_config(path: Path) -> str:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return archive.read("config.json").decode()
    except Exception:
        return ""


def _mentions_transformers(text: str) -> bool:
    return '"transformers_version"' in text


def is_pretrained_folder(path: Path) -> bool:
    """A ``save_pretrained`` folder (config.json, no saved_model.pb)."""
    return path.is_dir() and (path / "config.json").is_file() and \
        not (path / "saved_model.pb").is_file()


def kind_of(path: Path) -> str | None:
    """"folder", "saved_model" (a whole Hugging Face model saved by tf_keras), "wrapper" (a
    functional tf_keras model with Hugging Face layers), or None: not a Hugging Face model."""
    if is_pretrained_folder(path):
        return "folder"
    if path.is_file() and path.name == "tf_model.h5" and is_pretrained_folder(path.parent):
        return "folder"
    if path.is_dir():
        try:
            root = _keras_metadata(path)
        except Exception:
            return None
        if root is None or not _mentions_transformers(
                (path / "keras_metadata.pb").read_bytes().decode("utf-8", "replace")):
            return None
        config = root.get("config")
        if isinstance(config, dict) and "transformers_version" in config:
            return "saved_model"
        return "wrapper"
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5") and _mentions_transformers(_h5_config(path)):
        return "wrapper"
    if suffix == ".keras" and _mentions_transformers(_keras_zip_config(path)):
        return "wrapper"
    return None


# ---------------------------------------------------------------- the encoder layer


def _base_config(config: Any) -> dict[str, Any]:
    return {k: v for k, v in config.to_dict().items() if k not in _TASK_KEYS}


@functools.lru_cache(maxsize=1)
def encoder_class() -> type:
    """The tf_keras layer ``HFEncoder``: a Hugging Face main layer and its pooling, token
    tensors in, [batch, hidden] out."""
    import importlib

    import tensorflow as tf

    from ._keras import import_tf_keras

    tf_keras = import_tf_keras()

    @tf_keras.utils.register_keras_serializable(package="headswitch")
    class HFEncoder(tf_keras.layers.Layer):  # type: ignore[name-defined]
        def __init__(self, main_class: str, config: dict[str, Any], pooling: str,
                     main: Any = None, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            module, _, name = main_class.rpartition(".")
            cls = getattr(importlib.import_module(module), name)
            base = cls.config_class.from_dict(config)
            if main is None:
                main = cls(base, name=kwargs.get("name", "encoder"))
            # What the main layer reports as its configuration: the base model's only, so
            # that the layer comparison does not see each task's labels.
            main._config = base
            self.main = main
            self.main_class = main_class
            self.base_config = config
            self.pooling = pooling
            accepted = inspect.signature(cls.call).parameters
            self.inputs_used = [k for k in (_IDS, _MASK, _TYPES) if k in accepted]

        # Not converted by AutoGraph (the Hugging Face layers need no conversion; converting them
        # took seconds per model).
        @tf.autograph.experimental.do_not_convert
        def call(self, features: Any, training: Any = None) -> Any:
            out = self.main(**{k: features[k] for k in self.inputs_used}, training=False)
            return out[1] if self.pooling == "pooler" else out[0][:, 0]

        def get_config(self) -> dict[str, Any]:
            config = super().get_config()
            config.update(main_class=self.main_class, config=self.base_config,
                          pooling=self.pooling)
            return dict(config)

        def compute_output_signature(self, input_signature: Any) -> Any:
            return tf.TensorSpec([None, self.base_config.get(
                "hidden_size", self.base_config.get("dim"))], tf.float32)

    return HFEncoder


def register_layers(config: str) -> None:
    """Register the tf_keras layers headswitch adds to normalized models (the tokenizer, the
    encoder), so that a backbone's configuration (JSON text) deserializes; refuse one that
    ends at one output of a layer (``OutputOf``), which is not rebuilt yet."""
    from ._wordpiece import layer_class

    if '"headswitch>OutputOf"' in config:
        raise ExportError("the backbone ends at one output of a layer with several (a hub "
                          "encoder's pooled_output, ...), which headswitch does not rebuild as a "
                          "Keras model yet")
    layer_class()
    encoder_class()


# ---------------------------------------------------------------- loading


def _import_transformers() -> Any:
    try:
        import transformers
    except ImportError as e:
        raise ExportError("reading Hugging Face models needs transformers (4.x, with "
                          "TensorFlow), which is not installed", hint=INSTALL_HF) from e
    from ._keras import import_tf_keras

    import_tf_keras()
    if not hasattr(transformers, "TFPreTrainedModel"):
        raise ExportError(f"transformers {transformers.__version__} has no TensorFlow models",
                          hint=INSTALL_HF)
    quiet: Any = transformers.logging.set_verbosity_error  # no "newly initialized" chatter
    quiet()
    return transformers


def _tokenizer_folder(path: Path) -> Path:
    given = _TOKENIZER.get()
    if given is not None:
        return given
    folder = path if path.is_dir() else path.parent
    candidates = [folder]
    if folder.parent.name == "saved_model":  # save_pretrained(dir, saved_model=True)
        candidates.append(folder.parent.parent)
    for candidate in candidates:
        if has_tokenizer(candidate):
            return candidate
    raise ExportError(f"{path}: no tokenizer files beside the model (tokenizer.json or "
                      "vocab.txt), so headswitch cannot turn text into its token ids",
                      hint=f"save the tokenizer there (tokenizer.save_pretrained(...)) or pass "
                      f"{TOKENIZER_FLAG} DIR, the folder it was saved to")


@dataclasses.dataclass
class _Read:
    """A Hugging Face model read: the parts the normalized model is built from."""

    model: Any  # the TF*ForSequenceClassification (or the wrapper)
    format: str
    run: Callable[[dict[str, Any]], Any]  # token tensors -> the logits


def _from_folder(path: Path) -> _Read:
    transformers = _import_transformers()
    folder = path if path.is_dir() else path.parent
    try:
        config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except Exception as e:
        raise ExportError(f"cannot read {folder / 'config.json'}: {type(e).__name__}: {e}",
                          hint="the folder must be what save_pretrained(folder) writes") from e
    classes = [a for a in (config.architectures or []) if "ForSequenceClassification" in a]
    if not classes:
        raise ExportError(
            f"{folder} holds a {', '.join(config.architectures or ['model'])}, not a sequence "
            "classifier: it has no trained head to export",
            hint="save the fine-tuned TF*ForSequenceClassification model")
    if not (folder / "tf_model.h5").is_file():
        raise ExportError(f"{folder} has no TensorFlow weights (tf_model.h5)",
                          hint="convert it once with TensorFlow: TFAutoModelForSequence"
                          "Classification.from_pretrained(folder, from_pt=True)"
                          ".save_pretrained(folder)")
    try:
        model, info = transformers.TFAutoModelForSequenceClassification.from_pretrained(
            str(folder), local_files_only=True, output_loading_info=True)
    except Exception as e:
        raise ExportError(f"cannot load {folder} with transformers: {type(e).__name__}: "
                          f"{str(e).splitlines()[0][:300] if str(e) else ''}",
                          hint="the folder must be what save_pretrained(folder) writes") from e
    missing = sorted(k for k in info.get("missing_keys", []) if "dropout" not in k)
    if missing:  # (Dropout layers have no weights: transformers lists them all the same)
        raise ExportError(f"{folder}: tf_model.h5 lacks weights of the model "
                          f"({', '.join(missing[:3])})",
                          hint="save the whole fine-tuned model with save_pretrained")
    return _Read(model, "Hugging Face save_pretrained folder",
                 lambda features: model(features, training=False).logits)


def _from_saved_model(path: Path) -> _Read:
    import tensorflow as tf

    transformers = _import_transformers()
    root = _keras_metadata(path) or {}
    name = str(root.get("class_name", ""))
    cls = getattr(transformers, name, None)
    if cls is None:
        raise ExportError(f"{path}: a {name} SavedModel, which transformers "
                          f"{transformers.__version__} does not define")
    model = cls(cls.config_class.from_dict(root["config"]))
    model(model.dummy_inputs, training=False)
    try:
        tf.train.Checkpoint(model).read(str(path / "variables" / "variables")
                                        ).assert_existing_objects_matched()
    except Exception as e:
        raise ExportError(f"cannot restore {name}'s weights from {path}: "
                          f"{type(e).__name__}: {str(e).splitlines()[0][:300]}",
                          hint="export the model's save_pretrained folder instead") from e
    saved = tf.saved_model.load(str(path))
    signature = saved.signatures.get("serving_default")

    def run(features: dict[str, Any]) -> Any:
        if signature is None:
            return model(features, training=False).logits
        wanted = signature.structured_input_signature[1]
        return signature(**{k: tf.cast(features[k], wanted[k].dtype) if k in features else
                            tf.zeros_like(tf.cast(features[_IDS], wanted[k].dtype))
                            for k in wanted})["logits"]

    model._headswitch_saved = saved  # keep the SavedModel alive with the model
    return _Read(model, "Hugging Face SavedModel", run)


def _family(path: Path, model: Any) -> Family:
    family = FAMILIES.get(type(model).__name__)
    if family is None:
        raise ExportError(f"{path}: {type(model).__name__} is not a model family headswitch "
                          "reads", hint=f"supported: {_supported()}; or build a functional "
                          "tf_keras model on the base model (token ids in, the head's output "
                          "out)")
    return family


def _normalized_classifier(read: _Read, family: Family, spec: WordPieceSpec) -> Any:
    """text -> tokenizer -> HFEncoder (base model + pooling) -> the classifier layers."""
    import tensorflow as tf

    from ._keras import import_tf_keras

    tf_keras = import_tf_keras()
    model = read.model
    main = getattr(model, family.base)
    text = tf_keras.Input(shape=(), dtype=tf.string, name="text")
    features = tokenizer_layer(spec)(text)
    encoder = encoder_class()(f"{type(main).__module__}.{type(main).__name__}",
                              _base_config(model.config), family.pooling, main=main,
                              name=family.base)
    x = encoder(features)
    for layer in family.head(model, tf_keras):
        x = layer(x)
    return tf_keras.Model(text, x, name=model.name)


def _custom_objects(config: str) -> dict[str, Any]:
    transformers = _import_transformers()
    import re

    names = set(re.findall(r'"class_name":\s*"(?:[A-Za-z_]+>)?(TF[A-Za-z0-9_]+)"', config))
    found = {}
    for name in names:
        cls = getattr(transformers, name, None)
        if cls is not None:
            found[name] = cls
    return found


def _load_wrapper(path: Path, unsafe: bool) -> Any:
    from ._formats import UNSAFE_HINT, _has_lambda_code
    from ._keras import import_tf_keras

    tf_keras = import_tf_keras()
    if path.is_dir():
        config = (path / "keras_metadata.pb").read_bytes().decode("utf-8", "replace")
    else:
        config = _h5_config(path) if path.suffix.lower() != ".keras" else _keras_zip_config(path)
    if not unsafe and _has_lambda_code(config):
        raise ExportError(f"{path} holds a Lambda layer with Python code, which would run when "
                          "the model is loaded", hint=UNSAFE_HINT)
    custom = _custom_objects(config)
    try:
        if path.is_dir():
            return tf_keras.models.load_model(path, compile=False, custom_objects=custom)
        return tf_keras.models.load_model(path, compile=False, custom_objects=custom,
                                          safe_mode=not unsafe)
    except Exception as e:
        raise ExportError(f"cannot load {path} with its Hugging Face layers "
                          f"({', '.join(sorted(custom)) or 'none found'}): "
                          f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}",
                          hint="save the functional model with tf_keras (model.save) after "
                          "building it from transformers' TF classes") from e


def _input_key(name: str) -> str | None:
    lowered = name.lower()
    if "mask" in lowered:
        return _MASK
    if "type" in lowered or "segment" in lowered:
        return _TYPES
    if "ids" in lowered or "word" in lowered or "token" in lowered:
        return _IDS
    return None


def _normalized_wrapper(path: Path, wrapper: Any, spec: WordPieceSpec | None
                        ) -> tuple[Any, list[str], int | None]:
    """text -> tokenizer -> the wrapper's layers (rewired); the token tensors each of the
    wrapper's inputs takes, and the fixed sequence length if its inputs have one."""
    import tensorflow as tf

    from ._keras import import_tf_keras
    from ._rewire import rerun

    tf_keras = import_tf_keras()
    text = tf_keras.Input(shape=(), dtype=tf.string, name="text")
    names = [x._keras_history.layer.name for x in wrapper.inputs]
    if len(wrapper.inputs) == 1 and wrapper.inputs[0].dtype == tf.string:
        return tf_keras.Model(text, rerun(wrapper, [text]), name=wrapper.name), [], None
    found = [_input_key(n) for n in names]
    keys = [k for k in found if k is not None]
    if len(keys) != len(found) or len(set(keys)) != len(keys) or _IDS not in keys:
        raise ExportError(f"{path}: cannot tell which token tensor each input takes "
                          f"({', '.join(names)})", hint="name the inputs input_ids, "
                          "attention_mask and token_type_ids")
    shapes = {tuple(x.shape) for x in wrapper.inputs}
    if any(len(s) != 2 for s in shapes) or len({s[1] for s in shapes}) != 1:
        raise ExportError(f"{path}: the inputs have shapes {sorted(shapes)}; expected "
                          "[batch, sequence] each, of one length")
    length = next(iter(shapes))[1]
    assert spec is not None
    if length is not None and length < spec.max_length:
        spec = dataclasses.replace(spec, max_length=int(length))
    dtype = wrapper.inputs[0].dtype.name
    features = tokenizer_layer(spec, dtype=dtype, length=length)(text)
    outputs = rerun(wrapper, [features[k] for k in keys])
    return tf_keras.Model(text, outputs, name=wrapper.name), keys, length


def load(source: Any, *, unsafe: bool = False) -> Any:
    """Read a Hugging Face model (``kind_of(source.path)`` is not None) into a LoadedModel."""
    from ._formats import LoadedModel, TaskModel, _scores
    from ._keras import TF_KERAS, KerasModel

    path = Path(source.path)
    kind = kind_of(path)
    transformers = _import_transformers()
    if kind == "wrapper":
        fmt, notes, model, answers = _read_wrapper(transformers, path, unsafe)
    else:
        read = _from_folder(path) if kind == "folder" else _from_saved_model(path)
        family = _family(path, read.model)
        folder = _tokenizer_folder(path)
        spec = read_spec(folder, max_position_embeddings=getattr(
            read.model.config, "max_position_embeddings", None))
        model = _normalized_classifier(read, family, spec)
        hf_tokenizer = _hf_tokenizer(transformers, folder)
        accepted = inspect.signature(read.model.call).parameters  # DistilBERT: no token types

        def answers(texts: list[str]) -> Any:
            features = _encode(hf_tokenizer, texts, spec.max_length, None)
            return read.run({k: v for k, v in features.items() if k in accepted})

        fmt = f"{read.format} ({type(read.model).__name__})"
        notes = [f"{type(read.model).__name__}, tokenizer added in the graph"]

    def original(texts: list[str]) -> list[Any]:
        return [_scores(answers(texts), path)]

    return LoadedModel(fmt, TF_KERAS, [TaskModel(KerasModel(model, TF_KERAS), None)], notes,
                       original)


def _read_wrapper(transformers: Any, path: Path, unsafe: bool
                  ) -> tuple[str, list[str], Any, Callable[[list[str]], Any]]:
    """A functional tf_keras model with Hugging Face layers: (format, notes, normalized model,
    its original answers to texts)."""
    import tensorflow as tf

    wrapper = _load_wrapper(path, unsafe)
    text_in = len(wrapper.inputs) == 1 and wrapper.inputs[0].dtype == tf.string
    folder = None if text_in else _tokenizer_folder(path)
    spec = None if folder is None else read_spec(folder)
    model, keys, length = _normalized_wrapper(path, wrapper, spec)
    if len(model.outputs) != 1:
        raise ExportError(f"{path}: the model has {len(model.outputs)} outputs; a Hugging "
                          "Face wrapper is read with one")
    fmt = "Hugging Face layers in a tf_keras model"
    if folder is None or spec is None:
        return fmt, [], model, lambda texts: wrapper(tf.constant(texts), training=False)
    hf_tokenizer = _hf_tokenizer(transformers, folder)
    max_length = spec.max_length if length is None else min(spec.max_length, length)

    def answers(texts: list[str]) -> Any:
        features = _encode(hf_tokenizer, texts, max_length, length)
        return wrapper([features[k] for k in keys], training=False)

    return fmt, ["tokenizer added in the graph"], model, answers


def _hf_tokenizer(transformers: Any, folder: Path) -> Any:
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    tokenizer.padding_side = "right"
    return tokenizer


def _encode(tokenizer: Any, texts: list[str], max_length: int, length: int | None
            ) -> dict[str, Any]:
    """Hugging Face's own tokenization of ``texts``, as int32 tensors."""
    import tensorflow as tf

    encoded = tokenizer(list(texts), padding="max_length" if length else True, truncation=True,
                        max_length=length or max_length, return_tensors="np")
    out = {k: tf.constant(np.asarray(v, np.int32)) for k, v in encoded.items()}
    out.setdefault(_TYPES, tf.zeros_like(out[_IDS]))
    return out
