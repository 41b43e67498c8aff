"""The sample services' database folders: stamped with their owner, swept once the owner is gone.

``demo_services()`` keeps the services' SQLite files in a temporary folder that a SIGKILLed launcher never
removes. Each folder records its owner (pid + start time, so a reused pid is not taken for it); the next
``demo_services()`` removes the folders whose owner is gone. The decision (``stale_db_folders``) does no I/O.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DB_FOLDER_PREFIX",
    "FolderEntry",
    "FolderOwner",
    "stale_db_folders",
    "sweep_stale_db_folders",
    "write_owner",
]


DB_FOLDER_PREFIX = "stability-demo-db-"
_OWNER_FILE = "owner"
# A folder whose owner cannot be judged (no owner file: an older version's run, or one made this
# instant and not yet stamped; a pid of another pid namespace) is removed only after this long
# without any write to it or in it: no demo run sits that long with its databases untouched.
UNOWNED_MAX_IDLE_S = 24 * 3600.0
_PROC = Path("/proc")  # Linux only: where there is none, no folder is stamped or swept


@dataclass(frozen=True)
class FolderOwner:
    pid: int
    start: int  # clock ticks after boot (/proc/<pid>/stat field 22): tells a reused pid apart
    boot: str | None  # /proc/sys/kernel/random/boot_id: a pid of an earlier boot is gone
    pidns: str | None  # /proc/self/ns/pid: a pid of another namespace (a container) means nothing here


@dataclass(frozen=True)
class FolderEntry:
    """What the sweep knows of one ``stability-demo-db-*`` entry of the temp dir."""

    name: str
    real_dir: bool  # a directory, not a symlink to one
    uid: int
    last_write: float  # newest mtime of the folder and its entries (SQLite's WAL writes touch only its file)
    owner: FolderOwner | None  # None: no owner file, or not one we can read


def stale_db_folders(
    entries: Sequence[FolderEntry],
    live: Mapping[int, int | None],
    *,
    uid: int,
    boot: str | None,
    pidns: str | None,
    now: float,
    max_idle_s: float = UNOWNED_MAX_IDLE_S,
) -> list[str]:
    """The names of the folders to remove. ``live`` maps each recorded pid that exists to its start
    time (None: it exists but its start time could not be read); a pid not in it is not running."""

    def owner_gone(owner: FolderOwner) -> bool | None:  # None: cannot tell
        if owner.boot and boot and owner.boot != boot:
            return True
        if owner.pidns is None or owner.pidns != pidns:
            return None
        if owner.pid not in live:
            return True
        start = live[owner.pid]
        return start is not None and start != owner.start  # an unreadable start may be the owner's

    stale = []
    for entry in entries:
        if not entry.name.startswith(DB_FOLDER_PREFIX) or not entry.real_dir or entry.uid != uid:
            continue  # not a folder we made: never touched
        gone = owner_gone(entry.owner) if entry.owner else None
        if gone or (gone is None and now - entry.last_write > max_idle_s):
            stale.append(entry.name)
    return stale


def _read_start_time(pid: int | str) -> int:
    # Field 22 of /proc/<pid>/stat; the command name (field 2) may hold spaces and parentheses,
    # so count from the last ')'. Fields 3 onwards follow it.
    text = (_PROC / str(pid) / "stat").read_text()
    return int(text[text.rindex(")") + 2 :].split()[19])


def _read_optional(read: Callable[[], str]) -> str | None:
    try:
        return read().strip() or None
    except OSError:
        return None


def _this_host() -> tuple[str | None, str | None]:
    boot = _read_optional((_PROC / "sys/kernel/random/boot_id").read_text)
    return boot, _read_optional(lambda: os.readlink(_PROC / "self/ns/pid"))


def write_owner(folder: Path) -> None:
    """Stamp ``folder`` with this process as its owner (nothing where there is no /proc)."""
    try:
        start = _read_start_time("self")
    except (OSError, ValueError, IndexError):
        return
    boot, pidns = _this_host()
    record = json.dumps({"pid": os.getpid(), "start": start, "boot": boot, "pidns": pidns})
    # Written aside, then renamed: a concurrent sweep sees no owner file (young: kept) or a whole one.
    # A folder left unstamped (disk full) is only swept once idle for a day, like an older version's.
    part = folder / f".{_OWNER_FILE}.part"
    with suppress(OSError):
        part.write_text(record)
        part.replace(folder / _OWNER_FILE)


def _read_owner(folder: Path) -> FolderOwner | None:
    try:
        data = json.loads((folder / _OWNER_FILE).read_text())
        boot, pidns = (data.get(key) for key in ("boot", "pidns"))
        owner = FolderOwner(
            int(data["pid"]),
            int(data["start"]),
            boot if isinstance(boot, str) else None,
            pidns if isinstance(pidns, str) else None,
        )
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # not an owner file of ours
        return None
    return owner if owner.pid > 0 else None


def _entry(path: Path) -> FolderEntry:
    st = path.lstat()
    real_dir = stat.S_ISDIR(st.st_mode)
    last_write, owner = st.st_mtime, None
    if real_dir and st.st_uid == os.getuid():  # only our own folders are read into
        with os.scandir(path) as it:
            for item in it:
                with suppress(OSError):
                    last_write = max(last_write, item.stat(follow_symlinks=False).st_mtime)
        owner = _read_owner(path)
    return FolderEntry(path.name, real_dir, st.st_uid, last_write, owner)


def sweep_stale_db_folders(root: Path | None = None) -> list[Path]:
    """Remove the ``stability-demo-db-*`` folders of ``root`` (the temp dir) left by runs whose
    launcher is gone; return those it removed. Linux only (it reads /proc): elsewhere it does nothing.
    Never raises for a folder: another launcher may be sweeping the same ones at once."""
    if not (_PROC / "self/stat").exists():
        return []
    root = Path(root or tempfile.gettempdir())
    entries = []
    try:
        with os.scandir(root) as it:
            paths = [root / item.name for item in it if item.name.startswith(DB_FOLDER_PREFIX)]
    except OSError:
        return []
    for path in paths:
        with suppress(OSError):  # gone meanwhile, or unreadable: left alone
            entries.append(_entry(path))
    live: dict[int, int | None] = {}
    for owner in {entry.owner for entry in entries if entry.owner}:
        try:
            live[owner.pid] = _read_start_time(owner.pid)
        except FileNotFoundError:
            pass  # no such process
        except (OSError, ValueError, IndexError):
            live[owner.pid] = None  # there, but unreadable: perhaps the owner
    boot, pidns = _this_host()
    removed = []
    for name in stale_db_folders(entries, live, uid=os.getuid(), boot=boot, pidns=pidns, now=time.time()):
        # rmtree never follows a symlink (it refuses one given as the top, and on Linux walks by fd).
        shutil.rmtree(root / name, ignore_errors=True)
        if not os.path.lexists(root / name):
            removed.append(root / name)
    return removed
