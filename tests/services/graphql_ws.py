"""A real GraphQL service with subscriptions over ``graphql-transport-ws`` (strawberry-graphql on uvicorn).

    REALSVC_TOKENS="alice=<token>,bob=<token>" python tests/services/graphql_ws.py --port 8101

Prints its base URL (one flushed line) once bound. Every request needs
``Authorization: Bearer <token>``: GET /health, GET /resources, POST /graphql and the
WebSocket upgrade of /graphql (rejected with HTTP 403 before the upgrade otherwise).

Schema (camelCase on the wire): ``openSession(label)`` / ``closeSession(id)`` mutations
create and delete a per-user server-side session; ``sessions`` lists the caller's own;
subscriptions ``echo(sessionId, text, count)`` and ``ticks(sessionId, count)`` stream a
few events with jitter, so two subscriptions on one socket interleave in no fixed order.
GET /resources counts sessions of every user, so a test can prove none were left behind.

Faults (``--fault``): ``changed-content`` makes echo events carry an empty text;
``dead-by-message`` makes echo send one ``next`` whose payload has an error
("backend dead") and then nothing, without completing or closing.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import sys
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import strawberry
import uvicorn
from _common import Fault, FaultSwitch, ResourceStore, ServiceOptions, bind_loopback, parse_options
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import Info

_USER_KEY = "realsvc.user"  # where the gate leaves the authenticated user in the ASGI scope
_MAX_EVENTS = 20


@strawberry.type
class Session:
    id: strawberry.ID
    label: str
    owner: str


@strawberry.type
class EchoEvent:
    seq: int
    text: str
    session_id: strawberry.ID


@strawberry.type
class TickEvent:
    seq: int
    session_id: strawberry.ID


class _DeadEcho:
    """An echo event whose data cannot be produced: the GraphQL error goes out in a ``next``."""

    seq = 0
    session_id = ""

    @property
    def text(self) -> str:
        raise RuntimeError("backend dead")


def _user(info: Info) -> str:
    return str(info.context["user"])


def _store(info: Info) -> ResourceStore:
    return info.context["store"]


def _faults(info: Info) -> FaultSwitch:
    return info.context["faults"]


async def _jitter() -> None:
    await asyncio.sleep(random.uniform(0.0, 0.015))


@strawberry.type
class Query:
    @strawberry.field
    def me(self, info: Info) -> str:
        return _user(info)

    @strawberry.field
    def sessions(self, info: Info) -> list[Session]:
        return [
            Session(id=strawberry.ID(r.id), label=r.label, owner=r.owner) for r in _store(info).owned_by(_user(info))
        ]


@strawberry.type
class Mutation:
    @strawberry.mutation
    def open_session(self, info: Info, label: str) -> Session:
        r = _store(info).open(_user(info), label)
        return Session(id=strawberry.ID(r.id), label=r.label, owner=r.owner)

    @strawberry.mutation
    def close_session(self, info: Info, id: strawberry.ID) -> bool:  # noqa: A002 - GraphQL argument name
        return _store(info).close(_user(info), str(id))


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def echo(
        self, info: Info, session_id: strawberry.ID, text: str, count: int = 3
    ) -> AsyncGenerator[EchoEvent, None]:
        session = _store(info).get(_user(info), str(session_id))
        if session is None:
            raise ValueError(f"no session {session_id}")
        faults = _faults(info)
        if faults.active(Fault.DEAD_BY_MESSAGE):
            yield _DeadEcho()  # type: ignore[misc]
            await asyncio.Event().wait()  # never completes: the client must notice the error itself
        lost = faults.active(Fault.CHANGED_CONTENT)
        for seq in range(1, min(count, _MAX_EVENTS) + 1):
            await _jitter()
            yield EchoEvent(
                seq=seq, text="" if lost else f"{session.label}: {text}", session_id=strawberry.ID(session.id)
            )
        faults.record_success()

    @strawberry.subscription
    async def ticks(self, info: Info, session_id: strawberry.ID, count: int = 3) -> AsyncGenerator[TickEvent, None]:
        if _store(info).get(_user(info), str(session_id)) is None:
            raise ValueError(f"no session {session_id}")
        for seq in range(1, min(count, _MAX_EVENTS) + 1):
            await _jitter()
            yield TickEvent(seq=seq, session_id=session_id)


class _GraphQLApp(GraphQL):
    def __init__(self, *args: Any, store: ResourceStore, faults: FaultSwitch, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._store = store
        self._faults = faults

    async def get_context(self, request: Request | WebSocket, response: Any) -> dict[str, Any]:
        return {
            "request": request,
            "response": response,
            "user": request.scope[_USER_KEY],
            "store": self._store,
            "faults": self._faults,
        }


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


class TokenGate:
    """Rejects every HTTP request and WebSocket upgrade without a known bearer token."""

    def __init__(self, app: ASGIApp, tokens: dict[str, str]) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            user = self.tokens.get(_bearer(scope) or "")
            if user is None:
                if scope["type"] == "http":
                    await JSONResponse({"error": "unauthorized"}, status_code=401)(scope, receive, send)
                else:
                    await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
                return
            scope = {**scope, _USER_KEY: user}
        await self.app(scope, receive, send)


def build_app(options: ServiceOptions, store: ResourceStore | None = None) -> ASGIApp:
    store = store or ResourceStore()
    schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)
    graphql = _GraphQLApp(
        schema,
        graphql_ide=None,
        subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
        store=store,
        faults=options.faults,
    )

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "service": "graphql-ws"})

    async def resources(request: Request) -> JSONResponse:
        return JSONResponse(store.counts())

    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/resources", resources),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
        ]
    )
    return TokenGate(app, dict(options.tokens))


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options("graphql_ws.py", "GraphQL over graphql-transport-ws (strawberry) on 127.0.0.1", argv)
    logging.getLogger("strawberry.execution").setLevel(logging.CRITICAL)  # an injected fault is not news
    sock = bind_loopback(options.port)
    config = uvicorn.Config(build_app(options), log_level="warning", lifespan="off", ws_per_message_deflate=False)
    server = uvicorn.Server(config)
    for sig in (signal.SIGTERM, signal.SIGINT):  # uvicorn re-raises the signal after a clean shutdown
        signal.signal(sig, lambda _signum, _frame: None)
    print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
