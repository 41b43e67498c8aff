"""The scenario's steps on gevent (I/O, kept thin): what a Locust worker does for one user and one session.

The gevent twin of ``probes.http_steps`` / ``probes.ws_session`` (which are asyncio): an HTTP step
goes through Locust's own ``HttpSession`` (so Locust's stats count it too), a WebSocket session
through ``websockets.sync.client``, which cooperates with gevent once the process is monkey-patched
(its background reader thread becomes a greenlet). What an observation *means* stays in the pure
code that the asyncio engine uses too: an HTTP request built and its response judged, and a user's
setup sequence (``probes.http_steps``: ``build_request``, ``judge_response``, ``user_setup_plan``),
templates and captures (``probes.scenario``), the conversation machine (``probes.conversation``), the old
one-send form (``probes.sessions.EventExpectation``), outcomes (``probes.sessions``, ``probes.ws_errors``).

Only ever imported inside a Locust process (see ``scale.locust_user``): it imports gevent.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import gevent  # type: ignore[import-untyped]
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from ..probes.conversation import Conversation, Frame, Send, make_ids
from ..probes.http_steps import (
    MAX_HTTP_BODY_BYTES,
    HttpStepResult,
    PreparedUser,
    SetupRequest,
    advance_setup,
    build_request,
    judge_response,
    off_target,
    redact,
    user_setup_plan,
)
from ..probes.scenario import HttpRequestTemplate, HttpStep, ScenarioConfig, TemplateError, WsStep, render_template
from ..probes.sessions import (
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
from ..probes.teardown import StepRun, TeardownRecord, nothing_to_undo
from ..probes.ws_connect import connect_sync, open_error_outcome
from ..probes.ws_errors import received_close_code
from ..probes.ws_session import handshake_auth, outcome_on_peer_close, session_outcome, ws_url

__all__ = ["run_http_step", "prepare_user", "run_ws_session", "run_finally_http", "run_step"]


def _s_since(ns: int) -> float:
    return (time.monotonic_ns() - ns) / 1e9


def run_http_step(
    client: Any,
    step: HttpStep | HttpRequestTemplate,
    name: str,
    context: Mapping[str, Any],
    *,
    scenario: ScenarioConfig,
    token: str | None,
    secrets: Sequence[str],
    capture_bytes: int,
) -> tuple[HttpStepResult, dict[str, Any]]:
    """One templated request through Locust's ``HttpSession`` ``client``, one gevent deadline over all of it.

    The request is built and the response judged by the asyncio engine's own pure functions
    (``probes.http_steps.build_request``, ``judge_response``).
    """
    request = build_request(step, context, auth=scenario.auth, token=token, secrets=secrets)
    # Locust's HttpSession sends an http(s):// URL as it is and appends anything else to its base URL.
    elsewhere = off_target(request.target, getattr(client, "base_url", "") or "")
    if elsewhere is not None:  # nothing is sent: the request would carry the user's token to another host
        return request.failed(name, 0.0, request.not_sent(elsewhere, secrets)), {}
    started = time.monotonic_ns()
    try:
        with gevent.Timeout(step.timeout_s, TimeoutError):
            response = client.request(
                request.method,
                request.target,
                name=name,
                json=request.body,
                # identity: the cap counts bytes after decompression (as probes.http_steps.fetch_capped)
                headers={"Accept-Encoding": "identity", **request.headers},
                timeout=step.timeout_s,
                allow_redirects=False,
                stream=True,
            )
            try:
                content = response.raw.read(MAX_HTTP_BODY_BYTES + 1, decode_content=True) or b""
            finally:
                response.close()
    except TimeoutError:
        return request.failed(name, _s_since(started), "timeout"), {}
    except Exception as exc:  # noqa: BLE001 - a transport failure is an observation (requests' exception names)
        return request.failed(name, _s_since(started), type(exc).__name__), {}
    return judge_response(
        step,
        name,
        request,
        context,
        status=int(response.status_code),
        content=content,
        truncated=len(content) > MAX_HTTP_BODY_BYTES,
        duration_s=_s_since(started),
        secrets=secrets,
        capture_bytes=capture_bytes,
    )


def prepare_user(
    client: Any, scenario: ScenarioConfig, index: int, username: str, run_id: str, prerequisites: Sequence[HttpStep]
) -> PreparedUser:
    """Register and log in (or take the static token), then the prerequisite steps: the asyncio engine's
    sequence (``probes.http_steps.user_setup_plan``) on gevent. Cookies stay in Locust's ``client``."""
    plan = user_setup_plan(scenario, index, username, run_id, prerequisites)
    next_up = advance_setup(plan, None)
    while isinstance(next_up, SetupRequest):
        call = next_up
        observed: tuple[HttpStepResult, dict[str, Any]] | TemplateError
        try:
            observed = run_http_step(
                client,
                call.step,
                call.name,
                call.context,
                scenario=scenario,
                token=call.token,
                secrets=call.secrets,
                capture_bytes=call.capture_bytes,
            )
        except TemplateError as exc:
            observed = exc
        next_up = advance_setup(plan, observed)
    return next_up


