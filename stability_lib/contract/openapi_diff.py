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

The rule table lives in ``contract.openapi_rules_table`` and the schema walk in ``contract.openapi_rules_schemas``;
this module compares what surrounds the schemas: paths, operations, security,
parameters, request bodies, responses and their headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from typing import Any

from .openapi_rules_schemas import MAX_SCHEMA_DEPTH, _Deferred, _Node, _SchemaDiff
from .openapi_rules_table import RULES, RULES_BY_ID, Change, Level, Rule, SpecError, count_levels
from .openapi_schema_views import _esc, _Resolver

__all__ = [
    "Level",
    "Rule",
    "RULES",
    "RULES_BY_ID",
    "Change",
    "SpecError",
    "HTTP_METHODS",
    "MAX_SCHEMA_DEPTH",
    "check_spec",
    "count_operations",
    "diff_openapi",
    "count_levels",
]

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


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


class _Differ(_SchemaDiff):
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
        self.items.append(Change(RULES_BY_ID[rule].level, rule, self.path, self.method.upper(), location, message))

    def _deref(self, side: str, node: Any, location: str) -> tuple[Any, str | None]:
        resolver = self.old_r if side == "old" else self.new_r
        resolved, ref, bad = resolver.deref(node)
        if bad is not None:
            self.emit("unresolved-ref", location, f"{side} spec: $ref {bad!r} could not be resolved; not compared")
        return resolved, ref

    # ---- top level
    def run(self) -> list[Change]:
        self._security_schemes()
        self._servers()
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
        for key, (raw_path, _op) in new_ops.items():
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
                "deprecated-operation-removed-without-sunset",
                "",
                f"{what} was deprecated and is now removed, with no sunset date",
            )
        elif path_gone:
            self.emit("path-removed", "", f"{what} was removed (the whole path is gone)")
        else:
            self.emit("operation-removed", "", f"{what} was removed")

    def _servers(self) -> None:
        """The base paths clients put before every operation's path (hosts differ between environments)."""
        old, new = _base_paths(self.old), _base_paths(self.new)
        gone = sorted(old - new)
        if not gone:
            return
        was, now = ", ".join(repr(b or "/") for b in gone), ", ".join(repr(b or "/") for b in sorted(new))
        if not old & new:
            self.emit("server-base-path-changed", "#/servers", f"base path {was} is now {now}")
        else:
            self.emit("server-base-path-removed", "#/servers", f"base path {was} was removed")

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
                "request-parameter-removed-before-sunset",
                loc,
                f"{label} was removed before its announced sunset {sunset.isoformat()}",
            )
        elif state == "after-sunset" and sunset is not None:
            self.emit(
                "deprecated-request-parameter-removed",
                loc,
                f"{label} was removed after its sunset {sunset.isoformat()}",
            )
        elif state == "deprecated":
            self.emit(
                "request-parameter-removed", loc, f"{label} was deprecated and is now removed, with no sunset date"
            )
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
            for name, h in raw.items() if isinstance(raw, Mapping) else ():
                if str(name).lower() == "content-type":
                    continue  # OpenAPI: a response header named Content-Type SHALL be ignored
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
                self.emit(
                    "response-header-became-optional",
                    hloc + "/required",
                    f"{hlabel} is no longer required (may be absent)",
                )
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
                self.emit(
                    f"{direction}-media-type-added", f"{loc}/{_esc(media)}", f"{label}: media type {media} was added"
                )


def _base_paths(spec: Mapping[str, Any]) -> set[str]:
    """The path part of each server URL, without a trailing slash ('' is the root); the root with none."""
    servers = spec.get("servers")
    paths = set()
    for server in servers if isinstance(servers, list) else []:
        url = server.get("url") if isinstance(server, Mapping) else None
        if isinstance(url, str):
            rest = url.split("://", 1)[1] if "://" in url else url
            path = rest[rest.find("/") :] if "://" in url and "/" in rest else ("" if "://" in url else rest)
            paths.add(path.rstrip("/"))
    return paths or {""}


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
        inner = " + ".join(f"{k}[{','.join(sorted(v))}]" if v else k for k, v in sorted(alt, key=lambda kv: kv[0]))
        parts.append(inner or "anonymous")
    return " or ".join(parts) or "none"


def diff_openapi(old: Mapping[str, Any], new: Mapping[str, Any], *, today: date | None = None) -> list[Change]:
    """Every difference between two OpenAPI 3.x documents that a client could notice.

    ``today`` decides whether an announced ``x-sunset`` has passed (default: the
    local date). Raises SpecError when either document is not OpenAPI 3.x.
    """
    check_spec(old, what="baseline spec")
    check_spec(new, what="candidate spec")
    return _Differ(old, new, today or date.today()).run()
