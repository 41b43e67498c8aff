"""Safe ``{name}`` templates: no attribute access, indexing or evaluation. Pure.

A placeholder is a plain name looked up in a context dict (``{{``/``}}`` for a literal brace).
Split out of ``probes.scenario`` so the conversation models can use it without an import cycle.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..core.errors import ParamsError

__all__ = ["TemplateError", "MISSING", "render_template", "template_placeholders", "malformed_brace"]


class TemplateError(ParamsError):
    """A template names a placeholder that the context does not have, or is malformed."""


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|\{|\}")
_WHOLE_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _MissingType:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _MissingType()


def _render_string(template: str, context: Mapping[str, Any]) -> Any:
    if "{" not in template and "}" not in template:
        return template  # nothing to fill (most header names and many paths): no regex pass per request
    whole = _WHOLE_PLACEHOLDER.fullmatch(template)
    if whole:
        # A string that is exactly one placeholder keeps the value's JSON type (an int id stays int).
        name = whole.group(1)
        if name not in context:
            raise TemplateError(f"template placeholder {{{name}}} has no value")
        return context[name]

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1)
        if name is None:
            raise TemplateError(f"unbalanced brace in template {template[:80]!r}")
        if name not in context:
            raise TemplateError(f"template placeholder {{{name}}} has no value")
        return str(context[name])

    return _PLACEHOLDER.sub(substitute, template)


def render_template(template: Any, context: Mapping[str, Any]) -> Any:
    """Fill ``{name}`` placeholders in every string of a JSON-like template.

    Dict keys and values, list items and plain strings are rendered; numbers, booleans
    and None pass through. Raises ``TemplateError`` for an unknown placeholder.
    """
    if isinstance(template, str):
        return _render_string(template, context)
    if isinstance(template, Mapping):
        return {str(_render_string(str(k), context)): render_template(v, context) for k, v in template.items()}
    if isinstance(template, (list, tuple)):
        return [render_template(v, context) for v in template]
    return template


def template_placeholders(template: Any) -> set[str]:
    """Every placeholder name used anywhere in a JSON-like template."""
    found: set[str] = set()
    if isinstance(template, str):
        for match in _PLACEHOLDER.finditer(template):
            if match.group(1):
                found.add(match.group(1))
    elif isinstance(template, Mapping):
        for key, value in template.items():
            found |= template_placeholders(str(key))
            found |= template_placeholders(value)
    elif isinstance(template, (list, tuple)):
        for value in template:
            found |= template_placeholders(value)
    return found


def malformed_brace(template: Any) -> str | None:
    """The first string of a template with a lone ``{`` or ``}`` (write ``{{``/``}}``), or None."""
    if isinstance(template, str):
        for match in _PLACEHOLDER.finditer(template):
            if match.group(0) in ("{", "}"):
                return template
        return None
    items: list[Any] = []
    if isinstance(template, Mapping):
        items = [*map(str, template.keys()), *template.values()]
    elif isinstance(template, (list, tuple)):
        items = list(template)
    for item in items:
        found = malformed_brace(item)
        if found is not None:
            return found
    return None
