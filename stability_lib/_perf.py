"""Performance section config (the statistics live in ``_stats``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PerformanceConfig"]


class PerformanceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    tolerance: float = Field(0.10, gt=0, le=2, description="Allowed slowdown of the median (0.10 = 10%).")
    samples_per_side: int = Field(60, ge=1, le=5000, description="Golden-path runs per target, interleaved A/B.")
    concurrency: int = Field(4, ge=1, le=50)
    resamples: int = Field(10_000, ge=100, le=100_000, description="Bootstrap resamples.")
    min_samples: int = Field(20, ge=2, description="Below this per side a comparison is INCONCLUSIVE.")
    seed: int = 0
