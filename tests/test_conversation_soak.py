"""The conversation soak (issue 19) against real WebSocket servers on 127.0.0.1.

Each server behaves one way a real service can: echoes every request, garbles some replies' content,
drops some replies, answers with another id, sends a message that means "my backend died", closes
mid-soak, refuses the handshake. The soak must count every message with the right status and
reason, record a latency for each correct reply, and stay within its caps. No test asserts a time.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from stability_lib.probes.conversation_soak import run_conversation_soak, run_conversation_soak_sync
from stability_lib.probes.conversation_soak_model import MessageLog, MessageStatus, SessionLedger, SoakPlan
from stability_lib.probes.conversation_soak_results import conversation_soak_claims, summarize_conversation_soak
from stability_lib.probes.conversation_spec import ConversationSoakConfig

TEXT = "x" * 60

# reply(connection index, request index in its connection (1-based), request) -> what the server does:
# a list of messages to send, or "close" to close with 1011.
Behaviour = Callable[[int, int, dict[str, Any]], list[Any] | str]


def echo(_conn: int, _n: int, request: dict[str, Any]) -> list[Any]:
    return [request]


def config(**overrides: Any) -> ConversationSoakConfig:
    base: dict[str, Any] = {
        "send": {"id": "{msg_id}", "type": "echo", "text": TEXT, "n": "{seq}"},
        "correlate": {"id": "{msg_id}"},
        "check": {"type": "echo", "text": TEXT, "n": "{seq}"},
        "sessions": 4,
        "concurrency": 2,
        "messages_per_session": 25,
        "duration_s": 60,
        "reply_timeout_s": 5,
        "connect_timeout_s": 5,
        "close_timeout_s": 2,
    }
    return ConversationSoakConfig.model_validate({**base, **overrides})


class Server:
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.connections = 0
        self.open_now = 0
        self.max_open = 0
        self.received = 0

    async def handler(self, ws: ServerConnection) -> None:
        index = self.connections
        self.connections += 1
        self.open_now += 1
        self.max_open = max(self.max_open, self.open_now)
        try:
            n = 0
            async for raw in ws:
                n += 1
                self.received += 1
                action = self.behaviour(index, n, json.loads(raw))
                if action == "close":
                    await ws.close(1011, "backend gone")
                    return
                for message in action:
                    await ws.send(message if isinstance(message, str) else json.dumps(message))
        except ConnectionClosed:
            pass  # the client ended the session while replies were going out
        finally:
            self.open_now -= 1


@asynccontextmanager
async def running(behaviour: Behaviour = echo, **kw: Any) -> AsyncIterator[tuple[Server, str]]:
    server = Server(behaviour)
    async with serve(server.handler, "127.0.0.1", 0, compression=None, **kw) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        yield server, f"ws://127.0.0.1:{port}/soak"


def soak(behaviour: Behaviour = echo, cfg: ConversationSoakConfig | None = None, **kw: Any) -> tuple[Any, Server]:
    async def main() -> tuple[Any, Server]:
        async with running(behaviour, **kw) as (server, url):
            return await run_conversation_soak(url, cfg or config()), server

    return asyncio.run(main())


def test_every_message_is_counted_and_timed_against_an_echo_server() -> None:
    result, server = soak()
    summary = summarize_conversation_soak(result)
    assert server.received == 100
    assert summary.messages_sent == summary.messages_ok == 100
    assert summary.messages_failed == 0 and summary.failure_rate == 0.0
    assert result.latency_s.size == 100 and np.all(np.isfinite(result.latency_s)) and np.all(result.latency_s >= 0)
    assert sorted(np.bincount(result.session).tolist()) == [25, 25, 25, 25]
    assert [s.outcome for s in result.sessions] == ["ok"] * 4
    assert all(s.sent == s.ok == 25 and s.close_code == 1000 for s in result.sessions)
    assert result.stopped_by == "messages"
    assert server.max_open <= 2  # the concurrency cap
    lo, hi = summary.failure_interval
    assert lo == 0.0 and 0 < summary.failure_upper_bound < hi < 0.05
    assert set(summary.latency_ms) == {"p50", "p90", "p99", "p99.9", "max", "mean"}
    assert "100 of 100 messages answered correctly" in summary.text


def test_a_garbled_reply_fails_with_content_mismatch_naming_the_path() -> None:
    def garble(_conn: int, n: int, request: dict[str, Any]) -> list[Any]:
        return [{**request, "text": "lost"}] if n % 5 == 0 else [request]

    result, _ = soak(garble)
    summary = summarize_conversation_soak(result)
    assert summary.messages_ok == 80 and summary.messages_failed == 20
    assert summary.failures_by_reason == {"content_mismatch(text)": 20}
    assert result.count(MessageStatus.CONTENT_MISMATCH) == 20
    example = result.failure_examples[0]
    assert example.expected == TEXT and example.got == "lost" and example.seq % 5 == 0
    assert summary.failure_rate == pytest.approx(0.2)
    lo, hi = summary.failure_interval
    assert lo < 0.2 < hi
    assert [s.outcome for s in result.sessions] == ["ok"] * 4  # the connection itself was fine


def test_a_templated_check_catches_a_reply_to_the_wrong_request() -> None:
    def swap_n(_conn: int, n: int, request: dict[str, Any]) -> list[Any]:
        return [{**request, "n": request["n"] + 1}] if n == 3 else [request]

    result, _ = soak(swap_n, config(sessions=1, concurrency=1, messages_per_session=5))
    assert result.failure_reasons == {"content_mismatch(n)": 1}
    assert result.failure_examples[0].expected == "3" and result.failure_examples[0].got == "4"


def test_dropped_replies_time_out_and_the_session_goes_on() -> None:
    def drop(_conn: int, n: int, request: dict[str, Any]) -> list[Any]:
        return [] if n % 4 == 0 else [request]

    result, server = soak(drop, config(sessions=2, concurrency=2, messages_per_session=8, reply_timeout_s=0.3))
    summary = summarize_conversation_soak(result)
    assert server.received == 16
    assert summary.messages_ok == 12 and summary.failures_by_reason == {"timeout": 4}
    assert np.all(np.isnan(result.latency_s[result.status == MessageStatus.TIMEOUT]))
    assert [s.outcome for s in result.sessions] == ["ok", "ok"]


def test_a_reply_with_another_id_is_unsolicited_and_its_request_times_out() -> None:
    def wrong_id(_conn: int, n: int, request: dict[str, Any]) -> list[Any]:
        return [{**request, "id": "someone-else"}] if n == 2 else [request]

    result, _ = soak(wrong_id, config(sessions=1, concurrency=1, messages_per_session=4, reply_timeout_s=0.3))
    summary = summarize_conversation_soak(result)
    assert summary.messages_ok == 3 and summary.failures_by_reason == {"timeout": 1}
    assert summary.unmatched == {"unsolicited": 1}


def test_unsolicited_status_messages_between_replies_are_ignored() -> None:
    def chatty(_conn: int, _n: int, request: dict[str, Any]) -> list[Any]:
        return [{"type": "status", "state": "busy"}, "not json at all", request]

    result, _ = soak(chatty, config(sessions=2, concurrency=2, messages_per_session=5))
    summary = summarize_conversation_soak(result)
    assert summary.messages_ok == 10 and summary.messages_failed == 0
    assert summary.unmatched == {"unsolicited": 10, "not_json": 10}


def test_unmatched_fail_ends_the_session_naming_what_came() -> None:
    def chatty(_conn: int, n: int, request: dict[str, Any]) -> list[Any]:
        return ["not json at all"] if n == 3 else [request]

    cfg = config(sessions=1, concurrency=1, messages_per_session=10, unmatched="fail")
    result, _ = soak(chatty, cfg)
    (session,) = result.sessions
    assert session.outcome == "unmatched_message(not_json)"
    assert session.ok == 2 and session.sent == 3 and session.failed == 1
    assert result.failure_reasons == {"unmatched_message(not_json)": 1}


def test_a_message_that_means_failure_ends_the_session_by_name() -> None:
    def dies(_conn: int, n: int, request: dict[str, Any]) -> list[Any]:
        return [{"type": "status", "state": "dead"}] if n == 4 else [request]

    cfg = config(
        sessions=2,
        concurrency=2,
        messages_per_session=10,
        fail_on=[{"name": "backend_dead", "match": {"type": "status", "state": "dead"}}],
    )
    result, _ = soak(dies, cfg)
    summary = summarize_conversation_soak(result)
    assert summary.sessions_by_outcome == {"failed_by_message(backend_dead)": 2}
    assert summary.messages_ok == 6 and summary.failures_by_reason == {"failed_by_message(backend_dead)": 2}
    assert result.count(MessageStatus.FAILED_BY_MESSAGE) == 2


def test_a_server_that_closes_mid_soak_fails_the_waiting_request() -> None:
    def closes(_conn: int, n: int, request: dict[str, Any]) -> list[Any] | str:
        return "close" if n == 3 else [request]

    result, _ = soak(closes, config(sessions=2, concurrency=1, messages_per_session=10))
    summary = summarize_conversation_soak(result)
    assert summary.sessions_by_outcome == {"closed_by_peer(1011)": 2}
    assert summary.messages_ok == 4 and summary.failures_by_reason == {"closed_by_peer(1011)": 2}
    assert result.count(MessageStatus.CONNECTION_LOST) == 2


def test_a_refused_connection_and_a_refused_handshake_are_session_outcomes() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = asyncio.run(run_conversation_soak(f"ws://127.0.0.1:{port}/", config(sessions=2, concurrency=2)))
    assert [s.outcome for s in result.sessions] == ["connect_failed(ConnectionRefusedError)"] * 2
    assert result.status.size == 0

    def forbid(_connection: ServerConnection, _request: Any) -> Any:
        return _connection.respond(HTTPStatus.FORBIDDEN, "no\n")

    result, server = soak(cfg=config(sessions=2, concurrency=1), process_request=forbid)
    assert [s.outcome for s in result.sessions] == ["handshake_failed(403)"] * 2
    assert server.received == 0


def test_a_subprotocol_the_server_does_not_choose_ends_the_session() -> None:
    result, server = soak(cfg=config(sessions=1, concurrency=1, subprotocols=["graphql-transport-ws"]))
    assert result.sessions[0].outcome == "subprotocol_mismatch(wanted=graphql-transport-ws, got=none)"
    assert server.received == 0


def test_the_duration_cap_stops_a_paced_soak_and_stopped_messages_are_not_failures() -> None:
    cfg = config(sessions=3, concurrency=3, messages_per_session=10_000, rate_per_session=20, duration_s=0.5)
    result, server = soak(cfg=cfg)
    summary = summarize_conversation_soak(result)
    assert result.stopped_by == "duration"
    # The pacer never sends early: at most rate x duration + 1 per session (the first goes at once).
    assert summary.messages_sent <= 3 * (20 * 0.5 + 1)  # (a session that opened after the cap sends none)
    assert summary.messages_failed == 0
    assert summary.messages_ok + summary.messages_stopped == summary.messages_sent == server.received
    assert {s.outcome for s in result.sessions} == {"stopped(duration)"}


def test_in_flight_window_keeps_several_requests_pending() -> None:
    seen_pending: list[int] = []

    def batch(_conn: int, n: int, request: dict[str, Any]) -> list[Any]:
        seen_pending.append(n)
        return [request]

    result, _ = soak(batch, config(sessions=1, concurrency=1, messages_per_session=30, in_flight=5))
    assert summarize_conversation_soak(result).messages_ok == 30


def test_uvloop_gives_the_same_counts() -> None:
    pytest.importorskip("uvloop")
    import threading

    ready = threading.Event()
    box: dict[str, Any] = {}

    def serve_in_thread() -> None:
        async def main() -> None:
            async with running() as (server, url):
                box["server"], box["url"], box["loop"] = server, url, asyncio.get_running_loop()
                box["stop"] = asyncio.Event()
                ready.set()
                await box["stop"].wait()

        asyncio.run(main())

    thread = threading.Thread(target=serve_in_thread, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        result = run_conversation_soak_sync(box["url"], config(), use_uvloop=True)
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)
    summary = summarize_conversation_soak(result)
    assert summary.messages_ok == 100 and summary.sessions_ok == 4


# -- pure parts: the ledger with a fake clock, the config checks ---------------------------------------


def test_ledger_resolves_by_correlation_and_json_type() -> None:
    cfg = config(send={"n": "{seq}"}, correlate={"n": "{seq}"}, check={}, messages_per_session=3, in_flight=3)
    log = MessageLog()
    ledger = SessionLedger(SoakPlan(cfg), 0, log, origin=100.0)
    sent = [json.loads(ledger.request(100.0 + i)) for i in range(3)]
    assert sent == [{"n": 1}, {"n": 2}, {"n": 3}] and ledger.due_at() is None
    ledger.receive_text(json.dumps({"n": True}), 104.0)  # true is not 1 in JSON
    assert ledger.unmatched == {"unsolicited": 1} and len(ledger.pending) == 3
    ledger.receive_text(json.dumps({"n": 2}), 104.5)
    assert log.latency.tolist() == [3.5] and log.sent_at.tolist() == [1.0]
    assert ledger.expire(110.5) == 2 and ledger.done
    ledger.receive_text(json.dumps({"n": 1}), 111.0)
    assert ledger.unmatched == {"unsolicited": 1, "late_reply": 1}
    assert list(log.status) == [MessageStatus.OK, MessageStatus.TIMEOUT, MessageStatus.TIMEOUT]


def test_ledger_paces_requests_at_the_rate() -> None:
    cfg = config(rate_per_session=10, messages_per_session=3, in_flight=3)
    ledger = SessionLedger(SoakPlan(cfg), 7, MessageLog(), origin=0.0)
    assert ledger.due_at() == -math.inf
    first = json.loads(ledger.request(5.0))
    assert first["id"] == "7-1" and first["n"] == 1
    assert ledger.due_at() == pytest.approx(5.1)
    ledger.request(5.1)
    assert ledger.due_at() == pytest.approx(5.2)


def test_send_template_keeps_json_types_and_escapes_context() -> None:
    cfg = config(send={"id": "req-{msg_id}", "n": "{seq}", "s": "{session}", "q": '{note} 100% "ok"'})
    ledger = SessionLedger(SoakPlan(cfg, {"note": 'a"b'}), 3, MessageLog(), origin=0.0)
    assert json.loads(ledger.request(0.0)) == {"id": "req-3-1", "n": 1, "s": 3, "q": 'a"b 100% "ok"'}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"correlate": {"id": "fixed"}}, "no id placeholder"),
        ({"correlate": {}}, "name the reply's path"),
        ({"correlate": {".": "{msg_id}"}}, "whole message is not an id"),
        ({"send": {"type": "echo"}}, "carries no {msg_id} or {seq}"),
        ({"sessions": 2000, "messages_per_session": 10_000, "allow_over_caps": True}, "over the cap of 10,000,000"),
        ({"sessions": 2000, "messages_per_session": 1000}, "allow_over_caps"),
        ({"concurrency": 501}, "concurrency=501 is over the cap of 500"),
        ({"duration_s": 3601, "allow_over_caps": True}, "less than or equal to 3600"),
        ({"check": {"a": {"type": "string"}, "a.b": 1}}, "can never match"),
        ({"send": {"id": "{msg_id"}}, "unbalanced brace"),
    ],
)
def test_config_refuses_what_can_never_work(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("{", r"\{").replace("}", r"\}")):
        config(**overrides)


def test_a_placeholder_without_a_value_is_refused_before_any_traffic() -> None:
    from stability_lib.probes.templates import TemplateError

    with pytest.raises(TemplateError, match="token"):
        SoakPlan(config(headers={"Authorization": "Bearer {token}"}))


def test_claims_pass_on_a_healthy_soak_and_fail_when_replies_lose_their_content() -> None:
    from stability_lib.core.models import Status

    healthy, _ = soak(cfg=config(sessions=10, concurrency=5, messages_per_session=30))
    messages, sessions = conversation_soak_claims(summarize_conversation_soak(healthy), tolerated_rate=0.05)
    assert messages.status is Status.PASS and messages.statistic.startswith(
        "0 of 300 messages failed (failure rate 95% upper bound"
    )
    assert sessions.status is Status.INCONCLUSIVE  # 0 of 10 sessions cannot bound the rate at 5%

    def garble(_conn: int, n: int, request: dict[str, Any]) -> list[Any]:
        return [{**request, "text": ""}] if n % 2 else [request]

    broken, _ = soak(garble, config(sessions=10, concurrency=5, messages_per_session=30))
    messages, _ = conversation_soak_claims(summarize_conversation_soak(broken), tolerated_rate=0.05)
    assert messages.status is Status.FAIL and messages.details["failures_by_reason"] == {"content_mismatch(text)": 150}

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    nothing = asyncio.run(run_conversation_soak(f"ws://127.0.0.1:{port}/", config(sessions=3, concurrency=3)))
    messages, sessions = conversation_soak_claims(summarize_conversation_soak(nothing), tolerated_rate=0.05)
    assert messages.status is Status.INCONCLUSIVE and messages.statistic == "no messages to count"
    assert sessions.status is Status.FAIL and sessions.statistic.startswith("3 of 3 sessions failed (")


@pytest.mark.slow
def test_five_hundred_sessions_at_once_count_every_message() -> None:
    cfg = config(sessions=500, concurrency=500, messages_per_session=40, connect_timeout_s=60, reply_timeout_s=60)
    result, server = soak(cfg=cfg)
    summary = summarize_conversation_soak(result)
    assert server.max_open <= 500 and server.connections == 500
    assert summary.messages_ok == server.received == 20_000 and summary.sessions_ok == 500
    assert np.count_nonzero(np.isfinite(result.latency_s)) == 20_000


def graphql_like(_conn: int, n: int, request: dict[str, Any]) -> list[Any]:
    """graphql-transport-ws in miniature: connection_init -> connection_ack, then subscribe -> next + complete."""
    if request.get("type") == "connection_init":
        return [{"type": "connection_ack"}]
    if request.get("type") != "subscribe":
        return [{"type": "error", "id": request.get("id")}]
    return [
        {"id": request["id"], "type": "next", "payload": {"data": {"echo": request["payload"]["variables"]["v"]}}},
        {"id": request["id"], "type": "complete"},
    ]


GRAPHQL = {
    "init_send": [{"type": "connection_init", "payload": {"session": "{session}"}}],
    "init_expect": {"type": "connection_ack"},
    "send": {"id": "{msg_id}", "type": "subscribe", "payload": {"query": "q", "variables": {"v": "{seq}"}}},
    "correlate": {"id": "{msg_id}"},
    "check": {"type": "next", "payload.data.echo": "{seq}"},
    "fail_on": [{"name": "graphql_error", "match": {"type": "error"}}],
}


def test_an_init_handshake_comes_before_the_first_request() -> None:
    result, server = soak(graphql_like, config(**GRAPHQL, sessions=3, concurrency=3, messages_per_session=10))
    summary = summarize_conversation_soak(result)
    assert summary.messages_ok == 30 and summary.sessions_ok == 3
    assert server.received == 33  # one connection_init per session, then the requests
    assert summary.unmatched == {"unsolicited": 30}  # every `complete` after its `next`


def test_a_missing_init_reply_ends_the_session_as_init_timeout() -> None:
    def no_ack(_conn: int, _n: int, request: dict[str, Any]) -> list[Any]:
        return [{"type": "hello"}]

    cfg = config(**{**GRAPHQL, "init_timeout_s": 0.3}, sessions=2, concurrency=2, messages_per_session=5)
    result, server = soak(no_ack, cfg)
    assert [s.outcome for s in result.sessions] == ["init_timeout", "init_timeout"]
    assert server.received == 2 and result.status.size == 0
    assert summarize_conversation_soak(result).unmatched == {"before_init": 2}


def test_init_templates_cannot_use_per_request_placeholders() -> None:
    with pytest.raises(ValidationError, match="exists per request"):
        config(init_send=[{"type": "connection_init", "id": "{msg_id}"}])


def test_headers_from_the_config_and_the_caller_reach_the_handshake() -> None:
    seen: list[tuple[str | None, str | None]] = []

    def remember(connection: ServerConnection, request: Any) -> Any:
        seen.append((request.headers.get("X-Run"), request.headers.get("Authorization")))
        return None

    cfg = config(sessions=2, concurrency=1, messages_per_session=3, headers={"X-Run": "run-{nonce}"})

    async def main() -> Any:
        async with running(process_request=remember) as (_server, url):
            return await run_conversation_soak(
                url, cfg, context={"nonce": "n1"}, headers={"Authorization": "Bearer t0ken"}
            )

    result = asyncio.run(main())
    assert summarize_conversation_soak(result).messages_ok == 6
    assert seen == [("run-n1", "Bearer t0ken")] * 2


def test_cancelling_the_soak_drops_every_connection() -> None:
    async def main() -> tuple[int, int]:
        async with running() as (server, url):
            cfg = config(sessions=6, concurrency=3, messages_per_session=1_000_000 // 6)
            task = asyncio.ensure_future(run_conversation_soak(url, cfg))
            for _ in range(6000):  # cancelled mid-soak, whatever the machine's speed (bounded wait)
                if server.received >= 200 or task.done():
                    break
                await asyncio.sleep(0.01)
            assert not task.done() and server.received >= 200
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(500):  # the server sees every connection go (bounded wait, no time asserted)
                if server.open_now == 0:
                    break
                await asyncio.sleep(0.01)
            return server.open_now, server.connections

    open_now, connections = asyncio.run(main())
    assert open_now == 0 and connections == 3


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ({"r": {"v": 1.0, "s": "a"}}, None),  # 1.0 is JSON-equal to 1
        ({"r": {"v": True, "s": "a"}}, ("r.v", 1, True)),  # true is not 1
        ({"r": [{"v": 1}], "s": "a"}, ("r.v", 1, "absent")),
        ({"r": {"v": 1, "s": "b"}}, ("r.s", "a", "b")),
        ({"r": {"v": 2, "s": "b"}}, ("r.v", 1, 2)),  # the first failing check in the order written
        ({"r": {"v": 1, "s": "a", "x": []}}, ("r.x", {"not_empty": True}, [])),
    ],
)
def test_reply_checks_compare_with_json_types_in_the_order_written(reply: Any, expected: Any) -> None:
    cfg = config(
        check={"r.v": 1, "r.s": "a", "r.x": {"not_empty": True}} if "x" in str(reply) else {"r.v": 1, "r.s": "a"}
    )
    assert SoakPlan(cfg).check_reply(reply, "0-1", 1, 0) == expected


def test_a_reply_over_max_message_bytes_fails_the_session_as_a_protocol_error() -> None:
    def huge(_conn: int, n: int, request: dict[str, Any]) -> list[Any]:
        return [{**request, "text": "y" * 5000}] if n == 3 else [request]

    result, _ = soak(huge, config(sessions=2, concurrency=2, messages_per_session=6, max_message_bytes=1024))
    summary = summarize_conversation_soak(result)
    assert summary.sessions_by_outcome == {"protocol_error(1009)": 2}
    assert summary.messages_ok == 4 and summary.failures_by_reason == {"protocol_error(1009)": 2}


def test_evidence_is_json_and_thins_latencies_of_a_long_soak() -> None:
    result, _ = soak(cfg=config(sessions=2, concurrency=2, messages_per_session=50))
    evidence = json.loads(json.dumps(result.to_dict(max_samples=10, max_sessions=1)))
    assert evidence["messages_by_status"]["ok"] == 100 and len(evidence["latency_ms_sample"]) == 10
    assert len(evidence["sessions"]) == 1 and evidence["sessions_truncated"] is True
    assert evidence["sessions"][0]["outcome"] == "ok"


def test_a_paced_soak_sends_every_message() -> None:
    result, server = soak(cfg=config(sessions=2, concurrency=2, messages_per_session=6, rate_per_session=40))
    assert summarize_conversation_soak(result).messages_ok == 12 == server.received
    assert result.stopped_by == "messages" and result.max_send_lag_s >= 0


def test_a_correlated_fail_on_rule_fails_a_session_only_on_a_reply_to_its_own_request() -> None:
    # It was applied to every message: an error notification about somebody else's request failed the session.
    rule = {"name": "rpc_error", "correlated": True, "match": {"error": {"exists": True}}}

    def others_error(_conn: int, n: int, request: dict[str, Any]) -> list[Any]:
        return [{"id": "not-ours", "error": {"code": -1}}, request] if n == 3 else [request]

    result, _ = soak(others_error, config(fail_on=[rule]))
    assert summarize_conversation_soak(result).messages_ok == 100

    def our_error(_conn: int, n: int, request: dict[str, Any]) -> list[Any]:
        return [{"id": request["id"], "error": {"code": -1}}] if n == 3 else [request]

    result, _ = soak(our_error, config(fail_on=[rule]))
    assert summarize_conversation_soak(result).sessions_by_outcome == {"failed_by_message(rpc_error)": 4}
    result, _ = soak(others_error, config(fail_on=[{**rule, "correlated": False}]))  # uncorrelated: any message
    assert summarize_conversation_soak(result).sessions_by_outcome == {"failed_by_message(rpc_error)": 4}
