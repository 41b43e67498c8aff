from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from conftest import TIMEOUT_S, User
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.websocket


def _session(ws_url: str, user: User) -> ClientConnection:
    return connect(f"{ws_url}/ws", additional_headers=user.headers, open_timeout=TIMEOUT_S)


def _events_until_final(ws: ClientConnection) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        event = json.loads(ws.recv(timeout=TIMEOUT_S))
        events.append(event)
        if event["type"] in ("final_response", "error"):
            return events


def _ask(ws: ClientConnection, thread_id: int, content: str) -> list[dict[str, Any]]:
    ws.send(json.dumps({"type": "user_message", "thread_id": thread_id, "content": content}))
    return _events_until_final(ws)


def test_echo_returns_each_frame(ws_url: str) -> None:
    with connect(f"{ws_url}/ws/echo", open_timeout=TIMEOUT_S) as ws:
        for text in ("one", "two"):
            ws.send(text)
            assert ws.recv(timeout=TIMEOUT_S) == text


def test_agents_run_in_order_and_answer(ws_url: str, user: User, thread_id: int) -> None:
    nonce = secrets.token_hex(8)
    with _session(ws_url, user) as ws:
        events = _ask(ws, thread_id, f"check {nonce}")
    kinds = [(e["type"], e.get("agent")) for e in events]
    assert kinds == [
        ("agent_started", "data"),
        ("agent_completed", "data"),
        ("agent_started", "optimization"),
        ("agent_completed", "optimization"),
        ("agent_started", "reporting"),
        ("agent_completed", "reporting"),
        ("final_response", None),
    ]
    assert nonce in events[-1]["content"]


def test_a_session_carries_several_messages(ws_url: str, user: User, thread_id: int) -> None:
    with _session(ws_url, user) as ws:
        for i in range(3):
            assert _ask(ws, thread_id, f"message {i}")[-1]["type"] == "final_response"


def test_unknown_thread_is_an_error_event_not_a_crash(ws_url: str, user: User, thread_id: int) -> None:
    with _session(ws_url, user) as ws:
        assert _ask(ws, 999_999_999, "hello")[-1]["type"] == "error"
        assert _ask(ws, thread_id, "still there")[-1]["type"] == "final_response"


def test_invalid_json_is_an_error_event(ws_url: str, user: User) -> None:
    with _session(ws_url, user) as ws:
        ws.send("{not json")
        assert json.loads(ws.recv(timeout=TIMEOUT_S))["type"] == "error"


def test_answer_carries_only_the_users_own_content(
    ws_url: str, user: User, other_user: User, client: Any, thread_id: int
) -> None:
    secret = secrets.token_hex(8)
    with _session(ws_url, user) as ws:
        _ask(ws, thread_id, f"secret {secret}")
    theirs = client.post("/api/threads", json={"title": "theirs"}, headers=other_user.headers).json()
    with _session(ws_url, other_user) as ws:
        final = _ask(ws, theirs["id"], "what do you know?")[-1]
    assert secret not in json.dumps(final)
