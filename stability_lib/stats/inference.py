"""Statistics behind every verdict (pure: numpy/scipy only, no I/O, seeded).

Failure rates
    A rate is reported as "k of n" with an exact (Clopper-Pearson) two-sided
    interval and an exact one-sided upper bound. ``judge_failure_rate`` says
    PASS only when the one-sided upper bound is at or below the tolerated rate,
    FAIL only when the two-sided interval lies entirely above it, and
    INCONCLUSIVE otherwise (with how many sessions would settle it). Zero
    failures in n sessions bounds the rate at 1 - (1 - confidence)**(1/n), about
    3/n at 95% ("rule of three"): 0 of 500 -> 0.60%.

Performance (``compare_samples``)
    The verdict is decided on the ratio of medians (candidate / baseline) and its
    percentile-bootstrap confidence interval; see ``PERFORMANCE_RULE_TEXT``
    (quotable in a report appendix) and ``SAMPLES_NEEDED_TEXT``. The bootstrap of
    a quantile is simulated exactly from order-statistic distributions rather than
    by materialising resamples (``bootstrap_quantiles`` explains why this is the
    same distribution; ``bootstrap_quantiles_by_resampling`` is the textbook
    reference it is tested against), so 10,000 resamples cost milliseconds at any
    sample size. Mann-Whitney U p-values and the Hodges-Lehmann shift (median of
    all pairwise differences, selected without materialising the pairs) are
    reported beside it but do not decide.

Fixes (``compare_failure_rates``)
    "The fix works" needs a one-sided Fisher exact test showing the candidate
    fails less often and the candidate's upper bound within tolerance; see
    ``FIX_RULE_TEXT``.

Every function validates its input and raises ``StatisticsInputError`` (a
``ValueError`` and a ``StabilityError``) on negative counts, k > n, NaN samples.
"""

from __future__ import annotations

import enum
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _sps

from ..core.errors import StabilityError
from ..core.models import Figure, Status

__all__ = [
    "StatisticsInputError",
    # failure rates
    "FAILURE_RATE_RULE_TEXT",
    "clopper_pearson",
    "upper_bound",
    "sessions_needed",
    "RateEstimate",
    "rate_estimate",
    "RateVerdict",
    "judge_failure_rate",
    # performance
    "PERFORMANCE_RULE_TEXT",
    "SAMPLES_NEEDED_TEXT",
    "PerfVerdict",
    "RatioInterval",
    "Comparison",
    "compare_samples",
    "bootstrap_quantiles",
    "bootstrap_quantiles_by_resampling",
    "hodges_lehmann_shift",
    # fixes
    "FIX_RULE_TEXT",
    "FixStatus",
    "FixVerdict",
    "compare_failure_rates",
]


class StatisticsInputError(StabilityError, ValueError):
    """Invalid input to a statistic (negative count, k > n, NaN sample...).

    A ``ValueError`` too, so callers may catch either.
    """


# --------------------------------------------------------------------------- validation


def _check_count(name: str, value: Any) -> int:
    # bool is an int subclass; "True failures" is a bug in the caller, not a count.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise StatisticsInputError(f"{name} must be an integer, got {value!r}")
    count = int(value)
    if count < 0:
        raise StatisticsInputError(f"{name} must be >= 0, got {count}")
    return count


def _check_k_n(k: Any, n: Any) -> tuple[int, int]:
    k = _check_count("k", k)
    n = _check_count("n", n)
    if k > n:
        raise StatisticsInputError(f"k ({k}) cannot exceed n ({n})")
    return k, n


def _check_probability(name: str, value: Any, *, open_low: bool, open_high: bool) -> float:
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise StatisticsInputError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(p):
        raise StatisticsInputError(f"{name} must not be NaN")
    low_ok = p > 0.0 if open_low else p >= 0.0
    high_ok = p < 1.0 if open_high else p <= 1.0
    if not (low_ok and high_ok):
        lo = "(0" if open_low else "[0"
        hi = "1)" if open_high else "1]"
        raise StatisticsInputError(f"{name} must be in {lo}, {hi}, got {p}")
    return p


