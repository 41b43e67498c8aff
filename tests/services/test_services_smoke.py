"""The two real services of issue 13 behave as their params files will assume.

Each test starts a service in a subprocess on 127.0.0.1 and talks to it with a plain
websockets client: auth is enforced on health, HTTP endpoints and the upgrade; the
protocol's correlation works (graphql-transport-ws ids, JSON-RPC ids among notifications);
sessions a client opens are counted and gone after it closes them; per-user data stays
per user; and each fault switch changes what a client sees the way the fault says.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

# The services' protocol libraries are test extras (see the requirement lines in the issue 13 report).
pytest.importorskip("strawberry", reason="strawberry-graphql is not installed (test extra of issue 13)")
pytest.importorskip("jsonrpcserver", reason="jsonrpcserver is not installed (test extra of issue 13)")

pytestmark = pytest.mark.slow  # each test starts a service process (about 2 s of imports)

SERVICES = Path(__file__).resolve().parent
ALICE, BOB = f"tok-alice-{uuid.uuid4().hex}", f"tok-bob-{uuid.uuid4().hex}"
TOKENS = f"alice={ALICE},bob={BOB}"
WAIT_S = 10.0  # liveness bound on each whole wait (not per message); never asserted on
START_WAIT_S = 60.0  # a service's imports (strawberry, pydantic) on a loaded 2-core machine


@dataclass(frozen=True)
class Service:
    url: str
    auth_header: str
    auth_format: str
    pid: int = 0  # the service process (a test may kill it from outside)

    def headers(self, token: str) -> dict[str, str]:
        return {self.auth_header: self.auth_format.format(token=token)}

    @property
    def ws_base(self) -> str:
        return "ws" + self.url.removeprefix("http")

    def resources(self, token: str = ALICE) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/resources", headers=self.headers(token), timeout=WAIT_S, trust_env=False)
        response.raise_for_status()
        return response.json()


def _read_first_line(process: subprocess.Popen[str]) -> str:
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.append(process.stdout.readline() if process.stdout else ""), daemon=True
    )
    reader.start()
    reader.join(START_WAIT_S)
    if not lines or not lines[0].startswith("http://127.0.0.1:"):
        raise RuntimeError(f"service did not print its URL (exit code {process.poll()})")
    return lines[0].strip()


@contextlib.contextmanager
def running(script: str, auth_header: str, auth_format: str, *args: str, tokens: str = TOKENS) -> Iterator[Service]:
    """The service with ``tokens`` ("alice=TOKEN,bob=TOKEN") as its known API keys; health-checked with alice's."""
    env = {**os.environ, "REALSVC_TOKENS": tokens}
    alice = dict(pair.split("=", 1) for pair in tokens.split(","))["alice"]
    process = subprocess.Popen(
        [sys.executable, str(SERVICES / script), "--port", "0", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=SERVICES,
    )
    try:
        service = Service(_read_first_line(process), auth_header, auth_format, process.pid)
        deadline = time.monotonic() + WAIT_S
        while True:  # the URL is printed once bound; wait until it answers
            try:
                if (
                    httpx.get(
                        f"{service.url}/health", headers=service.headers(alice), timeout=1, trust_env=False
                    ).status_code
                    == 200
                ):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{script} did not become healthy")
            time.sleep(0.05)
        yield service
    finally:
        process.terminate()
        try:
            process.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(WAIT_S)


@contextlib.contextmanager
def graphql_service(*args: str) -> Iterator[Service]:
    with running("graphql_ws.py", "Authorization", "Bearer {token}", *args) as service:
        yield service


@contextlib.contextmanager
def jsonrpc_service(*args: str, tokens: str = TOKENS) -> Iterator[Service]:
    with running("jsonrpc_ws.py", "X-API-Key", "{token}", *args, tokens=tokens) as service:
        yield service


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WAIT_S):
        return json.loads(await ws.recv())


def assert_needs_token(service: Service, open_socket: Callable[[Service, str], Any], upgrade_status: int) -> None:
    """HTTP endpoints answer 401 and the WebSocket upgrade fails with ``upgrade_status`` without a known token."""
    for path in ("/health", "/resources"):
        assert httpx.get(f"{service.url}{path}", timeout=WAIT_S, trust_env=False).status_code == 401
        wrong = service.headers("tok-nobody")
        assert httpx.get(f"{service.url}{path}", headers=wrong, timeout=WAIT_S, trust_env=False).status_code == 401
    with pytest.raises(InvalidStatus) as rejected:
        asyncio.run(open_socket(service, "tok-nobody").__aenter__())
    assert rejected.value.response.status_code == upgrade_status


