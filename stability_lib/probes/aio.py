"""Run a coroutine to completion from sync code, even inside Jupyter's running event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_sync", "CANCEL_GRACE_S"]

T = TypeVar("T")
CANCEL_GRACE_S = 5.0  # after Ctrl-C, how long the caller waits for the cancelled coroutine to finish


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
        return asyncio.run(coro)
    # A kernel already runs a loop in this thread: run ours in a fresh thread.
    box: dict[str, Any] = {}
    started = threading.Event()
    running: dict[str, Any] = {}

    async def main() -> T:
        running["loop"], running["task"] = asyncio.get_running_loop(), asyncio.current_task()
        started.set()
        return await coro

    def target() -> None:
        try:
            box["value"] = asyncio.run(main())
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc
        finally:
            started.set()

    thread = threading.Thread(target=target, name="stability-run-sync", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.5)  # short waits: the interrupt is delivered between them on every platform
    except BaseException:  # KeyboardInterrupt, SystemExit: stop the work, then let the interrupt through
        started.wait(cancel_grace_s)
        loop, task = running.get("loop"), running.get("task")
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed: the work is over
                loop.call_soon_threadsafe(task.cancel)
        thread.join(cancel_grace_s)
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]
