"""Conditions checked on one received message or JSON body (pure): ``first_failure`` names the first
compiled condition that does not hold (path as written, expected, got), and ``check_body`` turns
that into the one-line reason of an HTTP step's or health endpoint's ``check:``. The WebSocket
conversation machine uses the same test for its ``check:`` items; ``_cap`` bounds the values shown."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .conditions import ABSENT, Condition, holds, lookup, lookup_all
from .conversation_spec import compile_conditions
from .templates import render_template

__all__ = [
    "DETAIL_CAP",
    "first_failure",
    "check_body",
]


DETAIL_CAP = 200


def _cap(text: Any, limit: int = DETAIL_CAP) -> str:
    out = text if isinstance(text, str) else json.dumps(text, default=str, sort_keys=True)
    return out if len(out) <= limit else out[: limit - 1] + "\u2026"


def first_failure(
    compiled: Sequence[tuple[tuple[str, ...], Condition]],
    raw_paths: Sequence[str],
    message: Any,
    context: Mapping[str, Any],
) -> tuple[str, Any, Any] | None:
    """The first condition that does not hold on ``message``: (path as written, expected, got), or None.

    Placeholders in the conditions are rendered with ``context``; a ``*`` path must hold for every element.
    """
    for (path, cond), raw_path in zip(compiled, raw_paths, strict=False):
        arg = render_template(cond.arg, context)
        if cond.op == "exists" and cond.arg is True and "*" in path:
            values = [v for v in lookup_all(message, path) if v is not ABSENT]
            if not values:
                return raw_path, {cond.op: arg}, "absent"
            continue
        for value in lookup_all(message, path) if "*" in path else [lookup(message, path)]:
            if not holds(cond, value, arg):
                shown = arg if cond.op == "equals" else {cond.op: arg}
                return raw_path, shown, "absent" if value is ABSENT else value
    return None


def check_body(conditions: Mapping[str, Any], body: Any, context: Mapping[str, Any]) -> str:
    """``check:`` conditions on a JSON body (HTTP steps, health endpoints): "" when all hold, else why not."""
    if not conditions:
        return ""
    failure = first_failure(compile_conditions(conditions, allow_star=True), list(conditions), body, context)
    if failure is None:
        return ""
    path, expected, got = failure
    return f"check {path}: expected {_cap(expected, 80)}, got {_cap(got, 80)}"
