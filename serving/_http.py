"""The HTTP transport under the REST API: uvicorn's h11 protocol with the time limits TF
Serving's REST server does not have, and the error pages its HTTP library (libevent 2.1.12)
answers with for requests that never reach the API.

TF Serving's libevent server sets no timeouts on accepted connections (``evhttp_get_request``
only applies ``evhttp_set_timeout``, which TF Serving does not call), so an idle or half-sent
connection stays open forever. Here a connection must deliver a request head within
``read_timeout`` of opening (or of its first byte after a response), the ASGI app receives the
body with the same inactivity limit, and an idle keep-alive connection is closed after
``idle_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

_log = logging.getLogger(__name__)

# libevent's evhttp_send_error page (http.c ERR_FORMAT), sent with "Content-Type: text/html"
# and "Connection: close".
_PHRASES = {400: "Bad Request", 404: "Not Found", 501: "Not Implemented"}
LIBEVENT_CONTENT_TYPE = "text/html"
# What libevent adds to a reply that has a body but no Content-Type (evhttp_new's default).
LIBEVENT_DEFAULT_CONTENT_TYPE = "text/html; charset=ISO-8859-1"


def error_page(status: int) -> bytes:
    phrase = _PHRASES[status]
    return (
        f"<HTML><HEAD>\n<TITLE>{status} {phrase}</TITLE>\n</HEAD><BODY>\n<H1>{phrase}</H1>\n"
        "</BODY></HTML>\n"
    ).encode()


class TimedH11Protocol(H11Protocol):
    """``H11Protocol`` with a deadline for each request head; subclass with
    :func:`protocol_with_timeouts` to set it."""

    read_timeout: ClassVar[float] = 30.0
    drain_grace: ClassVar[float] = 1.0
    _head_deadline: asyncio.TimerHandle | None = None
    _draining = False

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_head_deadline()

    def _waiting_for_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.read_timeout, self._head_timed_out)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._waiting_for_head() and not self.transport.is_closing():
            _log.info(
                "REST connection from %s closed: no complete request within %g s",
                _peer(self.client),
                self.read_timeout,
            )
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._waiting_for_head():
            self._arm_head_deadline()  # a partial head: it must complete in time
        else:
            self._cancel_head_deadline()
            if self._draining:
                self.cycle.keep_alive = False  # answer it, then close

    def shutdown(self) -> None:
        """Graceful stop. A request in progress is answered, then the connection closes (as
        uvicorn does). An idle keep-alive connection stays open ``drain_grace`` seconds more: a
        request already on its way is answered (with ``Connection: close``) instead of meeting
        a closed connection, which a client cannot tell from a lost request."""
        self._draining = True
        if self._waiting_for_head():
            self.loop.call_later(self.drain_grace, self._close_if_idle)
        else:
            self.cycle.keep_alive = False

    def _close_if_idle(self) -> None:
        if self._waiting_for_head() and not self.transport.is_closing():
            super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """A request h11 cannot parse: libevent's 400 page instead of uvicorn's text."""
        import h11

        self._cancel_head_deadline()
        headers = [
            (b"content-type", LIBEVENT_CONTENT_TYPE.encode()),
            (b"connection", b"close"),
        ]
        event = h11.Response(status_code=400, headers=headers, reason=b"Bad Request")
        try:
            self.transport.write(self.conn.send(event))
            self.transport.write(self.conn.send(h11.Data(data=error_page(400))))
            self.transport.write(self.conn.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:
            pass
        self.transport.close()


def protocol_with_timeouts(read_timeout: float) -> type[TimedH11Protocol]:
    return type("TimedH11Protocol", (TimedH11Protocol,), {"read_timeout": read_timeout})


def _peer(client: Any) -> str:
    if not client:
        return "a client"
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
