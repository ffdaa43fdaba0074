"""``headswitch.Error``: the base of every error headswitch raises on purpose."""

from __future__ import annotations

import sys
from typing import TextIO


class Error(Exception):
    """Something headswitch could not do: ``message`` says what and why, ``hint`` (or None)
    what to do about it. ``ExportError``, ``InspectError``, ``ServingError``, ``DeployError``
    and the client's ``HeadswitchError`` derive from it, so ``except headswitch.Error`` catches
    any of them."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\n  hint: {self.hint}"


def report(error: Error, prefix: str, file: TextIO | None = None) -> None:
    """What a CLI command prints for an error: one line naming the cause, then the hint."""
    out = sys.stderr if file is None else file
    print(f"{prefix}: {error.message}", file=out)
    if error.hint:
        print(f"  hint: {error.hint}", file=out)
