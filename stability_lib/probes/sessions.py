"""WebSocket session outcomes, records, aggregation and claims (pure: no I/O).

The probe (``probes.engine``) observes; this module decides what an observation means:
which single outcome a session had, how outcomes add up over a soak, and whether the
counts support a claim. Every decision here is testable with synthetic inputs.

Close codes as websockets reports them: ``ConnectionClosed.rcvd`` is None when no
close frame arrived (the TCP connection dropped), which is 1006 by RFC 6455 §7.1.5.
uvicorn turns an exception after ``accept()`` into exactly that drop, so 1006 counts
as a crash signal alongside 1011.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.models import Claim, EvidenceRef, Status
from .event_expectation import EventExpectation, FeedResult, FeedStatus  # re-exported: their old home

if TYPE_CHECKING:
    from ..stats.rates import RateEstimate

# stats.rates (scipy, numpy: ~80 MB of a process) is imported when sessions are counted, not when the
# probe starts: a process holding 10,000 sessions should not carry it while they are open (issue 19).

__all__ = [
    "OutcomeKind",
    "SessionOutcome",
    "DownSpan",
    "down_since",
    "outcome_for_close",
    "outcome_after_close",
    "FeedStatus",
    "FeedResult",
    "EventExpectation",
    "SessionRecord",
    "SessionAggregate",
    "aggregate_sessions",
    "session_claims",
    "summarize_samples",
    "cap_text",
    "cap_keeping_markers",
    "NONCE_PATTERN",
    "MAX_REASON_CHARS",
    "MAX_EVENTS_RECORDED",
]

MAX_REASON_CHARS = 200  # a close reason is at most 123 bytes by protocol; untrusted anyway
MAX_EVENTS_RECORDED = 256  # a server spamming events must not blow up the evidence
CRASH_CODES = (1011, 1006)


def cap_text(text: str, limit: int) -> str:
    """Keep at most ``limit`` characters of untrusted text, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more chars]"


# The markers the runners put into user content (``nonce-<uuid4 hex>``).
NONCE_PATTERN = re.compile(r"nonce-[0-9a-f]{32}")


def cap_keeping_markers(text: str, limit: int, pattern: re.Pattern[str] = NONCE_PATTERN) -> str:
    """Cap untrusted text, but list the nonce markers that fell past the cap.

    The isolation check reads capped text; a marker beyond the cap must not vanish.
    """
    capped = cap_text(text, limit)
    if capped == text:
        return capped
    # Any marker that does not end inside the kept part, including one cut in half by the cap.
    lost = list(dict.fromkeys(m.group(0) for m in pattern.finditer(text) if m.end() > limit))
    return f"{capped} [markers past the cap: {' '.join(lost)}]" if lost else capped


