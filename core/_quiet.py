"""How headswitch imports TensorFlow: one function for every entry point (export, serve,
score, demo, examples, the benchmarks), so that the settings below do not depend on which part
of the program imports TensorFlow first.

- **Logging.** ``TF_CPP_MIN_LOG_LEVEL=3`` (unless set): TensorFlow's C++ log keeps to fatal
  errors. Errors reach headswitch as exceptions and statuses, which say the same. File
  descriptor 2 is silenced while TensorFlow (and Keras) import, which print registration
  warnings there before any log level applies. Python loggers ``tensorflow`` and ``absl`` at
  ERROR. ``HEADSWITCH_DEBUG=1`` keeps everything.
- **oneDNN off** (``TF_ENABLE_ONEDNN_OPTS=0`` unless set). TF Serving's release build has
  oneDNN (its ``.bazelrc``: ``build --define=build_with_onednn_v2=true``) and TensorFlow turns
  its ops on for x86 CPUs with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX, so
  ``tensorflow/serving`` runs with it on such CPUs. headswitch turns it off because, measured
  here, it made no consistent difference in speed (a model call at batch 1 and 256, the
  embedded server at concurrency 1) while it kept much more memory after a very large batch.
  With it on, a row's scores computed in a batch differed less from the row computed alone
  (both far below the export's verification limit). Figures: ``bench/results/onednn.md``.
- **TF Text.** When ``tensorflow-text`` is installed (``pip install "headswitch[text]"``), it
  is imported too, which registers its ops (tokenizers, normalizers): ``tensorflow_model_server``
  links them, so a SavedModel that uses them loads in TF Serving, and here. Its cost at start:
  ``bench/results/tf-import.md``.

The environment variables are set on the first call, before TensorFlow reads them: a program
that sets them itself keeps its own values.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from types import ModuleType

_lock = threading.RLock()
_imported: set[str] = set()

TEXT_EXTRA = 'pip install "headswitch[text]"  (tensorflow-text, matching TensorFlow 2.19)'

# The ops ``import tensorflow_text`` (2.19) registers; tests/serving/test_tf_text.py checks this
# list against the installed package.
TF_TEXT_OPS = frozenset({
    "CaseFoldUTF8", "ConstrainedSequence", "FastBertNormalize",
    "FastWordpieceTokenizeWithOffsets", "FindSourceOffsets", "MaxSpanningTree",
    "NormalizeUTF8", "NormalizeUTF8WithOffsetsMap", "PhraseTokenize", "RegexSplitWithOffsets",
    "RougeL", "SentenceFragments", "SentenceFragmentsV2", "SentencepieceDetokenizeOp",
    "SentencepieceIdToStringOp", "SentencepieceOp", "SentencepieceStringToIdOp",
    "SentencepieceTokenizeOp", "SentencepieceTokenizeWithOffsetsOp", "SentencepieceVocabSizeOp",
    "SplitMergeTokenizeWithOffsets", "TFText>BoiseTagsToOffsets", "TFText>ByteSplitByOffsets",
    "TFText>ByteSplitWithOffsets", "TFText>FastSentencepieceDetokenize",
    "TFText>FastSentencepieceTokenize", "TFText>FastWordpieceDetokenize",
    "TFText>NgramsStringJoin", "TFText>OffsetsToBoiseTags", "TFText>PhraseDetokenize",
    "TFText>RoundRobinGenerateMasks", "TFText>RoundRobinTrim", "TFText>Utf8Binarize",
    "TFText>WhitespaceTokenizeWithOffsetsV2", "TokenizerFromLogits",
    "UnicodeScriptTokenizeWithOffsets", "WhitespaceTokenizeWithOffsets",
    "WordpieceTokenizeWithOffsets",
})


@contextlib.contextmanager
def _fd2_to_devnull() -> Iterator[int]:
    """File descriptor 2 goes to /dev/null until the end; yields a duplicate of the real one
    (closed at the end)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield saved
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: TensorFlow's C++ logs bypass Python."""
    if os.environ.get("HEADSWITCH_DEBUG"):
        yield
        return
    with _fd2_to_devnull():
        yield


def _import_text() -> None:
    """Register TF Text's ops if the package is there (a broken install is logged, not
    raised: only models that use those ops need it)."""
    try:
        import tensorflow_text  # noqa: F401
    except ImportError:
        pass
    except Exception as exc:  # noqa: BLE001 - e.g. built for another TensorFlow
        logging.getLogger(__name__).warning(
            "tensorflow-text is installed but could not be loaded (%s: %s); models that use "
            "TF Text ops will not load", type(exc).__name__, exc)


def import_tensorflow(*, keras: bool = True) -> ModuleType:
    """Import and return ``tensorflow`` with the settings of the module docstring, TF Text's
    ops registered when it is installed, and Keras imported too unless ``keras=False`` (the
    embedded server does not need it). Safe to call from any thread, any number of times."""
    with _lock:
        if "tensorflow" not in _imported:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
            os.environ.setdefault("KERAS_BACKEND", "tensorflow")
            warnings.filterwarnings("ignore", module="keras")
            warnings.filterwarnings("ignore", module="tensorflow")
            with _stderr_silenced():
                import tensorflow as tf

                _import_text()
            if not os.environ.get("HEADSWITCH_DEBUG"):
                tf.get_logger().setLevel(logging.ERROR)
                logging.getLogger("absl").setLevel(logging.ERROR)
            _imported.add("tensorflow")
        if keras and "keras" not in _imported:
            with _stderr_silenced():  # Keras loads its C++ kernels while stderr is quiet
                importlib.import_module("keras")
            _imported.add("keras")
    return sys.modules["tensorflow"]


def package_for_op(op: str) -> str | None:
    """How to get an op this process does not have, if headswitch knows where it comes from
    (TF Text's ops: the ``text`` extra)."""
    if op in TF_TEXT_OPS:
        return f"{op} is a TF Text op: {TEXT_EXTRA}"
    return None


@contextlib.contextmanager
def native_stderr_quiet() -> Iterator[None]:
    """For a whole CLI command: native code's writes to fd 2 (TensorFlow's C++ logging) go to
    /dev/null while Python's ``sys.stderr`` keeps writing to the real stderr.

    Set HEADSWITCH_DEBUG=1 to see everything.
    """
    if os.environ.get("HEADSWITCH_DEBUG"):
        yield
        return
    with _fd2_to_devnull() as saved:
        python_stderr = sys.stderr
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1,
                               encoding=python_stderr.encoding, errors="backslashreplace")
        try:
            yield
        finally:
            sys.stderr.flush()
            sys.stderr.close()
            sys.stderr = python_stderr
