"""Swagger 2.0 input: each conversion rule, and real 2.0 specs diffed after conversion."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from stability_lib.contract.openapi_diff import Level, SpecError, count_operations, diff_openapi
from stability_lib.contract.swagger2 import OPENAPI_VERSION, as_openapi3, convert_swagger2, is_swagger2

FIXTURES = Path(__file__).parent / "fixtures" / "swagger2"
TODAY = date(2025, 6, 1)


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((FIXTURES / name).read_text(encoding="utf-8"))


def _doc(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {}}
    doc.update(extra)
    return doc


def _op(*params: dict[str, Any], **extra: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"responses": {"200": {"description": "ok"}}}
    if params:
        op["parameters"] = list(params)
    op.update(extra)
    return op


def _at(node: Any, *keys: Any) -> Any:
    for k in keys:
        node = node[k]
    return node


# Each case: (rule, Swagger 2.0 input, where to look in the output, what must be there).
CASES: list[tuple[str, dict[str, Any], tuple[Any, ...], Any]] = [
    ("version", _doc(), ("openapi",), OPENAPI_VERSION),
    (
        "host+basePath+schemes -> servers",
        _doc(host="api.example.com", basePath="/v2", schemes=["http", "https"]),
        ("servers",),
        [{"url": "http://api.example.com/v2"}, {"url": "https://api.example.com/v2"}],
    ),
    ("host without schemes -> https", _doc(host="h.example"), ("servers",), [{"url": "https://h.example"}]),
    ("basePath only -> relative server", _doc(basePath="/api"), ("servers",), [{"url": "/api"}]),
    (
        "body -> requestBody per operation consumes",
        _doc(
            consumes=["application/json"],
            paths={
                "/a": {
                    "post": _op(
                        {"name": "b", "in": "body", "required": True, "schema": {"$ref": "#/definitions/A"}},
                        consumes=["application/xml", "application/json"],
                    )
                }
            },
        ),
        ("paths", "/a", "post", "requestBody"),
        {
            "required": True,
            "x-codegen-request-body-name": "b",
            "content": {
                "application/xml": {"schema": {"$ref": "#/components/schemas/A"}},
                "application/json": {"schema": {"$ref": "#/components/schemas/A"}},
            },
        },
    ),
    (
        "body -> requestBody with the document's consumes",
        _doc(
            consumes=["text/plain"],
            paths={"/a": {"put": _op({"name": "b", "in": "body", "schema": {"type": "string"}})}},
        ),
        ("paths", "/a", "put", "requestBody", "content"),
        {"text/plain": {"schema": {"type": "string"}}},
    ),
    (
        "formData -> urlencoded object with required list",
        _doc(
            paths={
                "/f": {
                    "post": _op(
                        {"name": "n", "in": "formData", "type": "string", "required": True, "description": "d"},
                        {"name": "k", "in": "formData", "type": "integer", "format": "int32"},
                    )
                }
            }
        ),
        ("paths", "/f", "post", "requestBody"),
        {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "n": {"type": "string", "description": "d"},
                            "k": {"type": "integer", "format": "int32"},
                        },
                        "required": ["n"],
                    }
                }
            },
        },
    ),
    (
        "formData file -> multipart string/binary",
        _doc(paths={"/u": {"post": _op({"name": "file", "in": "formData", "type": "file"})}}),
        ("paths", "/u", "post", "requestBody", "content"),
        {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
            }
        },
    ),
    (
        "formData follows consumes",
        _doc(
            paths={
                "/u": {
                    "post": _op(
                        {"name": "x", "in": "formData", "type": "string"},
                        consumes=["multipart/form-data", "application/json"],
                    )
                }
            }
        ),
        ("paths", "/u", "post", "requestBody", "content"),
        {"multipart/form-data": {"schema": {"type": "object", "properties": {"x": {"type": "string"}}}}},
    ),
    (
        "formData array collectionFormat -> encoding",
        _doc(
            paths={
                "/f": {
                    "post": _op(
                        {
                            "name": "tags",
                            "in": "formData",
                            "type": "array",
                            "items": {"type": "string"},
                            "collectionFormat": "multi",
                        }
                    )
                }
            }
        ),
        ("paths", "/f", "post", "requestBody", "content", "application/x-www-form-urlencoded", "encoding"),
        {"tags": {"style": "form", "explode": True}},
    ),
    (
        "query parameter -> schema with bounds",
        _doc(
            paths={
                "/q": {
                    "get": _op(
                        {"name": "limit", "in": "query", "type": "integer", "minimum": 1, "maximum": 50, "default": 10}
                    )
                }
            }
        ),
        ("paths", "/q", "get", "parameters", 0),
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10}},
    ),
    (
        "query array csv -> form, explode false",
        _doc(
            paths={
                "/q": {
                    "get": _op(
                        {
                            "name": "ids",
                            "in": "query",
                            "type": "array",
                            "items": {"type": "integer"},
                            "collectionFormat": "csv",
                        }
                    )
                }
            }
        ),
        ("paths", "/q", "get", "parameters", 0),
        {
            "name": "ids",
            "in": "query",
            "schema": {"type": "array", "items": {"type": "integer"}},
            "style": "form",
            "explode": False,
        },
    ),
    (
        "query array multi -> form, explode true",
        _doc(
            paths={
                "/q": {
                    "get": _op(
                        {
                            "name": "t",
                            "in": "query",
                            "type": "array",
                            "items": {"type": "string"},
                            "collectionFormat": "multi",
                        }
                    )
                }
            }
        ),
        ("paths", "/q", "get", "parameters", 0, "explode"),
        True,
    ),
    (
        "query array pipes -> pipeDelimited",
        _doc(
            paths={
                "/q": {
                    "get": _op(
                        {
                            "name": "t",
                            "in": "query",
                            "type": "array",
                            "items": {"type": "string"},
                            "collectionFormat": "pipes",
                        }
                    )
                }
            }
        ),
        ("paths", "/q", "get", "parameters", 0, "style"),
        "pipeDelimited",
    ),
    (
        "query array ssv -> spaceDelimited",
        _doc(
            paths={
                "/q": {
                    "get": _op(
                        {
                            "name": "t",
                            "in": "query",
                            "type": "array",
                            "items": {"type": "string"},
                            "collectionFormat": "ssv",
                        }
                    )
                }
            }
        ),
        ("paths", "/q", "get", "parameters", 0, "style"),
        "spaceDelimited",
    ),
    (
        "tsv has no 3.0 style: kept as an extension",
        _doc(
            paths={
                "/q": {
                    "get": _op(
                        {
                            "name": "t",
                            "in": "query",
                            "type": "array",
                            "items": {"type": "string"},
                            "collectionFormat": "tsv",
                        }
                    )
                }
            }
        ),
        ("paths", "/q", "get", "parameters", 0, "x-collectionFormat"),
        "tsv",
    ),
    (
        "header array csv -> simple",
        _doc(
            paths={
                "/h": {
                    "get": _op(
                        {
                            "name": "X-Ids",
                            "in": "header",
                            "type": "array",
                            "items": {"type": "string"},
                            "collectionFormat": "csv",
                        }
                    )
                }
            }
        ),
        ("paths", "/h", "get", "parameters", 0, "style"),
        "simple",
    ),
    (
        "path parameter is always required",
        _doc(paths={"/p/{id}": {"get": _op({"name": "id", "in": "path", "type": "string"})}}),
        ("paths", "/p/{id}", "get", "parameters", 0, "required"),
        True,
    ),
    (
        "nested items of a parameter",
        _doc(
            paths={
                "/q": {
                    "get": _op(
                        {
                            "name": "m",
                            "in": "query",
                            "type": "array",
                            "items": {"type": "array", "items": {"type": "string", "enum": ["a"]}},
                        }
                    )
                }
            }
        ),
        ("paths", "/q", "get", "parameters", 0, "schema"),
        {"type": "array", "items": {"type": "array", "items": {"type": "string", "enum": ["a"]}}},
    ),
    (
        "response schema -> content per produces",
        _doc(
            produces=["application/json", "application/xml"],
            paths={"/r": {"get": {"responses": {"200": {"description": "ok", "schema": {"$ref": "#/definitions/R"}}}}}},
        ),
        ("paths", "/r", "get", "responses", "200"),
        {
            "description": "ok",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/R"}},
                "application/xml": {"schema": {"$ref": "#/components/schemas/R"}},
            },
        },
    ),
    (
        "operation produces wins",
        _doc(
            produces=["application/json"],
            paths={
                "/r": {
                    "get": {
                        "produces": ["text/csv"],
                        "responses": {"200": {"description": "ok", "schema": {"type": "string"}}},
                    }
                }
            },
        ),
        ("paths", "/r", "get", "responses", "200", "content"),
        {"text/csv": {"schema": {"type": "string"}}},
    ),
    (
        "response examples -> example per media type",
        _doc(
            paths={
                "/r": {
                    "get": {
                        "responses": {
                            "200": {
                                "description": "ok",
                                "schema": {"type": "object"},
                                "examples": {"application/json": {"a": 1}},
                            }
                        }
                    }
                }
            }
        ),
        ("paths", "/r", "get", "responses", "200", "content", "application/json", "example"),
        {"a": 1},
    ),
    (
        "response headers -> header objects",
        _doc(
            paths={
                "/r": {
                    "get": {
                        "responses": {
                            "200": {
                                "description": "ok",
                                "headers": {
                                    "X-Rate-Limit": {"type": "integer", "format": "int32", "description": "calls"}
                                },
                            }
                        }
                    }
                }
            }
        ),
        ("paths", "/r", "get", "responses", "200", "headers"),
        {"X-Rate-Limit": {"description": "calls", "schema": {"type": "integer", "format": "int32"}}},
    ),
    (
        "definitions -> components/schemas, refs rewritten inside",
        _doc(
            definitions={
                "A": {
                    "type": "object",
                    "properties": {
                        "b": {"$ref": "#/definitions/B"},
                        "c": {"type": "array", "items": {"$ref": "#/definitions/B"}},
                    },
                }
            }
        ),
        ("components", "schemas", "A"),
        {
            "type": "object",
            "properties": {
                "b": {"$ref": "#/components/schemas/B"},
                "c": {"type": "array", "items": {"$ref": "#/components/schemas/B"}},
            },
        },
    ),
    (
        "refs in allOf and additionalProperties",
        _doc(
            definitions={
                "A": {"allOf": [{"$ref": "#/definitions/B"}], "additionalProperties": {"$ref": "#/definitions/C"}}
            }
        ),
        ("components", "schemas", "A"),
        {"allOf": [{"$ref": "#/components/schemas/B"}], "additionalProperties": {"$ref": "#/components/schemas/C"}},
    ),
    (
        "global parameter -> components/parameters, ref rewritten",
        _doc(
            parameters={"lim": {"name": "limit", "in": "query", "type": "integer"}},
            paths={"/q": {"get": _op({"$ref": "#/parameters/lim"})}},
        ),
        ("paths", "/q", "get", "parameters"),
        [{"$ref": "#/components/parameters/lim"}],
    ),
    (
        "global body parameter -> components/requestBodies",
        _doc(
            parameters={
                "pet": {"name": "pet", "in": "body", "required": True, "schema": {"$ref": "#/definitions/Pet"}}
            },
            paths={"/p": {"post": _op({"$ref": "#/parameters/pet"})}},
        ),
        ("paths", "/p", "post", "requestBody"),
        {"$ref": "#/components/requestBodies/pet"},
    ),
    (
        "global body parameter content",
        _doc(parameters={"pet": {"name": "pet", "in": "body", "schema": {"$ref": "#/definitions/Pet"}}}),
        ("components", "requestBodies", "pet", "content"),
        {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}},
    ),
    (
        "global formData parameter is inlined into the form body",
        _doc(
            parameters={"f": {"name": "f", "in": "formData", "type": "string", "required": True}},
            paths={"/p": {"post": _op({"$ref": "#/parameters/f"})}},
        ),
        ("paths", "/p", "post", "requestBody", "content", "application/x-www-form-urlencoded", "schema", "required"),
        ["f"],
    ),
    (
        "global responses -> components/responses, ref rewritten",
        _doc(
            responses={"NotFound": {"description": "nf", "schema": {"$ref": "#/definitions/E"}}},
            paths={"/r": {"get": {"responses": {"404": {"$ref": "#/responses/NotFound"}}}}},
        ),
        ("paths", "/r", "get", "responses", "404"),
        {"$ref": "#/components/responses/NotFound"},
    ),
    (
        "global response content",
        _doc(responses={"NotFound": {"description": "nf", "schema": {"$ref": "#/definitions/E"}}}),
        ("components", "responses", "NotFound"),
        {"description": "nf", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/E"}}}},
    ),
    (
        "path-level parameters stay on the path item",
        _doc(paths={"/p/{id}": {"parameters": [{"name": "id", "in": "path", "type": "integer"}], "get": _op()}}),
        ("paths", "/p/{id}", "parameters"),
        [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
    ),
    (
        "path-level body moves into each operation",
        _doc(paths={"/p": {"parameters": [{"name": "b", "in": "body", "schema": {"type": "object"}}], "put": _op()}}),
        ("paths", "/p", "put", "requestBody", "content"),
        {"application/json": {"schema": {"type": "object"}}},
    ),
    (
        "securityDefinitions basic -> http basic",
        _doc(securityDefinitions={"b": {"type": "basic"}}),
        ("components", "securitySchemes", "b"),
        {"type": "http", "scheme": "basic"},
    ),
    (
        "securityDefinitions apiKey",
        _doc(securityDefinitions={"k": {"type": "apiKey", "name": "X-Key", "in": "header", "description": "d"}}),
        ("components", "securitySchemes", "k"),
        {"type": "apiKey", "name": "X-Key", "in": "header", "description": "d"},
    ),
    (
        "oauth2 implicit",
        _doc(
            securityDefinitions={
                "o": {
                    "type": "oauth2",
                    "flow": "implicit",
                    "authorizationUrl": "https://a/auth",
                    "scopes": {"r": "read"},
                }
            }
        ),
        ("components", "securitySchemes", "o"),
        {"type": "oauth2", "flows": {"implicit": {"authorizationUrl": "https://a/auth", "scopes": {"r": "read"}}}},
    ),
    (
        "oauth2 password",
        _doc(
            securityDefinitions={"o": {"type": "oauth2", "flow": "password", "tokenUrl": "https://a/tok", "scopes": {}}}
        ),
        ("components", "securitySchemes", "o", "flows"),
        {"password": {"tokenUrl": "https://a/tok", "scopes": {}}},
    ),
    (
        "oauth2 application -> clientCredentials",
        _doc(
            securityDefinitions={
                "o": {"type": "oauth2", "flow": "application", "tokenUrl": "https://a/tok", "scopes": {"w": "write"}}
            }
        ),
        ("components", "securitySchemes", "o", "flows"),
        {"clientCredentials": {"tokenUrl": "https://a/tok", "scopes": {"w": "write"}}},
    ),
    (
        "oauth2 accessCode -> authorizationCode",
        _doc(
            securityDefinitions={
                "o": {
                    "type": "oauth2",
                    "flow": "accessCode",
                    "authorizationUrl": "https://a/auth",
                    "tokenUrl": "https://a/tok",
                    "scopes": {},
                }
            }
        ),
        ("components", "securitySchemes", "o", "flows"),
        {"authorizationCode": {"authorizationUrl": "https://a/auth", "tokenUrl": "https://a/tok", "scopes": {}}},
    ),
    (
        "security requirements kept",
        _doc(security=[{"o": ["r"]}], paths={"/s": {"get": _op(security=[])}}),
        ("paths", "/s", "get", "security"),
        [],
    ),
    (
        "discriminator string -> object",
        _doc(
            definitions={
                "Pet": {"type": "object", "discriminator": "petType", "properties": {"petType": {"type": "string"}}}
            }
        ),
        ("components", "schemas", "Pet", "discriminator"),
        {"propertyName": "petType"},
    ),
    (
        "x-nullable -> nullable",
        _doc(definitions={"A": {"type": "object", "properties": {"n": {"type": "string", "x-nullable": True}}}}),
        ("components", "schemas", "A", "properties", "n"),
        {"type": "string", "nullable": True},
    ),
    (
        "x- extensions kept on the document, paths, operations, parameters, schemas",
        _doc(
            **{"x-doc": 1},
            definitions={"A": {"type": "string", "x-schema": 5}},
            paths={
                "/x": {
                    "x-item": 2,
                    "get": _op({"name": "q", "in": "query", "type": "string", "x-param": 4}, **{"x-op": 3}),
                }
            },
        ),
        (),
        None,  # checked below
    ),
]


@pytest.mark.parametrize(("rule", "source", "where", "expected"), CASES, ids=[c[0] for c in CASES])
def test_conversion_rule(rule: str, source: dict[str, Any], where: tuple[Any, ...], expected: Any) -> None:
    before = copy.deepcopy(source)
    out = convert_swagger2(source)
    assert source == before  # the input is not touched
    if expected is None:
        assert out["x-doc"] == 1
        assert out["paths"]["/x"]["x-item"] == 2
        assert out["paths"]["/x"]["get"]["x-op"] == 3
        assert out["paths"]["/x"]["get"]["parameters"][0]["x-param"] == 4
        assert out["components"]["schemas"]["A"]["x-schema"] == 5
        return
    assert _at(out, *where) == expected


def test_converted_documents_pass_the_diffs_spec_check_and_keep_every_operation() -> None:
    for name in ("jupyter_server_api.yaml", "petstore.json"):
        source = _load(name)
        out = convert_swagger2(source)
        n_source = sum(
            1
            for item in source["paths"].values()
            for m in item
            if m in ("get", "put", "post", "delete", "options", "head", "patch")
        )
        assert count_operations(out) == n_source > 10
        assert not any("definitions" in json.dumps(v) for v in _refs(out))


def _refs(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                found.append(v)
            else:
                found.extend(_refs(v))
    elif isinstance(node, list):
        for v in node:
            found.extend(_refs(v))
    return found


def test_every_ref_of_a_real_spec_resolves_after_conversion() -> None:
    for name in ("jupyter_server_api.yaml", "petstore.json"):
        out = convert_swagger2(_load(name))
        refs = _refs(out)
        assert refs
        for ref in refs:
            node: Any = out
            for token in ref[2:].split("/"):
                node = node[token]
            assert isinstance(node, dict), ref


@pytest.mark.parametrize("name", ["jupyter_server_api.yaml", "petstore.json"])
def test_a_real_spec_against_itself_has_no_changes(name: str) -> None:
    spec = _load(name)
    assert diff_openapi(convert_swagger2(spec), convert_swagger2(copy.deepcopy(spec)), today=TODAY) == []


def _found(old: dict[str, Any], new: dict[str, Any]) -> set[tuple[str, Level, str, str]]:
    return {
        (c.rule, c.level, c.method, c.path)
        for c in diff_openapi(convert_swagger2(old), convert_swagger2(new), today=TODAY)
    }


def test_a_modified_real_spec_gives_the_expected_rules() -> None:
    old = _load("jupyter_server_api.yaml")
    new = copy.deepcopy(old)
    del new["paths"]["/api/sessions/{session}"]["delete"]  # a removed operation
    for p in new["paths"]["/api/resolvePath"]["parameters"]:  # a path-level parameter newly required
        if p["name"] == "kernel":
            p["required"] = True
    del new["definitions"]["Kernel"]["properties"]["last_activity"]  # a removed response property
    new["definitions"]["Kernel"]["properties"]["connections"]["type"] = "string"  # a changed type
    found = _found(old, new)
    assert ("operation-removed", Level.ERR, "DELETE", "/api/sessions/{session}") in found
    assert ("request-parameter-became-required", Level.ERR, "GET", "/api/resolvePath") in found
    assert ("response-property-removed", Level.ERR, "GET", "/api/kernels/{kernel_id}") in found
    assert ("response-type-changed", Level.ERR, "GET", "/api/kernels/{kernel_id}") in found
    # The Kernel schema is also in a session's request body: there the same edits are judged as requests.
    assert {c[0] for c in found} <= {
        "operation-removed",
        "request-parameter-became-required",
        "response-property-removed",
        "response-type-changed",
        "request-property-removed",
        "request-type-changed",
    }


def test_a_modified_petstore_gives_the_expected_rules() -> None:
    old = _load("petstore.json")
    new = copy.deepcopy(old)
    upload = new["paths"]["/pet/{petId}/uploadImage"]["post"]
    for p in upload["parameters"]:
        if p["name"] == "additionalMetadata":  # a formData field made required
            p["required"] = True
    new["paths"]["/pet/findByStatus"]["get"]["parameters"][0]["items"]["enum"].remove("sold")  # an enum value gone
    new["securityDefinitions"]["api_key"]["in"] = "query"  # a security scheme moved
    new["definitions"]["Pet"]["properties"]["id"]["type"] = "string"  # a changed type
    found = _found(old, new)
    assert ("request-property-became-required", Level.ERR, "POST", "/pet/{petId}/uploadImage") in found
    assert ("request-enum-value-removed", Level.ERR, "GET", "/pet/findByStatus") in found
    assert ("security-scheme-changed", Level.ERR, "", "") in found
    assert ("response-type-changed", Level.ERR, "GET", "/pet/{petId}") in found
    assert ("request-type-changed", Level.ERR, "POST", "/pet") in found


def test_a_harmless_edit_of_the_2_0_document_stays_silent() -> None:
    old = _load("petstore.json")
    new = copy.deepcopy(old)
    new["info"]["description"] = "reworded"
    new["paths"]["/pet"]["post"]["summary"] = "reworded"
    new["paths"]["/pet/findByStatus"]["get"]["parameters"][0]["description"] = "reworded"
    new["definitions"]["Pet"]["properties"]["name"]["example"] = "rex"
    assert _found(old, new) == set()


def test_detection_and_passthrough() -> None:
    two = _doc()
    three = {"openapi": "3.0.3", "info": {}, "paths": {}}
    assert is_swagger2(two) and not is_swagger2(three) and not is_swagger2(["swagger"])
    assert as_openapi3(three) is three
    assert as_openapi3(two)["openapi"] == OPENAPI_VERSION


@pytest.mark.parametrize(
    "bad",
    [
        {"openapi": "3.0.0", "paths": {}},
        {"swagger": "1.2", "paths": {}},
        ["swagger", "2.0"],
        {"swagger": "2.0", "paths": ["not", "a", "mapping"]},
    ],
)
def test_what_is_not_swagger_2_is_a_spec_error(bad: Any) -> None:
    with pytest.raises(SpecError):
        convert_swagger2(bad)


def test_a_cyclic_or_absurdly_deep_schema_is_a_spec_error_not_a_crash() -> None:
    cyclic: dict[str, Any] = {"type": "object"}
    cyclic["properties"] = {"self": cyclic}  # what a YAML alias to an ancestor makes
    with pytest.raises(SpecError):
        convert_swagger2(_doc(definitions={"A": cyclic}))
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(1000):
        deep = {"type": "array", "items": deep}
    with pytest.raises(SpecError):
        convert_swagger2(_doc(definitions={"A": deep}))


def test_an_unresolvable_parameter_ref_is_kept_for_the_diff_to_report() -> None:
    out = convert_swagger2(_doc(paths={"/q": {"get": _op({"$ref": "#/parameters/missing"})}}))
    assert out["paths"]["/q"]["get"]["parameters"] == [{"$ref": "#/components/parameters/missing"}]
    other = copy.deepcopy(out)
    changes = diff_openapi(out, other, today=TODAY)
    assert [c.rule for c in changes] == ["unresolved-ref", "unresolved-ref"]


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=5)
    | st.sampled_from(["body", "formData", "query", "file", "array", "#/parameters/p", "#/definitions/D"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["in", "name", "type", "schema", "items", "$ref", "required", "x-a", "collectionFormat", "flow", "200"]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    where=st.sampled_from(
        [
            "parameters",
            "op_parameters",
            "responses",
            "definitions",
            "securityDefinitions",
            "path_item",
            "op",
            "schemes",
            "consumes",
        ]
    ),
    junk=_JSON,
)
def test_malformed_2_0_input_converts_or_is_a_spec_error_never_a_crash(where: str, junk: Any) -> None:
    doc = _doc(paths={"/a/{id}": {"get": _op({"name": "id", "in": "path", "type": "string"})}})
    if where == "op_parameters":
        doc["paths"]["/a/{id}"]["get"]["parameters"] = junk
    elif where == "path_item":
        doc["paths"]["/a/{id}"]["parameters"] = junk
    elif where == "op":
        doc["paths"]["/a/{id}"]["post"] = junk
    else:
        doc[where] = junk
    try:
        out = convert_swagger2(doc)
    except SpecError:
        return
    json.dumps(out)  # plain data
    diff_openapi(out, copy.deepcopy(out), today=TODAY)  # and the diff can read it


def test_the_report_says_a_swagger_2_specs_locations_are_of_its_openapi_3_form(tmp_path: Path) -> None:
    # Found against jupyter_server's Swagger 2.0 spec: the changes' locations (responses/200/content/
    # application~1json/...) do not exist in the user's file, and nothing said why.
    from stability_lib.contract.spec_source import FileSource, load_spec
    from stability_lib.core.models import SectionResult, Status
    from stability_lib.report.views import section_parts

    loaded = load_spec(FileSource(file=str(FIXTURES / "petstore.json")), default_url=None, base_dir=tmp_path)
    assert loaded.serialize()["converted_from"] == "Swagger 2.0"
    data = {"openapi": {"baseline": loaded.serialize(), "candidate": loaded.serialize(), "changes": []}}
    html = "".join(p for p in section_parts(SectionResult("contract", Status.PASS, (), data)) if isinstance(p, str))
    assert "Swagger 2.0, compared in its OpenAPI 3.0 form: locations name that form" in html.replace("<wbr>", "")
