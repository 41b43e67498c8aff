"""The pure part of the conversation soak (issue 19): request/reply bookkeeping, compact records, summary.

No sockets, no event loop, no clock: the shell (``probes.conversation_soak``) passes ``now`` and every
received text frame, and sends what a ``SessionLedger`` returns. The per-message path is lean on
purpose (a soak runs tens of thousands of messages per second on one core): the request is one
``%``-format of a template compiled once, the reply is found by one dict lookup on its correlation
value, the checks are conditions compiled once, and the record is four array appends (21 bytes per
message), not an object per message.

Message statuses (``MessageStatus``): ``ok``; ``content_mismatch`` (the reply came and a ``check``
failed); ``timeout`` (no reply within ``reply_timeout_s``); ``failed_by_message`` (a ``fail_on``
message ended the session while the request waited); ``connection_lost`` (the connection ended while
it waited); ``stopped`` (our own duration cap or Ctrl-C ended it: not the service's failure, left out
of the failure rate).
"""

from __future__ import annotations

import enum
import json
import math
import uuid
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.models import Claim, EvidenceRef, Status
from ..stats import clopper_pearson, judge_failure_rate, upper_bound
from .conditions import ABSENT, Condition, holds, lookup, lookup_all, parse_path
from .conversation_spec import ConversationSoakConfig, compile_conditions
from .templates import TemplateError, render_template, template_placeholders

__all__ = [
    "MessageStatus",
    "MessageFailure",
    "SoakPlan",
    "MessageLog",
    "SessionLedger",
    "SessionResult",
    "ConversationSoakResult",
    "ConversationSoakSummary",
    "summarize_conversation_soak",
    "conversation_soak_claims",
]

MAX_REASONS = 50  # distinct failure labels kept; the rest count under "other"
MAX_EXAMPLES = 20  # failures kept with their detail (expected / got)
MAX_LATE_KEYS = 1024  # per session: timed-out ids remembered so a late reply is named as late
DETAIL_CAP = 160


class MessageStatus(enum.IntEnum):
    OK = 0
    CONTENT_MISMATCH = 1
    TIMEOUT = 2
    FAILED_BY_MESSAGE = 3
    CONNECTION_LOST = 4
    STOPPED = 5

    @property
    def label(self) -> str:
        return self.name.lower()


def _cap(value: Any, limit: int = DETAIL_CAP) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


@dataclass(frozen=True)
class MessageFailure:
    """One failed message with what was wrong (kept for the first few failures only)."""

    session: int
    seq: int
    status: str
    reason: str
    expected: str | None = None
    got: str | None = None


class _Format:
    """A JSON template compiled to one ``%`` format: ``{msg_id}``, ``{seq}``, ``{session}`` filled per message.

    Context placeholders are rendered once. A string that is exactly ``{seq}`` or ``{session}`` keeps
    its integer type (as ``render_template`` does); ``msg_id`` is made of digits and ``-`` only, so it
    needs no JSON escaping.
    """

    def __init__(self, template: Any, context: Mapping[str, Any]) -> None:
        token = uuid.uuid4().hex
        marks = {name: f"@{token}{name}@" for name in ("msg_id", "seq", "session")}
        dumped = json.dumps(render_template(template, {**context, **marks}), separators=(",", ":"))
        fmt = dumped.replace("%", "%%")
        order: list[tuple[int, str]] = []
        for name, mark in marks.items():
            if name != "msg_id":  # a whole-string integer placeholder loses its quotes
                fmt = fmt.replace(f'"{mark}"', f"\0{name}\0")
            fmt = fmt.replace(mark, f"\0{name}\0")
        pieces = fmt.split("\0")
        for index in range(1, len(pieces), 2):
            order.append((index, pieces[index]))
            pieces[index] = "%s"
        self.fmt = "".join(pieces)
        self.names = tuple(name for _, name in order)

    def render(self, msg_id: str, seq: int, session: int) -> str:
        values = {"msg_id": msg_id, "seq": seq, "session": session}
        return self.fmt % tuple(values[name] for name in self.names)


@dataclass(frozen=True)
class _Check:
    path: tuple[str, ...]
    raw_path: str
    cond: Condition
    arg: Any  # rendered once when it has no per-message placeholder
    templated: bool
    star: bool


