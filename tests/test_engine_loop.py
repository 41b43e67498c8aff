"""The probe engine's event loop and per-event deadline (issue 19), against real servers on 127.0.0.1.

- The same soak gives the same records on asyncio's loop and on uvloop (used when installed):
  every outcome a service can cause (ok, 1011, a TCP drop, a wrong event, silence, an early
  close, a refused connection, a conversation), session by session.
- One deadline per session, moved on by events instead of a timer per event: a stream whose
  events come faster than the event timeout is never cut, however long it lasts; a silence is.
- permessage-deflate is offered on soak sessions only when the scenario asks.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from stability_lib.probes.aio import EVENT_LOOP_ENV, event_loop_name, run_loop
from stability_lib.probes.engine import run_soak_sync
from stability_lib.probes.scenario import ScenarioConfig
from stability_lib.probes.sessions import SessionRecord

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None
BEHAVIOURS = ("ok", "crash1011", "drop", "wrongorder", "silent", "bye", "ok", "stream")


async def _scripted(ws: ServerConnection) -> None:
    """Behaviour by path: /mixed/<run>-s<NNNNN> picks one of BEHAVIOURS by the session number."""
    path = ws.request.path if ws.request is not None else ""
    if path.startswith("/conv"):
        async for raw in ws:
            request = json.loads(raw)
            await ws.send(json.dumps({"type": "note", "text": "working"}))
            await ws.send(json.dumps({"type": "pong", "content": request["content"]}))
        return
    if path.startswith("/burst"):  # one reply of many events, written back to back
        await ws.recv()
        for name in ("agent_started", *["token"] * 30, "agent_completed", "final_response"):
            await ws.send(json.dumps({"type": name}))
        await ws.wait_closed()
        return
    if path.startswith("/trickle"):
        await ws.recv()
        await ws.send(json.dumps({"type": "agent_started"}))
        for _ in range(8):  # 0.8 s in all, every gap well under the 0.3 s event timeout
            await asyncio.sleep(0.1)
            await ws.send(json.dumps({"type": "token"}))
        if not path.startswith("/trickle-then-silence"):
            await ws.send(json.dumps({"type": "final_response"}))
        await ws.wait_closed()
        return
    behaviour = BEHAVIOURS[int(path.rsplit("s", 1)[1]) % len(BEHAVIOURS)]
    if behaviour == "silent":
        await ws.wait_closed()
        return
    await ws.recv()
    if behaviour == "crash1011":
        await ws.close(1011, "boom")
        return
    if behaviour == "drop":
        assert ws.transport is not None
        ws.transport.abort()
        return
    if behaviour == "bye":
        await ws.close(1000, "bye")
        return
    await ws.send(json.dumps({"type": "agent_started"}))
    if behaviour == "wrongorder":
        await ws.send(json.dumps({"type": "final_response"}))
    for i in range(300 if behaviour == "stream" else 1):  # past the 256 events a record keeps
        await ws.send(json.dumps({"type": "token", "n": i}))
    await ws.send(json.dumps({"type": "agent_completed"}))
    await ws.send(json.dumps({"type": "final_response"}))
    await ws.wait_closed()


@contextmanager
def server_thread(handler: Callable[[ServerConnection], Awaitable[None]]) -> Iterator[str]:
    """A websockets server on its own asyncio loop in a thread: the client's loop is the one under test."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        box["stop"] = asyncio.Event()
        async with serve(handler, "127.0.0.1", 0) as server:
            box["port"] = server.sockets[0].getsockname()[1]
            started.set()
            await box["stop"].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(10), "server did not start"
    try:
        yield f"http://127.0.0.1:{box['port']}"
    finally:
        loop.call_soon_threadsafe(box["stop"].set)
        thread.join(10)
        loop.close()


def _scenario(step: dict[str, Any], **soak: Any) -> ScenarioConfig:
    return ScenarioConfig.model_validate(
        {
            "users": {"password": "pw-not-used", "count": 2},
            "golden_path": {"steps": [{"kind": "ws", "name": "chat", **step}]},
            "soak": {"connect_timeout_s": 2.0, "close_timeout_s": 1.0, "duration_s": 60, **soak},
        }
    )


