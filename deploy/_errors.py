"""The one error type of the deployers."""

from __future__ import annotations


class DeployError(Exception):
    """A deployment cannot be planned or a step of it failed; the message says what is wrong and,
    when known, ``hint`` says what to do."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n  hint: {hint}")
