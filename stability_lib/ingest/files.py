"""The one place ingest touches the file system: size-capped reads of a load run's files, and
``external_performance_claims`` that reads, parses (pure modules) and judges them.

A file that is missing, not a regular file, larger than ``max_file_bytes`` or not in its format
gives an INCONCLUSIVE claim that says so, never a traceback and never a pass.
"""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..core.models import Claim
from .config import ExternalPerformanceConfig
from .judge import judge_external, unreadable_claim
from .k6 import K6_INTERRUPTED_LIMIT, parse_k6_log, parse_k6_points, parse_k6_summary
from .locust_csv import locust_run, parse_locust_exceptions, parse_locust_history, parse_locust_json
from .records import IngestError, LoadRun

__all__ = ["read_capped", "load_run", "external_performance_claims"]


def read_capped(path: Path, cap: int) -> bytes:
    """The bytes of a regular file of at most ``cap`` bytes; ``IngestError`` otherwise."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise IngestError(f"{path}: no such file") from None
    except OSError as exc:
        raise IngestError(f"{path}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
        raise IngestError(f"{path}: not a regular file")
    if info.st_size > cap:
        raise IngestError(
            f"{path}: {info.st_size} bytes, more than the {cap} allowed (performance.external.max_file_bytes)"
        )
    try:
        with open(path, "rb") as handle:
            data = handle.read(cap + 1)
    except OSError as exc:
        raise IngestError(f"{path}: cannot be read ({exc.strerror})") from None
    if len(data) > cap:  # grew since stat
        raise IngestError(f"{path}: more than the {cap} bytes allowed")
    return data


def _text(path: Path, cap: int) -> str:
    return read_capped(path, cap).decode("utf-8-sig", errors="replace")


def _optional_text(path: Path, cap: int) -> str | None:
    return _text(path, cap) if path.exists() else None


def load_run(
    location: str, log: str | None, cfg: ExternalPerformanceConfig, base_dir: Path
) -> tuple[LoadRun, dict[str, Any]]:
    """One run's files, parsed (and its extra data: Locust's history in brief)."""
    cap = cfg.max_file_bytes
    where = Path(base_dir) / location
    extra: dict[str, Any] = {}
    if cfg.format == "locust_csv":
        prefix = str(where).removesuffix("_stats.csv")
        run = locust_run(
            Path(prefix).name,
            _text(Path(f"{prefix}_stats.csv"), cap),
            _optional_text(Path(f"{prefix}_failures.csv"), cap),
            _optional_text(Path(f"{prefix}_exceptions.csv"), cap),
        )
        history = _optional_text(Path(f"{prefix}_stats_history.csv"), cap)
        if history is not None:
            extra["history"] = parse_locust_history(history, f"{Path(prefix).name}_stats_history.csv").serialize()
        return run, extra
    if cfg.format == "locust_json":
        run = parse_locust_json(_text(where, cap), where.name)
        if log is not None:
            errors = parse_locust_exceptions(_text(Path(base_dir) / log, cap), Path(log).name)
            limits = tuple(lim for lim in run.limits if not lim.startswith("No exceptions file"))
            run = replace(run, script_errors=errors, limits=limits)
        return run, extra
    if cfg.format == "k6_json":
        run = parse_k6_points(read_capped(where, cap), where.name)
    else:
        run = parse_k6_summary(_text(where, cap), where.name)
    if log is not None:
        parsed = parse_k6_log(_text(Path(base_dir) / log, cap))
        known = parsed.interrupted_iterations is not None
        limits = tuple(
            lim
            for lim in run.limits
            if not lim.startswith("No k6 log given") and not (known and lim == K6_INTERRUPTED_LIMIT)
        )
        run = replace(
            run, script_errors=parsed.errors, interrupted_iterations=parsed.interrupted_iterations, limits=limits
        )
    return run, extra


def external_performance_claims(
    config: ExternalPerformanceConfig, base_dir: str | Path, *, section: str = "performance"
) -> tuple[list[Claim], dict[str, Any]]:
    """Read, parse and judge the ingested runs of ``sections.performance.external``; paths are
    relative to ``base_dir`` (the params file's folder). Returns the claims and the data for
    the section's evidence (under ``data["external"]``)."""
    base = Path(base_dir)
    try:
        candidate, cand_extra = load_run(config.candidate, config.candidate_log, config, base)
    except IngestError as exc:
        return [unreadable_claim(section, "candidate", str(exc))], {"format": config.format, "error": str(exc)}
    baseline: LoadRun | None = None
    base_extra: dict[str, Any] = {}
    extra_claims: list[Claim] = []
    no_baseline = "no baseline files: performance.external.baseline is not set"
    if config.baseline is not None:
        try:
            baseline, base_extra = load_run(config.baseline, config.baseline_log, config, base)
        except IngestError as exc:
            extra_claims.append(unreadable_claim(section, "baseline", str(exc)))
            no_baseline = f"the baseline files could not be read: {exc}"
    claims, data = judge_external(candidate, baseline, config, section=section, no_baseline=no_baseline)
    data["candidate_extra"], data["baseline_extra"] = cand_extra, base_extra
    return extra_claims + claims, data
