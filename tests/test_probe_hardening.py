"""Probes against misbehaving servers (issue 11): unclean closes, endless or dripping bodies, many users.

Every server here is scripted on raw asyncio sockets on 127.0.0.1, so it can do what a
well-behaved library would refuse to: complete a WebSocket exchange and then never answer
the close frame, ping forever, drop the TCP connection, drip or never end a body.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from test_wsprobe import STEP

from stability_lib.core.models import Status
from stability_lib.execution.params import HealthConfig, HealthEndpoint, HealthWebSocket, TargetConfig
from stability_lib.probes.engine import SETUP_CONCURRENCY, prepare_users, run_soak, run_ws_session, ws_url
from stability_lib.probes.golden import run_golden_path
from stability_lib.probes.health import MAX_BODY_BYTES, health_claims, run_health
from stability_lib.probes.scenario import AuthConfig, ScenarioConfig, WsStep
from stability_lib.probes.sessions import OutcomeKind

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

WS_STEP: dict[str, Any] = {**STEP, "path": "/ws", "event_timeout_s": 5.0, "timeout_s": 10.0}


def ws_scenario(tolerated: float = 0.05, **soak: Any) -> ScenarioConfig:
    return ScenarioConfig.model_validate(
        {
            "users": {"password": "pw-not-used", "count": 1},
            "golden_path": {"steps": [WS_STEP]},
            "soak": {"connect_timeout_s": 2.0, "close_timeout_s": 0.3, **soak},
            "tolerated_failure_rate": tolerated,
        }
    )


# --------------------------------------------------------------------------- a raw WebSocket server


def _frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    head = bytes([0x80 | opcode]) + (bytes([n]) if n < 126 else bytes([126]) + n.to_bytes(2, "big"))
    return head + payload


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    mask = await reader.readexactly(4) if b1 & 0x80 else b""
    data = await reader.readexactly(n)
    if mask:
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(data))
    return b0 & 0x0F, data


class RawWsServer:
    """Completes the opening handshake, answers one message, then misbehaves by ``mode``.

    - ``never_close``: answers, then reads and ignores everything (our close frame too);
    - ``ping``: answers, then pings every 10 ms and never closes;
    - ``drop``: answers, then cuts the TCP connection without a close frame;
    - ``close_1011``: answers, then closes with 1011;
    - ``slow``: sends the first event only, then stays silent and never answers a close.
    ``reply`` is ``events`` (agent_started .. final_response) or ``echo``.
    """

    def __init__(self, mode: str, reply: str = "events") -> None:
        self.mode = mode
        self.reply = reply
        self.connections = 0
        self.open_now = 0
        self.close_frames_received = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            match = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", head)
            assert match is not None
            accept = base64.b64encode(hashlib.sha1(match.group(1) + _GUID).digest())
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            _, message = await _read_frame(reader)
            for reply in self._replies(message):
                writer.write(_frame(0x1, reply))
            await writer.drain()
            if self.mode == "drop":
                writer.transport.abort()
                return
            if self.mode == "close_1011":
                writer.write(_frame(0x8, (1011).to_bytes(2, "big") + b"boom"))
                await writer.drain()
            await self._ignore_until_eof(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open_now -= 1
            writer.close()

    def _replies(self, message: bytes) -> list[bytes]:
        if self.reply == "echo":
            return [message]
        content = json.loads(message)["content"]
        events = [
            {"type": "agent_started"},
            {"type": "agent_completed"},
            {"type": "final_response", "content": content},
        ]
        if self.mode == "slow":
            events = events[:1]
        return [json.dumps(e).encode() for e in events]

    async def _ignore_until_eof(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pinger = asyncio.create_task(self._ping_forever(writer)) if self.mode == "ping" else None
        try:
            while True:
                opcode, _ = await _read_frame(reader)
                if opcode == 0x8:
                    self.close_frames_received += 1  # and never answered
        finally:
            if pinger is not None:
                pinger.cancel()

    @staticmethod
    async def _ping_forever(writer: asyncio.StreamWriter) -> None:
        while True:
            writer.write(_frame(0x9, b"keepalive"))
            await writer.drain()
            await asyncio.sleep(0.01)


@asynccontextmanager
async def raw_ws_server(mode: str, reply: str = "events") -> AsyncIterator[tuple[str, RawWsServer]]:
    state = RawWsServer(mode, reply)
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", state
    finally:
        server.close()


async def one_session(base: str, close_timeout_s: float = 0.3) -> Any:
    return await run_ws_session(
        url=ws_url(base, "/ws"),
        step=WsStep.model_validate(WS_STEP),
        context={"nonce": "nonce-x"},
        auth=AuthConfig(),
        token=None,
        session_id="s1",
        run_start_ns=time.monotonic_ns(),
        connect_timeout_s=2.0,
        close_timeout_s=close_timeout_s,
    )


# --------------------------------------------------------------------------- item 1: the close handshake


@pytest.mark.parametrize("mode", ["never_close", "ping"])
def test_a_session_whose_close_is_never_answered_is_not_ok(mode: str) -> None:
    async def main() -> Any:
        async with raw_ws_server(mode) as (base, state):
            record = await one_session(base)
            return record, state.close_frames_received

    record, closes_seen = asyncio.run(main())
    assert closes_seen == 1  # we did send our close frame; the server ignored it
    assert record.outcome.kind is OutcomeKind.CLOSE_TIMEOUT
    assert not record.outcome.is_ok and not record.outcome.is_crash
    assert record.close_code is None
    assert record.event_types[-1] == "final_response"  # the exchange itself was complete
    assert json.loads(json.dumps(record.to_dict()))["outcome"]["kind"] == "close_timeout"


@pytest.mark.parametrize(
    ("mode", "kind", "code"),
    [
        ("drop", OutcomeKind.ABNORMAL_1006, None),
        ("close_1011", OutcomeKind.CLOSED_1011, 1011),
    ],
)
def test_a_drop_or_1011_right_after_the_last_event_is_a_crash_not_ok(
    mode: str, kind: OutcomeKind, code: int | None
) -> None:
    async def main() -> Any:
        async with raw_ws_server(mode) as (base, _):
            return await one_session(base)

    record = asyncio.run(main())
    assert record.outcome.kind is kind and record.outcome.is_crash
    assert record.close_code == code


def test_soak_against_a_server_that_never_closes_fails_end_to_end() -> None:
    # 120 sessions at a tolerated 5%: had every session counted as ok, both claims would PASS.
    async def main() -> Any:
        async with raw_ws_server("never_close") as (base, _):
            return await run_soak(base, ws_scenario(sessions=120, concurrency=40))

    result = asyncio.run(main())
    agg = result.aggregate
    assert agg.outcome_counts["close_timeout"] == 120 and agg.ok == 0
    assert agg.close_codes == {"none": 120}
    crash, complete = result.claims()
    assert complete.status is Status.FAIL
    assert complete.statistic.startswith("120 of 120 sessions failed")
    # Not a crash (no 1011, no drop), and not evidence of "no crash" either: nothing was seen to its end.
    assert crash.status is Status.INCONCLUSIVE and "close_timeout x120" in crash.statistic
    evidence = json.loads(json.dumps(result.to_dict()))
    assert {r["outcome"]["kind"] for r in evidence["records"]} == {"close_timeout"}


def test_golden_path_fails_on_a_session_whose_close_is_never_answered() -> None:
    async def main() -> Any:
        async with raw_ws_server("ping") as (base, _):
            return await run_golden_path(base, ws_scenario())

    golden, _ = asyncio.run(main()).claims()
    assert golden.status is Status.FAIL
    assert golden.details["failures"][0]["failure"] == "close_timeout"


def test_health_echo_names_the_unanswered_close() -> None:
    async def main() -> dict[str, Any]:
        async with raw_ws_server("never_close", reply="echo") as (base, _):
            cfg = HealthConfig(samples=1, timeout_s=0.5, endpoints=[], websocket=HealthWebSocket(path="/ws"))
            return await asyncio.to_thread(run_health, TargetConfig(base_url=base), cfg)

    data = asyncio.run(main())
    assert data["websocket"]["echoed"] and data["websocket"]["outcome"] == "close_timeout"
    cfg = HealthConfig(endpoints=[], websocket=HealthWebSocket(path="/ws"))
    (claim,) = health_claims(cfg, data)
    assert claim.status is Status.FAIL and "did not complete the close handshake" in claim.statistic


# --------------------------------------------------------------------------- item 3: bounded health reads


class RawHttpServer:
    """Answers every request with a body that either drips or never ends; counts bytes sent."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sent = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            if self.mode == "drip":  # one byte every 0.5 s: each read is quick, the whole takes 30 s
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 60\r\n\r\n")
                for _ in range(60):
                    writer.write(b" ")
                    await writer.drain()
                    await asyncio.sleep(0.5)
            else:  # "endless": 128 MiB (128 times the cap), sent as fast as the client reads
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 134217728\r\n\r\n")
                chunk = b'{"status": "ok", "pad": "' + b"x" * 65_000
                while self.sent < 128 << 20:
                    writer.write(chunk)
                    await writer.drain()
                    self.sent += len(chunk)
        except ConnectionError:
            pass
        finally:
            writer.close()