def run_finally_http(
    client: Any,
    scenario: ScenarioConfig,
    user: PreparedUser,
    steps: Sequence[HttpStep | WsStep],
    context: Mapping[str, Any],
    *,
    unit: str,
    index: int,
) -> list[TeardownRecord]:
    """``finally`` steps (HTTP only on this engine), each even if an earlier failed, under the teardown timeout."""
    out: list[TeardownRecord] = []
    name = user.setup.username
    try:
        with gevent.Timeout(scenario.teardown_timeout_s, TimeoutError):
            for step in steps:
                skipped = nothing_to_undo(step, context, unit, name, index)
                if skipped is not None:
                    out.append(skipped)
                    continue
                assert isinstance(step, HttpStep)  # the launcher refuses ws finally steps for this engine
                try:
                    res, _ = run_http_step(
                        client,
                        step,
                        step.name,
                        context,
                        scenario=scenario,
                        token=user.token,
                        secrets=user.secrets,
                        capture_bytes=0,
                    )
                except TemplateError as exc:
                    out.append(TeardownRecord(unit, name, index, step.name, False, False, "", None, f"template: {exc}"))
                    continue
                out.append(
                    TeardownRecord(
                        unit, name, index, step.name, res.ok, False, "", res.status, res.error, res.duration_s
                    )
                )
    except TimeoutError:
        done = {r.step for r in out}
        out.extend(
            TeardownRecord(unit, name, index, s.name, False, False, "", None, "teardown_timeout")
            for s in steps
            if s.name not in done
        )
    return out


class _Seen:
    """Labels, offsets and (when asked) capped payloads of one session."""

    def __init__(self, capture_bytes: int, secrets: Sequence[str]) -> None:
        self.capture_bytes = capture_bytes
        self.secrets = secrets
        self.event_types: list[str] = []
        self.offsets: list[float] = []
        self.payloads: list[str] = []
        self.truncated = False
        self.done_at_s: float | None = None

    def keep_payload(self, raw: str | bytes) -> None:
        if self.capture_bytes > 0 and len(self.payloads) < MAX_EVENTS_RECORDED:
            text = raw if isinstance(raw, str) else f"<binary {len(raw)} bytes>"
            self.payloads.append(cap_keeping_markers(redact(text, self.secrets), self.capture_bytes))


def _event_type(raw: str | bytes, key: str) -> str | None:
    if isinstance(raw, bytes):
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply for the parser
        return None
    if not isinstance(data, dict) or key not in data:
        return None
    return cap_text(str(data[key]), 80)


