"""Sequential performance verdict: paired rounds and a confidence sequence for the median log-ratio."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .._validate import StatisticsInputError
from ..performance import PerfVerdict
from .core import (
    Look,
    SequentialResult,
    StopReason,
    _check_budget_seconds,
    _check_int,
    _check_open_unit,
    _intersect,
    _sign_rank,
    _smallest_n,
    _stop_reason,
    _stop_text,
    _Stoppable,
    median_confidence_sequence,
)

__all__ = [
    "PERFORMANCE_SEQUENTIAL_RULE_TEXT",
    "PerfRound",
    "PerfSequentialConfig",
    "PerfState",
    "start_performance",
    "PerfFamilyState",
    "start_performance_family",
]


PERFORMANCE_SEQUENTIAL_RULE_TEXT = (
    "Sequential performance rule. Samples are taken in rounds, baseline and candidate interleaved, "
    "and each baseline sample is paired with the candidate sample taken next to it in the same "
    "round; a pair's ratio (candidate / baseline) is untouched by whatever slowed the machine for "
    "both (a sample left without a partner, e.g. by a failed run, is counted but not judged). After every round we compute a 95% confidence sequence for the median of the paired "
    "ratios: a range that, with probability at least 95%, contains the true ratio at every round at "
    "once, so it may be read after each round and the sampling stopped at any time without raising "
    "the error rate (a fixed-sample interval read after every round would be fooled far more often "
    "than 5%). It comes from a sign test that stays valid under continuous monitoring (a beta-binomial "
    "mixture martingale and Ville's inequality) and assumes nothing about the shape of the latencies. "
    "We stop as soon as the whole range lies at or below 1 + tolerance (NO REGRESSION: a slowdown "
    "beyond the tolerance is ruled out) or above it (REGRESSION: a slowdown within the tolerance is "
    "ruled out). If the budget (samples per side, seconds) runs out first, the result is INCONCLUSIVE "
    "and we estimate how many samples per side would settle it if the observed ratios held; a round "
    "that would end past the time budget (judged by the longest round so far) is not started. With "
    "several judged operations, each uses confidence 1 - 5%/m (Bonferroni over the m operations). "
    "If the candidate is the baseline slowed by a factor r, the median paired ratio is r, the same "
    "ratio of medians the fixed-sample rule judges."
)


@dataclass(frozen=True)
class PerfRound:
    """One round of interleaved latencies (positive, finite), in the order they were taken."""

    baseline: Sequence[float]
    candidate: Sequence[float]


def _positive_samples(name: str, values: Sequence[float]) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise StatisticsInputError(f"{name} must be a sequence of numbers") from None
    if arr.ndim != 1:
        raise StatisticsInputError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size and not (arr.min() > 0.0 and arr.max() < math.inf):  # NaN fails both
        raise StatisticsInputError(f"{name} must contain only finite positive values")
    return arr


@dataclass(frozen=True)
class PerfSequentialConfig:
    """How one operation's performance is judged sequentially.

    ``family_size``: number of operations judged together (Bonferroni: each at alpha / m).
    ``max_samples_per_side`` and ``max_seconds``: the budget; ``max_rounds`` guards against a
    sampler that keeps returning nothing.
    """

    tolerance: float = 0.10
    confidence: float = 0.95
    family_size: int = 1
    paired: bool = True
    min_samples: int = 20
    max_samples_per_side: int = 2000
    max_seconds: float | None = None
    max_rounds: int = 10_000

    def __post_init__(self) -> None:
        tol = float(self.tolerance)
        if not (math.isfinite(tol) and tol >= 0.0):
            raise StatisticsInputError(f"tolerance must be finite and >= 0, got {self.tolerance!r}")
        _check_open_unit("confidence", self.confidence)
        _check_int("family_size", self.family_size, 1)
        _check_int("min_samples", self.min_samples, 2)
        _check_int("max_samples_per_side", self.max_samples_per_side, 1)
        _check_int("max_rounds", self.max_rounds, 1)
        _check_budget_seconds(self.max_seconds)

    @property
    def alpha(self) -> float:
        return (1.0 - self.confidence) / self.family_size

    @property
    def threshold(self) -> float:
        return 1.0 + self.tolerance


@dataclass(frozen=True, eq=False)
class PerfState(_Stoppable):
    """Everything observed so far for one operation (immutable: ``update`` returns a new one).

    ``log_ratios``: paired log(candidate / baseline); ``log_baseline``/``log_candidate``: all
    samples per side (unpaired mode, and the counts for the budget). ``unpaired``: samples left
    without a partner in their round (e.g. a failed run on one side), not judged in paired mode.
    """

    config: PerfSequentialConfig
    log_ratios: np.ndarray = field(default_factory=lambda: np.empty(0))
    log_baseline: np.ndarray = field(default_factory=lambda: np.empty(0))
    log_candidate: np.ndarray = field(default_factory=lambda: np.empty(0))
    unpaired: int = 0
    looks: tuple[Look, ...] = ()
    stop: StopReason = StopReason.RUNNING
    elapsed_s: float | None = None

    @property
    def result(self) -> SequentialResult:
        return _perf_result(self)


def start_performance(config: PerfSequentialConfig = PerfSequentialConfig()) -> PerfState:
    return PerfState(config=config)


def _perf_interval(state: PerfState) -> tuple[float, float, float]:
    """(estimate, low, high) of the log ratio at this round (before the running intersection)."""
    alpha = state.config.alpha
    if state.config.paired:
        d = np.sort(state.log_ratios)
        if d.size == 0:
            return math.nan, -math.inf, math.inf
        low, high = median_confidence_sequence(d, alpha)
        return _sorted_median(d), low, high
    b, c = np.sort(state.log_baseline), np.sort(state.log_candidate)
    if b.size == 0 or c.size == 0:
        return math.nan, -math.inf, math.inf
    b_low, b_high = median_confidence_sequence(b, alpha / 2.0)
    c_low, c_high = median_confidence_sequence(c, alpha / 2.0)
    return _sorted_median(c) - _sorted_median(b), c_low - b_high, c_high - b_low


def _sorted_quantile(x: np.ndarray, q: float) -> float:
    """numpy's default (linear) quantile of an ascending array, without numpy's per-call overhead."""
    h = (x.shape[0] - 1) * q
    lo = int(h)
    hi = min(lo + 1, x.shape[0] - 1)
    return float(x[lo] + (h - lo) * (x[hi] - x[lo]))


def _sorted_median(x: np.ndarray) -> float:
    n = x.shape[0]
    return 0.5 * float(x[(n - 1) // 2] + x[n // 2])


def _perf_n(state: PerfState) -> tuple[int, int]:
    return int(state.log_baseline.size), int(state.log_candidate.size)


def _perf_judged_n(state: PerfState) -> int:
    n_b, n_c = _perf_n(state)
    return int(state.log_ratios.size) if state.config.paired else min(n_b, n_c)


def _update_perf(state: PerfState, new: PerfRound, elapsed_s: float | None) -> PerfState:
    if state.done:
        return state
    base = np.log(_positive_samples("baseline", new.baseline))
    cand = np.log(_positive_samples("candidate", new.candidate))
    pairs = min(base.size, cand.size)
    cfg = state.config
    state = PerfState(
        config=cfg,
        log_ratios=np.concatenate([state.log_ratios, cand[:pairs] - base[:pairs]]),
        log_baseline=np.concatenate([state.log_baseline, base]),
        log_candidate=np.concatenate([state.log_candidate, cand]),
        unpaired=state.unpaired + abs(int(base.size) - int(cand.size)),
        looks=state.looks,
        elapsed_s=elapsed_s,
    )
    estimate, low, high = _perf_interval(state)
    low, high = _intersect(state.looks[-1] if state.looks else None, math.exp(low), math.exp(high))
    decision = PerfVerdict.INCONCLUSIVE
    if _perf_judged_n(state) >= cfg.min_samples:
        if high <= cfg.threshold:
            decision = PerfVerdict.NO_REGRESSION
        elif low > cfg.threshold:
            decision = PerfVerdict.REGRESSION
    n_b, n_c = _perf_n(state)
    look = Look(
        round=len(state.looks) + 1,
        n_baseline=n_b,
        n_candidate=n_c,
        estimate=math.exp(estimate) if math.isfinite(estimate) else math.nan,
        low=low,
        high=high,
        decision=decision,
        elapsed_s=elapsed_s,
    )
    looks = state.looks + (look,)
    stop = _stop_reason(
        decision is not PerfVerdict.INCONCLUSIVE,
        max(n_b, n_c),
        cfg.max_samples_per_side,
        elapsed_s,
        cfg.max_seconds,
        len(looks),
        cfg.max_rounds,
    )
    return replace(state, looks=looks, stop=stop)


def _perf_needed(state: PerfState) -> int | None:
    """Samples per side at which the sequence would clear 1 + tolerance if the data kept the
    spread and centre observed so far (the empirical quantiles at the sequence's rank levels)."""
    cfg = state.config
    log_t = math.log(cfg.threshold)
    alpha = cfg.alpha
    if cfg.paired:
        groups = [(np.sort(state.log_ratios), alpha, 1.0)]
    else:
        groups = [(np.sort(state.log_candidate), alpha / 2.0, 1.0), (np.sort(state.log_baseline), alpha / 2.0, -1.0)]
    if any(g.size < 2 for g, _, _ in groups):
        return cfg.min_samples
    centre = sum(sign * float(np.median(g)) for g, _, sign in groups)
    if centre == log_t:
        return None
    below = centre < log_t

    def clears(n: int) -> bool:
        s = _sign_rank(n, alpha if cfg.paired else alpha / 2.0)
        if s < 1:
            return False
        p_low, p_high = (s - 1) / max(n - 1, 1), (n - s) / max(n - 1, 1)
        low = high = 0.0
        for g, _, sign in groups:
            q_low, q_high = _sorted_quantile(g, p_low), _sorted_quantile(g, p_high)
            low += q_low if sign > 0 else -q_high
            high += q_high if sign > 0 else -q_low
        return high <= log_t if below else low > log_t

    needed = _smallest_n(max(_perf_judged_n(state), cfg.min_samples), clears)
    return None if needed is None else max(needed, cfg.min_samples)


def _perf_result(state: PerfState) -> SequentialResult:
    cfg = state.config
    last = state.looks[-1] if state.looks else None
    verdict = last.decision if last is not None else PerfVerdict.INCONCLUSIVE
    conf = 1.0 - cfg.alpha
    band = f"{cfg.threshold:.2f}"
    what = "median paired ratio" if cfg.paired else "ratio of medians"
    if last is None:
        reason = "no samples yet"
    elif verdict is PerfVerdict.NO_REGRESSION:
        reason = f"the {conf:.2%} confidence sequence of the {what}, [{last.low:.3f}, {last.high:.3f}], lies at or below {band}"
    elif verdict is PerfVerdict.REGRESSION:
        reason = (
            f"the {conf:.2%} confidence sequence of the {what}, [{last.low:.3f}, {last.high:.3f}], lies above {band}"
        )
    elif _perf_judged_n(state) < cfg.min_samples:
        reason = f"too few samples ({_perf_judged_n(state)}, at least {cfg.min_samples} required)"
    else:
        reason = (
            f"the {conf:.2%} confidence sequence of the {what}, [{last.low:.3f}, {last.high:.3f}], straddles {band}"
        )
    if cfg.paired and state.unpaired:
        reason += f" ({state.unpaired} samples without a partner in their round were not judged)"
    needed = None
    if state.done and verdict is PerfVerdict.INCONCLUSIVE:
        needed = _perf_needed(state)
    return SequentialResult(
        claim="performance",
        verdict=verdict,
        stop=state.stop,
        stop_text=_stop_text(
            state.stop, state.looks, "samples per side", cfg.max_samples_per_side, cfg.max_seconds, cfg.max_rounds
        ),
        reason=reason,
        looks=state.looks,
        threshold=cfg.threshold,
        confidence=conf,
        family_size=cfg.family_size,
        needed=needed,
    )


@dataclass(frozen=True)
class PerfFamilyState:
    """Several operations judged on the same rounds; each at alpha / m (Bonferroni).

    Done when every operation is decided or out of budget; a decided operation ignores later rounds.
    """

    operations: Mapping[str, PerfState]

    @property
    def done(self) -> bool:
        return all(s.done for s in self.operations.values())

    @property
    def results(self) -> dict[str, SequentialResult]:
        return {op: s.result for op, s in self.operations.items()}


def start_performance_family(
    operations: Sequence[str], config: PerfSequentialConfig = PerfSequentialConfig()
) -> PerfFamilyState:
    ops = list(dict.fromkeys(operations))
    if not ops:
        raise StatisticsInputError("a family needs at least one operation")
    cfg = replace(config, family_size=len(ops))
    return PerfFamilyState(operations={op: PerfState(config=cfg) for op in ops})


def _update_family(state: PerfFamilyState, new: Mapping[str, PerfRound], elapsed_s: float | None) -> PerfFamilyState:
    unknown = set(new) - set(state.operations)
    if unknown:
        raise StatisticsInputError(f"samples for operations not in the family: {sorted(unknown)}")
    empty = PerfRound((), ())
    return PerfFamilyState(
        operations={op: _update_perf(s, new.get(op, empty), elapsed_s) for op, s in state.operations.items()}
    )
