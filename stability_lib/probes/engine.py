"""WebSocket sessions and the soak runner (I/O, kept thin).

A session: open the WebSocket with the scenario's auth (header, query or
subprotocol), send one templated message, read events until the end event or a
timeout, close normally. Every wait is bounded (open, each event, the whole
exchange, the close), so a server that accepts and stays silent ends in a timeout.
What the observation *means* is decided in ``probes.sessions`` (pure).

HTTP prerequisites (register, login, earlier HTTP steps such as creating a thread)
run once per user, each user with its own ``httpx.AsyncClient``: one client shared
under concurrency serialises on its pool (encode/httpx#3215) and its latency would be
the client's, not the service's.

Proxies from the environment are not used: a probe measures the service directly.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ..core.models import Claim, EvidenceRef
from .aio import run_sync
from .scenario import (
    MISSING,
    AuthConfig,
    HttpRequestTemplate,
    HttpStep,
    ScenarioConfig,
    TemplateError,
    TokenDelivery,
    WsStep,
    extract_path,
    render_template,
)
from .sessions import (
    MAX_EVENTS_RECORDED,
    MAX_REASON_CHARS,
    EventExpectation,
    FeedStatus,
    SessionAggregate,
    SessionOutcome,
    SessionRecord,
    aggregate_sessions,
    cap_keeping_markers,
    cap_text,
    outcome_after_close,
    session_claims,
)
from .ws_errors import outcome_for_connect_error, outcome_for_connection_closed, received_close_code

__all__ = [
    "CappedBody",
    "HttpStepResult",
    "PreparedUser",
    "UserSetup",
    "SoakResult",
    "new_run_id",
    "new_nonce",
    "ws_url",
    "redact",
    "fetch_capped",
    "run_http_step",
    "prepare_user",
    "run_ws_session",
    "close_connection",
    "abort_connection",
    "run_soak",
    "run_soak_sync",
    "run_blocking",
]

T = TypeVar("T")
_MAX_HTTP_BODY_BYTES = 4 << 20  # bodies are read up to this; beyond it the step fails (untrusted size)
_SLACK_S = 5.0  # extra time before the soak's hard deadline cancels stragglers
_CANCEL_WAIT_S = 2.0  # on cancellation (Ctrl-C), how long the soak waits for its sessions to drop their sockets
SETUP_CONCURRENCY = 8  # users registered/logged in at once: users.count may be large


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


def new_nonce() -> str:
    """A marker no other session can produce: ``nonce-<uuid4 hex>``."""
    return f"nonce-{uuid.uuid4().hex}"


def _ns_to_s(ns: int) -> float:
    return ns / 1e9


def redact(text: str, secrets: Sequence[str]) -> str:
    """Replace every secret (password, token) in untrusted text before it is kept."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text


def ws_url(base_url: str, path: str, ws_base_url: str | None = None, query: Mapping[str, str] | None = None) -> str:
    """ws(s):// URL for a path: from ``ws_base_url`` or the HTTP base URL (http->ws, https->wss)."""
    base = ws_base_url or base_url
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    rel = urlsplit(path)
    full_path = parts.path.rstrip("/") + "/" + rel.path.lstrip("/")
    pairs = [p for p in (rel.query, urlencode(dict(query)) if query else "") if p]
    return urlunsplit((scheme, parts.netloc, full_path, "&".join(pairs), ""))