# --------------------------------------------------------------------------- GraphQL over graphql-transport-ws

ECHO = "subscription($s: ID!, $t: String!) { echo(sessionId: $s, text: $t, count: 3) { seq text sessionId } }"
TICKS = "subscription($s: ID!) { ticks(sessionId: $s, count: 3) { seq sessionId } }"


@contextlib.asynccontextmanager
async def graphql_socket(service: Service, token: str):
    async with connect(
        f"{service.ws_base}/graphql",
        subprotocols=["graphql-transport-ws"],
        additional_headers=service.headers(token),
        open_timeout=WAIT_S,
        proxy=None,
    ) as ws:
        assert ws.subprotocol == "graphql-transport-ws"
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert (await recv_json(ws))["type"] == "connection_ack"
        yield ws


async def subscribe(ws: ClientConnection, op_id: str, query: str, **variables: Any) -> None:
    await ws.send(json.dumps({"type": "subscribe", "id": op_id, "payload": {"query": query, "variables": variables}}))


async def collect_until_complete(
    ws: ClientConnection, op_ids: set[str], still_streaming: frozenset[str] = frozenset()
) -> tuple[dict[str, list[dict]], list[str]]:
    """``next`` payloads per operation id until every id completed, and the order the ids arrived in.
    Messages of ``still_streaming`` (operations started earlier on this socket) are passed over."""
    payloads: dict[str, list[dict]] = {i: [] for i in op_ids}
    arrival: list[str] = []
    open_ids = set(op_ids)
    while open_ids:
        message = json.loads(await ws.recv())
        op_id = message.get("id")
        if op_id in still_streaming:
            continue
        assert op_id in op_ids, f"message for an operation we never started: {message}"
        arrival.append(op_id)
        if message["type"] == "complete":
            open_ids.discard(op_id)
        else:
            assert message["type"] == "next", message
            payloads[op_id].append(message["payload"])
    return payloads, arrival


async def graphql_once(
    ws: ClientConnection, op_id: str, query: str, still_streaming: frozenset[str] = frozenset(), **variables: Any
) -> dict[str, Any]:
    await subscribe(ws, op_id, query, **variables)
    async with asyncio.timeout(WAIT_S):
        payloads, _ = await collect_until_complete(ws, {op_id}, still_streaming)
    (payload,) = payloads[op_id]
    return payload


def test_graphql_service_correlates_subscriptions_by_id_and_cleans_up() -> None:
    nonce = f"nonce-{uuid.uuid4().hex}"

    async def scenario(service: Service) -> None:
        async with graphql_socket(service, ALICE) as ws:
            opened = await graphql_once(
                ws, "open", "mutation($l: String!) { openSession(label: $l) { id owner } }", l=f"probe {nonce}"
            )
            session_id = opened["data"]["openSession"]["id"]
            assert opened["data"]["openSession"]["owner"] == "alice"
            assert service.resources()["by_user"] == {"alice": 1}
            await subscribe(ws, "echo-1", ECHO, s=session_id, t=nonce)
            await subscribe(ws, "ticks-1", TICKS, s=session_id)
            async with asyncio.timeout(WAIT_S):
                payloads, _ = await collect_until_complete(ws, {"echo-1", "ticks-1"})
            assert [p["data"]["echo"]["seq"] for p in payloads["echo-1"]] == [1, 2, 3]
            assert all(p["data"]["echo"]["text"] == f"probe {nonce}: {nonce}" for p in payloads["echo-1"])
            assert [p["data"]["ticks"]["seq"] for p in payloads["ticks-1"]] == [1, 2, 3]

            async with graphql_socket(service, BOB) as bob:
                listed = await graphql_once(bob, "list", "{ sessions { id label } }")
                assert listed["data"]["sessions"] == []  # alice's session is not bob's
                foreign = await graphql_once(bob, "steal", ECHO, s=session_id, t="x")
                assert foreign["errors"] and nonce not in json.dumps(foreign)

            closed = await graphql_once(ws, "close", "mutation($id: ID!) { closeSession(id: $id) }", id=session_id)
            assert closed["data"]["closeSession"] is True
        assert service.resources(BOB) == {"sessions": 0, "by_user": {}}

    with graphql_service() as service:
        assert_needs_token(service, graphql_socket, 403)  # uvicorn answers a close before accept with 403
        # Sessions created over HTTP are the same resources (setup/teardown steps may use either).
        created = httpx.post(
            f"{service.url}/graphql",
            headers=service.headers(BOB),
            timeout=WAIT_S,
            trust_env=False,
            json={"query": 'mutation { openSession(label: "http") { id } }'},
        ).json()
        assert service.resources()["by_user"] == {"bob": 1}
        deleted = httpx.post(
            f"{service.url}/graphql",
            headers=service.headers(BOB),
            timeout=WAIT_S,
            trust_env=False,
            json={
                "query": "mutation($id: ID!) { closeSession(id: $id) }",
                "variables": {"id": created["data"]["openSession"]["id"]},
            },
        ).json()
        assert deleted == {"data": {"closeSession": True}}
        asyncio.run(scenario(service))


