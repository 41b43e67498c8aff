"""The sample services' database folders of killed launchers do not litter the temp dir.

demo_services() keeps the two services' SQLite files in a ``stability-demo-db-*`` temporary folder; a
SIGKILLed ``stability demo`` never removed it, and every killed run left one in /tmp for ever. Now the
folder records its owner (pid and start time), and the next demo_services() removes the folders whose
owner is gone, and nothing else: a live owner's folder, a young folder it cannot judge, a symlink or a
file named like one, another user's folder all stay.

Every test sweeps a folder of its own (``root=`` or ``tempfile.tempdir``), never the real temp dir.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from support import REPO

pytest.importorskip("stability_lib.demo")

from stability_lib.demo import db_folders
from stability_lib.demo.db_folders import (
    DB_FOLDER_PREFIX,
    FolderEntry,
    FolderOwner,
    stale_db_folders,
    sweep_stale_db_folders,
)
from stability_lib.demo.launch import demo_services

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the sweep reads /proc (Linux)")

DAY = 24 * 3600.0


def start_time(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat (read here independently of the code under test)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text.rpartition(")")[2].split()[19])


def this_host() -> dict[str, str]:
    return {
        "boot": Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
        "pidns": os.readlink("/proc/self/ns/pid"),
    }


def dead_pid() -> tuple[int, int]:
    """The pid and start time of a process that has ended (killed and reaped)."""
    proc = subprocess.Popen(["sleep", "600"])
    pid_start = proc.pid, start_time(proc.pid)
    proc.kill()
    proc.wait()
    return pid_start


def db_folder(root: Path, owner: dict[str, object] | None, name: str = "") -> Path:
    """A folder laid out as demo_services() makes it, its owner file holding ``owner``."""
    folder = Path(tempfile.mkdtemp(prefix=DB_FOLDER_PREFIX + name, dir=root))
    (folder / "candidate.sqlite3").write_bytes(b"")
    if owner is not None:
        (folder / "owner").write_text(json.dumps(owner))
    return folder


def age(folder: Path, seconds: float) -> None:
    """Make the folder and everything in it last written ``seconds`` ago."""
    when = time.time() - seconds
    for path in [*folder.iterdir(), folder]:
        os.utime(path, (when, when), follow_symlinks=False)


# --- through the file system --------------------------------------------------------------------


def test_a_folder_whose_owner_died_is_removed_and_a_live_owners_stays(tmp_path: Path) -> None:
    pid, start = dead_pid()
    dead = db_folder(tmp_path, {"pid": pid, "start": start, **this_host()})
    alive = db_folder(tmp_path, {"pid": os.getpid(), "start": start_time(os.getpid()), **this_host()})

    removed = sweep_stale_db_folders(tmp_path)

    assert removed == [dead] and not dead.exists()
    assert (alive / "candidate.sqlite3").exists()


def test_a_folder_stamped_by_write_owner_stays_while_its_owner_lives(tmp_path: Path) -> None:
    folder = db_folder(tmp_path, None)
    db_folders.write_owner(folder)

    record = json.loads((folder / "owner").read_text())
    assert record == {"pid": os.getpid(), "start": start_time(os.getpid()), **this_host()}
    assert sweep_stale_db_folders(tmp_path) == [] and folder.exists()


def test_a_live_pid_with_another_start_time_is_not_the_owner(tmp_path: Path) -> None:
    # The owner's pid was given again to a process started later (here: this very test process).
    reused = db_folder(tmp_path, {"pid": os.getpid(), "start": start_time(os.getpid()) - 1, **this_host()})
    with running_sleep() as sleeper:
        reused_by_sleep = db_folder(tmp_path, {"pid": sleeper.pid, "start": start_time(sleeper.pid) + 7, **this_host()})
        owned_by_sleep = db_folder(tmp_path, {"pid": sleeper.pid, "start": start_time(sleeper.pid), **this_host()})

        removed = sweep_stale_db_folders(tmp_path)

    assert sorted(removed) == sorted([reused, reused_by_sleep])
    assert not reused.exists() and not reused_by_sleep.exists() and owned_by_sleep.exists()


def test_a_folder_of_an_earlier_boot_is_removed_though_its_pid_and_start_match(tmp_path: Path) -> None:
    host = {**this_host(), "boot": "00000000-0000-0000-0000-000000000000"}
    folder = db_folder(tmp_path, {"pid": os.getpid(), "start": start_time(os.getpid()), **host})

    assert sweep_stale_db_folders(tmp_path) == [folder]


def test_a_symlink_named_like_a_folder_is_neither_followed_nor_removed(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "tmp", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    pid, start = dead_pid()
    target = db_folder(elsewhere, {"pid": pid, "start": start, **this_host()})  # stale, if it were ours
    age(target, 2 * DAY)
    link = root / f"{DB_FOLDER_PREFIX}link"
    link.symlink_to(target, target_is_directory=True)

    assert sweep_stale_db_folders(root) == []
    assert link.is_symlink() and (target / "owner").exists() and (target / "candidate.sqlite3").exists()


def test_a_file_named_like_a_folder_is_left(tmp_path: Path) -> None:
    file = tmp_path / f"{DB_FOLDER_PREFIX}file"
    file.write_text("not ours")
    os.utime(file, (time.time() - 2 * DAY,) * 2)

    assert sweep_stale_db_folders(tmp_path) == [] and file.read_text() == "not ours"


def test_other_names_are_never_looked_at(tmp_path: Path) -> None:
    pid, start = dead_pid()
    other = Path(tempfile.mkdtemp(prefix="stability-demo-run-", dir=tmp_path))
    (other / "owner").write_text(json.dumps({"pid": pid, "start": start, **this_host()}))

    assert sweep_stale_db_folders(tmp_path) == [] and (other / "owner").exists()


def test_a_folder_without_an_owner_file_goes_only_after_a_day_without_writes(tmp_path: Path) -> None:
    young = db_folder(tmp_path, None, "young-")  # e.g. made this instant, not yet stamped
    old = db_folder(tmp_path, None, "old-")  # e.g. an older version's killed run
    age(old, 2 * DAY)
    busy = db_folder(tmp_path, None, "busy-")  # an older version's run, its database still written
    age(busy, 2 * DAY)
    (busy / "candidate.sqlite3-wal").write_bytes(b"x")  # SQLite's WAL: the folder's own mtime moves too
    os.utime(busy, (time.time() - 2 * DAY,) * 2)  # ... so only the file's mtime tells
    garbled = db_folder(tmp_path, None, "garbled-")
    (garbled / "owner").write_text("{not json")

    assert sweep_stale_db_folders(tmp_path) == [old]
    assert young.exists() and busy.exists() and garbled.exists()


def test_a_pid_of_another_pid_namespace_is_not_judged(tmp_path: Path) -> None:
    # A container sharing this temp dir: its pids mean nothing here, so only the age rule applies.
    pid, start = dead_pid()
    foreign = {**this_host(), "pidns": "pid:[1]"}
    young = db_folder(tmp_path, {"pid": pid, "start": start, **foreign}, "young-")
    old = db_folder(tmp_path, {"pid": pid, "start": start, **foreign}, "old-")
    age(old, 2 * DAY)

    assert sweep_stale_db_folders(tmp_path) == [old] and young.exists()


def test_without_proc_nothing_is_stamped_or_swept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pid, start = dead_pid()
    dead = db_folder(tmp_path, {"pid": pid, "start": start, **this_host()})
    fresh = db_folder(tmp_path, None)
    monkeypatch.setattr(db_folders, "_PROC", tmp_path / "no-proc")

    db_folders.write_owner(fresh)

    assert sweep_stale_db_folders(tmp_path) == [] and dead.exists()
    assert sorted(p.name for p in fresh.iterdir()) == ["candidate.sqlite3"]


# --- demo_services() ----------------------------------------------------------------------------


def demo_children() -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process().children(recursive=True)
        if "stability_lib.demo" in " ".join(child.cmdline())
    ]


def test_demo_services_sweeps_first_and_stamps_its_own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    pid, start = dead_pid()
    dead = db_folder(tmp_path, {"pid": pid, "start": start, **this_host()})

    with demo_services() as services:
        assert not dead.exists()
        folder = Path(services.env["DEMO_CANDIDATE_DB"]).parent
        assert folder.parent == tmp_path and folder.name.startswith(DB_FOLDER_PREFIX)
        owner = json.loads((folder / "owner").read_text())
        assert (owner["pid"], owner["start"]) == (os.getpid(), start_time(os.getpid()))
        assert sweep_stale_db_folders(tmp_path) == []  # another launcher's sweep now: ours stays
        assert len(demo_children()) == 2

    assert not folder.exists() and demo_children() == []


# A launcher that makes its folder, says where, and waits to be killed (no cleanup of ours runs).
LAUNCHER = """
import sys, time
from pathlib import Path
from stability_lib.demo.launch import demo_services
targets = demo_services()  # kept: never left (a collected generator would clean up)
services = targets.__enter__()
print(Path(services.env["DEMO_CANDIDATE_DB"]).parent, flush=True)
time.sleep(600)
"""


def test_the_folder_of_a_sigkilled_launcher_is_removed_by_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert launcher.stdout is not None
        folder = Path(launcher.stdout.readline().strip())
        services = psutil.Process(launcher.pid).children()
    finally:
        launcher.kill()
        launcher.wait()
    for service in services:  # they stop by themselves once orphaned (test_demo_orphans): no need to wait
        service.terminate()
    psutil.wait_procs(services, timeout=30)

    assert folder.parent == tmp_path and folder.is_dir()  # left behind: nothing of ours ran

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with demo_services() as next_start:
        assert not folder.exists()
        assert [p.name for p in tmp_path.iterdir()] == [Path(next_start.env["DEMO_CANDIDATE_DB"]).parent.name]
    assert demo_children() == []


# --- the decision alone -------------------------------------------------------------------------

NOW = 10 * DAY


def entry(name: str, owner: FolderOwner | None = None, **kw: object) -> FolderEntry:
    fields: dict = {"real_dir": True, "uid": 1000, "last_write": NOW, "owner": owner, **kw}
    return FolderEntry(DB_FOLDER_PREFIX + name, **fields)


def test_the_decision_table() -> None:
    def owner(pid: int, start: int = 5, boot: str | None = "b", pidns: str | None = "pid:[9]") -> FolderOwner:
        return FolderOwner(pid, start, boot, pidns)

    entries = [
        entry("alive", owner(1)),
        entry("no-such-pid", owner(2)),
        entry("reused-pid", owner(3)),
        entry("unreadable-start", owner(4)),  # the pid exists, its start time could not be read
        entry("earlier-boot", owner(1, boot="a")),
        entry("no-boot-recorded", owner(2, boot=None)),  # the pid is enough
        entry("other-ns", owner(2, pidns="pid:[8]")),
        entry("other-ns-idle", owner(2, pidns="pid:[8]"), last_write=NOW - 2 * DAY),
        entry("unowned"),
        entry("unowned-idle", last_write=NOW - 2 * DAY),
        entry("unowned-almost-idle", last_write=NOW - DAY + 60),
        entry("future-mtime", last_write=NOW + DAY),  # a clock set back: not idle
        entry("symlink", owner(2), real_dir=False, last_write=0.0),
        entry("someone-elses", owner(2), uid=0, last_write=0.0),
        FolderEntry("stability-interactive-x", True, 1000, 0.0, owner(2)),
    ]
    live = {1: 5, 3: 6, 4: None}

    stale = stale_db_folders(entries, live, uid=1000, boot="b", pidns="pid:[9]", now=NOW)

    assert [name.removeprefix(DB_FOLDER_PREFIX) for name in stale] == [
        "no-such-pid",
        "reused-pid",
        "earlier-boot",
        "no-boot-recorded",
        "other-ns-idle",
        "unowned-idle",
    ]


@contextmanager
def running_sleep() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "600"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()
