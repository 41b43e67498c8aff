from __future__ import annotations

import fcntl
import shutil
import tempfile
from collections.abc import Callable, Iterator
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


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A folder the xdist workers of this test session share (their base folders' parent is unique
    to the session); without xdist, a folder of this session's own."""
    if worker_id == "master":
        return tmp_path_factory.mktemp("shared")
    folder = tmp_path_factory.getbasetemp().parent / "shared"
    folder.mkdir(exist_ok=True)
    return folder


def built_once(shared: Path, name: str, build: Callable[[Path], None]) -> Path:
    """``build(folder)`` once per test session, whichever worker asks first; the others wait for it
    under a lock and read the same folder. Costly artefacts (rendered reports) then cost one build,
    not one per worker. A build that failed is tried again by the next worker that asks."""
    folder, done = shared / name, shared / f"{name}.done"
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder
