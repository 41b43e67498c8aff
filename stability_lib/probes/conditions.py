"""Dotted paths and conditions on received messages (issue 13, design section 3). Pure.

A path is ``a.b.0.c`` (a key, or an integer index into an array, negative from the end), ``.``
for the whole message, or a list of segments when a key itself holds a dot. ``*`` means "every
element" and is allowed only where ``allow_star`` says so (``check`` paths).

A condition is a plain value (equality with JSON types: ``1`` never equals ``"1"`` or ``True``)
or a mapping with exactly one operator. Arguments are rendered by the caller (placeholders);
this module only compares.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ABSENT",
    "OPERATORS",
    "BYTES_OPERATORS",
    "REGEX_INPUT_CAP",
    "Condition",
    "parse_path",
    "format_path",
    "lookup",
    "lookup_all",
    "json_equal",
    "parse_condition",
    "holds",
    "bytes_holds",
]

MAX_SEGMENTS = 32
MAX_PATH_CHARS = 200
# A regex is checked against at most this many characters: a longer string does not match.
REGEX_INPUT_CAP = 64 * 1024
OPERATORS = frozenset(
    {
        "equals",
        "one_of",
        "exists",
        "not_empty",
        "contains",
        "not_contains",
        "regex",
        "type",
        "gte",
        "lte",
        "count",
        "min_count",
        "max_count",
    }
)
BYTES_OPERATORS = frozenset({"size", "sha256", "equals_sent", "prefix_hex"})
_JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
# Nested quantifiers ("(a+)+", "(x*)*") backtrack exponentially on untrusted text: refused at load.
_NESTED_QUANTIFIER = re.compile(r"\([^()]*[+*][^()]*\)\s*[+*{]")


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


def parse_path(path: str | Sequence[str], *, allow_star: bool = False) -> tuple[str, ...]:
    """Split a dotted path into segments; ValueError with a one-line reason when malformed."""
    if isinstance(path, str):
        if path == ".":
            return ()
        if len(path) > MAX_PATH_CHARS:
            raise ValueError(f"path {path[:40]!r}... is longer than {MAX_PATH_CHARS} characters")
        segments = tuple(path.split("."))
        if any(s == "" for s in segments):
            raise ValueError(f"path {path!r} has an empty segment")
    else:
        segments = tuple(str(s) for s in path)
        if not segments or any(s == "" for s in segments):
            raise ValueError(f"path {list(path)!r} has an empty segment")
    if len(segments) > MAX_SEGMENTS:
        raise ValueError(f"path {format_path(segments)!r} has more than {MAX_SEGMENTS} segments")
    for segment in segments:
        if segment != segment.strip() or any(c.isspace() for c in segment):
            raise ValueError(f"path {format_path(segments)!r} has whitespace inside a segment")
        if segment == "*" and not allow_star:
            raise ValueError(f"path {format_path(segments)!r}: '*' is allowed only in check paths")
    return segments


def format_path(segments: Sequence[str]) -> str:
    return ".".join(segments) if segments else "."


def _step(current: Any, segment: str) -> Any:
    if isinstance(current, Mapping):
        return current.get(segment, ABSENT)
    if isinstance(current, list) and re.fullmatch(r"-?\d+", segment):
        index = int(segment)
        return current[index] if -len(current) <= index < len(current) else ABSENT
    return ABSENT


def lookup(message: Any, segments: Sequence[str]) -> Any:
    """The value at a path without ``*``, or ``ABSENT``."""
    current = message
    for segment in segments:
        current = _step(current, segment)
        if current is ABSENT:
            return ABSENT
    return current


def lookup_all(message: Any, segments: Sequence[str]) -> list[Any]:
    """Every value a path with ``*`` reaches (``ABSENT`` entries where a branch stops)."""
    values: list[Any] = [message]
    for segment in segments:
        nxt: list[Any] = []
        for current in values:
            if current is ABSENT:
                nxt.append(ABSENT)
            elif segment == "*":
                if isinstance(current, Mapping):
                    nxt.extend(current.values())
                elif isinstance(current, list):
                    nxt.extend(current)
                else:
                    nxt.append(ABSENT)
            else:
                nxt.append(_step(current, segment))
        values = nxt
    return values


def json_equal(a: Any, b: Any) -> bool:
    """Deep equality with JSON types: booleans are not numbers, numbers are not strings."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=False))
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class Condition:
    """One operator and its (unrendered) argument."""

    op: str
    arg: Any


