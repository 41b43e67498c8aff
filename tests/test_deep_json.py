"""Deeply nested JSON from the service under test (``[[[[...]]]]``) is "not JSON", never a crash.

``json.loads`` raises RecursionError, not ValueError, on a document nested deeper than the
interpreter's recursion limit (a few KB of ``[`` do it). Every probe caught ValueError only, so one
such body or message ended a whole section in ERROR: the health endpoints' other results were lost,
the golden path ended without a verdict, one frame killed a soak. Such a body or message is the
service's fault: that request or session fails, the rest is judged as usual.

The servers are real (http.server, websockets) on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from support import QuietHandler
from support import http_server as serve_http
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from stability_lib.core.models import Status
from stability_lib.ingest.k6 import parse_k6_log, parse_k6_points, parse_k6_summary
from stability_lib.ingest.locust_csv import parse_locust_json
from stability_lib.ingest.records import IngestError
from stability_lib.probes.config import HealthConfig, HealthEndpoint, TargetConfig
from stability_lib.probes.conversation_soak import run_conversation_soak
from stability_lib.probes.conversation_soak_results import summarize_conversation_soak
from stability_lib.probes.conversation_spec import ConversationSoakConfig
from stability_lib.probes.golden import run_golden_path
from stability_lib.probes.health import health_claims, run_health
from stability_lib.probes.scenario import ScenarioConfig
from stability_lib.probes.soak import run_soak

DEPTH = 100_000  # 200 KB of brackets: far over any recursion limit, well under every body and message cap
DEEP = "[" * DEPTH + "]" * DEPTH
DEEP_WS = "[" * 3_000 + "]" * 3_000  # 6 KB: under every message cap (the health echo's is 64 KiB)
OK_BODY = json.dumps({"status": "ok", "id": 7})


def test_parse_json_says_why_a_text_is_not_json() -> None:
    from stability_lib.probes.message_checks import parse_json

    for text in (DEEP, DEEP_WS):  # the premise of every test here: json.loads raises RecursionError on these
        with pytest.raises(RecursionError):
            json.loads(text)
    assert parse_json(OK_BODY) == ({"status": "ok", "id": 7}, "")
    assert parse_json(b"null") == (None, "")  # a JSON null is a document, not a failure
    assert parse_json("{nope") == (None, "not JSON")
    assert parse_json(DEEP) == (None, "not JSON (nested too deeply)")
    assert parse_json(DEEP.encode()) == (None, "not JSON (nested too deeply)")


# --------------------------------------------------------------------------- HTTP: health and golden path


@contextmanager
def http_server(routes: dict[str, str]) -> Iterator[str]:
    """GET ``path`` answers 200 with ``routes[path]`` (application/json); anything else 404."""

    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server name
            body = routes.get(self.path.split("?")[0])
            self.reply(200 if body is not None else 404, (body or "").encode())

    with serve_http(Handler) as url:
        yield url


def test_a_health_endpoint_with_a_deeply_nested_body_fails_and_the_others_are_kept() -> None:
    routes = {"/health": OK_BODY, "/deep": DEEP, "/deep-keys": DEEP}
    cfg = HealthConfig(
        samples=2,
        timeout_s=5.0,
        endpoints=[
            HealthEndpoint.model_validate({"path": "/health", "check": {"status": "ok"}}),
            HealthEndpoint.model_validate({"path": "/deep", "check": {"status": "ok"}}),
            HealthEndpoint(path="/deep-keys", json_keys=["status"]),
        ],
    )
    with http_server(routes) as base:
        data = run_health(TargetConfig(base_url=base), cfg)
    claims = {c.id: c for c in health_claims(cfg, data)}
    assert claims["health.http.health"].status is Status.PASS, claims["health.http.health"].statistic
    deep = claims["health.http.deep"]
    assert deep.status is Status.FAIL
    assert "check: the body is not JSON (nested too deeply)" in deep.statistic
    keys = claims["health.http.deep-keys"]
    assert keys.status is Status.FAIL and "missing status" in keys.statistic


def _http_scenario(**step: Any) -> ScenarioConfig:
    return ScenarioConfig.model_validate(
        {
            "users": {"password": "pw-not-used", "count": 1},
            "golden_path": {
                "repetitions": 1,
                "steps": [{"kind": "http", "name": "read", "method": "GET", "expect_status": 200, **step}],
            },
        }
    )


@pytest.mark.parametrize(
    "step",
    [
        {"path": "/deep", "check": {"status": "ok"}},
        {"path": "/deep", "capture": {"item": "id"}},
    ],
    ids=["check", "capture"],
)
def test_an_http_golden_step_on_a_deeply_nested_body_fails_that_step(step: dict[str, Any]) -> None:
    async def main() -> Any:
        with http_server({"/deep": DEEP, "/ok": OK_BODY}) as base:
            return await run_golden_path(base, _http_scenario(**step))

    golden, _ = asyncio.run(main()).claims()
    assert golden.status is Status.FAIL
    (failure,) = golden.details["failures"]
    assert failure["step"] == "read" and "response is not JSON (nested too deeply)" in failure["failure"]
    # The same step on a good body passes: the check could have held.
    good = _http_scenario(**{**step, "path": "/ok"})

    async def control() -> Any:
        with http_server({"/ok": OK_BODY}) as base:
            return await run_golden_path(base, good)

    assert asyncio.run(control()).claims()[0].status is Status.PASS


# --------------------------------------------------------------------------- WebSocket: soak sessions


@asynccontextmanager
async def ws_server(deep_on_connection: int, *, legacy: bool) -> AsyncIterator[str]:
    """Answers each session like a well-behaved agent, except connection ``deep_on_connection`` (0-based),
    which gets one deeply nested frame before its events."""
    connections = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal connections
        index = connections
        connections += 1
        try:
            async for raw in ws:
                request = json.loads(raw)
                if index == deep_on_connection:
                    await ws.send(DEEP_WS)
                if legacy:
                    for kind in ("agent_started", "agent_completed"):
                        await ws.send(json.dumps({"type": kind}))
                    await ws.send(json.dumps({"type": "final_response", "content": request["content"]}))
                else:
                    await ws.send(json.dumps({"type": "pong", "content": request["content"]}))
        except ConnectionClosed:
            pass

    async with serve(handler, "127.0.0.1", 0) as server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


LEGACY_STEP = {
    "kind": "ws",
    "name": "chat",
    "path": "/ws",
    "send": {"type": "user_message", "content": "hello {nonce}"},
    "expect": ["agent_started", "agent_completed"],
    "end_event": "final_response",
    "other_events": "fail",  # an untyped (not JSON) event fails the session
    "event_timeout_s": 5.0,
    "timeout_s": 10.0,
}
CONVERSATION_STEP = {
    "kind": "ws",
    "name": "chat",
    "path": "/ws",
    "conversation": [
        {"send": {"type": "ping", "content": "hi {nonce}"}},
        {"expect": {"match": {"type": "pong"}, "check": {"content": "hi {nonce}"}}},
    ],
    "timeout_s": 10.0,
}


def _soak_scenario(step: dict[str, Any]) -> ScenarioConfig:
    return ScenarioConfig.model_validate(
        {
            "users": {"password": "pw-not-used", "count": 1},
            "golden_path": {"steps": [step]},
            "soak": {"sessions": 6, "concurrency": 2, "connect_timeout_s": 5.0, "close_timeout_s": 2.0},
        }
    )


@pytest.mark.parametrize(
    ("step", "legacy", "kind"),
    [(LEGACY_STEP, True, "unexpected_event"), (CONVERSATION_STEP, False, "bad_frame")],
    ids=["event_types", "conversation"],
)
def test_one_deeply_nested_frame_fails_its_session_and_the_soak_goes_on(
    step: dict[str, Any], legacy: bool, kind: str
) -> None:
    async def main() -> Any:
        async with ws_server(2, legacy=legacy) as base:
            return await run_soak(base, _soak_scenario(step))

    result = asyncio.run(main())
    outcomes = sorted(r.outcome.kind.value for r in result.records)
    assert outcomes == sorted(["ok"] * 5 + [kind]), outcomes
    (bad,) = [r for r in result.records if r.outcome.kind.value == kind]
    if legacy:
        assert bad.outcome.label.startswith("unexpected_event") and "<untyped>" in bad.outcome.label
    else:
        assert bad.outcome.label == "bad_frame(not_json)"
        assert bad.outcome.got == "not JSON (nested too deeply)"
    _, complete = result.claims()  # judged, not ERROR (1 of 6 is too few to FAIL at a tolerated 1%)
    assert complete.status is not Status.PASS and complete.statistic.startswith("1 of 6 sessions failed")


def test_a_deeply_nested_frame_in_a_conversation_soak_is_counted_not_json() -> None:
    base = {
        "send": {"id": "{msg_id}", "text": "x"},
        "correlate": {"id": "{msg_id}"},
        "check": {"text": "x"},
        "sessions": 2,
        "concurrency": 2,
        "messages_per_session": 5,
        "duration_s": 60,
        "reply_timeout_s": 5,
        "connect_timeout_s": 5,
        "close_timeout_s": 2,
    }

    async def handler(ws: ServerConnection) -> None:
        try:
            n = 0
            async for raw in ws:
                n += 1
                if n == 3:
                    await ws.send(DEEP_WS)
                await ws.send(raw)
        except ConnectionClosed:
            pass

    async def soak(**overrides: Any) -> Any:
        async with serve(handler, "127.0.0.1", 0) as server:
            url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/soak"
            return await run_conversation_soak(url, ConversationSoakConfig.model_validate({**base, **overrides}))

    counted = asyncio.run(soak())
    summary = summarize_conversation_soak(counted)
    assert summary.messages_ok == 10 and summary.unmatched == {"not_json": 2}
    ended = asyncio.run(soak(unmatched="fail"))
    assert [s.outcome for s in ended.sessions] == ["unmatched_message(not_json)"] * 2
    assert ended.failure_reasons == {"unmatched_message(not_json)": 2}


def test_the_event_type_of_a_deeply_nested_message_is_none() -> None:
    from stability_lib.probes.ws_session import _event_type

    assert _event_type(DEEP_WS, "type") is None
    assert _event_type('{"type": "x"}', "type") == "x"


def test_the_gevent_event_type_of_a_deeply_nested_message_is_none() -> None:
    gevent_steps = pytest.importorskip("stability_lib.scale.gevent_steps")
    assert gevent_steps._event_type(DEEP_WS, "type") is None
    assert gevent_steps._event_type('{"type": "x"}', "type") == "x"


# --------------------------------------------------------------------------- the contract section's observed events


def test_a_deeply_nested_ws_sighting_is_not_an_observed_event(monkeypatch: pytest.MonkeyPatch) -> None:
    from stability_lib.probes import golden
    from stability_lib.probes.golden import GoldenRun, Sighting
    from stability_lib.sections.contract import _observed_events

    class Result:
        runs = [GoldenRun("alice", 0, 0, True, "n")]
        sightings = [
            Sighting("alice", "chat", "ws event agent_started", DEEP_WS, repetition=0),
            Sighting("alice", "chat", "ws event final_response", '{"type": "final_response"}', repetition=0),
        ]

    monkeypatch.setattr(golden, "run_golden_path_sync", lambda *_a, **_k: Result())
    scenario = _soak_scenario(CONVERSATION_STEP)
    assert _observed_events(TargetConfig(base_url="http://127.0.0.1:9"), scenario) == ([{"type": "final_response"}], "")


# --------------------------------------------------------------------------- ingested files


def test_deeply_nested_ingested_files_are_refused_as_not_json() -> None:
    with pytest.raises(IngestError, match="not JSON"):
        parse_k6_summary(DEEP)
    with pytest.raises(IngestError, match="not JSON"):
        parse_locust_json(DEEP)
    with pytest.raises(IngestError, match="not JSON"):
        parse_k6_points((DEEP + "\n" + '{"type": "Metric"}\n').encode())
    deep_log_line = '{"level": "error", "source": "stacktrace", "msg": ' + DEEP + "}"
    assert parse_k6_log(deep_log_line + "\n").errors == ()


def test_no_observed_events_because_the_runs_failed_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    # Found against jupyter_server: "0 baseline and 0 candidate events observed" read as a target that sends no
    # events, when every golden run had failed (events are taken from runs that succeeded only).
    from stability_lib.contract.ws_messages import ws_contract_claims
    from stability_lib.probes import golden
    from stability_lib.probes.golden import GoldenRun
    from stability_lib.sections.contract import _observed_events

    class Result:
        runs = [GoldenRun("alice", 0, r, False, "n", failed_step="execute", failure="timeout") for r in (0, 1)]
        sightings: list[object] = []

    monkeypatch.setattr(golden, "run_golden_path_sync", lambda *_a, **_k: Result())
    events, note = _observed_events(TargetConfig(base_url="http://127.0.0.1:9"), _soak_scenario(CONVERSATION_STEP))
    assert events == [] and note == "2 of 2 golden runs failed (first: execute: timeout)"
    [claim] = ws_contract_claims([], baseline_events=0, candidate_events=0, reason=f"candidate: {note}")
    assert claim.statistic == "no comparison: candidate: 2 of 2 golden runs failed (first: execute: timeout)"


def test_a_captured_value_too_deep_to_encode_again_fails_its_step_unsent() -> None:
    # A body that parsed just under the parser's limit, captured and sent back in a later step, raised
    # RecursionError from the JSON encoding and ended the section as ERROR (found by the review of this fix).
    import httpx

    from stability_lib.probes.http_steps import run_http_step
    from stability_lib.probes.scenario import AuthConfig, HttpStep

    deep: Any = []
    for _ in range(995):
        deep = [deep]
    step = HttpStep(name="send_back", method="POST", path="/ok", body={"x": "{item}"})

    async def main() -> Any:
        with http_server({"/ok": OK_BODY}) as base:
            async with httpx.AsyncClient(base_url=base) as client:
                return await run_http_step(
                    client,
                    step,
                    "send_back",
                    {"item": deep},
                    auth=AuthConfig(),
                    token=None,
                    secrets=(),
                    capture_bytes=0,
                )

    result, captured = asyncio.run(main())
    assert not result.ok and result.error == "request body nested too deeply to encode: not sent" and captured == {}
