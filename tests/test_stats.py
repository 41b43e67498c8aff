"""Tests for stability_lib.stats (rates, bootstrap, performance, fixes): known values, exactness checks and simulations.

Simulations are seeded (deterministic) and sized to run in a few seconds; the
thresholds they assert are the promises a report makes to its reader.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats as sps

from stability_lib.core.errors import StabilityError
from stability_lib.core.models import Status
from stability_lib.stats._validate import StatisticsInputError
from stability_lib.stats.bootstrap import bootstrap_quantiles, bootstrap_quantiles_by_resampling, hodges_lehmann_shift
from stability_lib.stats.fixes import FIX_RULE_TEXT, FixStatus, compare_failure_rates
from stability_lib.stats.performance import PERFORMANCE_RULE_TEXT, PerfVerdict, compare_samples
from stability_lib.stats.rates import (
    RateVerdict,
    clopper_pearson,
    judge_failure_rate,
    rate_estimate,
    sessions_needed,
    upper_bound,
)

Sampler = Callable[[np.random.Generator, int], np.ndarray]


def lognormal(sigma: float) -> Sampler:
    return lambda rng, n: 10.0 * rng.lognormal(0.0, sigma, n)


def lomax(shape: float) -> Sampler:
    # Pareto II shifted to start at 1: a heavy right tail like real latencies.
    return lambda rng, n: 5.0 * (1.0 + rng.pareto(shape, n))


def verdict_frequencies(sampler: Sampler, factor: float, n: int, trials: int, seed: int) -> Counter:
    rng = np.random.default_rng(seed)
    counts: Counter = Counter()
    for trial in range(trials):
        base = sampler(rng, n)
        cand = sampler(rng, n) * factor
        counts[compare_samples(base, cand, resamples=1000, seed=trial).verdict] += 1
    return counts


# --------------------------------------------------------------------------- failure rates


def test_zero_of_500_upper_bound_is_060_percent() -> None:
    assert upper_bound(0, 500) == pytest.approx(0.00597, abs=1e-4)
    assert upper_bound(0, 500) == pytest.approx(1 - 0.05 ** (1 / 500), rel=1e-12)


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # Textbook Clopper-Pearson values (95%), also what scipy's binomtest gives.
        (0, 10, 0.0, 0.30849710),
        (5, 10, 0.18708603, 0.81291397),
        (10, 10, 0.69150290, 1.0),
        (0, 500, 0.0, 0.00735061),
    ],
)
def test_clopper_pearson_matches_reference_values(k: int, n: int, low: float, high: float) -> None:
    got = clopper_pearson(k, n)
    assert got == pytest.approx((low, high), abs=1e-6)
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert got == pytest.approx((ref.low, ref.high), abs=1e-12)


@pytest.mark.parametrize(("k", "n", "confidence"), [(20, 400, 0.95), (3, 17, 0.99), (1, 1000, 0.9)])
def test_clopper_pearson_is_the_beta_quantile_interval(k: int, n: int, confidence: float) -> None:
    # The definition: [Beta(a/2; k, n-k+1), Beta(1-a/2; k+1, n-k)].
    alpha = 1.0 - confidence
    expected = (sps.beta.ppf(alpha / 2, k, n - k + 1), sps.beta.ppf(1 - alpha / 2, k + 1, n - k))
    assert clopper_pearson(k, n, confidence) == pytest.approx(expected, rel=1e-9)


def test_clopper_pearson_with_no_trials_is_the_whole_range() -> None:
    assert clopper_pearson(0, 0) == (0.0, 1.0)
    assert upper_bound(0, 0) == 1.0


@pytest.mark.parametrize(("k", "n", "confidence"), [(1, 100, 0.95), (7, 50, 0.99), (3, 1000, 0.9)])
def test_upper_bound_leaves_exactly_alpha_probability_of_so_few_events(k: int, n: int, confidence: float) -> None:
    # Definition of the exact one-sided bound: P(X <= k | p = upper) = 1 - confidence.
    assert sps.binom.cdf(k, n, upper_bound(k, n, confidence)) == pytest.approx(1 - confidence, rel=1e-6)


def test_sessions_needed_is_the_smallest_sufficient_count() -> None:
    n = sessions_needed(0.006)
    assert n in (498, 499)
    assert upper_bound(0, n) <= 0.006 < upper_bound(0, n - 1)
    # Rule of three: about 3 / rate at 95%.
    assert sessions_needed(0.01) == pytest.approx(300, abs=2)


def test_rate_estimate_describe_is_the_report_sentence() -> None:
    est = rate_estimate(0, 500)
    assert est.describe() == ("0 of 500 (0.00%), 95% CI [0.00%, 0.74%], one-sided 95% upper bound 0.60%")
    # A tiny non-zero bound must not print as zero.
    assert "0.00%" not in rate_estimate(0, 10**8).describe().split("upper bound")[1]


def test_judge_failure_rate_pass_fail_and_inconclusive() -> None:
    verdict, est, text = judge_failure_rate(0, 500, 0.01)
    assert verdict is RateVerdict.PASS and verdict.status is Status.PASS
    assert est.upper < 0.01

    verdict, _, text = judge_failure_rate(20, 400, 0.01)
    assert verdict is RateVerdict.FAIL

    verdict, _, text = judge_failure_rate(0, 100, 0.01)
    assert verdict is RateVerdict.INCONCLUSIVE
    assert str(sessions_needed(0.01)) in text

    # Observed rate below tolerance but not enough data: says how many would do.
    verdict, _, text = judge_failure_rate(5, 1000, 0.01)
    assert verdict is RateVerdict.INCONCLUSIVE
    assert re.search(r"about \d+ sessions", text)


def test_no_trials_is_never_a_pass() -> None:
    verdict, est, _ = judge_failure_rate(0, 0, 0.5)
    assert verdict is RateVerdict.INCONCLUSIVE
    assert math.isnan(est.rate)
    assert est.serialize()["rate"] is None


@pytest.mark.parametrize(
    "call",
    [
        lambda: clopper_pearson(-1, 10),
        lambda: clopper_pearson(11, 10),
        lambda: clopper_pearson(1, 10, confidence=1.0),
        lambda: upper_bound(1.5, 10),  # type: ignore[arg-type]
        lambda: upper_bound(True, 10),  # type: ignore[arg-type]
        lambda: sessions_needed(0.0),
        lambda: sessions_needed(float("nan")),
        lambda: judge_failure_rate(1, 10, 1.5),
        lambda: compare_failure_rates(1, 10, 11, 10, 0.01),
        lambda: compare_samples([1.0, float("nan")], [1.0, 2.0]),
        lambda: compare_samples([1.0, 2.0], [1.0, float("inf")]),
        lambda: compare_samples([1.0, -2.0], [1.0, 2.0]),
        lambda: compare_samples([1.0, 2.0], [1.0, 2.0], tolerance=-0.1),
        lambda: compare_samples([1.0, 2.0], [1.0, 2.0], resamples=10),
        lambda: hodges_lehmann_shift(np.array([1.0, np.nan]), np.array([1.0])),
    ],
)
def test_invalid_input_raises_value_error(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError) as info:  # noqa: PT011 (the subclass is asserted below)
        call()
    assert isinstance(info.value, StatisticsInputError)
    assert isinstance(info.value, StabilityError)


# --------------------------------------------------------------------------- bootstrap exactness


def test_fast_bootstrap_median_has_the_exact_bootstrap_distribution() -> None:
    # For odd n the bootstrap median is the order statistic of rank m = (n+1)/2 and
    # P(median* <= x_(j)) = P(Binomial(n, j/n) >= m): compare both implementations to it.
    n, resamples = 21, 20_000
    x = np.arange(1.0, n + 1)
    m = (n + 1) // 2
    exact_cdf = np.array([sps.binom.sf(m - 1, n, j / n) for j in range(1, n + 1)])
    fast = bootstrap_quantiles(x, (0.5,), resamples, np.random.default_rng(1))[0]
    slow = bootstrap_quantiles_by_resampling(x, (0.5,), resamples, np.random.default_rng(2))[0]
    for draws in (fast, slow):
        empirical_cdf = np.array([(draws <= v).mean() for v in x])
        assert np.max(np.abs(empirical_cdf - exact_cdf)) < 0.015


@pytest.mark.parametrize("q", [0.5, 0.95])
def test_fast_bootstrap_matches_resampling_with_interpolation_and_ties(q: float) -> None:
    # Even n (interpolated quantiles) and tied values: same distribution as resampling.
    rng = np.random.default_rng(3)
    x = np.sort(np.round(rng.lognormal(0.0, 0.5, 60), 1))
    fast = bootstrap_quantiles(x, (q,), 20_000, np.random.default_rng(4))[0]
    slow = bootstrap_quantiles_by_resampling(x, (q,), 20_000, np.random.default_rng(5))[0]
    # The distribution is discrete (ties), so compare CDFs on its support, not quantiles.
    support = np.union1d(fast, slow)
    cdf_fast = np.searchsorted(np.sort(fast), support, side="right") / fast.size
    cdf_slow = np.searchsorted(np.sort(slow), support, side="right") / slow.size
    assert np.max(np.abs(cdf_fast - cdf_slow)) < 0.02


@pytest.mark.parametrize(("n_base", "n_cand"), [(1, 1), (7, 5), (40, 41), (123, 97)])
def test_hodges_lehmann_equals_median_of_all_pairwise_differences(n_base: int, n_cand: int) -> None:
    rng = np.random.default_rng(n_base * 1000 + n_cand)
    base = np.round(rng.lognormal(0.0, 0.5, n_base), 2)  # rounding makes ties
    cand = np.round(rng.lognormal(0.1, 0.5, n_cand), 2)
    expected = float(np.median(np.subtract.outer(cand, base)))
    # materialize_limit=50 forces the selection path, not the brute-force fallback.
    assert hodges_lehmann_shift(base, cand, materialize_limit=50) == pytest.approx(expected, abs=1e-12)
    assert hodges_lehmann_shift(base, cand) == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------- compare_samples


def test_identical_lognormal_samples_rarely_declare_regression() -> None:
    counts = verdict_frequencies(lognormal(0.5), 1.0, n=200, trials=200, seed=10)
    assert counts[PerfVerdict.REGRESSION] / 200 <= 0.05


def test_identical_heavy_tailed_samples_rarely_declare_regression() -> None:
    counts = verdict_frequencies(lomax(1.5), 1.0, n=200, trials=200, seed=11)
    assert counts[PerfVerdict.REGRESSION] / 200 <= 0.05


def test_slowdown_exactly_at_tolerance_rarely_claims_no_regression() -> None:
    # A 10% slowdown with a 10% tolerance sits on the boundary: the interval rule
    # should claim NO REGRESSION about 2.5% of the time (one side of a 95% CI).
    counts = verdict_frequencies(lognormal(0.5), 1.10, n=200, trials=200, seed=12)
    assert counts[PerfVerdict.NO_REGRESSION] / 200 <= 0.05


@pytest.mark.parametrize(("name", "sampler"), [("lognormal 0.25", lognormal(0.25)), ("lomax 3", lomax(3.0))])
def test_25_percent_slowdown_is_found_at_200_samples(name: str, sampler: Sampler) -> None:
    # Power depends on the spread: with these distributions the median's 95% interval
    # at n=200 is narrow enough (about +-6%) to separate 1.25 from 1.10.
    counts = verdict_frequencies(sampler, 1.25, n=200, trials=200, seed=13)
    assert counts[PerfVerdict.REGRESSION] / 200 >= 0.90, (name, counts)


def test_ten_samples_are_inconclusive_never_no_regression() -> None:
    rng = np.random.default_rng(14)
    base = rng.lognormal(0.0, 0.5, 10)
    result = compare_samples(base, base.copy())
    assert result.verdict is PerfVerdict.INCONCLUSIVE
    assert "too few samples" in result.reason
    assert result.samples_needed is not None and result.samples_needed >= 20
    # Even an interval tight enough to clear the tolerance does not rescue 10 samples.
    flat = 10.0 + rng.uniform(0.0, 0.001, 10)
    tight = compare_samples(flat, flat.copy())
    assert tight.median_ratio.ci_high <= 1.1
    assert tight.verdict is PerfVerdict.INCONCLUSIVE


def test_empty_side_is_inconclusive() -> None:
    result = compare_samples([], [1.0, 2.0, 3.0])
    assert result.verdict is PerfVerdict.INCONCLUSIVE
    assert result.verdict.status is Status.INCONCLUSIVE
    assert result.serialize()["median_ratio"]["ratio"] is None


def test_inconclusive_estimates_how_many_samples_would_settle_it() -> None:
    rng = np.random.default_rng(15)
    base, cand = rng.lognormal(0.0, 0.5, 60), 1.25 * rng.lognormal(0.0, 0.5, 60)
    small = compare_samples(base, cand, resamples=2000)
    assert small.verdict is PerfVerdict.INCONCLUSIVE
    assert small.samples_needed is not None and small.samples_needed > 60
    # Sampling well beyond the estimate settles it (the effect is real).
    n_more = 3 * small.samples_needed
    big = compare_samples(rng.lognormal(0.0, 0.5, n_more), 1.25 * rng.lognormal(0.0, 0.5, n_more), resamples=2000)
    assert big.verdict is PerfVerdict.REGRESSION
    assert big.samples_needed is None


def test_comparison_is_reproducible_from_its_seed() -> None:
    rng = np.random.default_rng(16)
    base, cand = rng.lognormal(0.0, 0.5, 300), rng.lognormal(0.0, 0.5, 300)
    assert compare_samples(base, cand, seed=7) == compare_samples(base, cand, seed=7)


def test_describe_reads_like_the_report() -> None:
    rng = np.random.default_rng(17)
    base = 10.0 * rng.lognormal(0.0, 0.25, 200)
    cand = 10.0 * rng.lognormal(0.0, 0.25, 200)
    result = compare_samples(base, cand, unit="ms")
    assert result.verdict is PerfVerdict.NO_REGRESSION
    assert re.fullmatch(
        r"p50 ratio \d\.\d\d, 95% CI \[\d\.\d\d, \d\.\d\d\], tolerance 10%: NO REGRESSION "
        r"\(n=200/200, Mann-Whitney two-sided p[=<][\d.]+, HL shift [+-][\d.e+-]+ ms\)",
        result.describe(),
    ), result.describe()
    assert 0.0 <= result.mannwhitney_p_candidate_greater <= 1.0
    assert result.p95_ratio.ci_low <= result.p95_ratio.ratio <= result.p95_ratio.ci_high


def test_rule_texts_state_the_rules() -> None:
    assert "NO REGRESSION" in PERFORMANCE_RULE_TEXT and "1 + tolerance" in PERFORMANCE_RULE_TEXT
    assert "Fisher" in FIX_RULE_TEXT and "Boschloo" in FIX_RULE_TEXT


# --------------------------------------------------------------------------- failure-rate fixes


def test_fix_from_20_of_400_to_0_of_400_is_fixed() -> None:
    verdict = compare_failure_rates(20, 400, 0, 400, tolerated_rate=0.01)
    assert verdict.status is FixStatus.FIXED
    assert verdict.status.status is Status.PASS
    assert verdict.p_candidate_lower < 0.05
    assert verdict.describe().startswith("FIXED: baseline 20 of 400 (5.00%), candidate 0 of 400")


@pytest.mark.parametrize(("k", "n", "tolerated"), [(20, 400, 0.01), (50, 1000, 0.10), (0, 400, 0.01)])
def test_equal_rates_are_not_fixed(k: int, n: int, tolerated: float) -> None:
    verdict = compare_failure_rates(k, n, k, n, tolerated_rate=tolerated)
    assert verdict.status is not FixStatus.FIXED


def test_equal_high_rates_are_clearly_not_fixed() -> None:
    assert compare_failure_rates(20, 400, 20, 400, 0.01).status is FixStatus.NOT_FIXED


def test_worse_candidate_is_not_fixed() -> None:
    verdict = compare_failure_rates(5, 400, 20, 400, tolerated_rate=0.10)
    assert verdict.status is FixStatus.NOT_FIXED
    assert "more often" in verdict.reason


def test_tiny_samples_are_inconclusive() -> None:
    verdict = compare_failure_rates(3, 10, 0, 10, tolerated_rate=0.01)
    assert verdict.status is FixStatus.INCONCLUSIVE
    assert compare_failure_rates(0, 0, 0, 400, 0.01).status is FixStatus.INCONCLUSIVE


def test_significant_drop_still_above_tolerance_is_not_fixed_yet() -> None:
    # Far fewer failures, but 2 of 400 cannot bound the rate at 1%.
    verdict = compare_failure_rates(20, 400, 2, 400, tolerated_rate=0.01)
    assert verdict.p_candidate_lower < 0.05
    assert verdict.status is FixStatus.INCONCLUSIVE
