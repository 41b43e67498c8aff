"""Section configs of the probe families (WebSocket soak, golden path, isolation).

The scenario itself (auth, steps, soak caps) lives in params' top-level
``scenario`` block (see ``probes.scenario.ScenarioConfig``); these switch the sections
on and tune what each one asks of it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["WebSocketSectionConfig", "GoldenPathSectionConfig", "IsolationSectionConfig"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True


class WebSocketSectionConfig(_Section):
    """Soak: many sessions at bounded concurrency (scenario.soak); counts outcomes and close codes."""

    expect_fix: bool = Field(
        False,
        description="The change claims to fix 1011/1006 closes: soak the baseline target too and require the "
        "candidate's rate to be lower (one-sided Fisher exact test at 5%) and within the tolerated rate.",
    )


class GoldenPathSectionConfig(_Section):
    """The golden path for scenario.users.count users at once, scenario.golden_path.repetitions times each."""


class IsolationSectionConfig(_Section):
    """Multi-user isolation: the golden path with a unique nonce per message; no user may see another's."""

    users: int | None = Field(None, ge=2, le=50, description="Users at once (default: scenario.users.count).")
