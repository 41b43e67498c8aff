"""Comparing two runs known only by their percentiles (Locust CSV, k6 summaries). Pure.

Without samples there is no bootstrap. What the reported percentiles do allow is an exact,
distribution-free interval for a population quantile from order statistics: for n independent
latencies, the q-quantile lies between the l-th and u-th smallest with probability at least
1 - P(Bin(n, q) <= l - 1) - P(Bin(n, q) >= u). A tool reports only some order statistics (its
percentile columns, min and max), so the interval is widened outward to the nearest reported
ones (and by the tool's rounding): still valid, only wider. See ``PERCENTILE_RULE_TEXT``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scipy import stats as _sps

from ..stats import PerfVerdict
from .records import QuantilePoint

__all__ = ["PERCENTILE_RULE_TEXT", "QuantileBounds", "PercentileComparison", "quantile_bounds", "compare_percentiles"]

PERCENTILE_RULE_TEXT = (
    "Percentile rule (files with percentiles, no samples: Locust CSV, k6 summaries). For each request "
    "name, an exact distribution-free interval for the judged quantile (the 95th percentile unless "
    "configured) of each run's latencies is taken from order statistics: the q-quantile lies between "
    "the l-th and u-th smallest of n latencies with a probability given by the binomial distribution, "
    "and the interval is widened to the nearest percentiles the tool reported (and by the tool's "
    "rounding of latencies). Each end of each run's interval errs with probability at most a quarter "
    "of one minus the confidence, so the ratio interval [candidate low / baseline high, candidate high "
    "/ baseline low] holds with at least that confidence. NO REGRESSION only when its upper end is at "
    "or below 1 + tolerance; REGRESSION only when its lower end is above; otherwise INCONCLUSIVE. "
    "The median cannot be judged this way from Locust's files (no percentile under 50% is written, so "
    "its lower bound is the minimum); the ratio of the reported medians is shown for information."
)


@dataclass(frozen=True)
class QuantileBounds:
    """An interval [low, high] (ms) for the q-quantile of one run, from its reported percentiles.
    ``low`` 0 or ``high`` inf: the reported percentiles do not reach far enough on that side."""

    quantile: float
    n: int
    low: float
    high: float
    ranks: tuple[int, int]  # the order statistics the interval needs (l, u)

    def serialize(self) -> dict[str, Any]:
        return {
            "quantile": self.quantile,
            "n": self.n,
            "low": self.low,
            "high": None if math.isinf(self.high) else self.high,
            "ranks": list(self.ranks),
        }


def _ranks(n: int, q: float, tail: float) -> tuple[int, int]:
    """Largest l with P(Bin(n,q) <= l-1) <= tail (0 when none) and smallest u with
    P(Bin(n,q) >= u) <= tail (n + 1 when none)."""
    # ppf gives the smallest k with cdf(k) >= tail; step back while cdf(k) > tail.
    k = int(_sps.binom.ppf(tail, n, q))
    while k >= 0 and _sps.binom.cdf(k, n, q) > tail:
        k -= 1
    low = k + 1  # cdf(low - 1) <= tail; low == 0 when even cdf(0) > tail
    # isf gives the smallest k with sf(k) <= tail, and P(X >= k + 1) = sf(k).
    j = int(_sps.binom.isf(tail, n, q))
    while j > 0 and _sps.binom.sf(j - 1, n, q) <= tail:
        j -= 1
    while _sps.binom.sf(j, n, q) > tail:
        j += 1
    return low, min(n + 1, j + 1)


def quantile_bounds(points: tuple[QuantilePoint, ...], n: int, q: float, tail: float) -> QuantileBounds:
    """The interval for the q-quantile from reported percentiles, each end erring with
    probability at most ``tail``."""
    low_rank, high_rank = _ranks(n, q, tail)
    low, high = 0.0, math.inf
    for p in points:
        if low_rank >= 1 and p.rank_high <= low_rank:  # value <= X_(rank_high) <= X_(l) <= quantile
            low = max(low, p.value - p.half_width)
        if high_rank <= n and p.rank_low >= high_rank:  # quantile <= X_(u) <= X_(rank_low) <= value
            high = min(high, p.value + p.half_width)
    return QuantileBounds(quantile=q, n=n, low=max(0.0, low), high=high, ranks=(low_rank, high_rank))


def _reported(points: tuple[QuantilePoint, ...], level: float, n: int) -> float | None:
    """The value the tool reported at ``level``; for a histogram (no such column), the bucket
    holding the latency of rank int(n * level) + 1, as Locust computes its percentiles."""
    for p in points:
        if abs(p.level - level) < 1e-9:
            return p.value
    rank = min(n, int(n * level) + 1)
    for p in points[1:-1]:
        if p.rank_low <= rank <= p.rank_high:
            return p.value
    return None


@dataclass(frozen=True)
class PercentileComparison:
    """Baseline vs candidate q-quantile intervals and the verdict on them (PERCENTILE_RULE_TEXT)."""

    quantile: float
    baseline: QuantileBounds
    candidate: QuantileBounds
    ratio: float | None  # reported candidate q-percentile / baseline's, when both reported it
    ratio_low: float
    ratio_high: float
    median_ratio: float | None
    verdict: PerfVerdict
    reason: str
    tolerance: float
    confidence: float

    def describe(self) -> str:
        q = f"p{100 * self.quantile:g}"
        high = "unbounded" if math.isinf(self.ratio_high) else f"{self.ratio_high:.2f}"
        head = f"{q} ratio {self.ratio:.2f}" if self.ratio is not None else f"{q} ratio n/a"
        text = (
            f"{head}, at least {100 * self.confidence:g}% distribution-free interval [{self.ratio_low:.2f}, {high}] "
            f"from the reported percentiles, tolerance {100 * self.tolerance:g}%: {self.verdict.label} "
            f"(n={self.baseline.n}/{self.candidate.n}"
        )
        if self.median_ratio is not None and self.quantile != 0.5:
            text += f", reported median ratio {self.median_ratio:.2f}, not judged"
        text += ")"
        if self.verdict is PerfVerdict.INCONCLUSIVE:
            text += f"; {self.reason}"
        return text

    def serialize(self) -> dict[str, Any]:
        return {
            "rule": "percentile bounds (no samples)",
            "quantile": self.quantile,
            "baseline_bounds": self.baseline.serialize(),
            "candidate_bounds": self.candidate.serialize(),
            "ratio": self.ratio,
            "ratio_low": self.ratio_low,
            "ratio_high": None if math.isinf(self.ratio_high) else self.ratio_high,
            "median_ratio": self.median_ratio,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "tolerance": self.tolerance,
            "confidence": self.confidence,
        }


def compare_percentiles(
    baseline: tuple[QuantilePoint, ...],
    n_baseline: int,
    candidate: tuple[QuantilePoint, ...],
    n_candidate: int,
    *,
    quantile: float,
    tolerance: float,
    confidence: float,
    min_samples: int,
) -> PercentileComparison:
    """Judge the q-quantile of the candidate against the baseline's (see PERCENTILE_RULE_TEXT)."""
    tail = (1.0 - confidence) / 4.0
    base = quantile_bounds(baseline, n_baseline, quantile, tail) if n_baseline else None
    cand = quantile_bounds(candidate, n_candidate, quantile, tail) if n_candidate else None
    empty = QuantileBounds(quantile, 0, 0.0, math.inf, (0, 1))
    base_b, cand_b = base or empty, cand or empty
    ratio_low = cand_b.low / base_b.high if base_b.high > 0 and not math.isinf(base_b.high) else 0.0
    ratio_high = cand_b.high / base_b.low if base_b.low > 0 else math.inf
    threshold = 1.0 + tolerance
    b_q, c_q = _reported(baseline, quantile, n_baseline), _reported(candidate, quantile, n_candidate)
    b_m, c_m = _reported(baseline, 0.5, n_baseline), _reported(candidate, 0.5, n_candidate)
    if min(n_baseline, n_candidate) < min_samples:
        verdict = PerfVerdict.INCONCLUSIVE
        reason = f"too few requests ({n_baseline}/{n_candidate}, at least {min_samples} per side required)"
    elif ratio_high <= threshold:
        verdict, reason = PerfVerdict.NO_REGRESSION, f"the interval lies at or below {threshold:.2f}"
    elif ratio_low > threshold:
        verdict, reason = PerfVerdict.REGRESSION, f"the interval lies above {threshold:.2f}"
    else:
        verdict = PerfVerdict.INCONCLUSIVE
        reason = f"the interval straddles {threshold:.2f}"
        if math.isinf(cand_b.high) or base_b.low == 0.0:
            reason += (
                "; the reported percentiles do not reach the order statistics this interval needs at "
                f"n={n_baseline}/{n_candidate} (more requests narrow it)"
            )
    return PercentileComparison(
        quantile=quantile,
        baseline=base_b,
        candidate=cand_b,
        ratio=(c_q / b_q) if b_q and c_q is not None else None,
        ratio_low=ratio_low,
        ratio_high=ratio_high,
        median_ratio=(c_m / b_m) if b_m and c_m is not None else None,
        verdict=verdict,
        reason=reason,
        tolerance=tolerance,
        confidence=confidence,
    )
