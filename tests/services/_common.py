"""What the two real-service apps share: tokens, fault switches, the listening socket, a resource store.

Test scaffolding, not part of ``stability_lib``. The protocols themselves come from
third-party libraries (strawberry-graphql, jsonrpcserver); this file only holds the few
lines of app logic both services need.

Tokens: ``REALSVC_TOKENS="alice=<token>,bob=<token>"`` (the variable's name can be changed
with ``--tokens-env``). Each token belongs to one user; a request without a known token is
rejected. Faults: ``--fault`` / ``REALSVC_FAULT`` (none | changed-content | dead-by-message)
engage after ``--fault-after`` / ``REALSVC_FAULT_AFTER`` successful core operations (0: at once),
so a soak can start healthy and go wrong part-way through.
"""

from __future__ import annotations

import argparse
import enum
import itertools
import os
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

TOKENS_ENV_DEFAULT = "REALSVC_TOKENS"
FAULT_ENV = "REALSVC_FAULT"
FAULT_AFTER_ENV = "REALSVC_FAULT_AFTER"


class Fault(str, enum.Enum):
    NONE = "none"
    CHANGED_CONTENT = "changed-content"  # replies keep their shape but lose their data
    DEAD_BY_MESSAGE = "dead-by-message"  # the backend says it died and stays silent; the socket stays open


def parse_tokens(text: str) -> dict[str, str]:
    """``"alice=t1,bob=t2"`` -> ``{"t1": "alice", "t2": "bob"}`` (token -> user)."""
    users: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        user, sep, token = item.partition("=")
        if not sep or not user.strip() or not token.strip():
            raise ValueError("tokens must be written user=token, separated by commas")
        users[token.strip()] = user.strip()
    if not users:
        raise ValueError("no tokens configured")
    return users


@dataclass
class FaultSwitch:
    """Turns a fault on after ``after`` successful core operations (thread-safe counter)."""

    fault: Fault = Fault.NONE
    after: int = 0
    _done: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_success(self) -> None:
        with self._lock:
            self._done += 1

    def active(self, fault: Fault) -> bool:
        with self._lock:
            return self.fault is fault and self._done >= self.after


@dataclass(frozen=True)
class Resource:
    """A server-side "session" a probe opens and must close."""

    id: str
    owner: str
    label: str


class ResourceStore:
    """Per-user sessions. They outlive the connection that opened them: only a delete removes them."""

    def __init__(self) -> None:
        self._items: dict[str, Resource] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def open(self, owner: str, label: str) -> Resource:
        with self._lock:
            resource = Resource(f"s{next(self._ids)}", owner, label)
            self._items[resource.id] = resource
            return resource

    def get(self, owner: str, resource_id: str) -> Resource | None:
        with self._lock:
            found = self._items.get(resource_id)
        # Another user's session does not exist for this user.
        return found if found is not None and found.owner == owner else None

    def close(self, owner: str, resource_id: str) -> bool:
        with self._lock:
            found = self._items.get(resource_id)
            if found is None or found.owner != owner:
                return False
            del self._items[resource_id]
            return True

    def owned_by(self, owner: str) -> list[Resource]:
        with self._lock:
            return [r for r in self._items.values() if r.owner == owner]

    def counts(self) -> dict[str, object]:
        with self._lock:
            by_user: dict[str, int] = {}
            for r in self._items.values():
                by_user[r.owner] = by_user.get(r.owner, 0) + 1
            return {"sessions": len(self._items), "by_user": by_user}


@dataclass(frozen=True)
class ServiceOptions:
    port: int
    tokens: Mapping[str, str]  # token -> user
    faults: FaultSwitch


def parse_options(prog: str, description: str, argv: Sequence[str] | None = None) -> ServiceOptions:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument(
        "--tokens-env",
        default=TOKENS_ENV_DEFAULT,
        help=f"environment variable holding user=token pairs (default {TOKENS_ENV_DEFAULT})",
    )
    parser.add_argument(
        "--fault",
        choices=[f.value for f in Fault],
        default=os.environ.get(FAULT_ENV, "none"),
        help=f"fault to inject (default ${FAULT_ENV} or none)",
    )
    parser.add_argument(
        "--fault-after",
        type=int,
        default=int(os.environ.get(FAULT_AFTER_ENV, "0")),
        help="successful core operations before the fault engages (default 0)",
    )
    args = parser.parse_args(argv)
    try:
        tokens = parse_tokens(os.environ.get(args.tokens_env, ""))
    except ValueError as exc:
        parser.error(f"${args.tokens_env}: {exc}")
    return ServiceOptions(args.port, tokens, FaultSwitch(Fault(args.fault), max(0, args.fault_after)))


def bind_loopback(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1. proto=IPPROTO_TCP so asyncio sets TCP_NODELAY (field notes)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.setblocking(False)
    return sock
