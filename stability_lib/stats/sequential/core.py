"""Sequential verdicts, the shared parts: value types, input checks, confidence sequences, stopping rules.

The sign-test mixture for medians and the beta-binomial mixture for rates (see the package docstring).
"""

from __future__ import annotations

import enum
import functools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validate import StatisticsInputError
from ..fixes import FixStatus
from ..performance import PerfVerdict
from ..rates import RateVerdict

__all__ = [
    "SIGN_MIXTURE_A",
    "RATE_PRIOR_A",
    "StopReason",
    "Verdict",
    "Look",
    "SequentialResult",
    "median_confidence_sequence",
    "binomial_confidence_sequence",
]


# Beta(a, a) mixture over the sign test's coin: a = 20 keeps the sequence within ~1.5-1.7x the
# width of a fixed-n interval for every n from 50 to 2000 (measured; small a is tighter early,
# large a late).
SIGN_MIXTURE_A = 20.0


# Beta prior strength for failure rates: Beta(1/2, (1 - tol) / (2 tol)) (mean = tolerated rate).
RATE_PRIOR_A = 0.5


_NEEDED_CAP = 1_000_000  # beyond this, "more than we would ever take": say nothing


class StopReason(str, enum.Enum):
    RUNNING = "RUNNING"
    DECIDED = "DECIDED"
    SAMPLE_BUDGET = "SAMPLE_BUDGET"
    TIME_BUDGET = "TIME_BUDGET"
    ROUND_BUDGET = "ROUND_BUDGET"
    NO_MORE_DATA = "NO_MORE_DATA"

    def __str__(self) -> str:
        return self.value


Verdict = PerfVerdict | RateVerdict | FixStatus


