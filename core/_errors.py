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


# The signals (SIGINT, SIGTERM) the CLI turned into KeyboardInterrupt in this process: a library
# may wrap that interrupt in an error of its own, and a command must not report it as one.
signalled: list[int] = []


def interrupted() -> bool:
    """Whether a CLI command in this process was interrupted by a signal."""
    return bool(signalled)
