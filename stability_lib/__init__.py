"""stability-proof: prove that a change to a web service is safe.

The public API is re-exported here; implementation lives in private modules.
"""

from __future__ import annotations

from . import sections
from ._pipeline import RunOutcome, render_report, run
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
from .execution.params import Params, load_params
from .execution.section import Section, open_section
from .probes.health import health_claims, run_health
from .report.reportbook import RunReport, latest_run, open_report
from .report.views import show as show_section

# The data API needs pandas (0.2 s to import): loaded on first use, not on every command start.
_LAZY = {"load_run", "load_runs", "Run", "Runs", "RunFormatError"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from .report import frames as _frames

        return getattr(_frames, name)
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
