"""The HTTP step's pure half, shared by the asyncio engine and the Locust (gevent) engine: a request
rendered (``build_request``), a response judged (``judge_response``), and a user's setup as a sans-I/O
plan (``user_setup_plan``, driven by ``advance_setup``). No network: responses are given as bytes."""

from __future__ import annotations

import json
from typing import Any

from stability_lib.probes.http_steps import (
    HttpRequestPlan,
    HttpStepResult,
    PreparedUser,
    SetupRequest,
    advance_setup,
    build_request,
    judge_response,
    user_setup_plan,
)
from stability_lib.probes.scenario import AuthConfig, HttpStep, ScenarioConfig, TemplateError

TOKEN = "tok-secret-0123456789"
PASSWORD = "pw-secret-98765"


def _step(**overrides: Any) -> HttpStep:
    fields: dict[str, Any] = {"name": "create", "method": "POST", "path": "/items", "expect_status": [201]}
    return HttpStep.model_validate({**fields, **overrides})


def _judge(
    step: HttpStep, status: int, body: Any, *, truncated: bool = False, capture_bytes: int = 1000
) -> tuple[HttpStepResult, dict[str, Any]]:
    request = build_request(step, {"user_index": 3}, auth=AuthConfig(), token=TOKEN, secrets=[TOKEN])
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return judge_response(
        step,
        step.name,
        request,
        {"user_index": 3},
        status=status,
        content=content,
        truncated=truncated,
        duration_s=0.25,
        secrets=[TOKEN],
        capture_bytes=capture_bytes,
    )


def test_a_request_sends_the_secret_in_its_path_but_keeps_it_redacted() -> None:
    step = _step(path="/users/{user_index}/{token}", headers={"X-Trace": "t{user_index}"})
    context = {"user_index": 3, "token": TOKEN}
    request = build_request(step, context, auth=AuthConfig(), token=TOKEN, secrets=[TOKEN])
    assert request.target == f"/users/3/{TOKEN}"
    assert TOKEN not in request.kept_path and request.kept_path == "/users/3/[redacted]"
    assert request.headers == {"X-Trace": "t3", "Authorization": f"Bearer {TOKEN}"}
    failed = request.failed("create", 1.0, "timeout")
    assert (failed.ok, failed.path, failed.status, failed.error) == (False, "/users/3/[redacted]", None, "timeout")


def test_a_response_that_has_what_the_step_asks_for_passes_with_its_captures() -> None:
    step = _step(capture={"item_id": "id"}, check={"owner": "u{user_index}"})
    result, captured = _judge(step, 201, {"id": 7, "owner": "u3", "note": TOKEN})
    assert result.ok and captured == {"item_id": 7} and result.captured == ("item_id",)
    assert TOKEN not in result.body and "[redacted]" in result.body


def test_each_way_a_response_can_fail_the_step_is_named() -> None:
    step = _step(capture={"item_id": "id"}, check={"owner": "u{user_index}"})
    cases: list[tuple[int, Any, bool, str]] = [
        (500, {"id": 7, "owner": "u3"}, False, "status 500, expected [201]"),
        (201, b"<html>", False, "response is not JSON"),
        (201, {"owner": "u3"}, False, "capture item_id: nothing at 'id' in the response"),
        (201, {"id": 7, "owner": "u3"}, True, "body_too_large"),
    ]
    for status, body, truncated, error in cases:
        result, captured = _judge(step, status, body, truncated=truncated)
        assert (result.ok, result.status, result.error, captured) == (False, status, error, {}), error
    wrong_owner, _ = _judge(step, 201, {"id": 7, "owner": "u4"})
    assert not wrong_owner.ok and "owner" in wrong_owner.error


def test_a_failed_status_keeps_the_capped_redacted_body_and_nothing_when_asked_for_none() -> None:
    result, _ = _judge(_step(), 500, {"detail": TOKEN}, capture_bytes=1000)
    assert "[redacted]" in result.body and TOKEN not in result.body
    silent, _ = _judge(_step(), 500, {"detail": TOKEN}, capture_bytes=0)
    assert silent.body == ""


