"""Stopping everything a category's command started.

Its process group, and processes that left the group (setsid, daemons) but carry the run's marker
(``MARK_ENV``) in their environment: SIGTERM to all, one grace for all, SIGKILL to what remains.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Collection, Sequence
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
    return pgid in _scan((pgid,), ())[0]


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _scan(pgids: Collection[int], tokens: Collection[str]) -> tuple[set[int], dict[int, str]]:
    """One pass over /proc: which of ``pgids`` still have a running member (zombies awaiting a reaper
    do not count), and the running processes outside those groups whose environment carries
    ``MARK_ENV`` set to one of ``tokens`` (pid: token). Not Linux: a group is trusted to run while
    kill(0) reaches it, and no marked process is found."""
    candidates: set[int] = set()
    for pgid in pgids:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass
        candidates.add(pgid)
    proc_root = Path("/proc")
    if not proc_root.is_dir():
        return candidates, {}
    # killpg(0) also succeeds for zombies, which PID 1 may reap only seconds later.
    live_groups: set[int] = set()
    marked: dict[int, str] = {}
    needles = {f"{MARK_ENV}={token}".encode(): token for token in tokens}
    if not candidates and not needles:
        return live_groups, marked
    own = os.getpid()
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        if candidates:
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                # After "(comm)": state, ppid, pgrp, ...
                state, pgrp = fields[0], int(fields[2])
            except (OSError, IndexError, ValueError):
                continue
            if state in ("Z", "X"):
                continue
            if pgrp in candidates:
                live_groups.add(pgrp)
                continue  # a member of a group given: stopped with its group
        if needles and int(entry.name) != own:
            try:
                environ = (entry / "environ").read_bytes()  # a zombie's is empty
            except OSError:  # gone, or another user's
                continue
            for variable in environ.split(b"\0"):
                if variable in needles:
                    marked[int(entry.name)] = needles[variable]
                    break
    return live_groups, marked


def _stop(procs: Sequence[subprocess.Popen[bytes]], tokens: Collection[str]) -> list[str]:
    """Stop the process groups of ``procs`` (each leads its own) and every process carrying one of
    ``tokens``, all together: SIGTERM to each, one shared grace of ``KILL_GRACE_S`` until none runs,
    then SIGKILL to all that remain; the leaders are reaped. Returns "pid (name)" of each marked
    process found outside those groups: those that escaped them (setsid, daemons).

    One deadline for all: stopped one after the other, trees that ignore SIGTERM would take a grace
    each, longer than the runner waits before it kills the process that stops them."""
    pgids = {proc.pid for proc in procs}  # start_new_session: each command leads its own group
    for pgid in pgids:
        _signal_group(pgid, signal.SIGTERM)
    found: dict[int, str] = {}  # pid: "pid (name)"
    deadline = time.monotonic() + KILL_GRACE_S
    while True:
        for proc in procs:
            proc.poll()  # reap a leader so that it does not keep its group "alive"
        live_groups, marked = _scan(pgids, tokens)
        for pid in marked.keys() - found.keys():  # the first found, or one that escaped since
            found[pid] = f"{pid} ({_process_name(pid)})"
            _signal_pid(pid, signal.SIGTERM)
        if (not live_groups and not marked) or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    for pgid in pgids:
        _signal_group(pgid, signal.SIGKILL)
    # Scanned again after the groups' SIGKILL: a member that called setsid just before it is marked too.
    for pid in _scan((), tokens)[1]:
        found.setdefault(pid, f"{pid} ({_process_name(pid)})")
        _signal_pid(pid, signal.SIGKILL)
    for proc in procs:
        proc.wait()
    return list(found.values())


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole process group, give it a grace period, then SIGKILL it."""
    _stop([proc], ())


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
    return _stop((), (token,))


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
        # Every group and every marked process at once, on one deadline: a grace per category,
        # one after the other, would outlast the kernel's teardown grace with a few that ignore
        # SIGTERM, and the escapees of the later ones would keep running.
        _stop([proc for _, proc in running], [token for token, _ in running])
