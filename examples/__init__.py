"""Example text models that look like a transfer-learning user's.

One shared text backbone (raw strings in, preprocessing in the graph) and N independently trained
heads, each saved as its own Keras ``.keras`` file, plus ``manifest.yaml``. TensorFlow and Keras
are imported only when models are built.
"""

from ._build import ExampleModels, build_example_models
from ._corpus import sample_texts
from ._tasks import TaskSpec

__all__ = ["ExampleModels", "TaskSpec", "build_example_models", "sample_texts"]
