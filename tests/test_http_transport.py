"""The probe's HTTP transport (``LeanTransport``, issue 19) gives the same results as httpx's own.

Each case runs the same HTTP step through ``new_http_client`` (the lean transport) and through
httpx's default transport (httpcore), against a server scripted on raw asyncio sockets on
127.0.0.1 that can misbehave as a library would refuse to (cut bodies, drip, reset, garbage),
and compares what the step reports: ok, status, error, kept body, captured variables.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import re
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stability_lib.probes.http_steps import (
    HttpStepResult,
    LeanTransport,
    absolute_url,
    new_http_client,
    run_http_step,
    shared_ssl_context,
)
from stability_lib.probes.scenario import AuthConfig, HttpStep

TOKEN = "tok-secret-0123456789"


def _response(status: int, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Content-Type: application/json", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class ScriptedHttpServer:
    """Answers each request by ``mode``; counts connections and the most open at once."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.connections = 0
        self.open_now = 0
        self.most_open = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                body = await reader.readexactly(int(length.group(1))) if length else b""
                if not await self.answer(head, body, writer):
                    return
        finally:
            self.open_now -= 1
            writer.close()

    async def answer(self, head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        """Write the response; False when the connection ends here."""
        mode = self.mode
        request_line = head.split(b"\r\n", 1)[0].decode()
        ok_body = json.dumps({"id": 7, "status": "ok", "token": TOKEN, "line": request_line}).encode()
        if mode == "ok":
            writer.write(_response(200, ok_body))
        elif mode == "echo":
            cookie = re.search(rb"(?i)\r\ncookie:\s*([^\r]*)", head)
            echoed = {"body": json.loads(body or b"null"), "cookie": cookie.group(1).decode() if cookie else None}
            writer.write(_response(201, json.dumps(echoed).encode(), "Set-Cookie: sid=abc; Path=/"))
        elif mode == "chunked":
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (ok_body[:10], ok_body[10:]))
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
        elif mode == "until_close":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + ok_body)
            return False
        elif mode == "close_after":  # a well-formed response, then the server hangs up without saying so
            writer.write(_response(200, ok_body))
            await writer.drain()
            return False
        elif mode == "connection_close":
            writer.write(_response(200, ok_body, "Connection: close"))
            await writer.drain()
            return False
        elif mode == "status_500":
            writer.write(_response(500, b'{"error": "boom"}'))
        elif mode == "gzip":
            packed = gzip.compress(ok_body)
            writer.write(_response(200, packed, "Content-Encoding: gzip"))
        elif mode == "head_only":  # a HEAD answer: a length, and no body
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
        elif mode == "interim":  # a 100 Continue before the real response
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + _response(200, ok_body))
        elif mode == "no_response":
            return False
        elif mode == "cut_body":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + ok_body[:10])
            await writer.drain()
            return False
        elif mode == "reset":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + ok_body[:10])
            await writer.drain()
            writer.transport.abort()
            return False
        elif mode == "garbage":
            writer.write(b"this is not HTTP\r\n\r\n")
            return False
        elif mode == "huge_head":
            writer.write(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\nContent-Length: 0\r\n\r\n")
        elif mode == "huge_body":  # beyond the 4 MiB cap
            size = 5 << 20
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            for _ in range(size >> 16):
                writer.write(b"x" * (1 << 16))
                await writer.drain()
        elif mode == "drip":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(1000):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.05)
        elif mode == "slow":
            await asyncio.sleep(0.2)
            writer.write(_response(200, ok_body))
        else:
            raise AssertionError(mode)
        await writer.drain()
        return True


@asynccontextmanager
async def scripted_server(mode: str) -> AsyncIterator[tuple[str, ScriptedHttpServer]]:
    server = ScriptedHttpServer(mode)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        listener.close()


def _step(**overrides: Any) -> HttpStep:
    fields: dict[str, Any] = {
        "name": "get_item",
        "method": "GET",
        "path": "/items/{user_index}",
        "expect_status": [200],
    }
    return HttpStep.model_validate({**fields, **overrides})


def _observed(result: HttpStepResult, captured: dict[str, Any]) -> dict[str, Any]:
    """What a user of the step sees, durations aside."""
    return {**result.to_dict(include_body=True), "duration_s": None, "captured_values": captured}


async def _run(client: httpx.AsyncClient, step: HttpStep, repeat: int, pause_s: float) -> list[dict[str, Any]]:
    out = []
    for rep in range(repeat):
        if rep and pause_s:
            await asyncio.sleep(pause_s)  # lets a server's hang-up reach the client before the next request
        result, captured = await run_http_step(
            client,
            step,
            step.name,
            {"user_index": rep},
            auth=AuthConfig(),
            token=TOKEN,
            secrets=[TOKEN],
            capture_bytes=4096,
        )
        out.append(_observed(result, captured))
    return out


