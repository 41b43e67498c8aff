"""Failure rates: "k of n" with exact (Clopper-Pearson) bounds, and the verdict rule (FAILURE_RATE_RULE_TEXT)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..core.models import Figure
from ._validate import (
    _check_confidence,
    _check_k_n,
    _check_probability,
    _conf_label,
    _json_float,
    _pct,
    _Verdict,
)

__all__ = [
    "FAILURE_RATE_RULE_TEXT",
    "clopper_pearson",
    "upper_bound",
    "sessions_needed",
    "RateEstimate",
    "rate_estimate",
    "RateVerdict",
    "judge_failure_rate",
]


FAILURE_RATE_RULE_TEXT = (
    "Failure-rate rule. A count of k failures in n trials is reported with its exact "
    "(Clopper-Pearson) two-sided confidence interval and its exact one-sided upper bound. "
    "The check passes only when the one-sided upper bound is at or below the tolerated rate "
    "(the data rule out any rate worse than tolerated); it fails only when the lower end of the "
    "two-sided interval is above the tolerated rate (the data rule out any acceptable rate); "
    "otherwise it is INCONCLUSIVE and we say how many trials would settle it. With zero failures "
    'in n trials the 95% upper bound is 1 - 0.05^(1/n), about 3/n (the "rule of three"): '
    "0 of 500 bounds the rate at 0.60%. No trials at all is never a pass."
)


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided (Clopper-Pearson) interval for a proportion k/n.

    ``n == 0`` is no evidence at all: the interval is the whole of [0, 1].
    """
    k, n = _check_k_n(k, n)
    confidence = _check_confidence(confidence)
    if n == 0:
        return (0.0, 1.0)
    # The interval's ends are beta quantiles (the textbook form of the exact interval). scipy's
    # binomtest(...).proportion_ci(method="exact") finds the same ends by root-finding on the binomial
    # cdf, after a p-value nobody reads: 10-40 ms per call, most of a 2,000-session soak's aggregation.
    alpha = (1.0 - confidence) / 2.0
    low = 0.0 if k == 0 else _beta_quantile(alpha, k, n - k + 1)
    high = 1.0 if k == n else _beta_quantile(1.0 - alpha, k + 1, n - k)
    return (low, high)


def upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """Exact one-sided upper confidence bound for a proportion k/n.

    The largest p for which seeing k or fewer events in n trials still has
    probability >= 1 - confidence. For k == 0 this is 1 - (1 - confidence)**(1/n)
    ("rule of three": about 3/n at 95%).
    """
    k, n = _check_k_n(k, n)
    confidence = _check_confidence(confidence)
    if n == 0 or k == n:
        return 1.0
    if k == 0:
        # Closed form; more accurate than the beta quantile for huge n.
        return float(-math.expm1(math.log1p(-confidence) / n))
    return _beta_quantile(confidence, k + 1, n - k)


def _beta_quantile(q: float, a: float, b: float) -> float:
    """The q-quantile of Beta(a, b): ``scipy.stats.beta.ppf(q, a, b)`` without the distribution
    object's argument checks (0.5 ms a call against 0.05 ms); scipy.special alone, not scipy.stats."""
    from scipy.special import betaincinv

    return float(betaincinv(a, b, q))


def sessions_needed(tolerated_rate: float, confidence: float = 0.95) -> int:
    """Smallest n such that 0 failures in n trials bounds the rate at ``tolerated_rate``.

    Solves 1 - (1 - confidence)**(1/n) <= tolerated_rate, i.e.
    n >= ln(1 - confidence) / ln(1 - tolerated_rate).
    """
    rate = _check_probability("tolerated_rate", tolerated_rate, open_low=True, open_high=True)
    confidence = _check_confidence(confidence)
    n = max(1, math.ceil(math.log1p(-confidence) / math.log1p(-rate)))
    # Guard the floating-point boundary in both directions with the real bound.
    while n > 1 and upper_bound(0, n - 1, confidence) <= rate:
        n -= 1
    while upper_bound(0, n, confidence) > rate:
        n += 1
    return n


@dataclass(frozen=True)
class RateEstimate:
    """k events in n trials: the observed rate, an exact two-sided CI and a one-sided upper bound.

    ``rate`` is NaN when n == 0 (no trials, no rate).
    """

    k: int
    n: int
    rate: float
    ci_low: float
    ci_high: float
    upper: float
    confidence: float = 0.95

    def describe(self) -> str:
        """E.g. "0 of 500 (0.00%), 95% CI [0.00%, 0.74%], one-sided 95% upper bound 0.60%"."""
        conf = _conf_label(self.confidence)
        observed = "no data" if self.n == 0 else _pct(self.rate)
        return (
            f"{self.k} of {self.n} ({observed}), {conf} CI [{_pct(self.ci_low)}, "
            f"{_pct(self.ci_high)}], one-sided {conf} upper bound {_pct(self.upper)}"
        )

    def figure(self, what: str, *, tolerance: float | None = None, test: str = "exact (Clopper-Pearson)") -> Figure:
        """The structured figure of a claim decided by this rate (``what`` names the events)."""
        return Figure(
            kind="rate",
            value=_json_float(self.rate),
            low=self.ci_low,
            high=self.upper,
            confidence=self.confidence,
            k=self.k,
            n=self.n,
            test=test,
            tolerance=tolerance,
            what=what,
        )

    def serialize(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "n": self.n,
            "rate": _json_float(self.rate),
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "upper": self.upper,
            "confidence": self.confidence,
        }


