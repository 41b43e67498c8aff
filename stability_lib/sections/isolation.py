"""The isolation section: probe or run, judge, write evidence.

Interrupted (Ctrl-C, SIGTERM) or broken mid-run, the section still writes what it saw until then: a leak
seen in the runs that ended is a FAIL whatever the others would have shown (``isolation.no_cross_user_data``),
and one INCONCLUSIVE claim says the runs did not finish (``isolation.runs_finished``); no PASS is judged
on a part. Then the interrupt goes on.

The runs' finally steps and the users' teardown and leftovers checks are judged as in the golden path
(``isolation.teardown.*``): a step that failed to undo what a run created is a finding here too, and after
an interrupt a unit or user whose records are not all in keeps those claims from PASS.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from ..core.models import SectionResult, Status
from ..execution.section import Section
from ._common import NO_PARAMS_FILE, _golden_on_locust, _locust_engine_data, _scenario, _with_users
from .golden_path import golden_so_far

if TYPE_CHECKING:
    from ..probes.golden import GoldenResult


def isolation(sec: Section) -> SectionResult:
    from ..probes.golden import GoldenProgress, run_golden_path_sync, runs_stopped_claim

    if not sec.enabled:
        return sec.skip("switched off in params")
    engine: dict[str, Any] | None = None
    if sec.config.engine == "locust":  # many users at once, from several processes or machines
        done = _golden_on_locust(sec, sec.config.users)
        if done is None:
            return sec.skip(NO_PARAMS_FILE)
        result, claims, engine = done.result, done.claims(isolation_section=sec.name), _locust_engine_data(done)
    else:
        scenario, target = _with_users(_scenario(sec), sec.config.users), sec.params.target
        progress = GoldenProgress()
        try:
            result = run_golden_path_sync(target.base_url, scenario, ws_base_url=target.ws_base_url, progress=progress)
        except BaseException as exc:  # Ctrl-C, SIGTERM, a failure of ours: a leak already seen is still a FAIL
            stopped_by = type(exc).__name__

            def write_stopped() -> None:
                part, undone = golden_so_far(progress, scenario, target.base_url)
                _golden, seen = part.claims(isolation_section=sec.name)
                stopped = runs_stopped_claim(part, progress.planned_runs, stopped_by, sec.name)
                leak = [seen] if seen.status is Status.FAIL else []
                sec.finish([stopped, *leak, *undone.claims(sec.name)], _data(part))

            sec.finish_stopped(exc, write_stopped)
            raise
        claims = result.claims(isolation_section=sec.name)
    _golden, isolation_claim = claims
    data = _data(result)
    if engine is not None:
        data["engine"] = engine
    return sec.finish([isolation_claim, *result.teardown_claims(sec.name)], data)


def _data(result: GoldenResult) -> dict[str, Any]:
    return {
        "users": [u.to_dict() for u in result.users],
        "runs": len(result.runs),
        "isolation": result.isolation.to_dict(),
        "sightings_count": len(result.sightings),
        "teardown": [t.to_dict() for t in result.teardown],
        "leftovers": [dataclasses.asdict(c) for c in result.leftovers],
    }
