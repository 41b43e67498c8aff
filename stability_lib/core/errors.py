"""One exception hierarchy for the whole package.

Callers catch ``StabilityError`` for anything of ours, or a layer below it:
``ParamsError`` (the run cannot even start), ``TargetError`` (the service under
test misbehaved in a way a probe could not record), ``RunError`` (our own
machinery failed: a kernel, a notebook, the exporter).
"""

from __future__ import annotations

__all__ = [
    "StabilityError",
    "ParamsError",
    "MissingVariableError",
    "RunError",
    "ExportError",
    "TargetError",
    "EvidenceError",
]


class StabilityError(Exception):
    """Base of every error raised by stability_lib."""


class ParamsError(StabilityError):
    """The params file is invalid: a wrong key, a wrong type, a missing file."""


class MissingVariableError(ParamsError):
    """A ``${NAME}`` reference names an environment variable that is not set."""

    def __init__(self, name: str, where: str) -> None:
        self.name = name
        self.where = where
        super().__init__(f"environment variable {name} is not set (referenced at {where})")


class RunError(StabilityError):
    """Our own machinery failed: notebook execution, a kernel, the run directory."""


class ExportError(RunError):
    """HTML or PDF export failed (for example: no Chromium)."""


class TargetError(StabilityError):
    """The service under test could not be used at all."""


class EvidenceError(StabilityError):
    """An evidence file is missing, unreadable or of an unknown schema version."""
