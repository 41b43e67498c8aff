from __future__ import annotations

import numpy as np

from stability_lib import Status
from stability_lib.execution.baseline import scenario_hash
from stability_lib.probes.operations import operation_samples_ms
from stability_lib.probes.perf import PerformanceConfig, compare_operations


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
