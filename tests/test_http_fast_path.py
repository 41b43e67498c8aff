"""The HTTP step below httpx's client layer (``http_transport.direct_request``, issue 19) sends what the
client layer sends, keeps the step's caps and deadline, and gives way to the client layer whenever the
client has something for it to do (auth, redirects, hooks, parameters, a URL's user info).

A server on raw asyncio sockets on 127.0.0.1 records every request as bytes. A client from
``new_http_client`` takes the direct path; one given a ``LeanTransport`` of its own goes through
httpx's client layer over the same transport, so the two can be compared byte for byte.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from stability_lib.probes.http_steps import (
    HttpStepResult,
    LeanTransport,
    fetch_capped,
    new_http_client,
    run_http_step,
    shared_ssl_context,
)
from stability_lib.probes.scenario import AuthConfig, HttpStep

TOKEN = "tok-fast-path-0123456789"


class RecordingServer:
    """Answers by path; keeps each request (head and body) as received and counts connections."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                body = await reader.readexactly(int(length.group(1))) if length else b""
                self.requests.append(head + body)
                await self.answer(head.split(b" ", 2)[1], head, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            return  # the client hung up, or the test's loop is ending
        finally:
            writer.close()

    @staticmethod
    async def answer(path: bytes, head: bytes, writer: asyncio.StreamWriter) -> None:
        if path == b"/redirect":
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: /landed\r\nContent-Length: 0\r\n\r\n")
        elif path == b"/big":  # far beyond the cap the test reads with
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
            for _ in range(100):
                writer.write(b"x" * 10_000)
                await writer.drain()
        elif path == b"/drip":  # a byte at a time: only the whole-request deadline ends it
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(1000):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.05)
        else:
            body = json.dumps({"line": head.split(b"\r\n", 1)[0].decode(), "head": head.decode("latin-1")}).encode()
            cookie = b"Set-Cookie: sid=abc; Path=/\r\n" if path == b"/login" else b""
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), cookie, body))
        await writer.drain()


@asynccontextmanager
async def recording_server() -> AsyncIterator[tuple[str, RecordingServer]]:
    server = RecordingServer()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}", server
    finally:
        listener.close()


