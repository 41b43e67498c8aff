"""The percentile rule (files with percentiles, no samples): its error rates by simulation, with
percentiles made the way Locust and k6 make them, and the verdicts it can reach."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stability_lib.ingest.locust_csv import locust_half_width, parse_locust_stats
from stability_lib.ingest.percentiles import compare_percentiles, quantile_bounds
from stability_lib.ingest.records import QuantilePoint
from stability_lib.stats import PerfVerdict

LOCUST_LEVELS = (0.5, 0.66, 0.75, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0)
K6_LEVELS = (0.5, 0.9, 0.95, 0.99)


def _locust_bucket(ms: float) -> float:
    # locust.stats: round to 1 ms under 100 ms, 10 ms under 1 s, 100 ms under 10 s, 1 s above
    if ms < 100:
        return float(round(ms))
    if ms < 1000:
        return float(round(ms, -1))
    if ms < 10_000:
        return float(round(ms, -2))
    return float(round(ms, -3))


def locust_points(samples: np.ndarray) -> tuple[QuantilePoint, ...]:
    """The percentiles Locust would write for these latencies, as the parser reads them back."""
    rounded = sorted(_locust_bucket(float(x)) for x in samples)
    n = len(rounded)
    columns = [f"{100 * p:g}%" for p in LOCUST_LEVELS]
    values = [rounded[min(n, int(n * p) + 1) - 1] for p in LOCUST_LEVELS]
    header = "Type,Name,Request Count,Failure Count,Min Response Time,Max Response Time," + ",".join(columns)
    row = f"GET,x,{n},0,{float(samples.min())!r},{float(samples.max())!r}," + ",".join(f"{v:g}" for v in values)
    requests, _ = parse_locust_stats(f"{header}\n{row}\n")
    return requests[0].quantiles


def k6_points(samples: np.ndarray) -> tuple[QuantilePoint, ...]:
    """k6's summary: linear interpolation at p * (n - 1) of the sorted latencies, min and max."""
    ordered = np.sort(samples)
    n = len(ordered)
    points = [QuantilePoint(0.0, float(ordered[0]), 1, 1), QuantilePoint(1.0, float(ordered[-1]), n, n)]
    for p in K6_LEVELS:
        pos = p * (n - 1)
        points.append(QuantilePoint(p, float(np.quantile(ordered, p)), math.floor(pos) + 1, math.ceil(pos) + 1))
    return tuple(points)


def _verdicts(make, ratio: float, tolerance: float, n: int, sims: int, seed: int) -> dict[PerfVerdict, int]:
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys(PerfVerdict, 0)
    for _ in range(sims):
        base = rng.lognormal(math.log(20.0), 0.5, n)
        cand = ratio * rng.lognormal(math.log(20.0), 0.5, n)
        cmp = compare_percentiles(
            make(base), n, make(cand), n, quantile=0.95, tolerance=tolerance, confidence=0.95, min_samples=20
        )
        counts[cmp.verdict] += 1
    return counts


@pytest.mark.parametrize("make", [locust_points, k6_points], ids=["locust", "k6"])
def test_error_rates_at_the_tolerance_are_within_five_percent(make) -> None:
    """A candidate exactly at the tolerance (true p95 ratio 1.10): neither REGRESSION nor NO
    REGRESSION may be declared in more than 5% of runs (the rule is conservative: far fewer)."""
    counts = _verdicts(make, ratio=1.10, tolerance=0.10, n=400, sims=300, seed=1)
    assert counts[PerfVerdict.REGRESSION] <= 15
    assert counts[PerfVerdict.NO_REGRESSION] <= 15


@pytest.mark.parametrize("make", [locust_points, k6_points], ids=["locust", "k6"])
def test_the_rule_can_decide_both_ways(make) -> None:
    slow = _verdicts(make, ratio=3.0, tolerance=0.10, n=400, sims=50, seed=2)
    assert slow[PerfVerdict.REGRESSION] >= 45
    same = _verdicts(make, ratio=1.0, tolerance=1.0, n=2000, sims=50, seed=3)
    assert same[PerfVerdict.NO_REGRESSION] >= 45


def test_bounds_cover_the_true_quantile() -> None:
    """With every order statistic reported the interval is the exact binomial one: each end
    misses the true p95 in at most ``tail`` (2.5%) of runs, and not far less (a rank off by a
    few would show). With Locust's few percentiles it is wider still: it misses (almost) never."""
    rng = np.random.default_rng(4)
    true_p95 = 20.0 * math.exp(0.5 * 1.6448536269514722)
    every = {"low": 0, "high": 0}
    locust = {"low": 0, "high": 0}
    for _ in range(600):
        samples = rng.lognormal(math.log(20.0), 0.5, 300)
        ordered = np.sort(samples)
        all_points = tuple(QuantilePoint(r / 300, float(ordered[r - 1]), r, r) for r in range(1, 301))
        for points, misses in ((all_points, every), (locust_points(samples), locust)):
            bounds = quantile_bounds(points, 300, 0.95, 0.025)
            misses["low"] += bounds.low > true_p95
            misses["high"] += bounds.high < true_p95
    assert 2 <= every["low"] <= 25 and 2 <= every["high"] <= 25, every  # 15 expected at 2.5%
    assert locust["low"] <= 15 and locust["high"] <= 15, locust


def test_too_few_requests_or_unreached_ranks_are_inconclusive() -> None:
    rng = np.random.default_rng(5)
    few = locust_points(rng.lognormal(3, 0.5, 10))
    cmp = compare_percentiles(few, 10, few, 10, quantile=0.95, tolerance=0.1, confidence=0.95, min_samples=20)
    assert cmp.verdict is PerfVerdict.INCONCLUSIVE and "too few" in cmp.reason
    sixty = locust_points(rng.lognormal(3, 0.5, 60))
    cmp = compare_percentiles(sixty, 60, sixty, 60, quantile=0.95, tolerance=0.1, confidence=0.95, min_samples=20)
    # at n=60 the p95's upper order statistic is past the maximum: unbounded, never NO REGRESSION
    assert cmp.verdict is PerfVerdict.INCONCLUSIVE and math.isinf(cmp.ratio_high)
    assert "do not reach" in cmp.reason


def test_locust_rounding_is_allowed_for() -> None:
    assert (locust_half_width(3), locust_half_width(150), locust_half_width(2500), locust_half_width(20_000)) == (
        0.5,
        5.0,
        50.0,
        500.0,
    )
