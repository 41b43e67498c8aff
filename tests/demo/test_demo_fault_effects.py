"""Each fault is observable by a plain client (httpx, websockets) against the real service."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from demo_client import TIMEOUT_S, SessionOutcome, make_account, make_thread, run_session, user_message, ws_url
from scipy.stats import binom
from websockets.asyncio.client import connect

from stability_lib.demo import serve

SESSIONS = 400
CONCURRENCY = 20


async def _many_sessions(base_url: str, token: str, thread_ids: list[int], count: int) -> list[SessionOutcome]:
    """``count`` one-message sessions, at most CONCURRENCY at a time."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> SessionOutcome:
        async with gate:
            return await run_session(base_url, token, [user_message(thread_ids[i % len(thread_ids)], f"m{i}")])

    return list(await asyncio.gather(*(one(i) for i in range(count))))


def test_1011_closes_follow_the_configured_rate() -> None:
    rate = 0.05
    with serve(faults={"ws_1011_rate": rate}, seed=1234) as url, httpx.Client(base_url=url) as client:
        account = make_account(client)
        threads = [make_thread(client, account) for _ in range(CONCURRENCY)]
        outcomes = asyncio.run(_many_sessions(url, account.token, threads, SESSIONS))

    codes = Counter(o.close_code for o in outcomes)
    closed_1011 = codes[1011]
    assert codes[None] + closed_1011 == SESSIONS, codes  # every other session answered normally
    low, high = binom.interval(0.999, SESSIONS, rate)  # exact binomial acceptance interval
    assert low <= closed_1011 <= high, (closed_1011, low, high)
    crashed = [o for o in outcomes if o.close_code == 1011]
    assert all(o.final is None and o.close_reason.startswith("internal error") for o in crashed)
    assert all(o.final is not None for o in outcomes if o.close_code is None)


def _outcome_pattern(seed: int, count: int = 40) -> list[int | None]:
    with serve(faults=["ws_1011_rate=0.3"], seed=seed) as url, httpx.Client(base_url=url) as client:
        account = make_account(client)
        thread_id = make_thread(client, account)

        async def sequential() -> list[int | None]:
            return [
                (await run_session(url, account.token, [user_message(thread_id, "x")])).close_code for _ in range(count)
            ]

        return asyncio.run(sequential())


def test_the_same_seed_replays_the_same_faults() -> None:
    first, again, other_seed = _outcome_pattern(5), _outcome_pattern(5), _outcome_pattern(6)
    assert first == again
    assert 1011 in first and None in first
    assert first != other_seed


def test_drop_rate_one_cuts_the_connection_without_a_close_frame() -> None:
    with serve(faults=["ws_drop_rate=1"]) as url, httpx.Client(base_url=url) as client:
        account = make_account(client)
        thread_id = make_thread(client, account)
        outcomes = [asyncio.run(run_session(url, account.token, [user_message(thread_id, "hello")])) for _ in range(3)]
        # the service itself is still up
        assert client.get("/health").json()["status"] == "ok"
    assert [o.close_code for o in outcomes] == [1006, 1006, 1006]
    assert all(o.final is None and o.events for o in outcomes)


def test_slow_thread_create_adds_the_configured_latency() -> None:
    with serve(faults=["slow=thread_create:50"]) as url, httpx.Client(base_url=url) as client:
        account = make_account(client)
        started = time.perf_counter()
        make_thread(client, account)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
    assert elapsed_ms >= 50.0  # a lower bound: the fault is present


def test_slow_agent_step_shows_in_its_duration() -> None:
    with serve(faults=["slow=agent_optimization:40"]) as url, httpx.Client(base_url=url) as client:
        account = make_account(client)
        thread_id = make_thread(client, account)
        outcome = asyncio.run(run_session(url, account.token, [user_message(thread_id, "x")]))
    durations = {e["agent"]: e["duration_ms"] for e in outcome.events if e["type"] == "agent_completed"}
    assert durations["optimization"] >= 40.0


