from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterator

import numpy as np

from stability_lib import Status
from stability_lib.core.models import Claim
from stability_lib.execution.baseline import scenario_hash
from stability_lib.probes.operations import operation_samples_ms
from stability_lib.probes.perf import (
    PerformanceConfig,
    SampleRound,
    SequentialSampling,
    TeardownLog,
    compare_operations,
    sample_sequentially,
)


class Target:
    """A live target as the collector reads it (``TargetConfig`` has more)."""

    def __init__(self, url: str) -> None:
        self.base_url, self.ws_base_url = url, None


def lognormal(median: float, n: int, seed: int) -> list[float]:
    return list(median * np.random.default_rng(seed).lognormal(0, 0.05, n))


def test_a_section_that_judges_nothing_is_inconclusive_not_silent() -> None:
    _, claims = compare_operations(
        {"ws:ping": lognormal(0.3, 40, 1)},
        {"ws:ping": lognormal(0.9, 40, 2)},
        PerformanceConfig(),
        section="performance",
    )
    required = [c for c in claims if c.required]
    assert [c.id for c in required] == ["performance.judged"]
    assert required[0].status is Status.INCONCLUSIVE and "floor" in required[0].statistic


def test_only_selected_operations_decide_and_intervals_are_adjusted_for_them() -> None:
    base = {"step:a": lognormal(20, 60, 1), "step:b": lognormal(20, 60, 2), "step:c": lognormal(20, 60, 3)}
    cand = {"step:a": lognormal(20, 60, 4), "step:b": lognormal(30, 60, 5), "step:c": lognormal(20, 60, 6)}
    cfg = PerformanceConfig(operations=["step:a", "step:b"])
    comparisons, claims = compare_operations(base, cand, cfg, section="performance")
    by_id = {c.id: c for c in claims}
    assert by_id["performance.step:b"].status is Status.FAIL and by_id["performance.step:b"].required
    assert by_id["performance.step:a"].status is Status.PASS
    assert not by_id["performance.step:c"].required and "informative" in by_id["performance.step:c"].statistic
    assert "Bonferroni-adjusted over 2" in by_id["performance.step:a"].statistic
    conf = {c["operation"]: c["confidence"] for c in comparisons}
    assert conf["step:a"] == 1 - 0.05 / 2 and conf["step:c"] == 0.95


def test_operations_are_read_from_golden_path_runs() -> None:
    golden = {
        "samples": [{"step": "login", "duration_s": 0.02, "ok": True}, {"step": "login", "duration_s": 9, "ok": False}],
        "runs": [
            {
                "ok": True,
                "ws_sessions": [
                    {
                        "step": "chat",
                        "connect_s": 0.001,
                        "first_event_s": 0.002,
                        "event_types": [
                            "agent_started",
                            "agent_completed",
                            "agent_started",
                            "agent_completed",
                            "final",
                        ],
                        "event_offsets_s": [0.002, 0.007, 0.008, 0.020, 0.021],
                    }
                ],
            }
        ],
    }
    ops = operation_samples_ms(golden)
    assert ops["step:login"] == [20.0]  # failed attempts are not latency samples
    assert round(ops["chat:agent#1"][0], 6) == 5.0 and round(ops["chat:agent#2"][0], 6) == 12.0
    assert set(ops) == {"step:login", "chat:connect", "chat:first_event", "chat:agent#1", "chat:agent#2"}


def test_the_scenario_hash_ignores_which_baseline_and_which_sections_are_switched() -> None:
    raw = {"scenario": {"users": {"count": 2}}, "sections": {"performance": {"samples_per_side": 60}}}
    same = {
        "scenario": {"users": {"count": 2}},
        "sections": {
            "performance": {"samples_per_side": 60, "stored_baseline": "v1", "enabled": True},
            "health": {"enabled": False},
        },
    }
    other = {"scenario": {"users": {"count": 3}}, "sections": {"performance": {"samples_per_side": 60}}}
    assert scenario_hash(raw) == scenario_hash(same) != scenario_hash(other)


