"""Tests for stability_lib.stats.sequential: anytime-valid verdicts that stop when the evidence decides.

The simulations are seeded and sized to run in a few seconds; the thresholds they assert are the
promises of ``RULE_TEXT``: looking after every round does not raise the chance of a wrong verdict
above 5%, and clear cases stop early. Latency models: lognormal with sigma 0.1 (tight), 0.5 and
1.0 (wide), and a noisy machine (a slow random drift per round that hits both sides, plus 3% of
samples slowed 3-20x as by a scheduler hiccup).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats as sps

from stability_lib.core.models import Status
from stability_lib.sections.websocket import soak_sequentially
from stability_lib.stats._validate import StatisticsInputError
from stability_lib.stats.fixes import FixStatus
from stability_lib.stats.performance import PerfVerdict
from stability_lib.stats.rates import RateVerdict
from stability_lib.stats.sequential import RULE_TEXT, run, update
from stability_lib.stats.sequential.core import StopReason, binomial_confidence_sequence, median_confidence_sequence
from stability_lib.stats.sequential.fixes import FixRound, FixSequentialConfig, FixState, start_fix
from stability_lib.stats.sequential.performance import (
    PerfRound,
    PerfSequentialConfig,
    start_performance,
    start_performance_family,
)
from stability_lib.stats.sequential.rates import RateRound, RateSequentialConfig, RateState, start_failure_rate

ALPHA = 0.05


# --------------------------------------------------------------------------- latency models


@dataclass(frozen=True)
class LatencyModel:
    name: str
    sigma: float
    noisy: bool = False


TIGHT = LatencyModel("tight sigma=0.1", 0.1)
WIDE = LatencyModel("wide sigma=0.5", 0.5)
VERY_WIDE = LatencyModel("wide sigma=1.0", 1.0)
NOISY = LatencyModel("noisy machine, sigma=0.5", 0.5, noisy=True)
MODELS = [TIGHT, WIDE, VERY_WIDE, NOISY]


class Machine:
    """Draws one round of interleaved samples: baseline ~ 10 ms x noise, candidate ~ ratio x that."""

    def __init__(self, model: LatencyModel, ratio: float, rng: np.random.Generator, per_round: int = 10):
        self.model, self.ratio, self.rng, self.per_round = model, ratio, rng, per_round
        self.log_drift = 0.0

    def _outliers(self) -> np.ndarray:
        hit = self.rng.random(self.per_round) < 0.03
        return np.where(hit, self.rng.uniform(3.0, 20.0, self.per_round), 1.0)

    def next_round(self, _index: int = 0) -> PerfRound:
        sigma, n = self.model.sigma, self.per_round
        base = 10.0 * self.rng.lognormal(0.0, sigma, n)
        cand = 10.0 * self.ratio * self.rng.lognormal(0.0, sigma, n)
        if self.model.noisy:
            # A busy neighbour comes and goes: AR(1) drift of the machine's speed, both sides alike.
            self.log_drift = 0.7 * self.log_drift + self.rng.normal(0.0, 0.3)
            drift = math.exp(self.log_drift)
            base, cand = base * drift * self._outliers(), cand * drift * self._outliers()
        return PerfRound(base, cand)


def simulate_perf(
    model: LatencyModel, ratio: float, *, trials: int, seed: int, budget: int, paired: bool = True
) -> tuple[Counter, float]:
    """Verdict counts and the mean samples per side used, over seeded trials."""
    rng = np.random.default_rng(seed)
    verdicts: Counter = Counter()
    used = []
    config = PerfSequentialConfig(max_samples_per_side=budget, paired=paired)
    for _ in range(trials):
        machine = Machine(model, ratio, rng)
        result = run(start_performance(config), machine.next_round).result
        verdicts[result.verdict] += 1
        used.append(result.looks[-1].n_candidate)
    return verdicts, float(np.mean(used))


# --------------------------------------------------------------------------- performance: error rates


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_no_true_difference_declares_regression_in_at_most_5_percent(model: LatencyModel) -> None:
    trials = 200
    verdicts, used = simulate_perf(model, 1.0, trials=trials, seed=11, budget=300)
    assert verdicts[PerfVerdict.REGRESSION] <= ALPHA * trials, verdicts
    if model is TIGHT:
        # Power where the data are clear: decided, and well inside the budget.
        assert verdicts[PerfVerdict.NO_REGRESSION] >= 0.95 * trials, verdicts
        assert used < 100, used


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_true_25_percent_slowdown_declares_no_regression_in_at_most_5_percent(model: LatencyModel) -> None:
    trials = 200
    verdicts, used = simulate_perf(model, 1.25, trials=trials, seed=12, budget=300)
    assert verdicts[PerfVerdict.NO_REGRESSION] <= ALPHA * trials, verdicts
    if model is TIGHT:
        assert verdicts[PerfVerdict.REGRESSION] >= 0.95 * trials, verdicts
        assert used < 100, used
    # Wide distributions: power within 300 samples per side is modest (see BENCHMARKS.md); what
    # must hold is that the rest is INCONCLUSIVE, never the wrong verdict.


def _naive_peeking_wrong(d: np.ndarray, log_t: float, per_round: int, min_samples: int) -> bool:
    """Read an exact fixed-n 95% interval for the median after every round; stop at the first
    decisive one. The control that shows the simulation can catch an inflated error rate."""
    ns = np.arange(per_round, d.size + 1, per_round)
    ranks = sps.binom.ppf(ALPHA / 2, ns, 0.5).astype(int)  # order-statistic interval [x_(r), x_(n-r+1)]
    below = np.cumsum(d <= log_t)[ns - 1]
    # The fixed-n interval excludes log_t: a (wrong) decision.
    decisive = ((below < ranks) | (below > ns - ranks)) & (ranks >= 1) & (ns >= min_samples)
    return bool(decisive.any())


def test_on_the_tolerance_boundary_stopping_early_does_not_inflate_errors() -> None:
    """A true ratio of exactly 1 + tolerance makes every decision a wrong one: the hardest case.

    The sign-based sequence sees only which side of the threshold each paired ratio falls on,
    so at the boundary its error rate is the same for every latency distribution: one noisy
    model stands for all of them.
    """
    trials, budget, per_round = 200, 300, 10
    rng = np.random.default_rng(13)
    threshold = 1.10
    wrong_sequential = wrong_naive = 0
    for _ in range(trials):
        machine = Machine(NOISY, threshold, rng, per_round)
        rounds = [machine.next_round() for _ in range(budget // per_round)]
        result = run(start_performance(PerfSequentialConfig(max_samples_per_side=budget)), lambda i: rounds[i]).result
        wrong_sequential += result.verdict is not PerfVerdict.INCONCLUSIVE
        d = np.log(np.concatenate([r.candidate for r in rounds])) - np.log(np.concatenate([r.baseline for r in rounds]))
        wrong_naive += _naive_peeking_wrong(d, math.log(threshold), per_round, 20)
    assert wrong_sequential <= ALPHA * trials, wrong_sequential
    # Peeking at a fixed-n interval after each of 30 rounds is wrong several times as often.
    assert wrong_naive > 2 * ALPHA * trials, wrong_naive


def test_pairing_cancels_the_drift_of_a_busy_machine() -> None:
    """Measured, not assumed: with drift and outliers, paired ratios decide with fewer samples
    than comparing the two sides' medians (which also pays for two sequences at alpha/2)."""
    trials = 60
    noisy_tight = LatencyModel("noisy machine, sigma=0.1", 0.1, noisy=True)
    paired, used_paired = simulate_perf(noisy_tight, 1.0, trials=trials, seed=14, budget=600, paired=True)
    unpaired, used_unpaired = simulate_perf(noisy_tight, 1.0, trials=trials, seed=14, budget=600, paired=False)
    assert paired[PerfVerdict.NO_REGRESSION] >= 0.95 * trials, paired
    assert paired[PerfVerdict.NO_REGRESSION] > unpaired[PerfVerdict.NO_REGRESSION]
    assert used_paired < 0.5 * used_unpaired, (used_paired, used_unpaired)
    # The drift hardly costs the paired rule anything: about what the quiet machine needs.
    _, used_quiet = simulate_perf(TIGHT, 1.0, trials=trials, seed=14, budget=600)
    assert used_paired < 1.5 * used_quiet, (used_paired, used_quiet)


