"""Bootstrap of quantiles simulated exactly from order statistics (no resamples materialised); Hodges-Lehmann
shift.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ._validate import StatisticsInputError

__all__ = [
    "bootstrap_quantiles",
    "bootstrap_quantiles_by_resampling",
    "hodges_lehmann_shift",
]


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
