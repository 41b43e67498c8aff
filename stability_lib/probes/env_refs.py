"""``${NAME}`` environment references in params (pure): the pattern, and ``resolve_env`` that replaces them.

One function for every process that reads params: the params loader (``execution.params`` re-exports
both names) and a Locust worker (``scale.locust_user``, which may not import ``execution``). It lives
beside ``probes.scenario`` because which fields are templates is the scenario's knowledge.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..core.errors import MissingVariableError
from .scenario import is_template_field

__all__ = ["ENV_REFERENCE", "resolve_env"]

ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def resolve_env(raw: Any, env: Mapping[str, str], where: str = "") -> Any:
    """Replace every ``${NAME}`` in strings; a missing variable is named with its field path.

    Environment values are data, never templates: in a field that the scenario renders as a
    ``{placeholder}`` template, a value's braces are doubled, so rendering gives back the value
    exactly (``{token}`` stays ``{token}``, ``a{b`` does not fail). Escaping here, where the field
    is known, keeps the renderer one simple pure function that needs no environment.
    """
    if isinstance(raw, dict):
        return {k: resolve_env(v, env, f"{where}.{k}" if where else str(k)) for k, v in raw.items()}
    if isinstance(raw, list):
        return [resolve_env(v, env, f"{where}[{i}]") for i, v in enumerate(raw)]
    if isinstance(raw, str):
        template = is_template_field(where)

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise MissingVariableError(name, where or "<top>")
            value = env[name]
            return value.replace("{", "{{").replace("}", "}}") if template else value

        return ENV_REFERENCE.sub(sub, raw)
    return raw
