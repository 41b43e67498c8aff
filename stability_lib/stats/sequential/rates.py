"""Sequential failure-rate verdict: sessions in rounds and a beta-binomial confidence sequence."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from .._validate import StatisticsInputError, _pct
from ..rates import RateVerdict
from .core import (
    Look,
    SequentialResult,
    StopReason,
    _check_budget_seconds,
    _check_int,
    _check_open_unit,
    _intersect,
    _rate_prior,
    _smallest_n,
    _stop_reason,
    _stop_text,
    _Stoppable,
    binomial_confidence_sequence,
)

__all__ = [
    "RATE_SEQUENTIAL_RULE_TEXT",
    "RateRound",
    "RateSequentialConfig",
    "RateState",
    "start_failure_rate",
]


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


@dataclass(frozen=True)
class RateRound:
    failures: int
    sessions: int


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
