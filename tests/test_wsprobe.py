"""WebSocket sessions and soaks against small scripted servers on 127.0.0.1.

Each server behaves one way a real service can: well, 1011 for some sessions,
dropping the TCP connection (1006), accepting and never answering, refusing the
handshake. The probe must record each as the right outcome, within its bounds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve

from stability_lib.core.models import Status
from stability_lib.probes.engine import prepare_user, run_soak, run_ws_exchange, run_ws_session, ws_url
from stability_lib.probes.scenario import AuthConfig, ScenarioConfig, TemplateError, WsStep, render_template
from stability_lib.probes.sessions import OutcomeKind
from stability_lib.probes.ws_session import LegacyPlan

TOKEN = "secret-token-123"

STEP: dict[str, Any] = {
    "kind": "ws",
    "name": "chat",
    "path": "/good",
    "send": {"type": "user_message", "content": "hello {nonce}"},
    "expect": ["agent_started", "agent_completed"],
    "end_event": "final_response",
    "event_timeout_s": 2.0,
    "timeout_s": 5.0,
}


def scenario(path: str, **soak: Any) -> ScenarioConfig:
    return ScenarioConfig.model_validate(
        {
            "users": {"password": "pw-not-used", "count": 1},
            "golden_path": {"steps": [{**STEP, "path": path}]},
            "soak": {"connect_timeout_s": 2.0, "close_timeout_s": 1.0, **soak},
            "tolerated_failure_rate": 0.01,
        }
    )


class ScriptedServer:
    """One server, behaviour chosen by the request path; counts sessions per path."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.seen_auth: list[tuple[str, str | None]] = []

    def process_request(self, connection: ServerConnection, request: Any) -> Any:
        parts = urlsplit(request.path)
        if parts.path == "/forbidden":
            return connection.respond(HTTPStatus.FORBIDDEN, "no\n")
        if parts.path == "/auth":
            header = request.headers.get("Authorization")
            query = parse_qs(parts.query).get("token", [None])[0]
            proto = request.headers.get("Sec-WebSocket-Protocol")
            self.seen_auth.append(
                ("header" if header else "query" if query else "proto" if proto else "none", header or query or proto)
            )
            if f"Bearer {TOKEN}" != header and query != TOKEN and proto != TOKEN:
                return connection.respond(HTTPStatus.UNAUTHORIZED, "who are you\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        path = urlsplit(ws.request.path).path
        n = self.counts.get(path, 0)
        self.counts[path] = n + 1
        if path == "/silent":
            await ws.wait_closed()
            return
        message = json.loads(await ws.recv())
        if path == "/flaky1011" and n % 4 == 0:
            await ws.close(1011, "internal error " + "x" * 100)
            return
        if path == "/drop" and n % 2 == 0:
            ws.transport.abort()  # no close frame: the client must see 1006
            return
        if path == "/normalclose":
            await ws.close(1000, "bye")
            return
        await ws.send(json.dumps({"type": "agent_started", "step": "data"}))
        if path == "/wrongorder":
            await ws.send(json.dumps({"type": "final_response", "content": message["content"]}))
        await ws.send(json.dumps({"type": "token", "text": "ignored"}))
        await ws.send(json.dumps({"type": "agent_completed", "step": "data"}))
        await ws.send(json.dumps({"type": "final_response", "content": message["content"]}))
        await ws.wait_closed()


@asynccontextmanager
async def scripted_server() -> AsyncIterator[tuple[str, ScriptedServer]]:
    state = ScriptedServer()
    async with serve(state.handler, "127.0.0.1", 0, process_request=state.process_request) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", state


async def one_session(base: str, path: str, **kw: Any) -> Any:
    step = WsStep.model_validate({**STEP, "path": path})
    auth = AuthConfig.model_validate(kw.pop("auth", {}))
    return await run_ws_session(
        url=ws_url(base, path),
        step=step,
        context={"nonce": "nonce-abc"},
        auth=auth,
        token=kw.pop("token", None),
        session_id="s1",
        run_start_ns=time.monotonic_ns(),
        connect_timeout_s=2.0,
        close_timeout_s=1.0,
        capture_bytes=kw.pop("capture_bytes", 0),
        **kw,
    )


def test_a_well_behaved_session_is_ok_with_timings_and_events() -> None:
    async def main() -> Any:
        async with scripted_server() as (base, _):
            return await one_session(base, "/good", capture_bytes=1000)

    rec = asyncio.run(main())
    assert rec.outcome.kind is OutcomeKind.OK
    assert rec.event_types == ("agent_started", "token", "agent_completed", "final_response")
    assert rec.connect_s is not None and rec.connect_s > 0
    assert rec.first_event_s is not None and rec.total_s is not None and rec.first_event_s <= rec.total_s
    assert rec.close_code == 1000  # we closed normally and the server answered
    assert any("hello nonce-abc" in p for p in rec.payloads)
    assert json.loads(json.dumps(rec.to_dict()))["outcome"]["kind"] == "ok"


@pytest.mark.parametrize(
    ("send", "fixed"),
    [
        ({"type": "user_message", "content": "hello {nonce}"}, False),
        ({"type": "ping", "n": 1, "tags": ["a", "{{literal}}"]}, True),
        ("plain text", True),
        ("{nonce}", False),
        (
            {"id": "{count}", "body": {"of": "{user}", "list": ["{nonce} ünï \n", 2.5, None, True]}, "raw": "{obj}"},
            False,
        ),
        ({"{user}": "keyed by a placeholder", "n": "{count}"}, False),
    ],
)
def test_an_old_form_message_is_what_rendering_it_per_session_gives(send: Any, fixed: bool) -> None:
    """A message without placeholders is made once for a whole soak; it must be the per-session text."""
    step = WsStep.model_validate({**STEP, "send": send})
    plan = LegacyPlan.of(step)
    assert (plan.message is not None) == fixed
    assert (plan.message_split is None) == (isinstance(send, dict) and "{user}" in send)  # a key to fill: whole
    for nonce in ("nonce-1", 'nonce-2 "quoted" é'):
        context = {"nonce": nonce, "count": 7, "user": "u1", "obj": {"a": [1, "b"], "c": None}}
        assert plan.render(context) == json.dumps(render_template(send, context))
    assert plan.expected == (("agent_started", 2.0), ("agent_completed", 2.0))


def test_an_old_form_message_naming_an_unknown_value_is_refused_per_session() -> None:
    plan = LegacyPlan.of(WsStep.model_validate({**STEP, "send": {"content": "hello {nonce}"}}))
    with pytest.raises(TemplateError):
        plan.render({})


@pytest.mark.parametrize(
    ("path", "kind", "label"),
    [
        ("/normalclose", OutcomeKind.CLOSED_OTHER, "closed_other(1000)"),
        ("/wrongorder", OutcomeKind.UNEXPECTED_EVENT, "unexpected_event(expected=agent_completed, got=final_response)"),
        ("/forbidden", OutcomeKind.HANDSHAKE_REJECTED, "handshake_rejected(403)"),
    ],
)
def test_each_way_of_failing_has_its_own_outcome(path: str, kind: OutcomeKind, label: str) -> None:
    async def main() -> Any:
        async with scripted_server() as (base, _):
            return await one_session(base, path)

    rec = asyncio.run(main())
    assert rec.outcome.kind is kind
    assert rec.outcome.label == label


def test_1011_keeps_the_code_and_a_capped_reason_and_a_drop_is_1006() -> None:
    async def main() -> Any:
        async with scripted_server() as (base, _):
            return await one_session(base, "/flaky1011"), await one_session(base, "/drop")

    closed, dropped = asyncio.run(main())
    assert closed.outcome.kind is OutcomeKind.CLOSED_1011
    assert closed.close_code == 1011 and closed.close_reason.startswith("internal error")
    assert dropped.outcome.kind is OutcomeKind.ABNORMAL_1006
    assert dropped.close_code is None  # no close frame was received


def test_nothing_listening_is_a_connect_error() -> None:
    async def main() -> Any:
        async with scripted_server() as (base, _):
            pass
        return await one_session(base, "/good")  # the server is gone now

    rec = asyncio.run(main())
    assert rec.outcome.kind is OutcomeKind.CONNECT_ERROR
    assert rec.outcome.error_kind == "refused"


@pytest.mark.parametrize("via", ["header", "query", "subprotocol"])
def test_the_token_travels_the_way_the_scenario_says(via: str) -> None:
    async def main() -> Any:
        async with scripted_server() as (base, state):
            ok = await one_session(base, "/auth", token=TOKEN, auth={"ws_token_via": via})
            anonymous = await one_session(base, "/auth", auth={"ws_token_via": via})
            return ok, anonymous, state.seen_auth

    ok, anonymous, seen = asyncio.run(main())
    # /auth behaves like /good once authenticated; "done" ends at final_response.
    assert ok.outcome.kind is OutcomeKind.OK, ok.outcome.label
    assert anonymous.outcome.label == "handshake_rejected(401)"
    assert seen[0][0] == {"header": "header", "query": "query", "subprotocol": "proto"}[via]
    assert TOKEN not in json.dumps(ok.to_dict())


def test_soak_against_a_good_server_passes_both_claims() -> None:
    async def main() -> Any:
        async with scripted_server() as (base, _):
            return await run_soak(base, scenario("/good", sessions=500, concurrency=20))

    result = asyncio.run(main())
    agg = result.aggregate
    assert agg.sessions == 500 and agg.ok == 500 and agg.close_codes == {"1000": 500}
    crash, complete = result.claims()
    assert crash.status is Status.PASS and complete.status is Status.PASS
    assert crash.statistic == "0 of 500 sessions closed with 1011/1006 (95% upper bound 0.60%, tolerated 1.00%)"
    assert len(agg.timeline) == 500
    assert json.loads(json.dumps(result.to_dict()))["aggregate"]["sessions"] == 500


def test_soak_with_a_quarter_closing_1011_fails_and_counts_them() -> None:
    async def main() -> Any:
        async with scripted_server() as (base, state):
            return await run_soak(base, scenario("/flaky1011", sessions=80, concurrency=10)), state

    result, state = asyncio.run(main())
    agg = result.aggregate
    assert state.counts["/flaky1011"] == 80
    assert agg.outcome_counts["closed_1011"] == 20 and agg.close_codes["1011"] == 20
    crash, complete = result.claims()
    assert crash.status is Status.FAIL
    assert crash.statistic.startswith("20 of 80 sessions closed with 1011/1006")
    assert crash.details["crashes"] == 20
    assert complete.status is Status.FAIL


def test_soak_counts_tcp_drops_as_1006_failures() -> None:
    async def main() -> Any:
        async with scripted_server() as (base, _):
            return await run_soak(base, scenario("/drop", sessions=40, concurrency=8))

    result = asyncio.run(main())
    assert result.aggregate.outcome_counts["abnormal_1006"] == 20
    assert result.aggregate.close_codes.get("none") == 20
    assert result.claims()[0].status is Status.FAIL


def test_a_silent_server_ends_in_timeouts_within_the_bound() -> None:
    async def main() -> Any:
        async with scripted_server() as (base, _):
            started = time.monotonic()
            result = await run_soak(
                base, scenario("/silent", sessions=6, concurrency=3, step_timeout_s=0.5, duration_s=30)
            )
            return result, time.monotonic() - started

    result, elapsed = asyncio.run(main())
    assert result.aggregate.outcome_labels == {"timeout(chat:agent_started)": 6}
    # Each session is bounded by its step timeout (0.5 s) plus the close timeout (1 s);
    # two waves of three: generous bound far below "hangs forever".
    assert elapsed < 15
    crash, complete = result.claims()
    assert complete.status is Status.FAIL
    assert crash.status is Status.INCONCLUSIVE  # 6 sessions cannot bound a crash rate at 1%


def test_the_soak_stops_launching_after_its_duration() -> None:
    async def main() -> Any:
        async with scripted_server() as (base, _):
            return await run_soak(
                base, scenario("/silent", sessions=1000, concurrency=2, step_timeout_s=0.3, duration_s=0.5)
            )

    result = asyncio.run(main())
    assert result.stopped_by_duration
    assert 0 < result.aggregate.sessions < 20  # a few waves, not 1000 sessions


def test_a_refused_handshake_leaves_the_crash_claim_inconclusive_not_pass() -> None:
    async def main() -> Any:
        async with scripted_server() as (base, _):
            return await run_soak(base, scenario("/forbidden", sessions=30, concurrency=5))

    result = asyncio.run(main())
    crash, complete = result.claims()
    assert result.aggregate.outcome_labels == {"handshake_rejected(403)": 30}
    assert crash.status is Status.INCONCLUSIVE
    assert "handshake_rejected(403) x30" in crash.statistic
    assert complete.status is Status.FAIL


def test_an_http_step_has_a_deadline_on_the_whole_request_not_only_each_read() -> None:
    import httpx

    from stability_lib.probes.engine import run_http_step
    from stability_lib.probes.scenario import HttpStep

    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
        for _ in range(100):  # one byte every 0.2 s: each read is quick, the whole takes 20 s
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.2)

    async def main() -> tuple[Any, float]:
        server = await asyncio.start_server(drip, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        step = HttpStep(name="slow", method="GET", path="/", expect_status=[200], timeout_s=1.0)
        t0 = time.monotonic()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            result, _ = await run_http_step(
                client, step, "slow", {}, auth=AuthConfig(), token=None, secrets=(), capture_bytes=0
            )
        server.close()
        return result, time.monotonic() - t0

    result, elapsed = asyncio.run(main())
    assert not result.ok and result.error == "timeout"
    assert elapsed < 10  # generous: the bound is 1 s, the drip would take 20 s


def test_a_user_without_a_configured_password_is_prepared() -> None:
    # users.password is optional (needed only by templates that use {password}); preparing a user
    # without one crashed with AttributeError on None before.
    sc = ScenarioConfig.model_validate({"users": {"count": 1}, "golden_path": {"steps": [STEP]}})
    assert sc.users.password is None

    async def prepare() -> Any:
        async with httpx.AsyncClient(base_url="http://127.0.0.1:9") as client:  # no auth: no request is sent
            return await prepare_user(client, sc, 0, "u0", "run-1")

    user = asyncio.run(prepare())
    assert user.setup.ok and user.setup.error == "" and user.password == ""


# --------------------------------------------------------------------------- conversations (issue 13)
# A small request/reply server with the habits of real ones: it speaks first, sends notifications
# nobody asked for, answers two requests in the opposite order, echoes binary frames. Its path picks
# a fault: /rpc-changed loses the echo text, /rpc-dead says "dead" by message and never answers
# (the socket stays open), /rpc-slow never answers echo, /rpc-noproto chooses no subprotocol.

RPC_STEP: dict[str, Any] = {
    "kind": "ws",
    "name": "rpc",
    "path": "/rpc",
    "subprotocols": ["jsonrpc-2.0"],
    "ids": {"echo_id": "string", "add_id": "int"},
    "label_paths": ["method"],
    "conversation": [
        {"expect": {"match": {"method": "status", "params.status": "ready"}}},
        {"send": {"jsonrpc": "2.0", "id": "{echo_id}", "method": "echo", "params": {"text": "hi {nonce}"}}},
        {"send": {"jsonrpc": "2.0", "id": "{add_id}", "method": "add", "params": {"a": 40, "b": 2}}},
        {
            "expect": {
                "timeout_s": 1.0,
                "streams": [
                    {
                        "name": "echo",
                        "correlate": [{"id": "{echo_id}"}],
                        "ordered": [
                            {
                                "match": {"jsonrpc": "2.0"},
                                "check": {"result.text": "hi {nonce}"},
                                "capture": {"echoed": "result.text"},
                            }
                        ],
                    },
                    {
                        "name": "add",
                        "correlate": [{"id": "{add_id}"}],
                        "ordered": [{"match": {"jsonrpc": "2.0"}, "check": {"result.sum": 42}}],
                    },
                ],
            }
        },
        {"send_binary": {"name": "blob", "random": 64}},
        {"expect": {"frame": "binary", "check": {"bytes": {"equals_sent": "blob"}}}},
    ],
    "ignore": [{"match": {"method": "status"}}],
    "unmatched": "fail",
    "fail_on": [{"name": "backend_dead", "match": {"method": "status", "params.status": "dead"}}],
    "timeout_s": 5.0,
}


class RpcServer:
    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.requests = asyncio.Event()  # set when both requests of a round are in

    def select_subprotocol(self, connection: ServerConnection, offered: Any) -> Any:
        path = urlsplit(connection.request.path).path if connection.request else ""
        return None if path == "/rpc-noproto" or "jsonrpc-2.0" not in offered else "jsonrpc-2.0"

    async def handler(self, ws: ServerConnection) -> None:
        path = urlsplit(ws.request.path).path
        self.headers.append(dict(ws.request.headers.raw_items()))
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "status", "params": {"status": "ready"}}))
        pending: list[dict[str, Any]] = []
        async for raw in ws:
            if isinstance(raw, bytes):
                await ws.send(raw)
                continue
            request = json.loads(raw)
            if path == "/rpc-dead":
                await ws.send(json.dumps({"jsonrpc": "2.0", "method": "status", "params": {"status": "dead"}}))
                continue
            pending.append(request)
            if len(pending) < 2:
                continue
            self.requests.set()
            if path == "/rpc-lagging":  # replies are on their way, slowly
                await asyncio.sleep(0.4)
            await ws.send(json.dumps({"jsonrpc": "2.0", "method": "status", "params": {"status": "idle"}}))
            for req in reversed(pending):  # the second request is answered first
                if req["method"] == "echo":
                    if path == "/rpc-slow":
                        continue
                    text = "" if path == "/rpc-changed" else req["params"]["text"]
                    await ws.send(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": {"text": text}}))
                else:
                    await ws.send(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": {"sum": 42}}))
            pending.clear()


@asynccontextmanager
async def rpc_server() -> AsyncIterator[tuple[str, RpcServer]]:
    state = RpcServer()
    async with serve(state.handler, "127.0.0.1", 0, select_subprotocol=state.select_subprotocol) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", state


def rpc_exchange(
    path: str, *, auth: dict[str, Any] | None = None, token: str | None = None, step: dict[str, Any] | None = None
) -> tuple[Any, RpcServer]:
    async def main() -> Any:
        async with rpc_server() as (base, state):
            ws_step = WsStep.model_validate({**(step or RPC_STEP), "path": path})
            exchange = await run_ws_exchange(
                url=ws_url(base, path),
                step=ws_step,
                context={"nonce": "nonce-abc"},
                auth=AuthConfig.model_validate(auth or {}),
                token=token,
                session_id="s1",
                run_start_ns=time.monotonic_ns(),
                connect_timeout_s=2.0,
                close_timeout_s=1.0,
                run_id="r1",
            )
            return exchange, state

    return asyncio.run(main())


def cancelled_mid_reply(path: str) -> dict[str, Any]:
    """Cancel an exchange (Ctrl-C, the soak's deadline) once its requests are in, before any reply;
    what it captured for the finally steps."""

    async def main() -> dict[str, Any]:
        captured: dict[str, Any] = {}
        async with rpc_server() as (base, state):
            task = asyncio.create_task(
                run_ws_exchange(
                    url=ws_url(base, path),
                    step=WsStep.model_validate({**RPC_STEP, "path": path}),
                    context={"nonce": "nonce-abc"},
                    auth=AuthConfig.model_validate({}),
                    token=None,
                    session_id="s1",
                    run_start_ns=time.monotonic_ns(),
                    connect_timeout_s=2.0,
                    close_timeout_s=1.0,
                    run_id="r1",
                    captured_into=captured,
                )
            )
            await asyncio.wait_for(state.requests.wait(), 5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 5)  # bounded: a reply that never comes does not hold it
        return captured

    return asyncio.run(main())


def test_cancelled_while_a_reply_to_capture_is_on_its_way_the_exchange_still_captures_it() -> None:
    # The JSON-RPC service's session.open: the id a finally step needs to close the session comes in
    # the reply. Cancelled between request and reply, the exchange reads on briefly (sending nothing):
    # before, the id was lost and Ctrl-C left a session open on the service.
    assert cancelled_mid_reply("/rpc-lagging") == {"echoed": "hi nonce-abc"}
    assert cancelled_mid_reply("/rpc-slow") == {}  # the reply to capture never comes: it gives up


def test_a_conversation_finds_its_replies_by_id_among_notifications_and_checks_their_content() -> None:
    exchange, _ = rpc_exchange("/rpc")
    rec = exchange.record
    assert rec.outcome.kind is OutcomeKind.OK, rec.outcome.label
    assert exchange.captured == {"echoed": "hi nonce-abc"}  # for later steps and finally
    assert rec.event_types[0] == "status" and "<binary 64 bytes>" in rec.event_types
    assert rec.frame_counts["matched"] == 4 and rec.frame_counts["ignored"] >= 1
    assert rec.close_code == 1000 and rec.total_s is not None


@pytest.mark.parametrize(
    ("path", "kind", "label"),
    [
        ("/rpc-changed", OutcomeKind.CONTENT_MISMATCH, "content_mismatch(echo: result.text)"),
        ("/rpc-dead", OutcomeKind.FAILED_BY_MESSAGE, "failed_by_message(backend_dead)"),
        ("/rpc-noproto", OutcomeKind.SUBPROTOCOL_MISMATCH, "subprotocol_mismatch(wanted=jsonrpc-2.0, got=none)"),
        ("/rpc-slow", OutcomeKind.TIMEOUT, "timeout(rpc:echo:jsonrpc=2.0)"),
    ],
)
def test_each_way_a_conversation_fails_is_named(path: str, kind: OutcomeKind, label: str) -> None:
    rec = rpc_exchange(path)[0].record
    assert rec.outcome.kind is kind
    assert rec.outcome.label == label
    assert rec.close_code == 1000  # we closed the socket ourselves, also when the server never would
    if kind is OutcomeKind.CONTENT_MISMATCH:
        assert rec.outcome.path == "result.text" and rec.outcome.got == ""
    assert json.loads(json.dumps(rec.to_dict()))["outcome"]["label"] == label


def test_the_soak_step_timeout_bounds_a_conversation_that_would_wait_longer() -> None:
    async def main() -> Any:
        async with rpc_server() as (base, _):
            step = WsStep.model_validate({**RPC_STEP, "path": "/rpc-slow"})
            return await run_ws_session(
                url=ws_url(base, "/rpc-slow"),
                step=step,
                context={"nonce": "n"},
                auth=AuthConfig(),
                token=None,
                session_id="s1",
                run_start_ns=time.monotonic_ns(),
                step_timeout_s=0.3,
            )

    rec = asyncio.run(main())
    assert rec.outcome.label == "timeout(rpc:echo:jsonrpc=2.0)"


@pytest.mark.parametrize(("via", "sent"), [("header", True), ("none", False)])
def test_a_static_token_goes_on_the_handshake_unless_the_scenario_says_none(via: str, sent: bool) -> None:
    auth = {"mode": "static", "header_name": "X-API-Key", "header_format": "{token}", "ws_token_via": via}
    exchange, state = rpc_exchange("/rpc", auth=auth, token=TOKEN)
    assert exchange.record.outcome.is_ok
    assert (state.headers[0].get("X-API-Key") == TOKEN) is sent
    assert TOKEN not in json.dumps(exchange.record.to_dict())


def test_soak_of_a_conversation_with_static_credentials() -> None:
    config = ScenarioConfig.model_validate(
        {
            "auth": {"mode": "static", "header_name": "X-API-Key", "header_format": "{token}"},
            "users": {
                "count": 2,
                "credentials": [{"name": "alice", "token": "tok-alice-1"}, {"name": "bob", "token": "tok-bob-22"}],
            },
            "golden_path": {"steps": [RPC_STEP]},
            "soak": {"sessions": 20, "concurrency": 4, "connect_timeout_s": 2.0, "close_timeout_s": 1.0},
        }
    )

    async def main() -> Any:
        async with rpc_server() as (base, state):
            return await run_soak(base, config), state

    result, state = asyncio.run(main())
    assert result.aggregate.sessions == 20 and result.aggregate.ok == 20
    assert {h.get("X-API-Key") for h in state.headers} == {"tok-alice-1", "tok-bob-22"}
    assert {r.user for r in result.records} == {"alice", "bob"}
