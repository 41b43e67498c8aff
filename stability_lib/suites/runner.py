"""Test-suite section: run a team's existing test categories and report them truthfully.

Three layers:

* config (``SuitesConfig``/``CategoryConfig``), validated by pydantic;
* I/O, kept thin: ``run_category`` starts one command in its own session (so a
  timeout kills its children too) with a unique marker in its environment (so
  children that ``setsid`` away are found and stopped too), keeps a capped log
  and the output tail, and copies the JUnit/Cobertura files this run wrote
  (capped; never deleting anything); ``run_suites`` runs every category,
  reruns failing pytest tests when asked, and reads the baseline files;
* pure: ``judge_category`` (the verdict), ``category_claims``,
  ``diff_against_baseline``.

Verdict: a category PASSes only when tests ran and none failed or errored.
No test executed (or only skipped ones) is INCONCLUSIVE, and so are flaky
tests (passed only on a rerun) and a JUnit file that declares more tests,
failures or errors than it lists (the missing outcomes are unknown). A
timeout, a command that could not start or no JUnit XML is ERROR. An exit code that contradicts the XML is a warning (and
a non-zero exit never leaves a clean PASS).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..core.models import Claim, EvidenceRef, Figure, Status
from .coverage import MAX_COVERAGE_BYTES, CoverageParseError, CoverageReport, parse_cobertura
from .junit import (
    MAX_JUNIT_BYTES,
    JUnitParseError,
    JUnitReport,
    TestCase,
    TestOutcome,
    merge_reports,
    parse_junit,
)

__all__ = [
    "CategoryConfig",
    "SuitesConfig",
    "CategoryRun",
    "RerunSummary",
    "DurationChange",
    "SuiteDiff",
    "CategoryResult",
    "TARGET_URL_ENV",
    "MARK_ENV",
    "SECTION",
    "build_command",
    "is_pytest_command",
    "run_category",
    "evaluate_run",
    "judge_category",
    "run_suites",
    "category_claims",
    "diff_against_baseline",
    "pytest_node_id",
]

SECTION = "suites"
TARGET_URL_ENV = "STABILITY_TARGET_URL"
# A unique token in every category's environment: processes that leave the
# command's process group (setsid, daemons) still carry it and are stopped by it.
MARK_ENV = "STABILITY_SUITE_RUN"
MAX_TIMEOUT_S = 3600.0
MAX_RERUNS = 5
OUTPUT_TAIL_LINES = 50
OUTPUT_TAIL_BYTES = 16 * 1024
LOG_CAP_BYTES = 5 * 1024 * 1024  # the full log kept as evidence, up to this size
KILL_GRACE_S = 3.0  # SIGTERM, then this long, then SIGKILL
FAILURE_EXCERPT_CHARS = 2048
MAX_FAILURES_LISTED = 100  # failing, flaky cases and suite errors kept in detail, each
PASSED_SAMPLE = 20  # passing cases named in evidence (counts stay exact)
MAX_IDS_LISTED = 200  # test ids in rerun lists
SLOWEST_LISTED = 10
PYTEST_NO_TESTS_COLLECTED = 5  # pytest's exit code when nothing was selected
_REDACTED = "[redacted]"
_MIN_SECRET_LEN = 4  # shorter env values ("1", "on") would redact half the output


# --------------------------------------------------------------------------- config


class CategoryConfig(BaseModel):
    """One category of a team's tests (e.g. "auth"), run by one command, or an existing JUnit
    report read as it is (``junit_xml`` without ``command``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    # None: ``python -m pytest [-m marker] [paths...]`` with the running interpreter.
    command: list[str] | None = None
    marker: str | None = None  # pytest -m expression (default command only)
    paths: list[str] = Field(default_factory=list)  # pytest paths, relative to cwd
    cwd: str = "."  # relative to the params file's folder
    env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=300.0, gt=0, le=MAX_TIMEOUT_S)
    junit_xml: str | None = Field(
        default=None,
        description=(
            "The JUnit XML file a custom command writes, relative to cwd; it must stay inside "
            "cwd unless allow_paths_outside_cwd is true. Omit it for pytest: the runner adds "
            "--junitxml pointing into the output folder. With a command, only a file this run "
            "wrote is read. Without a command, the file is an existing report (another CI step "
            "wrote it): it is read as it is, and a missing file is ERROR. Never deleted."
        ),
    )
    coverage_xml: str | None = Field(
        default=None,
        description=(
            "The Cobertura coverage file the command writes, relative to cwd; it must stay inside "
            "cwd unless allow_paths_outside_cwd is true. Only a file this run wrote is read; the "
            "file is never deleted."
        ),
    )
    allow_paths_outside_cwd: bool = Field(
        default=False,
        description=(
            "Explicit opt-in: let junit_xml and coverage_xml be absolute or lead out of cwd "
            "(with '..' or a symbolic link). The runner still only reads them, never deletes them."
        ),
    )
    required: bool = True

    @field_validator("command")
    @classmethod
    def _command_not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or not value[0].strip()):
            raise ValueError("command must name a program (or be omitted to run pytest)")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not key or "=" in key or "\0" in key:
                raise ValueError(f"invalid environment variable name {key!r}")
        return value

    @model_validator(mode="after")
    def _junit_source_known(self) -> CategoryConfig:
        if self.command is not None:
            if self.marker is not None or self.paths:
                raise ValueError(
                    f"category {self.name!r}: marker/paths apply only to the default pytest "
                    "command; put them in command instead"
                )
            if self.junit_xml is None and not is_pytest_command(self.command):
                raise ValueError(
                    f"category {self.name!r}: command is not pytest, so set junit_xml to the "
                    "JUnit XML file it writes (relative to cwd)"
                )
        elif self.junit_xml is not None and (self.marker is not None or self.paths or self.env):
            raise ValueError(
                f"category {self.name!r}: junit_xml without a command reads an existing report; "
                "marker, paths and env apply only to a command that runs"
            )
        return self

    @model_validator(mode="after")
    def _paths_confined(self) -> CategoryConfig:
        for field_name in ("junit_xml", "coverage_xml"):
            value: str | None = getattr(self, field_name)
            if value is None:
                continue
            if not value.strip() or "\0" in value:
                raise ValueError(f"category {self.name!r}: {field_name} must name a file")
            if self.allow_paths_outside_cwd:
                continue
            if os.path.isabs(value):
                raise ValueError(
                    f"category {self.name!r}: {field_name} {value!r} is an absolute path; give it "
                    "relative to the category's cwd (or set allow_paths_outside_cwd: true)"
                )
            if os.path.normpath(value).split(os.sep)[0] == os.pardir:
                raise ValueError(
                    f"category {self.name!r}: {field_name} {value!r} leads out of the category's "
                    "cwd (or set allow_paths_outside_cwd: true)"
                )
        return self

    @property
    def uses_default_command(self) -> bool:
        return self.command is None and self.junit_xml is None

    @property
    def reads_existing_report(self) -> bool:
        """No command: ``junit_xml`` names a report that something else already wrote."""
        return self.command is None and self.junit_xml is not None


