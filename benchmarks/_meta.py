"""Self-describing benchmark results: what ran, where, when, on which commit.

Every ``bench_*.py`` prints ``json.dumps(envelope(BENCHMARK, results))`` as its last
stdout line (the shape of pytest-benchmark's saved results); ``run_all.py`` stores it
as ``results/<benchmark>.json``.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Measure this checkout's stability_lib, not whichever copy is installed elsewhere.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "node": platform.node(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "system": platform.platform(),
        "python": platform.python_version(),
        # Other work on the machine skews timings; this says whether there was any.
        "load_avg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def commit_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            # --no-optional-locks: `git status` must not take index.lock while someone commits.
            return subprocess.run(
                ["git", "--no-optional-locks", *args], cwd=REPO, capture_output=True, text=True, timeout=5
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return {"id": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


def envelope(name: str, results: dict[str, Any]) -> dict[str, Any]:
    from stability_lib import __version__

    return {
        "benchmark": name,  # the stable key results are matched by
        "version": __version__,
        "datetime": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine_info": machine_info(),
        "commit_info": commit_info(),
        "results": results,
    }