def _graphql_echo_under_fault(*args: str) -> tuple[list[dict], list[str]]:
    """Open a session, subscribe echo, then ticks; return echo's payloads and the ids seen until ticks completed."""

    async def scenario(service: Service) -> tuple[list[dict], list[str]]:
        async with graphql_socket(service, ALICE) as ws:
            opened = await graphql_once(ws, "open", 'mutation { openSession(label: "f") { id } }')
            session_id = opened["data"]["openSession"]["id"]
            await subscribe(ws, "echo-1", ECHO, s=session_id, t="data")
            first = await recv_json(ws)  # echo's first event (or error) before ticks starts
            await subscribe(ws, "ticks-1", TICKS, s=session_id)
            seen = [first]
            async with asyncio.timeout(WAIT_S):
                while not (seen[-1].get("id") == "ticks-1" and seen[-1]["type"] == "complete"):
                    seen.append(json.loads(await ws.recv()))
            # echo may still be streaming (its events come with jitter, and under dead-by-message it never ends)
            close = "mutation($id: ID!) { closeSession(id: $id) }"
            await graphql_once(ws, "close", close, frozenset({"echo-1"}), id=session_id)
        echo_payloads = [m["payload"] for m in seen if m.get("id") == "echo-1" and m["type"] == "next"]
        return echo_payloads, [f"{m.get('id')}:{m['type']}" for m in seen]

    with graphql_service(*args) as service:
        result = asyncio.run(scenario(service))
        assert service.resources()["sessions"] == 0
        return result


def test_graphql_dead_by_message_sends_an_error_and_never_completes() -> None:
    payloads, seen = _graphql_echo_under_fault("--fault", "dead-by-message")
    assert payloads[0]["data"] is None and payloads[0]["errors"][0]["message"] == "backend dead"
    # The socket stays usable (ticks ran to its end) while echo never completed.
    assert "ticks-1:complete" in seen and "echo-1:complete" not in seen


def test_graphql_changed_content_keeps_the_shape_but_loses_the_text() -> None:
    payloads, _ = _graphql_echo_under_fault("--fault", "changed-content")
    assert payloads and all(p["data"]["echo"]["text"] == "" for p in payloads)
    healthy, _ = _graphql_echo_under_fault()
    assert all(p["data"]["echo"]["text"] == "f: data" for p in healthy)


# --------------------------------------------------------------------------- JSON-RPC 2.0 over WebSocket


@contextlib.asynccontextmanager
async def rpc_socket(service: Service, token: str):
    async with connect(
        f"{service.ws_base}/rpc",
        subprotocols=["jsonrpc-2.0"],
        additional_headers=service.headers(token),
        open_timeout=WAIT_S,
        proxy=None,
    ) as ws:
        yield ws


