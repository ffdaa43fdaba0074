"""The embedded server's request limits and connection timeouts.

TF Serving 2.19.1 has none of these (its gRPC server accepts messages up to 2 GiB, its REST
server any body, and both any number of examples): one oversized request can exhaust a process.
The embedded server refuses such requests before it allocates for them, with a message that
names the limit. Every limit can be changed (``ModelServer(limits=...)``, ``headswitch serve
--max-request-bytes ...``).

What a request costs is bounded by its values, not only its bytes: a JSON body of 15 MiB can
hold millions of tiny values (``[0,0,...]``, ``[{},{},...]``), each a Python object once read,
and a protobuf message millions of empty strings. ``max_values`` is checked before either is
read into objects (``_json._scan``, ``_wire``), and JSON nesting deeper than any tensor needs is
refused at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._errors import ServingError

MAX_DIMS = 254  # TensorShape::MaxDimensions(): a larger rank fails Tensor::FromProto
# What TensorFlow's Python feed path can take: numpy arrays have at most 64 dimensions, and
# string tensors of rank 33 or more crash the process in the numpy -> TF_Tensor conversion.
MAX_RANK = 64
MAX_STRING_RANK = 32
# The deepest JSON a request of rank-MAX_RANK tensors needs: the body object, "instances" (or
# "inputs"), an instance object, rank - 1 lists, a {"b64": ...} object.
MAX_JSON_DEPTH = MAX_RANK + 3


def invalid_argument(message: str) -> ServingError:
    from ._errors import invalid_argument as error  # grpc is imported only when needed

    return error(message)


@dataclass(frozen=True)
class Limits:
    """Request limits (see the module docstring). Sizes in bytes, times in seconds."""

    max_request_bytes: int = 16 * 2**20
    """A REST body (413 beyond it) or a gRPC message (RESOURCE_EXHAUSTED)."""
    max_examples: int = 1024
    """Examples per request: the size of dimension 0 of every input."""
    max_string_bytes: int = 2**20
    """One string value (a text)."""
    max_values: int = 2**20
    """Values in one request (REST: JSON numbers, strings, lists and objects; gRPC: the
    values of every tensor or example), and in one tensor's shape."""
    read_timeout: float = 30.0
    """REST: how long a request may go without sending a byte while it is being received."""
    idle_timeout: float = 60.0
    """How long a connection may stay open without a request (REST keep-alive, gRPC idle)."""

    def validate(self) -> None:
        for name in ("max_request_bytes", "max_examples", "max_string_bytes", "max_values"):
            if getattr(self, name) < 1:
                raise invalid_argument(f"{name} must be positive; was {getattr(self, name)}")
        for name in ("read_timeout", "idle_timeout"):
            if not getattr(self, name) > 0:
                raise invalid_argument(f"{name} must be positive; was {getattr(self, name)}")

    def check_examples(self, count: int) -> None:
        if count > self.max_examples:
            raise invalid_argument(
                f"Request has {count} examples, more than this server's limit of "
                f"{self.max_examples} per request (--max-examples); send them in several "
                "requests"
            )

    def check_string(self, size: int) -> None:
        if size > self.max_string_bytes:
            raise invalid_argument(
                f"Request has a string of {size} bytes, more than this server's limit of "
                f"{self.max_string_bytes} bytes per string (--max-string-bytes)"
            )

    def check_values(self, count: int) -> None:
        """A tensor's shape (a declared shape is filled with its last value: the allocation
        follows the shape, not the message)."""
        if count > self.max_values:
            raise invalid_argument(
                f"Request has a tensor of {count} values, more than this server's limit of "
                f"{self.max_values} values per request (--max-values)"
            )

    def values_refused(self, what: str) -> ServingError:
        """A request holding more values than ``max_values``, found before it was read."""
        return invalid_argument(
            f"Request {what} more than this server's limit of {self.max_values} values per "
            "request (--max-values)"
        )


def check_tensor_shape(
    alias: str, shape: Sequence[int], limits: Limits, is_string: bool = False
) -> int:
    """The checks ``Tensor::FromProto`` makes on a shape ("tensor parsing error: ALIAS"), then
    this server's limits. Returns the number of values."""
    if len(shape) > MAX_DIMS or any(d < 0 for d in shape):
        raise invalid_argument(f"tensor parsing error: {alias}")
    count = math.prod(shape)
    if count > 2**63 - 1:
        raise invalid_argument(f"tensor parsing error: {alias}")
    if shape:
        limits.check_examples(shape[0])
    limits.check_values(count)
    most = MAX_STRING_RANK if is_string else MAX_RANK
    if len(shape) > most:
        raise invalid_argument(
            f"Request input {alias} has rank {len(shape)}; this server accepts "
            f"{'string ' if is_string else ''}tensors of rank up to {most}"
        )
    return count
