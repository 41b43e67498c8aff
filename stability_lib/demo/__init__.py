"""The bundled sample service: the default target of the tool and the server of our tests.

``serve()`` runs it in a background thread; ``python -m stability_lib.demo``
runs it in the foreground. ``Faults`` and ``VARIANTS`` describe what can go
wrong; see README.md in this folder.

The names below load on first use (PEP 562): ``stability demo`` only starts the service in
processes of its own (``launch``), and importing FastAPI and uvicorn here too would cost the
command about 0.3 CPU-s before the services can start.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_LAZY = {
    "serve": "._server",
    "DemoStartError": "._server",
    "create_app": "._app",
    "AGENT_STEPS": "._app",
    "MAX_CONTENT_CHARS": "._app",
    "MAX_BODY_BYTES": "._app",
    "MAX_WS_FRAME_BYTES": "._app",
    "Faults": "._faults",
    "FaultSpecError": "._faults",
    "ApiBreak": "._faults",
    "SlowOperation": "._faults",
    "VARIANTS": "._faults",
    "variant_faults": "._faults",
    "FAULTS_ENV_VAR": "._faults",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


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
