"""The golden path section: probe or run, judge, write evidence.

Interrupted (Ctrl-C, SIGTERM) or broken mid-run, the section still writes what the runs' finally steps and
the users' teardown and leftovers checks did until then (``golden_path.teardown.*``), beside one INCONCLUSIVE
claim that says the runs did not finish (``golden_path.runs_finished``), before the interrupt goes on.
It writes while some of them may still run (the kernel waits only so long for the cancelled runs): a unit
whose finally steps have not all left their record, or a user set up whose teardown or leftovers checks
have not, makes those claims INCONCLUSIVE (FAIL when a recorded step failed), saying how many.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.models import SectionResult
from ..execution.section import Section
from ._common import NO_PARAMS_FILE, _golden_on_locust, _locust_engine_data, _scenario

if TYPE_CHECKING:
    from ..probes.golden import GoldenProgress, GoldenResult
    from ..probes.golden_users import UsersFinished
    from ..probes.scenario import ScenarioConfig


def golden_path(sec: Section) -> SectionResult:
    from ..probes.golden import GoldenProgress, run_golden_path_sync, runs_stopped_claim

    if not sec.enabled:
        return sec.skip("switched off in params")
    if sec.config.engine == "locust":
        return _golden_path_locust(sec)
    scenario, target = _scenario(sec), sec.params.target
    progress = GoldenProgress()
    try:
        result = run_golden_path_sync(target.base_url, scenario, ws_base_url=target.ws_base_url, progress=progress)
    except BaseException as exc:  # Ctrl-C, SIGTERM, a failure of ours: what the teardown did is still evidence
        stopped_by = type(exc).__name__

        def write_stopped() -> None:
            done, undone = golden_so_far(progress, scenario, target.base_url)
            stopped = runs_stopped_claim(done, progress.planned_runs, stopped_by, sec.name)
            sec.finish([stopped, *undone.claims(sec.name)], _evidence(done.to_dict()))

        sec.finish_stopped(exc, write_stopped)
        raise
    golden_claim, _isolation = result.claims(golden_section=sec.name)
    return sec.finish([golden_claim, *result.teardown_claims(sec.name)], _evidence(result.to_dict()))


def golden_so_far(
    progress: GoldenProgress, scenario: ScenarioConfig, base_url: str
) -> tuple[GoldenResult, UsersFinished]:
    """What a stopped golden-path call did until now, and its finally/teardown steps and leftovers checks
    with what they still owe: the units whose finally steps have not all left their record (read before and
    after the records are copied) and, when the call set its own users up, each user whose teardown
    records or leftovers checks are not all in. Their claims are never PASS while anything is owed."""
    from ..probes.golden_users import users_finished_so_far
    from ..probes.teardown import units_in_flight

    before = units_in_flight(progress.run_id) if progress.run_id else ()
    done = progress.result(scenario)
    after = units_in_flight(progress.run_id) if progress.run_id else ()
    undone = users_finished_so_far(
        done.teardown,
        done.leftovers,
        teardown_configured=done.teardown_configured,
        leftovers_configured=done.leftovers_configured,
        scenario=scenario,
        users=done.users if progress.users_own else (),
        in_flight=(*before, *after),
        target=base_url,
    )
    return done, undone


def _evidence(data: dict[str, Any]) -> dict[str, Any]:
    from ..probes.operations import operation_samples_ms

    data.pop("sightings", None)  # the isolation section keeps those
    data["durations_ms"] = operation_samples_ms(data)
    return data


def _golden_path_locust(sec: Section) -> SectionResult:
    """``engine: locust``: each test user taken by one Locust user on some worker, judged as our own engine's run."""
    done = _golden_on_locust(sec)
    if done is None:
        return sec.skip(NO_PARAMS_FILE)
    golden_claim, _isolation = done.claims(golden_section=sec.name)
    data = {**_evidence(done.result.to_dict()), "engine": _locust_engine_data(done)}
    # What the golden runs created was deleted again (only when the scenario has finally steps).
    return sec.finish([golden_claim, *done.result.teardown_claims(sec.name)], data)
