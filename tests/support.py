"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parents[1]
STABILITY = [sys.executable, "-m", "stability_lib.cli"]


def run_cli(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 600):
    """Run the real `stability` command in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*STABILITY, *args], capture_output=True, text=True, env=full_env, cwd=cwd or REPO, timeout=timeout
    )


def pdf_text(path: Path) -> str:
    assert shutil.which("pdftotext"), "pdftotext (poppler-utils) is needed: make test installs it"
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout


def interrupted_as_in_a_kernel(
    cell: Callable[[], object],
    ctrl_c: Callable[[int, FrameType | None], None],
    on_the_way_out: Callable[[], None] = lambda: None,
) -> None:
    """Run ``cell`` while an event loop runs in the main thread, as a Jupyter cell does (the probes then run on a
    worker thread, ``run_sync``), with ``ctrl_c`` as the SIGINT handler; fails unless the cell ended in a
    KeyboardInterrupt. On the way out ``on_the_way_out`` runs, then the worker threads are waited for."""
    import pytest

    async def in_a_kernel() -> None:
        cell()

    threads_before = set(threading.enumerate())
    previous = signal.signal(signal.SIGINT, ctrl_c)
    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(in_a_kernel())
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(task)
        assert isinstance(task.exception(), KeyboardInterrupt)
    finally:
        signal.signal(signal.SIGINT, previous)
        on_the_way_out()
        for thread in set(threading.enumerate()) - threads_before:
            if thread.name == "stability-run-sync":
                thread.join(30)
        loop.close()


class QuietHandler(BaseHTTPRequestHandler):
    """A test server's request handler: logs nothing; ``reply`` sends a status, headers and a body."""

    def reply(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server on 127.0.0.1 (a free port) with ``handler``; yields its base URL, stops on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
