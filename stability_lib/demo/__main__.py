"""``python -m stability_lib.demo``: run the sample service until SIGTERM/SIGINT.

Prints its URL (one line, flushed) once it listens. Faults: the variant's, then
``STABILITY_DEMO_FAULTS`` (items separated by ``;``), then each ``--fault``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from collections.abc import Sequence

from ..core.errors import StabilityError
from ._faults import FAULTS_ENV_VAR, VARIANTS, split_fault_text
from ._server import prepare_instance


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
    return parser


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
    print(instance.url, flush=True)
    try:
        instance.server.run(sockets=[instance.sock])
    finally:
        instance.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
