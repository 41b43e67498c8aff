"""What a load run made elsewhere left behind, whatever the tool: per request name a count, a
failure count and either every latency (k6 ``--out json``) or a few percentiles (Locust CSV,
k6 summaries); the script's own errors, checks and thresholds. Pure: values only.

Names, messages and threshold texts come from untrusted files: they are kept as data (the
report escapes them) and cut to ``MAX_TEXT_CHARS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..core.errors import EvidenceError

__all__ = [
    "MAX_TEXT_CHARS",
    "IngestError",
    "QuantilePoint",
    "RequestStats",
    "FailureRecord",
    "ScriptError",
    "CheckResult",
    "ThresholdResult",
    "LoadRun",
    "clip",
]

MAX_TEXT_CHARS = 500  # a request name or an error message longer than this is cut


class IngestError(EvidenceError):
    """A file of a load run is missing, too large or not in the format it claims to be."""


def clip(text: object) -> str:
    """A string from an untrusted file, as data: at most ``MAX_TEXT_CHARS`` characters."""
    value = str(text)
    return value if len(value) <= MAX_TEXT_CHARS else value[: MAX_TEXT_CHARS - 1] + "…"


@dataclass(frozen=True)
class QuantilePoint:
    """One reported percentile, with where it sits among the sorted latencies.

    ``value`` (ms) lies between the order statistics of rank ``rank_low`` and ``rank_high``
    (1-based, of the ``n`` latencies) once widened by ``half_width``: the tool rounded the
    latencies before taking the percentile (Locust: to 1 ms under 100 ms, 10 ms under 1 s ...)
    or interpolated between two neighbours (k6). ``level`` is the percentile asked (0.95).
    """

    level: float
    value: float
    rank_low: int
    rank_high: int
    half_width: float = 0.0

    def serialize(self) -> dict[str, Any]:
        return {"level": self.level, "value": self.value, "ranks": [self.rank_low, self.rank_high]}


@dataclass(frozen=True)
class RequestStats:
    """One request name of one run: ``requests`` made, ``failures`` among them, and the latencies
    (ms) either as every sample (``samples``) or as reported percentiles (``quantiles``)."""

    name: str
    method: str
    requests: int
    failures: int
    samples: tuple[float, ...] | None = None
    quantiles: tuple[QuantilePoint, ...] = ()
    histogram: bool = False  # ``quantiles`` hold every order statistic (Locust's rounded histogram)

    @property
    def has_samples(self) -> bool:
        return self.samples is not None

    def median(self) -> float:
        """The reported or computed median, NaN when unknown."""
        if self.samples:
            ordered = sorted(self.samples)
            mid = len(ordered) // 2
            return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
        for point in self.quantiles:
            if point.level == 0.5:
                return point.value
        return math.nan

    def serialize(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "method": self.method,
            "requests": self.requests,
            "failures": self.failures,
        }
        if self.samples is not None:
            out["samples"] = len(self.samples)
        if self.histogram:
            out["histogram_buckets"] = len(self.quantiles) - 2  # less min and max
            out["percentiles"] = {
                f"{100 * level:g}%": _value_at_rank(self.quantiles, min(self.requests, int(self.requests * level) + 1))
                for level in (0.5, 0.9, 0.95, 0.99)
                if self.requests
            }
        elif self.quantiles:
            out["percentiles"] = {f"{100 * q.level:g}%": q.value for q in self.quantiles}
        return out


def _value_at_rank(points: tuple[QuantilePoint, ...], rank: int) -> float | None:
    """The bucket holding the latency of this rank (histogram points, min and max excluded)."""
    for p in points[1:-1]:
        if p.rank_low <= rank <= p.rank_high:
            return p.value
    return None


@dataclass(frozen=True)
class FailureRecord:
    """A kind of failed request the tool grouped: name, error text, occurrences."""

    method: str
    name: str
    error: str
    occurrences: int


@dataclass(frozen=True)
class ScriptError:
    """An error of the load script itself (an exception), ``count`` times."""

    message: str
    count: int


@dataclass(frozen=True)
class CheckResult:
    """A k6 check: how often it held and how often it did not."""

    name: str
    passes: int
    fails: int


@dataclass(frozen=True)
class ThresholdResult:
    """A threshold of the script (k6) as the tool judged it."""

    metric: str
    expression: str
    ok: bool


@dataclass(frozen=True)
class LoadRun:
    """Everything read from one run's files.

    ``script_errors`` is None when the files cannot show whether the script threw (a k6 run
    without its log): unknown, not zero. Likewise ``checks`` None: not recorded. ``limits``
    says in words what the format cannot show (it goes into the claims).
    """

    tool: str
    source: str
    requests: tuple[RequestStats, ...]
    failures: tuple[FailureRecord, ...] = ()
    script_errors: tuple[ScriptError, ...] | None = None
    checks: tuple[CheckResult, ...] | None = None
    thresholds: tuple[ThresholdResult, ...] = ()
    iterations: int | None = None
    dropped_iterations: int | None = None
    limits: tuple[str, ...] = ()
    failures_recorded: bool = True  # False: the files do not say which requests failed (old k6)
    interrupted_iterations: int | None = None  # k6: from its console; None: unknown

    def by_name(self) -> dict[str, RequestStats]:
        return {r.name: r for r in self.requests}

    @property
    def total_requests(self) -> int:
        return sum(r.requests for r in self.requests)

    def serialize(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "source": self.source,
            "requests": [r.serialize() for r in self.requests],
            "total_requests": self.total_requests,
            "failures": [
                {"method": f.method, "name": f.name, "error": f.error, "occurrences": f.occurrences}
                for f in self.failures
            ],
            "script_errors": None
            if self.script_errors is None
            else [{"message": e.message, "count": e.count} for e in self.script_errors],
            "checks": None
            if self.checks is None
            else [{"name": c.name, "passes": c.passes, "fails": c.fails} for c in self.checks],
            "thresholds": [{"metric": t.metric, "expression": t.expression, "ok": t.ok} for t in self.thresholds],
            "iterations": self.iterations,
            "dropped_iterations": self.dropped_iterations,
            "interrupted_iterations": self.interrupted_iterations,
            "limits": list(self.limits),
            "failures_recorded": self.failures_recorded,
        }
