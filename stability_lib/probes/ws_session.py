"""One WebSocket session (I/O, kept thin): open, exchange, close, and a record of what happened.

Two forms of ws step: the old one (one templated send, an ordered list of event types) is read
here as before; a step with a ``conversation`` is driven through the sans-I/O machine in
``probes.conversation``, which decides what every received frame means and when a deadline is
over. The driver only sends what the machine says, waits for the next frame until the machine's
next deadline (one ``asyncio.timeout`` rescheduled per frame, not a ``wait_for`` per message:
field notes), and tells the machine about frames, time and closes.

Every wait is bounded (open, each expectation, the whole exchange, the close), so a server that
accepts and stays silent ends in a timeout. What the observation *means* is decided in
``probes.sessions`` and ``probes.conversation`` (pure).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from .conversation import Conversation, ConversationOutcome, ConversationOutcomeKind, Frame, Send, make_ids
from .http_steps import auth_headers, redact
from .scenario import AuthConfig, TemplateError, TokenDelivery, WsStep, render_template, template_placeholders
from .sessions import (
    MAX_EVENTS_RECORDED,
    MAX_REASON_CHARS,
    EventExpectation,
    FeedStatus,
    OutcomeKind,
    SessionOutcome,
    SessionRecord,
    cap_keeping_markers,
    cap_text,
    outcome_after_close,
)
from .ws_connect import SameOriginConnect, open_error_outcome
from .ws_errors import outcome_for_connection_closed, received_close_code

__all__ = [
    "WsExchange",
    "LegacyPlan",
    "ws_url",
    "handshake_auth",
    "session_outcome",
    "outcome_on_peer_close",
    "run_ws_exchange",
    "run_ws_session",
    "close_connection",
    "abort_connection",
]


def _ns_to_s(ns: int) -> float:
    return ns / 1e9


def ws_url(base_url: str, path: str, ws_base_url: str | None = None, query: Mapping[str, str] | None = None) -> str:
    """ws(s):// URL for a path: from ``ws_base_url`` or the HTTP base URL (http->ws, https->wss)."""
    base = ws_base_url or base_url
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    rel = urlsplit(path)
    full_path = parts.path.rstrip("/") + "/" + rel.path.lstrip("/")
    pairs = [p for p in (rel.query, urlencode(dict(query)) if query else "") if p]
    return urlunsplit((scheme, parts.netloc, full_path, "&".join(pairs), ""))


@dataclass(frozen=True)
class WsExchange:
    """A session's record and what its conversation captured (values stay in memory: they may be secrets)."""

    record: SessionRecord
    captured: dict[str, Any] = field(default_factory=dict, repr=False)


def handshake_auth(
    url: str, step: WsStep, context: Mapping[str, Any], auth: AuthConfig, token: str | None
) -> tuple[str, dict[str, str], list[str]]:
    """The URL, headers and offered subprotocols of a step's handshake, with the user's token as the scenario says.

    A query token is added to the URL that is connected to, never to a kept path.
    """
    if not step.headers and token is None:  # nothing to render or add (a soak without logins): no copies
        return url, {}, list(step.subprotocols)
    headers = {str(k): str(v) for k, v in render_template(step.headers, context).items()} if step.headers else {}
    return with_token(url, headers, list(step.subprotocols), auth, token)


def with_token(
    url: str, headers: dict[str, str], subprotocols: list[str], auth: AuthConfig, token: str | None
) -> tuple[str, dict[str, str], list[str]]:
    """A handshake's URL, headers and subprotocols with the user's token added where the scenario says."""
    headers, subprotocols = dict(headers), list(subprotocols)
    if token is not None:
        if auth.ws_token_via is TokenDelivery.HEADER:
            headers.update(auth_headers(auth, token))
        elif auth.ws_token_via is TokenDelivery.QUERY:
            url = url + ("&" if "?" in url else "?") + urlencode({auth.query_param: token})
        elif auth.ws_token_via is TokenDelivery.SUBPROTOCOL:
            subprotocols.append(str(render_template(auth.subprotocol_format, {"token": token})))
    return url, headers, subprotocols