def test_leak_shows_another_users_message() -> None:
    with serve(faults=["leak_rate=1"]) as url, httpx.Client(base_url=url) as client:
        alice, bob = make_account(client, "alice"), make_account(client, "bob")
        alice_thread, bob_thread = make_thread(client, alice), make_thread(client, bob)
        secret = secrets.token_hex(8)
        asyncio.run(run_session(url, alice.token, [user_message(alice_thread, f"secret {secret}")]))

        outcome = asyncio.run(run_session(url, bob.token, [user_message(bob_thread, "hello")]))
        assert outcome.final is not None and secret in outcome.final["content"]
        listed = client.get(f"/api/threads/{bob_thread}/messages", headers=bob.headers).json()
        assert any(secret in m["content"] and m["thread_id"] == alice_thread for m in listed)


def _spec(**faults: Any) -> dict[str, Any]:
    with serve(faults=faults) as url:
        return httpx.get(f"{url}/api/openapi.json").json()


def _thread_create_schema(spec: dict[str, Any]) -> dict[str, Any]:
    ref = spec["paths"]["/api/threads"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    return spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def _limit_parameter(spec: dict[str, Any]) -> dict[str, Any]:
    (limit,) = [p for p in spec["paths"]["/api/threads"]["get"]["parameters"] if p["name"] == "limit"]
    return limit


MESSAGES_PATH = "/api/threads/{thread_id}/messages"


def test_api_breaks_show_in_the_served_spec() -> None:
    healthy = _spec()
    assert "created_at" in _thread_create_schema(healthy)["properties"]
    assert not _limit_parameter(healthy).get("required", False)
    assert "get" in healthy["paths"][MESSAGES_PATH]

    assert "created_at" not in _thread_create_schema(_spec(api_break="field_removed"))["properties"]
    assert _limit_parameter(_spec(api_break="param_required"))["required"] is True
    removed = _spec(api_break="endpoint_removed")
    assert "get" not in removed["paths"][MESSAGES_PATH] and "post" in removed["paths"][MESSAGES_PATH]


def test_api_breaks_show_in_behaviour() -> None:
    faults = {"api_break": ["field_removed", "param_required", "endpoint_removed"]}
    with serve(faults=faults) as url, httpx.Client(base_url=url) as client:
        account = make_account(client)
        created = client.post("/api/threads", json={"title": "t"}, headers=account.headers).json()
        assert set(created) == {"id", "title"}
        assert client.get("/api/threads", headers=account.headers).status_code == 422
        assert client.get("/api/threads", params={"limit": 5}, headers=account.headers).status_code == 200
        assert client.get(f"/api/threads/{created['id']}/messages", headers=account.headers).status_code == 405


def _forged_token() -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'sub': '1', 'exp': 4102444800})}.Zm9yZ2Vk"


def test_auth_bypass_lets_a_forged_token_in() -> None:
    with serve(faults=["auth_bypass"]) as url, httpx.Client(base_url=url) as client:
        victim = make_account(client, "victim")
        thread_id = make_thread(client, victim)
        forged = {"Authorization": f"Bearer {_forged_token()}"}
        response = client.get("/api/threads", headers=forged)
        assert response.status_code == 200 and [t["id"] for t in response.json()] == [thread_id]
        assert client.get("/api/threads").status_code == 401  # no token at all is still refused

        async def forged_session() -> SessionOutcome:
            return await run_session(url, _forged_token(), [user_message(thread_id, "in")])

        assert asyncio.run(forged_session()).final is not None


def test_the_healthy_build_refuses_the_same_forged_token() -> None:
    with serve() as url, httpx.Client(base_url=url) as client:
        make_account(client)
        assert client.get("/api/threads", headers={"Authorization": f"Bearer {_forged_token()}"}).status_code == 401

        async def attempt() -> None:
            async with connect(ws_url(url) + f"?token={_forged_token()}", open_timeout=TIMEOUT_S):
                pass

        with pytest.raises(Exception, match="403"):
            asyncio.run(attempt())


@pytest.mark.parametrize(("faults", "status_at_max"), [([], 201), (["max_length_500"], 500)])
def test_max_length_500_fails_registration_only_at_the_longest_allowed_name(
    faults: list[str], status_at_max: int
) -> None:
    suffix = secrets.token_hex(4)
    with serve(faults=faults) as url, httpx.Client(base_url=url, timeout=TIMEOUT_S) as client:

        def register(length: int) -> int:
            username = (suffix + "u" * 64)[:length]
            return client.post("/api/auth/register", json={"username": username, "password": "password-1"}).status_code

        assert (register(63), register(64), register(65)) == (201, status_at_max, 422)
