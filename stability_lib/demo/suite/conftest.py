"""Fixtures of the sample service's suite: a live service at $STABILITY_TARGET_URL."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

TARGET_ENV_VAR = "STABILITY_TARGET_URL"
TIMEOUT_S = 5.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get(TARGET_ENV_VAR):
        skip = pytest.mark.skip(reason=f"{TARGET_ENV_VAR} is not set: no service to test")
        for item in items:
            item.add_marker(skip)


@dataclass(frozen=True)
class User:
    id: int
    username: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="session")
def base_url() -> str:
    return os.environ[TARGET_ENV_VAR].rstrip("/")


@pytest.fixture(scope="session")
def ws_url(base_url: str) -> str:
    return "ws" + base_url[len("http") :]


@pytest.fixture(scope="session")
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=TIMEOUT_S) as session:
        yield session


def new_user(client: httpx.Client) -> User:
    username = f"suite_{secrets.token_hex(6)}"
    password = secrets.token_urlsafe(12)
    registered = client.post("/api/auth/register", json={"username": username, "password": password})
    assert registered.status_code == 201, registered.text
    login = client.post("/api/auth/login", json={"username": username, "password": password})
    assert login.status_code == 200, login.text
    return User(registered.json()["id"], username, password, login.json()["access_token"])


@pytest.fixture(scope="session")
def user(client: httpx.Client) -> User:
    return new_user(client)


@pytest.fixture(scope="session")
def other_user(client: httpx.Client) -> User:
    return new_user(client)


@pytest.fixture
def thread_id(client: httpx.Client, user: User) -> int:
    response = client.post("/api/threads", json={"title": "suite thread"}, headers=user.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])