def _legacy(
    ws: ClientConnection, step: WsStep, context: Mapping[str, Any], seen: _Seen, deadline: float
) -> tuple[SessionOutcome, float | None, float | None]:
    """The old form: one send, then event types in order (as ``probes.ws_session._legacy_exchange``)."""
    expectation = EventExpectation(
        [(e.type, e.timeout_s) for e in step.expect],
        step.final_event,
        step.event_timeout_s,
        other_events=step.other_events,
        fail_events=step.fail_events,
    )
    first_event_s: float | None = None
    ws.send(json.dumps(render_template(step.send, context)))
    sent_ns = time.monotonic_ns()
    while True:
        wait = min(expectation.current_timeout_s, deadline - time.monotonic())
        try:
            raw = ws.recv(timeout=max(wait, 0.0))
        except TimeoutError:
            return SessionOutcome.timeout(f"{step.name}:{expectation.waiting_for}"), first_event_s, None
        offset = _s_since(sent_ns)
        if first_event_s is None:
            first_event_s = offset
        event_type = _event_type(raw, step.event_type_key)
        if len(seen.event_types) < MAX_EVENTS_RECORDED:
            seen.event_types.append(event_type if event_type is not None else EventExpectation.UNTYPED)
            seen.offsets.append(offset)
            seen.keep_payload(raw)
        else:
            seen.truncated = True
        fed = expectation.feed(event_type)
        if fed.status is FeedStatus.DONE:
            return SessionOutcome.ok(), first_event_s, offset
        if fed.status is FeedStatus.UNEXPECTED:
            return SessionOutcome.unexpected_event(fed.expected or "", fed.got or ""), first_event_s, None


def _drive(ws: ClientConnection, conv: Conversation, seen: _Seen, deadline: float) -> None:
    """Run the conversation machine until it is done or the step's deadline passes (ConnectionClosed propagates)."""
    started = time.monotonic()
    actions = conv.start(started, subprotocol=ws.subprotocol)
    while True:
        for action in actions:
            if isinstance(action, Send):
                ws.send(action.frame.data)
        if conv.done:
            seen.done_at_s = time.monotonic() - started
            return
        now = time.monotonic()
        if now >= deadline:
            conv.tick(float("inf"))  # names what was awaited
            return
        until = min(deadline, conv.next_deadline if conv.next_deadline is not None else deadline)
        try:
            raw = ws.recv(timeout=max(until - now, 0.0))
        except TimeoutError:
            actions = conv.tick(time.monotonic())
            continue
        seen.keep_payload(raw)
        actions = conv.receive(Frame.of(raw), time.monotonic())


