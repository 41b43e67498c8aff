"""The scenario is data: validation that names the field, and a renderer that never evaluates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from stability_lib import load_params
from stability_lib._params import resolve_env
from stability_lib._errors import ParamsError
from stability_lib._scenario import (
    MISSING,
    AuthConfig,
    ScenarioConfig,
    TemplateError,
    TokenDelivery,
    WsStep,
    extract_path,
    is_template_field,
    render_template,
    template_placeholders,
)

WS_STEP: dict[str, Any] = {
    "kind": "ws",
    "name": "agent_session",
    "path": "/ws",
    "send": {"type": "user_message", "thread_id": "{thread_id}", "content": "hello {nonce}"},
    "expect": ["agent_started", {"type": "agent_completed", "timeout_s": 3}],
    "end_event": "final_response",
}
HTTP_STEP: dict[str, Any] = {
    "kind": "http",
    "name": "create_thread",
    "path": "/api/threads",
    "body": {"title": "t {nonce}"},
    "expect_status": 201,
    "capture": {"thread_id": "id"},
}


def raw_scenario(**over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "auth": {
            "register": {"path": "/api/auth/register", "body": {"username": "{username}", "password": "{password}"}},
            "login": {"path": "/api/auth/login", "body": {"username": "{username}", "password": "{password}"}},
        },
        "users": {"password": "pw-123456", "count": 2},
        "golden_path": {"steps": [HTTP_STEP, WS_STEP]},
    }
    raw.update(over)
    return raw


def test_a_full_scenario_validates_with_defaults() -> None:
    sc = ScenarioConfig.model_validate(raw_scenario())
    assert sc.auth.registration is not None and sc.auth.registration.path == "/api/auth/register"
    assert sc.auth.ws_token_via is TokenDelivery.HEADER
    assert sc.golden_path.steps[0].expect_status == [201]  # a single int becomes a list
    ws = sc.soak_step()
    assert isinstance(ws, WsStep) and ws.final_event == "final_response"
    assert [(e.type, e.timeout_s) for e in ws.expect] == [("agent_started", 10.0), ("agent_completed", 3.0)]
    assert [s.name for s in sc.steps_before("agent_session")] == ["create_thread"]
    assert sc.tolerated_failure_rate == 0.01 and sc.confidence == 0.95


def test_the_password_does_not_show_in_repr_or_dump() -> None:
    sc = ScenarioConfig.model_validate(raw_scenario())
    assert "pw-123456" not in repr(sc)
    assert "pw-123456" not in str(sc.model_dump())


def test_unknown_keys_are_refused_with_their_path() -> None:
    raw = raw_scenario()
    raw["soak"] = {"sessions": 10, "sesions": 3}
    with pytest.raises(ValidationError, match="sesions"):
        ScenarioConfig.model_validate(raw)


@pytest.mark.parametrize(("field", "value"), [("sessions", 5001), ("concurrency", 201), ("duration_s", 901)])
def test_soak_caps_name_the_field_and_can_be_lifted(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=f"soak.{field}"):
        ScenarioConfig.model_validate(raw_scenario(soak={field: value}))
    sc = ScenarioConfig.model_validate(raw_scenario(soak={field: value, "allow_over_caps": True}))
    assert getattr(sc.soak, field) == value


def test_even_allow_over_caps_has_a_hard_limit() -> None:
    with pytest.raises(ValidationError, match="hard limit"):
        ScenarioConfig.model_validate(raw_scenario(soak={"sessions": 10**6, "allow_over_caps": True}))


def test_a_step_using_a_variable_no_earlier_step_captures_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"agent_session.*thread_id"):
        ScenarioConfig.model_validate(raw_scenario(golden_path={"steps": [WS_STEP, HTTP_STEP]}))


def test_duplicate_step_names_and_unknown_soak_step_are_refused() -> None:
    with pytest.raises(ValidationError, match="unique"):
        ScenarioConfig.model_validate(raw_scenario(golden_path={"steps": [HTTP_STEP, HTTP_STEP, WS_STEP]}))
    with pytest.raises(ValidationError, match="soak.ws_step"):
        ScenarioConfig.model_validate(raw_scenario(soak={"ws_step": "nope"}))


def test_auth_formats_may_only_use_the_token() -> None:
    with pytest.raises(ValidationError, match="header_format"):
        AuthConfig.model_validate({"header_format": "Bearer {password}"})


def test_users_generated_names_are_unique_per_run_or_taken_from_a_list() -> None:
    sc = ScenarioConfig.model_validate(raw_scenario())
    assert sc.users.usernames("ab12") == ["stability-user-ab12-0", "stability-user-ab12-1"]
    fixed = ScenarioConfig.model_validate(raw_scenario(users={"password": "x" * 8, "count": 2, "names": ["a", "b", "c"]}))
    assert fixed.users.usernames("ignored") == ["a", "b"]
    with pytest.raises(ValidationError, match="users.count"):
        ScenarioConfig.model_validate(raw_scenario(users={"password": "x" * 8, "count": 51}))


def test_render_fills_placeholders_and_keeps_a_whole_placeholder_typed() -> None:
    template = {"thread_id": "{thread_id}", "content": "hi {nonce} {{literal}}", "n": 3, "list": ["{nonce}"]}
    out = render_template(template, {"thread_id": 42, "nonce": "nonce-1"})
    assert out == {"thread_id": 42, "content": "hi nonce-1 {literal}", "n": 3, "list": ["nonce-1"]}


@pytest.mark.parametrize("template", ["{missing}", "a {0.__class__}", "{nonce.__class__}", "{nonce[0]}", "x { y"])
def test_render_never_evaluates_and_refuses_unknown_or_malformed(template: str) -> None:
    with pytest.raises(TemplateError):
        render_template(template, {"nonce": "n"})
    assert issubclass(TemplateError, ParamsError)


def test_placeholders_are_listed_from_nested_templates() -> None:
    assert template_placeholders({"a": ["{x}", "{{y}}"], "{k}": "z {w}"}) == {"x", "k", "w"}


def test_extract_path_reads_dotted_json_and_reports_missing() -> None:
    data = {"data": {"items": [{"id": 7}]}, "access_token": "t"}
    assert extract_path(data, "access_token") == "t"
    assert extract_path(data, "data.items.0.id") == 7
    assert extract_path(data, "data.items.5.id") is MISSING
    assert extract_path(data, "nope") is MISSING


def test_users_count_has_a_hard_ceiling_even_with_allow_over_caps() -> None:
    ok = ScenarioConfig.model_validate(raw_scenario(users={"password": "x" * 8, "count": 500, "allow_over_caps": True}))
    assert ok.users.count == 500
    with pytest.raises(ValidationError, match="users.count=501 is over the hard limit of 500"):
        ScenarioConfig.model_validate(raw_scenario(users={"password": "x" * 8, "count": 501, "allow_over_caps": True}))
    with pytest.raises(ValidationError, match="hard limit"):
        ScenarioConfig.model_validate(raw_scenario(golden_path={"steps": [HTTP_STEP, WS_STEP], "repetitions": 10**6,
                                                                "allow_over_caps": True}))


# --- environment values are data, never templates (issue 11, item 7) ----------------------------

PARAMS_WITH_SECRETS_IN_TEMPLATES = """
title: t
target: {base_url: "http://127.0.0.1:9"}
scenario:
  auth:
    login: {path: "/login/${S}", body: {key: "${S}", both: "{username} ${S}"}, headers: {X-Key: "${S}"}}
    header_format: "Bearer {token} ${S}"
  users: {password: "${S}", count: 2}
  golden_path:
    steps:
      - {kind: http, name: h, path: "/p/${S}", headers: {X-Key: "k ${S}"}, body: ["${S}"], capture: {}}
      - {kind: ws, name: w, path: "/ws/${S}", send: {content: "{nonce} ${S}"}, end_event: done}
