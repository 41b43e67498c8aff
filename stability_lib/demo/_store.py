"""SQLite storage of the sample service: users, threads, messages.

One connection per store, guarded by a lock: every call is a short statement,
so serialising them is simpler and safe under concurrent WebSocket sessions
and thread-pool handlers alike.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["Store", "UserRow", "ThreadRow", "MessageRow", "DuplicateUserError"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS threads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id),
    title TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id INTEGER NOT NULL REFERENCES threads(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_threads_user ON threads(user_id);
CREATE INDEX IF NOT EXISTS ix_messages_thread ON messages(thread_id);
"""

# The schema_changed fault: the service still works (SQLite keeps TEXT affinity), but a
# schema diff sees a narrowed column type and a dropped index, as after a careless migration.
_CHANGED_SCHEMA = _SCHEMA.replace("role TEXT NOT NULL CHECK", "role VARCHAR(16) NOT NULL CHECK").replace(
    "CREATE INDEX IF NOT EXISTS ix_messages_thread ON messages(thread_id);\n", ""
)


class DuplicateUserError(Exception):
    """The username is taken (internal: the API turns it into 409)."""


@dataclass(frozen=True)
class UserRow:
    id: int
    username: str
    password_hash: str


@dataclass(frozen=True)
class ThreadRow:
    id: int
    user_id: int
    title: str
    created_at: str


@dataclass(frozen=True)
class MessageRow:
    id: int
    thread_id: int
    user_id: int
    role: str
    content: str
    created_at: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Store:
    """Thread-safe access to one SQLite file."""

    def __init__(self, path: Path, *, changed_schema: bool = False) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: no fsync per commit (a demo needs crash safety, not power-loss safety)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(_CHANGED_SCHEMA if changed_schema else _SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def ping(self) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1").fetchone() == (1,)

    # -- users ---------------------------------------------------------------

    def add_user(self, username: str, password_hash: str) -> UserRow:
        with self._lock:
            try:
                cur = self._conn.execute(
                    "INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?)",
                    (username, password_hash, _now()),
                )
            except sqlite3.IntegrityError:
                raise DuplicateUserError(username) from None
            return UserRow(int(cur.lastrowid or 0), username, password_hash)

    def user_by_name(self, username: str) -> UserRow | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id, username, password_hash FROM users WHERE username = ?", (username,)
            ).fetchone()
        return UserRow(*row) if row else None

    def user_by_id(self, user_id: int) -> UserRow | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id, username, password_hash FROM users WHERE id = ?", (user_id,)
            ).fetchone()
        return UserRow(*row) if row else None

    def first_user(self) -> UserRow | None:
        with self._lock:
            row = self._conn.execute("SELECT id, username, password_hash FROM users ORDER BY id LIMIT 1").fetchone()
        return UserRow(*row) if row else None

    # -- threads -------------------------------------------------------------

    def add_thread(self, user_id: int, title: str) -> ThreadRow:
        created_at = _now()
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO threads (user_id, title, created_at) VALUES (?, ?, ?)",
                (user_id, title, created_at),
            )
        return ThreadRow(int(cur.lastrowid or 0), user_id, title, created_at)

    def threads_of(self, user_id: int, limit: int) -> list[ThreadRow]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, user_id, title, created_at FROM threads WHERE user_id = ? ORDER BY id DESC LIMIT ?",
                (user_id, limit),
            ).fetchall()
        return [ThreadRow(*row) for row in rows]

    def thread_of(self, user_id: int, thread_id: int) -> ThreadRow | None:
        """The thread if it exists *and* belongs to ``user_id``."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id, user_id, title, created_at FROM threads WHERE id = ? AND user_id = ?",
                (thread_id, user_id),
            ).fetchone()
        return ThreadRow(*row) if row else None

    # -- messages ------------------------------------------------------------

    def add_message(self, thread: ThreadRow, role: str, content: str) -> MessageRow:
        created_at = _now()
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO messages (thread_id, user_id, role, content, created_at) VALUES (?, ?, ?, ?, ?)",
                (thread.id, thread.user_id, role, content, created_at),
            )
        return MessageRow(int(cur.lastrowid or 0), thread.id, thread.user_id, role, content, created_at)

    def messages_of(self, thread: ThreadRow, limit: int = 500) -> list[MessageRow]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, thread_id, user_id, role, content, created_at FROM messages "
                "WHERE thread_id = ? AND user_id = ? ORDER BY id LIMIT ?",
                (thread.id, thread.user_id, limit),
            ).fetchall()
        return [MessageRow(*row) for row in rows]

    def latest_message_not_of(self, user_id: int) -> MessageRow | None:
        """Most recent user message written by someone else (used by the leak fault only)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id, thread_id, user_id, role, content, created_at FROM messages "
                "WHERE user_id != ? AND role = 'user' ORDER BY id DESC LIMIT 1",
                (user_id,),
            ).fetchone()
        return MessageRow(*row) if row else None
