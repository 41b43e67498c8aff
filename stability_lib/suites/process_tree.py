"""Stopping everything a category's command started.

First its process group; then processes that left the group (setsid, daemons) but carry the run's
marker (``MARK_ENV``) in their environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

__all__ = [
    "MARK_ENV",
    "KILL_GRACE_S",
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
