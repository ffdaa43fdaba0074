"""The one error type of the exporter."""

from __future__ import annotations

import re

from headswitch import Error

# Terminal control sequences (colours, bold): Keras puts some in its error messages, which
# an export error may quote; they are noise in a log, a pipe or JSON.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str) -> str:
    """``text`` without terminal control sequences."""
    return _ANSI.sub("", text)


class ExportError(Error):
    """An export could not be done; the message says what is wrong and, when known, ``hint``
    says the fix. Nothing is published when this is raised."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(plain(message), hint=None if hint is None else plain(hint))
