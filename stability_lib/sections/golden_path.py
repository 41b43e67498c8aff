"""The golden path section: probe or run, judge, write evidence."""

from __future__ import annotations

from ..core.models import SectionResult
from ..execution.section import Section
from ._common import _scenario


def golden_path(sec: Section) -> SectionResult:
    from ..probes.golden import run_golden_path_sync
    from ..probes.operations import operation_samples_ms

    if not sec.enabled:
        return sec.skip("switched off in params")
    scenario, target = _scenario(sec), sec.params.target
    result = run_golden_path_sync(target.base_url, scenario, ws_base_url=target.ws_base_url)
    golden_claim, _isolation = result.claims(golden_section=sec.name)
    data = result.to_dict()
    data.pop("sightings", None)  # the isolation section keeps those
    data["durations_ms"] = operation_samples_ms(data)
    # What the golden runs created was deleted again (only when the scenario has finally steps).
    return sec.finish([golden_claim, *result.teardown_claims(sec.name)], data)