class SoakPlan:
    """A ``ConversationSoakConfig`` compiled with the caller's context: what every session does."""

    def __init__(self, config: ConversationSoakConfig, context: Mapping[str, Any] | None = None) -> None:
        self.config = config
        self.context: dict[str, Any] = dict(context or {})
        missing = sorted(config.placeholders() - set(self.context))
        if missing:
            raise TemplateError(f"template placeholder {{{missing[0]}}} has no value")
        self.send = _Format(config.send, self.context)
        ((raw_path, template),) = config.correlate.items()
        self.correlate_path = parse_path(raw_path)
        self.correlate_raw = raw_path
        self._correlate_template = template
        self._correlate_name = template[1:-1] if template in ("{msg_id}", "{seq}") else None
        self.checks = tuple(
            _Check(
                path,
                raw,
                cond,
                render_template(cond.arg, self.context) if not self._per_message(cond.arg) else cond.arg,
                self._per_message(cond.arg),
                "*" in path,
            )
            for (path, cond), raw in zip(compile_conditions(config.check, allow_star=True), config.check, strict=True)
        )
        # Constant string/integer equalities on plain paths (most checks of a soak) are tried inline first.
        self._quick = tuple(
            (c.path, c.arg)
            for c in self.checks
            if c.cond.op == "equals" and not c.templated and not c.star and c.path and c.arg.__class__ in (str, int)
        )
        self._rest = tuple(c for c in self.checks if (c.path, c.arg) not in self._quick)
        self.fail_on = tuple(
            (
                str(rule.name or "fail_on"),
                compile_conditions(render_template(rule.match, self.context), allow_star=False),
            )
            for rule in config.fail_on
        )
        self.headers = {str(k): str(v) for k, v in render_template(config.headers, self.context).items()}
        self._init_send = config.init_send
        self.init_expect = (
            compile_conditions(render_template(config.init_expect, self.context), allow_star=False)
            if config.init_expect is not None
            else None
        )

    def init_messages(self, session: int) -> list[str]:
        """The texts sent once after the handshake, before the first request."""
        context = {**self.context, "session": session}
        return [json.dumps(render_template(t, context), separators=(",", ":")) for t in self._init_send]

    @staticmethod
    def _per_message(arg: Any) -> bool:
        return bool(template_placeholders(arg) & {"msg_id", "seq", "session"})

    def correlation_key(self, msg_id: str, seq: int, session: int) -> Any:
        if self._correlate_name == "msg_id":
            return msg_id
        if self._correlate_name == "seq":
            return seq
        return render_template(
            self._correlate_template, {**self.context, "msg_id": msg_id, "seq": seq, "session": session}
        )

    def check_reply(self, message: Any, msg_id: str, seq: int, session: int) -> tuple[str, Any, Any] | None:
        """The first failing check as (path, expected, got), or None when the reply is right."""
        for path, arg in self._quick:
            value = walk(message, path)
            if value.__class__ is not arg.__class__ or value != arg:  # 1.0 for 1 is decided below
                return self._first_failure(self.checks, message, msg_id, seq, session)
        return self._first_failure(self._rest, message, msg_id, seq, session) if self._rest else None

    def _first_failure(
        self, checks: Sequence[_Check], message: Any, msg_id: str, seq: int, session: int
    ) -> tuple[str, Any, Any] | None:
        local: dict[str, Any] | None = None
        for check in checks:
            arg = check.arg
            if check.templated:
                if local is None:
                    local = {**self.context, "msg_id": msg_id, "seq": seq, "session": session}
                arg = render_template(arg, local)
            cond = check.cond
            if check.star:
                values = lookup_all(message, check.path)
                if cond.op == "exists" and arg is True:
                    if all(v is ABSENT for v in values):
                        return check.raw_path, {"exists": True}, "absent"
                    continue
            else:
                values = [lookup(message, check.path)]
            for value in values:
                if not holds(cond, value, arg):
                    return (
                        check.raw_path,
                        arg if cond.op == "equals" else {cond.op: arg},
                        ("absent" if value is ABSENT else value),
                    )
        return None

    def failing_rule(self, message: Any) -> str | None:
        for name, conditions in self.fail_on:
            if all(holds(cond, lookup(message, path), cond.arg) for path, cond in conditions):
                return name
        return None


