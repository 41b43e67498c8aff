"""One function per report section: probe or run, judge, write evidence.

Section notebooks call these (``result = sl.sections.suites(sec)``) and then
show the result; all the work stays in the library.

One module per section; each exports the function the notebook calls."""

from __future__ import annotations

from .contract import contract
from .golden_path import golden_path
from .health import health
from .isolation import isolation
from .performance import performance
from .suites import suites
from .websocket import websocket

__all__ = ["health", "suites", "websocket", "golden_path", "isolation", "performance", "contract"]
