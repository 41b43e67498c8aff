"""The performance section: interleaved A/B rounds until each judged operation is decided (issue 14), as evidence.

What the golden runs' finally steps, the users' teardown and the leftovers checks did is judged as in the
other sections (``performance.teardown.*``, on the candidate). Interrupted (Ctrl-C, SIGTERM) or broken
mid-sampling, the section still writes those claims and records, beside one INCONCLUSIVE claim that says
the sampling did not finish, before the interrupt goes on.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from ..core.models import Claim, SectionResult, Status
from ..execution.section import Section
from ._common import _scenario

if TYPE_CHECKING:
    from ..probes.perf import TeardownLog

__all__ = ["performance"]


def performance(sec: Section) -> SectionResult:
    from ..execution.baseline import stored_samples
    from ..probes.perf import TeardownLog, compare_operations, sample_sequentially
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
        targets = {"candidate": sec.params.target}
    elif sec.params.baseline is not None:
        targets = {"baseline": sec.params.baseline, "candidate": sec.params.target}
        data["baseline_source"] = f"live target {sec.params.baseline.base_url}, interleaved A/B"
    else:
        claim = sec.claim(
            "baseline",
            "Performance is compared with a baseline",
            Status.INCONCLUSIVE,
            "no baseline: params name no baseline target and no --baseline was given",
        )
        return sec.finish([claim], data)
    log = TeardownLog()
    rounds = collect_interleaved(scenario, cfg, targets, log)
    try:
        try:
            if cfg.stored_baseline:
                first = next(rounds)
                candidate_samples, data["runs"] = first.samples["candidate"], first.runs
            else:
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
        finally:
            rounds.close()  # the users' teardown and leftovers checks run now: their records are judged below
    except BaseException as exc:  # Ctrl-C, SIGTERM, a failure of ours: what the teardown did is still evidence
        with contextlib.suppress(Exception):  # the interrupt, not a failure to write, is what goes on
            stopped = sec.claim(
                "sampling_finished",
                "The performance sampling ran to its end",
                Status.INCONCLUSIVE,
                f"stopped by {type(exc).__name__} before the sampling finished: no operation was judged; "
                "what the finally and teardown steps did until then is in the evidence",
            )
            sec.finish([stopped, *_teardown_claims(sec, log)], {**data, **_teardown_data(log)})
        raise
    data["samples"] = {"baseline": baseline_samples, "candidate": candidate_samples}
    comparisons, claims = compare_operations(
        baseline_samples, candidate_samples, cfg, section=sec.name, runs=data.get("runs"), sequential=sampling
    )
    data["comparisons"] = comparisons
    data["durations_ms"] = candidate_samples
    return sec.finish([*claims, *_teardown_claims(sec, log)], {**data, **_teardown_data(log)})


def _teardown_claims(sec: Section, log: TeardownLog) -> list[Claim]:
    from ..probes.perf import performance_teardown_claims

    scenario = _scenario(sec)
    return performance_teardown_claims(
        log,
        steps_configured=bool(scenario.golden_path.finally_steps or scenario.teardown),
        leftovers_configured=bool(scenario.leftovers),
        section=sec.name,
    )


def _teardown_data(log: TeardownLog) -> dict[str, Any]:
    from ..probes.perf import teardown_evidence

    return teardown_evidence(log)
