"""PDF printing by a headless Chromium driven over its DevTools pipe.

``--print-to-pdf`` starts a browser for every page: about a second on this machine before the page
is even read. A ``PdfPrinter`` starts the browser first (``start_pdf_printer()``, which returns at once)
so that its start-up overlaps other work, e.g. the report notebook, and prints when asked:
navigate, wait for the load event of the document that navigation started (the lifecycle event "load"
of the frame and loader ``Page.navigate`` returned: a late load of the first ``about:blank``, or of
the page printed before, would print a page still loading), ``Page.printToPDF`` with the parameters
``--print-to-pdf --no-pdf-header-footer`` uses (same pages, same bytes). The browser reads commands
on its fd 3 and writes replies on fd 4 (``--remote-debugging-pipe``): no port, nothing else on the
machine can drive it. The flags that keep it off the network are those of the one-shot command.
``close()`` asks the browser to quit (it reaps its own renderers: killed, they would stay as
zombies), kills its whole process group if it has not within ``_QUIT_GRACE_S``, and in any case kills
what is left of that group (a helper that outlived the browser); a failed print and a printer never
closed are killed at once (the latter when the interpreter exits).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any

from ..core.errors import ExportError

__all__ = ["PdfPrinter", "start_pdf_printer", "CHROMIUM_FLAGS"]

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    # Without these Chromium tries to reach the network at start.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
# What --print-to-pdf --no-pdf-header-footer asks for (the printed files are byte for byte the same).
_PRINT_PARAMS = {"printBackground": True, "preferCSSPageSize": True, "displayHeaderFooter": False}
_MAX_MESSAGE_BYTES = 512 * 1024 * 1024  # one reply carries the whole PDF, base64
_QUIT_GRACE_S = 3.0  # Browser.close takes about 0.15 s here
# Puts the pipe's ends on the fds Chromium reads (3) and writes (4), then becomes Chromium: the
# subprocess module can pass fds but not renumber them, and a preexec_fn is unsafe with threads.
_ON_FDS_3_AND_4 = (
    "import os, sys\n"
    "commands, replies = int(sys.argv[1]), int(sys.argv[2])\n"
    "os.dup2(commands, 3)\n"
    "os.dup2(replies, 4)\n"
    "os.closerange(5, 65536)\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)


def _high_fd(fd: int) -> int:
    """The fd moved above 4, so that it is not one of the two it will be copied onto."""
    import fcntl

    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the browser's whole process group, whether or not the browser (its leader) still runs:
    a renderer or helper that outlived it is still in the group. Then reap the browser."""
    try:
        # The browser, its zygote and renderers. Once the leader is reaped, its pid still names the
        # group while any member runs (the kernel does not reuse a pid that is a live group's id).
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # nothing of the group runs any more
    except PermissionError:
        if proc.poll() is None:
            proc.kill()
    proc.wait()