# --------------------------------------------------------------------------- confidence sequences themselves


def test_median_sequence_covers_the_true_median_at_every_n_at_once() -> None:
    """Heavy-tailed (Cauchy) streams of 600: the sequence misses the median 0 at some n in at most
    5% of streams, while the fixed-n 95% interval, read at every n, misses in far more."""
    rng = np.random.default_rng(21)
    streams, n_max = 400, 600
    below = np.cumsum(rng.standard_cauchy((streams, n_max)) <= 0.0, axis=1)  # count <= 0 at each n
    ns = np.arange(1, n_max + 1)
    from stability_lib.stats.sequential.core import _sign_rank

    ranks = np.array([_sign_rank(int(n), ALPHA) for n in ns])
    bounded = ranks >= 1
    miss_seq = ((below < ranks) | (below > ns - ranks)) & bounded
    fixed = sps.binom.ppf(ALPHA / 2, ns, 0.5).astype(int)
    fixed_bounded = fixed >= 1
    miss_fixed = ((below < fixed) | (below > ns - fixed)) & fixed_bounded
    assert miss_seq.any(axis=1).mean() <= ALPHA
    assert miss_fixed.any(axis=1).mean() > 3 * ALPHA
    # The public function agrees with the counting above.
    x = np.sort(rng.standard_cauchy(300))
    low, high = median_confidence_sequence(x, ALPHA)
    r = _sign_rank(300, ALPHA)
    assert (low, high) == (x[r - 1], x[300 - r])
    assert median_confidence_sequence(np.sort(rng.normal(size=5)), ALPHA) == (-math.inf, math.inf)


