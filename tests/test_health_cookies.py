"""A health check is stateless: no cookie the target sets reaches another request of the section.

Found against jupyter_server 2.21.1: it sets a login cookie on the first authenticated request and
then takes the cookie instead of the token. The health client kept one cookie jar over all
endpoints, so an endpoint that must answer 403 to a wrong token (``Authorization: token wrong``,
``expect_status: [403]``) PASSed when listed first and FAILed (HTTP 200, the cookie logged it in)
when listed after an authenticated one: the claim depended on the order of the list, which the user
did not ask about. Between the samples of one endpoint too: each sample is the same request again,
so the ``k of n`` counts n identical trials, not one request and n - 1 requests carrying whatever
the first answer set. A Cookie header the user configures is asked for, and is sent.

The server is real (http.server on 127.0.0.1) and behaves as that login does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from support import QuietHandler, http_server

from stability_lib.core.models import Status
from stability_lib.probes.config import HealthConfig, HealthEndpoint, TargetAuth, TargetConfig
from stability_lib.probes.health import health_claims, run_health

RIGHT = "token right-0123456789"
SESSION = "login=s3ss10n"


@contextmanager
def login_server() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    """``/api/...``: the right token answers 200 and sets a session cookie (Path=/); that cookie alone
    answers 200 too; anything else 403. ``/visit``: 200 with a cookie set the first time, 409 to a request carrying it.
    Yields the base URL and the (path, Cookie header) of every request."""
    seen: list[tuple[str, str | None]] = []

    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server name
            path = self.path.split("?")[0]
            cookie = self.headers.get("Cookie")
            seen.append((path, cookie))
            set_cookie = None
            if path.startswith("/api/"):
                if self.headers.get("Authorization") == RIGHT:
                    status, set_cookie = 200, f"{SESSION}; Path=/; HttpOnly"
                elif cookie and SESSION in cookie:
                    status = 200
                else:
                    status = 403
            elif path == "/visit":
                status = 409 if cookie and "seen=1" in cookie else 200
                set_cookie = "seen=1; Path=/"
            else:
                status = 404
            self.reply(status, b'{"status": "ok"}', {"Set-Cookie": set_cookie} if set_cookie else None)

    with http_server(Handler) as url:
        yield url, seen


AUTHENTICATED = HealthEndpoint(path="/api/status", headers={"Authorization": RIGHT}, expect_status=[200])
WRONG_TOKEN = HealthEndpoint(path="/api/me", headers={"Authorization": "token wrong"}, expect_status=[403])
WRONG_TOKEN_SAME_PATH = HealthEndpoint(
    path="/api/status", headers={"Authorization": "token wrong"}, expect_status=[403]
)
VISIT = HealthEndpoint(path="/visit", expect_status=[200])


def _statuses(cfg: HealthConfig, data: dict[str, Any]) -> list[tuple[Status, str]]:
    return [(c.status, c.statistic) for c in health_claims(cfg, data) if c.id.startswith("health.http")]


@pytest.mark.parametrize("query", [{}, {"tenant": "t1"}], ids=["no-auth-query", "auth-query"])
@pytest.mark.parametrize("wrong_first", [True, False], ids=["wrong-token-first", "wrong-token-after"])
@pytest.mark.parametrize("wrong", [WRONG_TOKEN, WRONG_TOKEN_SAME_PATH], ids=["other-path", "same-path"])
def test_a_wrong_token_is_refused_whatever_the_order_of_the_endpoints(
    wrong: HealthEndpoint, wrong_first: bool, query: dict[str, str]
) -> None:
    # As a user checks that the token is needed: the right token expecting 200, a wrong one expecting 403.
    endpoints = [wrong, AUTHENTICATED] if wrong_first else [AUTHENTICATED, wrong]
    cfg = HealthConfig(samples=2, timeout_s=5.0, endpoints=endpoints)
    with login_server() as (base, seen):
        data = run_health(TargetConfig(base_url=base, auth=TargetAuth(query=query)), cfg)
    statuses = _statuses(cfg, data)
    assert [s for s, _ in statuses] == [Status.PASS, Status.PASS], statuses
    assert all(statistic.startswith("2 of 2 requests as expected") for _, statistic in statuses), statuses
    assert all(cookie is None for _, cookie in seen), seen  # the login cookie never came back
    assert len(seen) == 4


def test_a_cookie_set_on_one_path_does_not_reach_another_endpoint() -> None:
    # The authenticated endpoint's cookie (Path=/) would ride along on /visit's requests, and /visit's on later ones.
    cfg = HealthConfig(samples=1, timeout_s=5.0, endpoints=[AUTHENTICATED, VISIT, WRONG_TOKEN, VISIT])
    with login_server() as (base, seen):
        data = run_health(TargetConfig(base_url=base), cfg)
    statuses = _statuses(cfg, data)
    assert [s for s, _ in statuses] == [Status.PASS] * 4, statuses
    assert seen == [("/api/status", None), ("/visit", None), ("/api/me", None), ("/visit", None)]


def test_no_cookie_goes_from_one_sample_to_the_next() -> None:
    # /visit answers 409 to a request carrying the cookie its first answer set: each sample is the same request.
    cfg = HealthConfig(samples=3, timeout_s=5.0, endpoints=[VISIT])
    with login_server() as (base, seen):
        data = run_health(TargetConfig(base_url=base), cfg)
    (claim,) = health_claims(cfg, data)
    assert claim.status is Status.PASS, claim.statistic
    assert claim.statistic.startswith("3 of 3 requests as expected")
    assert [s["status"] for s in data["samples"]] == [200, 200, 200]
    assert seen == [("/visit", None)] * 3


def test_a_cookie_the_user_configures_is_sent_on_every_request() -> None:
    # Asked for: a Cookie header under the endpoint's headers (or target.auth) goes on every sample, unchanged.
    cfg = HealthConfig(
        samples=2,
        timeout_s=5.0,
        endpoints=[HealthEndpoint(path="/api/status", headers={"Cookie": SESSION}, expect_status=[200]), WRONG_TOKEN],
    )
    with login_server() as (base, seen):
        data = run_health(TargetConfig(base_url=base), cfg)
    statuses = _statuses(cfg, data)
    assert [s for s, _ in statuses] == [Status.PASS, Status.PASS], statuses
    assert seen == [("/api/status", SESSION)] * 2 + [("/api/me", None)] * 2
