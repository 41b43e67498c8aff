"""Section configs of the probe families (WebSocket soak, golden path, isolation).

The scenario itself (auth, steps, soak caps) lives in params' top-level
``scenario`` block (see ``_scenario.ScenarioConfig``); these switch the sections
on and tune what each one asks of it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["WebSocketSectionConfig", "GoldenPathSectionConfig", "IsolationSectionConfig"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True


class WebSocketSectionConfig(_Section):
    """Soak: many sessions at bounded concurrency; counts outcomes and close codes."""


class GoldenPathSectionConfig(_Section):
    users: int = Field(4, ge=1, le=100, description="Users running the golden path at once.")
    repetitions: int = Field(3, ge=1, le=100, description="Golden-path runs per user.")


class IsolationSectionConfig(_Section):
    users: int = Field(4, ge=2, le=100, description="Users at once; each message carries a unique nonce.")
    repetitions: int = Field(2, ge=1, le=100)
