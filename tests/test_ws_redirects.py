"""A probe's WebSocket follows a handshake redirect only on the target's origin: the token stays with the target.

websockets (17.4 here) follows up to 10 redirects of the opening handshake and, at a redirect to another
origin, strips only Authorization, Cookie and Proxy-Authorization. Before: a probe redirected from the
target (127.0.0.1:A) to ws://localhost:B/... sent B the target's X-API-Key, the user's token under its
custom header name, the token subprotocol, and a query token the Location repeated, and the session
then ran against B as if it were the target. Now the redirect is refused (connect_error(redirected to
another origin ws://localhost:B)), B receives nothing, and a redirect on the same origin still connects.

Real servers: websockets' own server on 127.0.0.1 for both, A answering the handshake with 302/307 from
``process_request``, B recording every request it gets. Both drivers: the asyncio one
(``probes.ws_session``: golden path, soak, health conversations) and the threading one that the Locust
engine runs on gevent (``scale.gevent_steps``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.server import ServerConnection, serve

from stability_lib.probes.scenario import AuthConfig, TokenDelivery, WsStep
from stability_lib.probes.ws_session import run_ws_exchange

TOKEN = "tok-SECRET-7f3a9c2e51"
API_KEY = "key-SECRET-b4d8e6a0"

STEP: dict[str, Any] = {
    "kind": "ws",
    "name": "echo",
    "path": "/ws",
    "headers": {"X-API-Key": API_KEY},  # as target.auth.headers reach a health conversation's handshake
    "send": {"type": "ping", "text": "hello"},
    "expect": [{"type": "ping", "timeout_s": 5}],
}


def auth_for(via: str) -> AuthConfig:
    return AuthConfig.model_validate(
        {
            "mode": "static",
            "ws_token_via": via,
            "header_name": "X-User-Token",  # a custom header: websockets strips only Authorization/Cookie
            "header_format": "{token}",
            "query_param": "access_token",
            "subprotocol_format": "token.{token}",
        }
    )


@dataclass
class Seen:
    path: str
    headers: dict[str, str]

    @property
    def text(self) -> str:
        return self.path + "\n" + "\n".join(f"{k}: {v}" for k, v in self.headers.items())


@dataclass
class Sites:
    """A (the target, 127.0.0.1) and B (another origin, reached as localhost), each recording its requests."""

    a_port: int = 0
    b_port: int = 0
    at_a: list[Seen] = field(default_factory=list)
    at_b: list[Seen] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.a_port}"

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.a_port}{path}"

    def route_a(self, connection: ServerConnection, request: Any) -> Any:
        """/away302, /away307: to B on localhost (the query repeated, as many redirects do); /same: to /ws here."""
        self.at_a.append(Seen(request.path, dict(request.headers.raw_items())))
        parts = urlsplit(request.path)
        query = f"?{parts.query}" if parts.query else ""
        if parts.path.startswith("/away"):
            status = HTTPStatus(int(parts.path.removeprefix("/away")))
            location = f"ws://localhost:{self.b_port}/ws{query}"
        elif parts.path == "/same":
            status, location = HTTPStatus.TEMPORARY_REDIRECT, f"/ws{query}"
        elif parts.path == "/loop":  # to the same origin spelled otherwise: another origin all the same
            status, location = HTTPStatus.FOUND, f"ws://localhost:{self.a_port}/ws{query}"
        else:
            return None
        response = connection.respond(status, "")
        response.headers["Location"] = location
        return response

    def record_b(self, _connection: ServerConnection, request: Any) -> Any:
        self.at_b.append(Seen(request.path, dict(request.headers.raw_items())))
        return None


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


def _choose_token_subprotocol(_connection: ServerConnection, offered: Any) -> Any:
    return offered[0] if offered else None


@pytest.fixture(scope="module")
def sites() -> Iterator[Sites]:
    """Both servers on a loop of their own thread: the asyncio driver and the threading one both reach them."""
    state = Sites()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: asyncio.Future[None] | None = None

    async def main() -> None:
        nonlocal stop
        stop = loop.create_future()
        common: dict[str, Any] = {"compression": None, "select_subprotocol": _choose_token_subprotocol}
        async with serve(_echo, "127.0.0.1", 0, process_request=state.record_b, **common) as b:
            state.b_port = b.sockets[0].getsockname()[1]
            async with serve(_echo, "127.0.0.1", 0, process_request=state.route_a, **common) as a:
                state.a_port = a.sockets[0].getsockname()[1]
                ready.set()
                await stop

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield state
    loop.call_soon_threadsafe(lambda: stop.set_result(None) if stop is not None else None)
    thread.join(10)
    loop.close()


@pytest.fixture
def fresh(sites: Sites) -> Sites:
    sites.at_a.clear()
    sites.at_b.clear()
    return sites


def asyncio_session(sites: Sites, path: str, via: str) -> Any:
    step = WsStep.model_validate(STEP)
    exchange = asyncio.run(
        run_ws_exchange(
            url=sites.ws(path),
            step=step,
            context={},
            auth=auth_for(via),
            token=TOKEN,
            session_id="s1",
            run_start_ns=time.monotonic_ns(),
            connect_timeout_s=5.0,
            close_timeout_s=2.0,
            secrets=[TOKEN, API_KEY],
        )
    )
    return exchange.record


def gevent_session(sites: Sites, path: str, via: str) -> Any:
    pytest.importorskip("gevent")
    from stability_lib.probes.http_steps import PreparedUser, UserSetup
    from stability_lib.probes.scenario import ScenarioConfig
    from stability_lib.scale.gevent_steps import run_ws_session

    scenario = ScenarioConfig.model_validate(
        {
            "auth": auth_for(via).model_dump(by_alias=True, exclude_none=True, mode="json"),
            "users": {"count": 1, "credentials": [{"name": "alice", "token": TOKEN}]},
            "golden_path": {"steps": [{**STEP, "path": path}]},
        }
    )
    step = scenario.golden_path.steps[0]
    assert isinstance(step, WsStep)
    return run_ws_session(
        base_url=sites.base_url,
        ws_base_url=None,
        step=step,
        context={},
        scenario=scenario,
        user=PreparedUser(UserSetup(0, "alice", True), token=TOKEN),
        session_id="g1",
        run_id="r",
        run_start_ns=time.monotonic_ns(),
        golden=True,
    )


DRIVERS = {"asyncio": asyncio_session, "gevent": gevent_session}
VIAS = [TokenDelivery.HEADER.value, TokenDelivery.QUERY.value, TokenDelivery.SUBPROTOCOL.value]


@pytest.mark.parametrize("driver", sorted(DRIVERS))
@pytest.mark.parametrize("status", [302, 307])
@pytest.mark.parametrize("via", VIAS)
def test_a_redirect_to_another_origin_is_refused_and_the_other_host_gets_nothing(
    fresh: Sites, driver: str, status: int, via: str
) -> None:
    record = DRIVERS[driver](fresh, f"/away{status}", via)
    # The target saw the handshake with the token, as it should (the test would be vacuous otherwise).
    assert len(fresh.at_a) == 1 and TOKEN in fresh.at_a[0].text and API_KEY in fresh.at_a[0].text
    # Before: B got the handshake with X-API-Key, the token (header, query or subprotocol), and the session
    # ran there and was ok.
    leaked = [s.text for s in fresh.at_b]
    assert not any(TOKEN in t or API_KEY in t for t in leaked), leaked
    assert fresh.at_b == []
    assert record.outcome.label == f"connect_error(redirected to another origin ws://localhost:{fresh.b_port})"
    assert not record.outcome.is_ok


@pytest.mark.parametrize("driver", sorted(DRIVERS))
def test_the_same_port_on_another_host_name_is_another_origin(fresh: Sites, driver: str) -> None:
    # localhost and 127.0.0.1 are one machine but two origins: the token may go only where it was given.
    record = DRIVERS[driver](fresh, "/loop", TokenDelivery.HEADER.value)
    assert len(fresh.at_a) == 1
    assert record.outcome.label == f"connect_error(redirected to another origin ws://localhost:{fresh.a_port})"


@pytest.mark.parametrize("driver", sorted(DRIVERS))
@pytest.mark.parametrize("via", VIAS)
def test_a_redirect_on_the_same_origin_still_connects_with_the_auth(fresh: Sites, driver: str, via: str) -> None:
    record = DRIVERS[driver](fresh, "/same", via)
    assert record.outcome.is_ok, record.outcome.label
    assert [urlsplit(s.path).path for s in fresh.at_a] == ["/same", "/ws"]
    assert TOKEN in fresh.at_a[1].text and API_KEY in fresh.at_a[1].text  # the redirected handshake kept its auth
    assert fresh.at_b == []


def test_the_conversation_soak_follows_no_redirect(fresh: Sites) -> None:
    # Not a fix: its sessions run websockets' sans-I/O ClientProtocol, which follows nothing. Kept so it stays so.
    from stability_lib.probes.conversation_soak import run_conversation_soak
    from stability_lib.probes.conversation_spec import ConversationSoakConfig

    config = ConversationSoakConfig.model_validate(
        {
            "send": {"id": "{msg_id}", "type": "echo"},
            "correlate": {"id": "{msg_id}"},
            "sessions": 2,
            "concurrency": 1,
            "messages_per_session": 2,
            "connect_timeout_s": 5,
            "close_timeout_s": 2,
            "subprotocols": [f"token.{TOKEN}"],
        }
    )
    url = fresh.ws(f"/away302?access_token={TOKEN}")
    result = asyncio.run(run_conversation_soak(url, config, headers={"X-API-Key": API_KEY, "X-User-Token": TOKEN}))
    assert [s.outcome for s in result.sessions] == ["handshake_failed(302)"] * 2
    assert len(fresh.at_a) == 2 and fresh.at_b == []


# --------------------------------------------------------------------------- the refusal itself


@pytest.mark.parametrize(
    ("first", "then", "follows"),
    [
        ("ws://127.0.0.1:8000/ws", "ws://127.0.0.1:8000/other", True),
        ("ws://api.example.com/ws", "ws://API.example.com:80/v2", True),
        ("ws://api.example.com/ws", "wss://api.example.com/ws", True),  # upgraded to TLS, same host
        ("wss://api.example.com/ws", "wss://api.example.com:443/ws", True),
        ("ws://api.example.com:8080/ws", "wss://api.example.com/ws", False),
        ("ws://127.0.0.1:8000/ws", "ws://localhost:8000/ws", False),
        ("ws://api.example.com/ws", "ws://api.example.com:8080/ws", False),
        ("ws://api.example.com/ws", "ws://api.example.com.evil.net/ws", False),
        ("ws://[::1]:8000/ws", "ws://[::1]:8000/x", True),
        ("ws://[::1]:8000/ws", "ws://127.0.0.1:8000/x", False),
    ],
)
def test_which_redirects_a_handshake_follows(first: str, then: str, follows: bool) -> None:
    from stability_lib.probes.ws_connect import redirect_refusal

    refused = redirect_refusal(first, then, 302)
    assert (refused is None) is follows
    if refused is not None:  # the message names the origin only, never the Location's path or query
        assert str(refused).startswith("redirected to another origin ") and "/ws" not in str(refused)


def test_the_refusal_names_no_path_or_query_of_the_location() -> None:
    from stability_lib.probes.ws_connect import RedirectRefused, open_error_outcome, redirect_refusal

    refused = redirect_refusal(
        "ws://127.0.0.1:1/ws?access_token=T", f"ws://evil.example:9/ws?access_token={TOKEN}", 307
    )
    assert isinstance(refused, RedirectRefused)
    assert TOKEN not in str(refused) and str(refused) == (
        "redirected to another origin ws://evil.example:9 (HTTP 307): not followed"
    )
    assert open_error_outcome(refused).label == "connect_error(redirected to another origin ws://evil.example:9)"


def test_the_health_websocket_echo_follows_no_redirect_to_another_origin(fresh: Sites) -> None:
    # The health echo opened its own connection with websockets' connect: target.auth's X-API-Key went to B.
    from stability_lib.probes.config import HealthWebSocket
    from stability_lib.probes.health import _ws_echo

    cfg = HealthWebSocket(path="/away302")
    record = asyncio.run(_ws_echo(fresh.ws("/away302"), cfg, 5.0, headers={"X-API-Key": API_KEY}))
    assert fresh.at_b == [] and len(fresh.at_a) == 1 and API_KEY in fresh.at_a[0].text
    assert not record.connected
    assert record.error == f"redirected to another origin ws://localhost:{fresh.b_port} (HTTP 302): not followed"
