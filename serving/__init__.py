"""An embedded server that speaks TensorFlow Serving's gRPC and REST APIs.

For development, CI and single-box serving of any SavedModel laid out as TF Serving expects
(``BASE/<version>/saved_model.pb``); production uses the ``tensorflow/serving`` image.

Importing this package is cheap: ``ModelServer``, ``Limits`` and ``ServingError`` load on first use
(they need the ``serve`` extra), and TensorFlow only when a server starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headswitch._lazy import lazy_names

if TYPE_CHECKING:
    from ._errors import ServingError
    from ._limits import Limits
    from ._server import ModelServer

__all__ = ["Limits", "ModelServer", "ServingError"]


__getattr__, __dir__ = lazy_names(__name__, {
    "ModelServer": "_server", "Limits": "_limits", "ServingError": "_errors"}, globals())
