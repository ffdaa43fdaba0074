"""The one error type of the deployers."""

from __future__ import annotations

from headswitch import Error


class DeployError(Error):
    """A deployment cannot be planned or a step of it failed; the message says what is wrong and,
    when known, ``hint`` says what to do."""
