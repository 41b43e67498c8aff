"""The performance section: interleaved A/B rounds until each judged operation is decided (issue 14), as evidence.

What the golden runs' finally steps, the users' teardown and the leftovers checks did is judged as in the
other sections (``performance.teardown.*``, on the candidate). Interrupted (Ctrl-C, SIGTERM) or broken
mid-sampling, the section still writes those claims and records, beside one INCONCLUSIVE claim that says
the sampling did not finish, before the interrupt goes on.

The users' own teardown and leftovers checks run after the evidence is written, and the evidence is then
written again with them: a kernel killed during a slow teardown (the runner kills it soon after an
interrupt) still leaves what the sampling found. Until then, and for any unit whose finally steps have not
all left their record, the teardown claims say what is owed and are never PASS.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING, Any

from ..core.models import Claim, SectionResult, Status
from ..execution.section import Section
from ._common import _scenario

if TYPE_CHECKING:
    from ..probes.perf import TeardownLog
    from ..probes.perf_collect import InterleavedRuns

__all__ = ["performance"]


def performance(sec: Section) -> SectionResult:
    from ..execution.baseline import stored_samples
    from ..probes.perf import TeardownLog, compare_operations, sample_sequentially
    from ..probes.perf_collect import InterleavedRuns

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
    runs = InterleavedRuns(scenario, cfg, targets, log)
    rounds = runs.rounds()
    stopped_by: BaseException | None = None
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
            rounds.close()  # the sampling ends here; the users' teardown runs once the evidence is written
    except BaseException as exc:  # Ctrl-C, SIGTERM, a failure of ours: what the teardown did is still evidence
        stopped_by = exc
        claims = [
            sec.claim(
                "sampling_finished",
                "The performance sampling ran to its end",
                Status.INCONCLUSIVE,
                f"stopped by {type(exc).__name__} before the sampling finished: no operation was judged; "
                "what the finally and teardown steps did until then is in the evidence",
            )
        ]
    else:
        data["samples"] = {"baseline": baseline_samples, "candidate": candidate_samples}
        comparisons, claims = compare_operations(
            baseline_samples, candidate_samples, cfg, section=sec.name, runs=data.get("runs"), sequential=sampling
        )
        data["comparisons"] = comparisons
        data["durations_ms"] = candidate_samples
    return _finish_with_teardown(sec, runs, claims, data, stopped_by)


def _finish_with_teardown(
    sec: Section, runs: InterleavedRuns, claims: list[Claim], data: dict[str, Any], stopped_by: BaseException | None
) -> SectionResult:
    """Write the evidence (the users' teardown and leftovers checks still owed), run them, write it again with
    their claims; interrupted (``stopped_by``) a failure to write is not what goes on, the interrupt is."""

    def write() -> SectionResult:
        return sec.finish([*claims, *_teardown_claims(sec, runs)], {**data, **_teardown_data(runs.log)})

    def write_quietly() -> None:
        with contextlib.suppress(Exception):
            write()

    if not runs.users_to_finish:  # nothing left to run: one write
        if stopped_by is None:
            return write()
        sec.finish_stopped(stopped_by, write)
        raise stopped_by
    # First the evidence as it stands (the users' teardown owed): a kernel killed during the teardown keeps it.
    if stopped_by is None:
        write()
    else:
        sec.finish_stopped(stopped_by, write)  # a failure of ours is said in it; later writes keep what stands
    try:
        runs.finish_users()
    except BaseException as exc:  # a (second) interrupt or a failure during the teardown: what ran is evidence
        write_quietly()
        if stopped_by is not None and isinstance(exc, Exception):
            raise stopped_by from exc  # the interrupt goes on, not the failure it met on the way out
        raise
    if stopped_by is not None:
        write_quietly()
        raise stopped_by
    return write()


def _teardown_claims(sec: Section, runs: InterleavedRuns) -> list[Claim]:
    """``<section>.teardown.*`` as ``perf.performance_teardown_claims`` judges them, over each side's records
    with what they still owe (``InterleavedRuns.so_far``): the candidate's decide, the baseline's are named."""
    log = runs.log
    claims = runs.so_far("candidate").claims(sec.name)
    if "baseline" not in log.teardown:  # a stored baseline: nothing ran on it here
        return claims
    baseline = {c.id: c for c in runs.so_far("baseline").claims(sec.name)}
    out = []
    for claim in claims:
        on_baseline = baseline[claim.id]
        note = f"baseline, not judged (the claim is about the candidate): {on_baseline.statistic}"
        out.append(
            dataclasses.replace(
                claim,
                statistic=f"{claim.statistic}; {note}",
                details={**claim.details, "baseline_failures": on_baseline.details.get("failures", [])},
            )
        )
    return out


def _teardown_data(log: TeardownLog) -> dict[str, Any]:
    from ..probes.perf import teardown_evidence

    return teardown_evidence(log)
