"""The scenario is data: validation that names the field, and a renderer that never evaluates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from stability_lib import load_params
from stability_lib.core.errors import ParamsError
from stability_lib.execution.params import resolve_env
from stability_lib.probes.scenario import (
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
    fixed = ScenarioConfig.model_validate(
        raw_scenario(users={"password": "x" * 8, "count": 2, "names": ["a", "b", "c"]})
    )
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
        ScenarioConfig.model_validate(
            raw_scenario(golden_path={"steps": [HTTP_STEP, WS_STEP], "repetitions": 10**6, "allow_over_caps": True})
        )


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
    raw = {
        "scenario": {
            "auth": {"header_format": "Bearer {token} ${S}"},
            "golden_path": {"steps": [{"path": "${S}", "headers": {"X": "a ${S} {nonce}"}}]},
        }
    }
    resolved = resolve_env(raw, {"S": value})
    step = resolved["scenario"]["golden_path"]["steps"][0]
    context = {"token": "T", "nonce": "N"}
    assert render_template(step["path"], context) == value
    assert render_template(step["headers"], context) == {"X": f"a {value} N"}
    assert render_template(resolved["scenario"]["auth"]["header_format"], context) == f"Bearer T {value}"


# --- issue 13: conversations, validation at load, static auth, setup/finally -----------------------

CONV_STEP: dict[str, Any] = {
    "kind": "ws",
    "name": "rpc",
    "path": "/rpc",
    "ids": {"echo_id": "string"},
    "conversation": [
        {"send": {"jsonrpc": "2.0", "id": "{echo_id}", "method": "echo", "params": {"text": "{nonce}"}}},
        {
            "expect": {
                "correlate": [{"id": "{echo_id}"}],
                "match": {"jsonrpc": "2.0"},
                "check": {"result.text": "{nonce}"},
                "capture": {"echoed": "result.text"},
            }
        },
    ],
}


def conv_scenario(step: dict[str, Any], **over: Any) -> dict[str, Any]:
    return raw_scenario(golden_path={"steps": [HTTP_STEP, step]}, **over)


def refused(raw: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        ScenarioConfig.model_validate(raw)
    return str(info.value)


def with_expect(**expect: Any) -> dict[str, Any]:
    conversation = [CONV_STEP["conversation"][0], {"expect": expect}]
    return {**CONV_STEP, "conversation": conversation}


def test_a_conversation_step_validates_and_its_captures_feed_later_steps() -> None:
    later = {**HTTP_STEP, "name": "after", "path": "/x/{echoed}"}
    sc = ScenarioConfig.model_validate(raw_scenario(golden_path={"steps": [HTTP_STEP, CONV_STEP, later]}))
    ws = sc.golden_path.steps[1]
    assert isinstance(ws, WsStep) and ws.captures() == {"echoed"} and not ws.is_legacy
    (stream,) = ws.conversation[1].expect.streams  # type: ignore[union-attr]
    assert stream.name == "reply" and stream.correlate == [{"id": "{echo_id}"}]


def test_the_old_ws_form_is_translated_into_a_conversation_and_keeps_its_fields() -> None:
    ws = ScenarioConfig.model_validate(raw_scenario()).soak_step()
    assert ws is not None and ws.is_legacy and ws.final_event == "final_response"
    send, expect = ws.conversation
    assert send.send == WS_STEP["send"] and expect.expect is not None
    items = expect.expect.streams[0].ordered
    assert [i.match for i in items] == [
        {"type": "agent_started"},
        {"type": "agent_completed"},
        {"type": "final_response"},
    ]
    assert [i.timeout_s for i in items] == [10.0, 3.0, 10.0]
    assert [(r.name, r.match) for r in ws.fail_on] == [("error", {"type": "error"})]


def test_old_and_new_ws_keys_together_are_refused() -> None:
    assert "mutually exclusive" in refused(conv_scenario({**CONV_STEP, "send": {"x": 1}}))


def test_a_dotted_event_type_key_is_a_real_path() -> None:
    ws = WsStep.model_validate({**WS_STEP, "event_type_key": "header.msg_type"})
    assert ws.label_paths == ["header.msg_type"]
    assert ws.conversation[1].expect.streams[0].ordered[0].match == {"header.msg_type": "agent_started"}  # type: ignore[union-attr]
    assert "empty segment" in str(
        pytest.raises(ValidationError, WsStep.model_validate, {**WS_STEP, "event_type_key": "header..msg_type"}).value
    )


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        ({"match": {"type": "next", "type.x": 1}}, "'type.x' can never match: 'type' is required to be a scalar"),
        ({"match": {"a": {"type": "string"}}, "check": {"a.b": 1}}, "'a.b' can never match"),
        ({"match": {"a": {"exists": False}}, "check": {"a.b": 1}}, "'a' can never match: it must be absent"),
        ({"match": {"a": 1}, "check": {"a": 2}}, "required to equal 1 and 2"),
        ({"match": {"a": {"type": "object"}}, "check": {"a.0": 1}}, "'a' is an object"),
        ({"match": {"a": {"one_of": []}}}, "one_of needs a non-empty list"),
        ({"check": {"a": {"regex": "(x"}}}, "does not compile"),
        ({"check": {"a": {"regex": "(a+)+$"}}}, "nested quantifier"),
        ({"check": {"payload..data": 1}}, "path 'payload..data' has an empty segment"),
        ({"match": {"a.*": 1}}, "'*' is allowed only in check paths"),
        ({"check": {"a": {"min_count": 3}}, "match": {"b": {"max_count": 1}}}, None),
        ({"check": {"a": {"bigger": 3}}}, "exactly one operator"),
        ({"frame": "binary", "check": {"payload.data": 1}}, "binary frames have no JSON paths; use bytes:"),
    ],
)
def test_a_path_or_condition_that_can_never_match_is_refused_naming_the_field(
    expect: dict[str, Any], message: str | None
) -> None:
    raw = conv_scenario(with_expect(correlate=[{"id": "{echo_id}"}], **expect))
    if message is None:
        ScenarioConfig.model_validate(raw)  # different paths, nothing contradicts
        return
    error = refused(raw)
    assert message in error and "golden_path.steps.1.ws" in error


def test_an_unknown_placeholder_is_refused_with_the_closest_name() -> None:
    step = {
        **CONV_STEP,
        "conversation": [{"send": {"id": "{echo_id}", "text": "{sesion_id}"}}, CONV_STEP["conversation"][1]],
    }
    error = refused(conv_scenario(step))
    assert "golden_path.steps[1] ('rpc'): unknown placeholder {sesion_id}; did you mean {session_id}?" in error


def test_a_capture_used_before_the_expect_that_captures_it_is_refused() -> None:
    step = {
        **CONV_STEP,
        "conversation": [{"send": {"id": "{echo_id}", "text": "{echoed}"}}, CONV_STEP["conversation"][1]],
    }
    assert "conversation[0].send: placeholder {echoed} is used before the expect that captures it" in refused(
        conv_scenario(step)
    )


@pytest.mark.parametrize(
    ("correlate", "message"),
    [
        ([{"id": "constant"}], "correlate[0]['id']: correlates on a value with no id placeholder"),
        ([{"id": "{nonce}"}], "correlates on a value with no id placeholder"),
        ([{"id.": "{echo_id}"}], "has an empty segment"),
        ([{"id.*": "{echo_id}"}], "'*' is allowed only in check paths"),
    ],
)
def test_a_correlation_without_an_id_placeholder_is_refused(correlate: list[Any], message: str) -> None:
    assert message in refused(conv_scenario(with_expect(correlate=correlate, match={"jsonrpc": "2.0"})))


def test_a_correlation_on_an_id_not_yet_sent_and_an_id_sent_nowhere_are_refused() -> None:
    step = {**CONV_STEP, "ids": {"echo_id": "string", "other": "string"}}
    assert "ids: 'other' is listed under ids but sent nowhere" in refused(conv_scenario(step))
    early = {
        **step,
        "conversation": [
            *CONV_STEP["conversation"],
            {"send": {"id": "{other}"}},
            {"expect": {"correlate": [{"id": "{other}"}], "match": {}}},
        ],
    }
    ScenarioConfig.model_validate(conv_scenario(early))
    wrong = {
        **step,
        "conversation": [
            CONV_STEP["conversation"][0],
            {"expect": {"correlate": [{"id": "{other}"}], "match": {}}},
            {"send": {"id": "{other}"}},
            {"expect": {"match": {}}},
        ],
    }
    assert "nothing was sent with {other} before this expect" in refused(conv_scenario(wrong))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"conversation": [CONV_STEP["conversation"][0]]}, "must end with an expect"),
        ({"conversation": [{"send": {"a": 1}, "expect": {"match": {}}}]}, "exactly one of send"),
        ({"fail_on": [{"name": "Bad Name", "match": {"a": 1}}]}, "must match [a-z]"),
        ({"fail_on": [{"match": {"a": 1}}]}, "every rule needs a name"),
        ({"fail_on": [{"name": "x", "match": {"a": 1}}, {"name": "x", "match": {"b": 1}}]}, "names must be unique"),
        ({"subprotocols": ["a"], "require_subprotocol": "b"}, "require_subprotocol 'b' is not in subprotocols"),
        ({"label_paths": ["a..b"]}, "label_paths[0]: path 'a..b' has an empty segment"),
        (
            {"conversation": [{"send": {"id": "{echo_id}", "q": "{ x }"}}, CONV_STEP["conversation"][1]]},
            "conversation[0].send: unbalanced brace",
        ),
        (
            {"conversation": [{"send_binary": {"hex": "zz"}}, {"expect": {"frame": "binary", "match": {}}}], "ids": {}},
            "send_binary",
        ),
        (
            {
                "conversation": [
                    {"send_binary": {"random": 8}},
                    {"expect": {"frame": "binary", "check": {"bytes": {"equals_sent": "blob"}}}},
                ],
                "ids": {},
            },
            "no send_binary named 'blob'",
        ),
        (
            {
                "conversation": [
                    CONV_STEP["conversation"][0],
                    {
                        "expect": {
                            "streams": [
                                {"name": "s", "correlate": [{"id": "{echo_id}"}], "ordered": [{"match": {}}]},
                                {"name": "s", "ordered": [{"match": {}}]},
                            ]
                        }
                    },
                ]
            },
            "stream names must be unique",
        ),
        ({"frames": "text"}, "frames: text has no JSON paths"),
        (
            {
                "conversation": [
                    CONV_STEP["conversation"][0],
                    {"expect": {"match": {}, "timeout_s": 90, "correlate": [{"id": "{echo_id}"}]}},
                ],
                "timeout_s": 30,
            },
            "expect.timeout_s is over the step's timeout_s",
        ),
    ],
)
def test_conversation_structure_is_checked_at_load(change: dict[str, Any], message: str) -> None:
    assert message in refused(conv_scenario({**CONV_STEP, **change}))


STATIC: dict[str, Any] = {"mode": "static", "header_name": "X-API-Key", "header_format": "{token}"}
CREDENTIALS = [{"name": "alice", "token": "tok-a"}, {"name": "bob", "token": "tok-b"}]


def test_static_auth_needs_no_password_and_names_users_from_credentials() -> None:
    sc = ScenarioConfig.model_validate(
        conv_scenario(CONV_STEP, auth=STATIC, users={"count": 2, "credentials": CREDENTIALS})
    )
    assert sc.auth.effective_mode == "static" and sc.users.password is None
    assert sc.users.usernames("run1") == ["alice", "bob"]
    assert "tok-a" not in repr(sc) and "tok-a" not in str(sc.model_dump())


@pytest.mark.parametrize(
    "key",
    ["require_subprotocol", "max_frames", "final_send", "close_code", "ignore", "late_replies", "ids"],
)
def test_a_new_form_key_on_an_old_form_ws_step_is_refused_not_ignored(key: str) -> None:
    # The old form (send / expect / end_event) runs without the conversation machine, which alone reads them.
    value = {
        "require_subprotocol": "graphql-transport-ws",
        "max_frames": 5,
        "final_send": [{"type": "bye"}],
        "close_code": 4000,
        "ignore": [{"match": {"type": "note"}}],
        "late_replies": "ignore",
        "ids": {"req": "string"},
    }[key]
    old_form = {"kind": "ws", "name": "chat", "path": "/ws", "send": {"type": "hi"}, "end_event": "done", key: value}
    if key == "require_subprotocol":
        old_form["subprotocols"] = ["graphql-transport-ws"]
    assert f"the new keys ['{key}'] are mutually exclusive" in refused(conv_scenario(old_form))


def test_users_named_twice_is_refused() -> None:
    users = {"count": 2, "credentials": CREDENTIALS, "names": ["carol", "dave"]}  # names were ignored
    assert "users.names and users.credentials both name the users" in refused(
        conv_scenario(CONV_STEP, auth=STATIC, users=users)
    )


def test_a_ws_step_in_a_users_setup_is_refused_at_load_not_skipped() -> None:
    # A user's setup (scenario.setup, and soak.setup when it runs per user) runs HTTP steps only: a ws step
    # there was accepted and silently skipped, and what it would have captured was missing later.
    ws_setup = {**CONV_STEP, "name": "open_workspace"}
    message = refused(conv_scenario(CONV_STEP, setup=[ws_setup]))
    assert "setup[0] (open_workspace) is a ws step: a user's setup runs HTTP steps only" in message
    per_user = conv_scenario(CONV_STEP, soak={"setup": [ws_setup], "setup_scope": "per_user"})
    assert "soak.setup[0] (open_workspace) is a ws step" in refused(per_user)
    ScenarioConfig.model_validate(conv_scenario(CONV_STEP, soak={"setup": [ws_setup], "setup_scope": "per_session"}))


def test_on_the_baseline_a_static_user_with_a_baseline_token_uses_it() -> None:
    from stability_lib.probes.scenario import raw_scenario_on_side

    credentials = [{"name": "alice", "token": "tok-a", "baseline_token": "tok-a-base"}, CREDENTIALS[1]]
    raw = conv_scenario(CONV_STEP, auth=STATIC, users={"count": 2, "credentials": credentials})
    sc = ScenarioConfig.model_validate(raw)
    tokens = {
        side: [c.token.get_secret_value() for c in sc.on_side(side).users.credentials]
        for side in ("candidate", "baseline")
    }
    assert tokens == {"candidate": ["tok-a", "tok-b"], "baseline": ["tok-a-base", "tok-b"]}  # bob has no baseline_token
    assert sc.on_side("candidate") is sc
    raw_base = raw_scenario_on_side(raw, "baseline")  # for processes that resolve ${NAME} themselves (Locust)
    assert [c["token"] for c in raw_base["users"]["credentials"]] == ["tok-a-base", "tok-b"]
    assert raw_scenario_on_side(raw, "candidate") == raw and raw["users"]["credentials"][0]["token"] == "tok-a"


@pytest.mark.parametrize(
    ("auth", "users", "message"),
    [
        (STATIC, {"count": 2, "credentials": CREDENTIALS[:1]}, "users.count is 2 but users.credentials lists only 1"),
        (STATIC, {"count": 1}, "auth.mode static needs users.credentials"),
        ({**STATIC, "login": {"path": "/l"}}, {"count": 1, "credentials": CREDENTIALS}, "takes no register/login"),
        ({"login": {"path": "/l", "body": {"p": "{password}"}}}, {"count": 1}, "auth.login uses {password}"),
        ({}, {"count": 2, "credentials": CREDENTIALS}, "users.credentials is used only with auth.mode static"),
    ],
)
def test_auth_modes_are_checked_at_load(auth: dict[str, Any], users: dict[str, Any], message: str) -> None:
    assert message in refused(conv_scenario(CONV_STEP, auth=auth, users=users))


CLOSE_STEP = {"kind": "http", "method": "DELETE", "path": "/api/threads/{thread_id}", "expect_status": [204]}


def test_named_steps_setup_finally_and_soak_scope_validate_with_their_scopes() -> None:
    sc = ScenarioConfig.model_validate(
        raw_scenario(
            steps={"close_thread": CLOSE_STEP, "open": HTTP_STEP},
            golden_path={"steps": [{"ref": "open"}, WS_STEP], "finally": [{"ref": "close_thread"}]},
            soak={"setup_scope": "per_session", "setup": [{"ref": "open"}], "finally": [{"ref": "close_thread"}]},
            leftovers=[
                {
                    "kind": "http",
                    "name": "none_left",
                    "method": "GET",
                    "path": "/api/threads",
                    "check": {"items.*.title": {"not_contains": "t {nonce}"}},
                }
            ],
        )
    )
    assert sc.golden_path.finally_steps[0].name == "close_thread" and sc.soak.setup_scope == "per_session"
    assert sc.steps["open"].name == "create_thread" and sc.leftovers[0].name == "none_left"


@pytest.mark.parametrize(
    ("over", "message"),
    [
        (
            {
                "golden_path": {"steps": [HTTP_STEP, WS_STEP], "finally": [{"ref": "close_thred"}]},
                "steps": {"close_thread": CLOSE_STEP},
            },
            "golden_path.finally[0].ref: no step named 'close_thred' under scenario.steps (did you mean 'close_thread'?)",
        ),
        (
            {"golden_path": {"steps": [HTTP_STEP, WS_STEP]}, "teardown": [{**CLOSE_STEP, "name": "t"}]},
            "teardown[0] ('t'): unknown placeholder {thread_id}",
        ),
        (
            {
                "golden_path": {"steps": [HTTP_STEP, WS_STEP]},
                "soak": {"setup": [], "finally": [{**CLOSE_STEP, "name": "c"}]},
            },
            "soak.ws_step[0] ('agent_session'): unknown placeholder {thread_id}",
        ),
        ({"golden_path": {"steps": [{**HTTP_STEP, "check": {"a..b": 1}}, WS_STEP]}}, "check['a..b']: path"),
    ],
)
def test_setup_finally_and_refs_are_checked_at_load(over: dict[str, Any], message: str) -> None:
    assert message in refused(raw_scenario(**over))


def test_conversation_templates_are_template_fields_for_env_escaping() -> None:
    assert is_template_field("scenario.golden_path.steps[1].conversation[2].send.id")
    assert is_template_field("scenario.steps.open_session.body.query")
    assert is_template_field("scenario.golden_path.finally[0].path")
    assert not is_template_field("scenario.users.credentials[0].token")


MINIMAL_PARAMS = """
title: t
target: {{base_url: "http://127.0.0.1:9"}}
scenario:
  auth: {{mode: static, header_name: X-API-Key, header_format: "{{token}}"}}
  users: {{count: 1, credentials: [{{name: alice, token: "${{TOKEN_A}}"}}]}}
  golden_path:
    steps:
      - kind: ws
        name: rpc
        path: /rpc
        ids: {{rid: string}}
        conversation:
          - send: {{jsonrpc: "2.0", id: "{{rid}}", method: echo}}
          - expect: {{correlate: [{{{correlate}}}], match: {{jsonrpc: "2.0"}}}}
