"""Plain clients for the sample-service tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_account(client: httpx.Client, prefix: str = "user") -> Account:
    username = f"{prefix}_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    registered = client.post("/api/auth/register", json={"username": username, "password": password})
    assert registered.status_code == 201, registered.text
    login = client.post("/api/auth/login", json={"username": username, "password": password})
    assert login.status_code == 200, login.text
    return Account(registered.json()["id"], username, password, login.json()["access_token"])


def make_thread(client: httpx.Client, account: Account, title: str = "thread") -> int:
    response = client.post("/api/threads", json={"title": title}, headers=account.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def ws_url(base_url: str, path: str = "/ws") -> str:
    return "ws" + base_url[len("http") :] + path


@dataclass(frozen=True)
class SessionOutcome:
    """What a plain client saw in one WebSocket session."""

    events: tuple[dict[str, Any], ...]
    close_code: int | None  # None: still open when we stopped reading (normal end)
    close_reason: str

    @property
    def final(self) -> dict[str, Any] | None:
        finals = [e for e in self.events if e["type"] == "final_response"]
        return finals[-1] if finals else None


async def run_session(base_url: str, token: str, messages: list[dict[str, Any] | str]) -> SessionOutcome:
    """Send each message and read events until its final_response/error, or the close."""
    events: list[dict[str, Any]] = []
    async with connect(
        ws_url(base_url), additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=TIMEOUT_S
    ) as ws:
        try:
            for message in messages:
                await ws.send(message if isinstance(message, str) else json.dumps(message))
                while True:
                    event = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
                    events.append(event)
                    if event["type"] in ("final_response", "error"):
                        break
        except ConnectionClosed as closed:
            # rcvd is None when no close frame came: the protocol reports 1006.
            code = closed.rcvd.code if closed.rcvd is not None else 1006
            reason = closed.rcvd.reason if closed.rcvd is not None else ""
            return SessionOutcome(tuple(events), code, reason)
    return SessionOutcome(tuple(events), None, "")


def user_message(thread_id: int, content: str) -> dict[str, Any]:
    return {"type": "user_message", "thread_id": thread_id, "content": content}