class SuitesConfig(BaseModel):
    """The ``suites`` section of the params file."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    categories: list[CategoryConfig] = Field(default_factory=list)
    # Rerun failing tests up to N times (default pytest command only) to tell
    # flaky from broken.
    rerun_failures: int = Field(default=0, ge=0, le=MAX_RERUNS)
    # A folder of ``<category>.junit.xml`` files from an earlier run (a previous
    # run's suites output folder works as is), relative to the params file.
    baseline_junit_dir: str | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> SuitesConfig:
        seen: set[str] = set()
        for category in self.categories:
            if category.name in seen:
                raise ValueError(f"duplicate category name {category.name!r}")
            seen.add(category.name)
        return self


def is_pytest_command(command: Sequence[str]) -> bool:
    """``pytest ...``, ``py.test ...`` or ``<python> -m pytest ...``."""
    if not command:
        return False
    program = Path(command[0]).name
    if program.startswith(("pytest", "py.test")):
        return True
    return len(command) >= 3 and command[1] == "-m" and command[2] == "pytest"


def build_command(cfg: CategoryConfig, junit_out: Path, *, select: Sequence[str] | None = None) -> list[str]:
    """The argv to run (pure). ``select``: explicit pytest node ids (reruns)."""
    # xunit1 adds file/line to each testcase: reruns need them to rebuild node ids.
    pytest_flags = ["-p", "no:cacheprovider", "-o", "junit_family=xunit1", f"--junitxml={junit_out}"]
    if cfg.reads_existing_report:
        return []
    if cfg.command is None:
        # --tb=short: pytest's long tracebacks print the failing test's arguments
        # (fixture values: tokens, passwords), and failure text becomes evidence.
        argv = [sys.executable, "-m", "pytest", "-q", "--tb=short", *pytest_flags]
        if select is not None:
            return argv + list(select)
        if cfg.marker is not None:
            argv += ["-m", cfg.marker]
        return argv + list(cfg.paths)
    argv = list(cfg.command)
    if cfg.junit_xml is None:  # validated: this is pytest
        argv += pytest_flags
    return argv


# --------------------------------------------------------------------------- running (I/O)


@dataclass(frozen=True)
class CategoryRun:
    """What running one category's command produced (no judgement yet)."""

    name: str
    argv: tuple[str, ...]  # with env secret values redacted
    cwd: str
    exit_code: int | None  # None: never started; negative: killed by that signal
    duration_s: float
    output_tail: tuple[str, ...]
    junit_path: Path | None  # our copy in the output folder, if the command wrote one
    coverage_path: Path | None = None
    log_path: Path | None = None
    timed_out: bool = False
    timeout_s: float = 0.0
    start_error: str | None = None
    junit_expected_at: str = ""  # where we looked for the JUnit file
    junit_problem: str | None = None  # why a JUnit file that is there was not taken
    warnings: tuple[str, ...] = ()
    attempt: int = 0  # 0: the first run; n: the n-th rerun
    ran_command: bool = True  # False: an existing report was read; no exit code to compare


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


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies awaiting a reaper do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc_root = Path("/proc")
    if not proc_root.is_dir():  # not Linux: trust kill(0)
        return True
    # killpg(0) also succeeds for zombies, which PID 1 may reap only seconds later.
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After "(comm)": state, ppid, pgrp, ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole process group, give it a grace period, then SIGKILL it."""
    pgid = proc.pid  # start_new_session: the child leads its own group
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < deadline:
        proc.poll()  # reap the leader so it does not keep the group "alive"
        if not _group_alive(pgid):
            break
        time.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)
    proc.wait()


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


# --------------------------------------------------------------------------- escaped processes


def _marked_processes(token: str) -> list[int]:
    """Live processes whose environment carries ``MARK_ENV=token`` (Linux /proc)."""
    needle = f"{MARK_ENV}={token}".encode()
    found: list[int] = []
    proc_root = Path("/proc")
    if not proc_root.is_dir():
        return found
    own = os.getpid()
    for entry in proc_root.iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()[:64]
    except OSError:
        return "?"


def _stop_marked(token: str) -> list[str]:
    """Stop every process still carrying this run's marker: "pid (name)" of each found.

    A child that calls setsid (or daemonizes) leaves the process group the runner
    kills, but keeps the environment it inherited; that is how it is found.
    """
    pids = _marked_processes(token)
    if not pids:
        return []
    names = [f"{pid} ({_process_name(pid)})" for pid in pids]
    for pid in pids:
        _signal_pid(pid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < deadline and _marked_processes(token):
        time.sleep(0.05)
    for pid in _marked_processes(token):
        _signal_pid(pid, signal.SIGKILL)
    return names


def _signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


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
) -> CategoryRun:
    """Run one category's command, bounded by its timeout; collect its output files.

    Writes into ``out_dir``: ``<name>.junit.xml`` (``<name>.rerun<N>.junit.xml``
    for reruns), ``<name>.output.log`` (capped) and ``<name>.coverage.xml``.
    Deletes nothing: a ``junit_xml``/``coverage_xml`` file left over from an
    earlier run is recognised by its unchanged identity and change time, and ignored.
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
    timed_out = False
    try:
        proc.wait(timeout=cfg.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _stop_group(proc)
    except BaseException:  # Ctrl-C or SIGTERM turned into an exception: stop all we started
        _stop_group(proc)
        _stop_marked(token)
        raise
    duration = time.monotonic() - started
    if not timed_out and _group_alive(proc.pid):
        # Processes the command left behind (a server a test forgot to stop)
        # would run on and keep the output pipe open.
        warnings.append("the command left processes running after it exited; they were stopped")
        _stop_group(proc)
    escaped = _stop_marked(token)
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


# --------------------------------------------------------------------------- results (pure)


@dataclass(frozen=True)
class RerunSummary:
    """What rerunning the failing tests showed."""

    attempts: int
    recovered: tuple[str, ...]  # failed first, passed on a rerun: flaky
    still_failing: tuple[str, ...]  # failed every time: broken
    not_rerun: tuple[str, ...] = ()  # failing tests we could not address by node id

    def to_dict(self, limit: int = MAX_IDS_LISTED) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            **_listed(
                limit,
                recovered_flaky=self.recovered,
                still_failing=self.still_failing,
                not_rerun=self.not_rerun,
            ),
        }


