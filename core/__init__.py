"""headswitch: serve many task heads on one shared backbone as one TensorFlow SavedModel.

The parts live in subpackages so that each installs only what it needs:

- ``headswitch.contract``: the signature, input and output names every part agrees on.
- ``headswitch.export``: turn N Keras models into one versioned, task-switching SavedModel.
- ``headswitch.examples``: build example models that look like a user's.
- ``headswitch.serving``: an embedded TensorFlow Serving-compatible server.
- ``headswitch.client``: call a served model over REST or gRPC.
- ``headswitch.deploy``: deploy an export (Vertex AI) and the values the deployment files share.

Every error headswitch raises on purpose is a :class:`headswitch.Error`.
"""

from importlib import metadata as _metadata

from ._errors import Error

try:
    __version__: str = _metadata.version("headswitch")
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Error", "__version__"]
