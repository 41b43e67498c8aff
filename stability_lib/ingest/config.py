"""The params of ingested load results: ``sections.performance.external``. Pure (a pydantic model).

Example::

    sections:
      performance:
        external:
          format: locust_csv            # locust_csv | k6_json | k6_summary
          candidate: runs/cand/locust   # Locust: the --csv PREFIX; k6: the file
          baseline: runs/base/locust
          requests: ["GET /api/*"]      # names that decide the verdict (globs)
          tolerance: 0.10
          tolerated_failure_rate: 0.01
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ExternalFormat", "ExternalPerformanceConfig", "DEFAULT_MAX_FILE_BYTES"]

ExternalFormat = Literal["locust_csv", "locust_json", "k6_json", "k6_summary"]
DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024


class ExternalPerformanceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: ExternalFormat = Field(
        description="locust_csv: the files of `locust --csv PREFIX` (PREFIX_stats.csv, _failures.csv, "
        "_exceptions.csv, _stats_history.csv); locust_json: `locust --json-file NAME` (NAME.json: the "
        "histogram of response times, so the median is judged); k6_json: the file of `k6 run --out json=FILE` (FILE.gz too); "
        "k6_summary: `k6 run --summary-export=FILE` or the JSON a handleSummary wrote."
    )
    candidate: str = Field(
        min_length=1,
        max_length=4096,
        description="The candidate run: the CSV prefix (Locust) or the file (k6), relative to the params file.",
    )
    baseline: str | None = Field(
        None, max_length=4096, description="The baseline run's prefix or file; without it no latency is judged."
    )
    candidate_log: str | None = Field(
        None,
        max_length=4096,
        description="k6: the candidate's console output (`k6 run ... 2>&1 | tee FILE`), the only record of "
        "exceptions thrown by the script and of iterations interrupted mid-way (a --log-output file has the "
        "exceptions only). locust_json: the same run's PREFIX_exceptions.csv (run with --csv too). "
        "Without it the script check is INCONCLUSIVE.",
    )
    baseline_log: str | None = Field(None, max_length=4096, description="The baseline's log (as candidate_log).")
    requests: list[str] = Field(
        default_factory=lambda: ["*"],
        max_length=200,
        description="Request names that decide the verdict (glob patterns); the others are reported as informative.",
    )
    tolerance: float = Field(0.10, gt=0, le=2, description="Allowed slowdown (0.10 = 10%).")
    tolerated_failure_rate: float = Field(
        0.01,
        ge=0,
        lt=1,
        description="Highest failure rate still acceptable per judged request name (0.01 = 1%, as "
        "scenario.tolerated_failure_rate). 0: any failure FAILs, and none can only be INCONCLUSIVE (a rate of 0 "
        "cannot be confirmed by a finite run). A candidate that fails significantly more often than the "
        "baseline (one-sided Fisher exact test) FAILs too.",
    )
    summary_quantile: float = Field(
        0.95,
        ge=0.5,
        le=0.99,
        description="The quantile judged when the files hold a few percentiles, not samples (Locust CSV, k6 "
        "summaries). With samples (k6_json) or a histogram (locust_json) the median is judged.",
    )
    min_samples: int = Field(20, ge=2, le=1_000_000, description="Below this many requests per side: INCONCLUSIVE.")
    resamples: int = Field(10_000, ge=100, le=100_000, description="Bootstrap resamples (k6_json: samples).")
    seed: int = 0
    max_file_bytes: int = Field(
        DEFAULT_MAX_FILE_BYTES, ge=1024, le=4 * 1024**3, description="A larger file is refused, not read."
    )

    @model_validator(mode="after")
    def _logs_where_read(self) -> ExternalPerformanceConfig:
        """locust_csv reads PREFIX_exceptions.csv next to its stats: a log named here would be ignored."""
        if self.format == "locust_csv":
            given = sorted({"candidate_log", "baseline_log"} & self.model_fields_set)
            if given:
                raise ValueError(
                    f"{given[0]}: locust_csv reads the run's PREFIX_exceptions.csv itself; a log applies to "
                    "k6_json, k6_summary and locust_json"
                )
        return self
