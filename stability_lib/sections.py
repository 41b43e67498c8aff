"""One function per report section: probe or run, judge, write evidence.

Section notebooks call these (``result = sl.sections.suites(sec)``) and then
show the result; all the work stays in the library.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .core.errors import ParamsError
from .core.models import Claim, SectionResult, Status
from .execution.secrets import redact_tree
from .execution.section import Section
from .probes.health import health_claims, run_health

if TYPE_CHECKING:
    from .execution.params import TargetConfig
    from .probes.scenario import ScenarioConfig

__all__ = ["health", "suites", "websocket", "golden_path", "isolation", "performance", "contract"]


def health(sec: Section) -> SectionResult:
    if not sec.enabled:
        return sec.skip("switched off in params")
    data = run_health(sec.params.target, sec.config)
    return sec.finish(health_claims(sec.config, data), data)


def suites(sec: Section) -> SectionResult:
    from .suites.runner import category_claims, run_suites

    if not sec.enabled:
        return sec.skip("switched off in params")
    out_dir = sec.run_dir / "suites"
    results = run_suites(sec.config, base_dir=sec.base_dir, out_dir=out_dir, target_url=sec.params.target.base_url)
    redact_tree(out_dir, sec.secrets)  # copied JUnit XML and output logs are kept in the run
    data = {
        "categories": [r.to_dict() for r in results],
        "commands": [f"(cd {r.run.cwd} && {' '.join(r.run.argv)})" for r in results],
    }
    claims = [
        replace(
            c,
            evidence=(sec.ref(c.id.split(".", 1)[1]),)
            + tuple(replace(e, file=f"suites/{e.file}") for e in c.evidence if e.file),
        )
        for c in category_claims(results)
    ]
    return sec.finish(claims, data)


def _scenario(sec: Section) -> ScenarioConfig:
    if sec.params.scenario is None:  # validate_params refuses this; a hand-made Params may not
        raise ParamsError(f"section '{sec.name}' needs a 'scenario' block in params")
    return sec.params.scenario


def _with_users(scenario: ScenarioConfig, count: int | None, repetitions: int | None = None) -> ScenarioConfig:
    update: dict[str, Any] = {}
    if count is not None:
        update["users"] = scenario.users.model_copy(update={"count": count})
    if repetitions is not None:
        update["golden_path"] = scenario.golden_path.model_copy(update={"repetitions": repetitions})
    return scenario.model_copy(update=update) if update else scenario


def websocket(sec: Section) -> SectionResult:
    from .probes.engine import run_soak_sync
    from .stats.inference import compare_failure_rates

    if not sec.enabled:
        return sec.skip("switched off in params")
    scenario, target = _scenario(sec), sec.params.target
    candidate = run_soak_sync(target.base_url, scenario, ws_base_url=target.ws_base_url)
    claims = list(candidate.claims(sec.name))
    records = candidate.records
    data: dict = {
        "candidate": candidate.to_dict(),
        "durations_ms": {
            "ws_connect": [r.connect_s * 1e3 for r in records if r.connect_s is not None],
            "ws_first_event": [r.first_event_s * 1e3 for r in records if r.first_event_s is not None],
        },
    }
    if sec.config.expect_fix:
        baseline_target = sec.params.baseline
        if baseline_target is None:
            claims.append(
                sec.claim(
                    "fix_works",
                    "The 1011/1006 fix works (fewer crash closes than the baseline)",
                    Status.INCONCLUSIVE,
                    "no baseline target in params to compare with",
                )
            )
        else:
            baseline = run_soak_sync(baseline_target.base_url, scenario, ws_base_url=baseline_target.ws_base_url)
            data["baseline"] = baseline.to_dict()
            b, c = baseline.aggregate, candidate.aggregate
            # Over sessions seen to their end: a candidate that hangs must not "fix" its crashes.
            fix = compare_failure_rates(
                b.crashes, b.observed, c.crashes, c.observed, scenario.tolerated_failure_rate, scenario.confidence
            )
            status = fix.status.status
            data["fix"] = fix.serialize()
            claims.append(
                Claim(
                    id=f"{sec.name}.fix_works",
                    section=sec.name,
                    statement="The fix works: fewer sessions close with 1011/1006 than on the baseline",
                    status=status,
                    statistic=fix.describe(),
                    details={"n": [b.observed, c.observed]},
                    figure=fix.figure(),
                )
            )
    return sec.finish(claims, data)


def golden_path(sec: Section) -> SectionResult:
    from .probes.golden import run_golden_path_sync
    from .probes.operations import operation_samples_ms

    if not sec.enabled:
        return sec.skip("switched off in params")
    scenario, target = _scenario(sec), sec.params.target
    result = run_golden_path_sync(target.base_url, scenario, ws_base_url=target.ws_base_url)
    golden_claim, _isolation = result.claims(golden_section=sec.name)
    data = result.to_dict()
    data.pop("sightings", None)  # the isolation section keeps those
    data["durations_ms"] = operation_samples_ms(data)
    return sec.finish([golden_claim], data)


def isolation(sec: Section) -> SectionResult:
    from .probes.golden import run_golden_path_sync

    if not sec.enabled:
        return sec.skip("switched off in params")
    scenario, target = _scenario(sec), sec.params.target
    scenario = _with_users(scenario, sec.config.users)
    result = run_golden_path_sync(target.base_url, scenario, ws_base_url=target.ws_base_url)
    _golden, isolation_claim = result.claims(isolation_section=sec.name)
    data = {
        "users": [u.to_dict() for u in result.users],
        "runs": len(result.runs),
        "isolation": result.isolation.to_dict(),
        "sightings_count": len(result.sightings),
    }
    return sec.finish([isolation_claim], data)


def performance(sec: Section) -> SectionResult:
    from .execution.baseline import stored_samples
    from .probes.perf import collect_interleaved, compare_operations

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


def _observed_events(target: TargetConfig, scenario: ScenarioConfig) -> list[dict[str, Any]]:
    """A short golden path (1 user, 2 repetitions) whose WebSocket events feed the message-contract diff."""
    import json

    from .probes.golden import run_golden_path_sync

    small = _with_users(scenario, 1, 2)
    result = run_golden_path_sync(target.base_url, small, ws_base_url=target.ws_base_url)
    # Only runs that succeeded: a side that answers every message with an error event must not
    # define its message contract by those errors.
    good = {(r.user, r.repetition) for r in result.runs if r.ok}
    events = []
    for s in result.sightings:
        if not s.where.startswith("ws event") or (s.viewer, s.repetition) not in good:
            continue
        try:
            event = json.loads(s.text)
        except ValueError:
            continue  # capped or not JSON: not evidence of a schema
        if isinstance(event, dict):
            events.append(event)
    return events


def contract(sec: Section) -> SectionResult:
    from .contract.section import run_contract

    if not sec.enabled:
        return sec.skip("switched off in params")
    cfg, params = sec.config, sec.params
    baseline_events = candidate_events = None
    if cfg.compare_ws_events and params.scenario is not None and params.baseline is not None:
        baseline_events = _observed_events(params.baseline, params.scenario)
        candidate_events = _observed_events(params.target, params.scenario)
    result = run_contract(
        cfg,
        baseline_url=params.baseline.base_url if params.baseline else None,
        candidate_url=params.target.base_url,
        base_dir=sec.base_dir,
        baseline_events=baseline_events,
        candidate_events=candidate_events,
    )
    return sec.finish(result.claims(), result.to_dict())