def _both(mode: str, step: HttpStep, repeat: int = 1, pause_s: float = 0.0) -> tuple[list[Any], list[Any], list[int]]:
    """The step's results through the lean transport and through httpx's own, and each run's connection count."""

    async def one(lean: bool) -> tuple[list[dict[str, Any]], int]:
        async with scripted_server(mode) as (base, server):
            transport = None if lean else httpx.AsyncHTTPTransport(verify=shared_ssl_context())
            async with new_http_client(base, transport=transport) as client:
                results = await _run(client, step, repeat, pause_s)
            return results, server.connections

    lean, lean_conns = asyncio.run(one(True))
    reference, reference_conns = asyncio.run(one(False))
    return lean, reference, [lean_conns, reference_conns]


CASES = [
    ("ok", _step(capture={"item": "id"}, check={"status": "ok"})),
    ("echo", _step(method="POST", path="/echo", body={"name": "{user_index}"}, expect_status=[201])),
    ("chunked", _step(capture={"item": "id"})),
    ("until_close", _step(capture={"item": "id"})),
    ("connection_close", _step()),
    ("status_500", _step()),
    ("gzip", _step(capture={"item": "id"})),
    ("interim", _step(capture={"item": "id"})),
    ("no_response", _step()),
    ("cut_body", _step()),
    ("reset", _step()),
    ("garbage", _step()),
    ("huge_head", _step()),
    ("huge_body", _step()),
    ("drip", _step(timeout_s=0.5)),
]


@pytest.mark.parametrize(("mode", "step"), CASES, ids=[c[0] for c in CASES])
def test_the_lean_transport_reports_what_httpx_reports(mode: str, step: HttpStep) -> None:
    lean, reference, _ = _both(mode, step, repeat=2)
    assert lean == reference
    # The comparison is not vacuous: each case shows the outcome it is there for.
    first = lean[0]
    if mode in ("no_response", "cut_body", "garbage", "huge_head"):
        assert first["error"] == "RemoteProtocolError"
    elif mode == "reset":
        assert not first["ok"] and first["status"] is None
    elif mode == "huge_body":
        assert first["error"] == "body_too_large"
    elif mode == "drip":
        assert first["error"] == "timeout"
    elif mode == "status_500":
        assert first["status"] == 500 and not first["ok"]
    else:
        assert all(r["ok"] for r in lean), lean
    if mode == "echo":  # the JSON body went out, the cookie set by the first answer came back on the second
        assert json.loads(lean[0]["body"]) == {"body": {"name": 0}, "cookie": None}
        assert json.loads(lean[1]["body"]) == {"body": {"name": 1}, "cookie": "sid=abc"}
    if mode == "ok":  # the token in the body is redacted in what is kept
        assert TOKEN not in lean[0]["body"] and "[redacted]" in lean[0]["body"]


def test_a_head_answer_has_no_body_to_wait_for() -> None:
    # A HEAD answer names a length and sends no body (the health probe sends HEAD).
    async def one(lean: bool) -> tuple[int, bytes, int]:
        async with scripted_server("head_only") as (base, server):
            transport = None if lean else httpx.AsyncHTTPTransport(verify=shared_ssl_context())
            async with new_http_client(base, transport=transport) as client:
                first = await client.head("/health", timeout=2.0)
                second = await client.head("/health", timeout=2.0)
            return first.status_code + second.status_code, first.content + second.content, server.connections

    assert asyncio.run(one(True)) == asyncio.run(one(False)) == (400, b"", 1)


def test_a_refused_connection_is_a_connect_error_through_both() -> None:
    async def one(lean: bool) -> list[dict[str, Any]]:
        listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        listener.close()
        await listener.wait_closed()  # nothing listens there any more
        transport = None if lean else httpx.AsyncHTTPTransport(verify=shared_ssl_context())
        async with new_http_client(f"http://127.0.0.1:{port}", transport=transport) as client:
            return await _run(client, _step(), 1, 0)

    lean, reference = asyncio.run(one(True)), asyncio.run(one(False))
    assert lean == reference
    assert lean[0]["error"] == "ConnectError"


def test_one_connection_carries_a_users_requests() -> None:
    lean, reference, conns = _both("ok", _step(), repeat=5)
    assert lean == reference and all(r["ok"] for r in lean)
    assert conns == [1, 1]  # keep-alive: a new connection per request would measure connects, not the service


@pytest.mark.parametrize("mode", ["close_after", "connection_close", "until_close"])
def test_a_connection_the_server_ended_is_not_reused(mode: str) -> None:
    lean, reference, conns = _both(mode, _step(), repeat=3, pause_s=0.05)
    assert lean == reference and all(r["ok"] for r in lean)
    assert conns == [3, 3]