def _listed(limit: int, **ids: tuple[str, ...]) -> dict[str, Any]:
    """Each list of test ids cut at ``limit``, with its full length under ``counts``."""
    out: dict[str, Any] = {key: list(values[:limit]) for key, values in ids.items()}
    out["counts"] = {key: len(values) for key, values in ids.items()}
    return out


@dataclass(frozen=True)
class DurationChange:
    id: str
    baseline_s: float
    current_s: float

    @property
    def ratio(self) -> float | None:
        return self.current_s / self.baseline_s if self.baseline_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "baseline_s": round(self.baseline_s, 4),
            "current_s": round(self.current_s, 4),
            "ratio": None if self.ratio is None else round(self.ratio, 3),
        }


@dataclass(frozen=True)
class SuiteDiff:
    """One category's tests now versus a baseline run, by ``classname::name``."""

    newly_failing: tuple[str, ...]
    newly_passing: tuple[str, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    duration_changes: tuple[DurationChange, ...]  # the slowest tests present in both
    baseline_source: str = ""

    def to_dict(self, limit: int = MAX_IDS_LISTED) -> dict[str, Any]:
        return {
            "baseline_source": self.baseline_source,
            **_listed(
                limit,
                newly_failing=self.newly_failing,
                newly_passing=self.newly_passing,
                added=self.added,
                removed=self.removed,
            ),
            "duration_changes": [d.to_dict() for d in self.duration_changes],
        }


_FAILING = (TestOutcome.FAILED, TestOutcome.ERROR)


def diff_against_baseline(current: JUnitReport, baseline: JUnitReport, *, slowest: int = SLOWEST_LISTED) -> SuiteDiff:
    """Newly failing/passing, added/removed tests and how the slowest tests' times moved."""
    now = {c.id: c for c in current.cases}
    before = {c.id: c for c in baseline.cases}
    common = [i for i in now if i in before]
    newly_failing = sorted(i for i in common if now[i].outcome in _FAILING and before[i].outcome not in _FAILING)
    newly_passing = sorted(i for i in common if now[i].outcome is TestOutcome.PASSED and before[i].outcome in _FAILING)
    by_time = sorted(common, key=lambda i: max(now[i].time_s, before[i].time_s), reverse=True)
    changes = tuple(
        DurationChange(id=i, baseline_s=before[i].time_s, current_s=now[i].time_s) for i in by_time[:slowest]
    )
    return SuiteDiff(
        newly_failing=tuple(newly_failing),
        newly_passing=tuple(newly_passing),
        added=tuple(sorted(i for i in now if i not in before)),
        removed=tuple(sorted(i for i in before if i not in now)),
        duration_changes=changes,
        baseline_source=baseline.source,
    )


def _excerpt(case: TestCase) -> str:
    text = case.message
    if case.detail and case.detail not in text:
        text = f"{text}\n{case.detail}" if text else case.detail
    if len(text) > FAILURE_EXCERPT_CHARS:
        text = text[:FAILURE_EXCERPT_CHARS] + f"... [truncated {len(text) - FAILURE_EXCERPT_CHARS} chars]"
    return text


def _case_dict(case: TestCase, *, excerpt: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": case.id,
        "outcome": case.outcome.value,
        "time_s": round(case.time_s, 4),
        "suite": case.suite,
    }
    if excerpt:
        out["message"] = _excerpt(case)
    if case.reruns:
        out["reruns"] = case.reruns
    return out


def _names(ids: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


@dataclass(frozen=True)
class CategoryResult:
    """One category's verdict with everything behind it."""

    name: str
    status: Status
    reason: str
    required: bool
    run: CategoryRun
    report: JUnitReport | None  # after reruns were applied
    warnings: tuple[str, ...] = ()
    coverage: CoverageReport | None = None
    coverage_error: str | None = None
    reruns: RerunSummary | None = None
    diff: SuiteDiff | None = None

    @property
    def counts(self) -> dict[str, int]:
        if self.report is None:
            return dict.fromkeys(("total", "passed", "failed", "errors", "skipped", "flaky", "suite_errors"), 0)
        return self.report.counts()

    @property
    def statistic(self) -> str:
        run = self.run
        if run.start_error is not None:
            return f"not run: {run.start_error}"
        if run.timed_out:
            return f"timed out after {run.timeout_s:g} s; killed with its child processes"
        how = f"exit {run.exit_code}" if run.ran_command else "an existing report, no command run"
        if self.report is None:
            return f"no readable JUnit XML ({how}, {run.duration_s:.1f} s)"
        c = self.counts
        suite_errors = f", {c['suite_errors']} suite errors" if c["suite_errors"] else ""
        return (
            f"{c['passed']} passed, {c['failed']} failed, {c['errors']} errors, "
            f"{c['skipped']} skipped, {c['flaky']} flaky{suite_errors} "
            f"in {run.duration_s:.1f} s ({how})"
        )

    def to_dict(self) -> dict[str, Any]:
        report = self.report
        failing = report.cases_with(*_FAILING) if report else ()
        flaky = report.cases_with(TestOutcome.FLAKY) if report else ()
        slowest = sorted(report.cases, key=lambda c: c.time_s, reverse=True)[:SLOWEST_LISTED] if report else []
        passed = report.cases_with(TestOutcome.PASSED) if report else ()
        suite_errors = report.suite_errors if report else ()
        return {
            "name": self.name,
            "status": self.status.value,
            "reason": self.reason,
            "required": self.required,
            "statistic": self.statistic,
            "command": list(self.run.argv),
            "cwd": self.run.cwd,
            "exit_code": self.run.exit_code,
            "duration_s": round(self.run.duration_s, 3),
            "timed_out": self.run.timed_out,
            "start_error": self.run.start_error,
            "counts": self.counts,
            "failures": [_case_dict(c, excerpt=True) for c in failing[:MAX_FAILURES_LISTED]],
            "failures_omitted": max(0, len(failing) - MAX_FAILURES_LISTED),
            "flaky": [_case_dict(c, excerpt=True) for c in flaky[:MAX_FAILURES_LISTED]],
            "flaky_omitted": max(0, len(flaky) - MAX_FAILURES_LISTED),
            "passed_sample": [c.id for c in passed[:PASSED_SAMPLE]],
            "passed_omitted": max(0, len(passed) - PASSED_SAMPLE),
            "suite_errors": [
                {"suite": e.suite, "kind": e.kind, "message": e.message[:FAILURE_EXCERPT_CHARS]}
                for e in suite_errors[:MAX_FAILURES_LISTED]
            ],
            "suite_errors_omitted": max(0, len(suite_errors) - MAX_FAILURES_LISTED),
            "declared_unlisted": list(report.declared_unlisted) if report else [],
            "slowest": [_case_dict(c, excerpt=False) for c in slowest],
            "warnings": list(self.warnings),
            "output_tail": list(self.run.output_tail),
            "junit_file": self.run.junit_path.name if self.run.junit_path else None,
            "log_file": self.run.log_path.name if self.run.log_path else None,
            "coverage": self.coverage.to_dict() if self.coverage else None,
            "coverage_error": self.coverage_error,
            "reruns": self.reruns.to_dict() if self.reruns else None,
            "baseline": self.diff.to_dict() if self.diff else None,
        }


def judge_category(
    cfg: CategoryConfig,
    run: CategoryRun,
    report: JUnitReport | None,
    *,
    junit_error: str | None = None,
    rerun_reports: Sequence[JUnitReport] = (),
    not_rerun: Sequence[str] = (),
    coverage: CoverageReport | None = None,
    coverage_error: str | None = None,
    baseline: JUnitReport | None = None,
) -> CategoryResult:
    """The verdict for one category (pure). ``report`` is the first run's JUnit."""
    warnings = list(run.warnings)

    def result(status: Status, reason: str, final: JUnitReport | None = None, **extra: Any) -> CategoryResult:
        if final is not None:
            warnings.extend(final.warnings)
        if coverage is not None:
            warnings.extend(f"coverage: {w}" for w in coverage.warnings)
        return CategoryResult(
            name=cfg.name,
            status=status,
            reason=reason,
            required=cfg.required,
            run=run,
            report=final,
            warnings=tuple(warnings),
            coverage=coverage,
            coverage_error=coverage_error,
            **extra,
        )

    if run.start_error is not None:
        return result(Status.ERROR, f"the command could not start: {run.start_error}")
    if run.timed_out:
        return result(
            Status.ERROR,
            f"the command did not finish within {run.timeout_s:g} s and was killed with its child processes",
        )
    if junit_error is not None:
        return result(Status.ERROR, f"the JUnit XML could not be read: {junit_error}")
    if report is None and run.junit_problem is not None:
        return result(Status.ERROR, f"the JUnit XML could not be used: {run.junit_problem}")
    if report is None:
        return result(
            Status.ERROR,
            f"the command (exit {run.exit_code}) wrote no JUnit XML at {run.junit_expected_at}",
        )

    first_failing = [c.id for c in report.cases_with(*_FAILING)]
    first_bad = len(first_failing) + len(report.suite_errors)
    final = merge_reports(report, rerun_reports)
    reruns: RerunSummary | None = None
    if rerun_reports or not_rerun:
        still = [c.id for c in final.cases_with(*_FAILING)]
        recovered = [i for i in first_failing if i not in set(still)]
        reruns = RerunSummary(
            attempts=len(rerun_reports),
            recovered=tuple(recovered),
            still_failing=tuple(still),
            not_rerun=tuple(not_rerun),
        )
    diff = diff_against_baseline(final, baseline) if baseline is not None else None

    # Exit code versus XML: either one lying is worth a warning.
    is_pytest = cfg.command is None or is_pytest_command(cfg.command)
    if run.exit_code == 0 and first_bad:
        warnings.append(
            f"exit code 0 although the JUnit XML records {first_bad} failed or errored "
            "tests: the command hides failures"
        )
    nonzero_unexplained = (
        run.ran_command  # an existing report has no exit code to contradict it
        and run.exit_code != 0
        and first_bad == 0
        and not (is_pytest and run.exit_code == PYTEST_NO_TESTS_COLLECTED and report.total == 0)
    )
    if nonzero_unexplained:
        warnings.append(
            f"exit code {run.exit_code} although the JUnit XML records no failed or errored "
            "test: something else went wrong (see the output tail)"
        )

    failing = final.cases_with(*_FAILING)
    flaky = final.cases_with(TestOutcome.FLAKY)
    extra = {"reruns": reruns, "diff": diff}
    if failing or final.suite_errors:
        parts = []
        if failing:
            parts.append(f"{len(failing)} tests failed or errored: {_names([c.id for c in failing])}")
        if final.suite_errors:
            parts.append(f"{len(final.suite_errors)} suites errored: {_names([e.suite for e in final.suite_errors])}")
        return result(Status.FAIL, "; ".join(parts), final, **extra)
    if report.declared_unlisted:
        # The file says tests failed (or ran) that it does not list: their outcome is
        # unknown, so nothing can be claimed. Not FAIL: no failing test can be named.
        unlisted = list(report.declared_unlisted)
        more = f" (and {len(unlisted) - 1} more)" if len(unlisted) > 1 else ""
        return result(
            Status.INCONCLUSIVE,
            f"the JUnit XML is inconsistent: {unlisted[0]}{more}; outcomes it declares are "
            "missing from its testcases, so a pass cannot be claimed",
            final,
            **extra,
        )
    executed = final.executed
    if executed == 0:
        reason = (
            f"only skipped tests ({final.skipped}); nothing was checked"
            if final.skipped
            else "no test ran (nothing was selected or collected)"
        )
        return result(Status.INCONCLUSIVE, reason, final, **extra)
    if flaky:
        return result(
            Status.INCONCLUSIVE,
            f"{len(flaky)} flaky tests passed only on a rerun: {_names([c.id for c in flaky])}",
            final,
            **extra,
        )
    if nonzero_unexplained:
        return result(
            Status.INCONCLUSIVE,
            f"{executed} tests passed but the command exited with {run.exit_code}",
            final,
            **extra,
        )
    return result(Status.PASS, f"{final.passed} tests passed, none failed", final, **extra)


def category_claims(results: Iterable[CategoryResult]) -> list[Claim]:
    """One claim per category: "Test category 'auth' passes"."""
    claims: list[Claim] = []
    for res in results:
        evidence: tuple[EvidenceRef, ...] = ()
        if res.run.junit_path is not None:
            failing = res.report.cases_with(*_FAILING, TestOutcome.FLAKY) if res.report else ()
            evidence = (
                EvidenceRef(
                    section=SECTION,
                    file=res.run.junit_path.name,
                    records=tuple(c.id for c in failing[:20]),
                ),
            )
        claims.append(
            Claim(
                id=f"{SECTION}.{res.name}",
                section=SECTION,
                statement=f"Test category '{res.name}' passes",
                status=res.status,
                statistic=res.statistic,
                required=res.required,
                evidence=evidence,
                details={"reason": res.reason, "warnings": list(res.warnings[:20])},
                figure=_failed_tests_figure(res),
            )
        )
    return claims


def _failed_tests_figure(res: CategoryResult) -> Figure | None:
    """Failed or errored tests (and errored suites) of the executed ones; none when nothing was read."""
    report = res.report
    if report is None or res.run.start_error is not None or res.run.timed_out:
        return None
    failing = len(report.cases_with(*_FAILING)) + len(report.suite_errors)
    what = "tests failed or errored" + (
        f" (with {len(report.suite_errors)} errored suites)" if report.suite_errors else ""
    )
    return Figure(kind="count", value=float(failing), k=failing, n=report.executed, test="JUnit XML", what=what)


# --------------------------------------------------------------------------- orchestration (I/O)


def _read_capped(path: Path, limit: int) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(limit + 1)


def _load_junit(path: Path | None) -> tuple[JUnitReport | None, str | None]:
    if path is None:
        return None, None
    try:
        return parse_junit(_read_capped(path, MAX_JUNIT_BYTES), source=path.name), None
    except JUnitParseError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"cannot read {path.name}: {exc.strerror}"


def _load_coverage(path: Path | None) -> tuple[CoverageReport | None, str | None]:
    if path is None:
        return None, None
    try:
        return parse_cobertura(_read_capped(path, MAX_COVERAGE_BYTES), source=path.name), None
    except CoverageParseError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"cannot read {path.name}: {exc.strerror}"


def pytest_node_id(case: TestCase, search_dirs: Sequence[Path]) -> str | None:
    """Rebuild an absolute pytest node id from an xunit1 testcase, or None.

    ``file`` is relative to pytest's rootdir, which we do not know; the first of
    ``search_dirs`` holding that file is taken as the rootdir.
    """
    if not case.file or not case.file.endswith(".py"):
        return None
    root = next((d for d in search_dirs if (d / case.file).is_file()), None)
    if root is None:
        return None
    module = case.file[: -len(".py")].replace("/", ".").replace("\\", ".")
    parts = [str((root / case.file).resolve())]
    if case.classname.startswith(module + "."):
        parts += case.classname[len(module) + 1 :].split(".")
    elif case.classname != module:
        return None
    parts.append(case.name)
    return "::".join(parts)


def evaluate_run(
    cfg: CategoryConfig,
    run: CategoryRun,
    *,
    rerun_runs: Sequence[CategoryRun] = (),
    not_rerun: Sequence[str] = (),
    baseline: JUnitReport | None = None,
) -> CategoryResult:
    """Read the files a run produced and judge it."""
    report, junit_error = _load_junit(run.junit_path)
    coverage, coverage_error = _load_coverage(run.coverage_path)
    rerun_reports = []
    for rerun in rerun_runs:
        rerun_report, _ = _load_junit(rerun.junit_path)
        if rerun_report is not None:
            rerun_reports.append(rerun_report)
    return judge_category(
        cfg,
        run,
        report,
        junit_error=junit_error,
        rerun_reports=rerun_reports,
        not_rerun=not_rerun,
        coverage=coverage,
        coverage_error=coverage_error,
        baseline=baseline,
    )


def run_suites(cfg: SuitesConfig, *, base_dir: Path, out_dir: Path, target_url: str | None) -> list[CategoryResult]:
    """Run every category in order; rerun failing tests if configured; diff against a baseline."""
    if not cfg.enabled:
        return []
    base_dir = Path(base_dir)
    results: list[CategoryResult] = []
    for category in cfg.categories:
        run = run_category(category, base_dir=base_dir, out_dir=out_dir, target_url=target_url)
        report, _ = _load_junit(run.junit_path)
        rerun_runs: list[CategoryRun] = []
        not_rerun: list[str] = []
        failing = report.cases_with(*_FAILING) if report else ()
        if cfg.rerun_failures and failing and category.uses_default_command and not run.timed_out:
            cwd = (base_dir / category.cwd).resolve()
            search = [cwd, *[(cwd / p) for p in category.paths if (cwd / p).is_dir()], *cwd.parents]
            pending: dict[str, str] = {}
            for case in failing:
                node = pytest_node_id(case, search)
                if node is None:
                    not_rerun.append(case.id)
                else:
                    pending[case.id] = node
            for attempt in range(1, cfg.rerun_failures + 1):
                if not pending:
                    break
                rerun = run_category(
                    category,
                    base_dir=base_dir,
                    out_dir=out_dir,
                    target_url=target_url,
                    select=sorted(pending.values()),
                    attempt=attempt,
                )
                rerun_runs.append(rerun)
                rerun_report, _ = _load_junit(rerun.junit_path)
                if rerun_report is None:
                    break
                passed = {c.id for c in rerun_report.cases if c.outcome is TestOutcome.PASSED}
                pending = {i: n for i, n in pending.items() if i not in passed}
        elif cfg.rerun_failures and failing:
            # Only our own pytest command can be narrowed to chosen node ids.
            not_rerun = [c.id for c in failing]
        baseline = None
        base_warning = None
        if cfg.baseline_junit_dir is not None:
            base_file = base_dir / cfg.baseline_junit_dir / f"{category.name}.junit.xml"
            if base_file.is_file():
                baseline, error = _load_junit(base_file)
                if error:
                    base_warning = f"baseline JUnit unreadable: {error}"
            else:
                base_warning = f"no baseline JUnit file {base_file.name} in {cfg.baseline_junit_dir}"
        result = evaluate_run(category, run, rerun_runs=rerun_runs, not_rerun=not_rerun, baseline=baseline)
        if base_warning:
            result = replace(result, warnings=result.warnings + (base_warning,))
        results.append(result)
    return results