def run_ws_session(
    *,
    base_url: str,
    ws_base_url: str | None,
    step: WsStep,
    context: Mapping[str, Any],
    scenario: ScenarioConfig,
    user: PreparedUser,
    session_id: str,
    run_id: str,
    run_start_ns: int,
    captured_into: dict[str, Any] | None = None,
    capture_bytes: int = 0,
    golden: bool = False,
) -> SessionRecord:
    """One WebSocket session on gevent; always returns a record (never raises for a service failure).

    ``capture_bytes`` > 0 keeps each received message (capped, secrets redacted) in the record's payloads.
    ``golden``: a golden-path step (bounded by its own timeout_s, deflate as scenario.permessage_deflate,
    as ``probes.teardown.run_step``); else a soak session (scenario.soak's step timeout and deflate).
    """
    soak = scenario.soak
    started_ns = time.monotonic_ns()
    seen = _Seen(capture_bytes, user.secrets)
    deflate = scenario.permessage_deflate if golden else soak.permessage_deflate

    def record(outcome: SessionOutcome, **kw: Any) -> SessionRecord:
        return SessionRecord(
            session_id=session_id,
            start_offset_s=(started_ns - run_start_ns) / 1e9,
            outcome=outcome,
            user=user.setup.username,
            step=step.name,
            **kw,
        )

    try:
        url = ws_url(base_url, str(render_template(step.path, context)), ws_base_url)
        url, headers, subprotocols = handshake_auth(url, step, context, scenario.auth, user.token)
        conv = (
            None
            if step.is_legacy
            else Conversation(
                step, context, ids=make_ids(step, f"{run_id}/{session_id}"), seed=f"{run_id}/{session_id}"
            )
        )
    except ValueError as exc:  # TemplateError
        return record(SessionOutcome(OutcomeKind.TEMPLATE_ERROR, detail=cap_text(str(exc), 120)))
    try:
        # Redirects are followed on the target's origin only (probes.ws_connect): the token goes nowhere else.
        opened = connect_sync(
            url,
            additional_headers=headers or None,
            subprotocols=subprotocols or None,
            open_timeout=soak.connect_timeout_s,
            close_timeout=soak.close_timeout_s,
            max_size=soak.max_message_bytes,
            compression="deflate" if deflate else None,
            proxy=None,
        )
    except Exception as exc:  # noqa: BLE001 - every connect failure is an observation
        return record(open_error_outcome(exc))
    with opened as ws:
        connect_s = _s_since(started_ns)
        timeout_s = step.timeout_s if golden or soak.step_timeout_s is None else soak.step_timeout_s
        deadline = time.monotonic() + timeout_s
        close_code: int | None = None
        close_reason = ""
        first_event_s: float | None = None
        total_s: float | None = None
        try:
            if conv is None:
                outcome, first_event_s, total_s = _legacy(ws, step, context, seen, deadline)
            else:
                _drive(ws, conv, seen, deadline)
                assert conv.outcome is not None
                outcome = session_outcome(conv.outcome)
        except ConnectionClosed as exc:
            outcome, closed_at_s = outcome_on_peer_close(conv, exc)
            if closed_at_s is not None:
                seen.done_at_s = closed_at_s
            close_code = received_close_code(exc)
            close_reason = cap_text(exc.rcvd.reason, MAX_REASON_CHARS) if exc.rcvd is not None else ""
        except BaseException:
            ws.socket.close()  # killed (the run stops) or a bug: no close handshake
            raise
        finally:
            if captured_into is not None and conv is not None:
                captured_into.update(conv.captured)
        with contextlib.suppress(Exception):  # closing a broken connection may fail; what came back is read below
            ws.close(conv.step.close_code if conv is not None else 1000)
        close_rcvd = ws.protocol.close_rcvd
        close_timed_out = close_rcvd is None and isinstance(ws.connection_exc, TimeoutError)
        if close_code is None and close_rcvd is not None:
            close_code, close_reason = close_rcvd.code, cap_text(close_rcvd.reason, MAX_REASON_CHARS)
        outcome = outcome_after_close(outcome, close_rcvd.code if close_rcvd else None, close_timed_out)
        if conv is not None:
            for rec in conv.records[:MAX_EVENTS_RECORDED]:
                seen.event_types.append(rec.label)
                seen.offsets.append(rec.at_s)
            seen.truncated = len(conv.records) > MAX_EVENTS_RECORDED
            first_event_s = conv.records[0].at_s if conv.records else None
            total_s = seen.done_at_s if conv.outcome is not None and conv.outcome.ok else None
        return record(
            outcome,
            connect_s=connect_s,
            first_event_s=first_event_s,
            total_s=total_s,
            event_types=tuple(seen.event_types),
            event_offsets_s=tuple(seen.offsets),
            events_truncated=seen.truncated,
            close_code=close_code,
            close_reason=close_reason,
            frame_counts=conv.counts() if conv is not None else {},
            payloads=tuple(seen.payloads),
        )


def run_step(
    client: Any,
    step: HttpStep | WsStep,
    context: Mapping[str, Any],
    *,
    base_url: str,
    ws_base_url: str | None,
    scenario: ScenarioConfig,
    user: PreparedUser,
    run_id: str,
    run_start_ns: int,
    capture_bytes: int = 0,
) -> StepRun:
    """One HTTP or WebSocket step of a golden run on gevent: ``probes.teardown.run_step``'s twin."""
    started = time.monotonic_ns()
    try:
        if isinstance(step, HttpStep):
            result, captured = run_http_step(
                client,
                step,
                step.name,
                context,
                scenario=scenario,
                token=user.token,
                secrets=user.secrets,
                capture_bytes=capture_bytes,
            )
            return StepRun(step.name, result.ok, result.error, captured, http=result, duration_s=_s_since(started))
        captured = {}
        record = run_ws_session(
            base_url=base_url,
            ws_base_url=ws_base_url,
            step=step,
            context=context,
            scenario=scenario,
            user=user,
            session_id=str(context.get("session_id", "")),
            run_id=run_id,
            run_start_ns=run_start_ns,
            captured_into=captured,
            capture_bytes=capture_bytes,
            golden=True,
        )
        ok = record.outcome.is_ok
        why = "" if ok else record.outcome.label
        return StepRun(step.name, ok, why, captured, ws=record, duration_s=_s_since(started))
    except TemplateError as exc:
        return StepRun(step.name, False, f"template: {exc}", duration_s=_s_since(started))
