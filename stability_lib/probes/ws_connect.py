"""Opening a probe's WebSocket: websockets' own ``connect``, following a redirect only on the target's origin.

websockets' clients (asyncio, and threading since 17.1; 17.4 is installed) follow up to 10 HTTP
redirects of the opening handshake (``process_redirect``) and, on a redirect to another origin, strip
only ``Authorization``, ``Cookie`` and ``Proxy-Authorization``: every other header we add (``X-API-Key``
from ``target.auth``, the user's token under a custom header name), the offered subprotocols (a token
subprotocol) and a token in a query that the Location repeats would go to the other host. Here a redirect is followed only while it
stays on the origin of the URL first asked for (``core.origins.auth_may_go``: the same origin, or the
same host from ws:80 to wss:443); one to another origin ends the connect with ``RedirectRefused``,
nothing sent there. A probe must not silently test another host either.

The subclasses override ``process_redirect`` only: a session that is not redirected does nothing more
than with websockets' ``connect`` (the soak opens thousands a second).
"""

from __future__ import annotations

from typing import Any

from websockets.asyncio.client import connect as _AsyncConnect
from websockets.exceptions import InvalidHandshake
from websockets.sync import client as _sync_client

from ..core.origins import auth_may_go, origin_of, origin_text
from .sessions import SessionOutcome
from .ws_errors import outcome_for_connect_error

__all__ = ["RedirectRefused", "SameOriginConnect", "connect_sync", "open_error_outcome", "redirect_refusal"]


class RedirectRefused(InvalidHandshake):
    """The handshake was redirected to another origin and the redirect was not followed.

    The message names the origin only (scheme, host, port): the Location's path or query may hold a
    token the server copied into it.
    """

    def __init__(self, origin: str, status: int) -> None:
        # The server wrote the host: it goes into labels and evidence, so nothing that is not printable.
        self.origin = "".join(c if c.isprintable() and not c.isspace() else "?" for c in origin)
        self.status = status
        super().__init__(f"redirected to another origin {self.origin} (HTTP {status}): not followed")

    @property
    def reason(self) -> str:
        """The session outcome's error kind: ``redirected to another origin <origin>``."""
        return f"redirected to another origin {self.origin}"


def redirect_refusal(first_uri: str, new_uri: str, status: int) -> RedirectRefused | None:
    """None when a handshake first sent to ``first_uri`` may follow a redirect to ``new_uri``; else the refusal."""
    given, there = origin_of(first_uri), origin_of(new_uri)
    if given is not None and there is not None and auth_may_go(given, there):
        return None
    return RedirectRefused(origin_text(there), status)


def _status(exc: Exception) -> int:
    response = getattr(exc, "response", None)
    return int(getattr(response, "status_code", 0) or 0)


class _SameOriginRedirects:
    """``process_redirect`` of websockets' connect classes (asyncio and threading), refusing another origin."""

    uri: str
    _first_uri: str | None = None

    def process_redirect(self, exc: Exception) -> Exception | str:
        if self._first_uri is None:  # the first redirect: self.uri is still the URI we were given
            self._first_uri = self.uri
        exc_or_uri: Exception | str = super().process_redirect(exc)  # type: ignore[misc]
        if isinstance(exc_or_uri, Exception):
            return exc_or_uri
        refused = redirect_refusal(self._first_uri, exc_or_uri, _status(exc))
        return exc_or_uri if refused is None else refused


class SameOriginConnect(_SameOriginRedirects, _AsyncConnect):
    """``websockets.asyncio.client.connect`` (same arguments, same use: ``await`` or ``async with``) that
    follows a redirect only on the origin of the URI it was given (see the module)."""


class _SameOriginSyncConnect(_SameOriginRedirects, _sync_client.reconnect):
    """The threading client's connect (``reconnect`` is its class that follows redirects, websockets >= 17.1)."""


def connect_sync(uri: str, **kwargs: Any) -> _sync_client.ClientConnection:
    """``websockets.sync.client.connect(uri, **kwargs)`` (the threading client, as the gevent shell uses it)
    that follows a redirect only on the origin of ``uri``."""
    connection: _sync_client.ClientConnection = _SameOriginSyncConnect(uri, **kwargs).connect()
    return connection


def open_error_outcome(exc: BaseException) -> SessionOutcome:
    """``ws_errors.outcome_for_connect_error``, and a refused redirect as ``connect_error(redirected to
    another origin <origin>)``."""
    if isinstance(exc, RedirectRefused):
        return SessionOutcome.connect_error(exc.reason)
    return outcome_for_connect_error(exc)
