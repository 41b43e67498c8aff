"""Ctrl-C stops a soak (issue 11, item 9, probe part).

A soak of thousands of long sessions runs in a subprocess against a slow server here: it
answers one event and then stays silent, never answering a close frame. SIGINT must stop
the soak within seconds (not after its 5,000 sessions, nor after a close timeout per
session): every connection closed, none opened afterwards. Run both as a plain script
(``asyncio.run``: the process must exit) and as in a Jupyter kernel, where a loop already
runs in the main thread, ``run_sync`` moves the soak to a worker thread, and the kernel
lives on after the interrupted cell: the soak must not go on in the background there.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from support import REPO
from test_probe_hardening import WS_STEP, RawWsServer

pytestmark = pytest.mark.slow

SOAK_SCRIPT = """
import asyncio, json, sys
from stability_lib.probes.scenario import ScenarioConfig
from stability_lib.probes.engine import run_soak_sync

base, scenario, how = sys.argv[1], ScenarioConfig.model_validate(json.loads(sys.argv[2])), sys.argv[3]
if how == "in_running_loop":  # like a Jupyter cell: the kernel's loop is running, SIGINT raises KeyboardInterrupt
    async def cell():
        try:
            run_soak_sync(base, scenario)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        await asyncio.sleep(60)  # the kernel lives on after an interrupted cell
    asyncio.new_event_loop().run_until_complete(cell())
else:
    run_soak_sync(base, scenario)
"""

SCENARIO = {
    "users": {"password": "pw-not-used", "count": 1},
    "golden_path": {"steps": [{**WS_STEP, "event_timeout_s": 120.0, "timeout_s": 300.0}]},
    # Each session would wait 120 s for its next event, then 30 s for a close answer: hours in all.
    "soak": {"sessions": 5000, "concurrency": 20, "duration_s": 900, "close_timeout_s": 30.0, "connect_timeout_s": 5.0},
}


@contextmanager
def slow_server_in_a_thread() -> Iterator[tuple[str, RawWsServer]]:
    state = RawWsServer("slow")
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, str] = {}
    stop = asyncio.Event()

    async def serve() -> None:
        server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
        box["url"] = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        ready.set()
        async with server:
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield box["url"], state
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


@pytest.mark.parametrize("how", ["plain", "in_running_loop"])
def test_ctrl_c_stops_a_running_soak_within_seconds(how: str) -> None:
    with slow_server_in_a_thread() as (base, server):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.Popen(
            [sys.executable, "-c", SOAK_SCRIPT, base, json.dumps(SCENARIO), how],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
            # A terminal's foreground process: SIGINT at its default. A test run started in the
            # background by a non-interactive shell (`make test &`) ignores SIGINT, its children
            # inherit that, and Python then never raises KeyboardInterrupt (the soak ran on).
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            deadline = time.monotonic() + 60
            while server.connections < 20 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            assert server.connections >= 20, proc.stderr.read().decode() if proc.poll() is not None else "no load"
            proc.send_signal(signal.SIGINT)
            # Generous bounds: they prove the soak did not run on (its sessions would hold it for hours).
            if how == "plain":
                proc.wait(timeout=10)
                assert proc.returncode != 0  # the interrupt went through; it was not swallowed
            else:
                assert proc.stdout is not None
                assert select.select([proc.stdout], [], [], 10)[0], "the cell was not interrupted"
                assert proc.stdout.readline() == b"interrupted\n"
                assert proc.poll() is None  # the "kernel" is alive: only the soak may have stopped
            deadline = time.monotonic() + 10
            while server.open_now and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.open_now == 0  # every session's socket was closed
            seen = server.connections
            time.sleep(1.0)
            assert server.connections == seen  # and nothing kept loading the target
            assert seen < 100  # the soak stopped launching: 20 at once, not a new wave per cut
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            assert proc.stdout is not None and proc.stderr is not None
            proc.stdout.close()
            proc.stderr.close()
