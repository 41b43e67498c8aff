"""The conversation soak (issue 19): sessions that each exchange many request/reply messages (I/O shell).

Each session is one ``asyncio.Protocol`` around websockets' sans-I/O ``ClientProtocol``: bytes in,
frames out, no task, future or timer per message. Every received text frame goes straight to the
session's ``SessionLedger`` (``probes.conversation_soak_model``, pure), which resolves the request it
answers and records its latency in arrays; the next request is written in the same callback (as
fast as replies come) or when a shared pacer says it is due (``rate_per_session``). One sweep per
fraction of ``reply_timeout_s`` fails the requests that waited too long, for all sessions at once.

Caps (principle 7): ``sessions`` x ``messages_per_session`` messages at most (10 million), at most
``concurrency`` sessions open at once, no request sent after ``duration_s``, every connect,
handshake and close bounded. Sessions never negotiate permessage-deflate. uvloop is used by the
sync entry point when it is installed (same results, less CPU).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import heapq
import math
import ssl as _ssl
import time
from collections.abc import Mapping
from typing import Any

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidState, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from .aio import run_sync
from .conversation_soak_model import MessageLog, MessageStatus, SessionLedger, SoakPlan
from .conversation_soak_results import ConversationSoakResult, SessionResult
from .conversation_spec import ConversationSoakConfig

__all__ = ["run_conversation_soak", "run_conversation_soak_sync", "STOP_GRACE_S"]

STOP_GRACE_S = 2.0  # after duration_s, how long requests already sent may still get their reply
_PACE_QUANTUM_S = 0.001  # the pacer wakes at most this often: due sends within it go together
_CANCEL_WAIT_S = 2.0


class _Soak:
    """What all sessions of one soak share: the plan, the log, the pacer, the stop flag."""

    def __init__(self, plan: SoakPlan, loop: asyncio.AbstractEventLoop, origin: float) -> None:
        self.plan = plan
        self.loop = loop
        self.log = MessageLog()
        self.origin = origin
        self.live: set[_Session] = set()
        self.stopping = False
        self.max_send_lag_s = 0.0
        self._heap: list[tuple[float, int, _Session]] = []
        self._counter = 0
        self._pace_at: float | None = None
        self._pace_handle: asyncio.TimerHandle | None = None

    # -- pacer: one timer per wake, never one per message ---------------------------------------------
    def schedule(self, session: _Session, due: float) -> None:
        self._counter += 1
        heapq.heappush(self._heap, (due, self._counter, session))
        session.scheduled = True
        if self._pace_at is None or due < self._pace_at - _PACE_QUANTUM_S:
            self._arm(due)

    def _arm(self, due: float) -> None:
        if self._pace_handle is not None:
            self._pace_handle.cancel()
        self._pace_at = due
        self._pace_handle = self.loop.call_later(max(0.0, due - time.perf_counter()), self._pace)

    def _pace(self) -> None:
        self._pace_handle = self._pace_at = None
        now = time.perf_counter()
        heap = self._heap
        while heap and heap[0][0] <= now + _PACE_QUANTUM_S:
            _, _, session = heapq.heappop(heap)
            session.scheduled = False
            if session in self.live and not session.closing:
                # Due within the quantum counts as due: rescheduled instead, it would be popped
                # again by this same loop, for ever.
                session.pump(now, horizon=now + _PACE_QUANTUM_S)
                session.flush()
        if heap:
            self._arm(max(heap[0][0], now + _PACE_QUANTUM_S))

    # -- sweep: reply timeouts and the duration cap ------------------------------------------------
    def sweep(self) -> None:
        now = time.perf_counter()
        timeout = self.plan.config.reply_timeout_s
        for session in list(self.live):
            oldest = session.ledger.oldest_pending()
            if session.ledger.init_overdue(now):
                session.after_receive(now)
                session.flush()
            elif oldest is not None and oldest <= now - timeout:
                session.ledger.expire(now)
                session.after_receive(now)
                session.flush()

    def stop_sending(self) -> None:
        self.stopping = True
        for session in list(self.live):
            session.ledger.stop_sending()
            session.after_receive(time.perf_counter())
            session.flush()

    def stop_all(self, reason: str) -> None:
        for session in list(self.live):
            session.ledger.end(reason, MessageStatus.STOPPED)
            session.begin_close()

    def pause(self) -> None:
        if self._pace_handle is not None:
            self._pace_handle.cancel()


class _Session(asyncio.Protocol):
    """One WebSocket connection of the soak; every callback runs the sans-I/O protocol and the ledger."""

    def __init__(self, soak: _Soak, ledger: SessionLedger, url: str, subprotocols: list[str]) -> None:
        self.soak = soak
        self.ledger = ledger
        self.ws = ClientProtocol(
            parse_uri(url),
            subprotocols=subprotocols or None,  # type: ignore[arg-type]
            max_size=soak.plan.config.max_message_bytes,
        )
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = soak.loop.create_future()
        self.finished: asyncio.Future[None] = soak.loop.create_future()
        self.is_open = False
        self.closing = False
        self.scheduled = False
        self.outcome: str | None = None
        self._fragments: list[bytes] = []
        self._close_timer: asyncio.TimerHandle | None = None
        self._wanted_subprotocol = subprotocols[0] if subprotocols else None

    # -- transport callbacks ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio classes
        request = self.ws.connect()
        for name, value in self.soak.plan.headers.items():
            request.headers[name] = value
        self.ws.send_request(request)
        self.flush()

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        ws = self.ws
        ws.receive_data(data)
        ledger = self.ledger
        for event in ws.events_received():
            if not isinstance(event, Frame):
                if isinstance(event, Response) and not self.is_open:
                    self._handshake_done(event)
                continue
            opcode = event.opcode
            if opcode is Opcode.TEXT:
                if event.fin:
                    ledger.receive_text(event.data, now)
                else:
                    self._fragments = [bytes(event.data)]
            elif opcode is Opcode.CONT and self._fragments:
                self._fragments.append(bytes(event.data))
                if event.fin:
                    ledger.receive_text(b"".join(self._fragments), now)
                    self._fragments = []
            elif opcode is Opcode.BINARY:
                ledger.receive_other("binary")
            elif opcode is Opcode.CLOSE and not self.closing:
                self._peer_closed()
        if self.is_open:
            self.after_receive(now)
        self.flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self.flush()
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
        self.soak.live.discard(self)
        if not self.closing:
            self._peer_closed()
        if self.ledger.pending:
            self.ledger.end(self.outcome or "connection_lost", MessageStatus.CONNECTION_LOST)
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(self.outcome or "connection lost during the handshake"))
        if not self.finished.done():
            self.finished.set_result(None)

    # -- protocol steps ------------------------------------------------------------------------------
    def _handshake_done(self, response: Response) -> None:
        exc = self.ws.handshake_exc
        if exc is not None:
            status = exc.response.status_code if isinstance(exc, InvalidStatus) else None
            self.outcome = f"handshake_failed({status or type(exc).__name__})"
            self.closing = True
            if self.transport is not None:
                self.transport.abort()
            return
        wanted = self._wanted_subprotocol
        if wanted is not None and self.ws.subprotocol != wanted:
            self.outcome = f"subprotocol_mismatch(wanted={wanted}, got={self.ws.subprotocol or 'none'})"
            self.is_open = True
            self.begin_close()
            return
        self.is_open = True
        self.soak.live.add(self)
        if not self.opened.done():
            self.opened.set_result(None)

    def _peer_closed(self) -> None:
        """The server closed, the connection dropped, or websockets failed it (a protocol error, a message
        over max_message_bytes: it sent its own close frame first) before we meant to end."""
        ws = self.ws
        if self.outcome is None and not self.ledger.done:
            if ws.close_sent is not None and ws.close_rcvd is None:
                self.outcome = f"protocol_error({ws.close_sent.code})"
            else:
                self.outcome = f"closed_by_peer({ws.close_rcvd.code if ws.close_rcvd is not None else 1006})"
        self.closing = True

    def pump(self, now: float, horizon: float | None = None) -> None:
        """Send every request that is due by ``horizon`` (default now); schedule the next one with the pacer."""
        ledger = self.ledger
        until = now if horizon is None else horizon
        while True:
            due = ledger.due_at()
            if due is None:
                return
            if due > until:
                if not self.scheduled:
                    self.soak.schedule(self, due)
                return
            if due != -math.inf and now - due > self.soak.max_send_lag_s:
                self.soak.max_send_lag_s = now - due
            try:
                self.ws.send_text(ledger.request(now).encode())
            except InvalidState:  # websockets failed the connection in this callback: no more sends
                self._peer_closed()
                return

    def after_receive(self, now: float) -> None:
        if self.closing:
            return
        ledger = self.ledger
        if ledger.outcome is not None and self.outcome is None:
            self.outcome = ledger.outcome
        if ledger.done:
            self.begin_close()
        elif not self.scheduled:
            self.pump(now)

    def begin_close(self) -> None:
        """Our closing handshake, bounded by close_timeout_s (then the TCP connection is cut)."""
        if self.closing or self.transport is None:
            return
        self.closing = True
        self.ws.send_close(1000)
        self.flush()
        self._close_timer = self.soak.loop.call_later(self.soak.plan.config.close_timeout_s, self._close_timed_out)

    def _close_timed_out(self) -> None:
        if self.outcome is None:
            self.outcome = "close_timeout"
        if self.transport is not None:
            self.transport.abort()

    def flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof():
                transport.write_eof()
        if self.ws.close_expected() and self.closing and self._close_timer is None:
            self._close_timer = self.soak.loop.call_later(self.soak.plan.config.close_timeout_s, self._close_timed_out)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _session_outcome(session: _Session) -> str:
    if session.outcome is not None:
        return session.outcome
    ledger = session.ledger
    if ledger.sent < ledger.plan.config.messages_per_session:
        return "stopped(duration)"
    return "ok"


async def _run_session(soak: _Soak, index: int, url: str, host: str, port: int, ssl: Any) -> SessionResult:
    config = soak.plan.config
    ledger = SessionLedger(soak.plan, index, soak.log, soak.origin)
    session = _Session(soak, ledger, url, list(config.subprotocols))
    started = time.perf_counter()
    try:
        async with asyncio.timeout(config.connect_timeout_s):
            await soak.loop.create_connection(
                lambda: session, host, port, ssl=ssl, server_hostname=host if ssl else None
            )
            await session.opened
    except TimeoutError:
        session.abort()
        return SessionResult(index, "connect_timeout", 0, 0, 0)
    except (OSError, ConnectionError) as exc:
        session.abort()
        outcome = session.outcome or f"connect_failed({type(exc).__name__})"
        return SessionResult(index, outcome, 0, 0, 0)
    connect_s = time.perf_counter() - started
    if soak.stopping:
        ledger.stop_sending()
    elif not session.closing:
        for text in ledger.open(time.perf_counter()):
            session.ws.send_text(text.encode())
    session.after_receive(time.perf_counter())
    session.flush()
    try:
        await session.finished
    except asyncio.CancelledError:
        ledger.end("cancelled", MessageStatus.STOPPED)
        session.abort()
        raise
    close_code = session.ws.close_rcvd.code if session.ws.close_rcvd is not None else None
    return SessionResult(
        index,
        _session_outcome(session),
        ledger.sent,
        ledger.ok,
        ledger.failed,
        dict(ledger.unmatched),
        round(connect_s, 6),
        close_code,
    )


async def run_conversation_soak(
    url: str,
    config: ConversationSoakConfig,
    *,
    context: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    ssl_context: _ssl.SSLContext | None = None,
) -> ConversationSoakResult:
    """Run the soak against ``url`` (ws:// or wss://, the full URL of ``config.path``); always returns a result.

    ``context`` fills the templates' other placeholders (a nonce, a token); values stay in memory.
    ``headers`` are added to every handshake after ``config.headers`` (the target's auth header).
    A refused connection or a failed handshake is a session outcome, never an exception; a template
    that cannot be rendered raises ``TemplateError`` (a params error) before any traffic.
    """
    plan = SoakPlan(config, context)
    plan.headers.update(headers or {})
    uri = parse_uri(url)
    ssl: Any = (ssl_context or _ssl.create_default_context()) if uri.secure else None
    loop = asyncio.get_running_loop()
    started_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")
    origin = time.perf_counter()
    soak = _Soak(plan, loop, origin)
    next_index = 0
    results: list[SessionResult] = []

    async def worker() -> None:
        nonlocal next_index
        while not soak.stopping and next_index < config.sessions:
            index = next_index
            next_index += 1
            results.append(await _run_session(soak, index, url, uri.host, uri.port, ssl))

    sweep_s = max(0.05, min(config.reply_timeout_s / 4, 1.0))
    stopped_by = "messages"

    async def sweeper() -> None:
        while True:
            await asyncio.sleep(sweep_s)
            soak.sweep()

    workers = [asyncio.ensure_future(worker()) for _ in range(min(config.concurrency, config.sessions))]
    sweeping = asyncio.ensure_future(sweeper())
    everything = asyncio.gather(*workers)
    try:
        try:
            await asyncio.wait_for(asyncio.shield(everything), config.duration_s)
        except TimeoutError:
            stopped_by = "duration"
            soak.stop_sending()
            try:
                await asyncio.wait_for(asyncio.shield(everything), min(STOP_GRACE_S, config.reply_timeout_s))
            except TimeoutError:
                soak.stop_all("stopped(duration)")
                await asyncio.wait_for(asyncio.shield(everything), config.close_timeout_s + 1.0)
    except BaseException:
        soak.stopping = True
        for session in list(soak.live):
            session.ledger.end("cancelled", MessageStatus.STOPPED)
            session.abort()
        everything.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.gather(*workers, return_exceptions=True), _CANCEL_WAIT_S)
        raise
    finally:
        sweeping.cancel()
        soak.pause()
    duration = time.perf_counter() - origin
    return ConversationSoakResult.from_log(
        soak.log,
        results,
        started_at=started_at,
        duration_s=round(duration, 6),
        stopped_by=stopped_by,
        sessions_planned=config.sessions,
        concurrency=config.concurrency,
        messages_planned=config.sessions * config.messages_per_session,
        max_send_lag_s=round(soak.max_send_lag_s, 6),
    )


def run_conversation_soak_sync(
    url: str,
    config: ConversationSoakConfig,
    *,
    context: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    use_uvloop: bool | None = None,
) -> ConversationSoakResult:
    """``run_conversation_soak`` from sync code (also inside Jupyter); uvloop when installed unless told not to."""
    coro = run_conversation_soak(url, config, context=context, headers=headers)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return run_sync(coro)  # a kernel's loop runs here: a fresh default loop in a thread
    factory = None
    if use_uvloop is not False:
        try:
            import uvloop

            factory = uvloop.new_event_loop
        except ImportError:
            if use_uvloop:
                raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)
