"""Property-based tests (Hypothesis) of the parsers and the template renderer (issue 11).

Each property is one a user relies on: a parser given anything raises only our own error,
never a crash; counts match what was generated; a spec diffed with itself has no change;
an environment value is data, never a template. Examples are few (a settings profile) so the
file runs in seconds.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stability_lib.contract.openapi_diff import SpecError, diff_openapi
from stability_lib.contract.spec_source import parse_spec_bytes
from stability_lib.core.errors import ParamsError
from stability_lib.execution.params import load_params
from stability_lib.probes.scenario import TemplateError, render_template
from stability_lib.suites.junit import JUnitParseError, TestOutcome, parse_junit

settings.register_profile(
    "stability",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("stability")

# XML 1.0 allows these characters in text and attributes; others are refused by any parser.
xml_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00", min_codepoint=0x20), max_size=30
)
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)
identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)


# --------------------------------------------------------------------------- JUnit


@given(st.binary(max_size=2000))
def test_junit_parser_on_arbitrary_bytes_raises_only_its_own_error(data: bytes) -> None:
    try:
        report = parse_junit(data, source="fuzz")
    except JUnitParseError:
        return
    assert report.total == len(report.cases)


@given(st.text(max_size=500))
def test_junit_parser_on_arbitrary_text_in_a_testsuite_raises_only_its_own_error(text: str) -> None:
    with contextlib.suppress(JUnitParseError):
        parse_junit(f"<testsuite>{text}</testsuite>".encode("utf-8", "surrogatepass"), source="fuzz")


outcomes = st.sampled_from(["passed", "failure", "error", "skipped"])


@given(st.lists(st.tuples(names, names, outcomes, xml_text), max_size=25), st.booleans())
def test_junit_counts_equal_the_testcases_generated(cases: list[tuple[str, str, str, str]], wrapped: bool) -> None:
    body = []
    for classname, name, outcome, message in cases:
        inner = "" if outcome == "passed" else f"<{outcome} message={quoteattr(message)}/>"
        body.append(f'<testcase classname={quoteattr(classname)} name={quoteattr(name)} time="0.1">{inner}</testcase>')
    doc = f'<testsuite name="s">{"".join(body)}</testsuite>'
    if wrapped:
        doc = f"<testsuites>{doc}</testsuites>"
    report = parse_junit(doc.encode())
    expected = {o: sum(1 for c in cases if c[2] == o) for o in ("passed", "failure", "error", "skipped")}
    assert report.total == len(cases)
    assert report.passed == expected["passed"]
    assert report.failed == expected["failure"]
    assert report.errors == expected["error"]
    assert report.skipped == expected["skipped"]
    assert [c.outcome is TestOutcome.PASSED for c in report.cases] == [c[2] == "passed" for c in cases]


# --------------------------------------------------------------------------- OpenAPI


@given(st.binary(max_size=2000))
def test_spec_loader_on_arbitrary_bytes_raises_only_spec_error(data: bytes) -> None:
    with contextlib.suppress(SpecError):
        parse_spec_bytes(data, origin="fuzz")


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.text(max_size=8))
json_value = st.recursive(
    json_leaf,
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=6), kids, max_size=3)),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=10), json_value, max_size=5))
def test_spec_loader_on_arbitrary_yaml_mappings_raises_only_spec_error(doc: dict[str, Any]) -> None:
    with contextlib.suppress(SpecError):
        parse_spec_bytes(yaml.safe_dump({"openapi": "3.0.0", **doc}).encode(), origin="fuzz")


schemas = st.recursive(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["string", "integer", "number", "boolean"])},
        optional={
            "format": st.sampled_from(["date", "int64", "email"]),
            "enum": st.lists(st.integers(0, 5), min_size=1, max_size=3, unique=True),
            "minimum": st.integers(0, 10),
            "maxLength": st.integers(1, 50),
            "nullable": st.booleans(),
        },
    ),
    lambda inner: st.one_of(
        st.fixed_dictionaries(
            {"type": st.just("object"), "properties": st.dictionaries(names, inner, max_size=3)},
            optional={"required": st.lists(names, max_size=2, unique=True)},
        ),
        st.fixed_dictionaries({"type": st.just("array"), "items": inner}),
    ),
    max_leaves=6,
)
parameters = st.lists(
    st.fixed_dictionaries(
        {"name": names, "in": st.sampled_from(["query", "header"]), "required": st.booleans(), "schema": schemas}
    ),
    max_size=3,
    unique_by=lambda p: (p["name"], p["in"]),
)
operations = st.fixed_dictionaries(
    {
        "responses": st.dictionaries(
            st.sampled_from(["200", "201", "400", "404"]),
            st.fixed_dictionaries(
                {
                    "description": st.just("r"),
                    "content": st.fixed_dictionaries({"application/json": st.fixed_dictionaries({"schema": schemas})}),
                }
            ),
            min_size=1,
            max_size=2,
        )
    },
    optional={
        "parameters": parameters,
        "requestBody": st.fixed_dictionaries(
            {"content": st.fixed_dictionaries({"application/json": st.fixed_dictionaries({"schema": schemas})})}
        ),
        "deprecated": st.booleans(),
    },
)
specs = st.fixed_dictionaries(
    {
        "openapi": st.sampled_from(["3.0.3", "3.1.0"]),
        "info": st.fixed_dictionaries({"title": st.text(max_size=10), "version": st.just("1")}),
        "paths": st.dictionaries(
            names.map(lambda n: f"/{n}"),
            st.dictionaries(st.sampled_from(["get", "post", "put", "delete"]), operations, min_size=1, max_size=2),
            max_size=3,
        ),
    }
)


@settings(max_examples=30)
@given(specs)
def test_a_spec_diffed_with_itself_has_no_changes(spec: dict[str, Any]) -> None:
    loaded = parse_spec_bytes(json.dumps(spec).encode())
    assert diff_openapi(loaded, json.loads(json.dumps(spec))) == []
    assert parse_spec_bytes(yaml.safe_dump(spec).encode()) == loaded  # JSON and YAML read alike


@settings(max_examples=30)
@given(specs, specs)
def test_diff_of_two_specs_never_raises_anything_but_spec_error(old: dict[str, Any], new: dict[str, Any]) -> None:
    with contextlib.suppress(SpecError):
        diff_openapi(old, new)


# --------------------------------------------------------------------------- params


BASE_PARAMS = "title: p\ntarget: {base_url: 'http://127.0.0.1:9'}\n"


@pytest.fixture(scope="module")
def params_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


@given(st.binary(max_size=1500))
def test_params_loader_on_arbitrary_bytes_raises_only_params_error(params_dir: Path, data: bytes) -> None:
    path = params_dir / "fuzz.yaml"
    path.write_bytes(data)
    with contextlib.suppress(ParamsError):
        load_params(path, env={})


@given(
    st.dictionaries(
        st.sampled_from(["title", "target", "sections", "scenario", "runner", "checks", "environment", "x"]),
        json_value,
        max_size=5,
    )
)
def test_params_loader_on_arbitrary_yaml_raises_only_params_error(params_dir: Path, doc: dict[str, Any]) -> None:
    path = params_dir / "fuzz.yaml"
    path.write_text(yaml.safe_dump(doc))
    with contextlib.suppress(ParamsError):
        load_params(path, env={})


@given(st.lists(st.text(alphabet="abc.=[]{}:${} \n-1", max_size=20), max_size=3))
def test_params_overrides_raise_only_params_error(params_dir: Path, overrides: list[str]) -> None:
    path = params_dir / "base.yaml"
    path.write_text(BASE_PARAMS)
    with contextlib.suppress(ParamsError):
        load_params(path, overrides=overrides, env={})


# --------------------------------------------------------------------------- the template renderer


secret_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@given(secret_text)
def test_an_environment_value_with_braces_is_never_interpreted_as_a_template(params_dir: Path, value: str) -> None:
    """Issue 11, item 7: a secret holding '{token}' was silently altered, one holding '{' failed the step."""
    path = params_dir / "template.yaml"
    path.write_text(
        BASE_PARAMS + "scenario:\n"
        "  auth:\n"
        "    login: {method: POST, path: /login, body: {password: '${PW}', user: '{username}'}, headers: {X-Key: 'k ${PW} k'}}\n"
        "    token_path: t\n"
        "  users: {password: '${PW}', count: 1}\n"
        "  golden_path:\n"
        "    steps:\n"
        "      - {kind: http, name: s, method: GET, path: '/items/${PW}', expect_status: 200}\n"
    )
    params, _ = load_params(path, env={"PW": value})
    context = {"username": "u1", "password": value, "token": "T", "nonce": "n"}
    login = params.scenario.auth.login
    assert render_template(login.body, context) == {"password": value, "user": "u1"}
    assert render_template(login.headers, context) == {"X-Key": f"k {value} k"}
    assert render_template(params.scenario.golden_path.steps[0].path, context) == f"/items/{value}"


@given(st.dictionaries(identifiers, st.one_of(st.text(max_size=20), st.integers()), max_size=4), st.text(max_size=30))
def test_rendering_substitutes_values_verbatim_and_never_renders_them_again(
    context: dict[str, Any], literal: str
) -> None:
    """A value that looks like a placeholder stays as it is: rendering is one pass."""
    context = {**context, "evil": "{" + next(iter(context), "x") + "}"}
    escaped = literal.replace("{", "{{").replace("}", "}}")
    template = {"a": f"{escaped}{{evil}}", "list": [f"{{{k}}}" for k in context], "n": 3}
    rendered = render_template(template, context)
    assert rendered["a"] == literal + context["evil"]
    assert rendered["list"] == [context[k] for k in context]  # a whole-string placeholder keeps its type
    assert rendered["n"] == 3


@given(st.text(max_size=30))
def test_rendering_raises_only_template_error(template: str) -> None:
    with contextlib.suppress(TemplateError):
        render_template({"k": template}, {"username": "u"})
