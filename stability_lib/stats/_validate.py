"""Input checks, number formatting and the verdict base shared by the statistics modules (pure)."""

from __future__ import annotations

import enum
import math
import numbers
from typing import Any

from ..core.errors import StabilityError
from ..core.models import Status

__all__ = [
    "StatisticsInputError",
]


class StatisticsInputError(StabilityError, ValueError):
    """Invalid input to a statistic (negative count, k > n, NaN sample...).

    A ``ValueError`` too, so callers may catch either.
    """


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


def _p_text(p: float) -> str:
    if p < 0.001:
        return "p<0.001"
    return f"p={p:.2g}" if p < 0.01 else f"p={p:.2f}"


def _scipy_stats() -> Any:
    """scipy.stats, imported on first use: it costs about a second of CPU, and loading params
    (which reaches the statistics through the sections' config models) must not pay it."""
    from scipy import stats

    return stats
