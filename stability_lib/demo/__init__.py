"""The bundled sample service: the default target of the tool and the server of our tests.

``serve()`` runs it in a background thread; ``python -m stability_lib.demo``
runs it in the foreground. ``Faults`` and ``VARIANTS`` describe what can go
wrong; see README.md in this folder.
"""

from __future__ import annotations

from pathlib import Path

from ._app import AGENT_STEPS, MAX_BODY_BYTES, MAX_CONTENT_CHARS, MAX_WS_FRAME_BYTES, create_app
from ._faults import (
    FAULTS_ENV_VAR,
    VARIANTS,
    ApiBreak,
    Faults,
    FaultSpecError,
    SlowOperation,
    variant_faults,
)
from ._server import DemoStartError, serve

# Folder of the service's own pytest suite (the "team's tests" the tool runs).
SUITE_DIR = Path(__file__).resolve().parent / "suite"
# The environment variable the suite reads the service URL from.
SUITE_TARGET_ENV_VAR = "STABILITY_TARGET_URL"

__all__ = [
    "serve",
    "create_app",
    "Faults",
    "FaultSpecError",
    "ApiBreak",
    "SlowOperation",
    "VARIANTS",
    "variant_faults",
    "FAULTS_ENV_VAR",
    "DemoStartError",
    "SUITE_DIR",
    "SUITE_TARGET_ENV_VAR",
    "AGENT_STEPS",
    "MAX_CONTENT_CHARS",
    "MAX_BODY_BYTES",
    "MAX_WS_FRAME_BYTES",
]
