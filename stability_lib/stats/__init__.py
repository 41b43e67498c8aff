"""Statistics behind every verdict (pure: numpy/scipy and stability_lib.core only; no I/O, seeded randomness).

Modules by the question asked: ``rates`` (failure rates), ``bootstrap`` and ``performance``
(candidate vs baseline timings), ``fixes`` ("the fix works"), ``sequential`` (the same verdicts,
sampled in rounds until the evidence decides); ``_validate`` holds the shared input checks.
The public names are re-exported here.

Statistics behind every verdict (pure: numpy/scipy only, no I/O, seeded).

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

from ._validate import StatisticsInputError
from .bootstrap import bootstrap_quantiles, bootstrap_quantiles_by_resampling, hodges_lehmann_shift
from .fixes import FIX_RULE_TEXT, FixStatus, FixVerdict, compare_failure_rates
from .performance import (
    PERFORMANCE_RULE_TEXT,
    SAMPLES_NEEDED_TEXT,
    Comparison,
    PerfVerdict,
    RatioInterval,
    compare_samples,
)
from .rates import (
    FAILURE_RATE_RULE_TEXT,
    RateEstimate,
    RateVerdict,
    clopper_pearson,
    judge_failure_rate,
    rate_estimate,
    sessions_needed,
    upper_bound,
)

__all__ = [
    "StatisticsInputError",
    "FAILURE_RATE_RULE_TEXT",
    "clopper_pearson",
    "upper_bound",
    "sessions_needed",
    "RateEstimate",
    "rate_estimate",
    "RateVerdict",
    "judge_failure_rate",
    "bootstrap_quantiles",
    "bootstrap_quantiles_by_resampling",
    "hodges_lehmann_shift",
    "PERFORMANCE_RULE_TEXT",
    "SAMPLES_NEEDED_TEXT",
    "PerfVerdict",
    "RatioInterval",
    "Comparison",
    "compare_samples",
    "FIX_RULE_TEXT",
    "FixStatus",
    "FixVerdict",
    "compare_failure_rates",
]
