"""What both Locust files (``scale.locust_user``: the soak, ``scale.locust_golden``: the golden path) share:
the plan's environment variable, a process's resources, the parent watch, and the master's watch for
workers gone missing while the run is on.

Only ever imported inside a Locust process: it imports gevent and locust.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]
from locust.runners import STATE_MISSING, STATE_RUNNING, STATE_SPAWNING

__all__ = ["PLAN_ENV", "PLAN_WAIT_S", "resources", "watch_parent", "MasterWatch"]

PLAN_ENV = "STABILITY_LOCUST_PLAN"
PLAN_WAIT_S = 30.0


def _peak_rss_kib() -> float:
    """Peak RSS of this process. VmHWM, not ``ru_maxrss``: Linux folds the parent's peak into a child's
    ``ru_maxrss`` across exec, so a worker started by a 130 MiB process would report 130 MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def resources() -> dict[str, float]:
    """This process's peak memory and CPU time so far (for the engine's report and the benchmark)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"max_rss_mib": round(_peak_rss_kib() / 1024, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3)}


def watch_parent() -> None:
    """Quit when the process that started us is gone (a SIGKILLed launcher leaves no orphan)."""
    parent = os.getppid()
    while True:
        gevent.sleep(1.0)
        if os.getppid() != parent:
            os._exit(3)


class MasterWatch:
    """The master's loop: note workers gone missing while the run is on; when ``over()``, ``finish()`` and quit."""

    env: Any
    slots: dict[str, int]
    lost_nodes: set[str]
    finished: bool
    summary: dict[str, Any]
    summary_path: Path
    started: float

    def over(self) -> bool:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError

    def missing(self) -> set[str]:
        runner = self.env.runner
        gone = {c.id for c in runner.clients.values() if c.state == STATE_MISSING}
        return gone | {node for node in self.slots if node not in runner.clients}

    def watch(self) -> None:
        while not self.finished:
            gevent.sleep(0.2)
            if self.env.runner.state not in (STATE_RUNNING, STATE_SPAWNING):
                continue  # stopping (the hard deadline, Ctrl-C): workers leaving now are not lost
            self.lost_nodes |= self.missing()  # seen missing while the run was on
            if self.over():
                self.finish()
                self.env.runner.quit()
                return

    def locust_stats(self) -> dict[str, int]:
        raise NotImplementedError

    def on_quitting(self) -> None:
        """Locust quits (the run is over, its hard deadline, Ctrl-C): the summary, with the workers' last stats."""
        self.finish()
        self.summary["locust_stats"] = self.locust_stats()
        self.write_summary()

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def write_summary(self) -> None:
        tmp = self.summary_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.summary), encoding="utf-8")
        tmp.replace(self.summary_path)
