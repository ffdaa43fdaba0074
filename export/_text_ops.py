"""TF Text's ops in this process: registered where a model needs them, and the refusal when a
model needs ops that are not available.

TensorFlow loads a graph only when every op in it is registered. TF Text registers its ops when
``tensorflow_text`` is imported; ``tensorflow_model_server`` links TF Text's ops (see
``_serving_ops``), so a model that uses them is servable, and the exporter imports the package
before it reads any model so that such models load here too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ._errors import ExportError

TEXT_EXTRA = "text"
INSTALL_TEXT = f'pip install "headswitch[{TEXT_EXTRA}]"  (tensorflow-text, matching TensorFlow)'
_NOT_REGISTERED = re.compile(r"Op type not registered '([^']+)'")


def register() -> bool:
    """Import ``tensorflow_text`` when it is installed (registering its ops); whether it is."""
    try:
        import tensorflow_text  # noqa: F401  (registers TF Text's ops)
    except ImportError:
        return False
    return True


def import_tf_text(why: str) -> Any:
    """``tensorflow_text``, or a refusal saying ``why`` it is needed and how to install it."""
    try:
        import tensorflow_text
    except ImportError as e:
        raise ExportError(f"{why} needs TF Text (tensorflow-text), which is not installed",
                          hint=INSTALL_TEXT) from e
    return tensorflow_text


def missing_ops(error: BaseException) -> list[str]:
    """The op types a load failure says are not registered."""
    return sorted(set(_NOT_REGISTERED.findall(str(error))))


def missing_ops_error(path: Path, error: BaseException) -> ExportError | None:
    """The refusal for a model that uses ops this process does not have, or None when
    ``error`` is another failure."""
    ops = missing_ops(error)
    if not ops:
        return None
    from ._serving_ops import TF_TEXT_IN_SERVING, TF_TEXT_OPS

    listed = ", ".join(ops)
    if all(op in TF_TEXT_OPS for op in ops):
        if register():
            return ExportError(f"cannot load {path}: it uses the ops {listed}, which "
                               "tensorflow_text did not register",
                               hint="check that tensorflow-text matches the installed "
                               "TensorFlow version")
        return ExportError(f"cannot load {path}: it uses TF Text ops ({listed}), and TF Text "
                           "(tensorflow-text) is not installed", hint=INSTALL_TEXT)
    return ExportError(f"cannot load {path}: it uses ops this TensorFlow does not have: {listed}",
                       hint="install the package that defines them and import it before the "
                       f"export; TF Serving itself links TensorFlow's ops and TF Text "
                       f"{TF_TEXT_IN_SERVING}'s only, so such a model cannot be served by it")
