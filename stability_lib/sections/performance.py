"""The performance section: interleaved A/B rounds until each judged operation is decided (issue 14), as evidence."""

from __future__ import annotations

from ..core.models import SectionResult, Status
from ..execution.section import Section
from ._common import _scenario

__all__ = ["performance"]


def performance(sec: Section) -> SectionResult:
    from ..execution.baseline import stored_samples
    from ..probes.perf import compare_operations, sample_sequentially
    from ..probes.perf_collect import collect_interleaved

    if not sec.enabled:
        return sec.skip("switched off in params")
    if getattr(sec.config, "external", None) is not None:
        # Runs made elsewhere (Locust, k6): their files are the evidence, no live sampling.
        from ..ingest.files import external_performance_claims

        external = sec.config.external
        claims, ingested = external_performance_claims(external, sec.base_dir, section=sec.name)
        return sec.finish(claims, {"tolerance": external.tolerance, "external": ingested})
    scenario, cfg = _scenario(sec), sec.config
    data: dict = {"tolerance": cfg.tolerance}
    sampling = None
    if cfg.stored_baseline:
        # A stored baseline takes no more samples: one round of the candidate, the fixed-sample rule.
        baseline_samples, data["baseline_source"], data["baseline_differences"] = stored_samples(
            cfg.stored_baseline, sec.run_dir, sec.invocation_dir
        )
        first = next(collect_interleaved(scenario, cfg, {"candidate": sec.params.target}))
        candidate_samples, data["runs"] = first.samples["candidate"], first.runs
    elif sec.params.baseline is not None:
        rounds = collect_interleaved(scenario, cfg, {"baseline": sec.params.baseline, "candidate": sec.params.target})
        data["baseline_source"] = f"live target {sec.params.baseline.base_url}, interleaved A/B"
        if cfg.sequential:
            sampling = sample_sequentially(rounds, cfg)
            both, data["runs"] = sampling.samples, sampling.runs
            data["sequential"] = sampling.serialize(cfg)
            data["sample_rounds"] = sampling.rounds
        else:
            first = next(rounds)
            both, data["runs"] = first.samples, first.runs
            data["sample_rounds"] = 1
        baseline_samples, candidate_samples = both.get("baseline", {}), both.get("candidate", {})
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
        baseline_samples, candidate_samples, cfg, section=sec.name, runs=data.get("runs"), sequential=sampling
    )
    data["comparisons"] = comparisons
    data["durations_ms"] = candidate_samples
    return sec.finish(claims, data)