def test_the_sign_ranks_are_those_of_scipys_beta_function() -> None:
    """The ranks come from math.lgamma (no scipy import inside a timed look); the mixture it
    bounds is the one written with scipy.special.betaln, rank for rank."""
    from scipy.special import betaln

    from stability_lib.stats.sequential.core import SIGN_MIXTURE_A, _sign_rank

    a = SIGN_MIXTURE_A

    def rank_with_scipy(n: int, alpha: float) -> int:
        level, base = math.log(1 / alpha), n * math.log(2) - float(betaln(a, a))
        accepted = [s for s in range(n // 2 + 1) if base + float(betaln(a + s, a + n - s)) < level]
        return min(accepted)

    for alpha in (0.05, 0.0125, 0.001):
        for n in [*range(1, 400), 1000, 2000, 4999]:
            assert _sign_rank(n, alpha) == rank_with_scipy(n, alpha), (n, alpha)


def test_binomial_sequence_covers_the_true_rate_at_every_look_at_once() -> None:
    rng = np.random.default_rng(22)
    p, streams, looks = 0.05, 200, range(20, 1001, 20)
    misses = 0
    for _ in range(streams):
        k = np.cumsum(rng.random(1000) < p)
        for n in looks:
            low, high = binomial_confidence_sequence(int(k[n - 1]), n, ALPHA, (0.5, 9.5))
            if not (low <= p <= high):
                misses += 1
                break
    assert misses <= ALPHA * streams, misses
    # Wider than Clopper-Pearson at the same n: the price of validity at every look.
    low, high = binomial_confidence_sequence(5, 100, ALPHA)
    cp = sps.binomtest(5, 100).proportion_ci(0.95)
    assert low < cp.low and high > cp.high


# --------------------------------------------------------------------------- rates


def _soak(rate: float, tolerated: float, seed: int, budget: int = 2000, per_round: int = 10) -> RateState:
    rng = np.random.default_rng(seed)
    config = RateSequentialConfig(tolerated_rate=tolerated, max_sessions=budget)
    return run(start_failure_rate(config), lambda _i: RateRound(int(rng.binomial(per_round, rate)), per_round))


def test_a_soak_clearly_above_the_tolerated_rate_fails_early() -> None:
    used = []
    for seed in range(50):
        result = _soak(0.20, 0.05, seed).result
        assert result.verdict is RateVerdict.FAIL
        assert result.stop is StopReason.DECIDED
        used.append(result.looks[-1].n_candidate)
    # Budget 2000 sessions: the failures are plain after a few dozen.
    assert max(used) <= 200, used
    assert np.mean(used) <= 100, used


def test_a_soak_clearly_below_the_tolerated_rate_passes_early() -> None:
    used = []
    for seed in range(50):
        result = _soak(0.002, 0.05, seed).result
        assert result.verdict is RateVerdict.PASS, result.describe()
        used.append(result.looks[-1].n_candidate)
    assert max(used) <= 300, used  # of a budget of 2000
    # With no failure at all it passes at the first round where 0 of n excludes 5%.
    clean = _soak(0.0, 0.05, 0).result
    n = clean.looks[-1].n_candidate
    assert clean.verdict is RateVerdict.PASS and n <= 100
    assert binomial_confidence_sequence(0, n, ALPHA, (0.5, 9.5))[1] <= 0.05
    assert binomial_confidence_sequence(0, n - 10, ALPHA, (0.5, 9.5))[1] > 0.05


def test_a_soak_at_the_tolerated_rate_is_rarely_judged_either_way() -> None:
    trials = 150
    verdicts = Counter(_soak(0.05, 0.05, 1000 + s, budget=400).result.verdict for s in range(trials))
    assert verdicts[RateVerdict.PASS] <= ALPHA * trials, verdicts
    assert verdicts[RateVerdict.FAIL] <= ALPHA * trials, verdicts


def test_rate_budget_reached_says_how_many_sessions_would_settle_it() -> None:
    result = _soak(0.0, 0.01, 0, budget=100).result
    assert result.verdict is RateVerdict.INCONCLUSIVE
    assert result.stop is StopReason.SAMPLE_BUDGET
    assert "budget of 100 sessions reached" in result.stop_text
    assert result.needed is not None and result.needed > 100
    # The estimate is exactly where 0 of n starts to pass.
    prior = (0.5, 0.5 * 0.99 / 0.01)
    assert binomial_confidence_sequence(0, result.needed, ALPHA, prior)[1] <= 0.01
    assert binomial_confidence_sequence(0, result.needed - 1, ALPHA, prior)[1] > 0.01
    assert "would settle it" in result.describe()


# --------------------------------------------------------------------------- the fix works


def _fix(base_rate: float, cand_rate: float, seed: int, budget: int = 1000) -> FixState:
    rng = np.random.default_rng(seed)
    config = FixSequentialConfig(tolerated_rate=0.05, max_sessions_per_side=budget)

    def next_round(_i: int) -> FixRound:
        return FixRound(int(rng.binomial(10, base_rate)), 10, int(rng.binomial(10, cand_rate)), 10)

    return run(start_fix(config), next_round)


def test_a_fix_that_works_is_shown_early() -> None:
    used = []
    for seed in range(30):
        result = _fix(0.30, 0.0, seed).result
        assert result.verdict is FixStatus.FIXED, result.describe()
        used.append(result.looks[-1].n_candidate)
    assert max(used) <= 250, used  # of 1000 per side


def test_no_fix_is_never_called_fixed_and_a_worse_candidate_is_not_fixed() -> None:
    same = Counter(_fix(0.30, 0.30, s, budget=300).result.verdict for s in range(60))
    assert same[FixStatus.FIXED] <= 0.05 * 60, same
    worse = _fix(0.02, 0.40, 7).result
    assert worse.verdict is FixStatus.NOT_FIXED and worse.stop is StopReason.DECIDED
    assert worse.looks[-1].n_candidate <= 100


# --------------------------------------------------------------------------- API and value types


def test_the_path_narrows_round_by_round_and_serializes_for_the_chart() -> None:
    machine = Machine(WIDE, 1.0, np.random.default_rng(31))
    result = run(start_performance(), machine.next_round).result
    assert result.verdict is PerfVerdict.NO_REGRESSION and result.verdict.status is Status.PASS
    lows = [look.low for look in result.looks]
    highs = [look.high for look in result.looks]
    assert lows == sorted(lows) and highs == sorted(highs, reverse=True)
    assert [look.round for look in result.looks] == list(range(1, result.rounds + 1))
    assert result.looks[-1].high <= 1.10 < result.looks[-2].high
    assert result.stop_text == f"decided at round {result.rounds} ({10 * result.rounds} samples per side)"
    data = json.loads(json.dumps(result.serialize()))
    assert data["verdict"] == "NO_REGRESSION" and data["stop"] == "DECIDED"
    assert data["looks"][0]["high"] is None  # not bounded yet after one round: no infinity in JSON
    assert len(data["looks"]) == result.rounds


def test_a_clear_regression_is_found_and_min_samples_is_respected() -> None:
    rounds = [PerfRound([10.0, 11.0, 9.0, 10.5, 9.5], [30.0, 33.0, 27.0, 31.0, 29.0])] * 20
    state = start_performance(PerfSequentialConfig(min_samples=20))
    for r in rounds[:3]:
        state = update(state, r)
        assert state.looks[-1].decision is PerfVerdict.INCONCLUSIVE  # 15 pairs < 20
    result = run(state, lambda i: rounds[i]).result
    assert result.verdict is PerfVerdict.REGRESSION
    assert result.verdict.status is Status.FAIL
    assert result.looks[-1].low > 1.10


def test_update_is_pure_and_a_finished_state_ignores_further_rounds() -> None:
    state = start_performance(PerfSequentialConfig(max_samples_per_side=10))
    after = update(state, PerfRound([10.0] * 10, [10.0] * 10))
    assert state.looks == () and state.log_ratios.size == 0 and not state.done
    assert after.done and after.stop is StopReason.SAMPLE_BUDGET
    assert update(after, PerfRound([1.0], [100.0])) is after


def test_time_budget_and_exhausted_sampler_stop_inconclusive_with_what_would_settle_it() -> None:
    ticks = iter(range(0, 10_000, 7))  # a fake clock: each read 7 s later
    machine = Machine(VERY_WIDE, 1.0, np.random.default_rng(32))
    config = PerfSequentialConfig(max_seconds=30.0)
    result = run(start_performance(config), machine.next_round, clock=lambda: float(next(ticks))).result
    assert result.verdict is PerfVerdict.INCONCLUSIVE
    assert result.stop is StopReason.TIME_BUDGET
    assert result.stop_text.startswith("budget of 30 s reached at round 5")
    assert result.needed is not None and result.needed > result.looks[-1].n_candidate

    rounds = [Machine(VERY_WIDE, 1.0, np.random.default_rng(33)).next_round() for _ in range(2)]
    result = run(start_performance(), lambda i: rounds[i] if i < 2 else None).result
    assert result.stop is StopReason.NO_MORE_DATA and result.verdict is PerfVerdict.INCONCLUSIVE
    assert "no more data after round 2 (20 samples per side)" in result.stop_text


def test_samples_without_a_partner_are_counted_and_not_judged() -> None:
    state = update(start_performance(), PerfRound([10.0, 10.0, 10.0], [10.0]))
    assert state.log_ratios.size == 1 and state.unpaired == 2
    assert "2 samples without a partner" in state.result.reason


def test_a_family_of_operations_splits_alpha_and_finishes_when_all_are_done() -> None:
    rng = np.random.default_rng(34)
    family = start_performance_family(["fast", "slow", "same"], PerfSequentialConfig(max_samples_per_side=300))
    single = start_performance(PerfSequentialConfig(max_samples_per_side=300))
    states_seen = 0
    while not family.done:
        rounds = {
            "fast": PerfRound(10 * rng.lognormal(0, 0.1, 10), 10 * rng.lognormal(0, 0.1, 10)),
            "slow": PerfRound(10 * rng.lognormal(0, 0.1, 10), 20 * rng.lognormal(0, 0.1, 10)),
            "same": PerfRound(10 * rng.lognormal(0, 1.0, 10), 10 * rng.lognormal(0, 1.0, 10)),
        }
        family = update(family, rounds)
        single = update(single, rounds["same"])
        states_seen += 1
    results = family.results
    assert results["fast"].verdict is PerfVerdict.NO_REGRESSION
    assert results["slow"].verdict is PerfVerdict.REGRESSION
    assert results["same"].stop is StopReason.SAMPLE_BUDGET
    assert all(r.family_size == 3 and math.isclose(r.confidence, 1 - 0.05 / 3) for r in results.values())
    # Decided operations stopped taking samples; the undecided one ran to its budget.
    assert results["fast"].looks[-1].n_candidate < 300 and results["same"].looks[-1].n_candidate == 300
    # Bonferroni costs width: same data, wider sequence than a lone operation's.
    lone, member = single.looks[-1], results["same"].looks[-1]
    assert member.low <= lone.low and member.high >= lone.high and (member.low, member.high) != (lone.low, lone.high)
    with pytest.raises(StatisticsInputError):
        update(family, {"unknown": PerfRound([1.0], [1.0])})


@pytest.mark.parametrize(
    "call",
    [
        lambda: update(start_performance(), PerfRound([10.0, math.nan], [10.0, 10.0])),
        lambda: update(start_performance(), PerfRound([10.0, 0.0], [10.0, 10.0])),
        lambda: update(start_performance(), PerfRound([10.0, -1.0], [10.0, 10.0])),
        lambda: update(start_performance(), RateRound(0, 1)),
        lambda: update(start_failure_rate(RateSequentialConfig(0.05)), RateRound(3, 2)),
        lambda: update(start_failure_rate(RateSequentialConfig(0.05)), RateRound(-1, 2)),
        lambda: update(start_fix(FixSequentialConfig(0.05)), FixRound(1, 1, 2, 1)),
        lambda: PerfSequentialConfig(confidence=1.0),
        lambda: PerfSequentialConfig(tolerance=-0.1),
        lambda: PerfSequentialConfig(max_seconds=0.0),
        lambda: RateSequentialConfig(tolerated_rate=1.5),
        lambda: start_performance_family([]),
    ],
)
def test_invalid_input_is_refused(call) -> None:
    with pytest.raises(StatisticsInputError):
        call()


def test_rule_text_says_the_rule_in_plain_words() -> None:
    for phrase in ("at every round", "1 + tolerance", "INCONCLUSIVE", "Bonferroni", "paired", "tolerated rate"):
        assert phrase in RULE_TEXT


def test_samples_needed_at_the_budget_is_a_fair_estimate() -> None:
    """Cut short at 20 samples per side, the rule says how many would settle it; given that many
    (from the same machine), it does settle in most trials."""
    trials, settled, estimates = 40, 0, []
    rng = np.random.default_rng(35)
    for _ in range(trials):
        machine = Machine(TIGHT, 1.0, rng)
        rounds = [machine.next_round() for _ in range(100)]
        short = run(start_performance(PerfSequentialConfig(max_samples_per_side=20)), lambda i: rounds[i]).result
        assert short.verdict is PerfVerdict.INCONCLUSIVE and short.stop is StopReason.SAMPLE_BUDGET
        assert short.needed is not None and short.needed > 20
        estimates.append(short.needed)
        budget = min(1000, -(-short.needed // 10) * 10)  # whole rounds
        longer = run(start_performance(PerfSequentialConfig(max_samples_per_side=budget)), lambda i: rounds[i]).result
        settled += longer.verdict is PerfVerdict.NO_REGRESSION
    # 20 samples say little about the spread, so single estimates vary; typically they are modest.
    assert float(np.median(estimates)) <= 150, estimates
    assert settled >= 0.5 * trials, (settled, estimates)


# ---------------------------------------------------------------- the soak in rounds (sections.websocket)


@dataclass(frozen=True)
class _Counts:
    crashes: int
    observed: int
    failures: int
    sessions: int


@dataclass(frozen=True)
class _Soak:
    aggregate: _Counts


def _soak_sampler(rates: dict[str, float], per_round: int = 50, seed: int = 0):
    """A fake soak round: every failure is a crash, every session is seen to its end."""
    rng = np.random.default_rng(seed)
    calls: list[str] = []

    def soak_round(side: str, index: int, seconds_left: float) -> _Soak:
        calls.append(side)
        k = int(rng.binomial(per_round, rates[side]))
        return _Soak(_Counts(k, per_round, k, per_round))

    return soak_round, calls


def test_a_soak_clearly_above_the_tolerated_rate_stops_early_and_fails() -> None:
    soak_round, calls = _soak_sampler({"candidate": 0.10})
    rounds = soak_sequentially(
        soak_round, tolerated_rate=0.01, confidence=0.95, max_sessions=2000, max_seconds=600, with_baseline=False
    )
    assert rounds.crash.result.verdict is RateVerdict.FAIL and rounds.complete.result.verdict is RateVerdict.FAIL
    sessions = 50 * calls.count("candidate")
    assert sessions <= 100  # of a budget of 2000
    assert rounds.crash.result.stop is StopReason.DECIDED and "decided at round" in rounds.crash.result.stop_text


def test_a_soak_clearly_below_the_tolerated_rate_stops_early_and_passes() -> None:
    soak_round, calls = _soak_sampler({"candidate": 0.0})
    rounds = soak_sequentially(
        soak_round, tolerated_rate=0.05, confidence=0.95, max_sessions=2000, max_seconds=600, with_baseline=False
    )
    assert rounds.complete.result.verdict is RateVerdict.PASS
    assert 50 * calls.count("candidate") <= 150  # of 2000: 0 failures clear a 5% tolerance fast
    assert calls == ["candidate"] * len(calls)


def test_the_fix_is_shown_early_and_the_baseline_is_soaked_only_while_it_is_undecided() -> None:
    soak_round, calls = _soak_sampler({"candidate": 0.0, "baseline": 0.20})
    rounds = soak_sequentially(
        soak_round, tolerated_rate=0.02, confidence=0.95, max_sessions=2000, max_seconds=600, with_baseline=True
    )
    assert rounds.fix is not None and rounds.fix.result.verdict is FixStatus.FIXED
    assert 50 * calls.count("baseline") <= 600
    assert calls.count("baseline") == len(rounds.fix.looks) <= calls.count("candidate")
    looks = rounds.fix.result.serialize()["looks"]
    assert looks[-1]["reference_low"] > looks[-1]["high"]  # the baseline's range lies above the candidate's


def test_a_round_without_sessions_ends_the_soak_inconclusive() -> None:
    def soak_round(side: str, index: int, seconds_left: float) -> _Soak:
        return _Soak(_Counts(0, 0, 0, 0))

    rounds = soak_sequentially(
        soak_round, tolerated_rate=0.01, confidence=0.95, max_sessions=2000, max_seconds=600, with_baseline=False
    )
    assert rounds.crash.result.verdict is RateVerdict.INCONCLUSIVE
    assert rounds.crash.result.stop is StopReason.NO_MORE_DATA and "no session" in rounds.stop_note


def test_the_soak_stops_before_a_round_that_would_overrun_its_time_budget() -> None:
    ticks = iter(range(0, 10_000, 2))
    soak_round, calls = _soak_sampler({"candidate": 0.0})
    rounds = soak_sequentially(
        soak_round,
        tolerated_rate=0.001,
        confidence=0.95,
        max_sessions=100_000,
        max_seconds=20,
        with_baseline=False,
        clock=lambda: float(next(ticks)),
    )
    assert rounds.crash.result.stop is StopReason.TIME_BUDGET and "20 s budget" in rounds.stop_note
    assert rounds.crash.result.verdict is RateVerdict.INCONCLUSIVE and rounds.crash.result.needed


def test_the_report_charts_each_soak_claim_with_how_it_stopped() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure as MplFigure

    from stability_lib.core.models import SectionResult
    from stability_lib.report.sequential_view import sequential_parts

    soak_round, _ = _soak_sampler({"candidate": 0.0, "baseline": 0.20})
    rounds = soak_sequentially(
        soak_round, tolerated_rate=0.02, confidence=0.95, max_sessions=2000, max_seconds=600, with_baseline=True
    )
    assert rounds.fix is not None
    data = {
        "sequential": {
            "claims": {
                "sessions_complete": rounds.complete.result.serialize(),
                "fix_works": rounds.fix.result.serialize(),
            }
        }
    }
    parts = sequential_parts(SectionResult("websocket", Status.PASS, (), data))
    assert isinstance(parts[0], MplFigure) and len([a for a in parts[0].axes if a.get_visible()]) == 2
    assert "fix_works: FIXED, decided at round" in parts[1] and "sessions_complete: PASS" in parts[1]


def test_the_soak_stops_at_its_session_budget_when_no_session_can_be_counted_as_a_crash_or_not() -> None:
    # Every session failed by a message: none ran to its end or crashed, so the crash claim has no
    # session to count and never decides. The soak ran on to its time budget (65,736 sessions for a
    # budget of 12 on the JSON-RPC service); the budget is the sessions taken.
    calls: list[str] = []

    def soak_round(side: str, index: int, seconds_left: float) -> _Soak:
        calls.append(side)
        return _Soak(_Counts(0, 0, 12, 12))  # crashes, observed, failures, sessions

    ticks = iter(range(0, 100_000))
    rounds = soak_sequentially(
        soak_round,
        tolerated_rate=0.4,
        confidence=0.95,
        max_sessions=24,
        max_seconds=600,
        with_baseline=False,
        clock=lambda: float(next(ticks)),
    )
    assert calls == ["candidate", "candidate"]
    assert rounds.complete.result.verdict is RateVerdict.FAIL
    assert rounds.crash.result.verdict is RateVerdict.INCONCLUSIVE
    assert rounds.crash.result.stop is StopReason.SAMPLE_BUDGET and "24 sessions per side" in rounds.stop_note
