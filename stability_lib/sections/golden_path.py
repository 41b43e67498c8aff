"""The golden path section: probe or run, judge, write evidence."""

from __future__ import annotations

from typing import Any

from ..core.models import SectionResult
from ..execution.section import Section
from ._common import _scenario


def golden_path(sec: Section) -> SectionResult:
    from ..probes.golden import run_golden_path_sync

    if not sec.enabled:
        return sec.skip("switched off in params")
    if sec.config.engine == "locust":
        return _golden_path_locust(sec)
    scenario, target = _scenario(sec), sec.params.target
    result = run_golden_path_sync(target.base_url, scenario, ws_base_url=target.ws_base_url)
    golden_claim, _isolation = result.claims(golden_section=sec.name)
    return sec.finish([golden_claim, *result.teardown_claims(sec.name)], _evidence(result.to_dict()))


def _evidence(data: dict[str, Any]) -> dict[str, Any]:
    from ..probes.operations import operation_samples_ms

    data.pop("sightings", None)  # the isolation section keeps those
    data["durations_ms"] = operation_samples_ms(data)
    return data


def _golden_path_locust(sec: Section) -> SectionResult:
    """``engine: locust``: each test user taken by one Locust user on some worker, judged as our own engine's run.

    The plan the Locust processes read keeps the params' ``${NAME}`` references (from the run's
    params.yaml): no secret goes into a file; each worker resolves them from its own environment.
    """
    from ..execution.params import read_raw
    from ..scale.golden_launcher import run_locust_golden
    from ..scale.launcher import LocustSettings

    params_file = sec.run_dir / "params.yaml"
    if not params_file.exists():
        return sec.skip("the locust engine runs from `stability run` (no params.yaml in the run directory)")
    raw = read_raw(params_file)
    target, raw_target = sec.params.target, raw.get("target") or {}
    done = run_locust_golden(
        scenario=_scenario(sec),
        raw_scenario=raw["scenario"],
        raw_base_url=str(raw_target.get("base_url", target.base_url)),
        raw_ws_base_url=raw_target.get("ws_base_url"),
        out_dir=sec.run_dir / "locust" / "golden_path",
        settings=LocustSettings.of_section(sec.config),
    )
    golden_claim, _isolation = done.claims(golden_section=sec.name)
    # The same shape as the websocket section's: {engine: locust, sides: {candidate: {workers, rate_per_s, ...}}}
    data = {
        **_evidence(done.result.to_dict()),
        "engine": {"engine": "locust", "sides": {"candidate": done.run.to_dict()}},
    }
    # What the golden runs created was deleted again (only when the scenario has finally steps).
    return sec.finish([golden_claim, *done.result.teardown_claims(sec.name)], data)
