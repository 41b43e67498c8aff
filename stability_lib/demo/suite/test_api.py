from __future__ import annotations

import httpx
import pytest
from conftest import User

pytestmark = pytest.mark.api


def test_openapi_document_is_served(client: httpx.Client) -> None:
    spec = client.get("/api/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/api/threads" in spec["paths"]


def test_created_thread_has_id_title_and_created_at(client: httpx.Client, user: User) -> None:
    response = client.post("/api/threads", json={"title": "contract"}, headers=user.headers)
    assert response.status_code == 201
    assert {"id", "title", "created_at"} <= set(response.json())


def test_thread_list_works_without_limit(client: httpx.Client, user: User, thread_id: int) -> None:
    response = client.get("/api/threads", headers=user.headers)
    assert response.status_code == 200
    assert thread_id in [t["id"] for t in response.json()]


def test_thread_list_honours_limit(client: httpx.Client, user: User, thread_id: int) -> None:
    client.post("/api/threads", json={"title": "second"}, headers=user.headers)
    response = client.get("/api/threads", params={"limit": 1}, headers=user.headers)
    assert response.status_code == 200
    assert len(response.json()) == 1


def test_thread_messages_can_be_listed(client: httpx.Client, user: User, thread_id: int) -> None:
    response = client.get(f"/api/threads/{thread_id}/messages", headers=user.headers)
    assert response.status_code == 200
    assert response.json() == []


def test_bad_requests_get_a_4xx_json_error(client: httpx.Client, user: User, thread_id: int) -> None:
    cases = [
        client.post("/api/threads", content=b"{not json", headers={**user.headers, "Content-Type": "application/json"}),
        client.post(f"/api/threads/{thread_id}/messages", json={"content": "x" * 5000}, headers=user.headers),
        client.get("/api/threads/999999999/messages", headers=user.headers),
    ]
    for response in cases:
        assert 400 <= response.status_code < 500, response.text
        assert "detail" in response.json()