class RpcClient:
    """Sends requests with ids and sorts what comes back: replies by id, everything else as notifications."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.replies: dict[Any, dict] = {}
        self.notifications: list[dict] = []
        self.binary: list[bytes] = []
        self.log: list[str] = []  # "reply:<id>" / "note:<method>" / "binary", in arrival order
        self._next = 0

    async def send(self, method: str, **params: Any) -> str:
        self._next += 1
        request_id = f"r{self._next}-{uuid.uuid4().hex[:6]}"
        await self.ws.send(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}))
        return request_id

    async def read_one(self) -> None:
        raw = await self.ws.recv()  # callers bound the whole wait: heartbeats would renew a per-message one
        if isinstance(raw, bytes):
            self.binary.append(raw)
            self.log.append("binary")
            return
        message = json.loads(raw)
        if "id" in message and ("result" in message or "error" in message):
            self.replies[message["id"]] = message
            self.log.append(f"reply:{message['id']}")
        else:
            assert "id" not in message, message
            self.notifications.append(message)
            self.log.append(f"note:{message['method']}")

    async def read_until(self, done: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT_S):
            while not done():
                await self.read_one()

    async def wait_replies(self, *ids: str) -> list[dict]:
        await self.read_until(lambda: all(i in self.replies for i in ids))
        return [self.replies[i] for i in ids]

    async def call(self, method: str, **params: Any) -> dict:
        (reply,) = await self.wait_replies(await self.send(method, **params))
        return reply


def test_jsonrpc_service_correlates_replies_among_notifications_and_cleans_up() -> None:
    nonce = f"nonce-{uuid.uuid4().hex}"

    async def scenario(service: Service) -> None:
        async with rpc_socket(service, ALICE) as ws:
            assert ws.subprotocol == "jsonrpc-2.0"
            rpc = RpcClient(ws)
            opened = await rpc.call("session.open", label=f"probe {nonce}")
            session_id = opened["result"]["session_id"]
            assert service.resources()["by_user"] == {"alice": 1}
            # Two requests in flight: each reply is found by its id, whatever came between.
            echo_id, add_id = (
                await rpc.send("echo", session_id=session_id, text=nonce),
                await rpc.send("add", a=40, b=2),
            )
            echo_reply, add_reply = await rpc.wait_replies(echo_id, add_id)
            assert echo_reply["result"] == {"session_id": session_id, "text": f"probe {nonce}: {nonce}"}
            assert add_reply["result"] == {"sum": 42}
            # Unsolicited messages came before the first reply, and progress correlated by params.request_id.
            assert rpc.log[0].startswith("note:") and rpc.log.index(f"reply:{echo_id}") > 0
            assert {n["params"]["status"] for n in rpc.notifications if n["method"] == "status"} >= {
                "connected",
                "ready",
            }
            mine = [n for n in rpc.notifications if n["method"] == "progress" and n["params"]["request_id"] == echo_id]
            others = [
                n
                for n in rpc.notifications
                if n["method"] == "progress" and n["params"]["request_id"] not in rpc.replies
            ]
            assert mine and others
            await ws.send(b"\x00\xffbinary payload")
            await rpc.read_until(lambda: bool(rpc.binary))
            assert rpc.binary == [b"\x00\xffbinary payload"]

            async with rpc_socket(service, BOB) as bob_ws:
                bob = RpcClient(bob_ws)
                assert (await bob.call("session.list"))["result"] == {"sessions": []}
                stolen = await bob.call("echo", session_id=session_id, text="x")
                assert stolen["error"]["code"] == 4004 and nonce not in json.dumps(stolen)

            assert (await rpc.call("session.close", session_id=session_id))["result"] == {"closed": True}
            assert (await rpc.call("session.close", session_id=session_id))["result"] == {"closed": False}
        assert service.resources(BOB) == {"sessions": 0, "by_user": {}}

    with jsonrpc_service() as service:
        assert_needs_token(service, rpc_socket, 401)
        asyncio.run(scenario(service))


def test_jsonrpc_dead_by_message_reports_death_and_stays_open() -> None:
    async def scenario(service: Service) -> RpcClient:
        async with rpc_socket(service, ALICE) as ws:
            rpc = RpcClient(ws)
            await rpc.send("add", a=1, b=2)
            await rpc.read_until(
                lambda: any(n["method"] == "status" and n["params"]["status"] == "dead" for n in rpc.notifications)
            )
            await ws.send(b"still open?")  # binary echo still answers: the socket was not closed
            await rpc.read_until(lambda: bool(rpc.binary))
            return rpc

    with jsonrpc_service("--fault", "dead-by-message") as service:
        rpc = asyncio.run(scenario(service))
    assert rpc.replies == {} and rpc.binary == [b"still open?"]


def test_jsonrpc_changed_content_engages_after_the_configured_number_of_successes() -> None:
    async def scenario(service: Service) -> list[dict]:
        async with rpc_socket(service, ALICE) as ws:
            rpc = RpcClient(ws)
            session_id = (await rpc.call("session.open", label="L"))["result"]["session_id"]
            replies = [await rpc.call("echo", session_id=session_id, text="data") for _ in range(3)]
            await rpc.call("session.close", session_id=session_id)
            return replies

    with jsonrpc_service("--fault", "changed-content", "--fault-after", "2") as service:
        replies = asyncio.run(scenario(service))
        assert service.resources()["sessions"] == 0
    assert [r["result"]["text"] for r in replies] == ["L: data", "L: data", ""]