@dataclass(frozen=True)
class Look:
    """The evidence after one round.

    ``low``/``high``: the confidence sequence (running intersection) for the judged quantity:
    the candidate/baseline ratio (performance) or the candidate's failure rate (rates, fixes);
    ``reference_low``/``reference_high``: the baseline's failure rate (fixes only).
    ``n_baseline`` is None for a single-target soak rate. Infinite bounds mean "not bounded yet".
    """

    round: int
    n_baseline: int | None
    n_candidate: int
    estimate: float
    low: float
    high: float
    decision: Verdict
    elapsed_s: float | None = None
    reference_low: float | None = None
    reference_high: float | None = None

    def serialize(self) -> dict[str, Any]:
        def num(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else float(x)

        return {
            "round": self.round,
            "n_baseline": self.n_baseline,
            "n_candidate": self.n_candidate,
            "estimate": num(self.estimate),
            "low": num(self.low),
            "high": num(self.high),
            "decision": self.decision.value,
            "elapsed_s": num(self.elapsed_s),
            "reference_low": num(self.reference_low),
            "reference_high": num(self.reference_high),
        }


@dataclass(frozen=True)
class SequentialResult:
    """The verdict of one sequential claim and the path of intervals that led to it.

    ``needed``: when INCONCLUSIVE, the estimated total samples per side (performance) or sessions
    (rates) that would settle it if what was observed held; None when decided or when no
    number would (the estimate sits on the threshold).
    """

    claim: str  # "performance" | "failure_rate" | "fix"
    verdict: Verdict
    stop: StopReason
    stop_text: str
    reason: str
    looks: tuple[Look, ...]
    threshold: float
    confidence: float  # per claim, after the Bonferroni split
    family_size: int
    needed: int | None

    @property
    def rounds(self) -> int:
        return len(self.looks)

    @property
    def last(self) -> Look | None:
        return self.looks[-1] if self.looks else None

    def describe(self) -> str:
        text = f"{self.verdict.label}: {self.reason}; {self.stop_text}"
        if self.needed is not None:
            text += f"; about {self.needed} {'samples per side' if self.claim == 'performance' else 'sessions'} would settle it"
        return text

    def serialize(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "verdict": self.verdict.value,
            "stop": self.stop.value,
            "stop_text": self.stop_text,
            "reason": self.reason,
            "threshold": self.threshold,
            "confidence": self.confidence,
            "family_size": self.family_size,
            "needed": self.needed,
            "looks": [look.serialize() for look in self.looks],
        }


class _Stoppable:
    """A sequential state: done once its stop reason is no longer RUNNING."""

    stop: StopReason

    @property
    def done(self) -> bool:
        return self.stop is not StopReason.RUNNING


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise StatisticsInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_open_unit(name: str, value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise StatisticsInputError(f"{name} must be a number, got {value!r}") from None
    if not (0.0 < x < 1.0):
        raise StatisticsInputError(f"{name} must be in (0, 1), got {value!r}")
    return x


def _check_budget_seconds(value: float | None) -> float | None:
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise StatisticsInputError(f"max_seconds must be a number or None, got {value!r}") from None
    if not (x > 0.0 and math.isfinite(x)):
        raise StatisticsInputError(f"max_seconds must be > 0 and finite, got {value!r}")
    return x


def _betaln(a: float, b: float) -> float:
    """log B(a, b) from math.lgamma: no scipy import (5 s of CPU on a busy machine) inside the first
    look of a timed sampling. Same ranks as scipy.special.betaln for every n from 1 to 5,000 (and
    every 997th to 100,000) at nine alphas from 0.05 to 0.001; largest difference 6e-11 at n = 10^5."""
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


@functools.lru_cache(maxsize=65_536)
def _sign_rank(n: int, alpha: float, a: float = SIGN_MIXTURE_A) -> int:
    """Smallest count S (0..n//2) whose beta-binomial mixture for a fair coin stays below 1/alpha.

    The median's sequence at n is [x_(S), x_(n-S+1)] (1-based order statistics); S == 0 means
    the data cannot bound it yet. The mixture is symmetric and falls towards S = n/2, where it is
    below 1, so the accepted counts are exactly S..n-S.
    """
    if n <= 0:
        return 0
    level = math.log(1.0 / alpha)
    base = n * math.log(2.0) - _betaln(a, a)

    def accepted(s: int) -> bool:
        return base + _betaln(a + s, a + n - s) < level

    lo, hi = 0, n // 2  # accepted(n // 2) holds: the mixture is below 1 at the centre
    while lo < hi:  # the mixture falls monotonically from S = 0 to S = n/2: bisection
        mid = (lo + hi) // 2
        if accepted(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def median_confidence_sequence(sorted_values: np.ndarray, alpha: float) -> tuple[float, float]:
    """Anytime-valid (1 - alpha) interval for the median of iid continuous values, at this n.

    ``sorted_values`` ascending. Ties make it conservative, never invalid (closed order-statistic
    bounds). Returns (-inf, inf) while n is too small to bound the median.
    """
    n = int(sorted_values.shape[0])
    s = _sign_rank(n, float(alpha))
    if s < 1:
        return (-math.inf, math.inf)
    return (float(sorted_values[s - 1]), float(sorted_values[n - s]))


def _rate_prior(tolerated_rate: float) -> tuple[float, float]:
    if 0.0 < tolerated_rate < 1.0:
        return RATE_PRIOR_A, RATE_PRIOR_A * (1.0 - tolerated_rate) / tolerated_rate
    return 0.5, 0.5  # Jeffreys: nothing to centre on


def binomial_confidence_sequence(
    k: int, n: int, alpha: float, prior: tuple[float, float] = (0.5, 0.5)
) -> tuple[float, float]:
    """Anytime-valid (1 - alpha) interval for a proportion after k events in n trials.

    The set of p where the beta-binomial mixture martingale (prior Beta(a, b)) is below 1/alpha;
    the log-mixture is convex in p, so the set is an interval around k/n, found by root-finding.
    """
    if n == 0:
        return (0.0, 1.0)
    a, b = prior
    from scipy.optimize import brentq  # on first use: params loading reaches this module
    from scipy.special import betaln

    # log mixture - log(1/alpha): the beta-function part does not depend on p, compute it once.
    offset = float(betaln(a + k, b + n - k) - betaln(a, b)) - math.log(1.0 / alpha)
    p_hat = k / n

    def excess(p: float) -> float:
        return offset - k * math.log(p) - (n - k) * math.log1p(-p)

    eps = 1e-15
    low = 0.0
    if k > 0 and excess(eps) > 0.0:
        low = float(brentq(excess, eps, min(p_hat, 1.0 - eps), xtol=1e-14, rtol=1e-12))
    high = 1.0
    if k < n and excess(1.0 - eps) > 0.0:
        high = float(brentq(excess, max(p_hat, eps), 1.0 - eps, xtol=1e-14, rtol=1e-12))
    return (low, high)


def _intersect(prev: Look | None, low: float, high: float) -> tuple[float, float]:
    """Running intersection: every interval of a confidence sequence holds at once, so does their
    intersection (it only narrows, which is what the report's chart shows)."""
    if prev is None:
        return low, high
    return max(prev.low, low), min(prev.high, high)


def _smallest_n(start: int, clears: Callable[[int], bool]) -> int | None:
    """Smallest n >= start with clears(n), assuming it stays true once true (doubling, bisection)."""
    hi = max(start, 1)
    while not clears(hi):
        hi *= 2
        if hi > _NEEDED_CAP:
            return None
    lo = max(start, 1)
    while lo < hi:
        mid = (lo + hi) // 2
        if clears(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


def _stop_reason(
    decided: bool, n: int, max_n: int, elapsed_s: float | None, max_s: float | None, rounds: int, max_rounds: int
) -> StopReason:
    if decided:
        return StopReason.DECIDED
    if n >= max_n:
        return StopReason.SAMPLE_BUDGET
    if max_s is not None and elapsed_s is not None and elapsed_s >= max_s:
        return StopReason.TIME_BUDGET
    if rounds >= max_rounds:
        return StopReason.ROUND_BUDGET
    return StopReason.RUNNING


def _stop_text(
    stop: StopReason, looks: tuple[Look, ...], unit: str, max_n: int, max_s: float | None, max_rounds: int
) -> str:
    k = len(looks)
    last = looks[-1] if looks else None
    n = 0 if last is None else max(last.n_candidate, last.n_baseline or 0)
    if stop is StopReason.DECIDED:
        return f"decided at round {k} ({n} {unit})"
    if stop is StopReason.SAMPLE_BUDGET:
        return f"budget of {max_n} {unit} reached at round {k}"
    if stop is StopReason.TIME_BUDGET:
        spent = f" ({last.elapsed_s:.1f} s)" if last is not None and last.elapsed_s is not None else ""
        return f"budget of {max_s:g} s reached at round {k}{spent}, after {n} {unit}"
    if stop is StopReason.ROUND_BUDGET:
        return f"budget of {max_rounds} rounds reached after {n} {unit}"
    if stop is StopReason.NO_MORE_DATA:
        return f"the sampler gave no more data after round {k} ({n} {unit})"
    return f"still sampling after round {k} ({n} {unit})"
