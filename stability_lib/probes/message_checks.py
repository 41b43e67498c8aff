"""Conditions checked on one received message or JSON body (pure): ``first_failure`` names the first
compiled condition that does not hold (path as written, expected, got), and ``check_body`` turns
that into the one-line reason of an HTTP step's or health endpoint's ``check:``. The WebSocket
conversation machine uses the same test for its ``check:`` items; ``_cap`` bounds the values shown.

``parse_json`` parses an untrusted body or message: whatever the service sent, the text is either
a document or "not JSON" with the reason, never an exception of ours."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .conditions import ABSENT, Condition, format_path, holds, lookup, lookup_all
from .conversation_spec import compile_conditions
from .templates import render_template

__all__ = [
    "DETAIL_CAP",
    "NOT_JSON",
    "NESTED_TOO_DEEPLY",
    "NoElement",
    "parse_json",
    "no_element",
    "first_failure",
    "check_body",
]


DETAIL_CAP = 200
NOT_JSON = "not JSON"
NESTED_TOO_DEEPLY = "not JSON (nested too deeply)"


def parse_json(text: str | bytes | bytearray) -> tuple[Any, str]:
    """An untrusted body or message parsed: ``(document, "")``, or ``(None, why)`` when it is not JSON.

    ``why`` is ``NOT_JSON``, or ``NESTED_TOO_DEEPLY`` for a document nested deeper than the parser
    can go (a few KB of ``[[[[``): ``json.loads`` raises RecursionError then, not ValueError.
    """
    try:
        return json.loads(text), ""
    except RecursionError:
        return None, NESTED_TOO_DEEPLY
    except ValueError:  # includes UnicodeDecodeError (bytes)
        return None, NOT_JSON


class NoElement(str):
    """The ``got`` of a ``*`` check that reached no element at all; the text says why."""

    __slots__ = ()


def no_element(message: Any, path: Sequence[str]) -> NoElement:
    """Why the ``*`` path ``path`` reaches no element of ``message``: the collection before the ``*``
    where it ran out is empty (``lookup_all`` keeps ``ABSENT`` for a missing branch, so only empty
    arrays or objects make it reach nothing)."""
    for i, segment in enumerate(path):
        if segment == "*" and not lookup_all(message, path[: i + 1]):
            before = path[:i]
            where = format_path(before) if before else "the top level"
            return NoElement(f"no element to check ({'every ' if '*' in before else ''}{where} is empty)")
    return NoElement("no element to check")


def _cap(text: Any, limit: int = DETAIL_CAP) -> str:
    out = str(text) if isinstance(text, str) else json.dumps(text, default=str, sort_keys=True)
    return out if len(out) <= limit else out[: limit - 1] + "\u2026"


def first_failure(
    compiled: Sequence[tuple[tuple[str, ...], Condition]],
    raw_paths: Sequence[str],
    message: Any,
    context: Mapping[str, Any],
) -> tuple[str, Any, Any] | None:
    """The first condition that does not hold on ``message``: (path as written, expected, got), or None.

    Placeholders in the conditions are rendered with ``context``. A ``*`` path must hold for every
    element (``exists: true``: for some element), and it must reach at least one: a check of no element
    at all fails (``got`` is a ``NoElement`` saying which collection is empty), unless the condition is
    one that a missing value meets (``exists: false``, ``not_contains``, ``not_empty: false``), which
    says that no element may have something: no element has it.
    """
    for (path, cond), raw_path in zip(compiled, raw_paths, strict=False):
        arg = render_template(cond.arg, context)
        if "*" not in path:
            value = lookup(message, path)
            if not holds(cond, value, arg):
                return raw_path, arg if cond.op == "equals" else {cond.op: arg}, "absent" if value is ABSENT else value
            continue
        values = lookup_all(message, path)
        if not values:
            if holds(cond, ABSENT, arg):
                continue
            return raw_path, arg if cond.op == "equals" else {cond.op: arg}, no_element(message, path)
        if cond.op == "exists" and cond.arg is True:
            if all(v is ABSENT for v in values):
                return raw_path, {cond.op: arg}, "absent"
            continue
        for value in values:
            if not holds(cond, value, arg):
                return raw_path, arg if cond.op == "equals" else {cond.op: arg}, "absent" if value is ABSENT else value
    return None


def check_body(conditions: Mapping[str, Any], body: Any, context: Mapping[str, Any]) -> str:
    """``check:`` conditions on a JSON body (HTTP steps, health endpoints): "" when all hold, else why not."""
    if not conditions:
        return ""
    failure = first_failure(compile_conditions(conditions, allow_star=True), list(conditions), body, context)
    if failure is None:
        return ""
    path, expected, got = failure
    if isinstance(got, NoElement):
        return f"check {path}: {got}"
    return f"check {path}: expected {_cap(expected, 80)}, got {_cap(got, 80)}"
