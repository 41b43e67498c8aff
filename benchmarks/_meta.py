"""Self-describing benchmark results: what ran, where, when, on which commit."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


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
    }


def commit_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=5).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return {"id": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def envelope(name: str, results: dict[str, Any]) -> dict[str, Any]:
    from stability_lib import __version__

    return {
        "benchmark": name,  # the stable key results are matched by
        "version": __version__,
        "datetime": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine_info": machine_info(),
        "commit_info": commit_info(),
        "results": results,
    }
