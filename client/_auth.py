"""Bearer tokens: a fixed string, a callable, or Google's Application Default Credentials."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Token = str | Callable[[], str]

_CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


class TokenSource:
    """``header()`` gives the ``authorization`` value (or None); ``static`` says it never
    changes, so a client can compute it once."""

    def __init__(self, token: Token | None) -> None:
        self._token = token
        self.static = token is None or isinstance(token, str)

    def header(self) -> str | None:
        token = self._token() if callable(self._token) else self._token
        return None if token is None else f"Bearer {token}"


def google_token(credentials: Any = None) -> Callable[[], str]:
    """A token getter on ``google-auth`` credentials (Application Default Credentials when
    ``credentials`` is None), refreshed when expired."""
    try:
        import google.auth
        import google.auth.transport.requests
    except ImportError as exc:
        raise ImportError(
            "a Vertex AI endpoint needs a bearer token: pass token=... (e.g. the output of "
            "`gcloud auth print-access-token`), or install google-auth to use Application "
            'Default Credentials: pip install "google-auth[requests]"'
        ) from exc
    if credentials is None:
        credentials, _ = google.auth.default(scopes=[_CLOUD_PLATFORM])
    request = google.auth.transport.requests.Request()
    lock = threading.Lock()

    def get() -> str:
        with lock:
            if not credentials.valid:
                credentials.refresh(request)
            return str(credentials.token)

    return get
