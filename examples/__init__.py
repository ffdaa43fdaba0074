"""Example text models that look like a transfer-learning user's.

One shared text backbone (raw strings in, preprocessing in the graph) and N independently trained
heads, each saved as its own Keras ``.keras`` file, plus ``manifest.yaml``. Importing this
package is cheap: numpy on first use of a name, TensorFlow and Keras only when models are built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headswitch._lazy import lazy_names

if TYPE_CHECKING:
    from ._build import ExampleModels, build_example_models
    from ._corpus import sample_texts
    from ._tasks import TaskSpec

__all__ = ["ExampleModels", "TaskSpec", "build_example_models", "sample_texts"]

__getattr__, __dir__ = lazy_names(__name__, {
    "ExampleModels": "_build", "build_example_models": "_build", "sample_texts": "_corpus",
    "TaskSpec": "_tasks"}, globals())
