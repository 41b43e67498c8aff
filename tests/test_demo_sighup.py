"""Closing the terminal (SIGHUP) stops `stability demo` as SIGTERM does: no sample service left behind.

The demo services run in a session of their own (a terminal's Ctrl-C must not stop them under a running
soak), so only the tool stops them. SIGHUP (the terminal closed, the ssh connection dropped) was not
handled: its default action killed `stability demo` on the spot, and both services ran on for ever,
holding their ports. Now SIGHUP is an interrupt like SIGTERM: the same cleanup, the run directory
records it, the same exit code. When the terminal is really gone, every write to it fails (EIO): the
first progress line of the cleanup must not end it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support import REPO
from test_cli_hardening import marked
from test_interrupts import listening

pytest.importorskip("stability_lib.demo")

START_BOUND_S = 240.0
STOP_BOUND_S = 60.0  # generous: the point is "it stops", not how fast
# Makes the terminal on its stdin its controlling terminal (it leads a new session), then becomes the command.
ON_A_TERMINAL = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


def demo_services_of(token: str) -> dict[int, list[str]]:
    """The live sample service processes carrying ``token``: pid -> argv."""
    return {pid: argv for pid, argv in marked(token).items() if "stability_lib.demo" in argv}


def wait_until_gone(token: str, which: str = "") -> dict[int, list[str]]:
    """Wait (up to STOP_BOUND_S) until no live process carrying ``token`` (with ``which`` in its argv,
    if given) is left; return those still alive then."""
    deadline = time.monotonic() + STOP_BOUND_S
    while True:
        left = {pid: argv for pid, argv in marked(token).items() if not which or which in argv}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def kill_leftovers(token: str) -> None:
    for pid in marked(token):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Demo:
    proc: subprocess.Popen[bytes]
    out: Path
    output: bytearray = field(default_factory=bytearray)  # stdout and stderr as they come
    urls: list[str] = field(default_factory=list)
    terminal: int | None = None  # the master side of its terminal, if it runs on one
    reading: threading.Event = field(default_factory=threading.Event)

    def text(self) -> str:
        return self.output.decode(errors="replace")

    def close_terminal(self) -> None:
        """Close the terminal window: the kernel hangs the terminal up and sends SIGHUP."""
        assert self.terminal is not None
        self.reading.clear()  # a read in progress would keep the terminal open
        time.sleep(0.5)  # the reader's last poll ends
        os.close(self.terminal)


def _read(demo: Demo, fd: int) -> None:
    while demo.reading.is_set():
        if select.select([fd], [], [], 0.1)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the other side is closed
                return
            if not chunk:
                return
            demo.output.extend(chunk)


@contextmanager
def running_demo(tmp_path: Path, token: str, *, terminal: bool = False) -> Iterator[Demo]:
    """`stability demo` (on a terminal of its own if ``terminal``), waited for until its sections run and
    both services serve. Whatever it leaves is killed on the way out."""
    out = tmp_path / "run"
    argv = ["-m", "stability_lib.cli", "demo", "--out", str(out), "--no-pdf"]
    env = {**os.environ, "STABILITY_TEST_MARKER": token}
    if terminal:
        master, slave = os.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-c", ON_A_TERMINAL, *argv],
            cwd=REPO,
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        demo = Demo(proc, out, terminal=master)
        sources = [master]
    else:
        proc = subprocess.Popen(
            [sys.executable, *argv],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        demo = Demo(proc, out)
        assert proc.stdout is not None and proc.stderr is not None
        sources = [proc.stdout.fileno(), proc.stderr.fileno()]
    demo.reading.set()
    readers = [threading.Thread(target=_read, args=(demo, fd), daemon=True) for fd in sources]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + START_BOUND_S
        while time.monotonic() < deadline and proc.poll() is None:
            demo.urls = [line.split("=", 1)[1].strip() for line in demo.text().splitlines() if "_URL=" in line]
            serving = len(demo.urls) == 2 and all(listening(url) for url in demo.urls)
            # A kernel up: the sections are under way (run.json records an interrupt from then on)
            kernels = [argv for argv in marked(token).values() if "ipykernel_launcher" in argv]
            if serving and kernels and len(demo_services_of(token)) == 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the demo did not get under way (exit {proc.poll()}):\n{demo.text()}")
        yield demo
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        demo.reading.clear()
        for reader in readers:
            reader.join(5)
        if demo.terminal is not None:
            with suppress(OSError):  # closed by the test already
                os.close(demo.terminal)
        kill_leftovers(token)


@pytest.mark.slow
# kill -HUP repeats "terminal closed" (which sends SIGHUP and also takes the terminal away) on the
# signal alone: extended (make test-all), to keep the default run under 10 minutes on 2 cores.
@pytest.mark.parametrize("how", [pytest.param("kill -HUP", marks=pytest.mark.extended), "terminal closed"])
def test_sighup_on_the_demo_stops_every_process_it_started_like_sigterm(tmp_path: Path, how: str) -> None:
    token = uuid.uuid4().hex
    with running_demo(tmp_path, token, terminal=how == "terminal closed") as demo:
        services = demo_services_of(token)
        if how == "kill -HUP":
            demo.proc.send_signal(signal.SIGHUP)
        else:
            demo.close_terminal()
        returncode = demo.proc.wait(timeout=STOP_BOUND_S)
        left = wait_until_gone(token)  # the services, the kernels: everything the run started
    run_log = (demo.out / "run.log").read_text()

    assert returncode == 3, demo.text() + run_log[-3000:]  # as for SIGTERM: the run could not be completed
    assert len(services) == 2 and not left, f"still alive after SIGHUP: {left}"
    assert not [url for url in demo.urls if listening(url)]
    meta = json.loads((demo.out / "run.json").read_text())
    assert meta["interrupted"]["signal"] == "SIGHUP"
    assert "interrupted by SIGHUP" in run_log and "Traceback" not in run_log
    if how == "kill -HUP":  # on a terminal closed, nobody reads it
        assert "Traceback" not in demo.text() and "stability: interrupted by SIGHUP" in demo.text()
