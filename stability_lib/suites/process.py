"""Running one category's command (I/O).

In its own session with a marker in its environment; a capped log and the output tail; the
JUnit/Cobertura files it wrote copied (capped, never deleting anything).
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .config import TARGET_URL_ENV, CategoryConfig, CategoryRun, build_command
from .coverage import MAX_COVERAGE_BYTES
from .junit import MAX_JUNIT_BYTES
from .process_tree import (
    MARK_ENV,
    CategoriesStopped,
    CommandsInFlight,
    _group_alive,
    _stop,
    _stop_group,
    _stop_marked,
)

__all__ = [
    "OUTPUT_TAIL_LINES",
    "OUTPUT_TAIL_BYTES",
    "LOG_CAP_BYTES",
    "run_category",
]


OUTPUT_TAIL_LINES = 50


OUTPUT_TAIL_BYTES = 16 * 1024


LOG_CAP_BYTES = 5 * 1024 * 1024  # the full log kept as evidence, up to this size


_REDACTED = "[redacted]"


_MIN_SECRET_LEN = 4  # shorter env values ("1", "on") would redact half the output


def _redactor(secrets: Iterable[str]) -> Callable[[str], str]:
    values = sorted({s for s in secrets if len(s) >= _MIN_SECRET_LEN}, key=len, reverse=True)

    def redact(text: str) -> str:
        for value in values:
            text = text.replace(value, _REDACTED)
        return text

    return redact


class _OutputPump:
    """Drains the child's combined output: a capped log file plus an in-memory tail."""

    def __init__(self, stream: Any, log_path: Path) -> None:
        self._stream = stream
        self._log_path = log_path
        self._tail = bytearray()
        self.log_truncated = False
        self.thread = threading.Thread(target=self._run, name="suites-output", daemon=True)

    def _run(self) -> None:
        written = 0
        fd = self._stream.fileno()
        with open(self._log_path, "wb") as log:
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                if written < LOG_CAP_BYTES:
                    part = chunk[: LOG_CAP_BYTES - written]
                    log.write(part)
                    written += len(part)
                    if written >= LOG_CAP_BYTES:
                        log.write(b"\n[log truncated at the size cap]\n")
                        self.log_truncated = True
                self._tail += chunk
                if len(self._tail) > 4 * OUTPUT_TAIL_BYTES:
                    del self._tail[: len(self._tail) - 2 * OUTPUT_TAIL_BYTES]

    def tail_lines(self) -> list[str]:
        text = bytes(self._tail[-OUTPUT_TAIL_BYTES:]).decode("utf-8", errors="replace")
        return text.splitlines()[-OUTPUT_TAIL_LINES:]


_FileStamp = tuple[int, int, int, int, int]  # device, inode, size, mtime_ns, ctime_ns


def _stamp(path: Path) -> _FileStamp | None:
    """Identity and last change of a file, or None if there is none."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _read_regular_capped(path: Path, limit: int) -> bytes:
    """A regular file's bytes; OSError if it is something else, ValueError above ``limit``."""
    # O_NONBLOCK: opening a FIFO planted at the path must not hang the run.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path} is larger than the {limit}-byte limit; not read")
    return data


def _write_atomically(dst: Path, data: bytes) -> None:
    # Replace, not write through: a symlink planted at dst is replaced, never followed.
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as handle:
            handle.write(data)
        os.replace(tmp, dst)
    except OSError:
        tmp.unlink(missing_ok=True)  # our own temporary file, never the tool's
        raise


def _take_output_file(
    produced: Path,
    dst: Path,
    before: _FileStamp | None,
    *,
    cwd: Path,
    confined: bool,
    what: str,
    limit: int,
) -> tuple[Path | None, str | None]:
    """Copy a file the command wrote into the evidence folder (capped); (copy, problem).

    Taken only if this run wrote it: a file whose identity and change time are what
    they were before the command started is left from an earlier run and ignored.
    Nothing is ever deleted.
    """
    after = _stamp(produced)
    if after is None:
        return None, None
    if before is not None and after == before:
        return None, f"{what} {produced} was not written by this run (left from an earlier run); ignored"
    resolved = produced.resolve()
    if confined and not resolved.is_relative_to(cwd):
        return None, (
            f"{what} {produced} resolves to {resolved}, outside the category's cwd; not read "
            "(set allow_paths_outside_cwd: true to allow it)"
        )
    try:
        data = _read_regular_capped(produced, limit)
    except ValueError as exc:
        return None, f"{what} {exc}"
    except OSError as exc:
        return None, f"cannot read {what} {produced}: {exc.strerror or exc}"
    try:
        _write_atomically(dst, data)
    except OSError as exc:
        return None, f"cannot copy {what} into the evidence folder: {exc.strerror or exc}"
    return dst, None