class OutcomeKind(str, enum.Enum):
    """The one thing that happened to a session."""

    OK = "ok"
    CLOSED_1011 = "closed_1011"
    ABNORMAL_1006 = "abnormal_1006"
    CLOSED_OTHER = "closed_other"
    TIMEOUT = "timeout"
    HANDSHAKE_REJECTED = "handshake_rejected"
    CONNECT_ERROR = "connect_error"
    UNEXPECTED_EVENT = "unexpected_event"
    # The exchange ended, but the server never answered our close frame within the close timeout.
    CLOSE_TIMEOUT = "close_timeout"
    # Conversations (issue 13): the reply came without its data, a message said the session failed,
    # the server chose another subprotocol, a frame could not be classified, a send could not be rendered.
    CONTENT_MISMATCH = "content_mismatch"
    FAILED_BY_MESSAGE = "failed_by_message"
    SUBPROTOCOL_MISMATCH = "subprotocol_mismatch"
    BAD_FRAME = "bad_frame"
    TEMPLATE_ERROR = "template_error"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class SessionOutcome:
    """An outcome kind and the detail that goes with it (close code, step, status...)."""

    kind: OutcomeKind
    close_code: int | None = None
    step: str | None = None
    http_status: int | None = None
    error_kind: str | None = None
    expected: str | None = None
    got: str | None = None
    detail: str | None = None  # conversation kinds: what goes in the label's parentheses
    path: str | None = None  # content_mismatch: the dotted path whose check failed

    @classmethod
    def ok(cls) -> SessionOutcome:
        return _OK  # frozen: every ok session shares one

    @classmethod
    def timeout(cls, step: str) -> SessionOutcome:
        return cls(OutcomeKind.TIMEOUT, step=step)

    @classmethod
    def handshake_rejected(cls, status: int) -> SessionOutcome:
        return cls(OutcomeKind.HANDSHAKE_REJECTED, http_status=status)

    @classmethod
    def connect_error(cls, kind: str) -> SessionOutcome:
        return cls(OutcomeKind.CONNECT_ERROR, error_kind=kind)

    @classmethod
    def unexpected_event(cls, expected: str, got: str) -> SessionOutcome:
        return cls(OutcomeKind.UNEXPECTED_EVENT, expected=expected, got=cap_text(got, 80))

    @classmethod
    def close_timeout(cls) -> SessionOutcome:
        return cls(OutcomeKind.CLOSE_TIMEOUT)

    @property
    def is_ok(self) -> bool:
        return self.kind is OutcomeKind.OK

    @property
    def is_crash(self) -> bool:
        """Closed with 1011 or dropped without a close frame (1006)."""
        return self.kind in (OutcomeKind.CLOSED_1011, OutcomeKind.ABNORMAL_1006)

    @property
    def connected(self) -> bool:
        """The opening handshake succeeded, so a crash could have been observed."""
        return self.kind not in (OutcomeKind.HANDSHAKE_REJECTED, OutcomeKind.CONNECT_ERROR)

    @property
    def label(self) -> str:
        """E.g. ``ok``, ``closed_other(1000)``, ``timeout(chat:final_response)``."""
        k = self.kind
        if k is OutcomeKind.CLOSED_OTHER:
            return f"closed_other({self.close_code})"
        if k is OutcomeKind.TIMEOUT:
            return f"timeout({self.step})"
        if k is OutcomeKind.HANDSHAKE_REJECTED:
            return f"handshake_rejected({self.http_status})"
        if k is OutcomeKind.CONNECT_ERROR:
            return f"connect_error({self.error_kind})"
        if k is OutcomeKind.UNEXPECTED_EVENT:
            return f"unexpected_event(expected={self.expected}, got={self.got})"
        if self.detail:
            return f"{k.value}({self.detail})"
        return str(k.value)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind.value, "label": self.label}
        for name in ("close_code", "step", "http_status", "error_kind", "expected", "got", "detail", "path"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SessionOutcome:
        return cls(
            kind=OutcomeKind(raw["kind"]),
            close_code=raw.get("close_code"),
            step=raw.get("step"),
            http_status=raw.get("http_status"),
            error_kind=raw.get("error_kind"),
            expected=raw.get("expected"),
            got=raw.get("got"),
            detail=raw.get("detail"),
            path=raw.get("path"),
        )


_OK = SessionOutcome(OutcomeKind.OK)


@dataclass(frozen=True)
class DownSpan:
    """The target refused connections from ``offset_s`` (run-relative) on, and never answered again."""

    offset_s: float
    refused: int


def down_since(records: Sequence[SessionRecord], min_refused: int = 3) -> DownSpan | None:
    """When the target stopped answering for good: the first refused session after the last one that
    connected, when at least ``min_refused`` sessions (or every one, if fewer ran) were refused after it.

    A single refused connection among successes is a session failure (counted), not "down".
    """
    ordered = sorted(records, key=lambda r: r.start_offset_s)
    last_connected = max((i for i, r in enumerate(ordered) if r.outcome.connected), default=-1)
    after = ordered[last_connected + 1 :]
    refused = [r for r in after if r.outcome.kind is OutcomeKind.CONNECT_ERROR and r.outcome.error_kind == "refused"]
    if not refused or len(refused) < min(min_refused, len(ordered)):
        return None
    return DownSpan(refused[0].start_offset_s, len(refused))


def outcome_for_close(received_code: int | None) -> SessionOutcome:
    """The outcome of a connection that closed before the exchange ended.

    ``received_code`` is the code of the close frame the server sent, None when no
    close frame arrived (websockets: ``ConnectionClosed.rcvd is None``) -> 1006.
    """
    if received_code is None or received_code == 1006:
        return SessionOutcome(OutcomeKind.ABNORMAL_1006, close_code=1006)
    if received_code == 1011:
        return SessionOutcome(OutcomeKind.CLOSED_1011, close_code=1011)
    return SessionOutcome(OutcomeKind.CLOSED_OTHER, close_code=received_code)


def outcome_after_close(exchange: SessionOutcome, received_code: int | None, close_timed_out: bool) -> SessionOutcome:
    """The outcome once our close is done: a completed exchange is ok only if the close was clean.

    ``received_code`` is the code of the server's close frame (None: none came);
    ``close_timed_out`` says our client gave up waiting for it and cut the connection.
    A failed exchange keeps its own outcome (the first thing that went wrong).

    - a close frame came: ok, except 1011 (the server reports an internal error);
    - no close frame within the close timeout: ``close_timeout``, a failure but not a
      crash (the server neither sent 1011 nor dropped the connection; its close code is unknown);
    - the connection ended without a close frame before the timeout: the server dropped it (1006).
    """
    if not exchange.is_ok:
        return exchange
    if received_code is not None:
        return outcome_for_close(1011) if received_code == 1011 else exchange
    if close_timed_out:
        return SessionOutcome.close_timeout()
    return outcome_for_close(None)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class SessionRecord:
    """What one WebSocket session did, with monotonic-clock timings in seconds.

    ``start_offset_s`` is from the start of the run; ``connect_s`` is the opening
    handshake; ``first_event_s``/``total_s``/``event_offsets_s`` are measured from the
    moment the message was sent. ``payloads`` (capped) are kept only when asked for
    (the isolation check reads them).
    """

    session_id: str
    start_offset_s: float
    outcome: SessionOutcome
    user: str = ""
    step: str = ""
    connect_s: float | None = None
    first_event_s: float | None = None
    total_s: float | None = None
    event_types: tuple[str, ...] = ()
    event_offsets_s: tuple[float, ...] = ()
    events_truncated: bool = False
    close_code: int | None = None
    close_reason: str = ""
    payloads: tuple[str, ...] = field(default=(), repr=False)
    # Conversations: received frames by what they did (matched, ignored, unsolicited, failed, after_end).
    frame_counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "session_id": self.session_id,
            "user": self.user,
            "step": self.step,
            "start_offset_s": self.start_offset_s,
            "outcome": self.outcome.to_dict(),
            "connect_s": self.connect_s,
            "first_event_s": self.first_event_s,
            "total_s": self.total_s,
            "event_types": list(self.event_types),
            "event_offsets_s": list(self.event_offsets_s),
            "events_truncated": self.events_truncated,
            "close_code": self.close_code,
            "close_reason": self.close_reason,
        }
        if self.payloads:
            out["payloads"] = list(self.payloads)
        if self.frame_counts:
            out["frame_counts"] = dict(self.frame_counts)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SessionRecord:
        return cls(
            session_id=raw["session_id"],
            start_offset_s=float(raw["start_offset_s"]),
            outcome=SessionOutcome.from_dict(raw["outcome"]),
            user=raw.get("user", ""),
            step=raw.get("step", ""),
            connect_s=raw.get("connect_s"),
            first_event_s=raw.get("first_event_s"),
            total_s=raw.get("total_s"),
            event_types=tuple(raw.get("event_types", ())),
            event_offsets_s=tuple(raw.get("event_offsets_s", ())),
            events_truncated=bool(raw.get("events_truncated", False)),
            close_code=raw.get("close_code"),
            close_reason=raw.get("close_reason", ""),
            payloads=tuple(raw.get("payloads", ())),
            frame_counts=dict(raw.get("frame_counts", {})),
        )


