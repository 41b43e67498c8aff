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
    exp(median d) = r = the ratio of medians that the fixed-n rule of ``stats`` judges. The
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

All verdict semantics are those of ``stats`` (``compare_samples``, ``judge_failure_rate``,
``compare_failure_rates``), with the sequence in place of the fixed-n interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TypeVar, overload

from .._validate import StatisticsInputError
from .core import (
    RATE_PRIOR_A,
    SIGN_MIXTURE_A,
    Look,
    SequentialResult,
    StopReason,
    Verdict,
    binomial_confidence_sequence,
    median_confidence_sequence,
)
from .fixes import FIX_SEQUENTIAL_RULE_TEXT, FixRound, FixSequentialConfig, FixState, _update_fix, start_fix
from .performance import (
    PERFORMANCE_SEQUENTIAL_RULE_TEXT,
    PerfFamilyState,
    PerfRound,
    PerfSequentialConfig,
    PerfState,
    _update_family,
    _update_perf,
    start_performance,
    start_performance_family,
)
from .rates import (
    RATE_SEQUENTIAL_RULE_TEXT,
    RateRound,
    RateSequentialConfig,
    RateState,
    _update_rate,
    start_failure_rate,
)

__all__ = [
    "RULE_TEXT",
    "update",
    "run",
    "halt",
    "round_would_overrun",
    "SIGN_MIXTURE_A",
    "RATE_PRIOR_A",
    "StopReason",
    "Verdict",
    "Look",
    "SequentialResult",
    "median_confidence_sequence",
    "binomial_confidence_sequence",
    "PERFORMANCE_SEQUENTIAL_RULE_TEXT",
    "PerfRound",
    "PerfSequentialConfig",
    "PerfState",
    "start_performance",
    "PerfFamilyState",
    "start_performance_family",
    "RATE_SEQUENTIAL_RULE_TEXT",
    "RateRound",
    "RateSequentialConfig",
    "RateState",
    "start_failure_rate",
    "FIX_SEQUENTIAL_RULE_TEXT",
    "FixRound",
    "FixSequentialConfig",
    "FixState",
    "start_fix",
]


RULE_TEXT = "\n\n".join((PERFORMANCE_SEQUENTIAL_RULE_TEXT, RATE_SEQUENTIAL_RULE_TEXT, FIX_SEQUENTIAL_RULE_TEXT))


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