LEGACY = {
    "path": "/mixed/{session_id}",
    "send": {"type": "user_message", "content": "hello {nonce}"},
    "expect": ["agent_started", "agent_completed"],
    "end_event": "final_response",
    "event_timeout_s": 0.5,
    "timeout_s": 5.0,
}
CONVERSATION = {
    "path": "/conv",
    "conversation": [
        {"send": {"type": "ping", "content": "hi {nonce}"}},
        {"expect": {"match": {"type": "pong"}, "check": {"content": "hi {nonce}"}}},
        {"send": {"type": "ping", "content": "again {nonce}"}},
        {"expect": {"match": {"type": "pong"}}},
    ],
    "ignore": [{"match": {"type": "note"}}],
    "timeout_s": 5.0,
}


def _comparable(records: tuple[SessionRecord, ...]) -> list[tuple[Any, ...]]:
    """Everything in a record but its timings (which differ from run to run on any loop)."""
    return [
        (
            r.session_id,
            r.user,
            r.step,
            r.outcome.label,
            r.event_types,
            r.events_truncated,
            r.close_code,
            r.close_reason,
            tuple(sorted(r.frame_counts.items())),
            len(r.event_offsets_s),
        )
        for r in records
    ]


def _soaks(base: str, monkeypatch: pytest.MonkeyPatch, loop: str) -> list[list[tuple[Any, ...]]]:
    monkeypatch.setenv(EVENT_LOOP_ENV, loop)
    assert event_loop_name() == loop
    with socket.socket() as free:  # a port nobody listens on: every session is refused
        free.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{free.getsockname()[1]}"
    return [
        _comparable(run_soak_sync(base, _scenario(LEGACY, sessions=16, concurrency=8), run_id="r1").records),
        _comparable(run_soak_sync(base, _scenario(CONVERSATION, sessions=6, concurrency=3), run_id="r2").records),
        _comparable(run_soak_sync(refused, _scenario(LEGACY, sessions=3, concurrency=3), run_id="r3").records),
    ]


@pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is not installed (the speed extra)")
def test_the_same_soak_gives_the_same_records_on_asyncio_and_on_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    with server_thread(_scripted) as base:
        on_asyncio = _soaks(base, monkeypatch, "asyncio")
        on_uvloop = _soaks(base, monkeypatch, "uvloop")
    assert on_uvloop == on_asyncio
    legacy, conversation, refused = on_asyncio
    labels = {row[3] for row in legacy}
    assert labels == {
        "ok",
        "closed_1011",
        "abnormal_1006",
        "unexpected_event(expected=agent_completed, got=final_response)",
        "timeout(chat:agent_started)",
        "closed_other(1000)",
    }
    assert any(row[5] for row in legacy), "the 300-token stream is cut at the recorded cap"
    assert {row[3] for row in conversation} == {"ok"}
    assert {row[3] for row in refused} == {"connect_error(refused)"}


def test_the_loop_is_uvloop_when_installed_unless_the_environment_says_asyncio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(EVENT_LOOP_ENV, raising=False)
    assert event_loop_name() == ("uvloop" if HAS_UVLOOP else "asyncio")
    monkeypatch.setenv(EVENT_LOOP_ENV, "asyncio")

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert run_loop(loop_module()).startswith("asyncio")
    monkeypatch.setenv(EVENT_LOOP_ENV, "trio")
    with pytest.raises(ValueError, match="say asyncio or uvloop"):
        run_loop(loop_module())


TRICKLE = {
    "send": {"type": "user_message", "content": "hello"},
    "expect": ["agent_started"],
    "end_event": "final_response",
    "event_timeout_s": 0.3,
    "timeout_s": 10.0,
}


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_events_that_keep_coming_keep_the_session_alive_and_a_silence_ends_it(
    monkeypatch: pytest.MonkeyPatch, loop: str
) -> None:
    if loop == "uvloop" and not HAS_UVLOOP:
        pytest.skip("uvloop is not installed")
    monkeypatch.setenv(EVENT_LOOP_ENV, loop)
    with server_thread(_scripted) as base:
        alive = run_soak_sync(base, _scenario({**TRICKLE, "path": "/trickle"}, sessions=3, concurrency=3)).records
        silent = run_soak_sync(
            base, _scenario({**TRICKLE, "path": "/trickle-then-silence"}, sessions=2, concurrency=2)
        ).records
    # 0.8 s of events, each within 0.3 s of the one before: never a timeout.
    assert [r.outcome.label for r in alive] == ["ok"] * 3
    assert all(r.event_types == ("agent_started", *["token"] * 8, "final_response") for r in alive)
    assert [r.outcome.label for r in silent] == ["timeout(chat:final_response)"] * 2
    assert all(len(r.event_types) == 9 for r in silent)


