"""Claims from ingested load runs: latency and failures per judged request name against a
baseline run's files, and whether the load script itself ran cleanly. Pure.

Latency: with samples (k6 ``--out json``) the performance section's own rule decides
(``stats.compare_samples``: ratio of medians, bootstrap interval, ``PERFORMANCE_RULE_TEXT``);
with percentiles only (Locust CSV, k6 summaries) the distribution-free percentile rule
(``percentiles.PERCENTILE_RULE_TEXT``). The judged names form one family: every interval is
widened to 1 - 0.05/m (Bonferroni), as in ``probes.perf``.
Failures: ``stats.judge_failure_rate`` against ``tolerated_failure_rate``, and FAIL when the
candidate fails significantly more often than the baseline (one-sided Fisher exact test).
The script: an exception, a failed check, a dropped or interrupted iteration FAILs; a run whose
files cannot show whether the script threw or was interrupted (k6 without its console output) is
INCONCLUSIVE. k6's own thresholds can FAIL
the run but never make it pass: a summary says they held even when the script threw.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from ..core.models import Claim, Figure, Status
from ..stats import (
    FAILURE_RATE_RULE_TEXT,
    PERFORMANCE_RULE_TEXT,
    PerfVerdict,
    RateVerdict,
    compare_failure_rates,
    compare_samples,
    judge_failure_rate,
)
from .config import ExternalPerformanceConfig
from .k6 import K6_INTERRUPTED_LIMIT
from .percentiles import PERCENTILE_RULE_TEXT, compare_percentiles
from .records import LoadRun, RequestStats

__all__ = ["judge_external", "unreadable_claim"]

_PERF_STATUS = {
    PerfVerdict.NO_REGRESSION: Status.PASS,
    PerfVerdict.REGRESSION: Status.FAIL,
    PerfVerdict.INCONCLUSIVE: Status.INCONCLUSIVE,
}
_RATE_STATUS = {
    RateVerdict.PASS: Status.PASS,
    RateVerdict.FAIL: Status.FAIL,
    RateVerdict.INCONCLUSIVE: Status.INCONCLUSIVE,
}


def _claim(section: str, check: str, statement: str, status: Status, statistic: str, **kw: Any) -> Claim:
    return Claim(
        id=f"{section}.external.{check}",
        section=section,
        statement=statement,
        status=status,
        statistic=statistic,
        **kw,
    )


def unreadable_claim(section: str, side: str, reason: str) -> Claim:
    """A run's files could not be read or parsed: nothing shown, so INCONCLUSIVE, saying why."""
    return _claim(
        section,
        f"{side}_files",
        f"The {side} run's load-test files could be read",
        Status.INCONCLUSIVE,
        reason,
        details={"recommendation": f"Fix or regenerate the {side} files: {reason}"},
    )


def _judged(name: str, cfg: ExternalPerformanceConfig) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in cfg.requests)


def _latency_claim(
    section: str,
    name: str,
    base: RequestStats | None,
    cand: RequestStats,
    cfg: ExternalPerformanceConfig,
    confidence: float,
    m: int,
) -> tuple[Claim, dict[str, Any]]:
    histogram = cand.histogram and base is not None and base.histogram
    quantile = 0.5 if histogram else cfg.summary_quantile
    statement_q = "median" if cand.has_samples or histogram else f"{100 * quantile:g}th percentile"
    statement = f"'{name}' is no more than {cfg.tolerance:.0%} slower than the baseline ({statement_q})"
    entry: dict[str, Any] = {"name": name}
    figure: Figure | None = None
    if base is None:
        status, statistic = Status.INCONCLUSIVE, f"the baseline run has no request named '{name}'"
    elif cand.has_samples and base.has_samples:
        cmp = compare_samples(
            [v for v in (base.samples or ()) if v > 0],
            [v for v in (cand.samples or ()) if v > 0],
            tolerance=cfg.tolerance,
            resamples=cfg.resamples,
            seed=cfg.seed,
            min_samples=cfg.min_samples,
            unit="ms",
            confidence=confidence,
        )
        status, statistic, figure = _PERF_STATUS[cmp.verdict], cmp.describe(), cmp.figure()
        entry.update(rule="median ratio, bootstrap (samples)", **cmp.serialize())
    else:
        cmp_p = compare_percentiles(
            base.quantiles,
            base.requests,
            cand.quantiles,
            cand.requests,
            quantile=quantile,
            tolerance=cfg.tolerance,
            confidence=confidence,
            min_samples=cfg.min_samples,
        )
        status, statistic = _PERF_STATUS[cmp_p.verdict], cmp_p.describe()
        statistic += (
            "; from Locust's histogram of rounded latencies: no bootstrap interval on rounded values"
            if histogram
            else "; from percentiles only (the files hold no samples): no bootstrap interval is possible"
        )
        entry.update(cmp_p.serialize())
        figure = Figure(
            kind="ratio",
            value=cmp_p.ratio,
            low=cmp_p.ratio_low,
            high=None if cmp_p.ratio_high == float("inf") else cmp_p.ratio_high,
            confidence=confidence,
            n=cand.requests,
            baseline_n=base.requests,
            test="distribution-free order-statistic bounds from reported percentiles",
            tolerance=cfg.tolerance,
            what="median" if histogram else f"p{100 * quantile:g}",
        )
    if m > 1:
        statistic += f"; interval Bonferroni-adjusted over {m} judged request names"
    details: dict[str, Any] = {"n": [base.requests if base else 0, cand.requests]}
    if status is Status.FAIL:
        details["recommendation"] = f"'{name}' is slower than the baseline beyond {cfg.tolerance:.0%}: {statistic}"
    claim = _claim(section, f"latency.{name}", statement, status, statistic, details=details, figure=figure)
    return claim, entry


