"""Run a coroutine to completion from sync code, even inside Jupyter's running event loop.

The loop is uvloop's when uvloop is installed (the ``speed`` extra; it halves the client's CPU per
WebSocket round trip: field notes), else asyncio's. ``STABILITY_EVENT_LOOP=asyncio`` (or ``uvloop``)
chooses; the probes' records are the same either way (tests/test_engine_loop.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["run_sync", "run_loop", "event_loop_name", "CANCEL_GRACE_S", "EVENT_LOOP_ENV"]

T = TypeVar("T")
CANCEL_GRACE_S = 8.0  # after Ctrl-C, how long the caller waits for the cancelled coroutine to finish
EVENT_LOOP_ENV = "STABILITY_EVENT_LOOP"  # asyncio | uvloop; unset: uvloop when installed


def _loop_factory() -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    wanted = os.environ.get(EVENT_LOOP_ENV, "").strip().lower()
    if wanted not in ("", "asyncio", "uvloop"):
        raise ValueError(f"{EVENT_LOOP_ENV}={wanted!r}: say asyncio or uvloop")
    if wanted != "asyncio":
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            if wanted == "uvloop":
                raise ValueError(f"{EVENT_LOOP_ENV}=uvloop but uvloop is not installed (the speed extra)") from None
        else:
            return "uvloop", uvloop.new_event_loop
    return "asyncio", asyncio.new_event_loop


def event_loop_name() -> str:
    """The event loop ``run_sync`` would use now: ``uvloop`` or ``asyncio``."""
    return _loop_factory()[0]


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the chosen loop (uvloop when installed)."""
    try:
        factory = _loop_factory()[1]
    except ValueError:
        coro.close()  # never started: no "coroutine was never awaited" warning on top of the error
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def run_sync(coro: Coroutine[Any, Any, T], *, cancel_grace_s: float = CANCEL_GRACE_S) -> T:
    """Run ``coro`` and return its result.

    Without a running loop this is ``asyncio.run`` (whose Ctrl-C handling cancels the
    coroutine). Inside a running loop (a Jupyter kernel) the coroutine runs on a fresh
    loop in a worker thread; a KeyboardInterrupt or SystemExit in the caller's thread
    cancels it there, waits up to ``cancel_grace_s`` for it to wind down, and re-raises:
    the work must not go on loading a target after the user pressed Ctrl-C.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run_loop(coro)
    # A kernel already runs a loop in this thread: run ours in a fresh thread.
    box: dict[str, Any] = {}
    started, finished = threading.Event(), threading.Event()
    running: dict[str, Any] = {}

    async def main() -> T:
        running["loop"], running["task"] = asyncio.get_running_loop(), asyncio.current_task()
        started.set()
        return await coro

    def target() -> None:
        try:
            box["value"] = run_loop(main())
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc
        finally:
            started.set()
            finished.set()

    # Waits are on our own event, never Thread.join: on Python 3.11 a KeyboardInterrupt inside
    # join(timeout) marks the thread stopped while it still runs, and every later join returns at
    # once; the grace below would then be skipped, and a kernel killed after the interrupted cell
    # would cut the work's finally steps (a soak's teardown) short.
    threading.Thread(target=target, name="stability-run-sync", daemon=True).start()
    try:
        while not finished.wait(0.5):  # short waits: the interrupt is delivered between them on every platform
            pass
    except BaseException:  # KeyboardInterrupt, SystemExit: stop the work, then let the interrupt through
        started.wait(cancel_grace_s)
        loop, task = running.get("loop"), running.get("task")
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed: the work is over
                loop.call_soon_threadsafe(task.cancel)
        finished.wait(cancel_grace_s)
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]