def test_no_regression_cannot_stand_when_the_candidate_lost_more_runs() -> None:
    base = {"step:a": lognormal(20, 60, 1)}
    cand = {"step:a": lognormal(20, 60, 2)}
    runs = {"baseline": {"runs": 60, "failed": 0}, "candidate": {"runs": 80, "failed": 20}}
    _, claims = compare_operations(base, cand, PerformanceConfig(), section="performance", runs=runs)
    assert claims[0].status is Status.INCONCLUSIVE and "20 of 80 candidate runs failed" in claims[0].statistic
    _, claims = compare_operations(
        base,
        cand,
        PerformanceConfig(),
        section="performance",
        runs={"baseline": {"runs": 60, "failed": 3}, "candidate": {"runs": 60, "failed": 0}},
    )
    assert claims[0].status is Status.PASS


# ---------------------------------------------------------------- sequential sampling (issue 14)


def synthetic_rounds(
    ratios: dict[str, float], *, n: int = 10, sigma: float = 0.05, seed: int = 0, taken: list[int] | None = None
) -> Iterator[SampleRound]:
    """Endless A/B rounds: per operation, baseline ~ median x lognormal, candidate ~ ratio x that;
    ``taken`` counts the rounds actually drawn (each is I/O in the real collector)."""
    rng = np.random.default_rng(seed)
    medians = {op: 20.0 + 10 * i for i, op in enumerate(ratios)}
    while True:
        if taken is not None:
            taken.append(1)
        base = {op: list(medians[op] * rng.lognormal(0, sigma, n)) for op in ratios}
        cand = {op: list(medians[op] * r * rng.lognormal(0, sigma, n)) for op, r in ratios.items()}
        yield SampleRound(
            {"baseline": base, "candidate": cand},
            {"baseline": {"runs": n, "failed": 0}, "candidate": {"runs": n, "failed": 0}},
        )


def judge(sampling: SequentialSampling, cfg: PerformanceConfig) -> tuple[list[dict], dict[str, Claim]]:
    comparisons, claims = compare_operations(
        sampling.samples["baseline"],
        sampling.samples["candidate"],
        cfg,
        section="performance",
        runs=sampling.runs,
        sequential=sampling,
    )
    return comparisons, {c.id: c for c in claims}


def test_a_clear_difference_is_decided_long_before_the_budget() -> None:
    cfg = PerformanceConfig(samples_per_side=10, max_samples_per_side=2000, operations=["step:*"])
    taken: list[int] = []
    sampling = sample_sequentially(synthetic_rounds({"step:slow": 1.5, "step:same": 1.0}, taken=taken), cfg)
    comparisons, claims = judge(sampling, cfg)
    assert claims["performance.step:slow"].status is Status.FAIL
    assert claims["performance.step:same"].status is Status.PASS
    # stopped as soon as both were decided: no round drawn after that, far below 2000 per side
    assert len(taken) == sampling.rounds and sampling.rounds * 10 <= 100
    assert "decided at round" in claims["performance.step:slow"].statistic
    assert "REGRESSION" in claims["performance.step:slow"].statistic
    slow = next(c for c in comparisons if c["operation"] == "step:slow")
    # the evidence keeps the path: one look per round until it was decided, and how it stopped
    looks = slow["sequential"]["looks"]
    assert slow["sequential"]["stop"] == "DECIDED" and 1 <= len(looks) <= sampling.rounds
    assert [look["round"] for look in looks] == list(range(1, len(looks) + 1))
    assert looks[-1]["low"] > 1.1 and slow["verdict"] == "REGRESSION"
    assert claims["performance.step:slow"].figure is not None and claims["performance.step:slow"].figure.low > 1.1
    data = sampling.serialize(cfg)
    assert data["sample_rounds"] == sampling.rounds and data["stop"] == ["DECIDED"]