def _path_with_python_bin(path: str | None) -> str:
    """PATH, then the running Python's folder: a tool installed in the same virtualenv
    (schemathesis, pytest) runs without activating it, also from ``sh -c``. Appended, so a
    program earlier on PATH still wins."""
    parts = (path or os.defpath).split(os.pathsep)
    python_bin = str(Path(sys.executable).parent)
    return os.pathsep.join(parts if python_bin in parts else [*parts, python_bin])


def run_category(
    cfg: CategoryConfig,
    *,
    base_dir: Path,
    out_dir: Path,
    target_url: str | None,
    select: Sequence[str] | None = None,
    attempt: int = 0,
    in_flight: CommandsInFlight | None = None,
) -> CategoryRun:
    """Run one category's command, bounded by its timeout; collect its output files.

    Writes into ``out_dir``: ``<name>.junit.xml`` (``<name>.rerun<N>.junit.xml``
    for reruns), ``<name>.output.log`` (capped) and ``<name>.coverage.xml``.
    Deletes nothing: a ``junit_xml``/``coverage_xml`` file left over from an
    earlier run is recognised by its unchanged identity and change time, and ignored.
    ``in_flight``: categories run at once in worker threads; the main thread stops them all
    through it (``CategoriesStopped`` once it has: nothing more starts).
    """
    base_dir = Path(base_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = cfg.name if attempt == 0 else f"{cfg.name}.rerun{attempt}"
    junit_out = out_dir / f"{stem}.junit.xml"
    log_path = out_dir / f"{stem}.output.log"
    coverage_out = out_dir / f"{stem}.coverage.xml"
    cwd = (base_dir / cfg.cwd).resolve()
    token = uuid.uuid4().hex
    redact = _redactor(cfg.env.values())
    # pytest writes to a fresh name of ours, so no earlier file can pass for its report.
    fresh_junit = out_dir / f".{stem}.{token}.junit.xml"
    argv = build_command(cfg, fresh_junit, select=select)
    shown_argv = tuple(redact(a) for a in argv)
    produced_junit = cwd / cfg.junit_xml if cfg.junit_xml is not None else fresh_junit
    produced_coverage = cwd / cfg.coverage_xml if cfg.coverage_xml is not None else None
    confined = not cfg.allow_paths_outside_cwd
    expected_at = str(produced_junit if cfg.junit_xml is not None else junit_out)

    def not_started(reason: str) -> CategoryRun:
        return CategoryRun(
            name=cfg.name,
            argv=shown_argv,
            cwd=str(cwd),
            exit_code=None,
            duration_s=0.0,
            output_tail=(),
            junit_path=None,
            timeout_s=cfg.timeout_s,
            start_error=redact(reason),
            junit_expected_at=expected_at,
            attempt=attempt,
        )

    if not cwd.is_dir():
        return not_started(f"working directory {cwd} does not exist")
    if cfg.reads_existing_report:
        return _read_existing_report(cfg, cwd=cwd, junit_out=junit_out, coverage_out=coverage_out)
    warnings: list[str] = []
    junit_before = _stamp(produced_junit)
    coverage_before = _stamp(produced_coverage) if produced_coverage is not None else None

    env = dict(os.environ)
    env.update(cfg.env)
    if target_url:  # "" or None: the run has no live target
        env[TARGET_URL_ENV] = target_url
    env[MARK_ENV] = token
    env["PATH"] = _path_with_python_bin(env.get("PATH"))

    if in_flight is not None and in_flight.stopping:
        raise CategoriesStopped()
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a timeout kills the children too
        )
    except OSError as exc:
        return not_started(f"{type(exc).__name__}: {exc.strerror or exc} ({argv[0]})")

    assert proc.stdout is not None
    pump = _OutputPump(proc.stdout, log_path)
    pump.thread.start()
    if in_flight is not None and not in_flight.add(token, proc):  # the run stopped as it started
        _stop([proc], (token,))  # the group and its escapees on one grace
        raise CategoriesStopped()
    timed_out = False
    try:
        proc.wait(timeout=cfg.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _stop_group(proc)
    except BaseException:  # Ctrl-C or SIGTERM turned into an exception: stop all we started
        _stop([proc], (token,))  # one grace for the group and its escapees, not one after the other
        if in_flight is not None:
            in_flight.discard(token)
        raise
    duration = time.monotonic() - started
    if not timed_out and _group_alive(proc.pid):
        # Processes the command left behind (a server a test forgot to stop)
        # would run on and keep the output pipe open.
        warnings.append("the command left processes running after it exited; they were stopped")
        _stop_group(proc)
    escaped = _stop_marked(token)
    if in_flight is not None:
        in_flight.discard(token)
    if escaped:
        warnings.append(
            f"{len(escaped)} processes had left the command's process group (setsid or a daemon) "
            f"and were still running after it ended; they were stopped: {', '.join(escaped[:10])}"
        )
    pump.thread.join(timeout=5.0)
    if pump.thread.is_alive():
        # Leave the pipe open: closing it under a blocked reader could let the
        # descriptor number be reused and read by that thread.
        warnings.append("a process outside the command's group still holds its output open")
    else:
        proc.stdout.close()
    if pump.log_truncated:
        warnings.append(f"output log truncated at {LOG_CAP_BYTES} bytes")

    junit_path, junit_problem = _take_output_file(
        produced_junit,
        junit_out,
        junit_before,
        cwd=cwd,
        confined=confined and cfg.junit_xml is not None,
        what="JUnit XML",
        limit=MAX_JUNIT_BYTES,
    )
    if produced_junit == fresh_junit and fresh_junit.exists():
        fresh_junit.unlink()  # our own temporary name, copied above
    coverage_path = _take_coverage(cfg, cwd, coverage_out, coverage_before, warnings)

    return CategoryRun(
        name=cfg.name,
        argv=shown_argv,
        cwd=str(cwd),
        exit_code=proc.returncode,
        duration_s=duration,
        output_tail=tuple(redact(line) for line in pump.tail_lines()),
        junit_path=junit_path,
        coverage_path=coverage_path,
        log_path=log_path,
        timed_out=timed_out,
        timeout_s=cfg.timeout_s,
        junit_expected_at=expected_at,
        junit_problem=redact(junit_problem) if junit_problem else None,
        warnings=tuple(redact(w) for w in warnings),
        attempt=attempt,
    )


def _take_coverage(
    cfg: CategoryConfig, cwd: Path, coverage_out: Path, before: _FileStamp | None, warnings: list[str]
) -> Path | None:
    """Copy the category's coverage file, if it names one; a problem becomes a warning."""
    if cfg.coverage_xml is None:
        return None
    produced = cwd / cfg.coverage_xml
    coverage_path, problem = _take_output_file(
        produced,
        coverage_out,
        before,
        cwd=cwd,
        confined=not cfg.allow_paths_outside_cwd,
        what="coverage XML",
        limit=MAX_COVERAGE_BYTES,
    )
    if problem:
        warnings.append(problem)
    elif coverage_path is None:
        warnings.append(f"no coverage file was written at {produced}")
    return coverage_path


def _read_existing_report(cfg: CategoryConfig, *, cwd: Path, junit_out: Path, coverage_out: Path) -> CategoryRun:
    """A category without a command: copy the report another step wrote (capped, confined to cwd
    unless allowed, never deleted) into the output folder. A missing file is named."""
    assert cfg.junit_xml is not None  # reads_existing_report
    source = cwd / cfg.junit_xml
    started = time.monotonic()
    warnings: list[str] = []
    # No "before" stamp: an existing report is the point, however old it is.
    junit_path, problem = _take_output_file(
        source,
        junit_out,
        None,
        cwd=cwd,
        confined=not cfg.allow_paths_outside_cwd,
        what="JUnit XML",
        limit=MAX_JUNIT_BYTES,
    )
    if junit_path is None and problem is None:
        problem = f"no JUnit XML file at {source} (the category runs no command: it reads that existing report)"
    coverage_path = _take_coverage(cfg, cwd, coverage_out, None, warnings)
    return CategoryRun(
        name=cfg.name,
        argv=(),
        cwd=str(cwd),
        exit_code=None,
        duration_s=time.monotonic() - started,
        output_tail=(),
        junit_path=junit_path,
        coverage_path=coverage_path,
        timeout_s=cfg.timeout_s,
        junit_expected_at=str(source),
        junit_problem=problem,
        warnings=tuple(warnings),
        ran_command=False,
    )
