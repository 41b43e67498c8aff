"""Sequential verdicts: sample in rounds until the evidence decides, within a budget (issue 14).

Pure: numpy/scipy only, no I/O. The caller takes the samples (interleaved A/B rounds, soak
sessions) and either feeds each round to ``update(state, round, elapsed_s=...)`` or hands a
callable to ``run(state, next_round)``, which asks it for one round at a time.

Why confidence sequences. Looking at a fixed-n interval after every round and stopping at the
first decisive one raises the false-decision rate far above its nominal 5% (each look is a new
chance to be fooled). A *confidence sequence* is a sequence of intervals that contains the true
value at every round simultaneously with probability >= 1 - alpha, so a verdict may be read at
any round, and the search stops whenever it likes, without inflating errors (Ville's inequality
applied to a non-negative mixture martingale; Howard, Ramdas, McAuliffe & Sekhon 2021, "Time-
uniform, nonparametric, nonasymptotic confidence sequences"; Howard & Ramdas 2022, "Sequential
estimation of quantiles with applications to A/B-testing and best-arm identification").

Performance: the median of paired log-ratios
    The i-th baseline sample of a round is paired with the i-th candidate sample of the same
    round (taken next to it in time, ABBA order), and d = log(candidate / baseline). Whatever
    slows the machine during a round slows both members of a pair, so it cancels in d. If the
    candidate is the baseline scaled by r (in distribution), d is symmetric about log r, and
    exp(median d) = r = the ratio of medians that the fixed-n rule of ``stats.inference`` judges. The
    confidence sequence for the median of d is the sign-test one: at the true median m each
    indicator 1{d_i <= m} is a fair coin, the beta-binomial mixture of likelihood ratios
    2^n B(a + S, a + n - S) / B(a, a) (S = number of d_i <= m) is a martingale, and the set of m
    where it stays below 1/alpha is an interval between two order statistics of d. Nothing is
    assumed about the shape of the latency distribution (outliers move one order statistic by
    one place). ``paired=False`` keeps the two sides apart (one median sequence per side at
    alpha/2 each, ratio interval [low_c / high_b, high_c / low_b]); the benchmark measures both.

Failure rates: a beta-binomial mixture (Robbins 1970)
    For k failures in n sessions the mixture martingale B(a + k, b + n - k) / B(a, b) /
    (p^k (1 - p)^(n - k)) is below 1/alpha for every p in the confidence sequence; the prior
    Beta(1/2, (1 - tol)/(2 tol)) has its mean at the tolerated rate, where the sequence has to
    be sharp. "The fix works" combines one sequence per side at alpha/2 each.

All verdict semantics are those of ``stats.inference`` (``compare_samples``, ``judge_failure_rate``,
``compare_failure_rates``), with the sequence in place of the fixed-n interval.
"""

from __future__ import annotations

import enum
import functools
import math
import numbers
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, overload

import numpy as np
from scipy.optimize import brentq
from scipy.special import betaln

from .inference import (
    FixStatus,
    PerfVerdict,
    RateVerdict,
    StatisticsInputError,
    _pct,  # one way to print a rate, tiny ones included
)

__all__ = [
    "RULE_TEXT",
    "PERFORMANCE_SEQUENTIAL_RULE_TEXT",
    "RATE_SEQUENTIAL_RULE_TEXT",
    "FIX_SEQUENTIAL_RULE_TEXT",
    "StopReason",
    "Look",
    "SequentialResult",
    "PerfRound",
    "RateRound",
    "FixRound",
    "PerfSequentialConfig",
    "RateSequentialConfig",
    "FixSequentialConfig",
    "PerfState",
    "PerfFamilyState",
    "RateState",
    "FixState",
    "start_performance",
    "start_performance_family",
    "start_failure_rate",
    "start_fix",
    "update",
    "run",
    "halt",
    "round_would_overrun",
    "median_confidence_sequence",
    "binomial_confidence_sequence",
]

