"""The healthy sample service against plain clients: the golden path, isolation, bad input."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Iterator

import httpx
import pytest
from demo_client import (
    TIMEOUT_S,
    Account,
    make_account,
    make_thread,
    run_session,
    user_message,
    ws_url,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from stability_lib.demo import AGENT_STEPS, MAX_BODY_BYTES, MAX_CONTENT_CHARS, MAX_WS_FRAME_BYTES, serve


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve(variant="candidate") as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=TIMEOUT_S) as session:
        yield session


@pytest.fixture
def alice(client: httpx.Client) -> Account:
    return make_account(client, "alice")


@pytest.fixture
def bob(client: httpx.Client) -> Account:
    return make_account(client, "bob")


def test_golden_path(base_url: str, client: httpx.Client, alice: Account) -> None:
    thread_id = make_thread(client, alice, "golden")
    nonce = secrets.token_hex(8)
    outcome = asyncio.run(run_session(base_url, alice.token, [user_message(thread_id, f"plan {nonce}")]))

    assert outcome.close_code is None
    expected = [(kind, agent) for agent in AGENT_STEPS for kind in ("agent_started", "agent_completed")]
    assert [(e["type"], e.get("agent")) for e in outcome.events[:-1]] == expected
    final = outcome.final
    assert final is not None and final["thread_id"] == thread_id and nonce in final["content"]

    listed = client.get(f"/api/threads/{thread_id}/messages", headers=alice.headers)
    assert listed.status_code == 200
    assert [(m["role"], m["content"]) for m in listed.json()] == [
        ("user", f"plan {nonce}"),
        ("assistant", final["content"]),
    ]
    threads = client.get("/api/threads", headers=alice.headers).json()
    assert [t["id"] for t in threads] == [thread_id]
    assert set(threads[0]) == {"id", "title", "created_at"}


def test_a_session_carries_several_messages_and_the_agents_work_on_history(
    base_url: str, client: httpx.Client, alice: Account
) -> None:
    thread_id = make_thread(client, alice)
    outcome = asyncio.run(
        run_session(
            base_url,
            alice.token,
            [user_message(thread_id, "apple apple pear"), user_message(thread_id, "apple kiwi")],
        )
    )
    finals = [e for e in outcome.events if e["type"] == "final_response"]
    assert len(finals) == 2
    stats = [e for e in outcome.events if e["type"] == "agent_completed" and e["agent"] == "optimization"]
    assert stats[-1]["result"]["top_words"][0] == ["apple", 3]
    assert "3 messages" in finals[-1]["content"]  # user, assistant, user


def test_two_users_never_see_each_others_data(
    base_url: str, client: httpx.Client, alice: Account, bob: Account
) -> None:
    alice_thread = make_thread(client, alice)
    bob_thread = make_thread(client, bob)
    alice_secret, bob_secret = secrets.token_hex(8), secrets.token_hex(8)

    async def both() -> list[str]:
        outcomes = await asyncio.gather(
            run_session(base_url, alice.token, [user_message(alice_thread, f"a {alice_secret}")] * 3),
            run_session(base_url, bob.token, [user_message(bob_thread, f"b {bob_secret}")] * 3),
        )
        return [json.dumps(o.events) for o in outcomes]

    alice_events, bob_events = asyncio.run(both())
    assert alice_secret in alice_events and bob_secret not in alice_events
    assert bob_secret in bob_events and alice_secret not in bob_events

    for path in (f"/api/threads/{alice_thread}", f"/api/threads/{alice_thread}/messages"):
        assert client.get(path, headers=bob.headers).status_code == 404
    posted = client.post(f"/api/threads/{alice_thread}/messages", json={"content": "x"}, headers=bob.headers)
    assert posted.status_code == 404
    assert alice_secret not in client.get(f"/api/threads/{bob_thread}/messages", headers=bob.headers).text
    assert [t["id"] for t in client.get("/api/threads", headers=bob.headers).json()] == [bob_thread]
    # bob cannot use alice's thread over the WebSocket either
    outcome = asyncio.run(run_session(base_url, bob.token, [user_message(alice_thread, "peek")]))
    assert [e["code"] for e in outcome.events] == ["thread_not_found"]


def test_health_docs_and_openapi_are_served(client: httpx.Client) -> None:
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "database": "ok", "variant": "candidate", "faults": []}
    assert "swagger" in client.get("/api/docs").text.lower()
    spec = client.get("/api/openapi.json").json()
    assert {"/api/auth/register", "/api/auth/login", "/api/threads", "/api/threads/{thread_id}/messages"} <= set(
        spec["paths"]
    )


def test_auth_errors(client: httpx.Client, alice: Account) -> None:
    duplicate = client.post("/api/auth/register", json={"username": alice.username, "password": "whatever123"})
    assert duplicate.status_code == 409
    wrong = client.post("/api/auth/login", json={"username": alice.username, "password": "wrong-password"})
    assert wrong.status_code == 401
    unknown = client.post("/api/auth/login", json={"username": "nobody_here", "password": "wrong-password"})
    assert unknown.status_code == 401
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": f"Basic {alice.token}"}):
        response = client.get("/api/threads", headers=headers)
        assert response.status_code == 401
        assert response.json()["detail"]


def test_websocket_needs_a_valid_token(base_url: str, alice: Account) -> None:
    async def handshake_status(url: str, headers: dict[str, str] | None = None) -> int:
        try:
            async with connect(url, additional_headers=headers, open_timeout=TIMEOUT_S):
                return 101
        except InvalidStatus as refused:
            return refused.response.status_code

    assert asyncio.run(handshake_status(ws_url(base_url))) == 403
    assert asyncio.run(handshake_status(ws_url(base_url), {"Authorization": "Bearer forged"})) == 403
    assert asyncio.run(handshake_status(ws_url(base_url) + "?token=forged")) == 403
    assert asyncio.run(handshake_status(ws_url(base_url) + f"?token={alice.token}")) == 101
    assert asyncio.run(handshake_status(ws_url(base_url), alice.headers)) == 101


def test_bad_requests_get_4xx_json_never_500(client: httpx.Client, alice: Account) -> None:
    thread_id = make_thread(client, alice)
    json_headers = {**alice.headers, "Content-Type": "application/json"}
    cases = {
        "malformed JSON": client.post("/api/threads", content=b'{"title": ', headers=json_headers),
        "wrong type": client.post("/api/threads", json=["not", "an", "object"], headers=alice.headers),
        "unknown field": client.post("/api/threads", json={"title": "t", "x": 1}, headers=alice.headers),
        "unknown thread": client.get("/api/threads/424242/messages", headers=alice.headers),
        "thread id not a number": client.get("/api/threads/abc/messages", headers=alice.headers),
        "oversize content": client.post(
            f"/api/threads/{thread_id}/messages",
            json={"content": "x" * (MAX_CONTENT_CHARS + 1)},
            headers=alice.headers,
        ),
        "oversize body": client.post("/api/threads", content=b"x" * (MAX_BODY_BYTES + 1), headers=json_headers),
        "limit out of range": client.get("/api/threads", params={"limit": 0}, headers=alice.headers),
        "unknown route": client.get("/api/nothing", headers=alice.headers),
        "short password": client.post("/api/auth/register", json={"username": "shorty", "password": "x"}),
        # A lone surrogate is valid JSON but no UTF-8 text: FastAPI's own 422 echoed it and broke (a 500).
        "lone surrogate": client.post(
            "/api/auth/login",
            content=b'{"username": "a\\ud8ffb", "password": "secret-password-1"}',
            headers={"Content-Type": "application/json"},
        ),
    }
    statuses = {name: response.status_code for name, response in cases.items()}
    assert all(400 <= code < 500 for code in statuses.values()), statuses
    assert statuses["unknown thread"] == 404
    assert statuses["oversize content"] == 422
    assert statuses["oversize body"] == 413
    for name, response in cases.items():
        assert response.headers["content-type"].startswith("application/json"), name
        assert "detail" in response.json(), name
    # A 422 names what is wrong, never the input: a password sent by mistake stays out of the answer.
    assert "secret-password-1" not in cases["lone surrogate"].text
    assert "input" not in cases["short password"].json()["detail"][0]
    exact = client.post(
        f"/api/threads/{thread_id}/messages", json={"content": "x" * MAX_CONTENT_CHARS}, headers=alice.headers
    )
    assert exact.status_code == 201


def test_bad_websocket_messages_get_error_events_and_the_session_survives(
    base_url: str, client: httpx.Client, alice: Account
) -> None:
    thread_id = make_thread(client, alice)
    bad: list[dict[str, object] | str] = [
        "{not json",
        "[1, 2]",
        {"type": "shout", "thread_id": thread_id, "content": "x"},
        {"type": "user_message", "thread_id": "1", "content": "x"},
        {"type": "user_message", "thread_id": thread_id, "content": ""},
        user_message(424242, "x"),
        user_message(thread_id, "x" * (MAX_CONTENT_CHARS + 1)),
    ]
    outcome = asyncio.run(run_session(base_url, alice.token, [*bad, user_message(thread_id, "fine")]))
    assert outcome.close_code is None
    errors = [e["code"] for e in outcome.events if e["type"] == "error"]
    assert errors == [
        "invalid_json",
        "unknown_type",
        "unknown_type",
        "invalid_message",
        "invalid_message",
        "thread_not_found",
        "content_too_large",
    ]
    assert outcome.final is not None and "fine" in outcome.final["content"]


def test_an_oversize_websocket_frame_is_closed_with_1009(base_url: str, alice: Account) -> None:
    async def send_huge() -> int | None:
        async with connect(ws_url(base_url), additional_headers=alice.headers) as ws:
            await ws.send("x" * (MAX_WS_FRAME_BYTES + 1))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), TIMEOUT_S)
            return ws.close_code

    assert asyncio.run(send_huge()) == 1009


def test_echo_endpoint_needs_no_token_and_echoes_frames(base_url: str) -> None:
    async def echo() -> list[str | bytes]:
        async with connect(ws_url(base_url, "/ws/echo")) as ws:
            replies: list[str | bytes] = []
            for frame in ("ping", "ünïcode", b"\x00\x01"):
                await ws.send(frame)
                replies.append(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
            return replies

    assert asyncio.run(echo()) == ["ping", "ünïcode", b"\x00\x01"]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_client_that_vanishes_mid_answer_is_not_a_server_error() -> None:
    errors = _Records()
    uvicorn_errors = logging.getLogger("uvicorn.error")
    uvicorn_errors.addHandler(errors)
    try:
        with serve(faults=["slow=agent_data:100"]) as url, httpx.Client(base_url=url) as client:
            account = make_account(client)
            thread_id = make_thread(client, account)

            async def vanish() -> None:
                async with connect(ws_url(url), additional_headers=account.headers) as ws:
                    await ws.send(json.dumps(user_message(thread_id, "x")))
                    await ws.recv()  # agent_started; then the client is gone
                    ws.transport.abort()
                await asyncio.sleep(0.3)  # the server finds out while sending agent_completed

            asyncio.run(vanish())
            assert client.get("/health").json()["status"] == "ok"
            outcome = asyncio.run(run_session(url, account.token, [user_message(thread_id, "again")]))
            assert outcome.final is not None
    finally:
        uvicorn_errors.removeHandler(errors)
    assert [r.getMessage() for r in errors.records] == []