def _failure_claim(
    section: str,
    name: str,
    base: RequestStats | None,
    cand: RequestStats,
    cfg: ExternalPerformanceConfig,
    confidence: float,
    recorded: bool = True,
) -> Claim:
    statement = f"'{name}' fails no more often than the tolerated {cfg.tolerated_failure_rate:.2%} of requests"
    if not recorded:
        why = "the files do not record which requests failed (no http_req_failed metric)"
        return _claim(section, f"failures.{name}", statement, Status.INCONCLUSIVE, why)
    verdict, estimate, text = judge_failure_rate(cand.failures, cand.requests, cfg.tolerated_failure_rate, confidence)
    status = _RATE_STATUS[verdict]
    statistic = f"{text.rstrip('.')}"
    details: dict[str, Any] = {"failures": cand.failures, "requests": cand.requests}
    if base is not None and base.requests > 0 and cand.requests > 0:
        fisher = compare_failure_rates(
            base.failures, base.requests, cand.failures, cand.requests, cfg.tolerated_failure_rate, confidence
        )
        details["baseline"] = {"failures": base.failures, "requests": base.requests}
        details["p_candidate_higher"] = fisher.p_candidate_higher
        statistic += f"; baseline {base.failures} of {base.requests}"
        if fisher.p_candidate_higher < 1.0 - confidence:
            status = Status.FAIL
            statistic += f"; the candidate fails significantly more often (Fisher exact one-sided p={fisher.p_candidate_higher:.2g})"
    if status is Status.FAIL:
        details["recommendation"] = f"'{name}' failed {cand.failures} of {cand.requests} requests: {statistic}"
    return _claim(
        section,
        f"failures.{name}",
        statement,
        status,
        statistic,
        details=details,
        figure=estimate.figure("failed requests", tolerance=cfg.tolerated_failure_rate),
    )


def _script_claim(section: str, run: LoadRun) -> Claim:
    problems: list[str] = []
    seen: list[str] = []
    if run.script_errors is not None:
        thrown = sum(e.count for e in run.script_errors)
        (problems if thrown else seen).append(
            f"{thrown} exception{'s' if thrown != 1 else ''} thrown by the script"
            + (f" (first: {run.script_errors[0].message})" if thrown else "")
        )
    if run.checks is not None:
        failed = sum(c.fails for c in run.checks)
        total = failed + sum(c.passes for c in run.checks)
        worst = [c.name for c in run.checks if c.fails]
        (problems if failed else seen).append(
            f"{failed} of {total} checks failed" + (f" ({', '.join(worst[:3])})" if worst else "")
        )
    if run.dropped_iterations:
        problems.append(f"{run.dropped_iterations} iterations dropped (the load was not delivered as configured)")
    if run.interrupted_iterations:
        problems.append(f"{run.interrupted_iterations} iterations interrupted mid-way (their requests are missing)")
    statement = "The load script ran cleanly: no exception, no failed check, no dropped or interrupted iteration"
    if problems:
        return _claim(
            section,
            "script",
            statement,
            Status.FAIL,
            "; ".join(problems),
            details={"recommendation": f"The {run.tool} script did not run as written: {'; '.join(problems)}"},
        )
    if run.script_errors is None:
        unknown = next((lim for lim in run.limits if "exception" in lim), "whether the script threw is unknown")
        return _claim(section, "script", statement, Status.INCONCLUSIVE, "; ".join([*seen, unknown]))
    if run.dropped_iterations is not None:
        seen.append(f"{run.dropped_iterations} iterations dropped")
    if run.tool == "k6" and run.interrupted_iterations is None:
        unknown = next(lim for lim in (*run.limits, K6_INTERRUPTED_LIMIT) if "interrupted" in lim)
        return _claim(section, "script", statement, Status.INCONCLUSIVE, "; ".join([*seen, unknown]))
    if run.interrupted_iterations is not None:
        seen.append(f"{run.interrupted_iterations} iterations interrupted")
    return _claim(section, "script", statement, Status.PASS, "; ".join(seen) or "no error recorded")


