"""The probe's HTTP/1.1 transport (I/O): ``LeanTransport`` for ``httpx.AsyncClient``, on asyncio streams
and h11, and the one TLS context every client of the process shares.

httpx's default transport (httpcore over anyio) was the largest share of the probe's CPU per request
(issue 19; ``benchmarks/bench_http.py``). ``probes.http_steps`` builds its clients on this. Then
httpx's client layer was: ``direct_request`` and ``send_direct`` send a step's request straight to
the transport when that layer would only have sent it, doing what it does for such a request.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import weakref
from collections.abc import AsyncIterator, Mapping
from typing import Any

import h11
import httpx

__all__ = ["LeanTransport", "shared_ssl_context", "send_directly", "direct_request", "send_direct"]


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context (certifi's bundle) for every client this process makes."""
    return httpx.create_ssl_context()


_READ_BYTES = 64 * 1024  # one read; as httpcore
# A response head (status line + headers) longer than this is a protocol error; as httpcore.
_MAX_HEAD_BYTES = 100 * 1024
_MAX_CONNECTIONS = 100  # per client, as httpx's default limits


class _Connection:
    """One HTTP/1.1 connection: the streams and h11's view of the exchange on it."""

    __slots__ = ("reader", "writer", "h11")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD_BYTES)

    def reusable(self) -> bool:
        """Idle and still open: the server has not closed it or sent anything unasked since the last response."""
        unasked = getattr(self.reader, "_buffer", b"")  # bytes before any request: the exchange is out of step
        return not (self.writer.is_closing() or self.reader.at_eof() or unasked)

    def close(self) -> None:
        self.writer.close()

    async def next_event(self, timeout: float | None) -> Any:
        """The next h11 event of the response, reading as needed (``ReadTimeout``/``ReadError``/``RemoteProtocolError``)."""
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from exc
            if event is not h11.NEED_DATA:
                return event
            try:
                if timeout is None:
                    data = await self.reader.read(_READ_BYTES)
                else:
                    async with asyncio.timeout(timeout):
                        data = await self.reader.read(_READ_BYTES)
            except TimeoutError as exc:
                raise httpx.ReadTimeout("timed out reading the response") from exc
            except OSError as exc:
                raise httpx.ReadError(str(exc)) from exc
            if not data and self.h11.their_state is h11.SEND_RESPONSE:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            self.h11.receive_data(data)


