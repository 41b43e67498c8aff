"""Sequential "the fix works": both failure rates in rounds until the candidate's is shown lower."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .._validate import _pct
from ..fixes import FixStatus
from .core import (
    Look,
    SequentialResult,
    StopReason,
    _intersect,
    _rate_prior,
    _stop_reason,
    _stop_text,
    _Stoppable,
    binomial_confidence_sequence,
)
from .rates import RateSequentialConfig, _check_round_counts, _rate_needed

__all__ = [
    "FIX_SEQUENTIAL_RULE_TEXT",
    "FixRound",
    "FixSequentialConfig",
    "FixState",
    "start_fix",
]


FIX_SEQUENTIAL_RULE_TEXT = (
    "Sequential fix rule. One confidence sequence per side (baseline and candidate failure rates, "
    "each at 97.5% so that both hold together at 95%). FIXED as soon as the candidate's range lies "
    "entirely below the baseline's and at or below the tolerated rate; NOT FIXED as soon as the "
    "candidate's range lies entirely above the baseline's or above the tolerated rate; otherwise "
    "sampling continues until the budget runs out (INCONCLUSIVE). The baseline is soaked only while "
    "the fix is undecided; the candidate until its own rate checks and the fix are all decided."
)


@dataclass(frozen=True)
class FixRound:
    baseline_failures: int
    baseline_sessions: int
    candidate_failures: int
    candidate_sessions: int


@dataclass(frozen=True)
class FixSequentialConfig:
    """Did the candidate fix the failure the baseline showed? Budget: sessions per side, seconds."""

    tolerated_rate: float
    confidence: float = 0.95
    family_size: int = 1
    max_sessions_per_side: int = 2000
    max_seconds: float | None = None
    max_rounds: int = 10_000

    def __post_init__(self) -> None:
        RateSequentialConfig(
            self.tolerated_rate,
            self.confidence,
            self.family_size,
            self.max_sessions_per_side,
            self.max_seconds,
            self.max_rounds,
        )

    @property
    def alpha_per_side(self) -> float:
        return (1.0 - self.confidence) / self.family_size / 2.0


@dataclass(frozen=True)
class FixState(_Stoppable):
    config: FixSequentialConfig
    baseline_failures: int = 0
    baseline_sessions: int = 0
    candidate_failures: int = 0
    candidate_sessions: int = 0
    looks: tuple[Look, ...] = ()
    stop: StopReason = StopReason.RUNNING
    elapsed_s: float | None = None

    @property
    def result(self) -> SequentialResult:
        return _fix_result(self)


def start_fix(config: FixSequentialConfig) -> FixState:
    return FixState(config=config)


_BASELINE_PRIOR = (0.5, 0.5)  # the baseline's rate is whatever the bug makes it: Jeffreys


def _update_fix(state: FixState, new: FixRound, elapsed_s: float | None) -> FixState:
    if state.done:
        return state
    kb, nb = _check_round_counts(new.baseline_failures, new.baseline_sessions, "baseline_")
    kc, nc = _check_round_counts(new.candidate_failures, new.candidate_sessions, "candidate_")
    cfg = state.config
    kb, nb = state.baseline_failures + kb, state.baseline_sessions + nb
    kc, nc = state.candidate_failures + kc, state.candidate_sessions + nc
    prev = state.looks[-1] if state.looks else None
    b_low, b_high = binomial_confidence_sequence(kb, nb, cfg.alpha_per_side, _BASELINE_PRIOR)
    c_low, c_high = binomial_confidence_sequence(kc, nc, cfg.alpha_per_side, _rate_prior(cfg.tolerated_rate))
    c_low, c_high = _intersect(prev, c_low, c_high)
    if prev is not None and prev.reference_low is not None and prev.reference_high is not None:
        b_low, b_high = max(b_low, prev.reference_low), min(b_high, prev.reference_high)
    decision = FixStatus.INCONCLUSIVE
    if nb > 0 and nc > 0:
        if c_low > b_high or c_low > cfg.tolerated_rate:
            decision = FixStatus.NOT_FIXED
        elif c_high < b_low and c_high <= cfg.tolerated_rate:
            decision = FixStatus.FIXED
    look = Look(
        round=len(state.looks) + 1,
        n_baseline=nb,
        n_candidate=nc,
        estimate=kc / nc if nc else math.nan,
        low=c_low,
        high=c_high,
        decision=decision,
        elapsed_s=elapsed_s,
        reference_low=b_low,
        reference_high=b_high,
    )
    looks = state.looks + (look,)
    stop = _stop_reason(
        decision is not FixStatus.INCONCLUSIVE,
        max(nb, nc),
        cfg.max_sessions_per_side,
        elapsed_s,
        cfg.max_seconds,
        len(looks),
        cfg.max_rounds,
    )
    return replace(
        state,
        baseline_failures=kb,
        baseline_sessions=nb,
        candidate_failures=kc,
        candidate_sessions=nc,
        looks=looks,
        stop=stop,
        elapsed_s=elapsed_s,
    )


def _fix_result(state: FixState) -> SequentialResult:
    cfg = state.config
    last = state.looks[-1] if state.looks else None
    verdict = last.decision if last is not None else FixStatus.INCONCLUSIVE
    conf = 1.0 - 2.0 * cfg.alpha_per_side
    if last is None or state.baseline_sessions == 0 or state.candidate_sessions == 0:
        reason = "no sessions on one side"
    else:
        reason = (
            f"baseline {state.baseline_failures} of {state.baseline_sessions} "
            f"[{_pct(last.reference_low or 0.0)}, {_pct(last.reference_high or 1.0)}], candidate "
            f"{state.candidate_failures} of {state.candidate_sessions} [{_pct(last.low)}, {_pct(last.high)}] "
            f"(confidence sequences, {conf:.2%} jointly), tolerated {_pct(cfg.tolerated_rate)}"
        )
    needed = None
    if state.done and verdict is FixStatus.INCONCLUSIVE and state.candidate_sessions:
        needed = _rate_needed(
            state.candidate_failures,
            state.candidate_sessions,
            cfg.tolerated_rate,
            cfg.alpha_per_side,
            _rate_prior(cfg.tolerated_rate),
        )
    return SequentialResult(
        claim="fix",
        verdict=verdict,
        stop=state.stop,
        stop_text=_stop_text(
            state.stop, state.looks, "sessions per side", cfg.max_sessions_per_side, cfg.max_seconds, cfg.max_rounds
        ),
        reason=reason,
        looks=state.looks,
        threshold=cfg.tolerated_rate,
        confidence=conf,
        family_size=cfg.family_size,
        needed=needed,
    )
