"""The sample service: a small chat API with an agent pipeline over WebSockets.

``create_app`` builds one FastAPI application around one SQLite file, one token
secret, one fault configuration and one seeded random generator. Faults are
injected where a real bug would live (see ``_faults.py`` for the syntax).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from ._faults import ApiBreak, Faults, SlowOperation
from ._security import TokenIssuer, hash_password, verify_password
from ._store import DuplicateUserError, MessageRow, Store, ThreadRow, UserRow

__all__ = [
    "create_app",
    "MAX_CONTENT_CHARS",
    "MAX_TITLE_CHARS",
    "MAX_BODY_BYTES",
    "MAX_WS_FRAME_BYTES",
    "AGENT_STEPS",
]

# Caps (documented in README.md): content over MAX_CONTENT_CHARS is a 422 on
# REST and an ``error`` event on the WebSocket; a body over MAX_BODY_BYTES is a
# 413; a WebSocket frame over MAX_WS_FRAME_BYTES is closed by uvicorn with 1009.
MAX_CONTENT_CHARS = 4096
MAX_TITLE_CHARS = 200
MAX_BODY_BYTES = 64 * 1024
MAX_WS_FRAME_BYTES = 64 * 1024
AGENT_STEPS: tuple[str, ...] = ("data", "optimization", "reporting")
AGENT_SERVICE_MS = 5.0  # simulated model latency of each agent step
_THREAD_LIMIT_DEFAULT = 50
_THREAD_LIMIT_MAX = 200
_WORD = re.compile(r"\w+", re.UNICODE)
USERNAME_MAX_CHARS = 64

_ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


# -- API models ----------------------------------------------------------------


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=3, max_length=USERNAME_MAX_CHARS, pattern=r"^[A-Za-z0-9_.\-]+$")
    password: str = Field(min_length=8, max_length=256)


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(max_length=USERNAME_MAX_CHARS)
    password: str = Field(max_length=256)


class UserOut(BaseModel):
    id: int
    username: str


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"


class ThreadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)


class ThreadOut(BaseModel):
    id: int
    title: str
    created_at: str


class ThreadOutWithoutCreatedAt(BaseModel):
    """Thread response of the ``api_break=field_removed`` build."""

    id: int
    title: str


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = Field(min_length=1, max_length=MAX_CONTENT_CHARS)


class MessageOut(BaseModel):
    id: int
    thread_id: int
    role: str
    content: str
    created_at: str


class Health(BaseModel):
    status: str
    database: str
    variant: str
    faults: list[str]


# -- internals -----------------------------------------------------------------


class _AgentFailure(Exception):
    """An agent step failed; the session handler closes with 1011."""


class _InjectedConnectionDrop(Exception):
    """Raised out of the WebSocket endpoint: uvicorn then drops the transport
    without a close frame, which the client sees as 1006."""


class _QuietInjectedDrops(logging.Filter):
    """Keeps uvicorn's "Exception in ASGI application" traceback for injected drops
    out of the log; every other exception is still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _InjectedConnectionDrop)


def install_log_filter() -> None:
    """Idempotent: add the filter to uvicorn's error logger."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietInjectedDrops) for f in logger.filters):
        logger.addFilter(_QuietInjectedDrops())


class _Dice:
    """The app's seeded random generator; a lock keeps draws ordered across threads."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def roll(self, probability: float) -> bool:
        with self._lock:
            draw = self._rng.random()
        return draw < probability


@dataclass(frozen=True)
class _Context:
    variant: str
    faults: Faults
    store: Store
    tokens: TokenIssuer
    dice: _Dice

    async def delay(self, operation: SlowOperation) -> None:
        ms = self.faults.delay_ms(operation)
        if ms > 0:
            await asyncio.sleep(ms / 1000.0)

    def authenticate(self, token: str | None) -> UserRow | None:
        if not token:
            return None
        user_id = self.tokens.user_id(token)
        if user_id is not None:
            return self.store.user_by_id(user_id)
        if self.faults.auth_bypass:
            # The injected bug: a token that fails verification still maps to a user.
            return self.store.first_user()
        return None


class _BodyTooLarge(Exception):
    pass