PERFORMANCE_SEQUENTIAL_RULE_TEXT = (
    "Sequential performance rule. Samples are taken in rounds, baseline and candidate interleaved, "
    "and each baseline sample is paired with the candidate sample taken next to it in the same "
    "round; a pair's ratio (candidate / baseline) is untouched by whatever slowed the machine for "
    "both (a sample left without a partner, e.g. by a failed run, is counted but not judged). After every round we compute a 95% confidence sequence for the median of the paired "
    "ratios: a range that, with probability at least 95%, contains the true ratio at every round at "
    "once, so it may be read after each round and the sampling stopped at any time without raising "
    "the error rate (a fixed-sample interval read after every round would be fooled far more often "
    "than 5%). It comes from a sign test that stays valid under continuous monitoring (a beta-binomial "
    "mixture martingale and Ville's inequality) and assumes nothing about the shape of the latencies. "
    "We stop as soon as the whole range lies at or below 1 + tolerance (NO REGRESSION: a slowdown "
    "beyond the tolerance is ruled out) or above it (REGRESSION: a slowdown within the tolerance is "
    "ruled out). If the budget (samples per side, seconds) runs out first, the result is INCONCLUSIVE "
    "and we estimate how many samples per side would settle it if the observed ratios held; a round "
    "that would end past the time budget (judged by the longest round so far) is not started. With "
    "several judged operations, each uses confidence 1 - 5%/m (Bonferroni over the m operations). "
    "If the candidate is the baseline slowed by a factor r, the median paired ratio is r, the same "
    "ratio of medians the fixed-sample rule judges."
)

RATE_SEQUENTIAL_RULE_TEXT = (
    "Sequential failure-rate rule. Sessions are run in rounds; after every round we compute a 95% "
    "confidence sequence for the failure rate (a beta-binomial mixture, valid at every round at "
    "once, so stopping early does not raise the error rate). The check passes as soon as the whole "
    "range lies at or below the tolerated rate, fails as soon as it lies above it, and is "
    "INCONCLUSIVE when the budget of sessions or seconds runs out first, with an estimate of the "
    "sessions that would settle it. The price of looking after every round: with no failures at "
    "all, about 1.4 times as many sessions are needed to pass as the fixed-sample rule of three "
    "would need, but a rate clearly above or clearly below the tolerance is decided early."
)

FIX_SEQUENTIAL_RULE_TEXT = (
    "Sequential fix rule. One confidence sequence per side (baseline and candidate failure rates, "
    "each at 97.5% so that both hold together at 95%). FIXED as soon as the candidate's range lies "
    "entirely below the baseline's and at or below the tolerated rate; NOT FIXED as soon as the "
    "candidate's range lies entirely above the baseline's or above the tolerated rate; otherwise "
    "sampling continues until the budget runs out (INCONCLUSIVE). The baseline is soaked only while "
    "the fix is undecided; the candidate until its own rate checks and the fix are all decided."
)

RULE_TEXT = "\n\n".join((PERFORMANCE_SEQUENTIAL_RULE_TEXT, RATE_SEQUENTIAL_RULE_TEXT, FIX_SEQUENTIAL_RULE_TEXT))

# Beta(a, a) mixture over the sign test's coin: a = 20 keeps the sequence within ~1.5-1.7x the
# width of a fixed-n interval for every n from 50 to 2000 (measured; small a is tighter early,
# large a late).
SIGN_MIXTURE_A = 20.0
# Beta prior strength for failure rates: Beta(1/2, (1 - tol) / (2 tol)) (mean = tolerated rate).
RATE_PRIOR_A = 0.5
_NEEDED_CAP = 1_000_000  # beyond this, "more than we would ever take": say nothing


# --------------------------------------------------------------------------- value types


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


@dataclass(frozen=True)
class PerfRound:
    """One round of interleaved latencies (positive, finite), in the order they were taken."""

    baseline: Sequence[float]
    candidate: Sequence[float]


@dataclass(frozen=True)
class RateRound:
    failures: int
    sessions: int


@dataclass(frozen=True)
class FixRound:
    baseline_failures: int
    baseline_sessions: int
    candidate_failures: int
    candidate_sessions: int


class _Stoppable:
    """A sequential state: done once its stop reason is no longer RUNNING."""

    stop: StopReason

    @property
    def done(self) -> bool:
        return self.stop is not StopReason.RUNNING


# --------------------------------------------------------------------------- validation


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


