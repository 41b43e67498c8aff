"""Breaking-change diff of two OpenAPI 3.0 / 3.1 documents (pure: no I/O).

``diff_openapi(old, new)`` walks every operation of ``old`` and compares it with
the same operation of ``new`` (paths are matched with parameter names erased,
so ``/u/{id}`` and ``/u/{user_id}`` are the same path). Schemas are compared in
the direction data flows:

* request (client -> server): the candidate must accept everything the
  baseline accepted, so a *narrowing* is breaking;
* response (server -> client): the candidate must not return anything the
  baseline's clients could not read, so a *widening* is breaking.

Local ``$ref``s (``#/...``) are resolved. Each pair of (old, new) schemas is
compared once for the whole diff, as a node of a graph whose edges are the refs
it contains; a recursive schema is a cycle in that graph, so it does not hang,
and a schema shared by many paths costs once, not once per path. Each
operation's report then walks the graph, and a change is listed once per
operation (at the first location that reaches it). Refs that cannot be resolved
are reported as WARN ``unresolved-ref``: the diff could not see inside them, so
silence there would not be evidence.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from ._errors import StabilityError

__all__ = [
    "Level",
    "Rule",
    "RULES",
    "RULES_BY_ID",
    "Change",
    "SpecError",
    "HTTP_METHODS",
    "check_spec",
    "count_operations",
    "diff_openapi",
    "count_levels",
]

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# A schema nested deeper than this is not compared further (WARN schema-depth-limit).
MAX_SCHEMA_DEPTH = 64


class SpecError(StabilityError):
    """A document is not an OpenAPI 3.x spec we can compare."""


class Level(str, enum.Enum):
    """How much a change can break a client."""

    ERR = "ERR"  # breaking
    WARN = "WARN"  # possibly breaking
    INFO = "INFO"  # compatible, listed for the record

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Rule:
    id: str
    level: Level
    description: str


_E, _W, _I = Level.ERR, Level.WARN, Level.INFO

RULES: tuple[Rule, ...] = (
    # Paths and operations
    Rule("path-removed", _E, "A path and all its operations were removed."),
    Rule("operation-removed", _E, "An operation (method on a path) was removed."),
    Rule(
        "operation-removed-before-sunset",
        _E,
        "An operation was removed before the x-sunset date the baseline announced.",
    ),
    Rule(
        "deprecated-operation-removed-without-sunset",
        _W,
        "A deprecated operation was removed, but no x-sunset date had been announced.",
    ),
    Rule("deprecated-operation-removed", _I, "A deprecated operation was removed after its x-sunset date."),
    Rule("operation-added", _I, "A new operation was added."),
    Rule("operation-deprecated", _I, "An operation was marked deprecated (still present)."),
    # Responses
    Rule("response-success-status-removed", _E, "A 2xx/3xx response status (or default) is no longer documented."),
    Rule("response-status-removed", _W, "A 4xx/5xx response status is no longer documented."),
    Rule("response-status-added", _I, "A new response status is documented."),
    Rule("response-media-type-removed", _E, "A response media type was removed."),
    Rule("response-media-type-added", _I, "A response media type was added."),
    Rule("response-property-removed", _E, "A response property was removed."),
    Rule("response-property-added", _I, "A response property was added."),
    Rule("response-type-changed", _E, "A response value may now have a type clients did not expect."),
    Rule("response-type-narrowed", _I, "A response value's type was narrowed (compatible)."),
    Rule("response-format-changed", _E, "A response value's format changed."),
    Rule("response-format-removed", _W, "A response value no longer declares its format."),
    Rule("response-property-became-optional", _E, "A response property is no longer required (may be absent)."),
    Rule("response-property-became-required", _I, "A response property became required."),
    Rule("response-property-became-nullable", _E, "A response value may now be null."),
    Rule("response-enum-value-added", _W, "A response enum gained a value (or lost its enum) clients may not handle."),
    Rule("response-enum-value-removed", _I, "A response enum lost a value."),
    Rule("response-variant-added", _W, "A response anyOf/oneOf gained a variant: more shapes can be returned."),
    Rule("response-variant-removed", _I, "A response anyOf/oneOf lost a variant."),
    # Response headers (names compared case-insensitively; a header's schema is compared as a response value)
    Rule("response-required-header-removed", _E, "A response header documented as required was removed."),
    Rule(
        "response-optional-header-removed",
        _W,
        "An optional response header was removed. oasdiff >= 1.30 lists this at INFO; kept at WARN on purpose: "
        "clients do read documented optional headers (rate limits, pagination links), and they lose them.",
    ),
    Rule("response-header-became-optional", _E, "A response header is no longer required (may be absent)."),
    Rule("response-header-added", _I, "A response header was added."),
    Rule("response-header-became-required", _I, "A response header became required."),
    # Request: parameters
    Rule("request-parameter-added-required", _E, "A new required parameter was added."),
    Rule("request-parameter-became-required", _E, "An optional parameter became required."),
    Rule("request-parameter-added", _I, "A new optional parameter was added."),
    Rule("request-parameter-became-optional", _I, "A required parameter became optional."),
    Rule("request-parameter-removed", _W, "A parameter was removed: clients that send it may be rejected."),
    Rule(
        "request-parameter-removed-before-sunset",
        _E,
        "A parameter was removed before the x-sunset date the baseline announced for it (as for operations).",
    ),
    Rule("deprecated-request-parameter-removed", _I, "A deprecated parameter was removed after its x-sunset date."),
    # Request: body
    Rule("request-body-removed", _E, "The request body was removed: clients that send one may be rejected (oasdiff: ERR)."),
    Rule("request-body-became-required", _E, "The request body became required (or a required one was added)."),
    Rule("request-body-added", _I, "An optional request body was added."),
    Rule("request-body-became-optional", _I, "The request body became optional."),
    Rule("request-media-type-removed", _E, "A request media type is no longer accepted."),
    Rule("request-media-type-added", _I, "A request media type is now accepted."),
    # Request: schema
    Rule("request-property-added-required", _E, "A new required request property was added."),
    Rule("request-property-became-required", _E, "An optional request property became required."),
    Rule("request-property-added", _I, "A new optional request property was added."),
    Rule("request-property-became-optional", _I, "A required request property became optional."),
    Rule("request-property-removed", _W, "A request property was removed: clients that send it may be rejected."),
    Rule("request-type-changed", _E, "A request value no longer accepts a type it accepted."),
    Rule("request-type-widened", _I, "A request value accepts more types (compatible)."),
    Rule("request-format-changed", _E, "A request value's format changed."),
    Rule("request-format-added", _W, "A request value now declares a format (may reject values accepted before)."),
    Rule("request-property-became-not-nullable", _E, "A request value no longer accepts null."),
    Rule("request-enum-value-removed", _E, "A request enum lost a value clients may send."),
    Rule("request-enum-added", _E, "A request value (body property or parameter) is now restricted to an enum (oasdiff: ERR)."),
    Rule("request-enum-value-added", _I, "A request enum gained a value."),
    Rule("request-pattern-added", _E, "A request string now has to match a pattern."),
    Rule("request-pattern-changed", _W, "A request string's pattern changed (may reject values accepted before)."),
    Rule("request-minimum-raised", _E, "A request number's minimum (or exclusiveMinimum) was raised or added."),
    Rule("request-maximum-lowered", _E, "A request number's maximum (or exclusiveMaximum) was lowered or added."),
    Rule("request-min-length-raised", _E, "A request string's minLength was raised."),
    Rule("request-max-length-lowered", _E, "A request string's maxLength was lowered or added."),
    Rule("request-min-items-raised", _E, "A request array's minItems was raised."),
    Rule("request-max-items-lowered", _E, "A request array's maxItems was lowered or added."),
    Rule("request-constraint-relaxed", _I, "A request constraint was relaxed (compatible)."),
    Rule("request-variant-removed", _E, "A request anyOf/oneOf lost a variant: fewer shapes are accepted."),
    Rule("request-variant-added", _I, "A request anyOf/oneOf gained a variant."),
    Rule(
        "request-all-of-added",
        _E,
        "A request schema gained an allOf subschema: a request must satisfy it too, even when the merged "
        "properties look the same (oasdiff: request-body-all-of-added / request-property-all-of-added, ERR).",
    ),
    Rule(
        "request-all-of-removed",
        _W,
        "A request schema lost an allOf subschema: the composition changed (oasdiff: request-body-all-of-removed / "
        "request-property-all-of-removed, WARN).",
    ),
    Rule(
        "request-readonly-pattern-added",
        _W,
        "A readOnly request property now has to match a pattern. Clients may still send it (echoing a resource "
        "back), so it is reported. WARN on purpose, not ERR as for other properties: servers should ignore "
        "readOnly input (oasdiff >= 1.31 lists it at INFO, earlier versions at ERR).",
    ),
    Rule(
        "request-readonly-pattern-changed",
        _W,
        "A readOnly request property's pattern changed. Reported for the same reason as "
        "request-readonly-pattern-added, at the same level as request-pattern-changed.",
    ),
    # Security
    Rule("security-added", _E, "An operation that needed no authentication now requires it."),
    Rule("security-changed", _E, "A security requirement clients satisfied is no longer accepted (scheme or scopes)."),
    Rule("security-relaxed", _I, "Security requirements were relaxed (alternative added or removed)."),
    Rule("security-scheme-changed", _E, "A security scheme's type, location or name changed."),
    # The diff itself
    Rule("unresolved-ref", _W, "A $ref could not be resolved: that part of the spec was not compared."),
    Rule("schema-depth-limit", _W, "A schema is nested too deeply: it was compared only down to the limit."),
)
RULES_BY_ID: dict[str, Rule] = {r.id: r for r in RULES}


@dataclass(frozen=True)
class Change:
    """One difference between baseline and candidate, with the rule that judged it.

    ``path``/``method`` name the operation ("" when the change is not about one);
    ``location`` is a JSON-pointer-like location inside the operation.
    """

    level: Level
    rule: str
    path: str
    method: str
    location: str
    message: str

    def serialize(self) -> dict[str, str]:
        return {
            "level": self.level.value,
            "rule": self.rule,
            "path": self.path,
            "method": self.method,
            "location": self.location,
            "message": self.message,
        }


def count_levels(changes: Iterable[Change]) -> dict[str, int]:
    counts = {lvl.value: 0 for lvl in Level}
    for c in changes:
        counts[c.level.value] += 1
    return counts


# --------------------------------------------------------------------------- helpers


def check_spec(spec: Any, *, what: str = "spec") -> None:
    """Raise SpecError unless ``spec`` looks like an OpenAPI 3.x document."""
    if not isinstance(spec, Mapping):
        raise SpecError(f"{what} is not a mapping (got {type(spec).__name__})")
    version = str(spec.get("openapi", ""))
    if not version.startswith("3."):
        if "swagger" in spec:
            raise SpecError(f"{what} is Swagger {spec.get('swagger')}; only OpenAPI 3.0/3.1 are supported")
        raise SpecError(f"{what} has no 'openapi: 3.x' field")
    paths = spec.get("paths", {})
    if paths is not None and not isinstance(paths, Mapping):
        raise SpecError(f"{what}: 'paths' is not a mapping")


def _operations(spec: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    paths = spec.get("paths") or {}
    for raw_path, item in paths.items():
        if not isinstance(item, Mapping):
            continue
        for method in HTTP_METHODS:
            op = item.get(method)
            if isinstance(op, Mapping):
                yield str(raw_path), method, op


def count_operations(spec: Mapping[str, Any]) -> int:
    return sum(1 for _ in _operations(spec))


_PATH_PARAM = re.compile(r"\{[^}/]*\}")


def _path_key(path: str) -> str:
    # /users/{id} and /users/{user_id} are the same endpoint to a client.
    return _PATH_PARAM.sub("{}", path)


def _esc(token: str) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _media_key(media: str) -> str:
    return str(media).split(";", 1)[0].strip().lower()


def _parse_day(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
        except ValueError:
            try:
                return date.fromisoformat(text[:10])
            except ValueError:
                return None
    return None


def _sunset_state(obj: Mapping[str, Any], today: date) -> tuple[str, date | None]:
    """How the removal of a deprecatable object (operation, parameter) is judged.

    "before-sunset": an announced x-sunset is still ahead; "after-sunset": deprecated and
    its sunset has passed; "deprecated": deprecated with no sunset date; "": neither.
    """
    sunset = _parse_day(obj.get("x-sunset"))
    deprecated = obj.get("deprecated") is True
    if sunset is not None and sunset > today:
        return "before-sunset", sunset
    if deprecated and sunset is not None:
        return "after-sunset", sunset
    if deprecated:
        return "deprecated", None
    return "", None


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


# --------------------------------------------------------------------------- schema views


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


# --------------------------------------------------------------------------- the diff


@dataclass(frozen=True)
class _Label:
    """Where a schema sits, for messages: "response 200 (application/json): property 'user.id'"."""

    context: str
    field: str = ""

    def __str__(self) -> str:
        return f"{self.context}: property '{self.field}'" if self.field else self.context


@dataclass(frozen=True)
class _Finding:
    """A change inside a schema pair, relative to where the pair is used."""

    rule: str
    loc: str
    field: str
    text: str


class _Node:
    """One compared pair of schemas: its own findings, and the pairs it references."""

    __slots__ = ("old", "new", "direction", "ignore_null", "findings", "edges")

    def __init__(self, old: Mapping[str, Any], new: Mapping[str, Any], direction: str, ignore_null: bool) -> None:
        self.old = old
        self.new = new
        self.direction = direction
        self.ignore_null = ignore_null
        self.findings: list[_Finding] = []
        self.edges: list[tuple[tuple[str, str, str], str, str]] = []  # (child key, loc, field)


@dataclass(frozen=True)
class _Sink:
    """Where findings of a schema walk go: a node, at a location and field inside it."""

    node: _Node
    loc: str
    field: str

    def add(self, rule: str, loc: str, text: str) -> None:
        self.node.findings.append(_Finding(rule, self.loc + loc, self.field, text))

    def child(self, loc: str, field: str) -> _Sink:
        return _Sink(self.node, self.loc + loc, field)


@dataclass(frozen=True)
class _Deferred:
    """A schema comparison of one operation, expanded into changes when the run ends."""

    path: str
    method: str
    loc: str
    context: str
    key: tuple[str, str, str]


def _is_boundary(s: Mapping[str, Any]) -> bool:
    # A $ref (or an allOf over refs) may be shared or recursive: compare it as its own node.
    if isinstance(s.get("$ref"), str):
        return True
    parts = s.get("allOf")
    return isinstance(parts, list) and any(isinstance(p, Mapping) and "$ref" in p for p in parts)


def _join_field(prefix: str, field: str) -> str:
    if not prefix:
        return field
    if not field:
        return prefix
    if field.startswith(("[]", "{}")):
        return prefix + field
    return f"{prefix}.{field}"


class _Differ:
    def __init__(self, old: Mapping[str, Any], new: Mapping[str, Any], today: date) -> None:
        self.old = old
        self.new = new
        self.old_r = _Resolver(old)
        self.new_r = _Resolver(new)
        self.today = today
        # Changes in order, with schema comparisons to expand when the run ends.
        self.items: list[Change | _Deferred] = []
        self.nodes: dict[tuple[str, str, str], _Node] = {}
        self.queue: list[tuple[str, str, str]] = []
        # (path, method) of the operation being compared, and which way data flows.
        self.path = ""
        self.method = ""

    # ---- output
    def emit(self, rule: str, location: str, message: str) -> None:
        self.items.append(
            Change(RULES_BY_ID[rule].level, rule, self.path, self.method.upper(), location, message)
        )

    def _deref(self, side: str, node: Any, location: str) -> tuple[Any, str | None]:
        resolver = self.old_r if side == "old" else self.new_r
        resolved, ref, bad = resolver.deref(node)
        if bad is not None:
            self.emit("unresolved-ref", location, f"{side} spec: $ref {bad!r} could not be resolved; not compared")
        return resolved, ref

    # ---- top level
    def run(self) -> list[Change]:
        self._security_schemes()
        old_ops: dict[tuple[str, str], tuple[str, Mapping[str, Any]]] = {}
        for p, m, op in _operations(self.old):
            old_ops[(_path_key(p), m)] = (p, op)
        new_ops: dict[tuple[str, str], tuple[str, Mapping[str, Any]]] = {}
        for p, m, op in _operations(self.new):
            new_ops[(_path_key(p), m)] = (p, op)
        new_paths = {k[0] for k in new_ops}
        old_items = {_path_key(str(p)): item for p, item in (self.old.get("paths") or {}).items()}
        new_items = {_path_key(str(p)): item for p, item in (self.new.get("paths") or {}).items()}

        for key, (raw_path, op) in old_ops.items():
            self.path, self.method = raw_path, key[1]
            if key not in new_ops:
                self._removed(op, path_gone=key[0] not in new_paths)
                continue
            new_raw, new_op = new_ops[key]
            self._operation(op, new_op, old_items.get(key[0]) or {}, new_items.get(key[0]) or {}, new_raw)
        for key, (raw_path, op) in new_ops.items():
            if key not in old_ops:
                self.path, self.method = raw_path, key[1]
                self.emit("operation-added", "", f"{key[1].upper()} {raw_path} was added")
        self.path = self.method = ""
        # The same change reached through a shared schema twice is one change.
        return list(dict.fromkeys(self._report()))

    def _removed(self, op: Mapping[str, Any], *, path_gone: bool) -> None:
        what = f"{self.method.upper()} {self.path}"
        state, sunset = _sunset_state(op, self.today)
        if state == "before-sunset" and sunset is not None:
            self.emit(
                "operation-removed-before-sunset",
                "",
                f"{what} was removed before its announced sunset {sunset.isoformat()}",
            )
        elif state == "after-sunset" and sunset is not None:
            self.emit("deprecated-operation-removed", "", f"{what} was removed after its sunset {sunset.isoformat()}")
        elif state == "deprecated":
            self.emit(
                "deprecated-operation-removed-without-sunset", "", f"{what} was deprecated and is now removed, with no sunset date"
            )
        elif path_gone:
            self.emit("path-removed", "", f"{what} was removed (the whole path is gone)")
        else:
            self.emit("operation-removed", "", f"{what} was removed")

    def _security_schemes(self) -> None:
        old = ((self.old.get("components") or {}).get("securitySchemes")) or {}
        new = ((self.new.get("components") or {}).get("securitySchemes")) or {}
        if not isinstance(old, Mapping) or not isinstance(new, Mapping):
            return
        for name, o in old.items():
            n = new.get(name)
            if not isinstance(o, Mapping) or not isinstance(n, Mapping):
                continue
            o, _ = self._deref("old", o, f"#/components/securitySchemes/{_esc(name)}")
            n, _ = self._deref("new", n, f"#/components/securitySchemes/{_esc(name)}")
            for key in ("type", "scheme", "in", "name"):
                if o.get(key) != n.get(key):
                    self.emit(
                        "security-scheme-changed",
                        f"#/components/securitySchemes/{_esc(name)}/{key}",
                        f"security scheme {name!r}: {key} changed from {o.get(key)!r} to {n.get(key)!r}",
                    )

    # ---- operation
    def _operation(
        self,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        old_item: Mapping[str, Any],
        new_item: Mapping[str, Any],
        new_path: str,
    ) -> None:
        if new.get("deprecated") is True and old.get("deprecated") is not True:
            self.emit("operation-deprecated", "deprecated", f"{self.method.upper()} {self.path} is now deprecated")
        self._security(old, new)
        self._parameters(old, new, old_item, new_item, new_path)
        self._request_body(old, new)
        self._responses(old, new)

    def _security(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        def effective(spec: Mapping[str, Any], op: Mapping[str, Any]) -> tuple[set[frozenset[Any]], str]:
            raw, where = (op["security"], "security") if "security" in op else (spec.get("security"), "#/security")
            alts: set[frozenset[Any]] = set()
            for req in raw or []:
                if isinstance(req, Mapping):
                    alts.add(frozenset((str(k), frozenset(map(str, v or []))) for k, v in req.items()))
            return alts, where

        o, _ = effective(self.old, old)
        n, where = effective(self.new, new)
        old_anon = not o or frozenset() in o
        new_anon = not n or frozenset() in n
        if old_anon:
            if not new_anon:
                self.emit("security-added", where, f"authentication is now required: {_fmt_security(n)}")
            return
        if new_anon:
            self.emit("security-relaxed", where, "authentication is no longer required")
            return
        lost = o - n
        if lost:
            self.emit(
                "security-changed",
                where,
                f"security requirement(s) {_fmt_security(lost)} no longer accepted; now {_fmt_security(n)}",
            )
        elif n - o:
            self.emit("security-relaxed", where, f"security alternative(s) added: {_fmt_security(n - o)}")

    def _param_map(
        self, side: str, op: Mapping[str, Any], item: Mapping[str, Any], raw_path: str
    ) -> dict[tuple[str, str], Mapping[str, Any]]:
        names = [m.group(0)[1:-1] for m in _PATH_PARAM.finditer(raw_path)]
        out: dict[tuple[str, str], Mapping[str, Any]] = {}
        for source in (item.get("parameters") or [], op.get("parameters") or []):  # op overrides path
            for raw in source:
                p, _ = self._deref(side, raw, "parameters")
                if not isinstance(p, Mapping) or "name" not in p:
                    continue
                where, name = str(p.get("in", "query")), str(p["name"])
                if where == "header":
                    name = name.lower()  # HTTP header names are case-insensitive
                elif where == "path" and name in names:
                    # Paths are matched with parameter names erased: match path parameters by position.
                    name = f"#{names.index(name)}"
                out[(where, name)] = p
        return out

    def _parameters(
        self,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        old_item: Mapping[str, Any],
        new_item: Mapping[str, Any],
        new_path: str,
    ) -> None:
        o = self._param_map("old", old, old_item, self.path)
        n = self._param_map("new", new, new_item, new_path)
        for key, op in o.items():
            where = key[0]
            loc = f"parameters/{_esc(where)}/{_esc(str(op.get('name')))}"
            label = f"{where} parameter {op.get('name')!r}"
            np_ = n.get(key)
            if np_ is None:
                if where != "path":
                    self._parameter_removed(op, loc, label)
                continue
            o_req = op.get("required") is True or where == "path"
            n_req = np_.get("required") is True or where == "path"
            if n_req and not o_req:
                self.emit("request-parameter-became-required", loc + "/required", f"{label} became required")
            elif o_req and not n_req:
                self.emit("request-parameter-became-optional", loc + "/required", f"{label} became optional")
            os_, ns_ = _param_schema(op), _param_schema(np_)
            if os_ is not None and ns_ is not None:
                self._schema_root(os_, ns_, loc + "/schema", label, "request")
        for key, np_ in n.items():
            if key in o:
                continue
            where = key[0]
            loc = f"parameters/{_esc(where)}/{_esc(str(np_.get('name')))}"
            label = f"{where} parameter {np_.get('name')!r}"
            if np_.get("required") is True or where == "path":
                self.emit("request-parameter-added-required", loc, f"required {label} was added")
            else:
                self.emit("request-parameter-added", loc, f"optional {label} was added")

    def _parameter_removed(self, param: Mapping[str, Any], loc: str, label: str) -> None:
        state, sunset = _sunset_state(param, self.today)
        if state == "before-sunset" and sunset is not None:
            self.emit(
                "request-parameter-removed-before-sunset", loc, f"{label} was removed before its announced sunset {sunset.isoformat()}"
            )
        elif state == "after-sunset" and sunset is not None:
            self.emit("deprecated-request-parameter-removed", loc, f"{label} was removed after its sunset {sunset.isoformat()}")
        elif state == "deprecated":
            self.emit("request-parameter-removed", loc, f"{label} was deprecated and is now removed, with no sunset date")
        else:
            self.emit("request-parameter-removed", loc, f"{label} was removed")

    def _request_body(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        ob, _ = self._deref("old", old.get("requestBody"), "requestBody") if "requestBody" in old else (None, None)
        nb, _ = self._deref("new", new.get("requestBody"), "requestBody") if "requestBody" in new else (None, None)
        if not isinstance(ob, Mapping):
            ob = None
        if not isinstance(nb, Mapping):
            nb = None
        if ob is None and nb is None:
            return
        if nb is None:
            self.emit("request-body-removed", "requestBody", "the request body was removed")
            return
        if ob is None:
            if nb.get("required") is True:
                self.emit("request-body-became-required", "requestBody", "a required request body was added")
            else:
                self.emit("request-body-added", "requestBody", "an optional request body was added")
            return
        if nb.get("required") is True and ob.get("required") is not True:
            self.emit("request-body-became-required", "requestBody/required", "the request body became required")
        elif ob.get("required") is True and nb.get("required") is not True:
            self.emit("request-body-became-optional", "requestBody/required", "the request body became optional")
        self._content(ob.get("content"), nb.get("content"), "requestBody/content", "request body", "request")

    def _responses(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        o = {str(k).upper(): v for k, v in (old.get("responses") or {}).items()}
        n = {str(k).upper(): v for k, v in (new.get("responses") or {}).items()}
        for status, oresp in o.items():
            loc = f"responses/{_esc(status.lower() if status == 'DEFAULT' else status)}"
            label = f"response {status.lower() if status == 'DEFAULT' else status}"
            if status not in n:
                if status == "DEFAULT" or status[:1] in ("1", "2", "3"):
                    self.emit("response-success-status-removed", loc, f"{label} was removed")
                else:
                    self.emit("response-status-removed", loc, f"{label} was removed")
                continue
            ro, _ = self._deref("old", oresp, loc)
            rn, _ = self._deref("new", n[status], loc)
            if isinstance(ro, Mapping) and isinstance(rn, Mapping):
                self._headers(ro.get("headers"), rn.get("headers"), loc + "/headers", label)
                self._content(ro.get("content"), rn.get("content"), loc + "/content", label, "response")
        for status in n:
            if status not in o:
                label = status.lower() if status == "DEFAULT" else status
                self.emit("response-status-added", f"responses/{_esc(label)}", f"response {label} was added")

    def _headers(self, old: Any, new: Any, loc: str, label: str) -> None:
        """Response headers: names case-insensitive, schemas compared as response values."""

        def by_name(side: str, raw: Any) -> dict[str, tuple[str, Mapping[str, Any]]]:
            out: dict[str, tuple[str, Mapping[str, Any]]] = {}
            for name, h in (raw.items() if isinstance(raw, Mapping) else ()):
                resolved, _ = self._deref(side, h, f"{loc}/{_esc(str(name))}")
                if isinstance(resolved, Mapping):
                    out[str(name).lower()] = (str(name), resolved)
            return out

        o, n = by_name("old", old), by_name("new", new)
        for key, (name, oh) in o.items():
            hloc = f"{loc}/{_esc(name)}"
            hlabel = f"{label}: header {name!r}"
            if key not in n:
                if oh.get("required") is True:
                    self.emit("response-required-header-removed", hloc, f"{hlabel} (required) was removed")
                else:
                    self.emit("response-optional-header-removed", hloc, f"{hlabel} was removed")
                continue
            nh = n[key][1]
            if oh.get("required") is True and nh.get("required") is not True:
                self.emit("response-header-became-optional", hloc + "/required", f"{hlabel} is no longer required (may be absent)")
            elif nh.get("required") is True and oh.get("required") is not True:
                self.emit("response-header-became-required", hloc + "/required", f"{hlabel} became required")
            os_, ns_ = _param_schema(oh), _param_schema(nh)
            if os_ is not None and ns_ is not None:
                self._schema_root(os_, ns_, hloc + "/schema", hlabel, "response")
        for key, (name, _) in n.items():
            if key not in o:
                self.emit("response-header-added", f"{loc}/{_esc(name)}", f"{label}: header {name!r} was added")

    def _content(self, old: Any, new: Any, loc: str, label: str, direction: str) -> None:
        o = {_media_key(k): v for k, v in (old or {}).items()} if isinstance(old, Mapping) else {}
        n = {_media_key(k): v for k, v in (new or {}).items()} if isinstance(new, Mapping) else {}
        for media, omt in o.items():
            mloc = f"{loc}/{_esc(media)}"
            if media not in n:
                self.emit(f"{direction}-media-type-removed", mloc, f"{label}: media type {media} was removed")
                continue
            nmt = n[media]
            if isinstance(omt, Mapping) and isinstance(nmt, Mapping) and "schema" in omt and "schema" in nmt:
                self._schema_root(omt["schema"], nmt["schema"], mloc + "/schema", f"{label} ({media})", direction)
        for media in n:
            if media not in o:
                self.emit(f"{direction}-media-type-added", f"{loc}/{_esc(media)}", f"{label}: media type {media} was added")

    # ---- schemas
    #
    # Schemas are compared once per pair of refs for the whole diff, not once per
    # place they are used: a spec whose schemas reference each other as a DAG
    # would otherwise cost time exponential in its depth. Each pair is a node of a
    # graph (its own findings, plus edges to the pairs it references); each
    # operation's report walks that graph once, skipping nodes with nothing below.

    def _deref_in(self, side: str, node: Any, sink: _Sink | None, loc: str = "") -> tuple[Any, str | None]:
        resolver = self.old_r if side == "old" else self.new_r
        resolved, ref, bad = resolver.deref(node)
        if bad is not None and sink is not None:
            sink.add("unresolved-ref", loc, f": {side} spec $ref {bad!r} could not be resolved; not compared")
        return resolved, ref

    def _schema_root(self, old: Any, new: Any, loc: str, context: str, direction: str) -> None:
        """Compare two schemas of the current operation (reported when the run ends)."""
        if not isinstance(old, Mapping) or not isinstance(new, Mapping):
            return
        key = self._node_key(old, new, direction)
        self._drain()
        self.items.append(_Deferred(self.path, self.method.upper(), loc, context, key))

    def _node_key(
        self, old: Mapping[str, Any], new: Mapping[str, Any], direction: str, ignore_null: bool = False
    ) -> tuple[str, str, str]:
        o_ref = old.get("$ref") if isinstance(old.get("$ref"), str) else None
        n_ref = new.get("$ref") if isinstance(new.get("$ref"), str) else None
        # Inline schemas are keyed by identity: only objects of the specs get here, and the
        # node keeps them alive, so an id is never reused. The set of keys is therefore
        # finite, which is what makes recursive schemas terminate.
        key = (o_ref or f"@{id(old)}", n_ref or f"@{id(new)}", direction + ("/no-null" if ignore_null else ""))
        if key not in self.nodes:
            self.nodes[key] = _Node(old, new, direction, ignore_null)
            self.queue.append(key)
        return key

    def _drain(self) -> None:
        while self.queue:
            node = self.nodes[self.queue.pop()]
            self._walk_body(node.old, node.new, _Sink(node, "", ""), node.direction, 0, node.ignore_null)

    def _walk(self, old: Any, new: Any, sink: _Sink, direction: str, depth: int, ignore_null: bool = False) -> None:
        if not isinstance(old, Mapping) or not isinstance(new, Mapping):
            return
        if _is_boundary(old) or _is_boundary(new):
            key = self._node_key(old, new, direction, ignore_null)
            sink.node.edges.append((key, sink.loc, sink.field))
            return
        self._walk_body(old, new, sink, direction, depth, ignore_null)

    def _flatten(self, side: str, node: Mapping[str, Any], sink: _Sink, seen: frozenset[str] = frozenset()) -> dict[str, Any]:
        """Merge allOf parts into one schema, so properties from any part are compared."""
        if "allOf" not in node or not isinstance(node.get("allOf"), list):
            return dict(node)
        merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
        props: dict[str, Any] = dict(merged.get("properties") or {})
        required: list[Any] = list(merged.get("required") or [])
        for part in node["allOf"]:
            ref = part.get("$ref") if isinstance(part, Mapping) else None
            if ref in seen:
                continue
            resolved, _ = self._deref_in(side, part, sink, "/allOf")
            if not isinstance(resolved, Mapping):
                continue
            sub = self._flatten(side, resolved, sink, seen | ({ref} if ref else set()))
            for k, v in (sub.get("properties") or {}).items():
                props.setdefault(k, v)
            required.extend(sub.get("required") or [])
            for k, v in sub.items():
                if k not in ("properties", "required"):
                    merged.setdefault(k, v)
        if props:
            merged["properties"] = props
        if required:
            merged["required"] = list(dict.fromkeys(required))
        return merged

    def _all_of_parts(
        self, o: Mapping[str, Any], n: Mapping[str, Any], o_ref: str | None, n_ref: str | None, sink: _Sink
    ) -> None:
        """allOf subschemas added or removed: a composition change, whatever the merged properties say.

        A side without allOf is one part (itself), so ``$ref X`` -> ``allOf: [$ref X]`` is no change.
        When both sides are allOf, one unmatched part on each side is the same part edited in place:
        its content is compared after merging, not reported as a removal plus an addition.
        """

        def parts(s: Mapping[str, Any], ref: str | None) -> dict[str, str]:
            raw = s.get("allOf")
            if not isinstance(raw, list):
                return {_part_key(ref, s): ""}  # the schema itself: never reported
            out: dict[str, str] = {}
            for i, part in enumerate(raw):
                if isinstance(part, Mapping):
                    part_ref = part.get("$ref") if isinstance(part.get("$ref"), str) else None
                    key = _part_key(part_ref, part)
                    out[key] = part_ref.rsplit("/", 1)[-1] if part_ref else str(part.get("title") or f"inline #{i}")
            return out

        op_, np_ = parts(o, o_ref), parts(n, n_ref)
        gone = [k for k in op_ if k not in np_]
        added = [k for k in np_ if k not in op_]
        both_composed = isinstance(o.get("allOf"), list) and isinstance(n.get("allOf"), list)
        if both_composed and len(gone) == 1 and len(added) == 1:
            return
        for k in gone:
            if op_[k]:
                sink.add("request-all-of-removed", "/allOf", f": allOf subschema {op_[k]} was removed")
        for k in added:
            if np_[k]:
                sink.add("request-all-of-added", "/allOf", f": allOf subschema {np_[k]} was added; requests must satisfy it too")

    def _variants(self, side: str, s: Mapping[str, Any]) -> tuple[list[tuple[str, Any]], bool]:
        """(variants keyed for matching, has a null variant) of an anyOf/oneOf; ([], False) if none."""
        raw = s.get("oneOf") if isinstance(s.get("oneOf"), list) else s.get("anyOf")
        if not isinstance(raw, list):
            return [], False
        out: list[tuple[str, Any]] = []
        has_null = False
        seen_keys: dict[str, int] = {}
        for v in raw:
            resolved, ref = self._deref_in(side, v, None) if isinstance(v, Mapping) else (v, None)
            if ref is None and _is_null_schema(resolved):
                has_null = True  # 3.1 style nullable: anyOf [X, {type: null}]
                continue
            key = _variant_key(ref, resolved)
            n = seen_keys.get(key, 0)
            seen_keys[key] = n + 1
            out.append((f"{key}#{n}" if n else key, v))
        return out, has_null

    def _walk_body(
        self,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        sink: _Sink,
        direction: str,
        depth: int,
        ignore_null: bool = False,
    ) -> None:
        if depth > MAX_SCHEMA_DEPTH:
            sink.add("schema-depth-limit", "", f": schema nested deeper than {MAX_SCHEMA_DEPTH}; not compared further")
            return
        o_ref = old.get("$ref") if isinstance(old.get("$ref"), str) else None
        n_ref = new.get("$ref") if isinstance(new.get("$ref"), str) else None
        o, _ = self._deref_in("old", old, sink)
        n, _ = self._deref_in("new", new, sink)
        if not isinstance(o, Mapping) or not isinstance(n, Mapping):
            return
        if direction == "request" and ("allOf" in o or "allOf" in n):
            self._all_of_parts(o, n, o_ref, n_ref, sink)
        o = self._flatten("old", o, sink)
        n = self._flatten("new", n, sink)
        req = direction == "request"
        prefix = "request" if req else "response"

        o_vars, o_null_var = self._variants("old", o)
        n_vars, n_null_var = self._variants("new", n)
        o_types, o_null = _types(o)
        n_types, n_null = _types(n)
        o_null = o_null or o_null_var
        n_null = n_null or n_null_var

        if ignore_null:  # already compared one level up, around the variants
            pass
        elif not req and n_null and not o_null:
            sink.add("response-property-became-nullable", "", " may now be null")
        elif req and o_null and not n_null:
            sink.add("request-property-became-not-nullable", "", " no longer accepts null")

        if o_vars or n_vars:
            self._compare_variants(old, new, o, n, o_vars, n_vars, o_ref, n_ref, sink, direction, depth)
            return

        if o_types != n_types:
            text = f": type {_fmt_types(o_types)} -> {_fmt_types(n_types)}"
            if req:
                rule = "request-type-changed" if not _covers(n_types, o_types) else "request-type-widened"
            else:
                rule = "response-type-changed" if not _covers(o_types, n_types) else "response-type-narrowed"
            sink.add(rule, "/type", text)

        of, nf = o.get("format"), n.get("format")
        if of != nf:
            if of and nf:
                sink.add(f"{prefix}-format-changed", "/format", f": format {of} -> {nf}")
            elif nf and req:
                sink.add("request-format-added", "/format", f": format {nf} is now required")
            elif of and not req:
                sink.add("response-format-removed", "/format", f": format {of} is no longer declared")
            elif of and req:
                sink.add("request-constraint-relaxed", "/format", f": format {of} dropped")

        self._enums(o, n, sink, req)
        if req:
            self._request_constraints(o, n, sink)
        if "properties" in o or "properties" in n or "required" in o or "required" in n:
            self._properties(o, n, sink, direction, depth)
        if isinstance(o.get("items"), Mapping) and isinstance(n.get("items"), Mapping):
            self._walk(o["items"], n["items"], sink.child("/items", sink.field + "[]"), direction, depth + 1)
        if isinstance(o.get("additionalProperties"), Mapping) and isinstance(n.get("additionalProperties"), Mapping):
            self._walk(
                o["additionalProperties"],
                n["additionalProperties"],
                sink.child("/additionalProperties", sink.field + "{}"),
                direction,
                depth + 1,
            )

    def _compare_variants(
        self,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        o: Mapping[str, Any],
        n: Mapping[str, Any],
        o_vars: list[tuple[str, Any]],
        n_vars: list[tuple[str, Any]],
        o_ref: str | None,
        n_ref: str | None,
        sink: _Sink,
        direction: str,
        depth: int,
    ) -> None:
        # A plain schema on one side is a single variant, so string -> oneOf[string, integer] matches.
        # The plain side goes in as the spec's own object (not a copy), so it can key a node.
        if not o_vars:
            o_vars = [(_variant_key(o_ref, o), old)]
        if not n_vars:
            n_vars = [(_variant_key(n_ref, n), new)]
        od, nd = dict(o_vars), dict(n_vars)
        unmatched_o = [k for k in od if k not in nd]
        unmatched_n = [k for k in nd if k not in od]
        pairs = [(k, k) for k in od if k in nd]
        if len(unmatched_o) == 1 and len(unmatched_n) == 1:  # one variant edited in place
            pairs.append((unmatched_o[0], unmatched_n[0]))
            unmatched_o, unmatched_n = [], []
        req = direction == "request"
        for k in unmatched_o:
            name = k.split(":", 1)[-1]
            if req:
                sink.add("request-variant-removed", "/oneOf", f": variant {name} is no longer accepted")
            else:
                sink.add("response-variant-removed", "/oneOf", f": variant {name} is no longer returned")
        for k in unmatched_n:
            name = k.split(":", 1)[-1]
            if req:
                sink.add("request-variant-added", "/oneOf", f": variant {name} is now accepted")
            else:
                sink.add("response-variant-added", "/oneOf", f": variant {name} may now be returned")
        for ko, kn in pairs:
            self._walk(od[ko], nd[kn], sink.child(f"/oneOf/{_esc(ko)}", sink.field), direction, depth + 1, ignore_null=True)

    def _enums(self, o: Mapping[str, Any], n: Mapping[str, Any], sink: _Sink, req: bool) -> None:
        oe, ne = _enum(o), _enum(n)
        if oe is None and ne is None:
            return
        if req:
            if oe is None and ne is not None:
                sink.add("request-enum-added", "/enum", f": now restricted to {sorted(ne)}")
            elif oe is not None and ne is not None:
                gone = [oe[k] for k in oe if k not in ne]
                added = [ne[k] for k in ne if k not in oe]
                if gone:
                    sink.add("request-enum-value-removed", "/enum", f": value(s) {gone} no longer accepted")
                if added:
                    sink.add("request-enum-value-added", "/enum", f": value(s) {added} now accepted")
            else:
                sink.add("request-constraint-relaxed", "/enum", ": no longer restricted to an enum")
        else:
            if oe is not None and ne is None:
                sink.add("response-enum-value-added", "/enum", f": no longer restricted to {sorted(oe)}")
            elif oe is not None and ne is not None:
                added = [ne[k] for k in ne if k not in oe]
                gone = [oe[k] for k in oe if k not in ne]
                if added:
                    sink.add("response-enum-value-added", "/enum", f": value(s) {added} may now be returned")
                if gone:
                    sink.add("response-enum-value-removed", "/enum", f": value(s) {gone} no longer returned")

    def _request_constraints(self, o: Mapping[str, Any], n: Mapping[str, Any], sink: _Sink) -> None:
        op, np_ = o.get("pattern"), n.get("pattern")
        if op != np_:
            if np_ and not op:
                sink.add("request-pattern-added", "/pattern", f": must now match {np_!r}")
            elif np_ and op:
                sink.add("request-pattern-changed", "/pattern", f": pattern {op!r} -> {np_!r}")
            else:
                sink.add("request-constraint-relaxed", "/pattern", f": pattern {op!r} dropped")
        ol, nl = _lower_bound(o), _lower_bound(n)
        text = f": minimum {_fmt_bound(ol, '>')} -> {_fmt_bound(nl, '>')}"
        if _lower_tighter(ol, nl):
            sink.add("request-minimum-raised", "/minimum", text)
        elif ol != nl and _lower_tighter(nl, ol):
            sink.add("request-constraint-relaxed", "/minimum", text)
        ou, nu = _upper_bound(o), _upper_bound(n)
        text = f": maximum {_fmt_bound(ou, '<')} -> {_fmt_bound(nu, '<')}"
        if _upper_tighter(ou, nu):
            sink.add("request-maximum-lowered", "/maximum", text)
        elif ou != nu and _upper_tighter(nu, ou):
            sink.add("request-constraint-relaxed", "/maximum", text)
        for key, rule, raised_is_tighter in (
            ("minLength", "request-min-length-raised", True),
            ("maxLength", "request-max-length-lowered", False),
            ("minItems", "request-min-items-raised", True),
            ("maxItems", "request-max-items-lowered", False),
        ):
            ov, nv = _num(o.get(key)), _num(n.get(key))
            if ov == nv:
                continue
            if raised_is_tighter:
                tightened = (nv or 0) > (ov or 0)
            else:
                tightened = nv is not None and (ov is None or nv < ov)
            sink.add(rule if tightened else "request-constraint-relaxed", f"/{key}", f": {key} {_fmt_num(ov)} -> {_fmt_num(nv)}")

    def _properties(self, o: Mapping[str, Any], n: Mapping[str, Any], sink: _Sink, direction: str, depth: int) -> None:
        req = direction == "request"
        skip_flag = "readOnly" if req else "writeOnly"  # not part of this direction's payload

        def props(s: Mapping[str, Any], side: str) -> tuple[dict[str, Any], set[str], dict[str, Mapping[str, Any]]]:
            raw = s.get("properties") if isinstance(s.get("properties"), Mapping) else {}
            required = {str(r) for r in (s.get("required") or []) if isinstance(r, str)}
            out: dict[str, Any] = {}
            skipped: dict[str, Mapping[str, Any]] = {}
            for name, sch in raw.items():
                resolved, _ = self._deref_in(side, sch, None) if isinstance(sch, Mapping) else ({}, None)
                if isinstance(resolved, Mapping) and resolved.get(skip_flag) is True:
                    required.discard(str(name))
                    skipped[str(name)] = resolved
                    continue
                out[str(name)] = sch
            for name in required:
                out.setdefault(name, {})
            return out, required, skipped

        op, oreq, o_skipped = props(o, "old")
        np_, nreq, n_skipped = props(n, "new")
        if req:
            # A readOnly property is not part of the request, but clients may still send it (a
            # resource echoed back): a pattern that now rejects its values is reported.
            for name, osch in o_skipped.items():
                nsch = n_skipped.get(name)
                if nsch is None or osch.get("pattern") == nsch.get("pattern") or not nsch.get("pattern"):
                    continue
                child = sink.child(f"/properties/{_esc(name)}/pattern", _join_field(sink.field, name))
                if osch.get("pattern"):
                    child.add("request-readonly-pattern-changed", "", f" (readOnly): pattern {osch.get('pattern')!r} -> {nsch.get('pattern')!r}")
                else:
                    child.add("request-readonly-pattern-added", "", f" (readOnly): must now match {nsch.get('pattern')!r}")
        for name, osch in op.items():
            child = sink.child(f"/properties/{_esc(name)}", _join_field(sink.field, name))
            if name not in np_:
                child.add("request-property-removed" if req else "response-property-removed", "", " was removed")
                continue
            if req:
                if name in nreq and name not in oreq:
                    child.add("request-property-became-required", "", " became required")
                elif name in oreq and name not in nreq:
                    child.add("request-property-became-optional", "", " became optional")
            else:
                if name in oreq and name not in nreq:
                    child.add("response-property-became-optional", "", " is no longer required (may be absent)")
                elif name in nreq and name not in oreq:
                    child.add("response-property-became-required", "", " became required")
            self._walk(osch, np_[name], child, direction, depth + 1)
        for name in np_:
            if name in op:
                continue
            child = sink.child(f"/properties/{_esc(name)}", _join_field(sink.field, name))
            if not req:
                child.add("response-property-added", "", " was added")
            elif name in nreq:
                child.add("request-property-added-required", "", " was added as required")
            else:
                child.add("request-property-added", "", " was added (optional)")

    # ---- reporting
    def _report(self) -> list[Change]:
        dirty = self._dirty_nodes()
        out: list[Change] = []
        for item in self.items:
            if isinstance(item, Change):
                out.append(item)
                continue
            if item.key not in dirty:
                continue
            visited: set[tuple[str, str, str]] = set()
            stack: list[tuple[tuple[str, str, str], str, str]] = [(item.key, item.loc, "")]
            while stack:
                key, loc, field = stack.pop()
                if key in visited or key not in dirty:
                    continue  # a node reached twice in one schema is reported once
                visited.add(key)
                node = self.nodes[key]
                for f in node.findings:
                    out.append(
                        Change(
                            RULES_BY_ID[f.rule].level,
                            f.rule,
                            item.path,
                            item.method,
                            loc + f.loc,
                            f"{_Label(item.context, _join_field(field, f.field))}{f.text}",
                        )
                    )
                for child_key, child_loc, child_field in reversed(node.edges):
                    stack.append((child_key, loc + child_loc, _join_field(field, child_field)))
        return out

    def _dirty_nodes(self) -> set[tuple[str, str, str]]:
        """Nodes with a finding in themselves or anywhere below them."""
        parents: dict[tuple[str, str, str], list[tuple[str, str, str]]] = {}
        for key, node in self.nodes.items():
            for child_key, _, _ in node.edges:
                parents.setdefault(child_key, []).append(key)
        dirty = {key for key, node in self.nodes.items() if node.findings}
        todo = list(dirty)
        while todo:
            for parent in parents.get(todo.pop(), ()):
                if parent not in dirty:
                    dirty.add(parent)
                    todo.append(parent)
        return dirty


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


def _param_schema(p: Mapping[str, Any]) -> Any:
    if isinstance(p.get("schema"), Mapping):
        return p["schema"]
    content = p.get("content")
    if isinstance(content, Mapping):
        for mt in content.values():
            if isinstance(mt, Mapping) and isinstance(mt.get("schema"), Mapping):
                return mt["schema"]
    return None


def _fmt_security(alts: Iterable[frozenset[Any]]) -> str:
    parts = []
    for alt in sorted(alts, key=lambda a: sorted((k, sorted(v)) for k, v in a)):
        inner = " + ".join(
            f"{k}[{','.join(sorted(v))}]" if v else k for k, v in sorted(alt, key=lambda kv: kv[0])
        )
        parts.append(inner or "anonymous")
    return " or ".join(parts) or "none"


def _fmt_bound(b: _Bound | None, sym: str) -> str:
    if b is None:
        return "none"
    return f"{sym if b.exclusive else sym + '='}{_fmt_num(b.value)}"


def _fmt_num(v: float | None) -> str:
    if v is None:
        return "none"
    return str(int(v)) if float(v).is_integer() else str(v)


def diff_openapi(old: Mapping[str, Any], new: Mapping[str, Any], *, today: date | None = None) -> list[Change]:
    """Every difference between two OpenAPI 3.x documents that a client could notice.

    ``today`` decides whether an announced ``x-sunset`` has passed (default: the
    local date). Raises SpecError when either document is not OpenAPI 3.x.
    """
    check_spec(old, what="baseline spec")
    check_spec(new, what="candidate spec")
    return _Differ(old, new, today or date.today()).run()