def session_outcome(outcome: ConversationOutcome) -> SessionOutcome:
    """The session outcome of a conversation's end (a peer close is mapped by the caller, from the exception)."""
    kind = outcome.kind
    if kind is ConversationOutcomeKind.OK:
        return SessionOutcome.ok()
    if kind is ConversationOutcomeKind.TIMEOUT:
        return SessionOutcome.timeout(outcome.detail)
    if kind is ConversationOutcomeKind.UNEXPECTED_EVENT:
        return SessionOutcome.unexpected_event(outcome.expected or "", outcome.got or "")
    return SessionOutcome(
        OutcomeKind(kind.value),
        detail=cap_text(outcome.detail, 160),
        path=outcome.path,
        expected=outcome.expected,
        got=outcome.got,
    )


def outcome_on_peer_close(conv: Conversation | None, exc: ConnectionClosed) -> tuple[SessionOutcome, float | None]:
    """The session outcome when the connection closed during the exchange, and when (from the
    conversation's start) a close the conversation expected came, else None.

    The machine decides first: a close its ``close`` item accepts is ok; a close it had not yet
    decided on is what the close says (a 1011 or a drop stays a crash, whatever was expected), and
    another code where a close item waited is an unexpected event naming both codes.
    """
    if conv is None:
        return outcome_for_connection_closed(exc), None
    conv.closed(received_close_code(exc), time.monotonic())
    decided = conv.outcome
    assert decided is not None  # closed() always decides
    if decided.kind is not ConversationOutcomeKind.CLOSED:  # an expected close, or decided before the close came
        last = conv.records[-1] if conv.records else None
        closed_at_s = last.at_s if decided.ok and last is not None and last.kind == "close" else None
        return session_outcome(decided), closed_at_s
    closed = outcome_for_connection_closed(exc)
    if decided.expected is not None and exc.rcvd is not None and closed.kind is OutcomeKind.CLOSED_OTHER:
        return SessionOutcome.unexpected_event(decided.expected, decided.got or ""), None
    return closed, None


def _event_type(raw: str | bytes, key: str) -> str | None:
    if isinstance(raw, bytes):
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply for the parser
        return None
    if not isinstance(data, dict) or key not in data:
        return None
    value = data[key]
    text = value if type(value) is str else str(value)
    return text if len(text) <= 80 else cap_text(text, 80)


@dataclass(slots=True)
class _Observed:
    """What the driver keeps while a session runs (labels, offsets, capped payloads)."""

    capture_bytes: int
    secrets: Sequence[str]
    event_types: list[str] = field(default_factory=list)
    offsets: list[float] = field(default_factory=list)
    payloads: list[str] = field(default_factory=list)
    truncated: bool = False
    done_at_s: float | None = None  # conversation: when the machine decided, from its start

    def keep_payload(self, raw: str | bytes) -> None:
        if self.capture_bytes > 0 and len(self.payloads) < MAX_EVENTS_RECORDED:
            text = raw if isinstance(raw, str) else f"<binary {len(raw)} bytes>"
            self.payloads.append(cap_keeping_markers(redact(text, self.secrets), self.capture_bytes))


_LEAF = "\x00leaf\x00"  # stands for a string to fill while the message's JSON is split (no braces in it)


class _NotSplittable(Exception):
    pass


