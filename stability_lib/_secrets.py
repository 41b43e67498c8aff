"""One redactor for every value that came from a ``${NAME}`` reference.

Secrets come from the environment only; this module knows which resolved
values they are and scrubs them from whatever we keep (evidence, logs,
executed notebooks, copied test output). Target and baseline addresses are
substituted too but are not secret: the report must say what was tested.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ._params import ENV_REFERENCE

__all__ = ["secret_values", "redact_text", "redact_obj", "redact_file", "redact_tree", "REDACTED"]

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 4  # shorter values ("1", "on") would scrub ordinary text, and guard nothing
_ADDRESS_FIELDS = ("target.", "baseline.")


def secret_values(raw: Any, env: Mapping[str, str], where: str = "") -> frozenset[str]:
    """The resolved values of every ``${NAME}`` in raw params, except in target/baseline addresses."""
    found: set[str] = set()
    if isinstance(raw, dict):
        for key, value in raw.items():
            found |= secret_values(value, env, f"{where}.{key}" if where else str(key))
    elif isinstance(raw, list):
        for value in raw:
            found |= secret_values(value, env, where)
    elif isinstance(raw, str) and not where.startswith(_ADDRESS_FIELDS):
        for name in ENV_REFERENCE.findall(raw):
            value = env.get(name, "")
            if len(value) >= MIN_SECRET_CHARS:
                found.add(value)
    return frozenset(found)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):  # longest first: no partial leftovers
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_obj(obj: Any, secrets: frozenset[str]) -> Any:
    if not secrets:
        return obj
    if isinstance(obj, str):
        return redact_text(obj, secrets)
    if isinstance(obj, dict):
        return {k: redact_obj(v, secrets) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact_obj(v, secrets) for v in obj)
    return obj


def redact_file(path: Path, secrets: frozenset[str]) -> bool:
    """Scrub a kept file in place (atomically). Returns True when something was replaced."""
    if not secrets or not path.is_file():
        return False
    data = path.read_bytes()
    encoded = [s.encode("utf-8") for s in sorted(secrets, key=len, reverse=True)]
    if not any(s in data for s in encoded):
        return False
    for s in encoded:
        data = data.replace(s, REDACTED.encode())
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return True


def redact_tree(folder: Path, secrets: frozenset[str]) -> int:
    return sum(redact_file(p, secrets) for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
