"""Misbehaving HTTP and WebSocket servers, scripted on 127.0.0.1 (issue 11, items 1, 3, 7).

One raw asyncio server plays every misbehaviour, chosen by the request path. The probes are
called in-process; each case is bounded in time, and the ones that could balloon run in a
fresh interpreter with a memory cap and a peak-RSS check. No misbehaviour may give a PASS.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from _corpus import marker_in_environment, run_bounded, run_python

from stability_lib.contract.section import ContractConfig, run_contract
from stability_lib.contract.spec_source import UrlSource
from stability_lib.core.models import Status
from stability_lib.execution.params import HealthConfig, HealthEndpoint, HealthWebSocket, TargetConfig
from stability_lib.probes.engine import run_soak, run_ws_session, ws_url
from stability_lib.probes.health import health_claims, run_health
from stability_lib.probes.scenario import AuthConfig, ScenarioConfig, WsStep
from stability_lib.probes.sessions import OutcomeKind

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
EVENTS = ["agent_started", "agent_completed", "final_response"]
SPEC = json.dumps(
    {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {"/a": {"get": {"responses": {"200": {"description": "ok"}}}}},
    }
).encode()


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One unmasked frame, as a server sends it."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 1 << 16:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


class Misbehaving:
    """Every behaviour the corpus needs, by path. HTTP and WebSocket on one port."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            path = request_line.split(" ")[1].split("?")[0]
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
            if headers.get("upgrade", "").lower() == "websocket":
                await self.websocket(path, headers, reader, writer)
            else:
                await self.http(path, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    async def until_stopped(self, every_s: float, writer: asyncio.StreamWriter, data: bytes) -> None:
        while not self.stop.is_set():
            await self.send(writer, data)
            await asyncio.sleep(every_s)

    async def http(self, path: str, writer: asyncio.StreamWriter) -> None:
        ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        if path.endswith("/endless"):
            await self.send(writer, ok + b"Transfer-Encoding: chunked\r\n\r\n")
            chunk = b"100000\r\n" + b"x" * 0x100000 + b"\r\n"
            await self.until_stopped(0, writer, chunk)
        elif path.endswith("/drip-body"):
            await self.send(writer, ok + b"Content-Length: 1000000\r\n\r\n{")
            await self.until_stopped(0.2, writer, b" ")
        elif path.endswith("/drip-headers"):
            await self.send(writer, b"HTTP/1.1 200 OK\r\n")
            await self.until_stopped(0.2, writer, b"X")
        elif path.endswith("/silent"):
            await self.stop.wait()
        elif path.endswith("/hangup"):
            return
        elif path.endswith("/garbage"):
            await self.send(writer, b"\x00\xffnot http at all\r\n\r\n")
        elif path.endswith("/500"):
            await self.send(writer, b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n{}")
        elif path.endswith("/short-body"):
            await self.send(writer, ok + b'Content-Length: 100\r\n\r\n{"status": "ok"}')
        elif path.endswith("/not-json"):
            await self.send(writer, ok + b"Content-Length: 9\r\n\r\n<html/>\r\n")
        elif path.endswith("/json-list"):
            await self.send(writer, ok + b'Content-Length: 10\r\n\r\n["status"]')
        elif path.endswith("/huge-header"):
            await self.send(writer, ok + b"X-Big: " + b"h" * 200_000 + b"\r\nContent-Length: 2\r\n\r\n{}")
        elif path.endswith("/redirect-loop"):
            await self.send(
                writer, b"HTTP/1.1 302 Found\r\nLocation: " + path.encode() + b"\r\nContent-Length: 0\r\n\r\n"
            )
        elif path.endswith("/gzip-bomb"):
            bomb = gzip.compress(b"\0" * (200 * 1024 * 1024), compresslevel=9)
            await self.send(
                writer,
                ok + b"Content-Encoding: gzip\r\nContent-Length: " + str(len(bomb)).encode() + b"\r\n\r\n" + bomb,
            )
        elif path.endswith("/html-spec"):
            await self.send(
                writer, b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 15\r\n\r\n<html>hi</html>"
            )
        elif path.endswith("/spec"):
            await self.send(writer, ok + b"Content-Length: " + str(len(SPEC)).encode() + b"\r\n\r\n" + SPEC)
        else:
            await self.send(writer, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    async def read_frame(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        b1, b2 = await reader.readexactly(2)
        n = b2 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await reader.readexactly(8))
        mask = await reader.readexactly(4) if b2 & 0x80 else b"\0\0\0\0"
        data = await reader.readexactly(n)
        return b1 & 0x0F, bytes(c ^ mask[i % 4] for i, c in enumerate(data))

    async def websocket(
        self, path: str, headers: dict[str, str], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if path == "/ws/no-handshake":
            await self.stop.wait()
            return
        if path == "/ws/garbage-handshake":
            await self.send(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            return
        accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + WS_GUID).encode()).digest()).decode()
        if path == "/ws/wrong-accept":
            accept = base64.b64encode(b"0" * 20).decode()
        await self.send(
            writer,
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode(),
        )
        if path == "/ws/drop-after-handshake":
            return
        opcode, data = await self.read_frame(reader)  # the client's message (or the echo text)
        if path == "/ws/echo-never-close":
            await self.send(writer, ws_frame(data))
            await self.stop.wait()  # ignores the client's close frame and keeps the TCP open
            return
        if path == "/ws/bad-utf8":
            await self.send(writer, ws_frame(b"\xff\xfe\xfd"))
            await self.stop.wait()
            return
        if path == "/ws/huge-message":
            await self.send(writer, ws_frame(b"x" * (64 * 1024 * 1024)))
            await self.stop.wait()
            return
        for event in EVENTS:
            await self.send(writer, ws_frame(json.dumps({"type": event, "content": "c"}).encode()))
        if path == "/ws/never-close":
            await self.stop.wait()  # the close frame is never answered: no clean close
        elif path == "/ws/ping-forever":
            await self.until_stopped(0.01, writer, ws_frame(b"p", opcode=0x9))
        elif path == "/ws/close-1011":
            await self.send(writer, ws_frame(struct.pack("!H", 1011) + b"boom", opcode=0x8))
            await self.stop.wait()
        elif path == "/ws/drop-after-events":
            return
        else:  # a well-behaved close
            while True:
                opcode, data = await self.read_frame(reader)
                if opcode == 0x8:
                    await self.send(writer, ws_frame(data[:2], opcode=0x8))
                    return


@contextmanager
def misbehaving_server() -> Iterator[str]:
    """The server on its own event loop in a thread, so the sync probes can be called as they are."""
    loop = asyncio.new_event_loop()
    state = Misbehaving()
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        server = await asyncio.start_server(state.handle, "127.0.0.1", 0, limit=1 << 20)
        box["port"] = server.sockets[0].getsockname()[1]
        started.set()
        async with server:
            await state.stop.wait()
            server.close()
        # Connections still being served end here, on a live loop, not at garbage collection.
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield f"http://127.0.0.1:{box['port']}"
    finally:
        loop.call_soon_threadsafe(state.stop.set)
        thread.join(10)


# --------------------------------------------------------------------------- HTTP health


HEALTH_PATHS = [
    "/drip-body",
    "/drip-headers",
    "/silent",
    "/hangup",
    "/garbage",
    "/500",
    "/short-body",
    "/not-json",
    "/json-list",
    "/huge-header",
    "/redirect-loop",
    "/nothing-here",
]


@pytest.mark.parametrize("path", HEALTH_PATHS)
def test_a_misbehaving_health_endpoint_fails_within_its_deadline(path: str) -> None:
    cfg = HealthConfig(samples=1, timeout_s=1, endpoints=[HealthEndpoint(path=path, json_keys=["status"])])
    with misbehaving_server() as base, marker_in_environment():
        data = run_bounded(lambda: run_health(TargetConfig(base_url=base), cfg), 30)
    (claim,) = health_claims(cfg, data)
    assert claim.status is Status.FAIL, f"{path}: {claim.status} {claim.statistic}"
    assert len(json.dumps(data)) < 200_000


@pytest.mark.parametrize("path", ["/endless", "/gzip-bomb"])
def test_an_endless_or_bombed_health_body_stays_within_memory(path: str) -> None:
    """Issue 11, item 3: an endless body was read to 5.1 GB in 14 s."""
    with misbehaving_server() as base:
        code = f"""
from stability_lib.probes.health import health_claims, run_health
from stability_lib.execution.params import HealthConfig, HealthEndpoint, TargetConfig
cfg = HealthConfig(samples=1, timeout_s=2, endpoints=[HealthEndpoint(path={path!r}, json_keys=["status"])])
(claim,) = health_claims(cfg, run_health(TargetConfig(base_url={base!r}), cfg))
print(claim.status.value)
"""
        outcome = run_python(code, timeout_s=60, memory_cap_bytes=2 << 30)
    assert outcome.returncode == 0 and not outcome.timed_out, outcome.describe()
    assert outcome.stdout.split()[-1] == "FAIL", outcome.describe()
    assert outcome.max_rss_kb < 400 * 1024, outcome.describe()
    assert not outcome.left_behind


@pytest.mark.parametrize(
    "path",
    [
        "/ws/echo-never-close",
        "/ws/no-handshake",
        "/ws/garbage-handshake",
        "/ws/wrong-accept",
        "/ws/drop-after-handshake",
        "/ws/bad-utf8",
        "/ws/huge-message",
    ],
)
def test_a_misbehaving_websocket_echo_fails(path: str) -> None:
    cfg = HealthConfig(samples=1, timeout_s=1, endpoints=[], websocket=HealthWebSocket(path=path, message="ping"))
    with misbehaving_server() as base, marker_in_environment():
        data = run_bounded(lambda: run_health(TargetConfig(base_url=base), cfg), 30)
    claims = health_claims(cfg, data)
    assert claims and all(c.status is not Status.PASS for c in claims), [(c.id, c.status, c.statistic) for c in claims]


# --------------------------------------------------------------------------- spec fetches


@pytest.mark.parametrize(
    "path",
    [
        "/drip-body",
        "/drip-headers",
        "/silent",
        "/hangup",
        "/garbage",
        "/500",
        "/short-body",
        "/html-spec",
        "/redirect-loop",
        "/endless",
        "/gzip-bomb",
    ],
)
def test_a_misbehaving_spec_server_is_inconclusive_within_its_deadline(
    path: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stability_lib.contract import spec_source as _contract

    monkeypatch.setattr(_contract, "FETCH_TIMEOUT_S", 0.3)  # whole request: 0.9 s
    monkeypatch.setattr(_contract, "MAX_SPEC_BYTES", 4 * 1024 * 1024)
    with misbehaving_server() as base, marker_in_environment():
        cfg = ContractConfig(
            baseline_spec=UrlSource(url=f"{base}/spec"),
            candidate_spec=UrlSource(url=f"{base}{path}"),
            compare_ws_events=False,
        )
        result = run_bounded(lambda: run_contract(cfg, baseline_url=None, candidate_url=None, base_dir=tmp_path), 30)
    claim = next(c for c in result.claims() if c.id == "contract.no_breaking_api_changes")
    assert claim.status is Status.INCONCLUSIVE, f"{path}: {claim.status} {claim.statistic}"


# --------------------------------------------------------------------------- WebSocket sessions and the soak

STEP = {
    "kind": "ws",
    "name": "chat",
    "path": "/ws",
    "send": {"type": "user_message", "content": "hi {nonce}"},
    "expect": ["agent_started", "agent_completed"],
    "end_event": "final_response",
    "event_timeout_s": 1.0,
    "timeout_s": 3.0,
}

WS_PATHS = [
    "/ws/never-close",
    "/ws/ping-forever",
    "/ws/close-1011",
    "/ws/drop-after-events",
    "/ws/drop-after-handshake",
    "/ws/no-handshake",
    "/ws/garbage-handshake",
    "/ws/wrong-accept",
    "/ws/bad-utf8",
    "/ws/huge-message",
]


@pytest.mark.parametrize("path", WS_PATHS)
def test_a_misbehaving_websocket_session_is_never_ok(path: str) -> None:
    """Issue 11, item 1: a server that never completes the close handshake made every session 'ok'."""

    async def one() -> Any:
        with misbehaving_server() as base:
            return await run_ws_session(
                url=ws_url(base, path),
                step=WsStep.model_validate({**STEP, "path": path}),
                context={"nonce": "n"},
                auth=AuthConfig(),
                token=None,
                session_id="s",
                run_start_ns=time.monotonic_ns(),
                connect_timeout_s=1.0,
                close_timeout_s=1.0,
                max_message_bytes=1 << 20,
            )

    with marker_in_environment():
        record = run_bounded(lambda: asyncio.run(one()), 30)
    assert record.outcome.kind is not OutcomeKind.OK, f"{path}: {record.outcome}"


def test_the_well_behaved_scripted_session_is_ok() -> None:
    """The scripted server itself is right: the cases above fail for their fault, not the script's."""

    async def one() -> Any:
        with misbehaving_server() as base:
            return await run_ws_session(
                url=ws_url(base, "/ws/good"),
                step=WsStep.model_validate({**STEP, "path": "/ws/good"}),
                context={"nonce": "n"},
                auth=AuthConfig(),
                token=None,
                session_id="s",
                run_start_ns=time.monotonic_ns(),
                connect_timeout_s=1.0,
                close_timeout_s=1.0,
            )

    record = run_bounded(lambda: asyncio.run(one()), 30)
    assert record.outcome.kind is OutcomeKind.OK, record.outcome


@pytest.mark.parametrize("path", ["/ws/never-close", "/ws/ping-forever"])
def test_a_soak_against_a_server_that_never_closes_is_not_a_pass(path: str) -> None:
    """Issue 11, item 1: soak verdict PASS with close_codes {"none": 320}."""
    scenario = ScenarioConfig.model_validate(
        {
            "users": {"password": "pw-unused", "count": 1},
            "golden_path": {"steps": [{**STEP, "path": path}]},
            "soak": {
                "sessions": 20,
                "concurrency": 10,
                "connect_timeout_s": 1.0,
                "close_timeout_s": 0.5,
                "duration_s": 30,
            },
            "tolerated_failure_rate": 0.01,
        }
    )

    async def soak() -> Any:
        with misbehaving_server() as base:
            return await run_soak(base, scenario)

    with marker_in_environment():
        result = run_bounded(lambda: asyncio.run(soak()), 90)
    statuses = [(c.id, c.status, c.statistic) for c in result.claims()]
    assert all(status is not Status.PASS for _, status, _ in statuses), statuses
    assert result.aggregate.ok == 0, result.aggregate.outcome_counts