def _positive_samples(name: str, values: Sequence[float]) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise StatisticsInputError(f"{name} must be a sequence of numbers") from None
    if arr.ndim != 1:
        raise StatisticsInputError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size and not (arr.min() > 0.0 and arr.max() < math.inf):  # NaN fails both
        raise StatisticsInputError(f"{name} must contain only finite positive values")
    return arr


# --------------------------------------------------------------------------- confidence sequences


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
    base = n * math.log(2.0) - float(betaln(a, a))

    def accepted(s: int) -> bool:
        return base + float(betaln(a + s, a + n - s)) < level

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


# --------------------------------------------------------------------------- performance


@dataclass(frozen=True)
class PerfSequentialConfig:
    """How one operation's performance is judged sequentially.

    ``family_size``: number of operations judged together (Bonferroni: each at alpha / m).
    ``max_samples_per_side`` and ``max_seconds``: the budget; ``max_rounds`` guards against a
    sampler that keeps returning nothing.
    """

    tolerance: float = 0.10
    confidence: float = 0.95
    family_size: int = 1
    paired: bool = True
    min_samples: int = 20
    max_samples_per_side: int = 2000
    max_seconds: float | None = None
    max_rounds: int = 10_000

    def __post_init__(self) -> None:
        tol = float(self.tolerance)
        if not (math.isfinite(tol) and tol >= 0.0):
            raise StatisticsInputError(f"tolerance must be finite and >= 0, got {self.tolerance!r}")
        _check_open_unit("confidence", self.confidence)
        _check_int("family_size", self.family_size, 1)
        _check_int("min_samples", self.min_samples, 2)
        _check_int("max_samples_per_side", self.max_samples_per_side, 1)
        _check_int("max_rounds", self.max_rounds, 1)
        _check_budget_seconds(self.max_seconds)

    @property
    def alpha(self) -> float:
        return (1.0 - self.confidence) / self.family_size

    @property
    def threshold(self) -> float:
        return 1.0 + self.tolerance


@dataclass(frozen=True, eq=False)
class PerfState(_Stoppable):
    """Everything observed so far for one operation (immutable: ``update`` returns a new one).

    ``log_ratios``: paired log(candidate / baseline); ``log_baseline``/``log_candidate``: all
    samples per side (unpaired mode, and the counts for the budget). ``unpaired``: samples left
    without a partner in their round (e.g. a failed run on one side), not judged in paired mode.
    """

    config: PerfSequentialConfig
    log_ratios: np.ndarray = field(default_factory=lambda: np.empty(0))
    log_baseline: np.ndarray = field(default_factory=lambda: np.empty(0))
    log_candidate: np.ndarray = field(default_factory=lambda: np.empty(0))
    unpaired: int = 0
    looks: tuple[Look, ...] = ()
    stop: StopReason = StopReason.RUNNING
    elapsed_s: float | None = None

    @property
    def result(self) -> SequentialResult:
        return _perf_result(self)


def start_performance(config: PerfSequentialConfig = PerfSequentialConfig()) -> PerfState:
    return PerfState(config=config)


def _perf_interval(state: PerfState) -> tuple[float, float, float]:
    """(estimate, low, high) of the log ratio at this round (before the running intersection)."""
    alpha = state.config.alpha
    if state.config.paired:
        d = np.sort(state.log_ratios)
        if d.size == 0:
            return math.nan, -math.inf, math.inf
        low, high = median_confidence_sequence(d, alpha)
        return _sorted_median(d), low, high
    b, c = np.sort(state.log_baseline), np.sort(state.log_candidate)
    if b.size == 0 or c.size == 0:
        return math.nan, -math.inf, math.inf
    b_low, b_high = median_confidence_sequence(b, alpha / 2.0)
    c_low, c_high = median_confidence_sequence(c, alpha / 2.0)
    return _sorted_median(c) - _sorted_median(b), c_low - b_high, c_high - b_low


def _sorted_quantile(x: np.ndarray, q: float) -> float:
    """numpy's default (linear) quantile of an ascending array, without numpy's per-call overhead."""
    h = (x.shape[0] - 1) * q
    lo = int(h)
    hi = min(lo + 1, x.shape[0] - 1)
    return float(x[lo] + (h - lo) * (x[hi] - x[lo]))


