"""What several sections share: the scenario block, a scenario with fewer users."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.errors import ParamsError
from ..execution.section import Section

if TYPE_CHECKING:
    from ..probes.scenario import ScenarioConfig


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
