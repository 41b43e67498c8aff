"""Per-operation durations out of golden-path results (pure).

Operations: each HTTP and WebSocket step, the WebSocket connect, the time to
the first event, and every ``X_started`` .. ``X_completed`` pair of events
(agent steps, jobs, ...), numbered in order so any service's events work.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

__all__ = ["operation_samples_ms"]


def _paired_spans(event_types: list[str], offsets: list[float]) -> list[tuple[str, float]]:
    spans: list[tuple[str, float]] = []
    open_at: dict[str, float] = {}
    seen: dict[str, int] = defaultdict(int)
    for etype, t in zip(event_types, offsets, strict=False):
        if etype.endswith("_started"):
            open_at[etype[: -len("_started")]] = t
        elif etype.endswith("_completed"):
            stem = etype[: -len("_completed")]
            if stem in open_at:
                seen[stem] += 1
                spans.append((f"{stem}#{seen[stem]}", t - open_at.pop(stem)))
    return spans


def operation_samples_ms(golden: dict[str, Any]) -> dict[str, list[float]]:
    """``GoldenResult.to_dict()`` -> {operation: [milliseconds, ...]} over successful runs."""
    out: dict[str, list[float]] = defaultdict(list)
    for s in golden.get("samples", []):
        if s.get("ok") and s.get("duration_s") is not None:
            out[f"step:{s['step']}"].append(s["duration_s"] * 1e3)
    for run in golden.get("runs", []):
        if not run.get("ok"):
            continue
        for ws in run.get("ws_sessions", []):
            step = ws.get("step", "ws")
            if ws.get("connect_s") is not None:
                out[f"{step}:connect"].append(ws["connect_s"] * 1e3)
            if ws.get("first_event_s") is not None:
                out[f"{step}:first_event"].append(ws["first_event_s"] * 1e3)
            for name, seconds in _paired_spans(list(ws.get("event_types", [])), list(ws.get("event_offsets_s", []))):
                out[f"{step}:{name}"].append(seconds * 1e3)
    return dict(out)