def _sorted_median(x: np.ndarray) -> float:
    n = x.shape[0]
    return 0.5 * float(x[(n - 1) // 2] + x[n // 2])


def _perf_n(state: PerfState) -> tuple[int, int]:
    return int(state.log_baseline.size), int(state.log_candidate.size)


def _perf_judged_n(state: PerfState) -> int:
    n_b, n_c = _perf_n(state)
    return int(state.log_ratios.size) if state.config.paired else min(n_b, n_c)


def _update_perf(state: PerfState, new: PerfRound, elapsed_s: float | None) -> PerfState:
    if state.done:
        return state
    base = np.log(_positive_samples("baseline", new.baseline))
    cand = np.log(_positive_samples("candidate", new.candidate))
    pairs = min(base.size, cand.size)
    cfg = state.config
    state = PerfState(
        config=cfg,
        log_ratios=np.concatenate([state.log_ratios, cand[:pairs] - base[:pairs]]),
        log_baseline=np.concatenate([state.log_baseline, base]),
        log_candidate=np.concatenate([state.log_candidate, cand]),
        unpaired=state.unpaired + abs(int(base.size) - int(cand.size)),
        looks=state.looks,
        elapsed_s=elapsed_s,
    )
    estimate, low, high = _perf_interval(state)
    low, high = _intersect(state.looks[-1] if state.looks else None, math.exp(low), math.exp(high))
    decision = PerfVerdict.INCONCLUSIVE
    if _perf_judged_n(state) >= cfg.min_samples:
        if high <= cfg.threshold:
            decision = PerfVerdict.NO_REGRESSION
        elif low > cfg.threshold:
            decision = PerfVerdict.REGRESSION
    n_b, n_c = _perf_n(state)
    look = Look(
        round=len(state.looks) + 1,
        n_baseline=n_b,
        n_candidate=n_c,
        estimate=math.exp(estimate) if math.isfinite(estimate) else math.nan,
        low=low,
        high=high,
        decision=decision,
        elapsed_s=elapsed_s,
    )
    looks = state.looks + (look,)
    stop = _stop_reason(
        decision is not PerfVerdict.INCONCLUSIVE,
        max(n_b, n_c),
        cfg.max_samples_per_side,
        elapsed_s,
        cfg.max_seconds,
        len(looks),
        cfg.max_rounds,
    )
    return replace(state, looks=looks, stop=stop)


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


def _perf_needed(state: PerfState) -> int | None:
    """Samples per side at which the sequence would clear 1 + tolerance if the data kept the
    spread and centre observed so far (the empirical quantiles at the sequence's rank levels)."""
    cfg = state.config
    log_t = math.log(cfg.threshold)
    alpha = cfg.alpha
    if cfg.paired:
        groups = [(np.sort(state.log_ratios), alpha, 1.0)]
    else:
        groups = [(np.sort(state.log_candidate), alpha / 2.0, 1.0), (np.sort(state.log_baseline), alpha / 2.0, -1.0)]
    if any(g.size < 2 for g, _, _ in groups):
        return cfg.min_samples
    centre = sum(sign * float(np.median(g)) for g, _, sign in groups)
    if centre == log_t:
        return None
    below = centre < log_t

    def clears(n: int) -> bool:
        s = _sign_rank(n, alpha if cfg.paired else alpha / 2.0)
        if s < 1:
            return False
        p_low, p_high = (s - 1) / max(n - 1, 1), (n - s) / max(n - 1, 1)
        low = high = 0.0
        for g, _, sign in groups:
            q_low, q_high = _sorted_quantile(g, p_low), _sorted_quantile(g, p_high)
            low += q_low if sign > 0 else -q_high
            high += q_high if sign > 0 else -q_low
        return high <= log_t if below else low > log_t

    needed = _smallest_n(max(_perf_judged_n(state), cfg.min_samples), clears)
    return None if needed is None else max(needed, cfg.min_samples)


def _perf_result(state: PerfState) -> SequentialResult:
    cfg = state.config
    last = state.looks[-1] if state.looks else None
    verdict = last.decision if last is not None else PerfVerdict.INCONCLUSIVE
    conf = 1.0 - cfg.alpha
    band = f"{cfg.threshold:.2f}"
    what = "median paired ratio" if cfg.paired else "ratio of medians"
    if last is None:
        reason = "no samples yet"
    elif verdict is PerfVerdict.NO_REGRESSION:
        reason = f"the {conf:.2%} confidence sequence of the {what}, [{last.low:.3f}, {last.high:.3f}], lies at or below {band}"
    elif verdict is PerfVerdict.REGRESSION:
        reason = (
            f"the {conf:.2%} confidence sequence of the {what}, [{last.low:.3f}, {last.high:.3f}], lies above {band}"
        )
    elif _perf_judged_n(state) < cfg.min_samples:
        reason = f"too few samples ({_perf_judged_n(state)}, at least {cfg.min_samples} required)"
    else:
        reason = (
            f"the {conf:.2%} confidence sequence of the {what}, [{last.low:.3f}, {last.high:.3f}], straddles {band}"
        )
    if cfg.paired and state.unpaired:
        reason += f" ({state.unpaired} samples without a partner in their round were not judged)"
    needed = None
    if state.done and verdict is PerfVerdict.INCONCLUSIVE:
        needed = _perf_needed(state)
    return SequentialResult(
        claim="performance",
        verdict=verdict,
        stop=state.stop,
        stop_text=_stop_text(
            state.stop, state.looks, "samples per side", cfg.max_samples_per_side, cfg.max_seconds, cfg.max_rounds
        ),
        reason=reason,
        looks=state.looks,
        threshold=cfg.threshold,
        confidence=conf,
        family_size=cfg.family_size,
        needed=needed,
    )


@dataclass(frozen=True)
class PerfFamilyState:
    """Several operations judged on the same rounds; each at alpha / m (Bonferroni).

    Done when every operation is decided or out of budget; a decided operation ignores later rounds.
    """

    operations: Mapping[str, PerfState]

    @property
    def done(self) -> bool:
        return all(s.done for s in self.operations.values())

    @property
    def results(self) -> dict[str, SequentialResult]:
        return {op: s.result for op, s in self.operations.items()}


def start_performance_family(
    operations: Sequence[str], config: PerfSequentialConfig = PerfSequentialConfig()
) -> PerfFamilyState:
    ops = list(dict.fromkeys(operations))
    if not ops:
        raise StatisticsInputError("a family needs at least one operation")
    cfg = replace(config, family_size=len(ops))
    return PerfFamilyState(operations={op: PerfState(config=cfg) for op in ops})


def _update_family(state: PerfFamilyState, new: Mapping[str, PerfRound], elapsed_s: float | None) -> PerfFamilyState:
    unknown = set(new) - set(state.operations)
    if unknown:
        raise StatisticsInputError(f"samples for operations not in the family: {sorted(unknown)}")
    empty = PerfRound((), ())
    return PerfFamilyState(
        operations={op: _update_perf(s, new.get(op, empty), elapsed_s) for op, s in state.operations.items()}
    )


# --------------------------------------------------------------------------- failure rates


@dataclass(frozen=True)
class RateSequentialConfig:
    """Is the failure rate at most ``tolerated_rate``? Budget: sessions and seconds."""

    tolerated_rate: float
    confidence: float = 0.95
    family_size: int = 1
    max_sessions: int = 2000
    max_seconds: float | None = None
    max_rounds: int = 10_000

    def __post_init__(self) -> None:
        tol = float(self.tolerated_rate)
        if not (0.0 <= tol <= 1.0):
            raise StatisticsInputError(f"tolerated_rate must be in [0, 1], got {self.tolerated_rate!r}")
        _check_open_unit("confidence", self.confidence)
        _check_int("family_size", self.family_size, 1)
        _check_int("max_sessions", self.max_sessions, 1)
        _check_int("max_rounds", self.max_rounds, 1)
        _check_budget_seconds(self.max_seconds)

    @property
    def alpha(self) -> float:
        return (1.0 - self.confidence) / self.family_size


@dataclass(frozen=True)
class RateState(_Stoppable):
    config: RateSequentialConfig
    failures: int = 0
    sessions: int = 0
    looks: tuple[Look, ...] = ()
    stop: StopReason = StopReason.RUNNING
    elapsed_s: float | None = None

    @property
    def result(self) -> SequentialResult:
        return _rate_result(self)


def start_failure_rate(config: RateSequentialConfig) -> RateState:
    return RateState(config=config)


def _check_round_counts(k: Any, n: Any, side: str = "") -> tuple[int, int]:
    k = _check_int(f"{side}failures", k, 0)
    n = _check_int(f"{side}sessions", n, 0)
    if k > n:
        raise StatisticsInputError(f"{side}failures ({k}) cannot exceed {side}sessions ({n})")
    return k, n


def _update_rate(state: RateState, new: RateRound, elapsed_s: float | None) -> RateState:
    if state.done:
        return state
    k, n = _check_round_counts(new.failures, new.sessions)
    cfg = state.config
    failures, sessions = state.failures + k, state.sessions + n
    low, high = binomial_confidence_sequence(failures, sessions, cfg.alpha, _rate_prior(cfg.tolerated_rate))
    low, high = _intersect(state.looks[-1] if state.looks else None, low, high)
    decision = RateVerdict.INCONCLUSIVE
    if sessions > 0 and high <= cfg.tolerated_rate:
        decision = RateVerdict.PASS
    elif sessions > 0 and low > cfg.tolerated_rate:
        decision = RateVerdict.FAIL
    look = Look(
        round=len(state.looks) + 1,
        n_baseline=None,
        n_candidate=sessions,
        estimate=failures / sessions if sessions else math.nan,
        low=low,
        high=high,
        decision=decision,
        elapsed_s=elapsed_s,
    )
    looks = state.looks + (look,)
    stop = _stop_reason(
        decision is not RateVerdict.INCONCLUSIVE,
        sessions,
        cfg.max_sessions,
        elapsed_s,
        cfg.max_seconds,
        len(looks),
        cfg.max_rounds,
    )
    return replace(state, failures=failures, sessions=sessions, looks=looks, stop=stop, elapsed_s=elapsed_s)


def _rate_needed(k: int, n: int, tolerated: float, alpha: float, prior: tuple[float, float]) -> int | None:
    """Sessions at which the sequence would clear the tolerated rate if the observed rate held."""
    if n == 0:
        k, n = 0, 1  # nothing seen yet: assume the best case, no failures
    rate = k / n
    if rate == tolerated or tolerated <= 0.0 or tolerated >= 1.0:
        return None

    def clears(m: int) -> bool:
        km = min(m, round(rate * m))
        low, high = binomial_confidence_sequence(km, m, alpha, prior)
        return high <= tolerated if rate < tolerated else low > tolerated

    return _smallest_n(n, clears)


def _rate_result(state: RateState) -> SequentialResult:
    cfg = state.config
    last = state.looks[-1] if state.looks else None
    verdict = last.decision if last is not None else RateVerdict.INCONCLUSIVE
    conf = 1.0 - cfg.alpha
    tol = _pct(cfg.tolerated_rate)
    if last is None or state.sessions == 0:
        reason = "no sessions: nothing shows that the rate is within the tolerated " + tol
    else:
        seq = (
            f"{state.failures} of {state.sessions} failed; the {conf:.2%} confidence sequence "
            f"[{_pct(last.low)}, {_pct(last.high)}]"
        )
        if verdict is RateVerdict.PASS:
            reason = f"{seq} lies at or below the tolerated {tol}"
        elif verdict is RateVerdict.FAIL:
            reason = f"{seq} lies above the tolerated {tol}"
        else:
            reason = f"{seq} straddles the tolerated {tol}"
    needed = None
    if state.done and verdict is RateVerdict.INCONCLUSIVE:
        needed = _rate_needed(
            state.failures, state.sessions, cfg.tolerated_rate, cfg.alpha, _rate_prior(cfg.tolerated_rate)
        )
    return SequentialResult(
        claim="failure_rate",
        verdict=verdict,
        stop=state.stop,
        stop_text=_stop_text(state.stop, state.looks, "sessions", cfg.max_sessions, cfg.max_seconds, cfg.max_rounds),
        reason=reason,
        looks=state.looks,
        threshold=cfg.tolerated_rate,
        confidence=conf,
        family_size=cfg.family_size,
        needed=needed,
    )


# --------------------------------------------------------------------------- the fix works


@dataclass(frozen=True)
class FixSequentialConfig:
    """Did the candidate fix the failure the baseline showed? Budget: sessions per side, seconds."""

    tolerated_rate: float
    confidence: float = 0.95
    family_size: int = 1
    max_sessions_per_side: int = 2000
    max_seconds: float | None = None
    max_rounds: int = 10_000

    def __post_init__(self) -> None:
        RateSequentialConfig(
            self.tolerated_rate,
            self.confidence,
            self.family_size,
            self.max_sessions_per_side,
            self.max_seconds,
            self.max_rounds,
        )

    @property
    def alpha_per_side(self) -> float:
        return (1.0 - self.confidence) / self.family_size / 2.0


@dataclass(frozen=True)
class FixState(_Stoppable):
    config: FixSequentialConfig
    baseline_failures: int = 0
    baseline_sessions: int = 0
    candidate_failures: int = 0
    candidate_sessions: int = 0
    looks: tuple[Look, ...] = ()
    stop: StopReason = StopReason.RUNNING
    elapsed_s: float | None = None

    @property
    def result(self) -> SequentialResult:
        return _fix_result(self)


def start_fix(config: FixSequentialConfig) -> FixState:
    return FixState(config=config)


_BASELINE_PRIOR = (0.5, 0.5)  # the baseline's rate is whatever the bug makes it: Jeffreys


def _update_fix(state: FixState, new: FixRound, elapsed_s: float | None) -> FixState:
    if state.done:
        return state
    kb, nb = _check_round_counts(new.baseline_failures, new.baseline_sessions, "baseline_")
    kc, nc = _check_round_counts(new.candidate_failures, new.candidate_sessions, "candidate_")
    cfg = state.config
    kb, nb = state.baseline_failures + kb, state.baseline_sessions + nb
    kc, nc = state.candidate_failures + kc, state.candidate_sessions + nc
    prev = state.looks[-1] if state.looks else None
    b_low, b_high = binomial_confidence_sequence(kb, nb, cfg.alpha_per_side, _BASELINE_PRIOR)
    c_low, c_high = binomial_confidence_sequence(kc, nc, cfg.alpha_per_side, _rate_prior(cfg.tolerated_rate))
    c_low, c_high = _intersect(prev, c_low, c_high)
    if prev is not None and prev.reference_low is not None and prev.reference_high is not None:
        b_low, b_high = max(b_low, prev.reference_low), min(b_high, prev.reference_high)
    decision = FixStatus.INCONCLUSIVE
    if nb > 0 and nc > 0:
        if c_low > b_high or c_low > cfg.tolerated_rate:
            decision = FixStatus.NOT_FIXED
        elif c_high < b_low and c_high <= cfg.tolerated_rate:
            decision = FixStatus.FIXED
    look = Look(
        round=len(state.looks) + 1,
        n_baseline=nb,
        n_candidate=nc,
        estimate=kc / nc if nc else math.nan,
        low=c_low,
        high=c_high,
        decision=decision,
        elapsed_s=elapsed_s,
        reference_low=b_low,
        reference_high=b_high,
    )
    looks = state.looks + (look,)
    stop = _stop_reason(
        decision is not FixStatus.INCONCLUSIVE,
        max(nb, nc),
        cfg.max_sessions_per_side,
        elapsed_s,
        cfg.max_seconds,
        len(looks),
        cfg.max_rounds,
    )
    return replace(
        state,
        baseline_failures=kb,
        baseline_sessions=nb,
        candidate_failures=kc,
        candidate_sessions=nc,
        looks=looks,
        stop=stop,
        elapsed_s=elapsed_s,
    )


def _fix_result(state: FixState) -> SequentialResult:
    cfg = state.config
    last = state.looks[-1] if state.looks else None
    verdict = last.decision if last is not None else FixStatus.INCONCLUSIVE
    conf = 1.0 - 2.0 * cfg.alpha_per_side
    if last is None or state.baseline_sessions == 0 or state.candidate_sessions == 0:
        reason = "no sessions on one side"
    else:
        reason = (
            f"baseline {state.baseline_failures} of {state.baseline_sessions} "
            f"[{_pct(last.reference_low or 0.0)}, {_pct(last.reference_high or 1.0)}], candidate "
            f"{state.candidate_failures} of {state.candidate_sessions} [{_pct(last.low)}, {_pct(last.high)}] "
            f"(confidence sequences, {conf:.2%} jointly), tolerated {_pct(cfg.tolerated_rate)}"
        )
    needed = None
    if state.done and verdict is FixStatus.INCONCLUSIVE and state.candidate_sessions:
        needed = _rate_needed(
            state.candidate_failures,
            state.candidate_sessions,
            cfg.tolerated_rate,
            cfg.alpha_per_side,
            _rate_prior(cfg.tolerated_rate),
        )
    return SequentialResult(
        claim="fix",
        verdict=verdict,
        stop=state.stop,
        stop_text=_stop_text(
            state.stop, state.looks, "sessions per side", cfg.max_sessions_per_side, cfg.max_seconds, cfg.max_rounds
        ),
        reason=reason,
        looks=state.looks,
        threshold=cfg.tolerated_rate,
        confidence=conf,
        family_size=cfg.family_size,
        needed=needed,
    )


# --------------------------------------------------------------------------- driver

State = PerfState | PerfFamilyState | RateState | FixState
Round = PerfRound | Mapping[str, PerfRound] | RateRound | FixRound


@overload
def update(state: PerfState, new: PerfRound, *, elapsed_s: float | None = None) -> PerfState: ...
@overload
def update(
    state: PerfFamilyState, new: Mapping[str, PerfRound], *, elapsed_s: float | None = None
) -> PerfFamilyState: ...
@overload
def update(state: RateState, new: RateRound, *, elapsed_s: float | None = None) -> RateState: ...
@overload
def update(state: FixState, new: FixRound, *, elapsed_s: float | None = None) -> FixState: ...
@overload
def update(state: State, new: Round, *, elapsed_s: float | None = None) -> State: ...


def update(state: State, new: Round, *, elapsed_s: float | None = None) -> State:
    """Pure: the state after one more round. ``elapsed_s`` (seconds since sampling began,
    measured by the caller) feeds the time budget. A finished state is returned unchanged."""
    if isinstance(state, PerfState) and isinstance(new, PerfRound):
        return _update_perf(state, new, elapsed_s)
    if isinstance(state, PerfFamilyState) and isinstance(new, Mapping):
        return _update_family(state, new, elapsed_s)
    if isinstance(state, RateState) and isinstance(new, RateRound):
        return _update_rate(state, new, elapsed_s)
    if isinstance(state, FixState) and isinstance(new, FixRound):
        return _update_fix(state, new, elapsed_s)
    raise StatisticsInputError(f"cannot update a {type(state).__name__} with a {type(new).__name__}")


S = TypeVar("S", PerfState, PerfFamilyState, RateState, FixState)


def halt(state: S, reason: StopReason = StopReason.NO_MORE_DATA) -> S:
    """The state stopped for ``reason`` (a caller's budget, or no more data); a done state (and a
    done operation of a family) keeps its own stop reason."""
    return _halt(state, reason)  # type: ignore[return-value]  # _halt keeps the type it is given


def _halt(state: State, reason: StopReason) -> State:
    if isinstance(state, PerfFamilyState):
        return PerfFamilyState({op: halt(s, reason) for op, s in state.operations.items()})
    return state if state.done else replace(state, stop=reason)


def round_would_overrun(elapsed_s: float, longest_round_s: float, max_seconds: float | None) -> str:
    """Why the next round is not started ("" if it may be): it would end past the time budget,
    judged by the longest round so far. Checked before a round, so that a budget is a bound on
    the sampling's wall time, not only the moment it is noticed."""
    if max_seconds is None or elapsed_s + longest_round_s <= max_seconds:
        return ""
    return (
        f"the next round would have ended past the {max_seconds:g} s budget "
        f"({elapsed_s:.1f} s spent, rounds took up to {longest_round_s:.1f} s)"
    )


def run(
    state: State,
    next_round: Callable[[int], Round | None],
    *,
    clock: Callable[[], float] = time.monotonic,
) -> State:
    """Ask ``next_round(round_index)`` for rounds until the state is done; returns the final state
    (``.result`` / ``.results``). ``next_round`` returning None means there is no more data
    (stop reason NO_MORE_DATA). The I/O lives in ``next_round``; ``clock`` is injectable for tests."""
    start = clock()
    index = 0
    while not state.done:
        new = next_round(index)
        index += 1
        if new is None:
            return _halt(state, StopReason.NO_MORE_DATA)
        state = update(state, new, elapsed_s=clock() - start)
    return state
