"""Performance of candidate vs baseline: the ratio of medians and its bootstrap interval decide.

See PERFORMANCE_RULE_TEXT and SAMPLES_NEEDED_TEXT; the Mann-Whitney U p-value and the Hodges-Lehmann
shift are reported beside it but do not decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.models import Figure
from ._validate import (
    StatisticsInputError,
    _check_confidence,
    _check_count,
    _conf_label,
    _json_float,
    _p_text,
    _scipy_stats,
    _Verdict,
)
from .bootstrap import _as_samples, _generator, bootstrap_quantiles, hodges_lehmann_shift

__all__ = [
    "PERFORMANCE_RULE_TEXT",
    "SAMPLES_NEEDED_TEXT",
    "PerfVerdict",
    "RatioInterval",
    "Comparison",
    "compare_samples",
]


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
    mw_two = float(_scipy_stats().mannwhitneyu(cand, base, alternative="two-sided").pvalue)
    mw_greater = float(_scipy_stats().mannwhitneyu(cand, base, alternative="greater").pvalue)
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
