"""headswitch: serve many task heads on one shared backbone as one TensorFlow SavedModel.

The parts live in subpackages so that each installs only what it needs:

- ``headswitch.export``: turn N Keras models into one versioned, task-switching SavedModel.
- ``headswitch.examples``: build example models that look like a user's.
- ``headswitch.client``: call a served model over REST or gRPC.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
