"""Import TensorFlow without its start-up noise (used by the CLI only)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from types import ModuleType


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: TensorFlow's C++ logs bypass Python."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow() -> ModuleType:
    """Import and return ``tensorflow`` with C++ and Python start-up logging turned down."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    warnings.filterwarnings("ignore", module="keras")
    warnings.filterwarnings("ignore", module="tensorflow")
    with _stderr_silenced():
        import tensorflow as tf

        tf.get_logger().setLevel(logging.ERROR)
        import keras  # noqa: F401  (loads its C++ kernels while stderr is quiet)
    logging.getLogger("absl").setLevel(logging.ERROR)
    return sys.modules["tensorflow"]


@contextlib.contextmanager
def native_stderr_quiet() -> Iterator[None]:
    """For a whole CLI command: native code's writes to fd 2 (TensorFlow's C++ logging) go to
    /dev/null while Python's ``sys.stderr`` keeps writing to the real stderr.

    Set HEADSWITCH_DEBUG=1 to see everything.
    """
    if os.environ.get("HEADSWITCH_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    python_stderr = sys.stderr
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=python_stderr.encoding,
                           errors="backslashreplace")
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        sys.stderr.close()
        sys.stderr = python_stderr
        os.close(saved)
        os.close(devnull)