def _health_against(mode: str, timeout_s: float) -> tuple[dict[str, Any], RawHttpServer, float]:
    async def main() -> tuple[dict[str, Any], RawHttpServer, float]:
        state = RawHttpServer(mode)
        server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        cfg = HealthConfig(
            samples=1, timeout_s=timeout_s, endpoints=[HealthEndpoint(path="/health", json_keys=["status"])]
        )
        t0 = time.monotonic()
        data = await asyncio.to_thread(run_health, TargetConfig(base_url=base), cfg)
        elapsed = time.monotonic() - t0
        server.close()
        return data, state, elapsed

    return asyncio.run(main())


def test_a_dripping_health_body_ends_at_the_whole_request_deadline() -> None:
    data, _, elapsed = _health_against("drip", timeout_s=2.0)
    (sample,) = data["samples"]
    assert sample["status"] is None and sample["error"].startswith("timeout")
    assert elapsed < 15  # generous: the deadline is 2 s, the drip would take 30 s
    cfg = HealthConfig(timeout_s=2.0, endpoints=[HealthEndpoint(path="/health", json_keys=["status"])])
    (claim,) = health_claims(cfg, data)
    assert claim.status is Status.FAIL and "timeout" in claim.statistic


def test_an_endless_health_body_is_cut_at_the_cap_and_says_so() -> None:
    data, server, _ = _health_against("endless", timeout_s=20.0)
    (sample,) = data["samples"]
    assert sample["status"] == 200 and sample["truncated"] is True
    assert len(sample["body_excerpt"]) <= 512
    # The probe stopped reading: the server could push little beyond the cap and the socket buffers.
    assert server.sent < 32 * MAX_BODY_BYTES
    cfg = HealthConfig(endpoints=[HealthEndpoint(path="/health", json_keys=["status"])])
    (claim,) = health_claims(cfg, data)
    assert claim.status is Status.FAIL and "cut there" in claim.statistic


# --------------------------------------------------------------------------- item 3: bounded user setup


def test_users_are_set_up_a_few_at_a_time() -> None:
    in_flight = 0
    peak = 0

    async def register(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal in_flight, peak
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.1)
            in_flight -= 1
            writer.write(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
            await writer.drain()
        finally:
            writer.close()

    async def main() -> list[Any]:
        server = await asyncio.start_server(register, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        scenario = ScenarioConfig.model_validate(
            {
                "auth": {"register": {"path": "/register", "body": {"u": "{username}"}, "expect_status": [201]}},
                "users": {"password": "pw-not-used", "count": 40},
                "golden_path": {"steps": [WS_STEP]},
            }
        )
        users = await prepare_users(base, scenario, "run1", [])
        server.close()
        return users

    users = asyncio.run(main())
    assert len(users) == 40 and all(u.setup.ok for u in users)
    assert 1 < peak <= SETUP_CONCURRENCY  # concurrent, but bounded (all 40 at once before)