def without_client_layer(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The client, with httpx's client layer made to fail: whatever still works went the direct path."""

    async def refuse(*args: Any, **kwargs: Any) -> httpx.Response:
        raise AssertionError("the request went through httpx's client layer")

    client.send = refuse  # type: ignore[method-assign]
    return client


def _step(path: str, **overrides: Any) -> HttpStep:
    return HttpStep.model_validate({"name": "s", "method": "GET", "path": path, "expect_status": [200], **overrides})


async def _step_on(client: httpx.AsyncClient, step: HttpStep, user_index: int = 0) -> HttpStepResult:
    result, _captured = await run_http_step(
        client, step, step.name, {"user_index": user_index}, auth=AuthConfig(), token=TOKEN, secrets=[TOKEN],
        capture_bytes=4096,
    )  # fmt: skip
    return result


STEPS = [
    _step("/items/{user_index}?q=a%20b&x=ü"),
    _step("/login", method="POST", body={"name": "zoë {user_index}", "n": [1, 2]}, headers={"X-Trace": "t-1"}),
    _step("/after-login", headers={"accept": "text/plain"}),  # the client's Accept, overridden in another case
    _step("/form", method="PUT"),  # no body: httpx's Content-Length: 0
]


def test_the_direct_path_sends_the_bytes_the_client_layer_sends() -> None:
    async def requests(direct: bool) -> list[bytes]:
        async with recording_server() as (base, server):
            transport = None if direct else LeanTransport(shared_ssl_context())  # given: the client layer runs
            client = new_http_client(
                base, {"X-Team": "blue", "ACCEPT": "application/json"}, transport=transport,
                cookies=[("seed", "1", "127.0.0.1", "/")],
            )  # fmt: skip
            async with client:
                if direct:
                    without_client_layer(client)
                results = [await _step_on(client, step, i) for i, step in enumerate(STEPS)]
            assert [r.error for r in results] == [""] * len(STEPS)
            return [r.replace(base.removeprefix("http://").encode(), b"HOST") for r in server.requests]

    direct, layered = asyncio.run(requests(True)), asyncio.run(requests(False))
    assert direct == layered
    # Not vacuous: the client's headers, the token, the JSON body and both cookies went out.
    assert b"X-Team: blue" in direct[0] and TOKEN.encode() in direct[0] and b"Cookie: seed=1" in direct[0]
    assert direct[1].endswith('{"name":"zoë 1","n":[1,2]}'.encode())
    assert b"sid=abc" in direct[2] and b"seed=1" in direct[2]


def test_the_direct_path_logs_the_line_httpx_logs(caplog: pytest.LogCaptureFixture) -> None:
    async def logged(direct: bool) -> list[str]:
        async with recording_server() as (base, _server):
            transport = None if direct else LeanTransport(shared_ssl_context())
            async with new_http_client(base, transport=transport) as client:
                caplog.clear()
                with caplog.at_level(logging.INFO, logger="httpx"):
                    await _step_on(client, STEPS[0])
                return [r.getMessage().replace(base, "BASE") for r in caplog.records if r.name == "httpx"]

    direct = asyncio.run(logged(True))
    assert direct == asyncio.run(logged(False))
    assert direct == ['HTTP Request: GET BASE/items/0?q=a%20b&x=%C3%BC "HTTP/1.1 200 OK"']


def test_the_direct_path_cuts_a_body_at_the_cap_and_does_not_reuse_its_connection() -> None:
    async def main() -> tuple[list[tuple[int, int, bool]], int]:
        async with recording_server() as (base, server):
            async with new_http_client(base) as client:
                without_client_layer(client)
                got = []
                for _ in range(2):
                    body = await fetch_capped(client, "GET", f"{base}/big", max_bytes=100, deadline_s=10.0)
                    got.append((body.status, len(body.content), body.truncated))
            return got, server.connections

    assert asyncio.run(main()) == ([(200, 100, True), (200, 100, True)], 2)


def test_the_direct_path_ends_a_dripping_body_at_the_whole_request_deadline() -> None:
    async def main() -> str:
        async with recording_server() as (base, _server), new_http_client(base) as client:
            without_client_layer(client)
            return (await _step_on(client, _step("/drip", timeout_s=0.3))).error

    assert asyncio.run(main()) == "timeout"  # 1000 bytes at 20 a second: each read is quick, the whole is not


def _basic(user: str, password: str) -> str:
    return "Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _hooked(client: httpx.AsyncClient, seen: list[str]) -> None:
    async def hook(request: httpx.Request) -> None:
        seen.append(request.url.path)

    client.event_hooks = {"request": [hook], "response": []}


# Each: what to do to a client from new_http_client, the base URL's user info, the path asked for, and
# what the server must have seen (or the hook recorded) for the client layer to have done its part.
SETUPS: list[tuple[str, Callable[[httpx.AsyncClient, list[str]], None], str, str, Callable[[bytes, list[str]], bool]]] = [
    ("auth", lambda c, _s: setattr(c, "auth", ("ann", "pw")), "", "/items/1",
     lambda req, _s: _basic("ann", "pw").encode() in req),
    ("user_info", lambda c, _s: None, "bob:pw@", "/items/1", lambda req, _s: _basic("bob", "pw").encode() in req),
    ("redirects", lambda c, _s: setattr(c, "follow_redirects", True), "", "/redirect",
     lambda req, _s: req.startswith(b"GET /landed ")),
    ("params", lambda c, _s: setattr(c, "params", {"page": "2"}), "", "/items/1",
     lambda req, _s: req.startswith(b"GET /items/1?page=2 ")),
    ("hooks", _hooked, "", "/items/1", lambda _req, seen: seen == ["/items/1"]),
]  # fmt: skip


@pytest.mark.parametrize(("what", "change", "user_info", "path", "done"), SETUPS, ids=[s[0] for s in SETUPS])
def test_a_client_with_work_for_its_client_layer_goes_through_it(
    what: str,
    change: Callable[[httpx.AsyncClient, list[str]], None],
    user_info: str,
    path: str,
    done: Callable[[bytes, list[str]], bool],
) -> None:
    async def main() -> tuple[str, bytes, list[str]]:
        async with recording_server() as (base, server):
            seen: list[str] = []
            async with new_http_client(base.replace("//", "//" + user_info, 1)) as client:
                change(client, seen)
                result = await _step_on(client, _step(path))
            return result.error, server.requests[-1], seen

    error, last_request, seen = asyncio.run(main())
    assert error == ""
    assert done(last_request, seen), (what, last_request, seen)


def test_a_closed_client_refuses_the_step_as_httpx_does() -> None:
    async def main() -> None:
        async with recording_server() as (base, _server):
            client = new_http_client(base)
            await client.aclose()
            await _step_on(client, STEPS[0])

    with pytest.raises(RuntimeError, match="client has been closed"):
        asyncio.run(main())
