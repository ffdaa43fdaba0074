"""The one error type of the exporter."""

from __future__ import annotations

from headswitch import Error


class ExportError(Error):
    """An export could not be done; the message says what is wrong and, when known, ``hint``
    says the fix. Nothing is published when this is raised."""