def run_blocking(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, also inside Jupyter (a running loop)."""
    return run_sync(factory())


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class HttpStepResult:
    """One HTTP request as observed: status, duration, capped and redacted body."""

    name: str
    method: str
    path: str
    ok: bool
    status: int | None
    duration_s: float
    error: str = ""
    body: str = field(default="", repr=False)
    captured: tuple[str, ...] = ()

    def to_dict(self, include_body: bool = False) -> dict[str, Any]:
        out = {
            "name": self.name,
            "method": self.method,
            "path": self.path,
            "ok": self.ok,
            "status": self.status,
            "duration_s": self.duration_s,
            "error": self.error,
            "captured": list(self.captured),
        }
        if include_body:
            out["body"] = self.body
        return out


@dataclass(frozen=True)
class CappedBody:
    """A response read under a size cap: the status and at most ``max_bytes`` of body."""

    status: int
    content: bytes = field(repr=False)
    truncated: bool  # the body was longer: only the first ``max_bytes`` were read


async def fetch_capped(
    client: httpx.AsyncClient, method: str, url: str, *, max_bytes: int, deadline_s: float, **request: Any
) -> CappedBody:
    """One request with one deadline over connect, headers and the whole body, the body cut at ``max_bytes``.

    httpx's timeout bounds each read only: a server dripping a byte at a time would hold it forever.
    Raises TimeoutError at the deadline and ``httpx.HTTPError`` for transport failures. A cut body
    is not read further: the connection is closed instead of being drained.
    """
    # identity: the cap counts bytes after decompression, and one small gzip chunk can inflate a thousandfold.
    request["headers"] = {"Accept-Encoding": "identity", **dict(request.get("headers") or {})}
    async with asyncio.timeout(deadline_s), client.stream(method, url, timeout=deadline_s, **request) as response:
        chunks: list[bytes] = []
        size = 0
        truncated = False
        async for chunk in response.aiter_bytes():
            room = max_bytes - size
            if len(chunk) > room:
                chunks.append(chunk[:room])
                truncated = True
                break
            chunks.append(chunk)
            size += len(chunk)
        return CappedBody(response.status_code, b"".join(chunks), truncated)


def _auth_headers(auth: AuthConfig, token: str | None) -> dict[str, str]:
    if token is None:
        return {}
    return {auth.header_name: str(render_template(auth.header_format, {"token": token}))}


async def run_http_step(
    client: httpx.AsyncClient,
    step: HttpStep | HttpRequestTemplate,
    name: str,
    context: Mapping[str, Any],
    *,
    auth: AuthConfig,
    token: str | None,
    secrets: Sequence[str],
    capture_bytes: int,
) -> tuple[HttpStepResult, dict[str, Any]]:
    """Send one templated request; return what was observed and the captured variables.

    The response is parsed as JSON only for ``capture`` (and login's token path); the kept
    body text is capped at ``capture_bytes`` and has secrets replaced.
    """
    request_path = str(render_template(step.path, context))
    path = redact(request_path, secrets)  # what is kept; a token in a path must not reach evidence
    body = render_template(step.body, context) if step.body is not None else None
    headers = {str(k): str(v) for k, v in render_template(step.headers, context).items()}
    headers.update(_auth_headers(auth, token))
    captures = dict(getattr(step, "capture", {}) or {})
    started = time.monotonic_ns()
    try:
        response = await fetch_capped(
            client,
            step.method,
            request_path,
            max_bytes=_MAX_HTTP_BODY_BYTES,
            deadline_s=step.timeout_s,
            json=body,
            headers=headers,
        )
    except TimeoutError:
        duration = _ns_to_s(time.monotonic_ns() - started)
        return HttpStepResult(name, step.method, path, False, None, duration, "timeout"), {}
    except httpx.TimeoutException:
        duration = _ns_to_s(time.monotonic_ns() - started)
        return HttpStepResult(name, step.method, path, False, None, duration, "timeout"), {}
    except httpx.HTTPError as exc:
        duration = _ns_to_s(time.monotonic_ns() - started)
        return HttpStepResult(name, step.method, path, False, None, duration, type(exc).__name__), {}
    duration = _ns_to_s(time.monotonic_ns() - started)
    status = response.status
    if response.truncated:  # captures need the whole JSON document: a cut body fails the step
        return HttpStepResult(name, step.method, path, False, status, duration, "body_too_large"), {}
    text = response.content.decode("utf-8", errors="replace")
    kept = cap_keeping_markers(redact(text, secrets), capture_bytes) if capture_bytes > 0 else ""
    if status not in step.expect_status:
        error = f"status {status}, expected {step.expect_status}"
        return HttpStepResult(name, step.method, path, False, status, duration, error, kept), {}
    captured: dict[str, Any] = {}
    if captures:
        try:
            data = json.loads(text)
        except ValueError:
            return HttpStepResult(name, step.method, path, False, status, duration, "response is not JSON", kept), {}
        for var, json_path in captures.items():
            value = extract_path(data, json_path)
            if value is MISSING:
                error = f"capture {var}: nothing at {json_path!r} in the response"
                return HttpStepResult(name, step.method, path, False, status, duration, error, kept), {}
            captured[var] = value
    return HttpStepResult(name, step.method, path, True, status, duration, "", kept, tuple(captured)), captured


@dataclass(frozen=True)
class UserSetup:
    """How a test user's setup went (register, login, prerequisite steps); no secrets."""

    index: int
    username: str
    ok: bool
    error: str = ""
    steps: tuple[HttpStepResult, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "username": self.username,
            "ok": self.ok,
            "error": self.error,
            "steps": [s.to_dict() for s in self.steps],
        }


@dataclass(frozen=True)
class PreparedUser:
    """A logged-in test user: the token and captured variables live only in memory."""

    setup: UserSetup
    token: str | None = field(default=None, repr=False)
    variables: dict[str, Any] = field(default_factory=dict, repr=False)
    password: str = field(default="", repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.password, self.token) if s)

    def context(self, run_id: str, **extra: Any) -> dict[str, Any]:
        return {
            "username": self.setup.username,
            "password": self.password,
            "token": self.token or "",
            "user_index": self.setup.index,
            "run_id": run_id,
            "repetition": 0,
            **self.variables,
            **extra,
        }


async def prepare_user(
    client: httpx.AsyncClient,
    scenario: ScenarioConfig,
    index: int,
    username: str,
    run_id: str,
    prerequisite_steps: Sequence[HttpStep] = (),
) -> PreparedUser:
    """Register (if configured), log in (if configured), then run prerequisite HTTP steps."""
    auth = scenario.auth
    # No password configured: the scenario's load checks refuse any template that uses {password}.
    password = scenario.users.password.get_secret_value() if scenario.users.password is not None else ""
    context: dict[str, Any] = {
        "username": username,
        "password": password,
        "user_index": index,
        "run_id": run_id,
        "repetition": 0,
        "nonce": new_nonce(),
    }
    secrets = [password]
    steps: list[HttpStepResult] = []
    token: str | None = None

    def failed(error: str) -> PreparedUser:
        setup = UserSetup(index, username, False, error, tuple(steps))
        return PreparedUser(setup, token, {}, password)

    try:
        if auth.registration is not None:
            result, _ = await run_http_step(
                client,
                auth.registration,
                "auth.register",
                context,
                auth=auth,
                token=None,
                secrets=secrets,
                capture_bytes=scenario.max_capture_bytes,
            )
            steps.append(result)
            if not result.ok:
                return failed(f"register: {result.error}")
        if auth.login is not None:
            login_result, token = await _login(client, scenario, context, secrets)
            steps.append(login_result)
            if not login_result.ok:
                return failed(f"login: {login_result.error}")
        if token:
            secrets.append(token)
        context["token"] = token or ""
        variables: dict[str, Any] = {}
        for step in prerequisite_steps:
            res, captured = await run_http_step(
                client,
                step,
                step.name,
                {**context, **variables},
                auth=auth,
                token=token,
                secrets=secrets,
                capture_bytes=scenario.max_capture_bytes,
            )
            steps.append(res)
            if not res.ok:
                return failed(f"{step.name}: {res.error}")
            variables.update(captured)
    except TemplateError as exc:
        return failed(f"template: {exc}")
    return PreparedUser(UserSetup(index, username, True, "", tuple(steps)), token, variables, password)


async def _login(
    client: httpx.AsyncClient, scenario: ScenarioConfig, context: Mapping[str, Any], secrets: Sequence[str]
) -> tuple[HttpStepResult, str | None]:
    """Log in and read the token from the response (the body is never kept: it holds the token)."""
    auth = scenario.auth
    assert auth.login is not None
    login_step = HttpStep(
        name="auth.login",
        method=auth.login.method,
        path=auth.login.path,
        body=auth.login.body,
        headers=auth.login.headers,
        expect_status=auth.login.expect_status,
        capture={"token": auth.token_path},
        timeout_s=auth.login.timeout_s,
    )
    result, captured = await run_http_step(
        client, login_step, "auth.login", context, auth=auth, token=None, secrets=secrets, capture_bytes=0
    )
    token = captured.get("token")
    error = result.error
    if result.ok and not isinstance(token, str):
        error, token = f"token at {auth.token_path!r} is not a string", None
    # The login body carries the token: never keep it.
    kept = HttpStepResult(result.name, result.method, result.path, not error, result.status, result.duration_s, error)
    return kept, token


def new_http_client(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, trust_env=False, follow_redirects=False)


# --------------------------------------------------------------------------- WebSocket session


def _event_type(raw: str | bytes, key: str) -> str | None:
    if isinstance(raw, bytes):
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or key not in data:
        return None
    return cap_text(str(data[key]), 80)


async def run_ws_session(
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
) -> SessionRecord:
    """One WebSocket session; always returns a record (never raises for a service failure).

    ``url`` is the ws(s):// URL without auth; the token is added here as the scenario
    says. ``capture_bytes`` > 0 keeps each received message (capped, secrets redacted).
    """
    started_ns = time.monotonic_ns()
    start_offset = _ns_to_s(started_ns - run_start_ns)
    message = json.dumps(render_template(step.send, context))
    headers: dict[str, str] = {}
    subprotocols: list[str] | None = None
    if token is not None:
        if auth.ws_token_via is TokenDelivery.HEADER:
            headers = _auth_headers(auth, token)
        elif auth.ws_token_via is TokenDelivery.QUERY:
            url = url + ("&" if "?" in url else "?") + urlencode({auth.query_param: token})
        else:
            subprotocols = [str(render_template(auth.subprotocol_format, {"token": token}))]

    def record(outcome: SessionOutcome, **kw: Any) -> SessionRecord:
        return SessionRecord(
            session_id=session_id, start_offset_s=start_offset, outcome=outcome, user=user, step=step.name, **kw
        )

    try:
        ws = await connect(
            url,
            additional_headers=headers or None,
            subprotocols=subprotocols,  # type: ignore[arg-type]
            open_timeout=connect_timeout_s,
            close_timeout=close_timeout_s,
            max_size=max_message_bytes,
            proxy=None,
        )
    except Exception as exc:  # noqa: BLE001 - every connect failure is an observation
        return record(outcome_for_connect_error(exc))
    connected_ns = time.monotonic_ns()
    connect_s = _ns_to_s(connected_ns - started_ns)

    expectation = EventExpectation(
        [(e.type, e.timeout_s) for e in step.expect],
        step.final_event,
        step.event_timeout_s,
        other_events=step.other_events,
        fail_events=step.fail_events,
    )
    event_types: list[str] = []
    offsets: list[float] = []
    payloads: list[str] = []
    truncated = False
    first_event_s: float | None = None
    total_s: float | None = None
    close_code: int | None = None
    close_reason = ""
    outcome: SessionOutcome | None = None
    sent_ns = connected_ns
    try:
        async with asyncio.timeout(step_timeout_s if step_timeout_s is not None else step.timeout_s):
            await ws.send(message)
            sent_ns = time.monotonic_ns()
            while outcome is None:
                try:
                    raw = await asyncio.wait_for(ws.recv(), expectation.current_timeout_s)
                except TimeoutError:
                    outcome = SessionOutcome.timeout(f"{step.name}:{expectation.waiting_for}")
                    break
                offset = _ns_to_s(time.monotonic_ns() - sent_ns)
                if first_event_s is None:
                    first_event_s = offset
                event_type = _event_type(raw, step.event_type_key)
                if len(event_types) < MAX_EVENTS_RECORDED:
                    event_types.append(event_type if event_type is not None else EventExpectation.UNTYPED)
                    offsets.append(offset)
                    if capture_bytes > 0:
                        text = raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")
                        payloads.append(cap_keeping_markers(redact(text, secrets), capture_bytes))
                else:
                    truncated = True
                fed = expectation.feed(event_type)
                if fed.status is FeedStatus.DONE:
                    total_s = offset
                    outcome = SessionOutcome.ok()
                elif fed.status is FeedStatus.UNEXPECTED:
                    outcome = SessionOutcome.unexpected_event(fed.expected or "", fed.got or "")
    except TimeoutError:
        outcome = SessionOutcome.timeout(f"{step.name}:{expectation.waiting_for}")
    except ConnectionClosed as exc:
        code = received_close_code(exc)
        outcome = outcome_for_connection_closed(exc)
        close_code = code  # what the server sent; None when no close frame came
        close_reason = cap_text(exc.rcvd.reason, MAX_REASON_CHARS) if exc.rcvd is not None else ""
    except BaseException:
        abort_connection(ws)  # cancelled (Ctrl-C, the soak's deadline) or a bug: no close wait
        raise
    close_timed_out = await close_connection(ws)
    if close_code is None and ws.protocol.close_rcvd is not None:
        close_code = ws.protocol.close_rcvd.code
        close_reason = cap_text(ws.protocol.close_rcvd.reason, MAX_REASON_CHARS)
    # An exchange that ended well is ok only if the close handshake completed too.
    outcome = outcome_after_close(
        outcome, ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else None, close_timed_out
    )
    return record(
        outcome,
        connect_s=connect_s,
        first_event_s=first_event_s,
        total_s=total_s,
        event_types=tuple(event_types),
        event_offsets_s=tuple(offsets),
        events_truncated=truncated,
        close_code=close_code,
        close_reason=close_reason,
        payloads=tuple(payloads),
    )


def abort_connection(ws: ClientConnection) -> None:
    """Drop the TCP connection now, without waiting for a close handshake."""
    transport = ws.transport
    if transport is not None:
        transport.abort()


async def close_connection(ws: ClientConnection) -> bool:
    """Send our close frame and wait (up to the connection's close timeout) for the server's.

    Returns True when the server's close frame did not come in time (websockets then cuts
    the connection itself). Cancelled while waiting, the connection is cut at once.
    """
    try:
        await ws.close()
    except asyncio.CancelledError:
        abort_connection(ws)
        raise
    except Exception:  # noqa: BLE001 - closing a broken connection may fail; what came back is read below
        pass
    # websockets records a close that timed out as TimeoutError("timed out while closing connection").
    return ws.protocol.close_rcvd is None and isinstance(ws.connection_exc, TimeoutError)


# --------------------------------------------------------------------------- soak


@dataclass(frozen=True)
class SoakResult:
    """Everything a soak observed: user setups, one record per session, the aggregate."""

    run_id: str
    step: str
    started_at: str
    duration_s: float
    sessions_planned: int
    concurrency: int
    stopped_by_duration: bool
    cancelled_at_deadline: int
    users: tuple[UserSetup, ...]
    records: tuple[SessionRecord, ...]
    aggregate: SessionAggregate
    tolerated_rate: float
    confidence: float

    @property
    def setup_note(self) -> str:
        failed = [u for u in self.users if not u.ok]
        if not failed:
            return ""
        first = failed[0]
        return (
            f"user setup failed for {len(failed)} of {len(self.users)} users (first: {first.username}: {first.error})"
        )

    def claims(self, section: str = "websocket", evidence: Sequence[EvidenceRef] = ()) -> tuple[Claim, Claim]:
        return session_claims(
            self.aggregate,
            tolerated_rate=self.tolerated_rate,
            confidence=self.confidence,
            section=section,
            evidence=evidence,
            note=self.setup_note,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "step": self.step,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "sessions_planned": self.sessions_planned,
            "concurrency": self.concurrency,
            "stopped_by_duration": self.stopped_by_duration,
            "cancelled_at_deadline": self.cancelled_at_deadline,
            "tolerated_rate": self.tolerated_rate,
            "confidence": self.confidence,
            "users": [u.to_dict() for u in self.users],
            "aggregate": self.aggregate.to_dict(),
            "records": [r.to_dict() for r in self.records],
        }


async def prepare_users(
    base_url: str, scenario: ScenarioConfig, run_id: str, prerequisite_steps: Sequence[HttpStep]
) -> list[PreparedUser]:
    """Set every test user up, ``SETUP_CONCURRENCY`` at a time, each with its own HTTP client."""
    names = scenario.users.usernames(run_id)
    slots = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def one(index: int, name: str) -> PreparedUser:
        async with slots, new_http_client(base_url) as client:
            return await prepare_user(client, scenario, index, name, run_id, prerequisite_steps)

    return list(await asyncio.gather(*(one(i, n) for i, n in enumerate(names))))


async def run_soak(
    base_url: str,
    scenario: ScenarioConfig,
    *,
    ws_base_url: str | None = None,
    run_id: str | None = None,
    on_session: Callable[[SessionRecord], Awaitable[None] | None] | None = None,
) -> SoakResult:
    """Run the scenario's soak: N sessions of its WS step at bounded concurrency and time.

    No session starts after ``soak.duration_s``; sessions still open at the hard deadline
    (duration + connect + step + close timeouts + slack) are cancelled and recorded as
    ``timeout(deadline)``. Sessions are spread round robin over the users whose setup
    succeeded; with none, no session runs and the claims are INCONCLUSIVE. Cancelled
    (Ctrl-C through ``run_sync``), it launches nothing more, cuts the open sessions' sockets
    and re-raises within about ``_CANCEL_WAIT_S``.
    """
    soak = scenario.soak
    run_id = run_id or new_run_id()
    step = scenario.soak_step()
    if step is None:
        raise TemplateError("the golden path has no ws step to soak")
    started_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    run_start_ns = time.monotonic_ns()
    users = await prepare_users(base_url, scenario, run_id, scenario.steps_before(step.name))
    ready = [u for u in users if u.setup.ok]
    step_timeout = soak.step_timeout_s if soak.step_timeout_s is not None else step.timeout_s
    session_bound = soak.connect_timeout_s + step_timeout + soak.close_timeout_s
    launch_deadline_ns = time.monotonic_ns() + int(soak.duration_s * 1e9)
    hard_bound_s = soak.duration_s + session_bound + _SLACK_S

    records: list[SessionRecord] = []
    in_flight: dict[int, tuple[str, str, float]] = {}
    next_index = 0
    stopped_by_duration = False

    async def worker() -> None:
        nonlocal next_index, stopped_by_duration
        while next_index < soak.sessions:
            if time.monotonic_ns() >= launch_deadline_ns:
                stopped_by_duration = True
                return
            index = next_index
            next_index += 1
            user = ready[index % len(ready)]
            session_id = f"{run_id}-s{index:05d}"
            in_flight[index] = (session_id, user.setup.username, _ns_to_s(time.monotonic_ns() - run_start_ns))
            try:
                context = user.context(run_id, nonce=new_nonce(), session_id=session_id)
                url = ws_url(base_url, str(render_template(step.path, context)), ws_base_url)
                rec = await run_ws_session(
                    url=url,
                    step=step,
                    context=context,
                    auth=scenario.auth,
                    token=user.token,
                    session_id=session_id,
                    run_start_ns=run_start_ns,
                    user=user.setup.username,
                    connect_timeout_s=soak.connect_timeout_s,
                    close_timeout_s=soak.close_timeout_s,
                    step_timeout_s=step_timeout,
                    max_message_bytes=soak.max_message_bytes,
                    secrets=user.secrets,
                )
            finally:
                del in_flight[index]
            records.append(rec)
            if on_session is not None:
                maybe = on_session(rec)
                if asyncio.iscoroutine(maybe):
                    await maybe

    cancelled = 0
    if ready:
        tasks = [asyncio.create_task(worker()) for _ in range(min(soak.concurrency, soak.sessions))]
        try:
            done, pending = await asyncio.wait(tasks, timeout=hard_bound_s)
        except asyncio.CancelledError:
            # Stopped from outside (Ctrl-C): launch nothing more, cut the open sessions, return soon.
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=_CANCEL_WAIT_S)
            raise
        if pending:
            stranded = dict(in_flight)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for session_id, username, offset in stranded.values():
                records.append(
                    SessionRecord(session_id, offset, SessionOutcome.timeout("deadline"), user=username, step=step.name)
                )
            cancelled = len(stranded)
        for task in done:
            exc = task.exception()
            if exc is not None:
                raise exc
    records.sort(key=lambda r: r.session_id)
    return SoakResult(
        run_id=run_id,
        step=step.name,
        started_at=started_at,
        duration_s=_ns_to_s(time.monotonic_ns() - run_start_ns),
        sessions_planned=soak.sessions,
        concurrency=soak.concurrency,
        stopped_by_duration=stopped_by_duration,
        cancelled_at_deadline=cancelled,
        users=tuple(u.setup for u in users),
        records=tuple(records),
        aggregate=aggregate_sessions(records, scenario.confidence),
        tolerated_rate=scenario.tolerated_failure_rate,
        confidence=scenario.confidence,
    )


def run_soak_sync(
    base_url: str, scenario: ScenarioConfig, *, ws_base_url: str | None = None, run_id: str | None = None
) -> SoakResult:
    """``run_soak`` from sync code (notebooks included)."""
    return run_blocking(lambda: run_soak(base_url, scenario, ws_base_url=ws_base_url, run_id=run_id))
