"""headswitch: serve many task heads on one shared backbone as one TensorFlow SavedModel.

The parts live in subpackages so that each installs only what it needs:

- ``headswitch.contract``: the signature, input and output names every part agrees on.
- ``headswitch.tasks``: a model's task list, read from its ``tasks`` signature.
- ``headswitch.export``: turn N Keras models into one versioned, task-switching SavedModel.
- ``headswitch.examples``: build example models that look like a user's.
- ``headswitch.serving``: an embedded TensorFlow Serving-compatible server.
- ``headswitch.client``: call a served model over REST or gRPC.
- ``headswitch.deploy``: deploy an export (Vertex AI) and the values the deployment files share.

Every error headswitch raises on purpose is a :class:`headswitch.Error`.
"""

from ._errors import Error

__all__ = ["Error", "__version__"]

__version__: str  # read from the package metadata on first use (importlib.metadata is slow)


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib import metadata

        try:
            version = metadata.version("headswitch")
        except metadata.PackageNotFoundError:  # a source tree that was never installed
            version = "0+unknown"
        globals()["__version__"] = version
        return version
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
