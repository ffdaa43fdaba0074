"""The one error type of batch scoring."""

from __future__ import annotations

from headswitch import Error


class ScoreError(Error):
    """A scoring job cannot start or cannot finish; ``message`` says what is wrong and, when
    known, ``hint`` says what to do. Bad rows never raise this: they go to the errors output."""
