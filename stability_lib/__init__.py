"""stability-proof: prove that a change to a web service is safe.

The public API is re-exported here; implementation lives in private modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .core.errors import (
    EvidenceError,
    ExportError,
    MissingVariableError,
    ParamsError,
    RunError,
    StabilityError,
    TargetError,
)
from .core.models import EVIDENCE_SCHEMA_VERSION, Claim, EvidenceRef, SectionResult, Status
from .core.verdict import overall_status, section_status
from .core.version import __version__

if TYPE_CHECKING:  # the names below load on first use (see __getattr__)
    from . import sections
    from ._pipeline import RunOutcome, render_report, run
    from .execution.params import Params, load_params
    from .execution.section import Section, open_section
    from .probes.health import health_claims, run_health
    from .report.frames import Run, RunFormatError, Runs, load_run, load_runs
    from .report.reportbook import RunReport, latest_run, open_report
    from .report.views import show as show_section

# Loaded on first use, not at import: httpx, websockets, pydantic models, papermill, pandas and
# matplotlib cost about 1.5 s of CPU, which one-check commands (stability diff, junit) never need.
_LAZY: dict[str, tuple[str, str]] = {
    "sections": ("stability_lib.sections", ""),
    "run": ("stability_lib._pipeline", "run"),
    "render_report": ("stability_lib._pipeline", "render_report"),
    "RunOutcome": ("stability_lib._pipeline", "RunOutcome"),
    "Params": ("stability_lib.execution.params", "Params"),
    "load_params": ("stability_lib.execution.params", "load_params"),
    "Section": ("stability_lib.execution.section", "Section"),
    "open_section": ("stability_lib.execution.section", "open_section"),
    "run_health": ("stability_lib.probes.health", "run_health"),
    "health_claims": ("stability_lib.probes.health", "health_claims"),
    "RunReport": ("stability_lib.report.reportbook", "RunReport"),
    "open_report": ("stability_lib.report.reportbook", "open_report"),
    "latest_run": ("stability_lib.report.reportbook", "latest_run"),
    "show_section": ("stability_lib.report.views", "show"),
    **{
        name: ("stability_lib.report.frames", name)
        for name in ("load_run", "load_runs", "Run", "Runs", "RunFormatError")
    },
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        module_name, attribute = _LAZY[name]
        module = importlib.import_module(module_name)
        value = getattr(module, attribute) if attribute else module
        globals()[name] = value  # once loaded, an ordinary attribute
        return value
    raise AttributeError(f"module 'stability_lib' has no attribute {name!r}")


__all__ = [
    "__version__",
    "EVIDENCE_SCHEMA_VERSION",
    "Claim",
    "EvidenceRef",
    "SectionResult",
    "Status",
    "overall_status",
    "Params",
    "load_params",
    "Section",
    "open_section",
    "show_section",
    "sections",
    "run_health",
    "health_claims",
    "run",
    "render_report",
    "RunOutcome",
    "RunReport",
    "open_report",
    "latest_run",
    "section_status",
    "StabilityError",
    "ParamsError",
    "MissingVariableError",
    "RunError",
    "ExportError",
    "TargetError",
    "EvidenceError",
    "load_run",
    "load_runs",
    "Run",
    "Runs",
    "RunFormatError",
]