def walk(message: Any, path: tuple[str, ...]) -> Any:
    """``lookup`` with a fast path for objects all the way down (the common case, per message)."""
    value = message
    for segment in path:
        if value.__class__ is not dict:
            return lookup(message, path)
        value = value.get(segment, ABSENT)
    return value


class MessageLog:
    """Every resolved message of a soak, in arrays: send offset, latency (NaN: no reply), status, session."""

    def __init__(self) -> None:
        self.sent_at = array("d")
        self.latency = array("d")
        self.status = array("B")
        self.session = array("I")
        self.reasons: dict[str, int] = {}
        self.examples: list[MessageFailure] = []

    def __len__(self) -> int:
        return len(self.status)

    def failure(
        self,
        session: int,
        seq: int,
        sent_at: float,
        latency: float,
        status: MessageStatus,
        reason: str,
        expected: Any = None,
        got: Any = None,
    ) -> None:
        self.sent_at.append(sent_at)
        self.latency.append(latency)
        self.status.append(status)
        self.session.append(session)
        if status is MessageStatus.STOPPED:
            return
        label = reason if reason in self.reasons or len(self.reasons) < MAX_REASONS else "other"
        self.reasons[label] = self.reasons.get(label, 0) + 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(
                MessageFailure(
                    session,
                    seq,
                    status.label,
                    reason,
                    None if expected is None else _cap(expected),
                    None if got is None else _cap(got),
                )
            )