def parse_condition(raw: Any) -> Condition:
    """A params condition as a ``Condition``; ValueError when it can never hold or is malformed."""
    if not isinstance(raw, Mapping):
        return Condition("equals", raw)
    if len(raw) != 1 or next(iter(raw)) not in OPERATORS:
        raise ValueError(
            f"a condition mapping needs exactly one operator of {sorted(OPERATORS)}, got {sorted(map(str, raw))}"
        )
    op, arg = next(iter(raw.items()))
    if op == "one_of" and (not isinstance(arg, list) or not arg):
        raise ValueError("one_of needs a non-empty list")
    if op in ("exists", "not_empty") and not isinstance(arg, bool):
        raise ValueError(f"{op} takes true or false")
    if op == "type" and arg not in _JSON_TYPES:
        raise ValueError(f"type must be one of {sorted(_JSON_TYPES)}")
    if op in ("gte", "lte") and (isinstance(arg, bool) or not isinstance(arg, (int, float))):
        raise ValueError(f"{op} takes a number")
    if op in ("count", "min_count", "max_count") and (isinstance(arg, bool) or not isinstance(arg, int) or arg < 0):
        raise ValueError(f"{op} takes a non-negative integer")
    if op == "regex":
        if not isinstance(arg, str):
            raise ValueError("regex takes a string")
        try:
            re.compile(arg)
        except re.error as exc:
            raise ValueError(f"regex {arg!r} does not compile: {exc}") from None
        if _NESTED_QUANTIFIER.search(arg):
            raise ValueError(f"regex {arg!r} has a nested quantifier (exponential on hostile input)")
    return Condition(op, arg)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def holds(cond: Condition, value: Any, arg: Any) -> bool:
    """Does ``value`` (``ABSENT`` when the path is missing) satisfy ``cond`` with rendered ``arg``?"""
    op = cond.op
    if op == "exists":
        return (value is not ABSENT) is arg
    if op == "not_contains":
        return value is ABSENT or not _contains(value, arg)
    if value is ABSENT:
        return op == "not_empty" and arg is False
    if op == "equals":
        return json_equal(value, arg)
    if op == "one_of":
        return any(json_equal(value, candidate) for candidate in arg)
    if op == "not_empty":
        empty = value is None or value == "" or (isinstance(value, (list, Mapping)) and not value)
        return empty is not arg
    if op == "contains":
        return _contains(value, arg)
    if op == "regex":
        return isinstance(value, str) and len(value) <= REGEX_INPUT_CAP and re.fullmatch(arg, value) is not None
    if op == "type":
        kind = _json_type(value)
        return kind == arg or (arg == "number" and kind == "integer")
    if op in ("gte", "lte"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return bool(value >= arg if op == "gte" else value <= arg)
    if op in ("count", "min_count", "max_count"):
        if not isinstance(value, (list, Mapping)):
            return False
        size = len(value)
        return bool(size == arg if op == "count" else (size >= arg if op == "min_count" else size <= arg))
    raise AssertionError(op)  # parse_condition admits no other operator


def _contains(value: Any, arg: Any) -> bool:
    if isinstance(value, str):
        return isinstance(arg, str) and arg in value
    if isinstance(value, list):
        return any(json_equal(item, arg) for item in value)
    return False


def bytes_holds(spec: Mapping[str, Any], data: bytes, sent: Mapping[str, bytes]) -> tuple[bool, str, str]:
    """Check a ``bytes:`` spec on a binary frame: (held, expected, got) for the first failing key."""
    for key, want in spec.items():
        if key == "size" and len(data) != want:
            return False, f"size {want}", f"size {len(data)}"
        if key == "sha256":
            got = hashlib.sha256(data).hexdigest()
            if got != str(want).lower():
                return False, f"sha256 {want}", f"sha256 {got}"
        if key == "equals_sent":
            blob = sent.get(str(want))
            if blob is None or blob != data:
                return False, f"the bytes sent as {want}", f"{len(data)} other bytes"
        if key == "prefix_hex" and not data.startswith(bytes.fromhex(str(want))):
            return False, f"prefix {want}", f"prefix {data[:8].hex()}"
    return True, "", ""
