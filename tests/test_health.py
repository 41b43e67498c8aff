from __future__ import annotations

import httpx

from stability_lib import Status
from stability_lib.probes.config import HealthConfig, HealthEndpoint, TargetConfig
from stability_lib.probes.health import health_claims, run_health


def test_endpoints_on_one_path_are_judged_per_method() -> None:
    # An injected transport: GET /health answers 200, HEAD /health answers 503.
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200 if request.method == "GET" else 503, json={"status": "ok"})

    cfg = HealthConfig(
        samples=3, endpoints=[HealthEndpoint(path="/health"), HealthEndpoint(path="/health", method="HEAD")]
    )
    data = run_health(TargetConfig(base_url="http://127.0.0.1:9"), cfg, transport=httpx.MockTransport(handler))
    claims = {c.id: c for c in health_claims(cfg, data)}
    assert claims["health.http.health"].status is Status.PASS
    assert claims["health.http.HEAD.health"].status is Status.FAIL
    assert claims["health.http.HEAD.health"].statistic.startswith("0 of 3")


def test_missing_json_keys_fail_the_endpoint() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"status": "ok"}))
    cfg = HealthConfig(samples=2, endpoints=[HealthEndpoint(path="/health", json_keys=["status", "database"])])
    data = run_health(TargetConfig(base_url="http://127.0.0.1:9"), cfg, transport=transport)
    (claim,) = health_claims(cfg, data)
    assert claim.status is Status.FAIL and "missing database" in claim.statistic


def test_target_auth_goes_on_every_health_request_and_status_and_content_are_checked() -> None:
    # The service wants a key on every request (no login) and says in its body whether it is fine.
    seen: list[tuple[str | None, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers.get("X-API-Key"), request.url.params.get("tenant")))
        if request.headers.get("X-API-Key") != "key-123456":
            return httpx.Response(401)
        status = "degraded" if request.url.path == "/ready" else "ok"
        return httpx.Response(204 if request.url.path == "/ping" else 200, json={"status": status})

    target = TargetConfig.model_validate(
        {"base_url": "http://127.0.0.1:9", "auth": {"headers": {"X-API-Key": "key-123456"}, "query": {"tenant": "t1"}}}
    )
    cfg = HealthConfig(
        samples=2,
        endpoints=[
            HealthEndpoint.model_validate({"path": "/health", "check": {"status": "ok"}}),
            HealthEndpoint.model_validate({"path": "/ready", "check": {"status": "ok"}}),
            HealthEndpoint.model_validate({"path": "/ping", "expect_status": [200, 204]}),
        ],
    )
    data = run_health(target, cfg, transport=httpx.MockTransport(handler))
    claims = {c.id: c for c in health_claims(cfg, data)}
    assert set(seen) == {("key-123456", "t1")}
    assert claims["health.http.health"].status is Status.PASS
    assert claims["health.http.ready"].status is Status.FAIL
    assert "check status: expected ok, got degraded" in claims["health.http.ready"].statistic
    assert claims["health.http.ping"].status is Status.PASS  # 204 is one of the accepted statuses
    assert "answers 200 or 204" in claims["health.http.ping"].statement
    # Without the key the same endpoints fail: the check could have failed.
    bare = run_health(TargetConfig(base_url="http://127.0.0.1:9"), cfg, transport=httpx.MockTransport(handler))
    assert all(c.status is Status.FAIL for c in health_claims(cfg, bare))


def test_a_health_conversation_that_expects_the_servers_close_passes_on_that_code_only() -> None:
    # e.g. graphql-transport-ws: a subscribe before connection_init is closed with 4401
    conversation = [
        {"send": {"type": "subscribe", "id": "1", "payload": {"query": "subscription { ticks }"}}},
        {"expect": {"close": 4401}},
    ]

    def claim(conversation: list, close_code: int, ended_ok: bool) -> object:
        cfg = HealthConfig.model_validate(
            {"samples": 1, "websocket": {"path": "/graphql", "conversation": conversation}}
        )
        record = {"connected": True, "echoed": ended_ok, "close_code": close_code, "error": ""}
        claims = {c.id: c for c in health_claims(cfg, {"samples": [], "websocket": record})}
        return claims["health.websocket_echo"].status

    assert claim(conversation, 4401, ended_ok=True) is Status.PASS
    assert claim(conversation, 4403, ended_ok=False) is Status.FAIL  # the conversation failed on the code
    plain = [{"send": {"type": "ping"}}, {"expect": {"match": {"type": "pong"}}}]
    assert claim(plain, 4401, ended_ok=True) is Status.FAIL  # no close expected: only 1000 is a normal close
    assert claim(plain, 1000, ended_ok=True) is Status.PASS


def test_each_websocket_form_takes_only_its_own_fields() -> None:
    # With a conversation, expect_echo: false switched the conversation's verdict off (a failed conversation
    # PASSed); the conversation fields did nothing on the echo form.
    import pytest
    from pydantic import ValidationError

    conversation = [{"send": {"type": "ping"}}, {"expect": {"match": {"type": "pong"}}}]
    for websocket, message in (
        ({"path": "/ws", "conversation": conversation, "expect_echo": False}, "expect_echo belongs to the echo form"),
        ({"path": "/ws", "conversation": conversation, "message": "hi"}, "message belongs to the echo form"),
        ({"path": "/ws", "ignore": [{"match": {"type": "note"}}]}, "ignore applies to a conversation"),
    ):
        with pytest.raises(ValidationError, match=message):
            HealthConfig.model_validate({"websocket": websocket})
    HealthConfig.model_validate({"websocket": {"path": "/ws", "message": "hi", "expect_echo": False}})


def test_the_echo_form_keeps_its_own_timeout() -> None:
    # websocket.timeout_s bounded only the conversation form; the echo waited the health timeout_s instead.
    import asyncio

    from test_engine_loop import server_thread
    from websockets.asyncio.server import ServerConnection

    async def slow_echo(ws: ServerConnection) -> None:
        async for message in ws:
            await asyncio.sleep(1.0)
            await ws.send(message)

    with server_thread(slow_echo) as base:
        cfg = HealthConfig.model_validate(
            {"samples": 1, "timeout_s": 5, "endpoints": [], "websocket": {"path": "/echo", "timeout_s": 0.3}}
        )
        data = run_health(TargetConfig(base_url=base), cfg)
    claims = {c.id: c for c in health_claims(cfg, data)}
    assert claims["health.websocket_echo"].status is Status.FAIL


def test_a_websocket_that_need_not_echo_is_said_to_answer_not_to_echo() -> None:
    # Found against jupyter_server: with expect_echo: false the claim still read "echoes a message" and its
    # statistic "echo did not match" though no echo was asked for.
    cfg = HealthConfig.model_validate({"samples": 1, "websocket": {"path": "/events", "expect_echo": False}})
    record = {"connected": True, "echoed": False, "close_code": 1000, "error": "", "round_trip_ms": 2.5}
    [claim] = [c for c in health_claims(cfg, {"samples": [], "websocket": record}) if c.id == "health.websocket_echo"]
    assert claim.status is Status.PASS
    assert claim.statement == "WebSocket /events answers a message (any reply) and closes normally"
    assert claim.statistic.startswith("a reply came, close code 1000")
