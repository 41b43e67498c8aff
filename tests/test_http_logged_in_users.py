"""Users logged in once for many golden-path runs (issue 14/19): ``log_in_users``, ``run_golden_path(users=...)``,
``finish_users``, against a small service scripted on raw asyncio sockets on 127.0.0.1 that counts every
registration, login and teardown, hands out tokens and session cookies, and can refuse what it should.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from stability_lib.core.models import Status
from stability_lib.probes.golden import (
    GoldenResult,
    LoggedInUsers,
    finish_users_sync,
    log_in_users_sync,
    run_golden_path_sync,
)
from stability_lib.probes.scenario import ScenarioConfig

PASSWORD = "pw-logged-in-once"


class AccountsService:
    """Register, login (token + ``sid`` cookie), items of the caller, a user's own delete.

    ``single_session``: a login revokes the user's earlier tokens. ``logins_allowed``: logins
    after this many answer 401. ``cookie_required``: /items needs the login's ``sid`` cookie too.
    """

    def __init__(self, single_session: bool = False, logins_allowed: int = 10**6, cookie_required: bool = False):
        self.single_session = single_session
        self.logins_allowed = logins_allowed
        self.cookie_required = cookie_required
        self.calls: Counter[str] = Counter()
        self.tokens: dict[str, str] = {}  # token -> user
        self.items: dict[int, tuple[str, str]] = {}
        self.ids = itertools.count(1)

    def answer(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any, list[str]]:
        key = method + " " + re.sub(r"/\d+$", "/N", path)
        self.calls[key] += 1
        if key == "POST /register":
            return 201, {"username": body["username"]}, []
        if key == "POST /login":
            if body.get("password") != PASSWORD or self.calls[key] > self.logins_allowed:
                return 401, {"error": "no"}, []
            user = body["username"]
            if self.single_session:
                self.tokens = {t: u for t, u in self.tokens.items() if u != user}
            token = f"tok-{user}-{self.calls[key]}"
            self.tokens[token] = user
            return 200, {"access_token": token}, [f"Set-Cookie: sid={user}; Path=/"]
        user = self.tokens.get(headers.get("authorization", "").removeprefix("Bearer "))
        if user is None or (self.cookie_required and headers.get("cookie") != f"sid={user}"):
            return 401, {"error": "who are you"}, []
        if key == "POST /items":
            item = next(self.ids)
            self.items[item] = (user, body["title"])
            return 201, {"id": item, "title": body["title"]}, []
        if key == "GET /items/N":
            owner, title = self.items[int(path.rsplit("/", 1)[1])]
            return (200, {"title": title}, []) if owner == user else (404, {}, [])
        if key == "DELETE /me":
            return 204, None, []
        if key == "GET /me":
            return 200, {"user": user}, []
        return 404, {}, []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                lines = head.split("\r\n")
                method, path, _ = lines[0].split(" ")
                headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                status, payload, extra = self.answer(method, path, headers, json.loads(raw or b"null"))
                data = b"" if payload is None else json.dumps(payload).encode()
                out = [f"HTTP/1.1 {status} X", f"Content-Length: {len(data)}", *extra]
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextmanager
def serve(service: AccountsService) -> Iterator[str]:
    """The service on its own event loop in a thread (the probe's sync calls run their own loops)."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    port: list[int] = []
    stop = asyncio.Event()

    async def main() -> None:
        server = await asyncio.start_server(service.handle, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        started.set()
        async with server:
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield f"http://127.0.0.1:{port[0]}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def scenario(users: int = 2, repetitions: int = 2) -> ScenarioConfig:
    body = {"username": "{username}", "password": "{password}"}
    return ScenarioConfig.model_validate(
        {
            "auth": {
                "register": {"path": "/register", "body": body, "expect_status": [201]},
                "login": {"path": "/login", "body": body, "expect_status": [200]},
            },
            "users": {"prefix": "once", "password": PASSWORD, "count": users},
            "golden_path": {
                "repetitions": repetitions,
                "steps": [
                    {
                        "kind": "http",
                        "name": "create_item",
                        "path": "/items",
                        "body": {"title": "item {nonce}"},
                        "expect_status": 201,
                        "capture": {"item_id": "id"},
                    },
                    {
                        "kind": "http",
                        "name": "read_item",
                        "method": "GET",
                        "path": "/items/{item_id}",
                        "expect_status": 200,
                    },
                ],
            },
            "teardown": [
                {"kind": "http", "name": "delete_me", "method": "DELETE", "path": "/me", "expect_status": 204}
            ],
            "leftovers": [
                {"kind": "http", "name": "me_still_answers", "method": "GET", "path": "/me", "expect_status": 200}
            ],
        }
    )


def samples_of(result: GoldenResult, step: str) -> int:
    return sum(1 for s in result.samples if s.step == step)


def test_users_log_in_once_for_every_round_and_tear_down_once_at_the_end() -> None:
    service, sc = AccountsService(), scenario(users=3, repetitions=2)
    with serve(service) as url:
        users = log_in_users_sync(url, sc)
        rounds = [run_golden_path_sync(url, sc, users=users) for _ in range(4)]
        assert service.calls["DELETE /me"] == 0  # not after a round: the users are still in use
        finished = finish_users_sync(users, sc)
    assert users.ok and len(users.samples()) == 6  # register and login of 3 users, once
    assert service.calls["POST /register"] == 3 and service.calls["POST /login"] == 3
    for result in rounds:
        golden, isolation = result.claims()
        assert golden.status is Status.PASS and golden.statistic.startswith("6 of 6 runs succeeded (3 users")
        assert isolation.status is Status.PASS
        assert samples_of(result, "create_item") == 6 and samples_of(result, "auth.login") == 0
        assert not result.teardown_claims()  # the users' own teardown is finish_users'
    assert [u.setup.username for u in users.users] == [u.username for u in rounds[0].users]
    assert service.calls["DELETE /me"] == 3 and service.calls["GET /me"] == 3
    assert [c.status for c in finished.claims("performance")] == [Status.PASS, Status.PASS]


def test_without_logged_in_users_every_round_registers_and_logs_in_again() -> None:
    # Today's behaviour of run_golden_path alone, the cost the section saves.
    service, sc = AccountsService(), scenario(users=2, repetitions=1)
    with serve(service) as url:
        for _ in range(3):
            result = run_golden_path_sync(url, sc)
            assert result.claims()[0].status is Status.PASS
    assert service.calls["POST /register"] == 6 and service.calls["POST /login"] == 6


def test_a_sampled_login_is_taken_in_every_round_and_its_token_used() -> None:
    # single_session: each login revokes the user's earlier token, so a run going with the old one would fail.
    service, sc = AccountsService(single_session=True), scenario(users=2, repetitions=2)
    with serve(service) as url:
        users = log_in_users_sync(url, sc)
        rounds = [run_golden_path_sync(url, sc, users=users, sample_login=True) for _ in range(3)]
    assert service.calls["POST /register"] == 2 and service.calls["POST /login"] == 2 + 3 * 2
    for result in rounds:
        assert result.claims()[0].status is Status.PASS
        logins = [s for s in result.samples if s.step == "auth.login"]
        assert len(logins) == 2 and all(s.ok and s.duration_s > 0 for s in logins)


def test_a_sampled_login_that_fails_fails_that_users_runs_at_auth_login() -> None:
    service, sc = AccountsService(logins_allowed=2), scenario(users=2, repetitions=2)
    with serve(service) as url:
        users = log_in_users_sync(url, sc)
        result = run_golden_path_sync(url, sc, users=users, sample_login=True)
    golden = result.claims()[0]
    assert golden.status is Status.FAIL and golden.details["failed_by_step"] == {"auth.login": 4}
    assert [s.ok for s in result.samples if s.step == "auth.login"] == [False, False]


def test_session_cookies_of_the_login_go_with_the_user_into_every_round() -> None:
    service, sc = AccountsService(cookie_required=True), scenario(users=2, repetitions=1)
    with serve(service) as url:
        users = log_in_users_sync(url, sc)
        results = [run_golden_path_sync(url, sc, users=users) for _ in range(2)]
    assert all(r.claims()[0].status is Status.PASS for r in results), results[0].claims()[0].details


def test_users_who_could_not_log_in_fail_every_round_without_trying_again() -> None:
    service, sc = AccountsService(logins_allowed=0), scenario(users=2, repetitions=2)
    with serve(service) as url:
        users = log_in_users_sync(url, sc)
        result = run_golden_path_sync(url, sc, users=users)
        finished = finish_users_sync(users, sc)
    assert not users.ok
    assert result.claims()[0].details["failed_by_step"] == {"auth.login": 4}
    assert service.calls["POST /login"] == 2 and service.calls["POST /items"] == 0
    assert finished.claims("golden_path")[0].status is Status.INCONCLUSIVE  # nobody to tear down


def test_users_of_one_target_are_refused_on_another() -> None:
    users = LoggedInUsers("http://127.0.0.1:1", "run", ())
    with pytest.raises(ValueError, match="logged in on"):
        run_golden_path_sync("http://127.0.0.1:2", scenario(), users=users)


def test_a_section_can_log_in_fewer_users_than_the_scenario_names() -> None:
    # performance runs `concurrency` lanes: as many users per target, with the same names on both targets.
    service, sc = AccountsService(), scenario(users=3)
    with serve(service) as url:
        one = log_in_users_sync(url, sc, run_id="r1", count=2)
        other = log_in_users_sync(url, sc, run_id="r1", count=2)
    assert [u.setup.username for u in one.users] == [u.setup.username for u in other.users]
    assert len(one.users) == 2 and service.calls["POST /login"] == 4
