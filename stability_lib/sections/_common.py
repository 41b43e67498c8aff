"""What several sections share: the scenario block, a scenario with fewer users, the golden path on Locust."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.errors import ParamsError
from ..execution.section import Section

if TYPE_CHECKING:
    from ..probes.scenario import ScenarioConfig
    from ..scale.golden_launcher import LocustGolden


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


def _golden_on_locust(sec: Section, users: int | None = None) -> LocustGolden | None:
    """The golden path on a Locust master and its workers (``engine: locust``), with ``users`` test users
    instead of scenario.users.count when given; None when the run directory has no params.yaml.

    The plan the Locust processes read keeps the params' ``${NAME}`` references (from the run's
    params.yaml): no secret goes into a file; each worker resolves them from its own environment.
    """
    from ..execution.params import read_raw
    from ..scale.golden_launcher import run_locust_golden
    from ..scale.launcher import LocustSettings

    params_file = sec.run_dir / "params.yaml"
    if not params_file.exists():
        return None
    raw = read_raw(params_file)
    raw_scenario = raw["scenario"]
    if users is not None:
        raw_scenario = {**raw_scenario, "users": {**(raw_scenario.get("users") or {}), "count": users}}
    target, raw_target = sec.params.target, raw.get("target") or {}
    return run_locust_golden(
        scenario=_with_users(_scenario(sec), users),
        raw_scenario=raw_scenario,
        raw_base_url=str(raw_target.get("base_url", target.base_url)),
        raw_ws_base_url=raw_target.get("ws_base_url"),
        out_dir=sec.run_dir / "locust" / sec.name,
        settings=LocustSettings.of_section(sec.config),
    )


def _locust_engine_data(done: LocustGolden) -> dict[str, Any]:
    """The evidence's engine entry, the same shape as the websocket section's."""
    return {"engine": "locust", "sides": {"candidate": done.run.to_dict()}}


NO_PARAMS_FILE = "the locust engine runs from `stability run` (no params.yaml in the run directory)"