"""


def test_load_params_refuses_a_correlation_without_id_with_one_line_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(MINIMAL_PARAMS.format(correlate='id: "{nonce}"'))
    with pytest.raises(ParamsError) as info:
        load_params(path, env={"TOKEN_A": "tok-a"})
    text = str(info.value)
    assert "scenario.golden_path.steps.0.ws" in text and "correlate[0]['id']: correlates on a value" in text
    assert "tok-a" not in text
    path.write_text(MINIMAL_PARAMS.format(correlate='id: "{rid}"'))
    params, _ = load_params(path, env={"TOKEN_A": "{rid}"})  # a token with braces is data, not a template
    assert params.scenario is not None
    assert params.scenario.users.credentials[0].token.get_secret_value() == "{rid}"


@pytest.mark.parametrize("name", ["session_id", "username", "run_id"])
def test_a_capture_named_like_a_built_in_placeholder_is_refused(name: str) -> None:
    # Before: accepted, and a finally step meant to be skipped when the capture was missing ran with the
    # built-in's value instead (DELETE /api/sessions/<run_id>-u0-r0 -> 404 FAILed the teardown claim).
    create = {"kind": "http", "name": "open", "method": "POST", "path": "/api/sessions", "capture": {name: "id"}}
    error = refused(raw_scenario(golden_path={"steps": [create]}))
    assert f"golden_path.steps[0] ('open'): capture {name!r} has the name of a built-in placeholder" in error