def _check_confidence(confidence: Any) -> float:
    return _check_probability("confidence", confidence, open_low=True, open_high=True)


# --------------------------------------------------------------------------- formatting


def _pct(x: float) -> str:
    """A proportion as a percentage; tiny non-zero values keep significant digits.

    An upper bound of 0.0003% must not print as "0.00%" (that would read as zero).
    """
    if math.isnan(x):
        return "n/a"
    p = 100.0 * x
    if p != 0.0 and abs(p) < 0.01:
        return f"{p:.2g}%"
    return f"{p:.2f}%"


def _conf_label(confidence: float) -> str:
    c = 100.0 * confidence
    return f"{c:.0f}%" if abs(c - round(c)) < 1e-9 else f"{c:g}%"


def _json_float(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# --------------------------------------------------------------------------- failure rates

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
    ci = _sps.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return (float(ci.low), float(ci.high))


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
    return float(_sps.beta.ppf(confidence, k + 1, n - k))


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


class _Verdict(str, enum.Enum):
    """A statistical verdict that maps onto a check's Status."""

    def __str__(self) -> str:
        return str(self.value)

    @property
    def status(self) -> Status:
        return _VERDICT_STATUS[self.value]

    @property
    def label(self) -> str:
        return str(self.value).replace("_", " ")


_VERDICT_STATUS: dict[str, Status] = {
    "PASS": Status.PASS,
    "FAIL": Status.FAIL,
    "INCONCLUSIVE": Status.INCONCLUSIVE,
    "NO_REGRESSION": Status.PASS,
    "REGRESSION": Status.FAIL,
    "FIXED": Status.PASS,
    "NOT_FIXED": Status.FAIL,
}


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


# --------------------------------------------------------------------------- performance comparison

PERFORMANCE_RULE_TEXT = (
    "Performance verdict rule. For each operation we compare the candidate's latencies with the "
    "baseline's through the ratio of their medians (candidate / baseline) and a 95% percentile "
    "bootstrap confidence interval for that ratio, resampling each side independently. "
    "NO REGRESSION is declared only when the whole interval lies at or below 1 + tolerance "
    "(for a 10% tolerance: the data rule out a slowdown of more than 10% of the median). "
    "REGRESSION is declared only when the whole interval lies above 1 + tolerance (the data "
    "rule out a slowdown within the tolerance). Otherwise the result is INCONCLUSIVE, and we "
    "estimate how many samples per side would settle it. With fewer than the minimum number of "
    "samples on either side the result is INCONCLUSIVE, never NO REGRESSION. "
    "Why this rule: a test that merely fails to find a difference is not evidence that there is "
    "none, so a claim of no regression has to be earned by an interval that excludes every "
    "slowdown larger than the tolerance. Judging the size of the effect against a stated "
    "tolerance, rather than a p-value alone, also stops large samples from flagging "
    "differences too small to matter. The Mann-Whitney U p-values and the Hodges-Lehmann "
    "shift are reported alongside as supporting evidence; they do not decide the verdict. "
    "The 95th-percentile ratio and its interval are reported too, for information."
)

SAMPLES_NEEDED_TEXT = (
    "Samples needed is an approximation: it assumes the width of the interval for the log of the "
    "median ratio shrinks as 1/sqrt(n) while the point estimate stays where it is, and gives the "
    "number of samples per side at which the interval would no longer straddle 1 + tolerance on "
    "the side the point estimate is on."
)


class PerfVerdict(_Verdict):
    """Did the candidate get slower than the tolerance allows?"""

    NO_REGRESSION = "NO_REGRESSION"
    REGRESSION = "REGRESSION"
    INCONCLUSIVE = "INCONCLUSIVE"


def _as_samples(name: str, values: Any) -> np.ndarray:
    arr = _as_finite(name, values)
    if np.any(arr <= 0.0):
        # Ratios of medians need a positive scale (durations, sizes).
        raise StatisticsInputError(f"{name} must contain only positive values")
    return arr


def _generator(seed: int | np.random.Generator) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise StatisticsInputError(f"seed must be an int or a numpy Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


def _quantile_position(n: int, q: float) -> tuple[int, float]:
    """numpy's default ("linear", type 7) quantile: (0-based lower index, interpolation weight)."""
    h = (n - 1) * q
    lo = int(math.floor(h))
    return lo, h - lo


def bootstrap_quantiles(
    sorted_values: np.ndarray, qs: tuple[float, ...], resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Bootstrap replicates of sample quantiles, exact and in O(resamples) time.

    Equivalent in distribution to drawing ``resamples`` resamples of size n with
    replacement and taking ``np.quantile(resample, q)`` of each, but without
    materialising them. Why it is exact: a resample is x[I_1..I_n] with
    I_m = ceil(n * V_m), V_m iid Uniform(0, 1). Because ``sorted_values`` is sorted
    and the map V -> x[ceil(n V)] is non-decreasing, the j-th smallest value of the
    resample is x[ceil(n * V_(j))], where V_(j) is the j-th order statistic of n
    uniforms: V_(j) ~ Beta(j, n - j + 1), and V_(j+1) = V_(j) + (1 - V_(j)) * B with
    B ~ Beta(1, n - j) independent. numpy's linear quantile needs only the two
    adjacent order statistics j, j+1, so two beta draws per resample suffice.
    Returns an array of shape (len(qs), resamples).
    """
    n = sorted_values.shape[0]
    out = np.empty((len(qs), resamples), dtype=np.float64)
    for row, q in enumerate(qs):
        lo, frac = _quantile_position(n, q)
        j = lo + 1  # 1-based rank of the lower order statistic
        v_lo = rng.beta(j, n - j + 1, size=resamples)
        idx_lo = np.clip(np.ceil(n * v_lo).astype(np.int64), 1, n) - 1
        value = sorted_values[idx_lo]
        if frac > 0.0 and j < n:
            v_hi = v_lo + (1.0 - v_lo) * rng.beta(1, n - j, size=resamples)
            idx_hi = np.clip(np.ceil(n * v_hi).astype(np.int64), 1, n) - 1
            value = value + frac * (sorted_values[idx_hi] - value)
        out[row] = value
    return out


def bootstrap_quantiles_by_resampling(
    values: np.ndarray,
    qs: tuple[float, ...],
    resamples: int,
    rng: np.random.Generator,
    *,
    max_chunk_elements: int = 4_000_000,
) -> np.ndarray:
    """The textbook percentile bootstrap of quantiles, by materialising resamples.

    Kept as the reference that ``bootstrap_quantiles`` is checked against (tests,
    benchmark). Chunked so memory stays at about ``max_chunk_elements`` * 16 bytes.
    """
    n = values.shape[0]
    out = np.empty((len(qs), resamples), dtype=np.float64)
    rows = max(1, max_chunk_elements // max(n, 1))
    for start in range(0, resamples, rows):
        stop = min(resamples, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[:, start:stop] = np.quantile(values[idx], qs, axis=1)
    return out


def _kth_pairwise_difference(
    a_sorted: np.ndarray, b_neg_sorted: np.ndarray, k: int, rng: np.random.Generator, materialize_limit: int
) -> float:
    """The k-th smallest (0-based) of a_i + c_j over all pairs, both inputs sorted ascending.

    Randomised selection in the sorted matrix a_i + c_j: pick a pivot among the still
    active pairs, count pairs below/equal to it with ``searchsorted`` per row
    (O(n log n), no pair materialised), keep the side that holds rank k; once few
    enough pairs remain, materialise them and use ``np.partition``. Memory O(n +
    materialize_limit). Float rounding in the row comparisons can misplace a pair by
    one ulp of its value, hence "exact-enough".
    """
    na, nc = a_sorted.shape[0], b_neg_sorted.shape[0]
    lo = np.zeros(na, dtype=np.int64)
    hi = np.full(na, nc, dtype=np.int64)
    rank = k
    for _ in range(200):
        widths = hi - lo
        total = int(widths.sum())
        if total <= materialize_limit:
            rows = np.repeat(np.arange(na), widths)
            offsets = np.arange(total) - np.repeat(np.cumsum(widths) - widths, widths)
            cols = np.repeat(lo, widths) + offsets
            active = a_sorted[rows] + b_neg_sorted[cols]
            return float(np.partition(active, rank)[rank])
        pick = int(rng.integers(0, total))
        row = int(np.searchsorted(np.cumsum(widths), pick, side="right"))
        col = int(lo[row] + pick - (int(widths[:row].sum())))
        pivot = a_sorted[row] + b_neg_sorted[col]
        below = np.clip(np.searchsorted(b_neg_sorted, pivot - a_sorted, side="left"), lo, hi)
        upto = np.clip(np.searchsorted(b_neg_sorted, pivot - a_sorted, side="right"), lo, hi)
        n_below = int((below - lo).sum())
        n_equal = int((upto - below).sum())
        if rank < n_below:
            hi = below
        elif rank < n_below + n_equal:
            return float(pivot)
        else:
            rank -= n_below + n_equal
            lo = upto
    raise RuntimeError("pairwise-difference selection did not converge")  # pragma: no cover


def hodges_lehmann_shift(
    baseline: np.ndarray,
    candidate: np.ndarray,
    *,
    seed: int | np.random.Generator = 0,
    materialize_limit: int = 250_000,
) -> float:
    """Hodges-Lehmann shift: the median of all pairwise differences candidate - baseline.

    Exact up to float rounding, with memory bounded by ``materialize_limit`` pairs
    (about 10 MB of scratch by default) whatever the sample sizes: see ``_kth_pairwise_difference``.
    The seed only chooses pivots; the result does not depend on it.
    """
    base = np.sort(_as_finite("baseline", baseline))
    cand = np.sort(_as_finite("candidate", candidate))
    if base.size == 0 or cand.size == 0:
        return math.nan
    rng = _generator(seed)
    neg_base = np.sort(-base)
    total = base.size * cand.size
    half = total // 2
    if total % 2 == 1:
        return _kth_pairwise_difference(cand, neg_base, half, rng, materialize_limit)
    low = _kth_pairwise_difference(cand, neg_base, half - 1, rng, materialize_limit)
    high = _kth_pairwise_difference(cand, neg_base, half, rng, materialize_limit)
    return 0.5 * (low + high)


def _as_finite(name: str, values: Any) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise StatisticsInputError(f"{name} must be a sequence of numbers") from None
    if arr.ndim != 1:
        raise StatisticsInputError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise StatisticsInputError(f"{name} contains NaN or infinite values")
    return arr


@dataclass(frozen=True)
class RatioInterval:
    """A candidate/baseline ratio with its bootstrap confidence interval."""

    ratio: float
    ci_low: float
    ci_high: float

    def serialize(self) -> dict[str, Any]:
        return {
            "ratio": _json_float(self.ratio),
            "ci_low": _json_float(self.ci_low),
            "ci_high": _json_float(self.ci_high),
        }


@dataclass(frozen=True)
class Comparison:
    """Baseline vs candidate samples of one operation, and the verdict on them.

    ``verdict`` follows ``PERFORMANCE_RULE_TEXT``; ``reason`` says why in words;
    ``samples_needed`` (per side) is set only when INCONCLUSIVE (see
    ``SAMPLES_NEEDED_TEXT``), None when settled or when no sample size would help.
    """

    n_baseline: int
    n_candidate: int
    median_baseline: float
    median_candidate: float
    p95_baseline: float
    p95_candidate: float
    median_ratio: RatioInterval
    p95_ratio: RatioInterval
    mannwhitney_p_two_sided: float
    mannwhitney_p_candidate_greater: float
    hodges_lehmann_shift: float
    verdict: PerfVerdict
    reason: str
    samples_needed: int | None
    tolerance: float
    confidence: float
    resamples: int
    seed: int | None
    min_samples: int
    unit: str = ""

    def describe(self) -> str:
        """E.g. "p50 ratio 1.02, 95% CI [0.98, 1.05], tolerance 10%: NO REGRESSION (n=200/200,
        Mann-Whitney two-sided p=0.41, HL shift +0.3 ms)"."""
        conf = _conf_label(self.confidence)
        tol = f"{100.0 * self.tolerance:g}%"
        m = self.median_ratio
        if math.isnan(m.ratio):
            head = "p50 ratio n/a"
        else:
            head = f"p50 ratio {m.ratio:.2f}, {conf} CI [{m.ci_low:.2f}, {m.ci_high:.2f}]"
        parts = [f"n={self.n_baseline}/{self.n_candidate}"]
        if not math.isnan(self.mannwhitney_p_two_sided):
            parts.append(f"Mann-Whitney two-sided {_p_text(self.mannwhitney_p_two_sided)}")
        if not math.isnan(self.hodges_lehmann_shift):
            unit = f" {self.unit}" if self.unit else ""
            parts.append(f"HL shift {_signed(self.hodges_lehmann_shift)}{unit}")
        text = f"{head}, tolerance {tol}: {self.verdict.label} ({', '.join(parts)})"
        if self.verdict is PerfVerdict.INCONCLUSIVE:
            text += f"; {self.reason}"
            if self.samples_needed is not None:
                text += f"; about {self.samples_needed} samples per side would settle it"
        return text

    def figure(self) -> Figure:
        """The median ratio with its interval against the tolerance, structured for the report."""
        m = self.median_ratio
        return Figure(
            kind="ratio",
            value=_json_float(m.ratio),
            low=_json_float(m.ci_low),
            high=_json_float(m.ci_high),
            confidence=self.confidence,
            n=self.n_candidate,
            baseline_n=self.n_baseline,
            test="bootstrap interval of the median ratio",
            tolerance=self.tolerance,
            what="median",
        )

    def serialize(self) -> dict[str, Any]:
        return {
            "n_baseline": self.n_baseline,
            "n_candidate": self.n_candidate,
            "median_baseline": _json_float(self.median_baseline),
            "median_candidate": _json_float(self.median_candidate),
            "p95_baseline": _json_float(self.p95_baseline),
            "p95_candidate": _json_float(self.p95_candidate),
            "median_ratio": self.median_ratio.serialize(),
            "p95_ratio": self.p95_ratio.serialize(),
            "mannwhitney_p_two_sided": _json_float(self.mannwhitney_p_two_sided),
            "mannwhitney_p_candidate_greater": _json_float(self.mannwhitney_p_candidate_greater),
            "hodges_lehmann_shift": _json_float(self.hodges_lehmann_shift),
            "verdict": self.verdict.value,
            "reason": self.reason,
            "samples_needed": self.samples_needed,
            "tolerance": self.tolerance,
            "confidence": self.confidence,
            "resamples": self.resamples,
            "seed": self.seed,
            "min_samples": self.min_samples,
            "unit": self.unit,
        }


def _p_text(p: float) -> str:
    if p < 0.001:
        return "p<0.001"
    return f"p={p:.2g}" if p < 0.01 else f"p={p:.2f}"


def _signed(x: float) -> str:
    text = f"{x:+.3g}"
    return text if "e" not in text else f"{x:+.2e}"


def _ratio_interval(num: np.ndarray, den: np.ndarray, point: float, confidence: float) -> RatioInterval:
    ratios = num / den
    alpha = 1.0 - confidence
    low, high = np.quantile(ratios, [alpha / 2.0, 1.0 - alpha / 2.0])
    return RatioInterval(ratio=point, ci_low=float(low), ci_high=float(high))


def _samples_needed_for(interval: RatioInterval, threshold: float, n_base: int, n_cand: int) -> int | None:
    """Per-side n at which the ratio CI would clear ``threshold`` (see SAMPLES_NEEDED_TEXT)."""
    r, low, high = interval.ratio, interval.ci_low, interval.ci_high
    if not (r > 0 and low > 0 and high > 0) or r == threshold:
        return None
    log_r, log_t = math.log(r), math.log(threshold)
    # Half-width on the side facing the threshold, on the log scale.
    half = (math.log(high) - log_r) if r < threshold else (log_r - math.log(low))
    gap = abs(log_t - log_r)
    if half <= 0.0:
        return None
    factor = (half / gap) ** 2
    return int(math.ceil(max(n_base, n_cand) * factor))


def compare_samples(
    baseline: Any,
    candidate: Any,
    *,
    tolerance: float = 0.10,
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int | np.random.Generator = 0,
    min_samples: int = 20,
    unit: str = "",
) -> Comparison:
    """Compare one operation's samples (e.g. latencies) between baseline and candidate.

    All samples must be finite and positive. Empty sides give INCONCLUSIVE with NaN
    statistics (no evidence is never NO REGRESSION). See ``PERFORMANCE_RULE_TEXT``.
    """
    base = _as_samples("baseline", baseline)
    cand = _as_samples("candidate", candidate)
    try:
        tolerance = float(tolerance)
    except (TypeError, ValueError):
        raise StatisticsInputError(f"tolerance must be a number, got {tolerance!r}") from None
    if not (math.isfinite(tolerance) and tolerance >= 0.0):
        raise StatisticsInputError(f"tolerance must be finite and >= 0, got {tolerance}")
    confidence = _check_confidence(confidence)
    resamples = _check_count("resamples", resamples)
    if resamples < 100:
        raise StatisticsInputError(f"resamples must be >= 100, got {resamples}")
    min_samples = _check_count("min_samples", min_samples)
    if min_samples < 2:
        raise StatisticsInputError(f"min_samples must be >= 2, got {min_samples}")
    rng = _generator(seed)
    seed_value = None if isinstance(seed, np.random.Generator) else int(seed)
    threshold = 1.0 + tolerance
    n_b, n_c = int(base.size), int(cand.size)
    common: dict[str, Any] = {
        "n_baseline": n_b,
        "n_candidate": n_c,
        "tolerance": tolerance,
        "confidence": confidence,
        "resamples": resamples,
        "seed": seed_value,
        "min_samples": min_samples,
        "unit": str(unit),
    }
    if n_b == 0 or n_c == 0:
        nan_ratio = RatioInterval(math.nan, math.nan, math.nan)
        return Comparison(
            median_baseline=float(np.median(base)) if n_b else math.nan,
            median_candidate=float(np.median(cand)) if n_c else math.nan,
            p95_baseline=float(np.quantile(base, 0.95)) if n_b else math.nan,
            p95_candidate=float(np.quantile(cand, 0.95)) if n_c else math.nan,
            median_ratio=nan_ratio,
            p95_ratio=nan_ratio,
            mannwhitney_p_two_sided=math.nan,
            mannwhitney_p_candidate_greater=math.nan,
            hodges_lehmann_shift=math.nan,
            verdict=PerfVerdict.INCONCLUSIVE,
            reason=f"no samples on the {'baseline' if n_b == 0 else 'candidate'} side",
            samples_needed=min_samples,
            **common,
        )

    base_sorted, cand_sorted = np.sort(base), np.sort(cand)
    qs = (0.5, 0.95)
    base_q = np.quantile(base_sorted, qs)
    cand_q = np.quantile(cand_sorted, qs)
    boot_base = bootstrap_quantiles(base_sorted, qs, resamples, rng)
    boot_cand = bootstrap_quantiles(cand_sorted, qs, resamples, rng)
    median_ratio = _ratio_interval(boot_cand[0], boot_base[0], float(cand_q[0] / base_q[0]), confidence)
    p95_ratio = _ratio_interval(boot_cand[1], boot_base[1], float(cand_q[1] / base_q[1]), confidence)
    mw_two = float(_sps.mannwhitneyu(cand, base, alternative="two-sided").pvalue)
    mw_greater = float(_sps.mannwhitneyu(cand, base, alternative="greater").pvalue)
    shift = hodges_lehmann_shift(base, cand, seed=rng)

    conf = _conf_label(confidence)
    needed: int | None = None
    if min(n_b, n_c) < min_samples:
        verdict = PerfVerdict.INCONCLUSIVE
        reason = f"too few samples ({n_b}/{n_c}, at least {min_samples} per side required)"
        estimate = _samples_needed_for(median_ratio, threshold, n_b, n_c)
        needed = max(min_samples, estimate) if estimate is not None else min_samples
    elif median_ratio.ci_high <= threshold:
        verdict = PerfVerdict.NO_REGRESSION
        reason = f"the {conf} interval of the median ratio lies at or below {threshold:.2f}"
    elif median_ratio.ci_low > threshold:
        verdict = PerfVerdict.REGRESSION
        reason = f"the {conf} interval of the median ratio lies above {threshold:.2f}"
    else:
        verdict = PerfVerdict.INCONCLUSIVE
        reason = f"the {conf} interval of the median ratio straddles {threshold:.2f}"
        needed = _samples_needed_for(median_ratio, threshold, n_b, n_c)
        if needed is not None:
            needed = max(needed, min_samples)
    return Comparison(
        median_baseline=float(base_q[0]),
        median_candidate=float(cand_q[0]),
        p95_baseline=float(base_q[1]),
        p95_candidate=float(cand_q[1]),
        median_ratio=median_ratio,
        p95_ratio=p95_ratio,
        mannwhitney_p_two_sided=mw_two,
        mannwhitney_p_candidate_greater=mw_greater,
        hodges_lehmann_shift=shift,
        verdict=verdict,
        reason=reason,
        samples_needed=needed,
        **common,
    )


# --------------------------------------------------------------------------- failure-rate fix

FIX_RULE_TEXT = (
    "Fix verdict rule. A fix is declared to work (FIXED) only when both hold: the candidate's "
    "failure rate is lower than the baseline's by a one-sided Fisher exact test at the 5% level "
    "(one minus the confidence), and the candidate's exact one-sided upper bound on its failure "
    "rate is at or below the tolerated rate. It is NOT FIXED when the candidate's rate is "
    "significantly higher than the baseline's (the same test in the other direction), or when "
    "even the lower end of the candidate's exact two-sided interval is above the tolerated rate. "
    "Anything else is INCONCLUSIVE. Fisher's test is used rather than Boschloo's: it conditions "
    "on the total number of failures, which makes it conservative (it can only understate the "
    "evidence for a fix), deterministic and fast for any sample size; Boschloo's test is more "
    "powerful but needs a numerical search over a nuisance parameter."
)


class FixStatus(_Verdict):
    """Does the candidate fix a failure the baseline showed?"""

    FIXED = "FIXED"
    NOT_FIXED = "NOT_FIXED"
    INCONCLUSIVE = "INCONCLUSIVE"


@dataclass(frozen=True)
class FixVerdict:
    """Baseline vs candidate failure counts and whether the fix is shown to work.

    ``p_candidate_lower``: one-sided Fisher exact p-value for "the candidate fails
    less often than the baseline"; ``p_candidate_higher``: the other direction.
    """

    status: FixStatus
    baseline: RateEstimate
    candidate: RateEstimate
    tolerated_rate: float
    confidence: float
    p_candidate_lower: float
    p_candidate_higher: float
    reason: str

    def describe(self) -> str:
        return (
            f"{self.status.label}: baseline {self.baseline.k} of {self.baseline.n} "
            f"({_pct(self.baseline.rate) if self.baseline.n else 'no data'}), candidate "
            f"{self.candidate.describe()}; Fisher exact one-sided "
            f"{_p_text(self.p_candidate_lower)} that the candidate fails less often; "
            f"tolerated {_pct(self.tolerated_rate)}; {self.reason}"
        )

    def figure(self, what: str = "1011/1006 closes") -> Figure:
        """Candidate rate against the baseline's count (for "the fix works")."""
        c = self.candidate
        return Figure(
            kind="rate",
            value=_json_float(c.rate),
            low=c.ci_low,
            high=c.upper,
            confidence=self.confidence,
            k=c.k,
            n=c.n,
            baseline_k=self.baseline.k,
            baseline_n=self.baseline.n,
            test="Fisher exact one-sided",
            tolerance=self.tolerated_rate,
            what=what,
        )

    def serialize(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "baseline": self.baseline.serialize(),
            "candidate": self.candidate.serialize(),
            "tolerated_rate": self.tolerated_rate,
            "confidence": self.confidence,
            "p_candidate_lower": self.p_candidate_lower,
            "p_candidate_higher": self.p_candidate_higher,
            "reason": self.reason,
        }


def compare_failure_rates(
    k_base: int,
    n_base: int,
    k_cand: int,
    n_cand: int,
    tolerated_rate: float,
    confidence: float = 0.95,
) -> FixVerdict:
    """Did the candidate fix the failure the baseline showed? See ``FIX_RULE_TEXT``."""
    k_base, n_base = _check_k_n(k_base, n_base)
    k_cand, n_cand = _check_k_n(k_cand, n_cand)
    tolerated = _check_probability("tolerated_rate", tolerated_rate, open_low=False, open_high=False)
    confidence = _check_confidence(confidence)
    alpha = 1.0 - confidence
    base = rate_estimate(k_base, n_base, confidence)
    cand = rate_estimate(k_cand, n_cand, confidence)
    if n_base == 0 or n_cand == 0:
        side = "baseline" if n_base == 0 else "candidate"
        return FixVerdict(
            FixStatus.INCONCLUSIVE,
            base,
            cand,
            tolerated,
            confidence,
            1.0,
            1.0,
            f"no sessions on the {side} side",
        )
    table = np.array([[k_base, n_base - k_base], [k_cand, n_cand - k_cand]])
    # "greater": the baseline's odds of failing exceed the candidate's.
    p_lower = float(_sps.fisher_exact(table, alternative="greater").pvalue)
    p_higher = float(_sps.fisher_exact(table, alternative="less").pvalue)
    lower_shown = p_lower < alpha
    within_tolerance = cand.upper <= tolerated
    if p_higher < alpha:
        status = FixStatus.NOT_FIXED
        reason = "the candidate fails significantly more often than the baseline"
    elif cand.ci_low > tolerated:
        status = FixStatus.NOT_FIXED
        reason = "the candidate's failure rate is clearly above the tolerated rate"
    elif lower_shown and within_tolerance:
        status = FixStatus.FIXED
        reason = "the candidate fails significantly less often and its upper bound is within tolerance"
    else:
        status = FixStatus.INCONCLUSIVE
        missing = []
        if not lower_shown:
            missing.append(
                "the baseline never failed, so no improvement can be shown"
                if k_base == 0
                else "the drop in failures is not significant"
            )
        if not within_tolerance:
            missing.append(
                f"the candidate's upper bound {_pct(cand.upper)} exceeds the tolerated rate"
                + (
                    f" ({sessions_needed(tolerated, confidence)} failure-free sessions would bound it)"
                    if k_cand == 0 and tolerated > 0
                    else ""
                )
            )
        reason = "; ".join(missing)
    return FixVerdict(status, base, cand, tolerated, confidence, p_lower, p_higher, reason)