class SessionLedger:
    """One session's requests awaiting replies. Not thread-safe; one per session.

    ``origin`` is the soak's start on the caller's clock: send offsets in the log count from it.
    """

    def __init__(self, plan: SoakPlan, index: int, log: MessageLog, origin: float) -> None:
        self.plan = plan
        self.index = index
        self.log = log
        self.origin = origin
        self.pending: dict[Any, tuple[float, int, str, Any]] = {}  # key -> (sent at, seq, msg_id, key); in send order
        self.sent = 0
        self.ok = 0
        self.failed = 0
        self.unmatched: dict[str, int] = {}
        self.outcome: str | None = None  # set when the session must end because of a message
        self.started: float | None = None
        self.ready = plan.init_expect is None  # false until the init_expect message came
        self.opened_at: float | None = None
        self._late: set[Any] = set()
        self._limit = plan.config.messages_per_session
        self._window = plan.config.in_flight
        rate = plan.config.rate_per_session
        self._interval = 1.0 / rate if rate else 0.0

    # -- sending -----------------------------------------------------------------------------------
    @property
    def finished_sending(self) -> bool:
        return self.sent >= self._limit or self.outcome is not None

    @property
    def done(self) -> bool:
        return self.outcome is not None or (self.sent >= self._limit and not self.pending)

    def stop_sending(self) -> None:
        """Send nothing more (the soak's duration is over); pending requests may still be answered."""
        self._limit = min(self._limit, self.sent)

    def open(self, now: float) -> list[str]:
        """The connection is open: what to send first (``init_send``)."""
        self.opened_at = now
        return self.plan.init_messages(self.index)

    def init_overdue(self, now: float) -> bool:
        """Ends the session when ``init_expect`` did not come in time; True when it did so."""
        if self.ready or self.opened_at is None or self.outcome is not None:
            return False
        if now - self.opened_at < self.plan.config.init_timeout_s:
            return False
        self.end("init_timeout", MessageStatus.CONNECTION_LOST)
        return True

    def due_at(self) -> float | None:
        """When the next request is due (None: nothing more to send, or the window is full)."""
        if not self.ready or self.finished_sending or len(self.pending) >= self._window:
            return None
        if self.started is None or not self._interval:
            return -math.inf
        return self.started + self.sent * self._interval

    def request(self, now: float) -> str:
        """The next request's text; it is pending from ``now``."""
        if self.started is None:
            self.started = now
        self.sent += 1
        seq = self.sent
        msg_id = f"{self.index}-{seq}"
        key = self.plan.correlation_key(msg_id, seq, self.index)
        self.pending[key] = (now, seq, msg_id, key)
        return self.plan.send.render(msg_id, seq, self.index)

    # -- receiving ---------------------------------------------------------------------------------
    def _count(self, kind: str) -> None:
        self.unmatched[kind] = self.unmatched.get(kind, 0) + 1
        if self.plan.config.unmatched == "fail" and self.outcome is None:
            self.end(f"unmatched_message({kind})", MessageStatus.CONNECTION_LOST)

    def receive_text(self, data: str | bytes | bytearray | memoryview, now: float) -> None:
        """One received text frame: resolves the request it answers, or counts it as unmatched."""
        try:
            message = json.loads(data if isinstance(data, str) else bytes(data).decode())  # str: no detect_encoding
        except ValueError:
            self._count("not_json")
            return
        plan = self.plan
        if plan.fail_on:
            rule = plan.failing_rule(message)
            if rule is not None:
                self.end(f"failed_by_message({rule})", MessageStatus.FAILED_BY_MESSAGE)
                return
        if not self.ready:
            assert plan.init_expect is not None
            if all(holds(cond, lookup(message, path), cond.arg) for path, cond in plan.init_expect):
                self.ready = True
            else:
                self._count("before_init")
            return
        key = walk(message, plan.correlate_path)
        # A correlation value is a string or a number (msg_id, seq): true would equal 1 in a dict, not in JSON.
        hashable = key.__hash__ is not None and key.__class__ is not bool
        entry = self.pending.pop(key, None) if hashable else None
        if entry is None:
            self._count("late_reply" if hashable and key in self._late else "unsolicited")
            return
        sent_at, seq, msg_id, _ = entry
        failure = plan.check_reply(message, msg_id, seq, self.index) if plan.checks else None
        log = self.log
        if failure is None:
            self.ok += 1
            log.sent_at.append(sent_at - self.origin)
            log.latency.append(now - sent_at)
            log.status.append(0)
            log.session.append(self.index)
            return
        self.failed += 1
        path, expected, got = failure
        log.failure(
            self.index,
            seq,
            sent_at - self.origin,
            now - sent_at,
            MessageStatus.CONTENT_MISMATCH,
            f"content_mismatch({path})",
            expected,
            got,
        )

    def receive_other(self, kind: str) -> None:
        """A frame that is not one text message (``binary``)."""
        self._count(kind)

    # -- time and ends -----------------------------------------------------------------------------
    def oldest_pending(self) -> float | None:
        for sent_at, _, _, _ in self.pending.values():
            return sent_at
        return None

    def expire(self, now: float) -> int:
        """Fail the requests older than the reply timeout; how many did."""
        limit = now - self.plan.config.reply_timeout_s
        expired = [key for key, (sent_at, _, _, _) in self.pending.items() if sent_at <= limit]
        for key in expired:
            sent_at, seq, _, _ = self.pending.pop(key)
            self.failed += 1
            self.log.failure(self.index, seq, sent_at - self.origin, math.nan, MessageStatus.TIMEOUT, "timeout")
            if len(self._late) < MAX_LATE_KEYS:
                self._late.add(key)
        return len(expired)

    def end(self, reason: str, status: MessageStatus) -> None:
        """The session ends: every pending request resolves with ``status`` (``stopped`` is not a failure)."""
        if self.outcome is None:
            self.outcome = reason
        for sent_at, seq, _, _ in self.pending.values():
            if status is not MessageStatus.STOPPED:
                self.failed += 1
            self.log.failure(self.index, seq, sent_at - self.origin, math.nan, status, reason)
        self.pending.clear()


# -- results ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionResult:
    """How one session went: its end (``ok`` or why not) and its message counts."""

    index: int
    outcome: str
    sent: int
    ok: int
    failed: int
    unmatched: Mapping[str, int] = field(default_factory=dict)
    connect_s: float | None = None
    close_code: int | None = None

    @property
    def succeeded(self) -> bool:
        return self.outcome == "ok"


FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class ConversationSoakResult:
    """Everything a conversation soak observed. The arrays hold one entry per sent message (read-only)."""

    started_at: str
    duration_s: float
    stopped_by: str  # "messages" (all sent and resolved), "duration" or "cancelled"
    sessions_planned: int
    concurrency: int
    messages_planned: int
    sent_at_s: FloatArray
    latency_s: FloatArray  # NaN where no reply came
    status: npt.NDArray[np.uint8]
    session: npt.NDArray[np.uint32]
    failure_reasons: Mapping[str, int]
    failure_examples: tuple[MessageFailure, ...]
    sessions: tuple[SessionResult, ...]
    max_send_lag_s: float = 0.0  # with rate_per_session: the longest a request was sent after it was due

    @classmethod
    def from_log(cls, log: MessageLog, sessions: Sequence[SessionResult], **fields: Any) -> ConversationSoakResult:
        def frozen(values: array[Any], dtype: Any) -> Any:
            out = np.frombuffer(values, dtype=dtype).copy() if len(values) else np.empty(0, dtype=dtype)
            out.flags.writeable = False
            return out

        order = sorted(sessions, key=lambda s: s.index)
        return cls(
            sent_at_s=frozen(log.sent_at, np.float64),
            latency_s=frozen(log.latency, np.float64),
            status=frozen(log.status, np.uint8),
            session=frozen(log.session, np.uint32),
            failure_reasons=dict(sorted(log.reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
            failure_examples=tuple(log.examples),
            sessions=tuple(order),
            **fields,
        )

    def count(self, status: MessageStatus) -> int:
        return int(np.count_nonzero(self.status == status))

    def to_dict(self, max_samples: int = 10_000, max_sessions: int = 1000) -> dict[str, Any]:
        """JSON-ready evidence: counts, reasons, the first sessions, and at most ``max_samples`` latencies of
        correct replies (evenly spaced in send order, so a long soak's evidence stays small)."""
        ok_latency = self.latency_s[self.status == MessageStatus.OK]
        if ok_latency.size > max_samples:
            ok_latency = ok_latency[np.linspace(0, ok_latency.size - 1, max_samples).astype(np.int64)]
        return {
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "stopped_by": self.stopped_by,
            "sessions_planned": self.sessions_planned,
            "concurrency": self.concurrency,
            "messages_planned": self.messages_planned,
            "messages_by_status": {s.label: self.count(s) for s in MessageStatus},
            "failure_reasons": dict(self.failure_reasons),
            "failure_examples": [vars(e) for e in self.failure_examples],
            "sessions": [vars(s) | {"unmatched": dict(s.unmatched)} for s in self.sessions[:max_sessions]],
            "sessions_truncated": len(self.sessions) > max_sessions,
            "latency_ms_sample": [round(float(v) * 1000.0, 4) for v in ok_latency],
            "max_send_lag_s": self.max_send_lag_s,
        }


@dataclass(frozen=True)
class ConversationSoakSummary:
    """What a report says about a conversation soak: rates with exact intervals, latency percentiles."""

    messages_sent: int
    messages_ok: int
    messages_failed: int
    messages_stopped: int
    failure_rate: float | None  # failed / (ok + failed); None without a resolved message
    failure_interval: tuple[float, float]  # two-sided exact (Clopper-Pearson)
    failure_upper_bound: float  # one-sided exact
    confidence: float
    latency_ms: Mapping[str, float]  # p50, p90, p99, p99.9, max, mean of the ok replies
    replies_per_s: float
    failures_by_reason: Mapping[str, int]
    sessions: int
    sessions_ok: int
    sessions_by_outcome: Mapping[str, int]
    unmatched: Mapping[str, int]

    @property
    def text(self) -> str:
        rate = "n/a" if self.failure_rate is None else f"{100 * self.failure_rate:.3g}%"
        lo, hi = self.failure_interval
        p = self.latency_ms
        lat = f"p50 {p['p50']:.3g} ms, p99 {p['p99']:.3g} ms" if "p50" in p else "no replies"
        return (
            f"{self.messages_ok:,} of {self.messages_sent:,} messages answered correctly; failure rate {rate} "
            f"({100 * self.confidence:g}% interval {100 * lo:.3g}-{100 * hi:.3g}%); {lat}; "
            f"{self.sessions_ok} of {self.sessions} sessions ok"
        )


def summarize_conversation_soak(result: ConversationSoakResult, confidence: float = 0.95) -> ConversationSoakSummary:
    """Pure: counts, the failure rate with its exact interval, and latency percentiles of correct replies."""
    ok_mask = result.status == MessageStatus.OK
    ok = int(np.count_nonzero(ok_mask))
    stopped = result.count(MessageStatus.STOPPED)
    sent = int(result.status.size)
    failed = sent - ok - stopped
    resolved = ok + failed
    latencies = result.latency_s[ok_mask] * 1000.0
    latency: dict[str, float] = {}
    if latencies.size:
        qs = np.percentile(latencies, [50, 90, 99, 99.9])
        latency = {
            "p50": float(qs[0]),
            "p90": float(qs[1]),
            "p99": float(qs[2]),
            "p99.9": float(qs[3]),
            "max": float(latencies.max()),
            "mean": float(latencies.mean()),
        }
    outcomes: dict[str, int] = {}
    unmatched: dict[str, int] = {}
    for session in result.sessions:
        outcomes[session.outcome] = outcomes.get(session.outcome, 0) + 1
        for kind, n in session.unmatched.items():
            unmatched[kind] = unmatched.get(kind, 0) + n
    return ConversationSoakSummary(
        messages_sent=sent,
        messages_ok=ok,
        messages_failed=failed,
        messages_stopped=stopped,
        failure_rate=failed / resolved if resolved else None,
        failure_interval=clopper_pearson(failed, resolved, confidence),
        failure_upper_bound=upper_bound(failed, resolved, confidence),
        confidence=confidence,
        latency_ms=latency,
        replies_per_s=ok / result.duration_s if result.duration_s > 0 else 0.0,
        failures_by_reason=dict(result.failure_reasons),
        sessions=len(result.sessions),
        sessions_ok=sum(1 for s in result.sessions if s.succeeded),
        sessions_by_outcome=dict(sorted(outcomes.items(), key=lambda kv: (-kv[1], kv[0]))),
        unmatched=unmatched,
    )


def conversation_soak_claims(
    summary: ConversationSoakSummary,
    *,
    tolerated_rate: float,
    section: str = "websocket",
    evidence: Sequence[EvidenceRef] = (),
) -> tuple[Claim, Claim]:
    """Two claims: requests are answered correctly, and sessions run to their end (each a failure-rate rule).

    Messages ``stopped`` by our own cap are not counted; a session stopped by the duration cap is not a
    failure either. No resolved message (or no session) is INCONCLUSIVE, never PASS.
    """
    sessions_n = summary.sessions - sum(n for o, n in summary.sessions_by_outcome.items() if o.startswith("stopped"))
    sessions_failed = sessions_n - summary.sessions_ok
    resolved = summary.messages_ok + summary.messages_failed
    claims = []
    for claim_id, statement, k, n, what, details in (
        (
            f"{section}.conversation_messages_correct",
            "Requests of the conversation soak get their correlated reply with the checked content, in time",
            summary.messages_failed,
            resolved,
            "messages failed",
            {"failures_by_reason": dict(summary.failures_by_reason), "latency_ms": dict(summary.latency_ms)},
        ),
        (
            f"{section}.conversation_sessions_complete",
            "Conversation soak sessions connect, run to their end and close cleanly",
            sessions_failed,
            sessions_n,
            "sessions failed",
            {"sessions_by_outcome": dict(summary.sessions_by_outcome)},
        ),
    ):
        verdict, est, explanation = judge_failure_rate(k, n, tolerated_rate, summary.confidence)
        claims.append(
            Claim(
                id=claim_id,
                section=section,
                statement=statement,
                status=verdict.status if n > 0 else Status.INCONCLUSIVE,
                statistic=f"{k:,} of {n:,} {what}" if n else f"no {what.split()[0]} to count",
                evidence=tuple(evidence),
                details={
                    **details,
                    "explanation": explanation,
                    "estimate": est.serialize(),
                    "tolerated_rate": tolerated_rate,
                },
                figure=est.figure(what, tolerance=tolerated_rate) if n > 0 else None,
            )
        )
    return claims[0], claims[1]
