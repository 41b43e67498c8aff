from __future__ import annotations

import httpx
import pytest
from conftest import User

pytestmark = pytest.mark.database


def test_health_reports_the_database(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


def test_duplicate_username_is_a_conflict(client: httpx.Client, user: User) -> None:
    response = client.post("/api/auth/register", json={"username": user.username, "password": "another-password"})
    assert response.status_code == 409


def test_created_thread_is_stored(client: httpx.Client, user: User) -> None:
    created = client.post("/api/threads", json={"title": "stored thread"}, headers=user.headers).json()
    fetched = client.get(f"/api/threads/{created['id']}", headers=user.headers)
    assert fetched.status_code == 200
    assert fetched.json()["title"] == "stored thread"


def test_messages_are_stored_in_order_with_their_text(client: httpx.Client, user: User, thread_id: int) -> None:
    texts = ["first", "second — ünïcode ✓", "third"]
    for text in texts:
        response = client.post(f"/api/threads/{thread_id}/messages", json={"content": text}, headers=user.headers)
        assert response.status_code == 201
    listed = client.get(f"/api/threads/{thread_id}/messages", headers=user.headers).json()
    assert [m["content"] for m in listed] == texts


def test_a_user_never_sees_another_users_messages(
    client: httpx.Client, user: User, other_user: User, thread_id: int
) -> None:
    client.post(f"/api/threads/{thread_id}/messages", json={"content": "private to user"}, headers=user.headers)
    theirs = client.post("/api/threads", json={"title": "theirs"}, headers=other_user.headers).json()
    client.post(f"/api/threads/{theirs['id']}/messages", json={"content": "other's own"}, headers=other_user.headers)
    assert client.get(f"/api/threads/{thread_id}/messages", headers=other_user.headers).status_code == 404
    listed = client.get(f"/api/threads/{theirs['id']}/messages", headers=other_user.headers).json()
    assert [m["content"] for m in listed] == ["other's own"]
