"""Stopping everything a category's command started.

First its process group; then processes that left the group (setsid, daemons) but carry the run's
marker (``MARK_ENV``) in their environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

__all__ = [
    "MARK_ENV",
    "KILL_GRACE_S",
    "CategoriesStopped",
    "CommandsInFlight",
]


# A unique token in every category's environment: processes that leave the
# command's process group (setsid, daemons) still carry it and are stopped by it.
MARK_ENV = "STABILITY_SUITE_RUN"


KILL_GRACE_S = 3.0  # SIGTERM, then this long, then SIGKILL


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies awaiting a reaper do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc_root = Path("/proc")
    if not proc_root.is_dir():  # not Linux: trust kill(0)
        return True
    # killpg(0) also succeeds for zombies, which PID 1 may reap only seconds later.
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After "(comm)": state, ppid, pgrp, ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole process group, give it a grace period, then SIGKILL it."""
    pgid = proc.pid  # start_new_session: the child leads its own group
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < deadline:
        proc.poll()  # reap the leader so it does not keep the group "alive"
        if not _group_alive(pgid):
            break
        time.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)
    proc.wait()


def _marked_processes(token: str) -> list[int]:
    """Live processes whose environment carries ``MARK_ENV=token`` (Linux /proc)."""
    needle = f"{MARK_ENV}={token}".encode()
    found: list[int] = []
    proc_root = Path("/proc")
    if not proc_root.is_dir():
        return found
    own = os.getpid()
    for entry in proc_root.iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()[:64]
    except OSError:
        return "?"


def _stop_marked(token: str) -> list[str]:
    """Stop every process still carrying this run's marker: "pid (name)" of each found.

    A child that calls setsid (or daemonizes) leaves the process group the runner
    kills, but keeps the environment it inherited; that is how it is found.
    """
    pids = _marked_processes(token)
    if not pids:
        return []
    names = [f"{pid} ({_process_name(pid)})" for pid in pids]
    for pid in pids:
        _signal_pid(pid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < deadline and _marked_processes(token):
        time.sleep(0.05)
    for pid in _marked_processes(token):
        _signal_pid(pid, signal.SIGKILL)
    return names


def _signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


class CategoriesStopped(Exception):
    """The run is being stopped (Ctrl-C or SIGTERM reached the thread that waits for the
    categories): no further command starts."""


class CommandsInFlight:
    """The category commands running now, several at once under ``suites.concurrency``.

    Only the main thread receives Ctrl-C and SIGTERM (as KeyboardInterrupt); the commands then
    run in worker threads, so the main thread stops them all here: every process group and every
    process carrying a run's marker, as a single running category stops its own. No command
    starts after that.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        self._stopping = False

    @property
    def stopping(self) -> bool:
        with self._lock:
            return self._stopping

    def add(self, token: str, proc: subprocess.Popen[bytes]) -> bool:
        """Track a started command; False once stopping (the caller stops it at once)."""
        with self._lock:
            if self._stopping:
                return False
            self._running[token] = proc
            return True

    def discard(self, token: str) -> None:
        with self._lock:
            self._running.pop(token, None)

    def stop_all(self) -> None:
        """Refuse new commands; stop every running one with its whole tree."""
        with self._lock:
            self._stopping = True
            running = list(self._running.items())
        for _, proc in running:  # all groups get SIGTERM at once, then each its grace period
            _signal_group(proc.pid, signal.SIGTERM)
        for token, proc in running:
            _stop_group(proc)
            _stop_marked(token)
