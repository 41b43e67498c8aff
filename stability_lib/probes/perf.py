"""Performance against a baseline: interleaved A/B samples per operation, judged by ``stats.inference``."""

from __future__ import annotations

import fnmatch
import math
import statistics
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..core.models import Claim, Status

__all__ = ["PerformanceConfig", "collect_interleaved", "compare_operations"]


class PerformanceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    tolerance: float = Field(0.10, gt=0, le=2, description="Allowed slowdown of the median (0.10 = 10%).")
    samples_per_side: int = Field(60, ge=1, le=5000, description="Golden-path runs per target, interleaved A/B.")
    concurrency: int = Field(4, ge=1, le=50)
    resamples: int = Field(10_000, ge=100, le=100_000, description="Bootstrap resamples.")
    min_samples: int = Field(20, ge=2, description="Below this per side a comparison is INCONCLUSIVE.")
    seed: int = 0
    operations: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Operations that decide the verdict (glob patterns over names like 'step:login', "
        "'agent_session:connect'); the others are reported as informative.",
    )
    min_median_ms: float = Field(
        1.0,
        ge=0,
        description="Operations whose baseline median is under this are reported but do not decide the verdict: "
        "a relative change of a sub-millisecond loopback operation measures jitter, not the service.",
    )
    stored_baseline: str | None = Field(
        None,
        description="A stored baseline (name under baselines/ or a run directory) instead of a live baseline target.",
    )


# ---------------------------------------------------------------- A/B collection (I/O)


def collect_interleaved(
    scenario: Any, cfg: PerformanceConfig, targets: dict[str, Any]
) -> tuple[dict[str, dict[str, list[float]]], dict[str, dict[str, int]]]:
    """Golden-path runs on each target in alternating rounds (A B, B A, A B, ...), so drift
    on the machine or the network hits every side alike. Returns {side: {operation: [ms]}} and
    {side: {"runs": n, "failed": k}} (failed runs leave no latency sample behind)."""
    from .golden import run_golden_path_sync
    from .operations import operation_samples_ms

    per_round = cfg.concurrency
    rounds = max(1, math.ceil(cfg.samples_per_side / per_round))
    round_scenario = scenario.model_copy(
        update={
            "users": scenario.users.model_copy(update={"count": per_round}),
            "golden_path": scenario.golden_path.model_copy(update={"repetitions": 1}),
        }
    )
    sides = list(targets)
    out: dict[str, dict[str, list[float]]] = {side: {} for side in sides}
    runs: dict[str, dict[str, int]] = {side: {"runs": 0, "failed": 0} for side in sides}
    for r in range(rounds):
        order = sides if r % 2 == 0 else list(reversed(sides))  # ABBA: neither side always goes first
        for side in order:
            target = targets[side]
            result = run_golden_path_sync(target.base_url, round_scenario, ws_base_url=target.ws_base_url)
            runs[side]["runs"] += len(result.runs)
            runs[side]["failed"] += sum(1 for r in result.runs if not r.ok)
            for op, values in operation_samples_ms(result.to_dict()).items():
                out[side].setdefault(op, []).extend(values)
    return out, runs


# ---------------------------------------------------------------- judgement (pure)


def _judged(op: str, baseline: list[float], cfg: PerformanceConfig) -> tuple[bool, str]:
    """Does this operation decide the verdict? (yes/no, and why not)"""
    if not any(fnmatch.fnmatchcase(op, p) for p in cfg.operations):
        return False, "not in performance.operations"
    if baseline and statistics.median(baseline) < cfg.min_median_ms:
        return (
            False,
            f"baseline median {statistics.median(baseline):.3g} ms is under the {cfg.min_median_ms:g} ms floor",
        )
    return True, ""


def _survivorship(runs: dict[str, dict[str, int]] | None) -> str:
    """Why a NO REGRESSION cannot stand: the candidate lost more runs than the baseline, and a
    failed run leaves no latency sample (its slowest requests may be exactly the ones missing)."""
    if not runs or "baseline" not in runs or "candidate" not in runs:
        return ""
    b, c = runs["baseline"], runs["candidate"]
    if c["runs"] and c["failed"] / c["runs"] > (b["failed"] / b["runs"] if b["runs"] else 0.0):
        return (
            f"{c['failed']} of {c['runs']} candidate runs failed (baseline {b['failed']} of {b['runs']}); "
            "their latencies are missing, so no regression is not shown"
        )
    return ""


def compare_operations(
    baseline: dict[str, list[float]],
    candidate: dict[str, list[float]],
    cfg: PerformanceConfig,
    *,
    section: str,
    runs: dict[str, dict[str, int]] | None = None,
) -> tuple[list[dict[str, Any]], list[Claim]]:
    from ..stats.inference import compare_samples

    survivorship = _survivorship(runs)
    comparisons: list[dict[str, Any]] = []
    claims: list[Claim] = []
    samples = {
        op: ([v for v in baseline.get(op, []) if v > 0], [v for v in candidate.get(op, []) if v > 0])
        for op in sorted(set(baseline) | set(candidate))
    }
    judgement = {op: _judged(op, a, cfg) for op, (a, _b) in samples.items()}
    m = sum(1 for judged, _ in judgement.values() if judged)
    # Bonferroni: m judged operations at 95% each would raise a false alarm far more often
    # than 5% of runs; each interval is widened to 1 - 0.05/m so the whole family holds at 95%.
    family_confidence = 1 - 0.05 / max(1, m)
    for op, (a, b) in samples.items():
        judged, why_not = judgement[op]
        cmp = compare_samples(
            a,
            b,
            tolerance=cfg.tolerance,
            resamples=cfg.resamples,
            seed=cfg.seed,
            min_samples=cfg.min_samples,
            unit="ms",
            confidence=family_confidence if judged else 0.95,
        )
        status = cmp.verdict.status
        details: dict[str, Any] = {"n": [len(a), len(b)]}
        statistic = cmp.describe()
        if status is Status.PASS and survivorship:
            status, statistic = Status.INCONCLUSIVE, f"{statistic}; {survivorship}"
        if not judged:
            statistic = f"informative only: {why_not}; {statistic}"
        else:
            if m > 1:
                statistic += f"; interval Bonferroni-adjusted over {m} judged operations"
            if status is Status.FAIL:
                details["recommendation"] = (
                    f"'{op}' is slower than the baseline beyond {cfg.tolerance:.0%}: {cmp.describe()}"
                )
            elif cmp.samples_needed:
                details["recommendation"] = (
                    f"Collect about {cmp.samples_needed} samples per side for '{op}' "
                    f"(performance.samples_per_side) to settle it."
                )
        comparisons.append({"operation": op, "judged": judged, **cmp.serialize()})
        claims.append(
            Claim(
                id=f"{section}.{op}",
                section=section,
                statement=f"'{op}' is no more than {cfg.tolerance:.0%} slower than the baseline (median)",
                status=status,
                statistic=statistic,
                required=judged,
                details=details,
                figure=cmp.figure(),
            )
        )
    if m == 0:
        # Switched on yet deciding nothing must not read as a pass.
        why = (
            "no operation produced a sample"
            if not samples
            else "no operation is judged: " + "; ".join(sorted({why for _, why in judgement.values()}))
        )
        claims.append(
            Claim(
                id=f"{section}.judged",
                section=section,
                statement="At least one operation's performance was judged against the baseline",
                status=Status.INCONCLUSIVE,
                statistic=why,
            )
        )
    return comparisons, claims
