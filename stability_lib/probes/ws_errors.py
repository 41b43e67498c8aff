"""websockets exceptions -> session outcomes: the adapter; the pure decisions stay in probes.sessions."""

from __future__ import annotations

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from .sessions import OutcomeKind, SessionOutcome, outcome_for_close

__all__ = [
    "received_close_code",
    "outcome_for_connection_closed",
    "outcome_for_connect_error",
]


def received_close_code(exc: ConnectionClosed) -> int | None:
    """The code the server sent, or None when no close frame was received."""
    return exc.rcvd.code if exc.rcvd is not None else None


def outcome_for_connection_closed(exc: ConnectionClosed) -> SessionOutcome:
    """A close during the exchange. When our client closed first (a message over max_size: 1009,
    invalid UTF-8: 1007, its own keepalive timeout: 1011) no server close frame follows; that is
    not the server dropping the connection, so it is never counted as a 1006 or 1011 crash."""
    if exc.rcvd is None and exc.sent is not None:
        return SessionOutcome(OutcomeKind.CLOSED_OTHER, close_code=exc.sent.code)
    return outcome_for_close(received_close_code(exc))


def outcome_for_connect_error(exc: BaseException) -> SessionOutcome:
    """Classify a failure to open the WebSocket (the handshake never completed).

    Only the exception's type and numbers are used: messages may contain the URL,
    and with query-string auth the URL contains the token.
    """
    if isinstance(exc, InvalidStatus):
        return SessionOutcome.handshake_rejected(int(exc.response.status_code))
    if isinstance(exc, TimeoutError):
        return SessionOutcome.connect_error("timeout")
    if isinstance(exc, ConnectionRefusedError):
        return SessionOutcome.connect_error("refused")
    if isinstance(exc, ConnectionResetError):
        return SessionOutcome.connect_error("reset")
    if isinstance(exc, ConnectionClosed):
        return SessionOutcome.connect_error("closed_during_handshake")
    if isinstance(exc, InvalidURI):
        return SessionOutcome.connect_error("invalid_uri")
    if isinstance(exc, InvalidHandshake):
        return SessionOutcome.connect_error(f"invalid_handshake:{type(exc).__name__}")
    if isinstance(exc, OSError):
        return SessionOutcome.connect_error(f"os_error:{exc.errno}" if exc.errno is not None else "os_error")
    return SessionOutcome.connect_error(type(exc).__name__)