def test_the_budget_ends_an_undecided_comparison_inconclusive_with_what_more_is_needed() -> None:
    cfg = PerformanceConfig(samples_per_side=10, max_samples_per_side=60, operations=["step:*"])
    taken: list[int] = []
    sampling = sample_sequentially(synthetic_rounds({"step:a": 1.08}, sigma=0.3, taken=taken), cfg)
    _, claims = judge(sampling, cfg)
    claim = claims["performance.step:a"]
    assert len(taken) == 6 and claim.status is Status.INCONCLUSIVE
    assert "budget of 60 samples per side reached" in claim.statistic
    assert re.search(r"about \d+ more per side needed", claim.statistic)
    assert "max_samples_per_side" in claim.details["recommendation"]


def test_the_time_budget_stops_before_a_round_that_would_overrun_it() -> None:
    ticks = iter(range(0, 10_000, 3))  # every clock reading 3 s later: a round takes 3 s
    cfg = PerformanceConfig(samples_per_side=10, max_samples_per_side=2000, max_seconds=10, operations=["step:*"])
    taken: list[int] = []
    sampling = sample_sequentially(
        synthetic_rounds({"step:a": 1.08}, sigma=0.3, taken=taken), cfg, clock=lambda: float(next(ticks))
    )
    _, claims = judge(sampling, cfg)
    assert sampling.results["step:a"].stop.value == "TIME_BUDGET"
    assert len(taken) < 5 and "10 s budget" in claims["performance.step:a"].statistic
    assert claims["performance.step:a"].status is Status.INCONCLUSIVE


def test_nothing_judged_takes_one_round_and_says_so() -> None:
    cfg = PerformanceConfig(samples_per_side=10, operations=["step:none"])
    taken: list[int] = []
    sampling = sample_sequentially(synthetic_rounds({"step:a": 1.0}, taken=taken), cfg)
    _, claims = judge(sampling, cfg)
    assert len(taken) == 1 and sampling.state is None
    assert claims["performance.judged"].status is Status.INCONCLUSIVE


def test_the_chart_shows_each_sequential_claim_and_how_it_stopped() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure as MplFigure

    from stability_lib.core.models import SectionResult
    from stability_lib.report.sequential_view import sequential_parts

    cfg = PerformanceConfig(samples_per_side=10, operations=["step:*"])
    sampling = sample_sequentially(synthetic_rounds({"step:slow": 1.5, "step:same": 1.0}), cfg)
    comparisons, claims = judge(sampling, cfg)
    result = SectionResult("performance", Status.FAIL, tuple(claims.values()), {"comparisons": comparisons})
    parts = sequential_parts(result)
    assert isinstance(parts[0], MplFigure) and len([a for a in parts[0].axes if a.get_visible()]) == 2
    assert "step:slow: REGRESSION, decided at round" in parts[1]
    assert sequential_parts(SectionResult("performance", Status.PASS, (), {"comparisons": []})) == []


def test_the_performance_page_shows_how_each_claim_stopped() -> None:
    # The section page (report and notebook) carries the sequential chart and stop reasons.
    import matplotlib

    matplotlib.use("Agg")
    from stability_lib.core.models import SectionResult
    from stability_lib.report.views import section_parts

    cfg = PerformanceConfig(samples_per_side=10, operations=["step:*"])
    sampling = sample_sequentially(synthetic_rounds({"step:slow": 1.5, "step:same": 1.0}), cfg)
    comparisons, claims = judge(sampling, cfg)
    result = SectionResult("performance", Status.FAIL, tuple(claims.values()), {"comparisons": comparisons})
    html = "".join(p for p in section_parts(result) if isinstance(p, str))
    assert "step:slow: REGRESSION, decided at round" in html