class _BodySizeLimit:
    """Pure ASGI middleware: 413 JSON for HTTP bodies over ``max_bytes``."""

    def __init__(self, app: _ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _too_large(scope, receive, send, self.max_bytes)
                return
        seen = 0

        async def counting_receive() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _BodyTooLarge:
            await _too_large(scope, receive, send, self.max_bytes)


async def _too_large(scope: Any, receive: Any, send: Any, max_bytes: int) -> None:
    response = JSONResponse({"detail": f"request body over {max_bytes} bytes"}, status_code=413)
    await response(scope, receive, send)


def _bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _thread_out(row: ThreadRow, faults: Faults) -> dict[str, Any]:
    out: dict[str, Any] = {"id": row.id, "title": row.title, "created_at": row.created_at}
    if faults.breaks(ApiBreak.FIELD_REMOVED):
        del out["created_at"]
    return out


def _message_out(row: MessageRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "thread_id": row.thread_id,
        "role": row.role,
        "content": row.content,
        "created_at": row.created_at,
    }


# -- dependencies (module level: FastAPI resolves string annotations in globals) --

_bearer = HTTPBearer(auto_error=False)


async def _current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> UserRow:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a thread hop per request
    # (about 150 us of CPU); the token check and the indexed lookup are short.
    ctx: _Context = request.app.state.ctx
    user = ctx.authenticate(credentials.credentials if credentials else None)
    if user is None:
        raise HTTPException(
            status_code=401,
            detail="missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


CurrentUser = Annotated[UserRow, Depends(_current_user)]
LimitParam = Annotated[int, Query(ge=1, le=_THREAD_LIMIT_MAX, description="most threads to return")]


# -- the application -----------------------------------------------------------


def create_app(*, variant: str = "candidate", faults: Faults | None = None, db_path: Path, seed: int = 0) -> FastAPI:
    """One service instance: its own database file, token secret and random generator.

    ``app.state.store`` is the open database; whoever creates the app closes it.
    """
    faults = faults if faults is not None else Faults()
    ctx = _Context(
        variant=variant,
        faults=faults,
        store=Store(db_path, changed_schema=faults.breaks(ApiBreak.SCHEMA_CHANGED)),
        tokens=TokenIssuer(),
        dice=_Dice(seed),
    )
    install_log_filter()
    app = FastAPI(
        title="stability-proof sample service",
        version="1.0.0",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.store = ctx.store
    app.state.ctx = ctx
    app.state.faults = faults
    app.add_middleware(_BodySizeLimit, max_bytes=MAX_BODY_BYTES)

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own 422 echoes every invalid input: a password, or a lone surrogate ("\ud800")
        # that its UTF-8 JSON cannot encode, which made the 422 a 500. No input here, ASCII JSON.
        errors = [{k: v for k, v in e.items() if k not in ("input", "ctx")} for e in exc.errors()]
        body = json.dumps({"detail": jsonable_encoder(errors)}, ensure_ascii=True)
        return Response(body, status_code=422, media_type="application/json")

    def owned_thread(thread_id: int, user: UserRow) -> ThreadRow:
        thread = ctx.store.thread_of(user.id, thread_id)
        if thread is None:  # another user's thread is indistinguishable from none
            raise HTTPException(status_code=404, detail="thread not found")
        return thread

    thread_model: type[BaseModel] = ThreadOutWithoutCreatedAt if faults.breaks(ApiBreak.FIELD_REMOVED) else ThreadOut

    @app.get("/health", response_model=Health, tags=["health"])
    async def health() -> Any:
        try:
            ok = ctx.store.ping()
        except Exception:  # the database is the thing this endpoint reports on
            ok = False
        body = {
            "status": "ok" if ok else "error",
            "database": "ok" if ok else "error",
            "variant": ctx.variant,
            "faults": list(faults.to_specs()),
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.post("/api/auth/register", status_code=201, response_model=UserOut, tags=["auth"])
    async def register(body: Registration) -> Any:
        if faults.max_length_500 and len(body.username) == USERNAME_MAX_CHARS:
            # The injected bug: an off-by-one (a 63-character column) fails a name the API allows.
            return JSONResponse({"detail": "internal server error"}, status_code=500)
        password_hash = await run_in_threadpool(hash_password, body.password)
        try:
            user = ctx.store.add_user(body.username, password_hash)
        except DuplicateUserError:
            raise HTTPException(status_code=409, detail="username already taken") from None
        return {"id": user.id, "username": user.username}

    @app.post("/api/auth/login", response_model=TokenOut, tags=["auth"])
    async def login(body: LoginRequest) -> Any:
        await ctx.delay(SlowOperation.LOGIN)
        user = ctx.store.user_by_name(body.username)
        stored = user.password_hash if user else None
        ok = stored is not None and await run_in_threadpool(verify_password, body.password, stored)
        if not ok or user is None:
            raise HTTPException(
                status_code=401,
                detail="invalid username or password",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return {"access_token": ctx.tokens.issue(user.id), "token_type": "bearer"}

    if faults.breaks(ApiBreak.PARAM_REQUIRED):

        @app.get("/api/threads", response_model=list[thread_model], tags=["threads"])  # type: ignore[valid-type]
        async def list_threads_limit_required(user: CurrentUser, limit: LimitParam) -> Any:
            return [_thread_out(t, faults) for t in ctx.store.threads_of(user.id, limit)]

    else:

        @app.get("/api/threads", response_model=list[thread_model], tags=["threads"])  # type: ignore[valid-type]
        async def list_threads(
            user: CurrentUser,
            limit: LimitParam = _THREAD_LIMIT_DEFAULT,
        ) -> Any:
            return [_thread_out(t, faults) for t in ctx.store.threads_of(user.id, limit)]

    @app.post("/api/threads", status_code=201, response_model=thread_model, tags=["threads"])
    async def create_thread(body: ThreadIn, user: CurrentUser) -> Any:
        await ctx.delay(SlowOperation.THREAD_CREATE)
        return _thread_out(ctx.store.add_thread(user.id, body.title), faults)

    @app.get("/api/threads/{thread_id}", response_model=thread_model, tags=["threads"])
    async def get_thread(thread_id: int, user: CurrentUser) -> Any:
        return _thread_out(owned_thread(thread_id, user), faults)

    if not faults.breaks(ApiBreak.ENDPOINT_REMOVED):

        @app.get("/api/threads/{thread_id}/messages", response_model=list[MessageOut], tags=["threads"])
        async def list_messages(thread_id: int, user: CurrentUser) -> Any:
            thread = owned_thread(thread_id, user)
            messages = [_message_out(m) for m in ctx.store.messages_of(thread)]
            if ctx.dice.roll(faults.leak_rate):
                leaked = ctx.store.latest_message_not_of(user.id)
                if leaked is not None:
                    messages.append(_message_out(leaked))
            return messages

    @app.post(
        "/api/threads/{thread_id}/messages",
        status_code=201,
        response_model=MessageOut,
        tags=["threads"],
    )
    async def post_message(thread_id: int, body: MessageIn, user: CurrentUser) -> Any:
        thread = owned_thread(thread_id, user)
        await ctx.delay(SlowOperation.MESSAGE_STORE)
        return _message_out(ctx.store.add_message(thread, "user", body.content))

    @app.websocket("/ws")
    async def agent_session(websocket: WebSocket) -> None:
        token = _bearer_token(websocket.headers.get("authorization")) or websocket.query_params.get("token")
        user = ctx.authenticate(token)
        if user is None:
            await websocket.close(code=1008)  # before accept: uvicorn answers HTTP 403
            return
        await websocket.accept()
        try:
            await _agent_session_loop(websocket, ctx, user)
        except WebSocketDisconnect:
            return  # the client went away mid-answer: nothing left to tell it

    @app.websocket("/ws/echo")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") is not None:
                    await websocket.send_text(message["text"])
                elif message.get("bytes") is not None:
                    await websocket.send_bytes(message["bytes"])
        except WebSocketDisconnect:
            return

    return app


async def _agent_session_loop(websocket: WebSocket, ctx: _Context, user: UserRow) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            await _send_error(websocket, "unsupported_frame", "send JSON text frames")
            continue
        try:
            await _handle_user_message(websocket, ctx, user, text)
        except _AgentFailure as exc:
            # How real services produce 1011: an internal error, caught, reported.
            await websocket.close(code=1011, reason=f"internal error: {exc}"[:120])
            return


async def _send_error(websocket: WebSocket, code: str, detail: str) -> None:
    await websocket.send_json({"type": "error", "code": code, "detail": detail})


async def _handle_user_message(websocket: WebSocket, ctx: _Context, user: UserRow, text: str) -> None:
    try:
        payload = json.loads(text)
    except ValueError:
        await _send_error(websocket, "invalid_json", "the frame is not valid JSON")
        return
    if not isinstance(payload, dict) or payload.get("type") != "user_message":
        await _send_error(websocket, "unknown_type", 'expected {"type": "user_message", ...}')
        return
    thread_id = payload.get("thread_id")
    content = payload.get("content")
    if isinstance(thread_id, bool) or not isinstance(thread_id, int):
        await _send_error(websocket, "invalid_message", "thread_id must be an integer")
        return
    if not isinstance(content, str) or not content:
        await _send_error(websocket, "invalid_message", "content must be a non-empty string")
        return
    if len(content) > MAX_CONTENT_CHARS:
        await _send_error(websocket, "content_too_large", f"content is over {MAX_CONTENT_CHARS} characters")
        return
    thread = ctx.store.thread_of(user.id, thread_id)
    if thread is None:
        await _send_error(websocket, "thread_not_found", f"no thread {thread_id}")
        return

    await ctx.delay(SlowOperation.MESSAGE_STORE)
    ctx.store.add_message(thread, "user", content)
    # Always three draws per message, in this order, so a seed replays exactly.
    crash = ctx.dice.roll(ctx.faults.ws_1011_rate)
    drop = ctx.dice.roll(ctx.faults.ws_drop_rate)
    leak = ctx.dice.roll(ctx.faults.leak_rate)

    async def step(agent: str, number: int, delay: SlowOperation, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        await websocket.send_json({"type": "agent_started", "agent": agent, "step": number, "thread_id": thread.id})
        started = time.perf_counter()
        # Stands in for the model call a real agent step makes: the same for every variant,
        # so a slowdown fault shows against a realistic service time, not against microseconds.
        await asyncio.sleep(AGENT_SERVICE_MS / 1000.0)
        await ctx.delay(delay)
        result = work()
        completed: dict[str, Any] = {
            "type": "agent_completed",
            "agent": agent,
            "step": number,
            "thread_id": thread.id,
            "duration_ms": round((time.perf_counter() - started) * 1000.0, 3),
            "result": {k: v for k, v in result.items() if not k.startswith("_")},
        }
        if ctx.faults.breaks(ApiBreak.EVENT_CHANGED):  # a message-contract break clients would feel
            del completed["duration_ms"]
            completed["step"] = str(number)
        await websocket.send_json(completed)
        return result

    def load_data() -> dict[str, Any]:
        history = ctx.store.messages_of(thread)
        return {"messages": len(history), "_texts": [m.content for m in history if m.role == "user"]}

    data = await step("data", 1, SlowOperation.AGENT_DATA, load_data)
    texts: list[str] = data["_texts"]

    def word_statistics() -> dict[str, Any]:
        if crash:
            raise _AgentFailure("optimization agent failed")
        counts = Counter(w.lower() for t in texts for w in _WORD.findall(t))
        return {"words": sum(counts.values()), "top_words": counts.most_common(3)}

    stats = await step("optimization", 2, SlowOperation.AGENT_OPTIMIZATION, word_statistics)

    def compose_summary() -> dict[str, Any]:
        if drop:
            raise _InjectedConnectionDrop("reporting agent lost its connection")
        top = ", ".join(f"{w} ({n})" for w, n in stats["top_words"]) or "none"
        count = data["messages"]
        summary = (
            f'You said: "{content}". Thread "{thread.title}" has {count} '
            f"message{'' if count == 1 else 's'} and {stats['words']} words from you; "
            f"most frequent: {top}."
        )
        return {"characters": len(summary), "_summary": summary}

    report = await step("reporting", 3, SlowOperation.AGENT_REPORTING, compose_summary)
    answer: str = report["_summary"]
    if leak:
        other = ctx.store.latest_message_not_of(user.id)
        if other is not None:  # the injected isolation bug
            answer = f"{answer}\n\nRelated: {other.content}"
    stored = ctx.store.add_message(thread, "assistant", answer)
    await websocket.send_json(
        {"type": "final_response", "thread_id": thread.id, "message_id": stored.id, "content": answer}
    )
