"""The one error type of the server: a gRPC status code plus TF Serving's message."""

from __future__ import annotations

from functools import partial

import grpc

from headswitch import Error
from headswitch.contract import HTTP_STATUS_OF_CODE

_BY_NUMBER: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def code_from_number(number: int) -> grpc.StatusCode:
    """The status code with this number (``tensorflow.error.Code`` uses gRPC's numbering)."""
    return _BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


class ServingError(Error):
    """A failed request or load, as TF Serving reports it: a status code and a message.
    ``retryable=False`` marks a load failure that a retry cannot mend (a missing op)."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        hint: str | None = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.retryable = retryable

    @property
    def code_name(self) -> str:
        """The code as ``tensorflow.error.Code`` names it, e.g. ``INVALID_ARGUMENT``."""
        return str(self.code.name)

    @property
    def http_status(self) -> int:
        """The HTTP status TF Serving's REST API answers with for this code."""
        return int(HTTP_STATUS_OF_CODE.get(self.code_name, 500))

    def to_string(self) -> str:
        """``absl::Status::ToString()``: ``CODE: message``."""
        return f"{self.code_name}: {self.message}"

    def __repr__(self) -> str:
        return f"ServingError({self.code_name}, {self.message!r})"


# One factory per status code: invalid_argument("...") is a ServingError with that code.
invalid_argument = partial(ServingError, grpc.StatusCode.INVALID_ARGUMENT)
failed_precondition = partial(ServingError, grpc.StatusCode.FAILED_PRECONDITION)
not_found = partial(ServingError, grpc.StatusCode.NOT_FOUND)
unavailable = partial(ServingError, grpc.StatusCode.UNAVAILABLE)
internal = partial(ServingError, grpc.StatusCode.INTERNAL)
unimplemented = partial(ServingError, grpc.StatusCode.UNIMPLEMENTED)
unknown = partial(ServingError, grpc.StatusCode.UNKNOWN)
