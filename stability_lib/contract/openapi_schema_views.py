"""Reading OpenAPI schemas (pure) for the schema diff.

Local ref resolution and the views compared: bounds, types, enums, variant keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = []


def _esc(token: str) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class _Resolver:
    """Resolves local refs (``#/a/b``) in one document."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = spec
        self._cache: dict[str, Any] = {}

    def lookup(self, ref: str) -> Any:
        if ref in self._cache:
            return self._cache[ref]
        node: Any = None
        if ref.startswith("#"):
            node = self.spec
            for raw in ref[1:].split("/")[1:] if ref != "#" else []:
                token = raw.replace("~1", "/").replace("~0", "~")
                if isinstance(node, Mapping) and token in node:
                    node = node[token]
                elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                    node = node[int(token)]
                else:
                    node = None
                    break
        self._cache[ref] = node
        return node

    def deref(self, node: Any, limit: int = 32) -> tuple[Any, str | None, str | None]:
        """(resolved node, first ref name or None, unresolvable ref or None)."""
        first: str | None = None
        seen: set[str] = set()
        while isinstance(node, Mapping) and isinstance(node.get("$ref"), str) and limit > 0:
            ref = node["$ref"]
            first = first or ref
            if ref in seen:  # a ref that points at itself only
                return {}, first, ref
            seen.add(ref)
            target = self.lookup(ref)
            if not isinstance(target, Mapping):
                return {}, first, ref
            node = target
            limit -= 1
        return node, first, None


@dataclass(frozen=True)
class _Bound:
    value: float
    exclusive: bool


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _lower_bound(s: Mapping[str, Any]) -> _Bound | None:
    best: _Bound | None = None
    mn = _num(s.get("minimum"))
    if mn is not None:
        best = _Bound(mn, s.get("exclusiveMinimum") is True)  # 3.0: boolean flag
    ex = _num(s.get("exclusiveMinimum"))  # 3.1: a number
    if ex is not None and (best is None or ex >= best.value):
        best = _Bound(ex, True)
    return best


def _upper_bound(s: Mapping[str, Any]) -> _Bound | None:
    best: _Bound | None = None
    mx = _num(s.get("maximum"))
    if mx is not None:
        best = _Bound(mx, s.get("exclusiveMaximum") is True)
    ex = _num(s.get("exclusiveMaximum"))
    if ex is not None and (best is None or ex <= best.value):
        best = _Bound(ex, True)
    return best


def _lower_tighter(old: _Bound | None, new: _Bound | None) -> bool:
    if new is None:
        return False
    if old is None:
        return True
    return new.value > old.value or (new.value == old.value and new.exclusive and not old.exclusive)


def _upper_tighter(old: _Bound | None, new: _Bound | None) -> bool:
    if new is None:
        return False
    if old is None:
        return True
    return new.value < old.value or (new.value == old.value and new.exclusive and not old.exclusive)


def _is_null_schema(s: Any) -> bool:
    if not isinstance(s, Mapping):
        return False
    t = s.get("type")
    return t == "null" or (isinstance(t, list) and t == ["null"]) or (s.get("enum") == [None])


def _types(s: Mapping[str, Any]) -> tuple[frozenset[str], bool]:
    """(declared types without null — empty means any, nullable)."""
    raw = s.get("type")
    nullable = s.get("nullable") is True  # 3.0
    if isinstance(raw, list):  # 3.1
        names = {str(t) for t in raw}
    elif isinstance(raw, str):
        names = {raw}
    else:
        names = set()
        # No declared type: infer the obvious one so an untyped object is not "any".
        if "properties" in s:
            names.add("object")
        elif "items" in s:
            names.add("array")
    if "null" in names:
        nullable = True
        names.discard("null")
    enum_vals = s.get("enum")
    if isinstance(enum_vals, list) and None in enum_vals:
        nullable = True
    return frozenset(names), nullable


def _covers(wide: frozenset[str], narrow: frozenset[str]) -> bool:
    """Does a value of any type in ``narrow`` fit in ``wide``? Empty means any type."""
    if not wide:
        return True
    if not narrow:
        return False
    return all(t in wide or (t == "integer" and "number" in wide) for t in narrow)


def _fmt_types(types: frozenset[str]) -> str:
    return "|".join(sorted(types)) if types else "any"


def _enum(s: Mapping[str, Any]) -> dict[str, Any] | None:
    if "const" in s:
        values = [s["const"]]
    elif isinstance(s.get("enum"), list):
        values = s["enum"]
    else:
        return None
    return {_canon(v): v for v in values if v is not None}


def _variant_key(ref: str | None, resolved: Any) -> str:
    if ref is not None:
        return "ref:" + ref.rsplit("/", 1)[-1]
    if isinstance(resolved, Mapping) and resolved.get("title"):
        return "title:" + str(resolved["title"])
    if isinstance(resolved, Mapping):
        return "type:" + _fmt_types(_types(resolved)[0])
    return "other"


def _part_key(ref: str | None, schema: Mapping[str, Any]) -> str:
    if ref is not None:
        return "ref:" + ref.rsplit("/", 1)[-1]
    if schema.get("title"):
        return "title:" + str(schema["title"])
    return "inline:" + _canon(schema)


def _fmt_bound(b: _Bound | None, sym: str) -> str:
    if b is None:
        return "none"
    return f"{sym if b.exclusive else sym + '='}{_fmt_num(b.value)}"


def _fmt_num(v: float | None) -> str:
    if v is None:
        return "none"
    return str(int(v)) if float(v).is_integer() else str(v)
