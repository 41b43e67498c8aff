"""The isolation section: probe or run, judge, write evidence."""

from __future__ import annotations

from typing import Any

from ..core.models import SectionResult
from ..execution.section import Section
from ._common import NO_PARAMS_FILE, _golden_on_locust, _locust_engine_data, _scenario, _with_users


def isolation(sec: Section) -> SectionResult:
    from ..probes.golden import run_golden_path_sync

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
        result = run_golden_path_sync(target.base_url, scenario, ws_base_url=target.ws_base_url)
        claims = result.claims(isolation_section=sec.name)
    _golden, isolation_claim = claims
    data: dict[str, Any] = {
        "users": [u.to_dict() for u in result.users],
        "runs": len(result.runs),
        "isolation": result.isolation.to_dict(),
        "sightings_count": len(result.sightings),
    }
    if engine is not None:
        data["engine"] = engine
    return sec.finish([isolation_claim], data)
