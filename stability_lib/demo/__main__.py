"""``python -m stability_lib.demo``: run the sample service until SIGTERM/SIGINT.

Prints its URL (one line, flushed) once it listens. Faults: the variant's, then
``STABILITY_DEMO_FAULTS`` (items separated by ``;``), then each ``--fault``. With
``--parent-pid`` (its launcher's pid) it also shuts down once that process is gone.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence

from ..core.errors import StabilityError
from ._faults import FAULTS_ENV_VAR, VARIANTS, split_fault_text
from ._server import DemoInstance, prepare_instance

_PARENT_POLL_S = 0.5


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stability_lib.demo",
        description="Run the stability-proof sample service on 127.0.0.1.",
    )
    parser.add_argument("--variant", default="candidate", choices=sorted(VARIANTS))
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument(
        "--fd",
        type=int,
        default=None,
        help="serve on this inherited listening socket instead of binding --port (the launcher "
        "binds it, so it knows the URL before the service has started)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="e.g. ws_1011_rate=0.05, slow=login:50, api_break=field_removed, auth_bypass "
        f"(repeatable; applied after ${FAULTS_ENV_VAR})",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault generator")
    parser.add_argument("--db", default=None, help="SQLite file (default: a temporary one)")
    parser.add_argument(
        "--parent-pid",
        type=int,
        default=None,
        metavar="PID",
        help="shut down, as on SIGTERM, once this process (the launcher) is no longer our parent: a "
        "launcher killed without stopping us (SIGKILL) leaves no service behind",
    )
    return parser


def stop_when_orphaned(parent_pid: int, instance: DemoInstance) -> None:
    """Watch, in a daemon thread, that ``parent_pid`` is still our parent; once it is not (it died
    and we were re-parented), shut down as SIGTERM does: uvicorn's handler only sets
    ``should_exit``, and the same graceful shutdown and cleanup follow. Polled, not
    PR_SET_PDEATHSIG: that fires when the *thread* that started us ends, and it is Linux only."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(_PARENT_POLL_S)
        instance.server.should_exit = True

    threading.Thread(target=watch, name="stability-demo-parent-watch", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        specs = [*split_fault_text(os.environ.get(FAULTS_ENV_VAR, "")), *args.fault]
        sock = socket.socket(fileno=args.fd) if args.fd is not None else None  # family and proto read from the fd
        instance = prepare_instance(
            variant=args.variant, faults=specs, port=args.port, seed=args.seed, db_path=args.db, sock=sock
        )
    except StabilityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # uvicorn handles SIGTERM/SIGINT in the main thread, shuts down gracefully,
    # then re-raises the signal against the handler it found: make that a no-op
    # so the process exits 0 after cleanup instead of dying by the signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: None)
    if args.parent_pid is not None:
        stop_when_orphaned(args.parent_pid, instance)
    try:
        try:
            print(instance.url, flush=True)
        except BrokenPipeError:  # the launcher died before it read our URL: nobody to serve
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            return 0
        instance.server.run(sockets=[instance.sock])
    finally:
        instance.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
