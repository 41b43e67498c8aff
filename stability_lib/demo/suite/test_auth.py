from __future__ import annotations

import base64
import json

import httpx
import pytest
from conftest import TIMEOUT_S, User
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

pytestmark = pytest.mark.auth


def _forged_token(user_id: int) -> str:
    """A well-formed HS256 token for ``user_id`` signed with a guessed key."""

    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'sub': str(user_id), 'exp': 4102444800})}.c2lnbmF0dXJl"


def test_login_returns_a_bearer_token(client: httpx.Client, user: User) -> None:
    response = client.post("/api/auth/login", json={"username": user.username, "password": user.password})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["access_token"]


def test_wrong_password_is_rejected(client: httpx.Client, user: User) -> None:
    response = client.post("/api/auth/login", json={"username": user.username, "password": "not-the-password"})
    assert response.status_code == 401


def test_missing_token_is_rejected(client: httpx.Client, user: User) -> None:
    assert client.get("/api/threads").status_code == 401


def test_garbage_token_is_rejected(client: httpx.Client, user: User) -> None:
    response = client.get("/api/threads", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401


def test_forged_signature_is_rejected(client: httpx.Client, user: User) -> None:
    response = client.get("/api/threads", headers={"Authorization": f"Bearer {_forged_token(user.id)}"})
    assert response.status_code == 401


def test_websocket_refuses_a_forged_token(ws_url: str, user: User) -> None:
    with (
        pytest.raises(InvalidStatus) as refused,
        connect(f"{ws_url}/ws?token={_forged_token(user.id)}", open_timeout=TIMEOUT_S),
    ):
        pass
    assert refused.value.response.status_code == 403