# --------------------------------------------------------------------------- the setup plan


def _scenario(**auth: Any) -> ScenarioConfig:
    body = {"username": "{username}", "password": "{password}"}
    return ScenarioConfig.model_validate(
        {
            "auth": {
                "register": {"path": "/register", "body": body, "expect_status": [201]},
                "login": {"path": "/login", "body": body, "expect_status": [200]},
                **auth,
            },
            "users": {"prefix": "plan", "password": PASSWORD, "count": 1},
            "setup": [{"kind": "http", "name": "make_cart", "path": "/carts", "capture": {"cart": "id"}}],
            "golden_path": {"steps": [{"kind": "http", "name": "read", "method": "GET", "path": "/carts/{cart}"}]},
        }
    )


def _drive(scenario: ScenarioConfig, answers: dict[str, tuple[int, Any]]) -> tuple[PreparedUser, list[SetupRequest]]:
    """Run the plan as an engine does, answering each request by its name (a missing name: TemplateError)."""
    steps = [s for s in scenario.setup if isinstance(s, HttpStep)]
    plan = user_setup_plan(scenario, 0, "plan-0", "run-1", steps)
    sent: list[SetupRequest] = []
    next_up = advance_setup(plan, None)
    while isinstance(next_up, SetupRequest):
        sent.append(next_up)
        if next_up.name not in answers:
            next_up = advance_setup(plan, TemplateError(f"no answer for {next_up.name}"))
            continue
        status, body = answers[next_up.name]
        request: HttpRequestPlan = build_request(
            next_up.step, next_up.context, auth=scenario.auth, token=next_up.token, secrets=next_up.secrets
        )
        observed = judge_response(
            next_up.step,
            next_up.name,
            request,
            next_up.context,
            status=status,
            content=json.dumps(body).encode(),
            truncated=False,
            duration_s=0.1,
            secrets=next_up.secrets,
            capture_bytes=next_up.capture_bytes,
        )
        next_up = advance_setup(plan, observed)
    return next_up, sent


def test_a_user_is_registered_logged_in_and_set_up_with_the_token_and_captures() -> None:
    answers = {"auth.register": (201, {}), "auth.login": (200, {"access_token": TOKEN}), "make_cart": (201, {"id": 5})}
    user, sent = _drive(_scenario(), answers)
    assert [r.name for r in sent] == ["auth.register", "auth.login", "make_cart"]
    assert user.setup.ok and user.token == TOKEN and user.variables == {"cart": 5}
    assert [r.token for r in sent] == [None, None, TOKEN]  # the token goes on the steps after login only
    assert TOKEN in sent[-1].secrets and PASSWORD in sent[0].secrets
    assert sent[1].capture_bytes == 0 and user.setup.steps[1].body == ""  # the login body holds the token


def test_a_failed_registration_stops_the_setup_before_the_login() -> None:
    user, sent = _drive(_scenario(), {"auth.register": (409, {"detail": "taken"})})
    assert [r.name for r in sent] == ["auth.register"]
    assert not user.setup.ok and user.setup.error == "register: status 409, expected [201]"


def test_a_login_without_a_string_token_fails_the_setup() -> None:
    answers = {"auth.register": (201, {}), "auth.login": (200, {"access_token": 42})}
    user, sent = _drive(_scenario(), answers)
    assert [r.name for r in sent] == ["auth.register", "auth.login"]
    assert not user.setup.ok and user.token is None
    assert user.setup.error == "login: token at 'access_token' is not a string"
    assert not user.setup.steps[-1].ok


def test_a_request_that_cannot_be_rendered_fails_the_setup_as_a_template_error() -> None:
    answers = {"auth.register": (201, {}), "auth.login": (200, {"access_token": TOKEN})}
    user, sent = _drive(_scenario(), answers)  # make_cart has no answer: the driver throws a TemplateError
    assert not user.setup.ok and user.setup.error == "template: no answer for make_cart"
    assert [s.name for s in user.setup.steps] == ["auth.register", "auth.login"]