def _split_message(template: Any) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """A message template's JSON text around the strings that have placeholders, and those strings.

    ``json.dumps`` writes a value alone as it writes it inside the message, so a session's message is
    the parts joined by its rendered strings' JSON. None when a key has a placeholder or the template
    does not render without a context (a lone brace): such a message is rendered whole per session.
    """
    leaves: list[str] = []

    def mark(node: Any) -> Any:
        if isinstance(node, str):
            if template_placeholders(node):
                leaves.append(node)
                return _LEAF
            return node
        if isinstance(node, Mapping):
            if any(template_placeholders(str(k)) for k in node):
                raise _NotSplittable
            return {k: mark(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [mark(v) for v in node]
        return node

    try:
        text = json.dumps(render_template(mark(template), {}))
    except (_NotSplittable, TemplateError):
        return None
    parts = tuple(text.split(json.dumps(_LEAF)))
    return (parts, tuple(leaves)) if len(parts) == len(leaves) + 1 else None


@dataclass(frozen=True, slots=True)
class LegacyPlan:
    """What every session of an old-form step shares, worked out once (a soak runs thousands of them)."""

    step: WsStep
    expected: tuple[tuple[str, float], ...]
    final_event: str
    message_split: tuple[tuple[str, ...], tuple[str, ...]] | None  # see _split_message

    @classmethod
    def of(cls, step: WsStep) -> LegacyPlan:
        expected = tuple((e.type, e.timeout_s) for e in step.expect)
        return cls(step, expected, step.final_event, _split_message(step.send))

    @property
    def message(self) -> str | None:
        """The message, when it is the same for every session (its template has no placeholder)."""
        split = self.message_split
        return split[0][0] if split is not None and not split[1] else None

    def render(self, context: Mapping[str, Any]) -> str:
        """The message of one session: only its strings with placeholders are rendered."""
        if self.message_split is None:
            return json.dumps(render_template(self.step.send, context))
        parts, leaves = self.message_split
        if not leaves:
            return parts[0]
        out = [parts[0]]
        for leaf, part in zip(leaves, parts[1:], strict=True):
            out.append(json.dumps(render_template(leaf, context)))
            out.append(part)
        return "".join(out)


async def _legacy_exchange(
    ws: ClientConnection, plan: LegacyPlan, context: Mapping[str, Any], seen: _Observed, timeout_s: float
) -> tuple[SessionOutcome, float | None, float | None]:
    """The old form: one send, then event types in order. Returns (outcome, first event s, total s).

    Two bounds, one timer: the whole exchange (``timeout_s``) and each awaited event (its own
    timeout, from the previous event or the send). The timer is moved earlier when a deadline
    comes sooner, never later: an event that pushes the deadline on costs one subtraction, and
    a timer that fires before the real deadline is re-armed there (``recv`` is safe to cancel).
    """
    step = plan.step
    expectation = EventExpectation(
        plan.expected,
        plan.final_event,
        step.event_timeout_s,
        other_events=step.other_events,
        fail_events=step.fail_events,
    )
    decisive = expectation.decisive_types
    key = step.event_type_key
    event_types, offsets = seen.event_types, seen.offsets
    keep_payloads = seen.capture_bytes > 0
    loop = asyncio.get_running_loop()
    # Deadlines are on the loop's clock (its timers take them); offsets on time.monotonic(), whose
    # resolution is the OS's: uvloop's loop.time() is in whole milliseconds, read once per iteration.
    clock = time.monotonic
    now = loop.time()
    whole_deadline = now + timeout_s
    event_timeout = expectation.current_timeout_s
    # The sooner of the whole exchange's deadline and the awaited event's. The first event's wait
    # starts as the message goes: one timer, armed once (a timer that fires before the send is done
    # ends the session, so only later rounds of the loop below re-arm it).
    deadline = whole_deadline if whole_deadline < now + event_timeout else now + event_timeout
    sent_at: float | None = None
    first_event_s: float | None = None
    recorded_max = MAX_EVENTS_RECORDED
    while True:
        armed = deadline
        wait = asyncio.timeout_at(armed)  # absolute loop time, as reschedule takes
        try:
            async with wait:
                if sent_at is None:
                    await ws.send(plan.render(context))
                    sent_at = clock()
                while True:
                    raw = await ws.recv()
                    offset = clock() - sent_at
                    if first_event_s is None:
                        first_event_s = offset
                    event_type = _event_type(raw, key)
                    if len(event_types) < recorded_max:
                        event_types.append(event_type if event_type is not None else EventExpectation.UNTYPED)
                        offsets.append(offset)
                        if keep_payloads:
                            seen.keep_payload(raw)
                    else:
                        seen.truncated = True
                    if decisive is None or event_type in decisive:
                        fed = expectation.feed(event_type)
                        if fed.status is FeedStatus.DONE:
                            return SessionOutcome.ok(), first_event_s, offset
                        if fed.status is FeedStatus.UNEXPECTED:
                            return (
                                SessionOutcome.unexpected_event(fed.expected or "", fed.got or ""),
                                first_event_s,
                                None,
                            )
                        event_timeout = expectation.current_timeout_s
                    deadline = loop.time() + event_timeout
                    if deadline > whole_deadline:
                        deadline = whole_deadline
                    if deadline < armed:
                        armed = deadline
                        wait.reschedule(deadline)
        except TimeoutError:
            if sent_at is None or not wait.expired() or loop.time() >= deadline:
                return SessionOutcome.timeout(f"{step.name}:{expectation.waiting_for}"), first_event_s, None
            # The timer was armed for an earlier deadline that events have pushed on: wait again.


async def _drive(ws: ClientConnection, conv: Conversation, seen: _Observed) -> None:
    """Run the conversation machine over an open connection until it is done (ConnectionClosed propagates)."""
    # The machine's clock is time.monotonic() (fine-grained on every loop; uvloop's loop.time() is whole
    # milliseconds). Its deadlines go to the loop's timers unchanged: asyncio's loop reads that same clock,
    # and uvloop's never runs ahead of it, so a timer never fires before the machine's deadline has come.
    clock = time.monotonic
    started = clock()
    actions = conv.start(started, subprotocol=ws.subprotocol)
    while True:
        wait = asyncio.timeout(None)
        try:
            async with wait:
                while True:
                    if actions:  # sends run under the machine's own deadline, never a timer armed for an earlier one
                        wait.reschedule(conv.next_deadline)
                    for action in actions:  # Close is always last: the caller closes with conv.step.close_code
                        if isinstance(action, Send):
                            await ws.send(action.frame.data)
                    if conv.done:
                        seen.done_at_s = clock() - started
                        return
                    # Moved earlier only: a timer that fires before the machine's deadline is a tick that
                    # decides nothing, and the next round re-arms it (no timer re-made per frame).
                    deadline, armed = conv.next_deadline, wait.when()
                    if armed is None or (deadline is not None and deadline < armed):
                        wait.reschedule(deadline)
                    raw = await ws.recv()
                    seen.keep_payload(raw)
                    actions = conv.receive(Frame.of(raw), clock())
        except TimeoutError:
            if not wait.expired():
                raise
            actions = conv.tick(clock())


CAPTURE_ON_CANCEL_S = 1.0  # within the soak's wait for its finally steps (_CANCEL_WAIT_FINALLY_S)


async def _read_pending_capture(ws: ClientConnection, conv: Conversation) -> None:
    """Cancelled while a reply with a value to capture is on its way (``session.open`` sent, its id not
    yet back): read on for up to CAPTURE_ON_CANCEL_S so the finally steps can undo what it created.
    Sends nothing more. Runs inside the cancelled task: a second cancel ends it at once."""
    with contextlib.suppress(TimeoutError, ConnectionClosed):
        async with asyncio.timeout(CAPTURE_ON_CANCEL_S):
            while conv.awaiting_capture:
                conv.receive(Frame.of(await ws.recv()), time.monotonic())


def _conversation_record_fields(conv: Conversation, seen: _Observed) -> tuple[float | None, float | None]:
    """Fill labels and offsets from the machine's transcript; (first event s, total s when ok)."""
    records = conv.records
    for rec in records[:MAX_EVENTS_RECORDED]:
        seen.event_types.append(rec.label)
        seen.offsets.append(rec.at_s)
    seen.truncated = len(records) > MAX_EVENTS_RECORDED
    first = records[0].at_s if records else None
    total = seen.done_at_s if conv.outcome is not None and conv.outcome.ok else None
    return first, total


async def run_ws_exchange(
    *,
    url: str,
    step: WsStep,
    context: Mapping[str, Any],
    auth: AuthConfig,
    token: str | None,
    session_id: str,
    run_start_ns: int,
    user: str = "",
    connect_timeout_s: float = 10.0,
    close_timeout_s: float = 5.0,
    step_timeout_s: float | None = None,
    max_message_bytes: int = 1 << 20,
    capture_bytes: int = 0,
    secrets: Sequence[str] = (),
    run_id: str = "",
    compression: str | None = "deflate",
    captured_into: dict[str, Any] | None = None,
    plan: LegacyPlan | None = None,
) -> WsExchange:
    """One WebSocket session; always returns a record (never raises for a service failure).

    ``url`` is the ws(s):// URL without auth; the token is added here as the scenario says.
    ``capture_bytes`` > 0 keeps each received text message (capped, secrets redacted).
    ``captured_into`` receives the conversation's captures as soon as it ends, also when the session
    is cancelled (a ``finally`` step may need them to undo what the session created).
    ``plan``: an old-form step's ``LegacyPlan.of(step)``, made once by a caller that runs many sessions.
    """
    started_ns = time.monotonic_ns()
    start_offset = _ns_to_s(started_ns - run_start_ns)
    seen = _Observed(capture_bytes, secrets)

    try:
        url, headers, subprotocols = handshake_auth(url, step, context, auth, token)
        conv = (
            None
            if (plan is not None and plan.step is step) or step.is_legacy
            else Conversation(
                step, context, ids=make_ids(step, f"{run_id}/{session_id}"), seed=f"{run_id}/{session_id}"
            )
        )
    except ValueError as exc:  # TemplateError: a header or id that cannot be rendered
        outcome = SessionOutcome(OutcomeKind.TEMPLATE_ERROR, detail=cap_text(str(exc), 120))
        return WsExchange(SessionRecord(session_id, start_offset, outcome, user=user, step=step.name))
    try:
        # Redirects are followed on the target's origin only: the token and headers go nowhere else.
        ws = await SameOriginConnect(
            url,
            additional_headers=headers or None,
            subprotocols=subprotocols or None,  # type: ignore[arg-type]
            open_timeout=connect_timeout_s,
            close_timeout=close_timeout_s,
            max_size=max_message_bytes,
            compression=compression,
            proxy=None,
        )
    except Exception as exc:  # noqa: BLE001 - every connect failure is an observation
        outcome = open_error_outcome(exc)
        return WsExchange(SessionRecord(session_id, start_offset, outcome, user=user, step=step.name))
    connect_s = _ns_to_s(time.monotonic_ns() - started_ns)
    timeout_s = step_timeout_s if step_timeout_s is not None else step.timeout_s
    close_code: int | None = None
    close_reason = ""
    first_event_s: float | None = None
    total_s: float | None = None
    try:
        if conv is None:
            if plan is None or plan.step is not step:
                plan = LegacyPlan.of(step)
            outcome, first_event_s, total_s = await _legacy_exchange(ws, plan, context, seen, timeout_s)
        else:
            try:
                async with asyncio.timeout(timeout_s):  # soak.step_timeout_s may be shorter than the step's own
                    await _drive(ws, conv, seen)
            except TimeoutError:
                conv.tick(float("inf"))  # names what was awaited
            assert conv.outcome is not None
            outcome = session_outcome(conv.outcome)
    except ConnectionClosed as exc:
        outcome, closed_at_s = outcome_on_peer_close(conv, exc)
        if closed_at_s is not None:
            seen.done_at_s = closed_at_s
        close_code = received_close_code(exc)  # what the server sent; None when no close frame came
        close_reason = cap_text(exc.rcvd.reason, MAX_REASON_CHARS) if exc.rcvd is not None else ""
    except asyncio.CancelledError:  # Ctrl-C or the soak's deadline: no close wait
        try:
            if conv is not None and conv.awaiting_capture:
                await _read_pending_capture(ws, conv)
        finally:
            abort_connection(ws)
        raise
    except BaseException:
        abort_connection(ws)  # a bug of ours: no close wait
        raise
    finally:
        if captured_into is not None and conv is not None:
            captured_into.update(conv.captured)
    close_timed_out = await close_connection(ws, conv.step.close_code if conv is not None else 1000)
    if close_code is None and ws.protocol.close_rcvd is not None:
        close_code = ws.protocol.close_rcvd.code
        close_reason = cap_text(ws.protocol.close_rcvd.reason, MAX_REASON_CHARS)
    # An exchange that ended well is ok only if the close handshake completed too.
    outcome = outcome_after_close(
        outcome, ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else None, close_timed_out
    )
    if conv is not None:
        first_event_s, total_s = _conversation_record_fields(conv, seen)
    rec = SessionRecord(
        session_id,
        start_offset,
        outcome,
        user=user,
        step=step.name,
        connect_s=connect_s,
        first_event_s=first_event_s,
        total_s=total_s,
        event_types=tuple(seen.event_types),
        event_offsets_s=tuple(seen.offsets),
        events_truncated=seen.truncated,
        close_code=close_code,
        close_reason=close_reason,
        payloads=tuple(seen.payloads),
        frame_counts=conv.counts() if conv is not None else {},
    )
    return WsExchange(rec, dict(conv.captured) if conv is not None else {})


async def run_ws_session(**kwargs: Any) -> SessionRecord:
    """``run_ws_exchange`` without the captured values (the soak and the health check need the record only)."""
    return (await run_ws_exchange(**kwargs)).record


def abort_connection(ws: ClientConnection) -> None:
    """Drop the TCP connection now, without waiting for a close handshake."""
    transport = ws.transport
    if transport is not None:
        transport.abort()


async def close_connection(ws: ClientConnection, code: int = 1000) -> bool:
    """Send our close frame and wait (up to the connection's close timeout) for the server's.

    Returns True when the server's close frame did not come in time (websockets then cuts
    the connection itself). Cancelled while waiting, the connection is cut at once.
    """
    try:
        await ws.close(code)
    except asyncio.CancelledError:
        abort_connection(ws)
        raise
    except Exception:  # noqa: BLE001 - closing a broken connection may fail; what came back is read below
        pass
    # websockets records a close that timed out as TimeoutError("timed out while closing connection").
    return ws.protocol.close_rcvd is None and isinstance(ws.connection_exc, TimeoutError)
