"""Schema comparison for the OpenAPI diff (pure): the walk of two schemas in the direction data flows.

``_SchemaDiff`` is a mixin of ``contract.openapi_diff._Differ``: it compares each pair of (old, new)
schemas once, as a node of a graph whose edges are the refs it contains, and expands the
graph into ``Change``s per operation when the run ends (see ``contract.openapi_diff``'s docstring).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .openapi_rules_table import RULES_BY_ID, Change
from .openapi_schema_views import (
    _covers,
    _enum,
    _esc,
    _fmt_bound,
    _fmt_num,
    _fmt_types,
    _is_null_schema,
    _lower_bound,
    _lower_tighter,
    _num,
    _part_key,
    _Resolver,
    _types,
    _upper_bound,
    _upper_tighter,
    _variant_key,
)

# A schema nested deeper than this is not compared further (WARN schema-depth-limit).
MAX_SCHEMA_DEPTH = 64


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


class _SchemaDiff:
    """The schema half of ``_Differ``: it owns the resolvers, the node graph and the pending items."""

    old_r: _Resolver
    new_r: _Resolver
    items: list[Change | _Deferred]
    nodes: dict[tuple[str, str, str], _Node]
    queue: list[tuple[str, str, str]]
    path: str
    method: str

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

    def _flatten(
        self, side: str, node: Mapping[str, Any], sink: _Sink, seen: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
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
                sink.add(
                    "request-all-of-added",
                    "/allOf",
                    f": allOf subschema {np_[k]} was added; requests must satisfy it too",
                )

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
            self._walk(
                od[ko], nd[kn], sink.child(f"/oneOf/{_esc(ko)}", sink.field), direction, depth + 1, ignore_null=True
            )

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
            sink.add(
                rule if tightened else "request-constraint-relaxed",
                f"/{key}",
                f": {key} {_fmt_num(ov)} -> {_fmt_num(nv)}",
            )

    def _properties(self, o: Mapping[str, Any], n: Mapping[str, Any], sink: _Sink, direction: str, depth: int) -> None:
        req = direction == "request"
        skip_flag = "readOnly" if req else "writeOnly"  # not part of this direction's payload

        def props(s: Mapping[str, Any], side: str) -> tuple[dict[str, Any], set[str], dict[str, Mapping[str, Any]]]:
            declared = s.get("properties")
            raw: Mapping[str, Any] = declared if isinstance(declared, Mapping) else {}
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
                    child.add(
                        "request-readonly-pattern-changed",
                        "",
                        f" (readOnly): pattern {osch.get('pattern')!r} -> {nsch.get('pattern')!r}",
                    )
                else:
                    child.add(
                        "request-readonly-pattern-added", "", f" (readOnly): must now match {nsch.get('pattern')!r}"
                    )
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