# --------------------------------------------------------------------------- aggregation


def summarize_samples(samples: Iterable[float | None]) -> dict[str, Any]:
    """n, min, mean, p50/p90/p95/p99 (nearest rank) and max of the non-None samples."""
    values = [float(v) for v in samples if v is not None and math.isfinite(v)]  # a list: no resume per sample
    values.sort()
    if not values:
        return {"n": 0}

    def rank(q: float) -> float:
        return values[max(0, math.ceil(q * len(values)) - 1)]

    return {
        "n": len(values),
        "min": values[0],
        "mean": sum(values) / len(values),
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": values[-1],
    }


@dataclass(frozen=True)
class SessionAggregate:
    """Counts over a set of sessions, with exact binomial estimates.

    ``crash_rate`` is 1011+1006 over sessions seen to their end (ok or crashed; only
    those could have crashed); ``failure_rate`` is any non-ok outcome over all. A
    ``close_timeout`` session is a failure but is not "seen to its end": its close code
    is unknown, so it neither counts as a crash nor as evidence of no crash.
    """

    sessions: int
    connected: int
    observed: int  # sessions seen to their end: ok, or crashed (the crash rate's denominator)
    ok: int
    crashes: int
    failures: int
    outcome_counts: dict[str, int]
    outcome_labels: dict[str, int]
    close_codes: dict[str, int]
    crash_rate: RateEstimate
    failure_rate: RateEstimate
    timeline: tuple[tuple[float, str], ...]
    latency_s: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions,
            "connected": self.connected,
            "observed": self.observed,
            "ok": self.ok,
            "crashes": self.crashes,
            "failures": self.failures,
            "outcome_counts": dict(self.outcome_counts),
            "outcome_labels": dict(self.outcome_labels),
            "close_codes": dict(self.close_codes),
            "crash_rate": self.crash_rate.serialize(),
            "failure_rate": self.failure_rate.serialize(),
            "timeline": [{"start_offset_s": t, "outcome": o} for t, o in self.timeline],
            "latency_s": self.latency_s,
        }


