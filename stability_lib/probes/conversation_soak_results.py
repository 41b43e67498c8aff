"""The results of a conversation soak (issue 19): frozen records, the pure summary and the claims.

``ConversationSoakResult`` holds one entry per sent message in read-only numpy arrays (from the
``MessageLog`` of ``probes.conversation_soak_model``); ``summarize_conversation_soak`` turns it into
counts, the failure rate with its exact interval (``stability_lib.stats``) and latency percentiles;
``conversation_soak_claims`` judges them with the failure-rate rule. Pure: no I/O.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.models import Claim, EvidenceRef, Status
from ..stats import clopper_pearson, judge_failure_rate, upper_bound
from .conversation_soak_model import MessageFailure, MessageLog, MessageStatus

__all__ = [
    "SessionResult",
    "ConversationSoakResult",
    "ConversationSoakSummary",
    "summarize_conversation_soak",
    "conversation_soak_claims",
]


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
                statistic=(
                    f"{k:,} of {n:,} {what} (failure rate {100 * est.confidence:g}% upper bound {100 * est.upper:.3g}%, "
                    f"tolerated {100 * tolerated_rate:g}%)"
                    if n
                    else f"no {what.split()[0]} to count"
                ),
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
