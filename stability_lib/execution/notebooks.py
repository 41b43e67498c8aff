"""Orchestration of one run: load, parameterize, execute, check, write.

``execute_sections`` runs section notebooks with papermill's Python API in a
small pool of daemon threads. A section that raises, times out or whose kernel
dies is recorded as ERROR evidence; the others still run.

Kernels (``kernels.py``, ``WarmKernels``): one per worker, started at once and
warmed up (the package imported). A notebook that ran to its end leaves its
kernel, its namespace reset, to the next notebook (each kernel start and its
imports cost about 1.3 CPU-s, which on a small machine is taken from the probes);
a notebook that failed, timed out or was interrupted has its kernel killed and a
new one started for the next. The performance section still runs alone. The last
kernel is killed as soon as the report's last cell is done: a graceful shutdown
only waits for a kernel with nothing to do.

Interrupts: jupyter_client starts every kernel in a new session, so a terminal
Ctrl-C never reaches it, and a thread blocked in a notebook keeps the process
alive. Every kernel we start is therefore tracked (``tracked_kernel_manager``);
on SIGINT/SIGTERM/SIGHUP the main thread interrupts each kernel (running cells stop and
run their finally steps, for up to TEARDOWN_GRACE_S), then kills each kernel with
everything it started, records the unfinished sections as ERROR ("interrupted")
and re-raises.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import RunError
from ..core.models import SectionResult, Status
from ..core.version import __version__
from .evidence import evidence_path, read_evidence, write_evidence, write_json_atomic
from .kernels import (
    KERNELS,
    WarmKernels,
    ensure_kernelspec,
    leave_report_kernel,
    papermill_engine,
    stop_all_kernels,
    take_report_kernel,
    tracked_kernel_manager,
)
from .params import SECTION_ORDER, Params
from .secrets import redact_file, redact_obj, redact_text, redact_tree
from .section import utc_now

__all__ = [
    "Interrupted",
    "interrupt_signal",
    "signals_interrupt",
    "stop_all_kernels",
    "SectionRun",
    "prepare_run_dir",
    "ensure_kernelspec",
    "execute_notebook",
    "execute_sections",
    "notebooks_dir",
    "notebooks_for",
]

Progress = Callable[[str], None]
EXCLUSIVE_SECTIONS = frozenset({"performance"})
INTERRUPTED = "interrupted"  # SectionRun.error of a section whose kernel an interrupt killed
# After an interrupt, how long dying notebook threads may take to notice their dead kernels.
_INTERRUPT_GRACE_S = 5.0
# After an interrupt and before the kernels are killed: how long running cells get to stop on
# their KeyboardInterrupt and run their finally steps (sessions a soak opened on the target).
TEARDOWN_GRACE_S = 10.0


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP in the main thread: a KeyboardInterrupt that knows its signal."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def interrupt_signal(exc: BaseException) -> str:
    """The signal behind an interrupt: "SIGINT", "SIGTERM" or "SIGHUP" (a plain KeyboardInterrupt
    is Ctrl-C: SIGINT)."""
    return getattr(exc, "signal_name", "SIGINT")


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise ``Interrupted`` in the main thread, once: a second signal
    while we are stopping is ignored, so that the cleanup it would cut short still runs. One that
    arrives inside the import machinery is raised once out of it."""
    import errno
    import os

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = threading.Event()
    active = threading.Event()  # our handlers are in place: a signal sent again must find them
    main_thread = threading.get_ident()
    deferred_until: list[float] = []  # while an interrupt may wait for the import machinery

    def handler(signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:
            # The terminal was closed: every write to it now fails (EIO), and the first progress line of
            # the cleanup would end it (no teardown grace, no record, exit 1). Our output goes nowhere
            # instead; run.log still gets every line. A live terminal, a pipe or a file stays as it is.
            for fd in (1, 2):
                try:
                    os.write(fd, b"")
                except OSError as exc:
                    if exc.errno == errno.EIO:
                        devnull = os.open(os.devnull, os.O_WRONLY)
                        os.dup2(devnull, fd)
                        os.close(devnull)
        if fired.is_set():
            return
        code = frame.f_code.co_filename if frame is not None else ""
        if "importlib._bootstrap" in code or "importlib/_bootstrap" in code:
            # Raised in the import machinery's own code, it can leave the import lock held (a weakref
            # callback of importlib takes it outside its try) and be swallowed with that callback's
            # errors: every thread then hangs at its next import, and no later signal is heard. Sent
            # again in a moment, once we are out of it (after a few seconds, raised there anyway).
            deferred_until[:] = deferred_until or [time.monotonic() + 5.0]
            if time.monotonic() < deferred_until[0]:
                threading.Timer(0.05, send_again, (signum,)).start()
                return
        fired.set()
        raise Interrupted(signal.Signals(signum).name)

    def send_again(signum: int) -> None:
        if active.is_set():
            signal.pthread_kill(main_thread, signum)  # to the main thread: a wait it is blocked in ends

    # SIGHUP: the terminal was closed, the ssh connection dropped. Its default action killed us on
    # the spot, and the demo services (in sessions of their own) ran on.
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    active.set()
    try:
        yield
    finally:
        active.clear()
        for sig, old in previous.items():
            signal.signal(sig, old)


def notebooks_dir() -> Path:
    """The section notebooks: ``notebooks/`` beside the package (repo checkout or editable install)."""
    here = Path(__file__).resolve().parents[1]
    for candidate in (here.parent / "notebooks", here / "notebooks"):
        if candidate.is_dir():
            return candidate
    raise RunError(f"notebooks folder not found next to {here}")


def notebooks_for(run_dir: Path, params: Params) -> Path:
    """The notebooks a run uses: params' runner.notebooks_dir (relative to the params file) or ours."""
    if params.runner.notebooks_dir:
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        return Path(meta["base_dir"]) / params.runner.notebooks_dir
    return notebooks_dir()


@dataclass(frozen=True)
class SectionRun:
    section: str
    status: Status
    duration_s: float
    notebook: str
    error: str | None = None


# Kernel pseudo-filesystems and devices: never a place for a run directory.
_NOT_A_RUN_DIR = (Path("/proc"), Path("/sys"), Path("/dev"))
_SHARED_MEMORY = Path("/dev/shm")  # a RAM disk: a fine place for a scratch run


def _check_run_dir(run_dir: Path) -> None:
    for root in _NOT_A_RUN_DIR:
        if run_dir == root or (root in run_dir.parents and _SHARED_MEMORY not in (run_dir, *run_dir.parents)):
            raise RunError(f"run directory {run_dir} is under {root}: choose a folder on a disk with --out")
    for folder in (run_dir, *run_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                raise RunError(f"run directory {run_dir}: {folder} exists and is not a folder")
            break
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise RunError(f"run directory {run_dir} exists and is not empty")


def prepare_run_dir(
    params_file: Path,
    raw: dict[str, Any],
    params: Params,
    out: Path | None,
    overrides: list[str],
    secrets: frozenset[str] = frozenset(),
) -> Path:
    """Create the run directory with params.yaml, run.json and fingerprint.json.
    Every value that came from a secret is scrubbed from what we write (titles and
    commit ids can carry ${NAME} too)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    # Absolute from here on: nothing later may depend on the process's working directory.
    run_dir = (out if out is not None else Path("runs") / f"{stamp}-{params_file.stem}").resolve()
    _check_run_dir(run_dir)
    # Imported and worked out before the first write, and run.json written last: an interrupt that
    # lands here (imports are slow, and a signal due inside one waits for its end) leaves no run.json,
    # and what was written is removed; once run.json exists, the caller records an interruption.
    from .baseline import FINGERPRINT_FILE, fingerprint

    made = not run_dir.exists()
    try:
        (run_dir / "evidence").mkdir(parents=True, exist_ok=True)
        (run_dir / "notebooks").mkdir(exist_ok=True)
        # The raw params keep ${NAME} references: the secret values never reach the disk.
        (run_dir / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        write_json_atomic(
            run_dir / FINGERPRINT_FILE,
            redact_obj(fingerprint(raw, params.target.base_url, params.target.commit), secrets),
        )
        write_json_atomic(
            run_dir / "run.json",
            redact_obj(
                {
                    "run_id": run_dir.resolve().name,
                    "params_file": str(params_file.resolve()),
                    "base_dir": str(params_file.resolve().parent),
                    "invocation_dir": str(Path.cwd()),  # where relative CLI arguments (baselines/) were meant
                    "overrides": [o.split("=", 1)[0] + "=…" for o in overrides],
                    "started_at": utc_now(),
                    "tool_version": __version__,
                    "title": params.title,
                    "environment": params.environment,
                    # What was really probed: a re-render elsewhere must not judge unresolved references.
                    # None of them when every enabled section reads files (no live target).
                    "targets": {
                        **({"candidate": params.target.base_url} if params.has_live_target else {}),
                        **({"baseline": params.baseline.base_url} if params.baseline else {}),
                    },
                    # What each side is, in the words of params (target.name and .commit), for page 1.
                    "target_labels": {
                        side: {"name": target.name, "commit": target.commit}
                        for side, target in (("candidate", params.target), ("baseline", params.baseline))
                        if target is not None
                    },
                },
                secrets,
            ),
        )
    except OSError as exc:
        raise RunError(f"cannot write the run directory {run_dir}: {exc.strerror or exc}") from exc
    except KeyboardInterrupt:  # before run.json: nothing ran, and a folder without it is no run
        if not (run_dir / "run.json").exists():
            _remove_unfinished_run_dir(run_dir, made)
        raise
    return run_dir


def _remove_unfinished_run_dir(run_dir: Path, made: bool) -> None:
    """What prepare_run_dir wrote, and the folder itself when it made it (an --out folder that was
    there, empty, stays: _check_run_dir let only an empty one through)."""
    import shutil

    shutil.rmtree(run_dir, ignore_errors=True)
    if not made:
        run_dir.mkdir(exist_ok=True)


def execute_notebook(
    source: Path,
    output: Path,
    parameters: dict[str, Any],
    *,
    cwd: Path,
    timeout_s: float,
    kernels: WarmKernels | None = None,
) -> None:
    """Execute one notebook with papermill in a kernel of its own: from ``kernels`` when given,
    else the warm kernel a run left in ``cwd`` for its report, else a new one."""
    import papermill

    if kernels is None:
        # New work of its own (a report rendered after a run, in the same process): a run that
        # stopped every kernel before must not make this one die at start.
        KERNELS.reset()
    km = kernels.take() if kernels is not None else take_report_kernel(cwd)
    if km is not None:
        KERNELS.running_a_notebook(km)  # an interrupt lets its cells stop before it is killed
    keep_kernel = kernels is not None and km is not None  # for the next notebook, if this one ends well
    ran_to_end = False
    try:
        papermill.execute_notebook(
            str(source),
            str(output),
            parameters=parameters,
            engine_name=papermill_engine(),
            km=km,  # None: nbclient starts the kernel
            kernel_name=ensure_kernelspec(),
            progress_bar=False,
            log_output=False,
            execution_timeout=timeout_s,
            request_save_on_cell_execute=False,
            # Not papermill's cwd=: that os.chdir()s this whole process, and notebooks run in
            # threads. nbclient starts the kernel in resources' metadata path instead.
            resources={"metadata": {"path": str(cwd)}},
            kernel_manager_class=tracked_kernel_manager(),  # an interrupt can find and kill the kernel
            keep_kernel=keep_kernel,
        )
        ran_to_end = True
    finally:
        if kernels is not None:
            # A notebook that failed, timed out or was interrupted leaves its kernel to be killed:
            # only one whose every cell ran is reset and reused.
            kernels.release(km if keep_kernel else None, reuse=ran_to_end)


def _error_result(
    section: str, error: str, started_at: str, duration_s: float, existing: Path | None = None
) -> SectionResult:
    """ERROR evidence; claims the section already wrote before it crashed are kept (a FAIL found
    before a later cell broke is still a FAIL)."""
    claims: tuple = ()
    data: dict[str, Any] = {}
    if existing is not None and existing.exists():
        try:
            previous = read_evidence(existing)
            claims, data = previous.claims, previous.data
        except Exception:  # unreadable evidence is no evidence
            pass
    return SectionResult(
        section=section,
        status=Status.ERROR,
        claims=claims,
        data=data,
        error=error,
        started_at=started_at,
        finished_at=utc_now(),
        duration_s=round(duration_s, 3),
    )


def _short_error(exc: BaseException) -> str:
    # papermill's PapermillExecutionError carries the notebook's own exception.
    ename = getattr(exc, "ename", None)
    evalue = getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {evalue}"[:2000]
    return f"{type(exc).__name__}: {exc}"[:2000]


def run_section_notebook(
    section: str,
    run_dir: Path,
    params: Params,
    nb_dir: Path,
    secrets: frozenset[str] = frozenset(),
    stop: threading.Event | None = None,
    kernels: WarmKernels | None = None,
) -> SectionRun:
    started_at, t0 = utc_now(), time.monotonic()
    output = run_dir / "notebooks" / f"{section}.ipynb"
    evidence = evidence_path(run_dir, section)
    error: str | None = None
    try:
        execute_notebook(
            nb_dir / f"{section}.ipynb",
            output,
            {"run_dir": str(run_dir.resolve()), "params_path": str((run_dir / "params.yaml").resolve())},
            cwd=run_dir,
            timeout_s=params.runner.section_timeout_s,
            kernels=kernels,
        )
    except Exception as exc:  # the notebook's failure is a finding about our run, never a silent pass
        error = _short_error(exc)
        if not isinstance(exc, RunError) and not getattr(exc, "ename", None):
            error += "\n" + "".join(traceback.format_exception_only(type(exc), exc))[-500:]
    duration = time.monotonic() - t0
    redact_file(output, secrets)  # tracebacks and outputs in the executed notebook
    if stop is not None and stop.is_set():
        # Interrupted: its kernel was killed under it. The main thread records the section.
        return SectionRun(section, Status.ERROR, duration, str(output), INTERRUPTED)
    if error is not None:
        error = redact_text(error, secrets)
    if error is None and not evidence.exists():
        error = "the notebook finished without writing its evidence file"
    if error is not None:
        write_evidence(run_dir, _error_result(section, error, started_at, duration, evidence))
        return SectionRun(section, Status.ERROR, duration, str(output), error)
    try:
        status = read_evidence(evidence).status
    except Exception as exc:
        write_evidence(run_dir, _error_result(section, _short_error(exc), started_at, duration))
        return SectionRun(section, Status.ERROR, duration, str(output), _short_error(exc))
    return SectionRun(section, status, duration, str(output))


def write_skipped(section: str, run_dir: Path, reason: str) -> SectionRun:
    now = utc_now()
    write_evidence(
        run_dir,
        SectionResult(
            section=section,
            status=Status.INCONCLUSIVE,
            data={"skipped": True, "reason": reason},
            started_at=now,
            finished_at=now,
            duration_s=0.0,
        ),
    )
    return SectionRun(section, Status.INCONCLUSIVE, 0.0, "", None)


def _run_in_threads(
    names: list[str],
    one: Callable[[str], SectionRun],
    workers: int,
    stop: threading.Event,
    done: dict[str, SectionRun],
    started: dict[str, tuple[str, float]],
    finished: list[threading.Event],
) -> None:
    """Run ``one`` over ``names`` in daemon threads. Not a ThreadPoolExecutor: its threads are joined
    at interpreter exit, so a notebook blocked in a thread would hold an interrupted run hostage.

    Each thread sets its event in ``finished`` when it ends; we wait on those, never on
    ``Thread.join``: on Python 3.11 a KeyboardInterrupt that lands inside ``join`` can mark a thread
    that is still running as stopped, and every later join then returns at once."""
    todo: queue.SimpleQueue[str] = queue.SimpleQueue()
    for name in names:
        todo.put(name)

    def worker(ended: threading.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    name = todo.get_nowait()
                except queue.Empty:
                    return
                started[name] = (utc_now(), time.monotonic())
                done[name] = one(name)
        finally:
            ended.set()

    ends = [threading.Event() for _ in range(max(1, min(workers, len(names))))]
    finished.extend(ends)
    for i, ended in enumerate(ends):
        threading.Thread(target=worker, args=(ended,), name=f"stability-section-{i}", daemon=True).start()
    for ended in ends:
        while not ended.wait(0.2):  # short waits: the main thread stays responsive to signals
            pass


def _record_interrupted(
    run_dir: Path,
    enabled: list[str],
    done: dict[str, SectionRun],
    started: dict[str, tuple[str, float]],
    signal_name: str,
    secrets: frozenset[str],
) -> None:
    """ERROR evidence for every section that did not finish; claims it wrote before stay."""
    for name in enabled:
        if name in done and done[name].error != INTERRUPTED:
            continue
        if name in started:
            started_at, t0 = started[name]
            error = f"interrupted ({signal_name}) before the section finished"
        else:
            started_at, t0 = utc_now(), time.monotonic()
            error = f"interrupted ({signal_name}) before the section started"
        result = _error_result(name, error, started_at, time.monotonic() - t0, evidence_path(run_dir, name))
        write_evidence(run_dir, SectionResult.parse(redact_obj(result.serialize(), secrets)))
    redact_tree(run_dir / "notebooks", secrets)  # notebooks papermill wrote while dying


def _wait_for_sections(finished: list[threading.Event], deadline: float) -> None:
    """Wait until every section thread has ended (its notebook written), or the deadline."""
    for ended in finished:
        ended.wait(max(0.0, deadline - time.monotonic()))


def execute_sections(
    run_dir: Path,
    params: Params,
    *,
    nb_dir: Path | None = None,
    workers: int | None = None,
    progress: Progress = lambda line: None,
    secrets: frozenset[str] = frozenset(),
    before_first: Callable[[], None] | None = None,
) -> list[SectionRun]:
    """Run every enabled section; ``before_first`` is called once the kernels are starting,
    before the first section (what it raises ends the run: no section ran). On SIGINT/SIGTERM/SIGHUP (KeyboardInterrupt in the main thread): interrupt
    every kernel and give running cells TEARDOWN_GRACE_S to run their finally steps, then kill every
    kernel, record the unfinished sections as interrupted ERROR evidence, re-raise."""
    nb_dir = nb_dir or notebooks_for(run_dir, params)
    enabled = params.enabled_sections()
    runs: dict[str, SectionRun] = {}
    for name in SECTION_ORDER:
        if name not in enabled:
            runs[name] = write_skipped(name, run_dir, "switched off in params")
    ensure_kernelspec()
    KERNELS.reset()
    stop = threading.Event()
    done: dict[str, SectionRun] = {}
    started: dict[str, tuple[str, float]] = {}
    finished: list[threading.Event] = []
    workers = workers or params.runner.workers
    # A kernel for every worker, started at once; a notebook that ends well leaves its kernel,
    # reset, to the next section and at last to the report notebook. A new kernel starts only
    # in place of one that was not reused (its notebook failed).
    kernels = WarmKernels(run_dir, workers, spare=0)
    kernels.expect(len(enabled) + 1)

    def one(name: str) -> SectionRun:
        try:
            result = run_section_notebook(name, run_dir, params, nb_dir, secrets, stop, kernels)
        except Exception as exc:  # our own machinery (a full disk, say): recorded, never a lost section
            error = redact_text(_short_error(exc), secrets)
            with suppress(Exception):  # no evidence file: the summary counts the enabled section as ERROR
                write_evidence(run_dir, _error_result(name, error, utc_now(), 0.0))
            result = SectionRun(name, Status.ERROR, 0.0, "", error)
        if result.error != INTERRUPTED:
            suffix = f"  ({result.error.splitlines()[0][:120]})" if result.error else ""
            progress(f"  {name:<12} {result.status.value:<12} {result.duration_s:6.1f} s{suffix}")
        return result

    # Performance is measured alone: our own probes must not be the load that slows the target.
    shared = [name for name in enabled if name not in EXCLUSIVE_SECTIONS]
    exclusive = [name for name in enabled if name in EXCLUSIVE_SECTIONS]
    try:
        papermill_engine()  # papermill's imports, while the kernels start and the targets boot
        if before_first is not None:
            before_first()
        _run_in_threads(shared, one, workers, stop, done, started, finished)
        kernels.settle(hold=True)  # no kernel starts or warms up while performance measures
        _run_in_threads(exclusive, one, 1, stop, done, started, finished)
    except KeyboardInterrupt as exc:
        stop.set()
        kernels.close()
        # nbclient logs every kernel we kill ("Kernel died ..."): expected noise now. It logs through traitlets' logger when papermill gives it none of its own. They
        # stay quiet: a section thread may notice its dead kernel after the grace period too, and
        # the process is on its way out.
        for name in ("papermill", "traitlets", "nbclient"):
            logging.getLogger(name).disabled = True
        if KERNELS.interrupt_all():
            progress(f"stopping: running sections get up to {TEARDOWN_GRACE_S:.0f} s for their finally steps")
            _wait_for_sections(finished, time.monotonic() + TEARDOWN_GRACE_S)
        stop_all_kernels()
        _wait_for_sections(finished, time.monotonic() + _INTERRUPT_GRACE_S)  # they notice their dead kernels
        _record_interrupted(run_dir, enabled, dict(done), started, interrupt_signal(exc), secrets)
        raise
    except BaseException:
        kernels.close()
        raise
    leave_report_kernel(run_dir, kernels)
    runs.update(done)
    return [runs[name] for name in SECTION_ORDER]
