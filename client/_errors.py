"""``HeadswitchError``: the one error type of the client, whatever the transport."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from headswitch import Error

Transport = Literal["rest", "grpc", "client"]

# The reverse, for REST answers (several codes share 400, 409 and 500: the common one wins).
_CODE_OF_HTTP_STATUS: Final[Mapping[int, str]] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

RETRYABLE_CODES: Final = frozenset({"UNAVAILABLE", "RESOURCE_EXHAUSTED"})


def code_of_http_status(status: int) -> str:
    """The status code name a REST answer stands for (TF Serving's table, read backwards)."""
    if status in _CODE_OF_HTTP_STATUS:
        return _CODE_OF_HTTP_STATUS[status]
    if 400 <= status < 500:
        return "FAILED_PRECONDITION"
    return "UNKNOWN"


class HeadswitchError(Error):
    """A request that failed, on either transport, or that the client refused to send.

    ``code`` is the gRPC status code name (``INVALID_ARGUMENT``, ``NOT_FOUND``, ``UNAVAILABLE``,
    ...) on both transports; ``http_status`` is the HTTP status of a REST answer, or the one TF
    Serving's REST API uses for ``code`` on gRPC, and ``None`` when no server answered (a
    connection error, or an error raised before sending). ``message`` is the server's message
    as it sent it. ``details`` holds what the transport knows (URL or target, method, a body that
    is not JSON, the underlying exception). ``attempts`` counts the tries made, retries included.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        http_status: int | None = None,
        transport: Transport = "client",
        details: Mapping[str, Any] | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.http_status = http_status
        self.transport: Transport = transport
        self.details: dict[str, Any] = dict(details or {})
        self.retryable = code in RETRYABLE_CODES if retryable is None else retryable
        self.retry_after = retry_after
        self.attempts = 1

    def __str__(self) -> str:
        status = f" (HTTP {self.http_status})" if self.http_status is not None else ""
        where = self.details.get("url") or self.details.get("target")
        suffix = f" [{self.transport} {where}]" if where and where not in self.message else ""
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        return f"{self.code}{status}: {self.message}{suffix}{tries}"

    def __reduce__(self) -> tuple[Any, ...]:  # keyword-only arguments: pickle by hand
        return _rebuild, (self.code, self.message, self.http_status, self.transport,
                          self.details, self.retryable, self.retry_after, self.attempts,
                          self.hint)

    def __repr__(self) -> str:
        return (
            f"HeadswitchError({self.code!r}, {self.message!r}, http_status={self.http_status}, "
            f"transport={self.transport!r})"
        )


def _rebuild(code: str, message: str, http_status: int | None, transport: Transport,
             details: dict[str, Any], retryable: bool, retry_after: float | None,
             attempts: int, hint: str | None = None) -> HeadswitchError:
    error = HeadswitchError(code, message, http_status=http_status, transport=transport,
                            details=details, retryable=retryable, retry_after=retry_after,
                            hint=hint)
    error.attempts = attempts
    return error


def client_error(message: str, code: str = "INVALID_ARGUMENT", **details: Any) -> HeadswitchError:
    """An error the client raises before sending anything."""
    return HeadswitchError(code, message, transport="client", details=details, retryable=False)
