"""The sample service's listening socket: bound by the service itself, or by its launcher and
inherited (``--fd``), so the launcher knows the URL before the service has started."""

from __future__ import annotations

import socket

__all__ = ["HOST", "listening_socket"]

HOST = "127.0.0.1"  # never any other interface


def listening_socket(port: int = 0) -> socket.socket:
    """A TCP socket listening on 127.0.0.1:port (0: a free port)."""
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only
    # when proto says TCP; with the default proto 0, Nagle + delayed ACK add ~40 ms
    # to every multi-write exchange (POST bodies, WebSocket event streams).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock
