"""Example text models that look like a transfer-learning user's.

One shared text backbone (raw strings in, preprocessing in the graph) and N independently trained
heads, each saved as its own Keras ``.keras`` file, plus ``manifest.yaml``. Importing this
package is cheap: numpy on first use of a name, TensorFlow and Keras only when models are built.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._build import ExampleModels, build_example_models
    from ._corpus import sample_texts
    from ._tasks import TaskSpec

__all__ = ["ExampleModels", "TaskSpec", "build_example_models", "sample_texts"]

_WHERE = {"ExampleModels": "_build", "build_example_models": "_build",
          "sample_texts": "_corpus", "TaskSpec": "_tasks"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
