from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def candidate_url() -> Iterator[str]:
    from stability_lib.demo import serve

    with serve(variant="candidate", seed=1) as url:
        yield url


@pytest.fixture(scope="session")
def repo():
    from support import REPO

    return REPO


@pytest.fixture(scope="session")
def demo_run() -> Iterator[Path]:
    """One whole ``stability demo`` (PDF included), made once per test session and only read by its
    users: the demo takes a minute, and its run folder answers several questions. Its users are
    perf-marked, so they run in the serial phase where the demo's performance claims are fair."""
    from support import run_cli

    root = Path(tempfile.mkdtemp(prefix="stability-demo-run-"))
    out = root / "run"
    proc = run_cli(["demo", "--out", str(out)])
    (out / "demo.stdout").write_text(proc.stdout)
    (out / "demo.exit").write_text(str(proc.returncode))
    assert (out / "summary.json").exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    yield out
    shutil.rmtree(root, ignore_errors=True)
