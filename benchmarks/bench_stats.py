"""Benchmark the performance-comparison statistics (stability_lib.stats).

Run: ``python benchmarks/bench_stats.py [--repeats 5] [--no-reference]``

Times, on 10,000 samples per side and 10,000 bootstrap resamples, pinned to one
core when the OS allows it:
  * ``bootstrap_fast_s``: the percentile bootstrap of the median and p95 ratios as
    ``compare_samples`` does it (exact order-statistic simulation);
  * ``compare_samples_s``: the whole comparison (bootstrap, Mann-Whitney U twice,
    exact Hodges-Lehmann over 10^8 pairs);
  * ``hodges_lehmann_s``: the Hodges-Lehmann shift alone;
  * ``bootstrap_reference_s``: the textbook bootstrap that materialises every
    resample (chunked), for comparison, one run (it is slow).
Prints one JSON line (see _meta.envelope). Peak RSS is read with resource.getrusage
before and after the reference bootstrap, since the latter dominates memory.
"""

from __future__ import annotations

import os

# Pin BLAS/OpenMP pools to one thread before numpy loads; report what was in effect.
_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_THREAD_ENV_BEFORE = {name: os.environ.get(name) for name in _THREAD_VARS}
for _name in _THREAD_VARS:
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import envelope  # noqa: E402  (also puts this checkout on sys.path)

from stability_lib.stats.bootstrap import bootstrap_quantiles, bootstrap_quantiles_by_resampling, hodges_lehmann_shift  # noqa: E402
from stability_lib.stats.performance import compare_samples  # noqa: E402

BENCHMARK = "stats.compare_samples"  # stable key of the results file
QUICK_ARGS = ("--repeats", "1", "--no-reference")  # smallest run, for run_all.py --quick
SAMPLES_PER_SIDE = 10_000
RESAMPLES = 10_000


def _pin_to_one_core() -> int | None:
    if not hasattr(os, "sched_setaffinity"):
        return None
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return cpu
    except OSError:
        return None


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-reference", action="store_true", help="skip the slow textbook bootstrap")
    args = parser.parse_args()

    pinned_cpu = _pin_to_one_core()
    data_rng = np.random.default_rng(12345)
    baseline = 10.0 * data_rng.lognormal(0.0, 0.5, SAMPLES_PER_SIDE)
    candidate = 10.5 * data_rng.lognormal(0.0, 0.5, SAMPLES_PER_SIDE)
    qs = (0.5, 0.95)

    def bootstrap_fast() -> None:
        rng = np.random.default_rng(0)
        b = bootstrap_quantiles(np.sort(baseline), qs, RESAMPLES, rng)
        c = bootstrap_quantiles(np.sort(candidate), qs, RESAMPLES, rng)
        np.quantile(c / b, [0.025, 0.975], axis=1)

    compare_samples(baseline[:100], candidate[:100])  # warm-up (imports, caches)
    timings: dict[str, Any] = {}
    timings["bootstrap_fast_s"], timings["bootstrap_fast_runs_s"] = _median_time(bootstrap_fast, args.repeats)
    timings["compare_samples_s"], timings["compare_samples_runs_s"] = _median_time(
        lambda: compare_samples(baseline, candidate, resamples=RESAMPLES, seed=0), args.repeats
    )
    timings["hodges_lehmann_s"], _ = _median_time(lambda: hodges_lehmann_shift(baseline, candidate), args.repeats)
    timings["peak_rss_mb_fast_paths"] = round(_peak_rss_mb(), 1)

    comparison = compare_samples(baseline, candidate, resamples=RESAMPLES, seed=0, unit="ms")
    if not args.no_reference:

        def bootstrap_reference() -> None:
            rng = np.random.default_rng(0)
            b = bootstrap_quantiles_by_resampling(baseline, qs, RESAMPLES, rng)
            c = bootstrap_quantiles_by_resampling(candidate, qs, RESAMPLES, rng)
            np.quantile(c / b, [0.025, 0.975], axis=1)

        timings["bootstrap_reference_s"], _ = _median_time(bootstrap_reference, 1)
        timings["peak_rss_mb_after_reference"] = round(_peak_rss_mb(), 1)

    for key, value in list(timings.items()):
        if isinstance(value, float):
            timings[key] = round(value, 4)
        elif isinstance(value, list):
            timings[key] = [round(v, 4) for v in value]

    summary = (
        f"compare_samples {timings['compare_samples_s']:.3f} s, bootstrap {timings['bootstrap_fast_s']:.3f} s"
        f" (median of {args.repeats}; {SAMPLES_PER_SIDE:,} per side, {RESAMPLES:,} resamples)"
    )
    if "bootstrap_reference_s" in timings:
        summary += f"; textbook bootstrap {timings['bootstrap_reference_s']:.2f} s"
    results = {
        "summary": summary,
        "params": {
            "samples_per_side": SAMPLES_PER_SIDE,
            "resamples": RESAMPLES,
            "repeats": args.repeats,
            "reference": not args.no_reference,
        },
        "pinned_cpu": pinned_cpu,
        "thread_env_before": _THREAD_ENV_BEFORE,
        "thread_env_used": {name: os.environ.get(name) for name in _THREAD_VARS},
        "libraries": {"numpy": np.__version__, "scipy": __import__("scipy").__version__},
        "timings": timings,
        "example": comparison.describe(),
    }
    print(json.dumps(envelope(BENCHMARK, results)))


if __name__ == "__main__":
    main()
