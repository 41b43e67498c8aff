"""A launcher killed without stopping its sample services (SIGKILL) leaves none behind.

`stability demo` starts each service in a session of its own, and stops it itself on the way out; a
SIGKILLed launcher runs no cleanup, and the services ran on for ever, holding their ports. Now each
service is told its launcher's pid and shuts down (gracefully, as on SIGTERM) once that process is no
longer its parent, whichever of the launcher's threads started it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from support import REPO
from test_demo_sighup import STOP_BOUND_S, demo_services_of, kill_leftovers, running_demo, wait_until_gone
from test_interrupts import listening

pytest.importorskip("stability_lib.demo")


@pytest.mark.slow
def test_sigkill_on_the_demo_leaves_no_service_behind(tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    with running_demo(tmp_path, token) as demo:
        services = demo_services_of(token)
        demo.proc.kill()  # no cleanup of ours can run
        demo.proc.wait()
        left = wait_until_gone(token, "stability_lib.demo")

    assert len(services) == 2 and not left, f"services still alive after their launcher's SIGKILL: {left}"
    assert not [url for url in demo.urls if listening(url)]


# Starts both services from a thread that then ends (PR_SET_PDEATHSIG would stop them right there),
# checks they still serve, says where they are, and waits to be killed.
LAUNCH_FROM_A_THREAD = """
import json, threading, time
import httpx
from stability_lib.demo.launch import demo_targets

box = {}
def launch():
    box["targets"] = demo_targets()  # kept: never left, the launcher dies with the services up
    box["env"] = box["targets"].__enter__()
thread = threading.Thread(target=launch)
thread.start()
thread.join()
time.sleep(1.5)  # past a parent watcher's first polls
env = box["env"]
urls = [env["DEMO_CANDIDATE_URL"], env["DEMO_BASELINE_URL"]]
status = [httpx.get(url + "/health", timeout=30).status_code for url in urls]
print(json.dumps({"urls": urls, "health": status}), flush=True)
time.sleep(600)
"""


def test_services_started_from_a_finished_thread_serve_on_and_stop_when_their_launcher_is_killed() -> None:
    token = uuid.uuid4().hex
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH_FROM_A_THREAD],
        cwd=REPO,
        env={**os.environ, "STABILITY_TEST_MARKER": token},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the launcher reports (or dies: EOF)
        assert line, proc.communicate(timeout=STOP_BOUND_S)[1][-3000:]
        seen = json.loads(line)
        services = demo_services_of(token)
        proc.kill()
        proc.wait()
        left = wait_until_gone(token, "stability_lib.demo")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        kill_leftovers(token)

    assert seen["health"] == [200, 200]  # the thread that started them had ended: they served on
    assert len(services) == 2 and not left, f"services still alive after their launcher's SIGKILL: {left}"
    assert not [url for url in seen["urls"] if listening(url)]
