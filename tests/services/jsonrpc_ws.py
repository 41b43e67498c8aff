"""A real JSON-RPC 2.0 service over WebSocket (jsonrpcserver for the protocol, websockets for the transport).

    REALSVC_TOKENS="alice=<token>,bob=<token>" python tests/services/jsonrpc_ws.py --port 8102

Prints its base URL (one flushed line) once bound. Every request needs ``X-API-Key: <token>``:
GET /health, GET /resources and the WebSocket upgrade of /rpc (HTTP 401 otherwise).
The subprotocol ``jsonrpc-2.0`` is chosen when the client offers it (not required).

On /rpc, like many real services, the server talks when nobody asked:
- on connect: ``status`` notifications ``connected`` then ``ready``;
- every 0.25 s: a ``status`` ``idle`` heartbeat;
- for each request, before its reply: a ``progress`` notification about a job the client
  never started, then one whose ``params.request_id`` is the request's id;
- requests run concurrently with jitter: replies to two requests come in either order.

Methods (named params): ``session.open(label)`` -> ``{session_id, label}``;
``session.close(session_id)`` -> ``{closed}``; ``session.list()`` -> the caller's own;
``echo(session_id, text)`` -> ``{session_id, text: "<label>: <text>"}``; ``add(a, b)`` -> ``{sum}``.
A binary frame is echoed as a binary frame. GET /resources counts every user's sessions.

Faults (``--fault``): ``changed-content``: echo text "" and sum off by one, binary echo
reversed; ``dead-by-message``: every request gets a ``status`` ``dead`` notification and
no reply, and the socket stays open.
"""

from __future__ import annotations

import asyncio
import http
import json
import random
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from _common import Fault, FaultSwitch, ResourceStore, ServiceOptions, bind_loopback, parse_options
from jsonrpcserver import Error, Result, Success, async_dispatch
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

SUBPROTOCOL = Subprotocol("jsonrpc-2.0")
HEARTBEAT_S = 0.25
NO_SUCH_SESSION = 4004  # application error code (JSON-RPC reserves -32768..-32000)


@dataclass(frozen=True)
class CallContext:
    user: str
    store: ResourceStore
    faults: FaultSwitch


async def session_open(ctx: CallContext, label: str) -> Result:
    r = ctx.store.open(ctx.user, label)
    return Success({"session_id": r.id, "label": r.label})


async def session_close(ctx: CallContext, session_id: str) -> Result:
    return Success({"closed": ctx.store.close(ctx.user, session_id)})


async def session_list(ctx: CallContext) -> Result:
    return Success({"sessions": [{"session_id": r.id, "label": r.label} for r in ctx.store.owned_by(ctx.user)]})


async def echo(ctx: CallContext, session_id: str, text: str) -> Result:
    session = ctx.store.get(ctx.user, session_id)
    if session is None:
        return Error(NO_SUCH_SESSION, "no such session", {"session_id": session_id})
    lost = ctx.faults.active(Fault.CHANGED_CONTENT)
    ctx.faults.record_success()
    return Success({"session_id": session.id, "text": "" if lost else f"{session.label}: {text}"})


async def add(ctx: CallContext, a: int, b: int) -> Result:
    return Success({"sum": a + b + (1 if ctx.faults.active(Fault.CHANGED_CONTENT) else 0)})


METHODS = {
    "session.open": session_open,
    "session.close": session_close,
    "session.list": session_list,
    "echo": echo,
    "add": add,
}


def _notification(method: str, **params: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params})


def _json_response(status: int, body: dict[str, Any]) -> Response:
    http_status = http.HTTPStatus(status)
    data = json.dumps(body).encode()
    headers = Headers(
        [("Content-Type", "application/json"), ("Content-Length", str(len(data))), ("Connection", "close")]
    )
    return Response(status, http_status.phrase, headers, data)


class JsonRpcService:
    def __init__(self, options: ServiceOptions, store: ResourceStore | None = None) -> None:
        self.tokens = dict(options.tokens)
        self.faults = options.faults
        self.store = store or ResourceStore()
        self._jobs = 0

    def user_of(self, request: Request) -> str | None:
        return self.tokens.get(request.headers.get("X-API-Key", ""))

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if self.user_of(request) is None:
            return _json_response(401, {"error": "unauthorized"})
        if path == "/health":
            return _json_response(200, {"status": "ok", "service": "jsonrpc-ws"})
        if path == "/resources":
            return _json_response(200, self.store.counts())
        if path != "/rpc":
            return _json_response(404, {"error": "not found"})
        return None  # go on with the WebSocket handshake

    @staticmethod
    def select_subprotocol(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
        return SUBPROTOCOL if SUBPROTOCOL in offered else None

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        user = self.user_of(ws.request)
        assert user is not None  # process_request let only known tokens through
        ctx = CallContext(user, self.store, self.faults)
        tasks: set[asyncio.Task[None]] = set()
        heartbeat = asyncio.create_task(self._heartbeat(ws))
        try:
            await ws.send(_notification("status", status="connected"))
            await ws.send(_notification("status", status="ready"))
            async for frame in ws:
                task = asyncio.create_task(self._answer(ws, ctx, frame))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except ConnectionClosed:
            pass
        finally:
            heartbeat.cancel()
            for task in list(tasks):
                task.cancel()

    async def _heartbeat(self, ws: ServerConnection) -> None:
        try:
            while True:
                await asyncio.sleep(HEARTBEAT_S)
                await ws.send(_notification("status", status="idle"))
        except ConnectionClosed:
            pass

    async def _answer(self, ws: ServerConnection, ctx: CallContext, frame: str | bytes) -> None:
        try:
            if isinstance(frame, bytes):
                await asyncio.sleep(random.uniform(0.0, 0.01))
                await ws.send(frame[::-1] if self.faults.active(Fault.CHANGED_CONTENT) else frame)
                return
            self._jobs += 1
            await ws.send(_notification("progress", request_id=f"job-{self._jobs}", stage="queued"))
            if self.faults.active(Fault.DEAD_BY_MESSAGE):
                await ws.send(_notification("status", status="dead"))
                return  # no reply, no close: the client has to read the status
            request_id = _request_id(frame)
            await asyncio.sleep(random.uniform(0.0, 0.015))
            if request_id is not None:
                await ws.send(_notification("progress", request_id=request_id, stage="working"))
            reply = await async_dispatch(frame, methods=METHODS, context=ctx)
            if reply:
                await ws.send(reply)
        except ConnectionClosed:
            pass


def _request_id(frame: str) -> Any:
    try:
        data = json.loads(frame)
    except ValueError:
        return None
    return data.get("id") if isinstance(data, dict) else None


async def serve_forever(options: ServiceOptions) -> None:
    service = JsonRpcService(options)
    sock = bind_loopback(options.port)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with serve(
        service.handler,
        sock=sock,
        process_request=service.process_request,
        subprotocols=[SUBPROTOCOL],
        select_subprotocol=service.select_subprotocol,
        compression=None,
        max_size=1 << 20,
        close_timeout=2,
    ):
        print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
        await stop


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(
        "jsonrpc_ws.py", "JSON-RPC 2.0 over WebSocket (jsonrpcserver + websockets) on 127.0.0.1", argv
    )
    asyncio.run(serve_forever(options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