def rate_estimate(k: int, n: int, confidence: float = 0.95) -> RateEstimate:
    """Everything worth saying about k events in n trials, in one value."""
    k, n = _check_k_n(k, n)
    confidence = _check_confidence(confidence)
    low, high = clopper_pearson(k, n, confidence)
    return RateEstimate(
        k=k,
        n=n,
        rate=(k / n) if n else math.nan,
        ci_low=low,
        ci_high=high,
        upper=upper_bound(k, n, confidence),
        confidence=confidence,
    )


class RateVerdict(_Verdict):
    """Is a failure rate within what is tolerated?"""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


def _sessions_needed_at_rate(rate: float, tolerated_rate: float, confidence: float) -> int | None:
    """n at which, if the observed rate held exactly, the upper bound would clear the tolerance.

    None when it never would (observed rate at or above the tolerance). Bisection on
    n with k = ceil(rate * n): the bound falls as n grows at a fixed rate below tolerance.
    """
    if not (0.0 < rate < tolerated_rate):
        return None

    def clears(n: int) -> bool:
        return upper_bound(min(n, math.ceil(rate * n)), n, confidence) <= tolerated_rate

    hi = max(1, sessions_needed(tolerated_rate, confidence))
    while not clears(hi):
        hi *= 2
        if hi > 10**12:
            return None
    lo = 1
    while lo < hi:
        mid = (lo + hi) // 2
        if clears(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


def judge_failure_rate(
    k: int, n: int, tolerated_rate: float, confidence: float = 0.95
) -> tuple[RateVerdict, RateEstimate, str]:
    """PASS / FAIL / INCONCLUSIVE for "the failure rate is at most ``tolerated_rate``".

    PASS: the exact one-sided upper bound is <= tolerated_rate (the data rule out
    anything worse). FAIL: the two-sided interval's lower bound is > tolerated_rate
    (the data rule out anything acceptable). Otherwise INCONCLUSIVE, and the
    explanation says how many sessions would settle it.
    """
    k, n = _check_k_n(k, n)
    tolerated = _check_probability("tolerated_rate", tolerated_rate, open_low=False, open_high=False)
    confidence = _check_confidence(confidence)
    est = rate_estimate(k, n, confidence)
    conf = _conf_label(confidence)
    if n > 0 and est.upper <= tolerated:
        return (
            RateVerdict.PASS,
            est,
            f"{est.describe()}: the upper bound is within the tolerated {_pct(tolerated)}.",
        )
    if n > 0 and est.ci_low > tolerated:
        return (
            RateVerdict.FAIL,
            est,
            f"{est.describe()}: even the lower end of the {conf} interval exceeds the tolerated {_pct(tolerated)}.",
        )
    head = f"{est.describe()}: cannot tell whether the rate is within the tolerated {_pct(tolerated)}"
    if n == 0:
        head = f"No trials: nothing shows that the rate is within the tolerated {_pct(tolerated)}"
    if tolerated <= 0.0:
        return (
            RateVerdict.INCONCLUSIVE,
            est,
            f"{head}; a tolerated rate of 0 can never be confirmed by a finite number of trials.",
        )
    if tolerated >= 1.0:  # unreachable in practice: upper <= 1 always passes when n > 0
        return RateVerdict.INCONCLUSIVE, est, f"{head}."
    if k == 0:
        needed = sessions_needed(tolerated, confidence)
        return (
            RateVerdict.INCONCLUSIVE,
            est,
            f"{head}; {needed} sessions with no failure would be needed to bound it at {conf} ({needed - n} more).",
        )
    needed_at_rate = _sessions_needed_at_rate(k / n, tolerated, confidence)
    if needed_at_rate is None:
        return (
            RateVerdict.INCONCLUSIVE,
            est,
            f"{head}; the observed rate is not below the tolerance, so more sessions at this "
            f"rate would not show it is within it.",
        )
    return (
        RateVerdict.INCONCLUSIVE,
        est,
        f"{head}; if the observed rate of {_pct(k / n)} held, about {needed_at_rate} sessions "
        f"would be needed to bound it at {conf}.",
    )