class PdfPrinter:
    """One headless Chromium, started at construction; ``print_pdf`` prints a local HTML file."""

    def __init__(self, chromium: str) -> None:
        self._profile = tempfile.mkdtemp(prefix="stability-chromium-")
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (open while the browser runs; close() closes it)
        commands_read, self._commands = map(_high_fd, os.pipe())
        self._replies, replies_write = map(_high_fd, os.pipe())
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _ON_FDS_3_AND_4, str(commands_read), str(replies_write)]
                + [chromium, *CHROMIUM_FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self._profile}"]
                + ["about:blank"],
                pass_fds=(commands_read, replies_write),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                start_new_session=True,  # its own group: close() and a timeout take every process
            )
        except OSError as exc:
            self._cleanup_files()
            raise ExportError(f"Chromium could not be started: {exc}") from None
        finally:
            os.close(commands_read)
            os.close(replies_write)
        self._finalizer = weakref.finalize(self, _kill_group, self._proc)
        self._buffer = b""
        self._next_id = 0
        self._session: str | None = None
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> PdfPrinter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._proc.poll() is None and self._commands >= 0:
            with contextlib.suppress(OSError):
                os.write(self._commands, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=_QUIT_GRACE_S)
        self._kill()

    def _kill(self) -> None:
        self._finalizer()
        self._cleanup_files()

    def _cleanup_files(self) -> None:
        for fd in (getattr(self, "_commands", -1), getattr(self, "_replies", -1)):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._commands = self._replies = -1
        self._stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def print_pdf(self, html_path: str | Path, pdf_path: str | Path, *, timeout_s: float = 120) -> Path:
        """Print ``html_path`` to ``pdf_path`` within ``timeout_s`` (the whole job); on a failure the
        browser is killed and ExportError says why."""
        html_path, pdf_path = Path(html_path).resolve(), Path(pdf_path).resolve()
        pdf_path.unlink(missing_ok=True)  # a stale PDF must not pass for this one
        deadline = time.monotonic() + timeout_s
        try:
            if self._session is None:
                target = self._call("Target.createTarget", {"url": "about:blank"}, deadline)["targetId"]
                self._session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True}, deadline)[
                    "sessionId"
                ]
                self._call("Page.enable", {}, deadline)
                # Page.loadEventFired names no document: the lifecycle events name frame and loader.
                self._call("Page.setLifecycleEventsEnabled", {"enabled": True}, deadline)
            self._events.clear()
            navigation = self._call("Page.navigate", {"url": html_path.as_uri()}, deadline)
            if navigation.get("errorText"):  # e.g. no such file: never print the browser's error page
                raise ValueError(f"{html_path.name}: {navigation['errorText']}")
            if not navigation.get("loaderId"):  # a same-document navigation: nothing to wait for
                raise ValueError(f"{html_path.name}: the navigation loaded no new document")
            self._wait_for_load(navigation["frameId"], navigation["loaderId"], deadline)
            data = self._call("Page.printToPDF", dict(_PRINT_PARAMS), deadline)["data"]
        except TimeoutError:
            self._kill()
            raise ExportError(f"Chromium did not print the PDF within {timeout_s:.0f} s") from None
        except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
            reason = self._failure(exc)
            self._kill()
            raise ExportError(f"Chromium failed to print the PDF: {reason}") from None
        pdf = base64.b64decode(data)
        if not pdf:
            raise ExportError("Chromium printed an empty PDF")
        pdf_path.write_bytes(pdf)
        return pdf_path

    def _failure(self, exc: BaseException) -> str:
        code = self._proc.poll()
        if code is None:  # the browser runs: what it answered is the reason, not its log
            return f"{type(exc).__name__}: {exc}"
        tail = ""
        with contextlib.suppress(OSError, ValueError):
            self._stderr.seek(0)
            tail = " | ".join(self._stderr.read().decode("utf-8", "replace").strip().splitlines()[-3:])
        return f"exit {code}: {tail}" if tail else f"exit {code}"

    def _call(self, method: str, params: dict[str, Any], deadline: float) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session is not None and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise ValueError(f"{method}: {reply['error'].get('message', reply['error'])}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self._events.append(reply)

    def _wait_for_load(self, frame: str, loader: str, deadline: float) -> None:
        """Until the document ``loader`` loads in ``frame``: only its own load event counts, not a late
        one of the document it replaced (the first ``about:blank``, the page printed before)."""

        def is_its_load(event: dict[str, Any]) -> bool:
            params = event.get("params")
            return (
                event.get("method") == "Page.lifecycleEvent"
                and event.get("sessionId") == self._session
                and isinstance(params, dict)
                and params.get("name") == "load"
                and params.get("frameId") == frame
                and params.get("loaderId") == loader
            )

        while not any(is_its_load(e) for e in self._events):
            self._events.append(self._read(deadline))

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._replies], [], [], remaining)[0]:
                raise TimeoutError
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise EOFError("Chromium closed its DevTools pipe")
            self._buffer += chunk
            if len(self._buffer) > _MAX_MESSAGE_BYTES:
                raise ValueError("a DevTools message over the size cap")
        message, self._buffer = self._buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(message)
        return parsed


def start_pdf_printer() -> PdfPrinter:
    """A printer whose browser starts now (this returns at once). Raises ExportError without Chromium."""
    from .export import CHROMIUM_INSTALL_HINT, find_chromium

    chromium = find_chromium()
    if chromium is None:
        raise ExportError(f"Chromium not found; install it with: {CHROMIUM_INSTALL_HINT}")
    return PdfPrinter(chromium)
