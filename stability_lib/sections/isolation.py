"""The isolation section: probe or run, judge, write evidence."""

from __future__ import annotations

from ..core.models import SectionResult
from ..execution.section import Section
from ._common import _scenario, _with_users


def isolation(sec: Section) -> SectionResult:
    from ..probes.golden import run_golden_path_sync

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