def aggregate_sessions(records: Sequence[SessionRecord], confidence: float = 0.95) -> SessionAggregate:
    """Outcome counts, close-code histogram, rates with bounds, timeline, latency summaries.

    One pass over the records (a soak holds thousands; this ran once per figure before).
    """
    from ..stats.rates import rate_estimate

    kinds: dict[str, int] = {}
    labels: dict[str, int] = {}  # in first-seen order: ties keep it below
    codes: dict[str, int] = {}  # "none" = the connection ended without a close frame from the server
    connected = crashes = failures = 0
    connect: list[float | None] = []
    first_event: list[float | None] = []
    total: list[float | None] = []
    timeline: list[tuple[float, str]] = []
    for r in records:
        outcome = r.outcome
        kind = outcome.kind.value
        label = "ok" if outcome is _OK else outcome.label  # most sessions share _OK: no label to format
        if outcome.kind is OutcomeKind.OK:
            total.append(r.total_s)
        else:
            failures += 1
            if outcome.is_crash:
                crashes += 1
        kinds[kind] = kinds.get(kind, 0) + 1
        labels[label] = labels.get(label, 0) + 1
        if outcome.connected:
            connected += 1
            code = str(r.close_code) if r.close_code is not None else "none"
            codes[code] = codes.get(code, 0) + 1
        connect.append(r.connect_s)
        first_event.append(r.first_event_s)
        timeline.append((round(r.start_offset_s, 6), kind))
    timeline.sort()
    observed = len(records) - failures + crashes
    return SessionAggregate(
        sessions=len(records),
        connected=connected,
        observed=observed,
        ok=len(records) - failures,
        crashes=crashes,
        failures=failures,
        outcome_counts={k.value: kinds.get(k.value, 0) for k in OutcomeKind},
        outcome_labels=dict(sorted(labels.items(), key=lambda item: item[1], reverse=True)),  # = most_common()
        close_codes=dict(sorted(codes.items())),
        crash_rate=rate_estimate(crashes, observed, confidence),
        failure_rate=rate_estimate(failures, len(records), confidence),
        timeline=tuple(timeline),
        latency_s={
            "connect": summarize_samples(connect),
            "first_event": summarize_samples(first_event),
            "total": summarize_samples(total),
        },
    )


# --------------------------------------------------------------------------- claims


def _pct(x: float) -> str:
    if math.isnan(x):
        return "n/a"
    p = 100.0 * x
    return f"{p:.2g}%" if 0 < p < 0.01 else f"{p:.2f}%"


def _conf(confidence: float) -> str:
    return f"{100 * confidence:g}%"


def _rate_statistic(what: str, est: RateEstimate, tolerated: float, unit: str = "sessions") -> str:
    conf = _conf(est.confidence)
    if est.k == 0:
        return f"0 of {est.n} {unit} {what} ({conf} upper bound {_pct(est.upper)}, tolerated {_pct(tolerated)})"
    return (
        f"{est.k} of {est.n} {unit} {what} ({_pct(est.rate)}, {conf} CI [{_pct(est.ci_low)}, {_pct(est.ci_high)}], "
        f"tolerated {_pct(tolerated)})"
    )