"""


@pytest.mark.parametrize("secret", ["a{b", "{token}", "}}", "{{username}}", "{nonce}x{"])
def test_environment_values_render_exactly_as_they_are(tmp_path: Path, secret: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(PARAMS_WITH_SECRETS_IN_TEMPLATES)
    params, _ = load_params(path, env={"S": secret})
    sc = params.scenario
    context = {"username": "u1", "token": "T", "nonce": "N"}
    assert sc.auth.login is not None
    assert render_template(sc.auth.login.path, context) == f"/login/{secret}"
    assert render_template(sc.auth.login.body, context) == {"key": secret, "both": f"u1 {secret}"}
    assert render_template(sc.auth.login.headers, context) == {"X-Key": secret}
    assert render_template(sc.auth.header_format, context) == f"Bearer T {secret}"
    http, ws = sc.golden_path.steps
    assert render_template(http.path, context) == f"/p/{secret}"
    assert render_template(http.headers, context) == {"X-Key": f"k {secret}"}
    assert render_template(http.body, context) == [secret]
    assert render_template(ws.path, context) == f"/ws/{secret}"
    assert render_template(ws.send, context) == {"content": f"N {secret}"}
    assert sc.users.password.get_secret_value() == secret  # not a template field: not escaped


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("scenario.auth.login.body.password", True),
        ("scenario.auth.register.path", True),
        ("scenario.auth.header_format", True),
        ("scenario.golden_path.steps[3].send[0].x", True),
        ("scenario.golden_path.steps[0].headers.X-Api-Key", True),
        ("scenario.users.password", False),
        ("scenario.auth.token_path", False),
        ("scenario.golden_path.steps[0].capture.id", False),
        ("scenario.auth.login.bodyx", False),
        ("target.base_url", False),
    ],
)
def test_template_fields_are_exactly_those_the_renderer_sees(where: str, expected: bool) -> None:
    assert is_template_field(where) is expected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_any_environment_value_renders_as_itself_in_every_template_field(value: str) -> None:
    raw = {"scenario": {"auth": {"header_format": "Bearer {token} ${S}"},
                        "golden_path": {"steps": [{"path": "${S}", "headers": {"X": "a ${S} {nonce}"}}]}}}
    resolved = resolve_env(raw, {"S": value})
    step = resolved["scenario"]["golden_path"]["steps"][0]
    context = {"token": "T", "nonce": "N"}
    assert render_template(step["path"], context) == value
    assert render_template(step["headers"], context) == {"X": f"a {value} N"}
    assert render_template(resolved["scenario"]["auth"]["header_format"], context) == f"Bearer T {value}"
