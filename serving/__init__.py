"""An embedded server that speaks TensorFlow Serving's gRPC and REST APIs.

For development, CI and single-box serving of any SavedModel laid out as TF Serving expects
(``BASE/<version>/saved_model.pb``); production uses the ``tensorflow/serving`` image.

Importing this package is cheap: ``ModelServer``, ``Limits`` and ``ServingError`` load on first use
(they need the ``serve`` extra), and TensorFlow only when a server starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._errors import ServingError
    from ._limits import Limits
    from ._server import ModelServer

__all__ = ["Limits", "ModelServer", "ServingError"]


def __getattr__(name: str) -> Any:
    if name == "ModelServer":
        from ._server import ModelServer

        return ModelServer
    if name == "Limits":
        from ._limits import Limits

        return Limits
    if name == "ServingError":
        from ._errors import ServingError

        return ServingError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