def not_seen_to_the_end(aggregate: SessionAggregate) -> str:
    """How many sessions the crash rate leaves out, said beside it ("0 of 58" for 60 sessions read as a miscount):
    a session that timed out or closed otherwise proves nothing about 1011/1006 (``sessions_complete`` counts it)."""
    left_out = aggregate.sessions - aggregate.observed
    if left_out <= 0:
        return ""
    return f"{left_out} of {aggregate.sessions} sessions not seen to their end are not counted here (sessions_complete counts them)"


def _rate_claim(
    *,
    suffix: str = "",
    claim_id: str,
    section: str,
    statement: str,
    what: str,
    k: int,
    n: int,
    tolerated_rate: float,
    confidence: float,
    evidence: tuple[EvidenceRef, ...],
    no_data_reason: str,
    details: dict[str, Any],
) -> Claim:
    from ..stats.rates import RateVerdict, judge_failure_rate, sessions_needed

    verdict, est, explanation = judge_failure_rate(k, n, tolerated_rate, confidence)
    statistic = _rate_statistic(what, est, tolerated_rate)
    if n == 0:
        statistic = f"no sessions to count: {no_data_reason}"
        explanation = f"{no_data_reason}; {explanation}"
    elif verdict is RateVerdict.INCONCLUSIVE and k == 0:
        needed = sessions_needed(tolerated_rate, confidence)
        statistic += f"; {needed} sessions needed to bound it"
    if suffix and n > 0:
        statistic += f"; {suffix}"
    return Claim(
        id=claim_id,
        section=section,
        statement=statement,
        status=verdict.status if n > 0 else Status.INCONCLUSIVE,
        statistic=statistic,
        evidence=evidence,
        details={**details, "explanation": explanation, "estimate": est.serialize(), "tolerated_rate": tolerated_rate},
        figure=est.figure(f"sessions {what}", tolerance=tolerated_rate) if n > 0 else None,
    )


def session_claims(
    aggregate: SessionAggregate,
    *,
    tolerated_rate: float,
    confidence: float = 0.95,
    section: str = "websocket",
    evidence: Sequence[EvidenceRef] = (),
    note: str = "",
) -> tuple[Claim, Claim]:
    """Two claims: no 1011/1006 crash, and sessions complete (any non-ok is a failure).

    PASS only when the one-sided upper bound is within ``tolerated_rate``; FAIL when
    the interval lies above it; otherwise INCONCLUSIVE, saying how many sessions would
    settle it. ``note`` (e.g. "user setup failed for 2 of 3 users") is added to the
    explanation when there is nothing to count.
    """
    evidence = tuple(evidence)
    common = {
        "outcome_counts": aggregate.outcome_counts,
        "outcome_labels": aggregate.outcome_labels,
        "close_codes": aggregate.close_codes,
    }
    if aggregate.sessions == 0:
        crash_reason = note or "no session was run"
    else:
        crash_reason = (
            "no session ran to its end or crashed ("
            + ", ".join(f"{label} x{count}" for label, count in aggregate.outcome_labels.items())
            + ")"
        )
    crash_claim = _rate_claim(
        suffix=not_seen_to_the_end(aggregate),
        claim_id=f"{section}.no_1011_or_1006",
        section=section,
        statement="No session closed with 1011 or dropped (1006)",
        what="closed with 1011/1006",
        k=aggregate.crashes,
        # Only sessions seen to their end could show "no crash": a session that timed out or
        # closed otherwise proves nothing about 1011/1006 (the completion claim counts it).
        n=aggregate.observed,
        tolerated_rate=tolerated_rate,
        confidence=confidence,
        evidence=evidence,
        no_data_reason=crash_reason,
        details={
            **common,
            "crashes": aggregate.crashes,
            "observed": aggregate.observed,
            "connected": aggregate.connected,
        },
    )
    failure_claim = _rate_claim(
        claim_id=f"{section}.sessions_complete",
        section=section,
        statement="WebSocket sessions complete their exchange and close cleanly (any early close, timeout, rejection, "
        "wrong event or unanswered close is a failure)",
        what="failed",
        k=aggregate.failures,
        n=aggregate.sessions,
        tolerated_rate=tolerated_rate,
        confidence=confidence,
        evidence=evidence,
        no_data_reason=note or "no session was run",
        details={**common, "failures": aggregate.failures, "sessions": aggregate.sessions},
    )
    return crash_claim, failure_claim
