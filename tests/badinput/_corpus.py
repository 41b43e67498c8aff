"""Shared machinery of the bad-input corpus (issue 11).

Every case states the exit code a bad input must give and is checked the same way:
the code itself (never 0 for an input that must not pass), one line on stderr and no
traceback when the run could not be made (exit 3), a generous time bound, a memory bound
where an input could blow up, and no process left behind: everything a case starts carries
``STABILITY_TEST_MARKER=<uuid>`` in its environment and /proc is scanned for it afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
STABILITY = [sys.executable, "-m", "stability_lib.cli"]
MARKER_NAME = "STABILITY_TEST_MARKER"
EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_COULD_NOT_RUN = 1, 2, 3
T = TypeVar("T")


def new_marker() -> str:
    return f"badinput-{uuid.uuid4().hex}"


def marked_processes(marker: str) -> list[int]:
    """Pids whose environment holds ``marker`` (our own process excluded)."""
    needle = f"{MARKER_NAME}={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:
            continue  # gone, or not ours to read
        if needle in environ.split(b"\0"):
            try:  # a zombie waiting for its parent holds nothing
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    if fh.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                        continue
            except OSError:
                continue
            found.append(int(entry))
    return found


def leftovers(marker: str, grace_s: float = 5.0) -> list[str]:
    """Processes still carrying ``marker`` after ``grace_s``; each is killed so one case cannot spoil the next."""
    deadline = time.monotonic() + grace_s
    pids = marked_processes(marker)
    while pids and time.monotonic() < deadline:
        time.sleep(0.1)
        pids = marked_processes(marker)
    names = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            names.append(f"{pid} {cmdline[:120]}")
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return names


@dataclass
class Outcome:
    """What one invocation of the real command did."""

    args: Sequence[str]
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    max_rss_kb: int
    timed_out: bool = False
    left_behind: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"stability {' '.join(str(a) for a in self.args)[:300]} -> exit {self.returncode}"
            f"{' (TIMED OUT)' if self.timed_out else ''} in {self.seconds:.1f} s, peak RSS {self.max_rss_kb // 1024} MB\n"
            f"--- stderr ---\n{self.stderr[-3000:]}\n--- stdout ---\n{self.stdout[-1500:]}"
        )


def run_stability(args: Sequence[str], **kwargs: Any) -> Outcome:
    """Run the real ``stability`` command."""
    return run_command([*STABILITY, *map(str, args)], shown_args=args, **kwargs)


def run_python(code: str, **kwargs: Any) -> Outcome:
    """Run ``code`` in a fresh interpreter (memory and time measured like a command's)."""
    return run_command([sys.executable, "-c", code], shown_args=["<python>"], **kwargs)


def run_command(
    argv: Sequence[str],
    *,
    shown_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 180,
    memory_cap_bytes: int | None = None,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> Outcome:
    """Run ``argv`` in its own session; peak RSS comes from wait4 on this very child."""
    marker = new_marker()
    full_env = {**os.environ, **(env or {}), MARKER_NAME: marker}

    def limit_memory() -> None:
        if memory_cap_bytes:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (memory_cap_bytes, memory_cap_bytes))

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=full_env,
            cwd=cwd or REPO,
            start_new_session=True,
            preexec_fn=limit_memory if memory_cap_bytes else None,
        )
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout_s, kill)
        timer.daemon = True
        timer.start()
        try:
            if on_start is not None:
                on_start(proc)
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        outcome = Outcome(
            list(shown_args),
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            seconds,
            usage.ru_maxrss,
            timed_out.is_set(),
        )
    outcome.left_behind = leftovers(marker)
    return outcome


def stderr_lines(text: str) -> list[str]:
    # Kernels print this on every start (field notes): not ours, and not an error.
    harmless = ("Kernel is running over TCP without encryption",)
    return [line for line in text.splitlines() if line.strip() and not any(h in line for h in harmless)]


def assert_bad_input_outcome(outcome: Outcome, expected: int | set[int], *, max_rss_mb: int | None = None) -> None:
    """The checks every case of the corpus makes."""
    allowed = {expected} if isinstance(expected, int) else expected
    assert not outcome.timed_out, "no answer within the time bound\n" + outcome.describe()
    assert outcome.returncode != 0, "a bad input passed (exit 0)\n" + outcome.describe()
    assert outcome.returncode in allowed, f"expected exit {sorted(allowed)}\n" + outcome.describe()
    assert "Traceback" not in outcome.stderr + outcome.stdout, "a traceback instead of a finding\n" + outcome.describe()
    if outcome.returncode == EXIT_COULD_NOT_RUN:
        lines = stderr_lines(outcome.stderr)
        assert len(lines) == 1, (
            f"exit 3 must say why in exactly one stderr line, got {len(lines)}\n" + outcome.describe()
        )
    if max_rss_mb is not None:
        assert outcome.max_rss_kb < max_rss_mb * 1024, f"peak RSS over {max_rss_mb} MB\n" + outcome.describe()
    assert not outcome.left_behind, f"processes left behind: {outcome.left_behind}\n" + outcome.describe()


@contextmanager
def marker_in_environment() -> Iterator[str]:
    """For in-process cases: everything started meanwhile inherits the marker, checked at the end."""
    marker = new_marker()
    old = os.environ.get(MARKER_NAME)
    os.environ[MARKER_NAME] = marker
    try:
        yield marker
    finally:
        if old is None:
            os.environ.pop(MARKER_NAME, None)
        else:
            os.environ[MARKER_NAME] = old
    left = leftovers(marker)
    assert not left, f"processes left behind: {left}"


def run_bounded(fn: Callable[[], T], wait_s: float) -> T:
    """Run ``fn`` in a daemon thread; fail the case if it is still running after ``wait_s``."""
    box: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            error.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(wait_s)
    assert not thread.is_alive(), f"still running after {wait_s} s: unbounded"
    if error:
        raise error[0]
    return box[0]


class Zygote:
    """A pre-imported ``stability`` (see _zygote.py) that forks one real process per case."""

    def __init__(self) -> None:
        self.marker = new_marker()
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("_zygote.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, MARKER_NAME: self.marker, "PYTHONPATH": str(REPO)},
            cwd=REPO,
            text=True,
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline()
        assert ready.strip() == '{"ready": true}', f"the zygote did not start: {ready!r}"

    def run(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout_s: float = 180,
        memory_cap_bytes: int | None = None,
    ) -> Outcome:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        marker = new_marker()
        with tempfile.TemporaryDirectory() as scratch:
            out, err = Path(scratch) / "out", Path(scratch) / "err"
            request = {
                "argv": [str(a) for a in args],
                "env": {**os.environ, **(env or {}), MARKER_NAME: marker},
                "cwd": str(cwd or REPO),
                "stdout": str(out),
                "stderr": str(err),
                "timeout_s": timeout_s,
                "memory_cap_bytes": memory_cap_bytes,
            }
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            answer = json.loads(self.proc.stdout.readline())
            outcome = Outcome(
                list(args),
                answer["returncode"],
                out.read_text(errors="replace"),
                err.read_text(errors="replace"),
                answer["seconds"],
                answer["max_rss_kb"],
                answer["timed_out"],
            )
        outcome.left_behind = leftovers(marker)
        return outcome

    def close(self) -> list[str]:
        """Stop the zygote; returns anything of it left running."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return leftovers(self.marker)
