"""A terminal's Ctrl-C does not reach the sample services `stability demo` started: the tool stops them itself.

A terminal sends SIGINT to its whole foreground process group. The demo services were in it: a Ctrl-C stopped
them at once, while the soak still running in a kernel went on for a moment, and its remaining sessions were
refused connects; judged with the rest, a false FAIL. Now each service runs in a session of its own, and
``DemoProcess.terminate()``/``stop()`` (by its pid) still stop it, leaving nothing behind.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support import REPO

pytest.importorskip("stability_lib.demo")

# Started in a session of its own (as a shell starts a foreground job): launches a service, sends SIGINT to
# its own process group (what Ctrl-C in the terminal does), then says what became of the service.
CTRL_C_IN_THE_TERMINAL = """
import json, os, signal, subprocess, time
import httpx
from stability_lib.demo.launch import DemoProcess

service = DemoProcess("candidate")
seen = {"own_session": os.getsid(service.proc.pid) == service.proc.pid}
# Served: its signal handlers are in place (it prints its URL just before installing them)
seen["health_before"] = httpx.get(service.url + "/health", timeout=30).status_code
try:
    os.killpg(os.getpgrp(), signal.SIGINT)
    time.sleep(60)
except KeyboardInterrupt:
    seen["interrupted"] = True
try:
    seen["exited_after_ctrl_c"] = service.proc.wait(3)
except subprocess.TimeoutExpired:
    seen["exited_after_ctrl_c"] = None
if seen["exited_after_ctrl_c"] is None:
    seen["health"] = httpx.get(service.url + "/health", timeout=10).status_code
service.stop()
seen["stopped"] = service.proc.returncode
try:
    httpx.get(service.url + "/health", timeout=5)
    seen["still_listening"] = True
except httpx.ConnectError:
    seen["still_listening"] = False
print(json.dumps(seen))
"""


@pytest.mark.slow
def test_a_terminal_ctrl_c_does_not_stop_the_demo_services_and_stop_still_does() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C_IN_THE_TERMINAL],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    assert seen["interrupted"] is True and seen["health_before"] == 200
    assert seen["own_session"] is True
    assert seen["exited_after_ctrl_c"] is None and seen["health"] == 200  # still serving after the Ctrl-C
    assert seen["stopped"] == 0 and seen["still_listening"] is False  # stop() still stops it
