"""Swagger 2.0 -> OpenAPI 3.0.3 (pure: dict in, dict out, no I/O).

Real services still serve Swagger 2.0; the breaking-change diff (``contract.openapi_diff``)
reads OpenAPI 3.x, so a 2.0 document is converted first and then diffed as usual.
No maintained Python library does this conversion (the reference converter,
swagger2openapi, is JavaScript; prance's ``convert`` posts the document to a web
service), so it is done here, following the mapping of the OpenAPI 3.0 spec's
"Migrating from 2.0" notes and swagger2openapi's choices where 2.0 is ambiguous:

* ``host``/``basePath``/``schemes`` -> ``servers``;
* ``in: body`` -> ``requestBody`` with one media type per ``consumes``
  (operation's, else the document's, else ``application/json``);
* ``in: formData`` -> one ``requestBody`` object schema (``multipart/form-data``
  when a parameter is a file or ``consumes`` says so, else
  ``application/x-www-form-urlencoded``), ``type: file`` -> string/binary;
* other parameters: ``type``/``format``/``items``/bounds -> ``schema``,
  ``collectionFormat`` -> ``style``/``explode``;
* response ``schema`` -> ``content`` per ``produces``; ``headers`` -> header objects;
* ``definitions``/``parameters``/``responses`` -> ``components`` (body parameters
  -> ``components/requestBodies``), with every ``$ref`` rewritten;
* ``securityDefinitions`` -> ``components/securitySchemes``;
* ``x-nullable`` -> ``nullable``, a string ``discriminator`` -> ``{propertyName}``;
* ``x-`` extensions are kept where they were.

The result never shares objects with the input (it is safe to mutate).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .openapi_diff import HTTP_METHODS, SpecError

__all__ = ["OPENAPI_VERSION", "CONVERTED_FROM", "is_swagger2", "convert_swagger2", "as_openapi3"]

OPENAPI_VERSION = "3.0.3"
CONVERTED_FROM = "x-stability-converted-from"  # set on a converted spec: a diff's locations are of its 3.0 form
# Deeper than this is a hostile or cyclic document (YAML aliases can make cycles), not an API.
MAX_DEPTH = 200

_DEFAULT_MEDIA = "application/json"
_FORM_URLENCODED = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"
# Keys of a 2.0 non-body parameter (or Items / Header object) that describe its value.
_SCHEMA_KEYS = (
    "type",
    "format",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "enum",
    "multipleOf",
)
# collectionFormat -> (style, explode) for query parameters; path/header only have "simple".
_QUERY_STYLES: dict[str, tuple[str, bool]] = {
    "csv": ("form", False),
    "ssv": ("spaceDelimited", False),
    "pipes": ("pipeDelimited", False),
    "multi": ("form", True),
}
_OAUTH2_FLOWS = {
    "implicit": "implicit",
    "password": "password",
    "application": "clientCredentials",
    "accessCode": "authorizationCode",
}
_REF_PREFIXES = (
    ("#/definitions/", "#/components/schemas/"),
    ("#/responses/", "#/components/responses/"),
)


def is_swagger2(spec: Any) -> bool:
    return isinstance(spec, Mapping) and str(spec.get("swagger", "")).startswith("2.")


def as_openapi3(spec: Any) -> Any:
    """The spec itself when it is not Swagger 2.0, else its OpenAPI 3.0.3 conversion.

    The one call a loader needs: ``spec = as_openapi3(spec)`` before ``diff_openapi``.
    """
    return convert_swagger2(spec) if is_swagger2(spec) else spec


def _extensions(node: Mapping[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in node.items() if isinstance(k, str) and k.startswith("x-")}


def _media_list(value: Any, fallback: list[str]) -> list[str]:
    if isinstance(value, list):
        media = [str(m) for m in value if isinstance(m, str) and m.strip()]
        if media:
            return list(dict.fromkeys(media))
    return fallback


class _Converter:
    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = spec
        self.consumes = _media_list(spec.get("consumes"), [_DEFAULT_MEDIA])
        self.produces = _media_list(spec.get("produces"), [_DEFAULT_MEDIA])
        raw_params = spec.get("parameters")
        self.global_params: Mapping[str, Any] = raw_params if isinstance(raw_params, Mapping) else {}

    # ---- refs and schemas
    def ref(self, ref: str) -> str:
        for old, new in _REF_PREFIXES:
            if ref.startswith(old):
                return new + ref[len(old) :]
        if ref.startswith("#/parameters/"):
            name = ref[len("#/parameters/") :]
            target = self.global_params.get(name)
            if isinstance(target, Mapping) and target.get("in") == "body":
                return "#/components/requestBodies/" + name
            return "#/components/parameters/" + name
        return ref  # external or already 3.x-shaped: leave it for the diff to report

    def schema(self, node: Any, depth: int = 0) -> Any:
        """A 2.0 Schema Object (or Items Object) as a 3.0 Schema Object."""
        if depth > MAX_DEPTH:
            raise SpecError(f"Swagger 2.0 schema nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, list):
            return [self.schema(v, depth + 1) for v in node]
        if not isinstance(node, Mapping):
            return copy.deepcopy(node)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out[key] = self.ref(value)
            elif key in ("properties", "patternProperties", "definitions") and isinstance(value, Mapping):
                out[key] = {k: self.schema(v, depth + 1) for k, v in value.items()}
            elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
                out[key] = self.schema(value, depth + 1)
            elif key == "discriminator" and isinstance(value, str):
                out[key] = {"propertyName": value}
            elif key == "x-nullable":
                if value is True:
                    out["nullable"] = True
                else:
                    out[key] = copy.deepcopy(value)
            elif key == "type" and value == "file":
                out["type"] = "string"
                out["format"] = "binary"
            elif key == "format" and node.get("type") == "file":
                continue
            elif key == "collectionFormat":
                continue  # only meaningful on parameters; see parameter()
            else:
                out[key] = copy.deepcopy(value)
        return out

    def value_schema(self, node: Mapping[str, Any]) -> dict[str, Any]:
        """The schema of a non-body parameter or a header (its value keys, items recursively)."""
        raw = {k: node[k] for k in _SCHEMA_KEYS if k in node}
        if isinstance(node.get("items"), Mapping):
            raw["items"] = node["items"]
        if node.get("x-nullable") is True:
            raw["x-nullable"] = True
        converted: dict[str, Any] = self.schema(raw)
        return converted

    # ---- parameters
    def resolve_param(self, raw: Any) -> tuple[Mapping[str, Any] | None, str | None]:
        """(the parameter it is, or its $ref in the document's parameters)."""
        if not isinstance(raw, Mapping):
            return None, None
        ref = raw.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/parameters/"):
            target = self.global_params.get(ref[len("#/parameters/") :])
            return (target if isinstance(target, Mapping) else None), ref
        return raw, ref if isinstance(ref, str) else None

    def parameter(self, p: Mapping[str, Any]) -> dict[str, Any]:
        """A query/path/header/cookie parameter as a 3.0 Parameter Object."""
        where = str(p.get("in", "query"))
        out: dict[str, Any] = {"name": p.get("name"), "in": where}
        for key in ("description", "required", "deprecated"):
            if key in p:
                out[key] = copy.deepcopy(p[key])
        if where == "path":
            out["required"] = True
        if where == "query" and "allowEmptyValue" in p:
            out["allowEmptyValue"] = p["allowEmptyValue"]
        out["schema"] = self.value_schema(p)
        fmt = p.get("collectionFormat")
        if p.get("type") == "array" and isinstance(fmt, str):
            if where == "query" and fmt in _QUERY_STYLES:
                out["style"], out["explode"] = _QUERY_STYLES[fmt]
            elif fmt == "csv" and where in ("path", "header"):
                out["style"], out["explode"] = "simple", False
            else:  # tsv, or a format 3.0 cannot say for this location
                out["x-collectionFormat"] = fmt
        if "x-example" in p and "example" not in out:
            out["example"] = copy.deepcopy(p["x-example"])
        out.update(_extensions(p))
        return out

    def body(self, p: Mapping[str, Any], consumes: list[str]) -> dict[str, Any]:
        schema = self.schema(p.get("schema", {}))
        out: dict[str, Any] = {"content": {m: {"schema": copy.deepcopy(schema)} for m in consumes}}
        if "description" in p:
            out["description"] = p["description"]
        if p.get("required") is True:
            out["required"] = True
        if p.get("name"):
            out["x-codegen-request-body-name"] = p["name"]
        out.update(_extensions(p))
        return out

    def form_body(self, params: list[Mapping[str, Any]], consumes: list[str]) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for p in params:
            name = str(p.get("name"))
            prop = self.value_schema(p)
            if "description" in p:
                prop["description"] = p["description"]
            properties[name] = prop
            if p.get("required") is True:
                required.append(name)
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        media = [m for m in consumes if m.split(";", 1)[0].strip().lower() in (_FORM_URLENCODED, _MULTIPART)]
        if not media:
            has_file = any(p.get("type") == "file" for p in params)
            media = [_MULTIPART if has_file else _FORM_URLENCODED]
        # An array field's collectionFormat becomes its encoding (style/explode) in the form.
        encoding: dict[str, Any] = {}
        for p in params:
            fmt = p.get("collectionFormat")
            if p.get("type") == "array" and isinstance(fmt, str) and fmt in _QUERY_STYLES:
                style, explode = _QUERY_STYLES[fmt]
                encoding[str(p.get("name"))] = {"style": style, "explode": explode}
        content: dict[str, Any] = {}
        for m in media:
            content[m] = {"schema": copy.deepcopy(schema)}
            if encoding:
                content[m]["encoding"] = copy.deepcopy(encoding)
        out: dict[str, Any] = {"content": content}
        if required:
            out["required"] = True
        return out

    # ---- responses
    def response(self, r: Any, produces: list[str]) -> Any:
        if not isinstance(r, Mapping):
            return copy.deepcopy(r)
        if isinstance(r.get("$ref"), str):
            return {"$ref": self.ref(r["$ref"])}
        out: dict[str, Any] = {"description": r.get("description", "")}
        declared = r.get("examples")
        examples: Mapping[str, Any] = declared if isinstance(declared, Mapping) else {}
        if "schema" in r:
            schema = self.schema(r["schema"])
            content: dict[str, Any] = {}
            for m in produces:
                entry: dict[str, Any] = {"schema": copy.deepcopy(schema)}
                if m in examples:
                    entry["example"] = copy.deepcopy(examples[m])
                content[m] = entry
            out["content"] = content
        headers = r.get("headers")
        if isinstance(headers, Mapping):
            out["headers"] = {str(name): self.header(h) for name, h in headers.items() if isinstance(h, Mapping)}
        out.update(_extensions(r))
        return out

    def header(self, h: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "description" in h:
            out["description"] = h["description"]
        out["schema"] = self.value_schema(h)
        out.update(_extensions(h))
        return out

    # ---- operations and paths
    def operation(self, op: Mapping[str, Any], path_params: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("tags", "summary", "description", "externalDocs", "operationId", "deprecated", "security"):
            if key in op:
                out[key] = copy.deepcopy(op[key])
        consumes = _media_list(op.get("consumes"), self.consumes)
        produces = _media_list(op.get("produces"), self.produces)

        # Path-level body/formData parameters apply to each operation; the operation's win.
        merged: dict[tuple[str, str], tuple[Mapping[str, Any], str | None]] = {}
        declared = op.get("parameters")
        op_params: list[Any] = declared if isinstance(declared, list) else []
        for raw in [*path_params, *op_params]:
            p, ref = self.resolve_param(raw)
            if p is None:
                if ref is not None:  # unresolvable: keep the ref so the diff reports it
                    merged[("?", ref)] = ({"$ref": ref}, ref)
                continue
            merged[(str(p.get("in")), str(p.get("name")))] = (p, ref)
        params: list[Any] = []
        form: list[Mapping[str, Any]] = []
        from_path = {id(self.resolve_param(raw)[0]) for raw in path_params}
        for (where, _), (p, ref) in merged.items():
            if where == "body":
                if ref is not None and ref.startswith("#/parameters/"):
                    out["requestBody"] = {"$ref": self.ref(ref)}
                else:
                    out["requestBody"] = self.body(p, consumes)
            elif where == "formData":
                form.append(p)
            elif id(p) in from_path and where != "?":
                continue  # stays on the path item
            elif ref is not None:
                params.append({"$ref": self.ref(ref)})
            else:
                params.append(self.parameter(p))
        if form:
            out["requestBody"] = self.form_body(form, consumes)
        if params:
            out["parameters"] = params
        responses = op.get("responses")
        if isinstance(responses, Mapping):
            out["responses"] = {
                str(k): self.response(v, produces) for k, v in responses.items() if not str(k).startswith("x-")
            }
            out["responses"].update(_extensions(responses))
        else:
            out["responses"] = {}
        out.update(_extensions(op))
        return out

    def path_item(self, item: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if isinstance(item.get("$ref"), str):
            out["$ref"] = item["$ref"]
        declared = item.get("parameters")
        path_params: list[Any] = declared if isinstance(declared, list) else []
        kept: list[Any] = []
        for raw in path_params:
            p, ref = self.resolve_param(raw)
            if p is not None and p.get("in") in ("body", "formData"):
                continue  # moved into each operation
            if ref is not None:
                kept.append({"$ref": self.ref(ref)})
            elif p is not None:
                kept.append(self.parameter(p))
        if kept:
            out["parameters"] = kept
        for method in HTTP_METHODS:
            op = item.get(method)
            if isinstance(op, Mapping):
                out[method] = self.operation(op, path_params)
        out.update(_extensions(item))
        return out

    # ---- document
    def servers(self) -> list[dict[str, Any]]:
        host = self.spec.get("host")
        base = str(self.spec.get("basePath") or "")
        if base and not base.startswith("/"):
            base = "/" + base
        if isinstance(host, str) and host:
            schemes = _media_list(self.spec.get("schemes"), ["https"])
            return [{"url": f"{scheme}://{host}{base}"} for scheme in schemes]
        if base and base != "/":
            return [{"url": base}]
        return []

    def security_scheme(self, s: Any) -> Any:
        if not isinstance(s, Mapping):
            return copy.deepcopy(s)
        kind = s.get("type")
        out: dict[str, Any]
        if kind == "basic":
            out = {"type": "http", "scheme": "basic"}
        elif kind == "apiKey":
            out = {"type": "apiKey", "name": s.get("name"), "in": s.get("in")}
        elif kind == "oauth2":
            flow_name = _OAUTH2_FLOWS.get(str(s.get("flow")), str(s.get("flow")))
            flow: dict[str, Any] = {}
            if flow_name in ("implicit", "authorizationCode") and "authorizationUrl" in s:
                flow["authorizationUrl"] = s["authorizationUrl"]
            if flow_name in ("password", "clientCredentials", "authorizationCode") and "tokenUrl" in s:
                flow["tokenUrl"] = s["tokenUrl"]
            flow["scopes"] = copy.deepcopy(s.get("scopes") or {})
            out = {"type": "oauth2", "flows": {flow_name: flow}}
        else:
            out = {k: copy.deepcopy(v) for k, v in s.items() if not str(k).startswith("x-")}
        if "description" in s:
            out["description"] = s["description"]
        out.update(_extensions(s))
        return out

    def run(self) -> dict[str, Any]:
        spec = self.spec
        out: dict[str, Any] = {"openapi": OPENAPI_VERSION, "info": copy.deepcopy(spec.get("info") or {})}
        out[CONVERTED_FROM] = f"Swagger {spec.get('swagger')}"  # the report says its locations are of this form
        servers = self.servers()
        if servers:
            out["servers"] = servers
        for key in ("tags", "externalDocs", "security"):
            if key in spec:
                out[key] = copy.deepcopy(spec[key])
        paths: dict[str, Any] = {}
        raw_paths = spec.get("paths") or {}
        if not isinstance(raw_paths, Mapping):
            raise SpecError("Swagger 2.0 spec: 'paths' is not a mapping")
        for path, item in raw_paths.items():
            if isinstance(item, Mapping) and not str(path).startswith("x-"):
                paths[str(path)] = self.path_item(item)
        paths.update(_extensions(raw_paths))
        out["paths"] = paths

        components: dict[str, Any] = {}
        definitions = spec.get("definitions")
        if isinstance(definitions, Mapping):
            components["schemas"] = {str(k): self.schema(v) for k, v in definitions.items()}
        parameters: dict[str, Any] = {}
        bodies: dict[str, Any] = {}
        for name, p in self.global_params.items():
            if not isinstance(p, Mapping):
                continue
            if p.get("in") == "body":
                bodies[str(name)] = self.body(p, self.consumes)
            elif p.get("in") != "formData":  # inlined into each operation's form body
                parameters[str(name)] = self.parameter(p)
        if parameters:
            components["parameters"] = parameters
        if bodies:
            components["requestBodies"] = bodies
        responses = spec.get("responses")
        if isinstance(responses, Mapping):
            components["responses"] = {str(k): self.response(v, self.produces) for k, v in responses.items()}
        security = spec.get("securityDefinitions")
        if isinstance(security, Mapping):
            components["securitySchemes"] = {str(k): self.security_scheme(v) for k, v in security.items()}
        if components:
            out["components"] = components
        out.update(_extensions(spec))
        return out


def convert_swagger2(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAPI 3.0.3 equivalent of a Swagger 2.0 document.

    Raises SpecError when ``spec`` is not Swagger 2.0 or is malformed beyond conversion.
    """
    if not isinstance(spec, Mapping):
        raise SpecError(f"spec is not a mapping (got {type(spec).__name__})")
    if not is_swagger2(spec):
        raise SpecError(f"not a Swagger 2.0 document (swagger: {spec.get('swagger')!r})")
    try:
        return _Converter(spec).run()
    except RecursionError as exc:  # a cyclic document through copy.deepcopy
        raise SpecError(f"Swagger 2.0 spec is nested too deeply or cyclic: {exc}") from None