class _ResponseStream(httpx.AsyncByteStream):
    """The body of one response; closing it returns the connection to the pool or closes it."""

    def __init__(self, transport: LeanTransport, key: tuple[str, str, int], conn: _Connection, timeout: float | None):
        self._transport = transport
        self._key = key
        self._conn: _Connection | None = conn
        self._timeout = timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            raise httpx.StreamClosed()
        while True:
            event = await conn.next_event(self._timeout)
            if isinstance(event, h11.Data) and event.data:  # (httpx skips empty chunks too)
                yield bytes(event.data)
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._transport._release(self._key, conn)  # noqa: SLF001


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 for ``httpx.AsyncClient`` on asyncio streams, parsed by h11 (the parser httpcore uses).

    httpx's default transport (httpcore over anyio) was the largest share of the probe's CPU per
    request (issue 19; ``benchmarks/bench_http.py``). Same behaviour where the probe can see it:
    keep-alive connections (at most ``_MAX_CONNECTIONS`` at once, more wait up to the pool timeout),
    httpx's exception classes for the same failures, httpcore's read size and head-size limit,
    no proxies (the probe's clients ignore the environment), no HTTP/2 (httpx's default too).
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None, max_connections: int = _MAX_CONNECTIONS) -> None:
        self._ssl_context = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._slots = asyncio.Semaphore(max_connections)
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{url.scheme}://'.")
        key = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        await self._acquire_slot(timeouts.get("pool"))
        conn: _Connection | None = None
        try:
            conn = await self._connection(key, request, timeouts.get("connect"))
            head = conn.h11.send(h11.Request(method=request.method, target=url.raw_path, headers=request.headers.raw))
            out = [head or b""]
            if not isinstance(request.stream, httpx.AsyncByteStream):
                raise TypeError("an async client sends an async (or bytes) request body")
            async for chunk in request.stream:
                if chunk:  # an empty chunk frames nothing (a GET's body is one)
                    out.append(conn.h11.send(h11.Data(data=chunk)) or b"")
            out.append(conn.h11.send(h11.EndOfMessage()) or b"")
            await self._write(conn, b"".join(out), timeouts.get("write"))
            read_timeout = timeouts.get("read")
            while True:
                event = await conn.next_event(read_timeout)
                if isinstance(event, h11.Response):
                    break  # 1xx informational responses are skipped, as httpcore does
            stream = _ResponseStream(self, key, conn, read_timeout)
        except BaseException:
            if conn is not None:
                conn.close()
            self._slots.release()
            raise
        return httpx.Response(
            status_code=event.status_code,
            headers=event.headers.raw_items(),
            stream=stream,
            extensions={"http_version": b"HTTP/" + event.http_version, "reason_phrase": bytes(event.reason)},
        )

    async def _acquire_slot(self, timeout: float | None) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # free: no wait, no timer
            return
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx.PoolTimeout("no connection free within the pool timeout") from exc

    async def _connection(
        self, key: tuple[str, str, int], request: httpx.Request, timeout: float | None
    ) -> _Connection:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.reusable():
                return conn
            conn.close()
        scheme, host, port = key
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            tls = self._ssl_context or shared_ssl_context()
        sni = request.extensions.get("sni_hostname") or host if tls is not None else None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=sni, limit=_READ_BYTES
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout("timed out connecting") from exc
        except OSError as exc:  # refused, unreachable, name resolution, TLS handshake
            raise httpx.ConnectError(str(exc)) from exc
        return _Connection(reader, writer)

    @staticmethod
    async def _write(conn: _Connection, data: bytes, timeout: float | None) -> None:
        try:
            conn.writer.write(data)
            if conn.writer.transport.get_write_buffer_size():  # only a full socket buffer makes drain wait
                async with asyncio.timeout(timeout):
                    await conn.writer.drain()
        except TimeoutError as exc:
            raise httpx.WriteTimeout("timed out writing the request") from exc
        except OSError as exc:
            raise httpx.WriteError(str(exc)) from exc

    def _release(self, key: tuple[str, str, int], conn: _Connection) -> None:
        """After a response: keep the connection for the next request if the exchange ended cleanly."""
        self._slots.release()
        state = conn.h11
        if not self._closed and state.our_state is h11.DONE and state.their_state is h11.DONE:
            state.start_next_cycle()
            self._idle.setdefault(key, []).append(conn)
        else:  # a body not read to its end, Connection: close, an error: the connection cannot be reused
            conn.close()

    async def aclose(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()


# --------------------------------------------------------------------------- below httpx's client layer

# Clients whose requests may go straight to their LeanTransport (``send_directly``), skipping httpx's
# client layer: it was the largest share of a probe's CPU per request left (issue 19).
_DIRECT: weakref.WeakKeyDictionary[httpx.AsyncClient, LeanTransport] = weakref.WeakKeyDictionary()
_HTTPX_LOG = logging.getLogger("httpx")  # httpx's client logs each response here; so does the direct path


def send_directly(client: httpx.AsyncClient, transport: LeanTransport) -> None:
    """Let ``direct_request`` send this client's requests to ``transport``, which must be the client's only one."""
    _DIRECT[client] = transport


@functools.lru_cache(maxsize=512)
def _parsed_url(url: str) -> httpx.URL:
    return httpx.URL(url)  # immutable: a user's repeated request to one URL is parsed once


def direct_request(
    client: httpx.AsyncClient, method: str, url: str, headers: Mapping[str, str], json: Any, timeout: float
) -> tuple[LeanTransport, httpx.Request] | None:
    """The request ``client.build_request`` would build and the transport to send it to, when the rest of
    httpx's client layer has nothing to do for it; None otherwise (send it through the client).

    Nothing to do: a ``send_directly`` client, open, without auth (a URL's user info is basic auth),
    redirects followed, event hooks or query parameters, and an absolute URL. What the layer does
    for such a request is done here and in ``send_direct``: the client's headers under the
    request's, its cookie jar copied into a Cookie header, the timeouts, cookies taken from the
    response, httpx's log line.
    """
    transport = _DIRECT.get(client)
    if transport is None or client.is_closed or client.auth is not None or client.follow_redirects:
        return None
    hooks = client.event_hooks
    if hooks["request"] or hooks["response"] or client.params:
        return None
    parsed = _parsed_url(url)
    if not parsed.is_absolute_url or parsed.userinfo:
        return None
    merged = httpx.Headers(client.headers)
    merged.update(headers)
    cookies = httpx.Cookies(client.cookies) if client.cookies else None
    extensions = {"timeout": httpx.Timeout(timeout).as_dict()}
    request = httpx.Request(method, parsed, headers=merged, cookies=cookies, json=json, extensions=extensions)
    return transport, request


async def send_direct(
    client: httpx.AsyncClient, transport: LeanTransport, request: httpx.Request
) -> tuple[httpx.Response, AsyncIterator[bytes]]:
    """Send a ``direct_request``: the response as ``client.send(request, stream=True)`` returns it, and its
    decoded body as ``response.aiter_bytes()`` yields it. Close the response when done."""
    try:
        response = await transport.handle_async_request(request)
    except httpx.RequestError as exc:
        exc.request = request
        raise
    response.request = request
    try:
        if "set-cookie" in response.headers or "set-cookie2" in response.headers:
            client.cookies.extract_cookies(response)
    except BaseException:
        await response.aclose()
        raise
    if _HTTPX_LOG.isEnabledFor(logging.INFO):
        _HTTPX_LOG.info(
            'HTTP Request: %s %s "%s %d %s"',
            request.method,
            request.url,
            response.http_version,
            response.status_code,
            response.reason_phrase,
        )
    stream = response.stream
    if "content-encoding" in response.headers or not isinstance(stream, _ResponseStream):
        return response, response.aiter_bytes()
    return response, stream.__aiter__()  # not encoded: httpx's decoding would pass the chunks on as they are