@pytest.mark.parametrize("asked", [False, True])
def test_permessage_deflate_is_offered_on_soak_sessions_only_when_asked(asked: bool) -> None:
    offers: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        offers.append(ws.request.headers.get("Sec-WebSocket-Extensions", ""))
        await ws.recv()
        await ws.send(json.dumps({"type": "final_response"}))
        await ws.wait_closed()

    step = {**TRICKLE, "path": "/deflate", "expect": []}
    with server_thread(handler) as base:
        scenario = _scenario(step, sessions=2, concurrency=1, permessage_deflate=asked)
        records = run_soak_sync(base, scenario).records
    assert [r.outcome.label for r in records] == ["ok", "ok"]
    assert len(offers) == 2
    assert all(("permessage-deflate" in offer) is asked for offer in offers)


@pytest.mark.parametrize("asked", [True, False])
def test_a_golden_path_ws_step_offers_deflate_as_the_scenario_says(asked: bool) -> None:
    from stability_lib.probes.http_steps import PreparedUser, UserSetup, new_http_client
    from stability_lib.probes.teardown import Where, run_step

    offers: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        offers.append(ws.request.headers.get("Sec-WebSocket-Extensions", ""))
        await ws.recv()
        await ws.send(json.dumps({"type": "final_response"}))
        await ws.wait_closed()

    scenario = ScenarioConfig.model_validate(
        {
            "users": {"password": "pw-not-used", "count": 1},
            "golden_path": {"steps": [{**TRICKLE, "kind": "ws", "name": "chat", "path": "/ws", "expect": []}]},
            "permessage_deflate": asked,
        }
    )
    user = PreparedUser(UserSetup(0, "u0", True, "", ()))

    async def main(base: str) -> Any:
        async with new_http_client(base) as client:
            where = Where(client, base, None, scenario, user, "r1", 0)
            return await run_step(where, scenario.golden_path.steps[0], {"nonce": "n"})

    with server_thread(handler) as base:
        run = run_loop(main(base))
    assert run.ok, run.why
    assert len(offers) == 1
    assert ("permessage-deflate" in offers[0]) is asked


@pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is not installed (the speed extra)")
def test_event_offsets_resolve_events_read_in_one_burst_on_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvloop's loop.time() is whole milliseconds, read once per loop iteration: timed with it, events read
    in one burst all had the same offset (a 5 ms span read as 0.0 or 1.0). Offsets come from
    time.monotonic(), so every event of a burst has its own, later offset, on either kind of step."""
    monkeypatch.setenv(EVENT_LOOP_ENV, "uvloop")
    burst_conversation = {
        "path": "/burst",
        "conversation": [
            {"send": {"type": "user_message", "content": "hi {nonce}"}},
            {"expect": {"match": {"type": "final_response"}}},
        ],
        "ignore": [
            {"match": {"type": "agent_started"}},
            {"match": {"type": "token"}},
            {"match": {"type": "agent_completed"}},
        ],
        "timeout_s": 5.0,
    }
    with server_thread(_scripted) as base:
        legacy = run_soak_sync(base, _scenario({**LEGACY, "path": "/burst"}, sessions=4, concurrency=2)).records
        conversation = run_soak_sync(base, _scenario(burst_conversation, sessions=4, concurrency=2)).records
    for record in (*legacy, *conversation):
        assert record.outcome.label == "ok", record.outcome.label
        offsets = record.event_offsets_s
        assert len(offsets) >= 30, record.event_types
        assert all(later > earlier for earlier, later in zip(offsets, offsets[1:], strict=False)), offsets
        assert any(o != round(o, 3) for o in offsets), "offsets are whole milliseconds"
