"""The one error type of batch scoring."""

from __future__ import annotations


class ScoreError(Exception):
    """A scoring job cannot start or cannot finish; the message says what is wrong and, when
    known, ``hint`` says what to do. Bad rows never raise this: they go to the errors output."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n  hint: {hint}")
