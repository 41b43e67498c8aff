"""The OpenAPI diff finds each breaking change it claims to find, and stays quiet on harmless edits."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from stability_lib.contract.openapi_diff import (
    RULES,
    RULES_BY_ID,
    Change,
    Level,
    SpecError,
    count_operations,
    diff_openapi,
)

TODAY = date(2025, 6, 1)
JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


def base_spec(version: str = "3.0.3") -> dict[str, Any]:
    """A small but realistic API: list/create/get/delete items, plus deprecated endpoints."""
    return {
        "openapi": version,
        "info": {"title": "Items", "version": "1.0.0", "description": "Sample API"},
        "paths": {
            "/items": {
                "get": {
                    "operationId": "listItems",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                        }
                    ],
                    "responses": {
                        "200": {"description": "ok", "content": _json({"type": "array", "items": _ref("Item")})},
                        "400": {"description": "bad request"},
                    },
                },
                "post": {
                    "operationId": "createItem",
                    "requestBody": {"required": False, "content": _json(_ref("NewItem"))},
                    "responses": {"201": {"description": "created", "content": _json(_ref("Item"))}},
                },
            },
            "/items/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "get": {
                    "operationId": "getItem",
                    "responses": {
                        "200": {"description": "ok", "content": _json(_ref("Item"))},
                        "404": {"description": "not found"},
                    },
                },
                "delete": {"operationId": "deleteItem", "responses": {"204": {"description": "gone"}}},
            },
            "/legacy": {
                "get": {
                    "operationId": "legacy",
                    "deprecated": True,
                    "x-sunset": "2099-01-01",
                    "responses": {"200": {"description": "ok"}},
                }
            },
            "/old": {
                "get": {
                    "operationId": "old",
                    "deprecated": True,
                    "x-sunset": "2020-01-01",
                    "responses": {"200": {"description": "ok"}},
                }
            },
            "/older": {
                "get": {"operationId": "older", "deprecated": True, "responses": {"200": {"description": "ok"}}}
            },
        },
        "components": {
            "schemas": {
                "Item": {
                    "type": "object",
                    "required": ["id", "name", "status"],
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "name": {"type": "string", "description": "Display name"},
                        "status": {"type": "string", "enum": ["new", "done"]},
                        "count": {"type": "integer"},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "shape": {"oneOf": [_ref("Circle"), _ref("Square")]},
                    },
                },
                "NewItem": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 100},
                        "kind": {"type": "string", "enum": ["a", "b"]},
                        "count": {"type": "integer", "minimum": 0, "maximum": 10},
                        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
                        "code": {"type": "string", "pattern": "^[A-Z]+$"},
                        "note": {"type": "string", "nullable": True},
                        "when": {"type": "string", "format": "date-time"},
                        "free": {"type": "string"},
                        "shape": {"oneOf": [_ref("Circle"), _ref("Square")]},
                    },
                },
                "Circle": {"type": "object", "properties": {"r": {"type": "number"}}},
                "Square": {"type": "object", "properties": {"side": {"type": "number"}}},
                "Triangle": {"type": "object", "properties": {"base": {"type": "number"}}},
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            },
        },
    }


def _schemas(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["components"]["schemas"]


def _item(spec: dict[str, Any]) -> dict[str, Any]:
    return _schemas(spec)["Item"]


def _new_item(spec: dict[str, Any]) -> dict[str, Any]:
    return _schemas(spec)["NewItem"]


def _op(spec: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    return spec["paths"][path][method]


Mutation = Callable[[dict[str, Any]], None]


def _set(getter: Callable[[dict[str, Any]], dict[str, Any]], **values: Any) -> Mutation:
    def mutate(spec: dict[str, Any]) -> None:
        getter(spec).update(values)

    return mutate


def _pop(getter: Callable[[dict[str, Any]], dict[str, Any]], key: str) -> Mutation:
    def mutate(spec: dict[str, Any]) -> None:
        del getter(spec)[key]

    return mutate


def _do(fn: Callable[[dict[str, Any]], Any]) -> Mutation:
    def mutate(spec: dict[str, Any]) -> None:
        fn(spec)

    return mutate


def _prop(getter: Callable[[dict[str, Any]], dict[str, Any]], name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda spec: getter(spec)["properties"][name]


def _items_200(spec: dict[str, Any]) -> dict[str, Any]:
    return _op(spec, "/items", "get")["responses"]["200"]


def _with_headers(spec: dict[str, Any]) -> None:
    """Baseline /items GET 200 with one optional and one required response header."""
    _items_200(spec)["headers"] = {
        "X-RateLimit-Limit": {"schema": {"type": "integer"}},
        "X-Request-Id": {"required": True, "schema": {"type": "string"}},
    }


def _headers(spec: dict[str, Any]) -> dict[str, Any]:
    return _items_200(spec)["headers"]


def _with_param(**fields: Any) -> Mutation:
    """Baseline /items GET with an extra query parameter 'page' carrying ``fields``."""
    return _do(
        lambda s: _op(s, "/items", "get")["parameters"].append(
            {"name": "page", "in": "query", "schema": {"type": "integer"}, **fields}
        )
    )


def _drop_page(spec: dict[str, Any]) -> None:
    params = _op(spec, "/items", "get")["parameters"]
    params[:] = [p for p in params if p["name"] != "page"]


def _with_readonly(**fields: Any) -> Mutation:
    """Baseline NewItem (a request body) with a readOnly property 'rid'."""
    return _do(lambda s: _new_item(s)["properties"].__setitem__("rid", {"type": "string", "readOnly": True, **fields}))


def _with_all_of(*parts: str) -> Mutation:
    """Baseline POST /items body: Req = allOf of the named schemas (Named has 'name'; Marker adds no property)."""

    def mutate(spec: dict[str, Any]) -> None:
        _schemas(spec)["Named"] = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
        _schemas(spec)["Marker"] = {"type": "object", "description": "tags a request as versioned"}
        _schemas(spec)["Req"] = {"allOf": [_ref(p) for p in parts]}
        _op(spec, "/items", "post")["requestBody"]["content"] = _json(_ref("Req"))

    return mutate


# (case id, mutation of the candidate, old-side mutation or None, expected rule)
# The expected level is the one RULES declares; the test checks it too.
CASES: list[tuple[str, Mutation, Mutation | None, str]] = [
    # ---- paths and operations
    ("path removed", _do(lambda s: s["paths"].pop("/items/{id}")), None, "path-removed"),
    ("operation removed", _do(lambda s: s["paths"]["/items"].pop("post")), None, "operation-removed"),
    ("removed before sunset", _do(lambda s: s["paths"].pop("/legacy")), None, "operation-removed-before-sunset"),
    ("removed after sunset", _do(lambda s: s["paths"].pop("/old")), None, "deprecated-operation-removed"),
    (
        "deprecated removed, no sunset",
        _do(lambda s: s["paths"].pop("/older")),
        None,
        "deprecated-operation-removed-without-sunset",
    ),
    (
        "sunset announced without deprecated",
        _do(lambda s: s["paths"]["/items"].pop("get")),
        _set(lambda s: _op(s, "/items", "get"), **{"x-sunset": "2030-01-01"}),
        "operation-removed-before-sunset",
    ),
    (
        "operation added",
        _do(lambda s: s["paths"].__setitem__("/health", {"get": {"responses": {"200": {"description": "ok"}}}})),
        None,
        "operation-added",
    ),
    ("operation deprecated", _set(lambda s: _op(s, "/items", "get"), deprecated=True), None, "operation-deprecated"),
    # ---- responses
    (
        "success status removed",
        _do(
            lambda s: _op(s, "/items", "post")["responses"].__setitem__(
                "200", _op(s, "/items", "post")["responses"].pop("201")
            )
        ),
        None,
        "response-success-status-removed",
    ),
    (
        "error status removed",
        _do(lambda s: _op(s, "/items/{id}", "get")["responses"].pop("404")),
        None,
        "response-status-removed",
    ),
    (
        "status added",
        _do(lambda s: _op(s, "/items/{id}", "get")["responses"].__setitem__("410", {"description": "gone"})),
        None,
        "response-status-added",
    ),
    (
        "response media type removed",
        _do(
            lambda s: _op(s, "/items/{id}", "get")["responses"]["200"].__setitem__(
                "content", {"application/xml": {"schema": _ref("Item")}}
            )
        ),
        None,
        "response-media-type-removed",
    ),
    (
        "response media type added",
        _do(lambda s: _op(s, "/items/{id}", "get")["responses"]["200"]["content"].__setitem__("text/csv", {})),
        None,
        "response-media-type-added",
    ),
    (
        "response property removed",
        _do(lambda s: _item(s)["properties"].pop("count")),
        None,
        "response-property-removed",
    ),
    (
        "response property added",
        _do(lambda s: _item(s)["properties"].__setitem__("extra", {"type": "string"})),
        None,
        "response-property-added",
    ),
    ("response type changed", _set(_prop(_item, "count"), type="string"), None, "response-type-changed"),
    (
        "response nested type changed",
        _set(lambda s: _prop(_item, "tags")(s)["items"], type="integer"),
        None,
        "response-type-changed",
    ),
    (
        "response type narrowed",
        _set(_prop(_item, "count"), type="integer"),
        _set(_prop(_item, "count"), type="number"),
        "response-type-narrowed",
    ),
    ("response format changed", _set(_prop(_item, "id"), format="int64"), None, "response-format-changed"),
    ("response format removed", _pop(_prop(_item, "id"), "format"), None, "response-format-removed"),
    (
        "response property became optional",
        _set(_item, required=["id", "name"]),
        None,
        "response-property-became-optional",
    ),
    (
        "response property became required",
        _set(_item, required=["id", "name", "status", "count"]),
        None,
        "response-property-became-required",
    ),
    ("response nullable (3.0)", _set(_prop(_item, "name"), nullable=True), None, "response-property-became-nullable"),
    (
        "response nullable (3.1 type list)",
        _set(_prop(_item, "name"), type=["string", "null"]),
        None,
        "response-property-became-nullable",
    ),
    (
        "response nullable (3.1 anyOf null)",
        _do(lambda s: _item(s)["properties"].__setitem__("name", {"anyOf": [{"type": "string"}, {"type": "null"}]})),
        None,
        "response-property-became-nullable",
    ),
    (
        "response enum value added",
        _set(_prop(_item, "status"), enum=["new", "done", "lost"]),
        None,
        "response-enum-value-added",
    ),
    ("response enum dropped", _pop(_prop(_item, "status"), "enum"), None, "response-enum-value-added"),
    ("response enum value removed", _set(_prop(_item, "status"), enum=["new"]), None, "response-enum-value-removed"),
    (
        "response variant added",
        _do(lambda s: _prop(_item, "shape")(s)["oneOf"].append(_ref("Triangle"))),
        None,
        "response-variant-added",
    ),
    (
        "response variant removed",
        _do(lambda s: _prop(_item, "shape")(s)["oneOf"].pop()),
        None,
        "response-variant-removed",
    ),
    (
        "response plain type became oneOf",
        _do(
            lambda s: _item(s)["properties"].__setitem__("count", {"oneOf": [{"type": "integer"}, {"type": "string"}]})
        ),
        None,
        "response-variant-added",
    ),
    (
        "response widened through allOf (property removed from a part)",
        _do(
            lambda s: _schemas(s).__setitem__(
                "Item",
                {
                    "allOf": [
                        {
                            "type": "object",
                            "required": ["id"],
                            "properties": {"id": {"type": "string", "format": "uuid"}},
                        },
                        {
                            "type": "object",
                            "required": ["name", "status"],
                            "properties": {
                                "name": {"type": "string"},
                                "status": {"type": "string", "enum": ["new", "done"]},
                                "tags": {"type": "array", "items": {"type": "string"}},
                                "shape": {"oneOf": [_ref("Circle"), _ref("Square")]},
                            },
                        },
                    ]
                },
            )
        ),
        None,
        "response-property-removed",
    ),
    # ---- request parameters
    (
        "required query parameter added",
        _do(
            lambda s: _op(s, "/items", "get")["parameters"].append(
                {"name": "q", "in": "query", "required": True, "schema": {"type": "string"}}
            )
        ),
        None,
        "request-parameter-added-required",
    ),
    (
        "required header added",
        _do(
            lambda s: _op(s, "/items", "get")["parameters"].append(
                {"name": "X-Tenant", "in": "header", "required": True, "schema": {"type": "string"}}
            )
        ),
        None,
        "request-parameter-added-required",
    ),
    (
        "optional parameter added",
        _do(
            lambda s: _op(s, "/items", "get")["parameters"].append(
                {"name": "q", "in": "query", "schema": {"type": "string"}}
            )
        ),
        None,
        "request-parameter-added",
    ),
    (
        "parameter became required",
        _set(lambda s: _op(s, "/items", "get")["parameters"][0], required=True),
        None,
        "request-parameter-became-required",
    ),
    (
        "parameter became optional",
        _set(lambda s: _op(s, "/items", "get")["parameters"][0], required=False),
        _set(lambda s: _op(s, "/items", "get")["parameters"][0], required=True),
        "request-parameter-became-optional",
    ),
    (
        "parameter removed",
        _do(lambda s: _op(s, "/items", "get").__setitem__("parameters", [])),
        None,
        "request-parameter-removed",
    ),
    (
        "parameter minimum raised",
        _set(lambda s: _op(s, "/items", "get")["parameters"][0]["schema"], minimum=5),
        None,
        "request-minimum-raised",
    ),
    (
        "parameter type changed",
        _set(lambda s: _op(s, "/items", "get")["parameters"][0]["schema"], type="boolean"),
        None,
        "request-type-changed",
    ),
    # ---- request body
    (
        "request body removed",
        _do(lambda s: _op(s, "/items", "post").pop("requestBody")),
        None,
        "request-body-removed",
    ),
    (
        "request body became required",
        _set(lambda s: _op(s, "/items", "post")["requestBody"], required=True),
        None,
        "request-body-became-required",
    ),
    (
        "required request body added",
        _do(
            lambda s: _op(s, "/items/{id}", "delete").__setitem__(
                "requestBody", {"required": True, "content": _json({"type": "object"})}
            )
        ),
        None,
        "request-body-became-required",
    ),
    (
        "optional request body added",
        _do(
            lambda s: _op(s, "/items/{id}", "delete").__setitem__("requestBody", {"content": _json({"type": "object"})})
        ),
        None,
        "request-body-added",
    ),
    (
        "request body became optional",
        _set(lambda s: _op(s, "/items", "post")["requestBody"], required=False),
        _set(lambda s: _op(s, "/items", "post")["requestBody"], required=True),
        "request-body-became-optional",
    ),
    (
        "request media type removed",
        _do(
            lambda s: _op(s, "/items", "post")["requestBody"].__setitem__(
                "content", {"application/x-www-form-urlencoded": {"schema": _ref("NewItem")}}
            )
        ),
        None,
        "request-media-type-removed",
    ),
    (
        "request media type added",
        _do(lambda s: _op(s, "/items", "post")["requestBody"]["content"].__setitem__("application/x-yaml", {})),
        None,
        "request-media-type-added",
    ),
    # ---- request schema
    (
        "required request property added",
        _do(
            lambda s: (
                _new_item(s)["properties"].__setitem__("owner", {"type": "string"}),
                _new_item(s)["required"].append("owner"),
            )
        ),
        None,
        "request-property-added-required",
    ),
    (
        "request property became required",
        _do(lambda s: _new_item(s)["required"].append("kind")),
        None,
        "request-property-became-required",
    ),
    (
        "optional request property added",
        _do(lambda s: _new_item(s)["properties"].__setitem__("owner", {"type": "string"})),
        None,
        "request-property-added",
    ),
    (
        "request property became optional",
        _set(_new_item, required=[]),
        None,
        "request-property-became-optional",
    ),
    (
        "request property removed",
        _do(lambda s: _new_item(s)["properties"].pop("free")),
        None,
        "request-property-removed",
    ),
    ("request type changed", _set(_prop(_new_item, "count"), type="string"), None, "request-type-changed"),
    (
        "request type narrowed number->integer",
        _set(_prop(_new_item, "count"), type="integer"),
        _set(_prop(_new_item, "count"), type="number"),
        "request-type-changed",
    ),
    ("request type widened", _set(_prop(_new_item, "count"), type="number"), None, "request-type-widened"),
    ("request format changed", _set(_prop(_new_item, "when"), format="date"), None, "request-format-changed"),
    ("request format added", _set(_prop(_new_item, "free"), format="email"), None, "request-format-added"),
    (
        "request not nullable (3.0)",
        _pop(_prop(_new_item, "note"), "nullable"),
        None,
        "request-property-became-not-nullable",
    ),
    (
        "request not nullable (3.1)",
        _do(lambda s: _new_item(s)["properties"].__setitem__("note", {"type": "string"})),
        _do(lambda s: _new_item(s)["properties"].__setitem__("note", {"type": ["string", "null"]})),
        "request-property-became-not-nullable",
    ),
    ("request enum value removed", _set(_prop(_new_item, "kind"), enum=["a"]), None, "request-enum-value-removed"),
    (
        "request enum value added",
        _set(_prop(_new_item, "kind"), enum=["a", "b", "c"]),
        None,
        "request-enum-value-added",
    ),
    ("request enum added", _set(_prop(_new_item, "free"), enum=["x"]), None, "request-enum-added"),
    ("request pattern added", _set(_prop(_new_item, "free"), pattern="^x"), None, "request-pattern-added"),
    ("request pattern changed", _set(_prop(_new_item, "code"), pattern="^[A-Z]{2}$"), None, "request-pattern-changed"),
    ("request minimum raised", _set(_prop(_new_item, "count"), minimum=1), None, "request-minimum-raised"),
    (
        "request exclusiveMinimum (3.0 flag)",
        _set(_prop(_new_item, "count"), exclusiveMinimum=True),
        None,
        "request-minimum-raised",
    ),
    (
        "request exclusiveMinimum (3.1 number)",
        _do(
            lambda s: (
                _prop(_new_item, "count")(s).pop("minimum"),
                _prop(_new_item, "count")(s).__setitem__("exclusiveMinimum", 0),
            )
        ),
        None,
        "request-minimum-raised",
    ),
    ("request maximum lowered", _set(_prop(_new_item, "count"), maximum=9), None, "request-maximum-lowered"),
    ("request minLength raised", _set(_prop(_new_item, "name"), minLength=3), None, "request-min-length-raised"),
    ("request maxLength lowered", _set(_prop(_new_item, "name"), maxLength=50), None, "request-max-length-lowered"),
    ("request maxLength added", _set(_prop(_new_item, "free"), maxLength=50), None, "request-max-length-lowered"),
    ("request minItems raised", _set(_prop(_new_item, "tags"), minItems=1), None, "request-min-items-raised"),
    ("request maxItems lowered", _set(_prop(_new_item, "tags"), maxItems=5), None, "request-max-items-lowered"),
    ("request constraint relaxed", _set(_prop(_new_item, "name"), maxLength=500), None, "request-constraint-relaxed"),
    (
        "request variant removed",
        _do(lambda s: _prop(_new_item, "shape")(s)["oneOf"].pop()),
        None,
        "request-variant-removed",
    ),
    (
        "request variant removed (anyOf)",
        _do(lambda s: _new_item(s)["properties"].__setitem__("shape", {"anyOf": [_ref("Circle")]})),
        _do(lambda s: _new_item(s)["properties"].__setitem__("shape", {"anyOf": [_ref("Circle"), _ref("Square")]})),
        "request-variant-removed",
    ),
    (
        "request variant added",
        _do(lambda s: _prop(_new_item, "shape")(s)["oneOf"].append(_ref("Triangle"))),
        None,
        "request-variant-added",
    ),
    (
        "request narrowed through allOf (new required part)",
        _do(
            lambda s: _schemas(s).__setitem__(
                "NewItem",
                {
                    "allOf": [
                        copy.deepcopy(_new_item(s)),
                        {"type": "object", "required": ["owner"], "properties": {"owner": {"type": "string"}}},
                    ]
                },
            )
        ),
        None,
        "request-property-added-required",
    ),
    (
        "request property narrowed inside a variant",
        _do(lambda s: _schemas(s)["Circle"].__setitem__("required", ["r"])),
        None,
        "request-property-became-required",
    ),
    # ---- security
    ("security added (global)", _do(lambda s: s.__setitem__("security", [{"bearer": []}])), None, "security-added"),
    (
        "security added (operation)",
        _set(lambda s: _op(s, "/items", "post"), security=[{"apiKey": []}]),
        None,
        "security-added",
    ),
    (
        "security scheme swapped",
        _do(lambda s: s.__setitem__("security", [{"apiKey": []}])),
        _do(lambda s: s.__setitem__("security", [{"bearer": []}])),
        "security-changed",
    ),
    (
        "security scope added",
        _set(lambda s: _op(s, "/items", "post"), security=[{"oauth": ["read", "write"]}]),
        _set(lambda s: _op(s, "/items", "post"), security=[{"oauth": ["read"]}]),
        "security-changed",
    ),
    (
        "security alternative added",
        _do(lambda s: s.__setitem__("security", [{"bearer": []}, {"apiKey": []}])),
        _do(lambda s: s.__setitem__("security", [{"bearer": []}])),
        "security-relaxed",
    ),
    (
        "security removed",
        _do(lambda s: s.__setitem__("security", [])),
        _do(lambda s: s.__setitem__("security", [{"bearer": []}])),
        "security-relaxed",
    ),
    # Found from outside: a moved base path broke every client URL and the diff said nothing.
    (
        "servers added with a base path (the root before)",
        _do(lambda s: s.__setitem__("servers", [{"url": "/v2"}])),
        None,
        "server-base-path-changed",
    ),
    (
        "server base path moved, host changed too",
        _do(lambda s: s.__setitem__("servers", [{"url": "https://api.example.com/api/v2"}])),
        _do(lambda s: s.__setitem__("servers", [{"url": "http://staging:8000/api/"}])),
        "server-base-path-changed",
    ),
    (
        "one of two server base paths removed",
        _do(lambda s: s.__setitem__("servers", [{"url": "/api"}])),
        _do(lambda s: s.__setitem__("servers", [{"url": "/api"}, {"url": "/legacy"}])),
        "server-base-path-removed",
    ),
    (
        "security scheme definition changed",
        _set(lambda s: s["components"]["securitySchemes"]["apiKey"], name="X-Key"),
        None,
        "security-scheme-changed",
    ),
    # ---- issue 16: readOnly request properties, allOf composition, response headers, parameter sunsets
    (
        "readOnly request property: pattern added",
        _set(_prop(_new_item, "rid"), pattern="^[a-z]+$"),
        _with_readonly(),
        "request-readonly-pattern-added",
    ),
    (
        "readOnly request property: pattern changed",
        _set(_prop(_new_item, "rid"), pattern="^[0-9]+$"),
        _with_readonly(pattern="^[a-z]+$"),
        "request-readonly-pattern-changed",
    ),
    (
        "allOf part added, merged properties unchanged",
        _set(lambda s: _schemas(s)["Req"], allOf=[_ref("Named"), _ref("Marker")]),
        _with_all_of("Named"),
        "request-all-of-added",
    ),
    (
        "allOf part removed, merged properties unchanged",
        _set(lambda s: _schemas(s)["Req"], allOf=[_ref("Named")]),
        _with_all_of("Named", "Marker"),
        "request-all-of-removed",
    ),
    (
        "allOf parts merged into one",
        _do(
            lambda s: (
                _schemas(s).__setitem__("Both", copy.deepcopy(_schemas(s)["Named"])),
                _schemas(s)["Req"].__setitem__("allOf", [_ref("Both")]),
            )
        ),
        _with_all_of("Named", "Marker"),
        "request-all-of-removed",
    ),
    (
        "allOf added to a plain request schema",
        _set(_new_item, allOf=[_ref("Named")]),
        _do(lambda s: _schemas(s).__setitem__("Named", {"type": "object"})),
        "request-all-of-added",
    ),
    (
        "optional response header removed",
        _do(lambda s: _headers(s).pop("X-RateLimit-Limit")),
        _do(_with_headers),
        "response-optional-header-removed",
    ),
    (
        "required response header removed",
        _do(lambda s: _headers(s).pop("X-Request-Id")),
        _do(_with_headers),
        "response-required-header-removed",
    ),
    (
        "response header became optional",
        _do(lambda s: _headers(s)["X-Request-Id"].pop("required")),
        _do(_with_headers),
        "response-header-became-optional",
    ),
    (
        "response header became required",
        _set(lambda s: _headers(s)["X-RateLimit-Limit"], required=True),
        _do(_with_headers),
        "response-header-became-required",
    ),
    (
        "response header added",
        _do(lambda s: _headers(s).__setitem__("X-Trace", {"schema": {"type": "string"}})),
        _do(_with_headers),
        "response-header-added",
    ),
    (
        "response header schema type changed",
        _set(lambda s: _headers(s)["X-RateLimit-Limit"]["schema"], type="string"),
        _do(_with_headers),
        "response-type-changed",
    ),
    (
        "parameter removed before its sunset",
        _do(_drop_page),
        _with_param(deprecated=True, **{"x-sunset": "2099-01-01"}),
        "request-parameter-removed-before-sunset",
    ),
    (
        "parameter with sunset but not deprecated removed early",
        _do(_drop_page),
        _with_param(**{"x-sunset": "2030-01-01"}),
        "request-parameter-removed-before-sunset",
    ),
    (
        "deprecated parameter removed after its sunset",
        _do(_drop_page),
        _with_param(deprecated=True, **{"x-sunset": "2020-01-01"}),
        "deprecated-request-parameter-removed",
    ),
    (
        "deprecated parameter removed, no sunset",
        _do(_drop_page),
        _with_param(deprecated=True),
        "request-parameter-removed",
    ),
    (
        "parameter enum added",
        _set(lambda s: _op(s, "/items", "get")["parameters"][0]["schema"], enum=[10, 50]),
        None,
        "request-enum-added",
    ),
    # ---- the diff's own limits
    (
        "unresolved ref",
        _set(_item, properties={"id": {"$ref": "#/components/schemas/Missing"}}),
        None,
        "unresolved-ref",
    ),
]


def _pair(
    mutate_new: Mutation, mutate_old: Mutation | None, version: str = "3.0.3"
) -> tuple[dict[str, Any], dict[str, Any]]:
    old = base_spec(version)
    if mutate_old is not None:
        mutate_old(old)
    new = copy.deepcopy(old)
    mutate_new(new)
    return old, new


@pytest.mark.parametrize(("case", "mutate_new", "mutate_old", "rule"), CASES, ids=[c[0] for c in CASES])
def test_each_rule_fires_with_its_level(
    case: str, mutate_new: Mutation, mutate_old: Mutation | None, rule: str
) -> None:
    old, new = _pair(mutate_new, mutate_old)
    changes = diff_openapi(old, new, today=TODAY)
    hits = [c for c in changes if c.rule == rule]
    assert hits, f"{case}: expected {rule}, got {[(c.rule, c.location) for c in changes]}"
    assert all(c.level is RULES_BY_ID[rule].level for c in hits)
    assert all(c.message for c in hits)


# Levels issue 16 aligned with oasdiff, or kept apart on purpose (then the rule says why).
ALIGNED_LEVELS: list[tuple[str, Level]] = [
    ("request-enum-added", Level.ERR),
    ("request-body-removed", Level.ERR),
    ("request-all-of-added", Level.ERR),
    ("response-required-header-removed", Level.ERR),
    ("response-header-became-optional", Level.ERR),
    ("request-parameter-removed-before-sunset", Level.ERR),
    ("deprecated-request-parameter-removed", Level.INFO),
]
KEPT_APART_ON_PURPOSE = ["response-optional-header-removed", "request-readonly-pattern-added", "request-all-of-removed"]


@pytest.mark.parametrize(("rule", "level"), ALIGNED_LEVELS, ids=[r for r, _ in ALIGNED_LEVELS])
def test_levels_aligned_with_oasdiff(rule: str, level: Level) -> None:
    assert RULES_BY_ID[rule].level is level


@pytest.mark.parametrize("rule", KEPT_APART_ON_PURPOSE)
def test_a_level_kept_apart_from_oasdiff_says_why(rule: str) -> None:
    description = RULES_BY_ID[rule].description
    assert "oasdiff" in description and "on purpose" in description


def test_a_removed_rate_limit_header_is_seen_where_it_was() -> None:
    old, new = _pair(_do(lambda s: _headers(s).pop("X-RateLimit-Limit")), _do(_with_headers))
    (change,) = diff_openapi(old, new, today=TODAY)
    assert (change.rule, change.level, change.path, change.method) == (
        "response-optional-header-removed",
        Level.WARN,
        "/items",
        "GET",
    )
    assert change.location == "responses/200/headers/X-RateLimit-Limit"
    assert "X-RateLimit-Limit" in change.message


def test_a_header_schema_change_is_located_inside_the_header() -> None:
    old, new = _pair(_set(lambda s: _headers(s)["X-RateLimit-Limit"]["schema"], type="string"), _do(_with_headers))
    (change,) = diff_openapi(old, new, today=TODAY)
    assert change.location == "responses/200/headers/X-RateLimit-Limit/schema/type"
    assert change.level is Level.ERR


def test_a_parameter_sunset_is_judged_against_the_given_day() -> None:
    old, new = _pair(_do(_drop_page), _with_param(deprecated=True, **{"x-sunset": "2026-01-01"}))
    assert [c.rule for c in diff_openapi(old, new, today=date(2025, 12, 31))] == [
        "request-parameter-removed-before-sunset"
    ]
    assert [c.rule for c in diff_openapi(old, new, today=date(2026, 1, 2))] == ["deprecated-request-parameter-removed"]


def test_every_rule_in_the_table_is_exercised() -> None:
    exercised = {c[3] for c in CASES} | {"schema-depth-limit"}  # depth limit: see its own test
    assert {r.id for r in RULES} == exercised


def test_rules_table_is_well_formed() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    assert all(isinstance(r.level, Level) and r.description for r in RULES)


def test_identical_specs_have_no_changes() -> None:
    assert diff_openapi(base_spec(), base_spec(), today=TODAY) == []
    assert diff_openapi(base_spec("3.1.0"), base_spec("3.1.0"), today=TODAY) == []


HARMLESS: list[tuple[str, Mutation]] = [
    (
        "description edits",
        _do(
            lambda s: (
                s["info"].__setitem__("description", "Changed"),
                _prop(_item, "name")(s).__setitem__("description", "Other"),
                _op(s, "/items", "get").__setitem__("summary", "List them"),
            )
        ),
    ),
    ("paths reordered", _do(lambda s: s.__setitem__("paths", dict(reversed(list(s["paths"].items())))))),
    (
        "keys reordered",
        _do(lambda s: _schemas(s).__setitem__("Item", json.loads(json.dumps(_item(s), sort_keys=True)))),
    ),
    (
        "properties reordered",
        _do(lambda s: _item(s).__setitem__("properties", dict(reversed(list(_item(s)["properties"].items()))))),
    ),
    ("required reordered", _set(_item, required=["status", "name", "id"])),
    ("enum reordered", _set(_prop(_item, "status"), enum=["done", "new"])),
    ("oneOf reordered", _set(_prop(_new_item, "shape"), oneOf=[_ref("Square"), _ref("Circle")])),
    (
        "optional request property added",
        _do(lambda s: _new_item(s)["properties"].__setitem__("owner", {"type": "string"})),
    ),
    ("response property added", _do(lambda s: _item(s)["properties"].__setitem__("extra", {"type": "string"}))),
    (
        "endpoint added",
        _do(lambda s: s["paths"].__setitem__("/health", {"get": {"responses": {"200": {"description": "ok"}}}})),
    ),
    (
        "path parameter renamed",
        _do(
            lambda s: (
                s["paths"].__setitem__("/items/{item_id}", s["paths"].pop("/items/{id}")),
                s["paths"]["/items/{item_id}"]["parameters"][0].__setitem__("name", "item_id"),
            )
        ),
    ),
    (
        "schema inlined instead of $ref",
        _do(
            lambda s: _op(s, "/items/{id}", "get")["responses"]["200"]["content"][JSON].__setitem__(
                "schema", copy.deepcopy(_item(s))
            )
        ),
    ),
    (
        "schema renamed",
        _do(
            lambda s: (
                _schemas(s).__setitem__("Thing", _schemas(s).pop("Item")),
                json.loads(json.dumps(s)) and None,
                _rewrite_refs(s, "Item", "Thing"),
            )
        ),
    ),
    (
        "media type parameters",
        _do(
            lambda s: _op(s, "/items/{id}", "get")["responses"]["200"].__setitem__(
                "content", {"application/json; charset=utf-8": {"schema": _ref("Item")}}
            )
        ),
    ),
    (
        "readOnly property added as required to a request",
        _do(
            lambda s: (
                _new_item(s)["properties"].__setitem__("id", {"type": "string", "readOnly": True}),
                _new_item(s)["required"].append("id"),
            )
        ),
    ),
    ("examples changed", _set(_prop(_item, "name"), example="Widget")),
    ("info version bumped", _do(lambda s: s["info"].__setitem__("version", "2.0.0"))),
]


def _rewrite_refs(node: Any, old_name: str, new_name: str) -> None:
    if isinstance(node, dict):
        if node.get("$ref") == f"#/components/schemas/{old_name}":
            node["$ref"] = f"#/components/schemas/{new_name}"
        for v in node.values():
            _rewrite_refs(v, old_name, new_name)
    elif isinstance(node, list):
        for v in node:
            _rewrite_refs(v, old_name, new_name)


@pytest.mark.parametrize("version", ["3.0.3", "3.1.0"])
@pytest.mark.parametrize(("case", "mutate"), HARMLESS, ids=[h[0] for h in HARMLESS])
def test_harmless_edits_report_no_err_or_warn(case: str, mutate: Mutation, version: str) -> None:
    old, new = _pair(mutate, None, version)
    bad = [c for c in diff_openapi(old, new, today=TODAY) if c.level is not Level.INFO]
    assert bad == [], f"{case}: {bad}"


# Edits from a baseline that has the issue-16 features: (case, candidate mutation, baseline mutation).
# None of them may produce any change at all.
SILENT: list[tuple[str, Mutation, Mutation]] = [
    (
        "response header name case changed",
        _do(lambda s: _headers(s).__setitem__("x-ratelimit-limit", _headers(s).pop("X-RateLimit-Limit"))),
        _do(_with_headers),
    ),
    (
        "response header description changed",
        _set(lambda s: _headers(s)["X-RateLimit-Limit"], description="requests per hour"),
        _do(_with_headers),
    ),
    (
        "response header moved to a $ref",
        _do(
            lambda s: (
                s["components"].__setitem__("headers", {"Limit": _headers(s)["X-RateLimit-Limit"]}),
                _headers(s).__setitem__("X-RateLimit-Limit", {"$ref": "#/components/headers/Limit"}),
            )
        ),
        _do(_with_headers),
    ),
    (
        "Content-Type response header removed (OpenAPI: ignored)",
        _do(lambda s: _headers(s).pop("Content-Type")),
        _do(
            lambda s: (
                _with_headers(s),
                _headers(s).__setitem__("Content-Type", {"required": True, "schema": {"type": "string"}}),
            )
        ),
    ),
    (
        "readOnly request property: pattern dropped",
        _do(lambda s: _prop(_new_item, "rid")(s).pop("pattern")),
        _with_readonly(pattern="^[a-z]+$"),
    ),
    ("readOnly request property: maxLength added", _set(_prop(_new_item, "rid"), maxLength=3), _with_readonly()),
    (
        "readOnly request property: same pattern",
        _set(_prop(_new_item, "rid"), description="server id"),
        _with_readonly(pattern="^[a-z]+$"),
    ),
    (
        "allOf parts reordered",
        _set(lambda s: _schemas(s)["Req"], allOf=[_ref("Marker"), _ref("Named")]),
        _with_all_of("Named", "Marker"),
    ),
    (
        "$ref wrapped in a one-part allOf",
        _do(
            lambda s: _op(s, "/items", "post")["requestBody"]["content"][JSON].__setitem__(
                "schema", {"allOf": [_ref("NewItem")]}
            )
        ),
        _do(lambda s: None),
    ),
    (
        "allOf part edited in place",
        _set(lambda s: _schemas(s)["Marker"], description="other words"),
        _with_all_of("Named", "Marker"),
    ),
    (
        "deprecated parameter with a sunset kept",
        _set(lambda s: _op(s, "/items", "get")["parameters"][1], description="use cursor"),
        _with_param(deprecated=True, **{"x-sunset": "2099-01-01"}),
    ),
]


@pytest.mark.parametrize(("case", "mutate_new", "mutate_old"), SILENT, ids=[c[0] for c in SILENT])
def test_harmless_edits_to_headers_readonly_allof_and_sunsets_are_silent(
    case: str, mutate_new: Mutation, mutate_old: Mutation
) -> None:
    old, new = _pair(mutate_new, mutate_old)
    assert diff_openapi(old, new, today=TODAY) == [], case


def test_nullable_spelled_the_3_0_way_and_the_3_1_way_are_the_same() -> None:
    old = base_spec("3.0.3")
    _prop(_item, "name")(old)["nullable"] = True
    new = base_spec("3.1.0")
    _prop(_item, "name")(new)["type"] = ["string", "null"]
    assert [c for c in diff_openapi(old, new, today=TODAY) if c.level is not Level.INFO] == []


def test_change_names_the_operation_and_location() -> None:
    old, new = _pair(_do(lambda s: _item(s)["properties"].pop("count")), None)
    hit = next(c for c in diff_openapi(old, new, today=TODAY) if c.path == "/items/{id}" and c.method == "GET")
    assert hit == Change(
        Level.ERR,
        "response-property-removed",
        "/items/{id}",
        "GET",
        "responses/200/content/application~1json/schema/properties/count",
        "response 200 (application/json): property 'count' was removed",
    )
    # The same shared schema is reported once per operation that returns it.
    ops = {(c.path, c.method) for c in diff_openapi(old, new, today=TODAY) if c.rule == "response-property-removed"}
    assert ops == {("/items", "GET"), ("/items", "POST"), ("/items/{id}", "GET")}


def test_sunset_is_judged_against_the_given_day() -> None:
    old, new = _pair(_do(lambda s: s["paths"].pop("/legacy")), None)
    assert [c.rule for c in diff_openapi(old, new, today=date(2100, 1, 1))] == ["deprecated-operation-removed"]
    assert [c.rule for c in diff_openapi(old, new, today=date(2098, 1, 1))] == ["operation-removed-before-sunset"]


def test_yaml_dates_count_as_sunset_dates() -> None:
    old, new = _pair(
        _do(lambda s: s["paths"].pop("/legacy")),
        _set(lambda s: _op(s, "/legacy", "get"), **{"x-sunset": date(2099, 1, 1)}),
    )
    assert [c.rule for c in diff_openapi(old, new, today=TODAY)] == ["operation-removed-before-sunset"]


def _recursive_spec(child_type: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "tree", "version": "1"},
        "paths": {"/tree": {"get": {"responses": {"200": {"description": "ok", "content": _json(_ref("Node"))}}}}},
        "components": {
            "schemas": {
                "Node": {
                    "type": "object",
                    "properties": {
                        "value": {"type": child_type},
                        "children": {"type": "array", "items": _ref("Node")},
                        "parent": _ref("Node"),
                        "meta": {"allOf": [_ref("Node")]},
                    },
                }
            }
        },
    }


def _diff_with_deadline(old: dict[str, Any], new: dict[str, Any], seconds: float = 10.0) -> list[Change]:
    # A hang would block the suite: run the diff in a thread and give up after a deadline.
    out: list[list[Change]] = []
    worker = threading.Thread(target=lambda: out.append(diff_openapi(old, new, today=TODAY)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "diff of a recursive schema did not finish"
    return out[0]


def test_ref_cycle_does_not_hang_and_still_diffs() -> None:
    assert _diff_with_deadline(_recursive_spec("string"), _recursive_spec("string")) == []
    changes = _diff_with_deadline(_recursive_spec("string"), _recursive_spec("integer"))
    assert {c.rule for c in changes} == {"response-type-changed"}
    assert "responses/200/content/application~1json/schema/properties/value/type" in {c.location for c in changes}


def test_self_referencing_ref_chain_is_reported_not_followed() -> None:
    old = _recursive_spec("string")
    new = copy.deepcopy(old)
    new["components"]["schemas"]["Loop"] = {"$ref": "#/components/schemas/Loop"}
    new["components"]["schemas"]["Node"]["properties"]["value"] = _ref("Loop")
    changes = _diff_with_deadline(old, new)
    assert "unresolved-ref" in {c.rule for c in changes}


def test_schema_depth_limit_is_reported() -> None:
    def deep(n: int) -> dict[str, Any]:
        node: dict[str, Any] = {"type": "string"}
        for _ in range(n):
            node = {"type": "object", "properties": {"x": node}}
        return node

    def spec(schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "openapi": "3.0.0",
            "info": {"title": "d", "version": "1"},
            "paths": {"/d": {"get": {"responses": {"200": {"description": "ok", "content": _json(schema)}}}}},
        }

    changes = diff_openapi(spec(deep(100)), spec(deep(100)), today=TODAY)
    assert [c.rule for c in changes] == ["schema-depth-limit"]
    assert changes[0].level is Level.WARN


@pytest.mark.parametrize(
    "bad",
    [[], "openapi", {"swagger": "2.0", "paths": {}}, {"info": {}}, {"openapi": "3.0.0", "paths": []}],
)
def test_not_an_openapi_3_document_is_an_error(bad: Any) -> None:
    with pytest.raises(SpecError):
        diff_openapi(bad, base_spec(), today=TODAY)
    with pytest.raises(SpecError):
        diff_openapi(base_spec(), bad, today=TODAY)


def test_count_operations() -> None:
    assert count_operations(base_spec()) == 7


def test_yaml_integer_status_codes_match_string_ones() -> None:
    old = base_spec()
    new = copy.deepcopy(old)
    responses = _op(new, "/items/{id}", "get")["responses"]
    _op(new, "/items/{id}", "get")["responses"] = {int(k): v for k, v in responses.items()}
    assert diff_openapi(old, new, today=TODAY) == []


def _dag_spec(levels: int, leaf_type: str) -> dict[str, Any]:
    # Each level references the one below twice: expanded as a tree that is 2**levels leaves.
    schemas: dict[str, Any] = {"L0": {"type": "object", "properties": {"v": {"type": leaf_type}}}}
    for i in range(1, levels + 1):
        schemas[f"L{i}"] = {
            "type": "object",
            "properties": {"a": _ref(f"L{i - 1}"), "b": {"type": "array", "items": _ref(f"L{i - 1}")}},
        }
    return {
        "openapi": "3.0.3",
        "info": {"title": "dag", "version": "1"},
        "paths": {
            "/top": {"get": {"responses": {"200": {"description": "ok", "content": _json(_ref(f"L{levels}"))}}}},
            "/mid": {
                "post": {"requestBody": {"content": _json(_ref("L3"))}, "responses": {"204": {"description": "ok"}}}
            },
        },
        "components": {"schemas": schemas},
    }


def test_shared_schemas_are_compared_once_not_once_per_path() -> None:
    changes = _diff_with_deadline(_dag_spec(60, "string"), _dag_spec(60, "integer"))
    # One change per operation, named by the first path that reaches it.
    assert [(c.path, c.rule) for c in changes] == [("/top", "response-type-changed"), ("/mid", "request-type-changed")]
    assert (
        changes[0].location
        == "responses/200/content/application~1json/schema" + "/properties/a" * 60 + "/properties/v/type"
    )
    assert changes[1].message == "request body (application/json): property 'a.a.a.v': type string -> integer"


def test_nullable_ref_spelled_3_0_and_3_1_ways_is_no_change() -> None:
    old = base_spec("3.0.3")
    _item(old)["properties"]["parent"] = {"allOf": [_ref("Circle")], "nullable": True}
    new = base_spec("3.1.0")
    _item(new)["properties"]["parent"] = {"anyOf": [_ref("Circle"), {"type": "null"}]}
    assert [c for c in diff_openapi(old, new, today=TODAY) if c.level is not Level.INFO] == []
    # ...while dropping the null in either spelling is seen.
    strict = base_spec("3.1.0")
    _item(strict)["properties"]["parent"] = _ref("Circle")
    assert {c.rule for c in diff_openapi(strict, new, today=TODAY)} == {"response-property-became-nullable"}