def _threshold_claim(section: str, run: LoadRun) -> Claim:
    crossed = [t for t in run.thresholds if not t.ok]
    statement = f"The {run.tool} script's own thresholds held"
    if crossed:
        listed = ", ".join(f"{t.metric} '{t.expression}'" for t in crossed[:5])
        return _claim(
            section, "thresholds", statement, Status.FAIL, f"{len(crossed)} of {len(run.thresholds)} crossed: {listed}"
        )
    return _claim(
        section,
        "thresholds",
        statement,
        Status.PASS,
        f"all {len(run.thresholds)} held as {run.tool} reports them; informative only: thresholds do not make "
        "this section pass (a k6 summary says they held even when the script threw)",
        required=False,
    )


def judge_external(
    candidate: LoadRun,
    baseline: LoadRun | None,
    cfg: ExternalPerformanceConfig,
    *,
    section: str = "performance",
    no_baseline: str = "no baseline files: performance.external.baseline is not set",
) -> tuple[list[Claim], dict[str, Any]]:
    """Claims on an ingested candidate run (against a baseline run when given) and the data behind
    them. ``no_baseline`` says why there is no baseline, when there is none."""
    claims: list[Claim] = []
    rules = [FAILURE_RATE_RULE_TEXT]
    data: dict[str, Any] = {
        "format": cfg.format,
        "candidate": candidate.serialize(),
        "baseline": baseline.serialize() if baseline is not None else None,
        "comparisons": [],
        "rules": rules,
    }
    names = [r.name for r in candidate.requests]
    judged = [r for r in candidate.requests if _judged(r.name, cfg)]
    data["judged"] = [r.name for r in judged]
    data["informative"] = [n for n in names if n not in data["judged"]]
    if candidate.total_requests == 0:
        claims.append(
            _claim(
                section,
                "evidence",
                f"The candidate's {candidate.tool} files record requests",
                Status.INCONCLUSIVE,
                f"no request in {candidate.source}: nothing was measured",
            )
        )
    elif not judged:
        claims.append(
            _claim(
                section,
                "judged",
                "At least one request name of the ingested run was judged",
                Status.INCONCLUSIVE,
                f"none of {len(names)} request names matches performance.external.requests {cfg.requests}",
            )
        )
    m = len(judged)
    confidence = 1 - 0.05 / max(1, m)
    base_by_name = baseline.by_name() if baseline is not None else {}
    if baseline is None and judged:
        claims.append(
            _claim(
                section,
                "baseline",
                "Latency is compared with a baseline run's files",
                Status.INCONCLUSIVE,
                no_baseline,
            )
        )
    for stats in judged:
        if baseline is not None:
            claim, entry = _latency_claim(section, stats.name, base_by_name.get(stats.name), stats, cfg, confidence, m)
            claims.append(claim)
            data["comparisons"].append(entry)
        base_stats = base_by_name.get(stats.name) if baseline is not None and baseline.failures_recorded else None
        claims.append(
            _failure_claim(section, stats.name, base_stats, stats, cfg, confidence, candidate.failures_recorded)
        )
    cand_names = set(names)
    for lost in (r for r in (baseline.requests if baseline is not None else ()) if _judged(r.name, cfg)):
        if lost.name not in cand_names and lost.requests > 0:
            claims.append(
                _claim(
                    section,
                    f"latency.{lost.name}",
                    f"'{lost.name}' is no more than {cfg.tolerance:.0%} slower than the baseline",
                    Status.INCONCLUSIVE,
                    f"the baseline made {lost.requests} requests named '{lost.name}', the candidate none",
                )
            )
    if any(r.has_samples for r in judged):
        rules.append(PERFORMANCE_RULE_TEXT)
    elif judged:
        rules.append(PERCENTILE_RULE_TEXT)
    claims.append(_script_claim(section, candidate))
    if candidate.thresholds:
        claims.append(_threshold_claim(section, candidate))
    return claims, data