def test_a_non_positive_value_drops_its_pair_and_later_pairs_keep_their_partners() -> None:
    # Candidate = baseline x 1.5 pair by pair; one baseline value is 0 (e.g. a span whose two events
    # were read in one loop iteration). Filtering each side alone shifted every later pair.
    base = [0.0, 10.0, 20.0, 40.0, 80.0] * 6
    cand = [1.0] + [1.5 * b for b in base[1:]]
    rnd = SampleRound(
        {"baseline": {"step:a": base}, "candidate": {"step:a": cand}},
        {"baseline": {"runs": 30, "failed": 0}, "candidate": {"runs": 30, "failed": 0}},
    )
    cfg = PerformanceConfig(samples_per_side=30, max_samples_per_side=30, operations=["step:a"], min_samples=2)
    sampling = sample_sequentially(iter([rnd]), cfg)
    assert sampling.state is not None
    ratios = np.exp(sampling.state.operations["step:a"].log_ratios)
    assert len(ratios) == 24 and np.allclose(ratios, 1.5)


def test_the_first_rounds_one_off_setup_does_not_end_the_sampling() -> None:
    # Round 1 logs the users in (18 s on a busy machine) and samples for 2 s, like every later
    # round; 30 s budget. Judged by the whole first round (20 s), sampling stopped after it.
    readings = iter([0.0] + [20.0 + 2.0 * k for k in range(100)])
    cfg = PerformanceConfig(samples_per_side=10, max_samples_per_side=2000, max_seconds=30, operations=["step:*"])
    taken: list[int] = []
    rounds = synthetic_rounds({"step:a": 1.08}, sigma=0.3, taken=taken)
    first = next(rounds)
    with_setup = itertools.chain([dataclasses.replace(first, setup_s=18.0)], rounds)
    sampling = sample_sequentially(with_setup, cfg, clock=lambda: next(readings))
    assert sampling.results["step:a"].stop.value == "TIME_BUDGET"
    # rounds 2.. end at 22, 24, ... 30 s: the budget is spent, not given up after the first round
    assert len(taken) == 6 and sampling.round_seconds[-1] == 2.0
    assert sampling.results["step:a"].last.elapsed_s == 30.0
    assert sampling.round_seconds[0] == 20.0


def test_rounds_pair_runs_next_to_each_other_and_log_users_in_once(tmp_path) -> None:
    from test_golden import demo, demo_scenario

    from stability_lib.probes.perf_collect import collect_interleaved

    cfg = PerformanceConfig(samples_per_side=6, concurrency=2)
    with demo.serve(variant="candidate", seed=1) as a, demo.serve(variant="candidate", seed=2) as b:
        rounds = collect_interleaved(
            demo_scenario(), cfg, {"baseline": Target(a), "candidate": Target(b)}, TeardownLog()
        )
        first, second = next(rounds), next(rounds)
        rounds.close()
    for rnd in (first, second):
        assert rnd.runs == {"baseline": {"runs": 6, "failed": 0}, "candidate": {"runs": 6, "failed": 0}}
        for side in ("baseline", "candidate"):
            assert len(rnd.samples[side]["agent_session:agent#1"]) == 6
            assert len(rnd.samples[side]["step:agent_session"]) == 6
    # two users per side (one per lane), registered and logged in once for all the rounds
    assert len(first.samples["baseline"]["step:auth.login"]) == 2
    assert "step:auth.login" not in second.samples["candidate"]
    assert first.order == ("baseline", "candidate") and second.order == ("baseline", "candidate")


def test_named_operations_without_samples_are_said_as_such_with_the_failed_runs() -> None:
    # Found against a real service: every golden run failed, so the named operations had no samples, and the
    # claim said "not in performance.operations" about operations that were in it.
    cfg = PerformanceConfig(samples_per_side=3, sequential=False, operations=["step:execute", "step:get_session"])
    login = {"setup:auth.login": [5.0, 6.0, 5.5]}
    runs = {"baseline": {"runs": 3, "failed": 0}, "candidate": {"runs": 3, "failed": 3}}
    _, claims = compare_operations(login, login, cfg, section="performance", runs=runs)
    [judged] = [c for c in claims if c.id == "performance.judged"]
    assert judged.status is Status.INCONCLUSIVE
    assert "performance.operations step:execute, step:get_session matched no operation with samples" in (
        judged.statistic
    )
    assert "golden runs failed: candidate 3 of 3" in judged.statistic
