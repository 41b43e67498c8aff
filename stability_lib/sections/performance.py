"""The performance section: probe or run, judge, write evidence."""

from __future__ import annotations

from ..core.models import SectionResult, Status
from ..execution.section import Section
from ._common import _scenario


def performance(sec: Section) -> SectionResult:
    from ..execution.baseline import stored_samples
    from ..probes.perf import collect_interleaved, compare_operations

    if not sec.enabled:
        return sec.skip("switched off in params")
    scenario, cfg = _scenario(sec), sec.config
    data: dict = {"tolerance": cfg.tolerance}
    if cfg.stored_baseline:
        baseline_samples, data["baseline_source"], data["baseline_differences"] = stored_samples(
            cfg.stored_baseline, sec.run_dir, sec.invocation_dir
        )
        collected, runs = collect_interleaved(scenario, cfg, {"candidate": sec.params.target})
        candidate_samples = collected["candidate"]
        data["runs"] = runs
    elif sec.params.baseline is not None:
        both, runs = collect_interleaved(
            scenario, cfg, {"baseline": sec.params.baseline, "candidate": sec.params.target}
        )
        baseline_samples, candidate_samples = both["baseline"], both["candidate"]
        data["runs"] = runs
        data["baseline_source"] = f"live target {sec.params.baseline.base_url}, interleaved A/B"
    else:
        claim = sec.claim(
            "baseline",
            "Performance is compared with a baseline",
            Status.INCONCLUSIVE,
            "no baseline: params name no baseline target and no --baseline was given",
        )
        return sec.finish([claim], data)
    data["samples"] = {"baseline": baseline_samples, "candidate": candidate_samples}
    comparisons, claims = compare_operations(
        baseline_samples, candidate_samples, cfg, section=sec.name, runs=data.get("runs")
    )
    data["comparisons"] = comparisons
    data["durations_ms"] = candidate_samples
    return sec.finish(claims, data)
