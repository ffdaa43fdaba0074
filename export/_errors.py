"""The one error type of the exporter."""

from __future__ import annotations


class ExportError(Exception):
    """An export could not be done; the message says what is wrong and, when known, the fix.

    Nothing is published when this is raised.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n  hint: {hint}")