def test_a_body_left_unread_does_not_leave_its_connection_to_the_next_request() -> None:
    # The 4 MiB cap stops reading the first answer: its connection is closed, the second request opens a new one.
    lean, reference, conns = _both("huge_body", _step(), repeat=2)
    assert lean == reference
    assert [r["error"] for r in lean] == ["body_too_large", "body_too_large"]
    assert conns == [2, 2]


def test_concurrent_requests_open_no_more_connections_than_the_pool_allows() -> None:
    async def main() -> tuple[int, list[int]]:
        async with scripted_server("slow") as (base, server):
            transport = LeanTransport(shared_ssl_context(), max_connections=2)
            async with new_http_client(base, transport=transport) as client:
                responses = await asyncio.gather(*(client.get(f"/items/{i}") for i in range(6)))
            return server.most_open, [r.status_code for r in responses]

    most_open, statuses = asyncio.run(main())
    assert statuses == [200] * 6
    assert most_open == 2


def test_a_request_waiting_for_a_full_pool_times_out_as_a_pool_timeout() -> None:
    async def main() -> list[str]:
        async with scripted_server("slow") as (base, _server):
            transport = LeanTransport(shared_ssl_context(), max_connections=1)
            async with new_http_client(base, transport=transport) as client:
                timeout = httpx.Timeout(5.0, pool=0.05)
                results = await asyncio.gather(
                    *(client.get(f"/items/{i}", timeout=timeout) for i in range(2)), return_exceptions=True
                )
            return [type(r).__name__ for r in results]

    assert sorted(asyncio.run(main())) == ["PoolTimeout", "Response"]


@functools.cache
def _client_for(base: str) -> httpx.AsyncClient:
    """One client per base URL for all examples: each new httpx client loads certifi's bundle into a
    new SSL context (tens of ms), which was most of this test's 10 s per base URL."""
    return httpx.AsyncClient(base_url=base)


_PATH_CHARS = "/abcAZ09-._~%?&=+;:@!$'()*,[] \"<>^`{|}ü€\t\\#"


@pytest.mark.parametrize("base", ["http://127.0.0.1:8000", "http://127.0.0.1:8000/pre/fix", "https://[::1]:9/x%20y/"])
@given(tail=st.text(alphabet=_PATH_CHARS, max_size=30))
@settings(max_examples=100, deadline=None)
def test_a_path_joined_to_the_base_url_is_the_url_httpx_would_send_to(base: str, tail: str) -> None:
    client = _client_for(base)
    for path in ("/" + tail, tail, "//" + tail):
        try:
            expected = client.build_request("GET", path).url
        except httpx.InvalidURL:
            with pytest.raises(httpx.InvalidURL):
                client.build_request("GET", absolute_url(client, path))
            continue
        joined = client.build_request("GET", absolute_url(client, path)).url
        assert (joined.scheme, joined.raw_host, joined.port, joined.raw_path) == (
            expected.scheme,
            expected.raw_host,
            expected.port,
            expected.raw_path,
        )


@pytest.mark.parametrize(
    ("base", "joined"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/items/1?q=2"),  # httpx prints a bare host without its "/"
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/items/1?q=2"),
        ("http://127.0.0.1:8000/pre/fix", "http://127.0.0.1:8000/pre/fix/items/1?q=2"),
    ],
)
def test_a_path_from_the_root_is_joined_to_any_plain_base_url(base: str, joined: str) -> None:
    # Joined here, the request is parsed once (and can go below the client layer); left relative, httpx parses it twice.
    assert absolute_url(httpx.AsyncClient(base_url=base), "/items/1?q=2") == joined


@pytest.fixture
def self_signed(tmp_path: Any) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and a client context trusting it."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command makes the test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


def test_https_goes_through_tls_and_an_untrusted_certificate_is_a_connect_error(
    self_signed: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_tls, client_tls = self_signed

    async def one(lean: bool, trusted: bool) -> list[dict[str, Any]]:
        server = ScriptedHttpServer("ok")
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=server_tls)
        port = listener.sockets[0].getsockname()[1]
        tls = client_tls if trusted else shared_ssl_context()  # certifi's bundle does not know the test's certificate
        transport = LeanTransport(tls) if lean else httpx.AsyncHTTPTransport(verify=tls)
        try:
            async with new_http_client(f"https://127.0.0.1:{port}", transport=transport) as client:
                return await _run(client, _step(capture={"item": "id"}), 2, 0)
        finally:
            listener.close()

    for trusted in (True, False):
        lean, reference = asyncio.run(one(True, trusted)), asyncio.run(one(False, trusted))
        assert lean == reference
        if trusted:
            assert all(r["ok"] for r in lean)
        else:
            assert [r["error"] for r in lean] == ["ConnectError", "ConnectError"]
