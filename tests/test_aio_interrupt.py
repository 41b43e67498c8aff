"""Ctrl-C inside a Jupyter cell: ``run_sync`` gives the interrupted work its grace before re-raising.

In a kernel a loop already runs in the main thread, so ``run_sync`` runs the work on a loop in a
worker thread and waits for it. On Python 3.11, a KeyboardInterrupt inside ``Thread.join(timeout)``
marks the thread stopped while it still runs, and every later join returns at once: the interrupt was
re-raised without waiting for the work to wind down, and the kernel, killed after the interrupted cell,
cut its finally steps short (a Ctrl-C mid-soak left a session open on a real service, now and then).
"""

from __future__ import annotations

import json
import subprocess
import sys

from support import REPO

CELL = """
import asyncio, json, os, signal, threading
from stability_lib.probes.aio import run_sync

signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal's foreground process
events = []

async def work():  # a soak: on cancellation it still undoes what it created (1 s here)
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        await asyncio.sleep(1.0)
        events.append("wound down")
        raise

async def cell():  # like a Jupyter cell: a loop runs in this thread already
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    try:
        run_sync(work())
    except KeyboardInterrupt:
        events.append("interrupt re-raised")
    print(json.dumps(events))

asyncio.new_event_loop().run_until_complete(cell())
"""


def test_ctrl_c_in_a_cell_waits_for_the_work_to_wind_down_before_it_is_re_raised() -> None:
    done = subprocess.run([sys.executable, "-c", CELL], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["wound down", "interrupt re-raised"]
