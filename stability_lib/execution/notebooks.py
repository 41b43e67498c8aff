"""Orchestration of one run: load, parameterize, execute, check, write.

``execute_sections`` runs section notebooks with papermill's Python API in a
small pool of daemon threads (each notebook gets its own kernel process). A
section that raises, times out or whose kernel dies is recorded as ERROR
evidence; the others still run.

Kernels: the next notebook's kernel is started, and has imported the package,
while the previous notebook runs (``_WarmKernels``: at most workers + 1 live at
once; the performance section still runs alone, once every warm-up is over). A
kernel is killed as soon as its notebook's last cell is done: its evidence is
written by then, and a graceful shutdown only waits for a kernel with nothing to do.

Interrupts: jupyter_client starts every kernel in a new session, so a terminal
Ctrl-C never reaches it, and a thread blocked in a notebook keeps the process
alive. Every kernel we start is therefore tracked (``_TrackedKernelManager``);
on SIGINT/SIGTERM the main thread kills each kernel with everything it started,
records the unfinished sections as ERROR ("interrupted") and re-raises.
"""

from __future__ import annotations

import asyncio
import atexit
import datetime as dt
import hashlib
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import RunError
from ..core.models import SectionResult, Status
from ..core.version import __version__
from .evidence import evidence_path, read_evidence, write_evidence, write_json_atomic
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


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM in the main thread: a KeyboardInterrupt that knows its signal."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def interrupt_signal(exc: BaseException) -> str:
    """The signal behind an interrupt (a plain KeyboardInterrupt is Ctrl-C: SIGINT)."""
    return getattr(exc, "signal_name", "SIGINT")


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM raise ``Interrupted`` in the main thread, once: a second signal while
    we are stopping is ignored, so that the cleanup it would cut short still runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        if fired.is_set():
            return
        fired.set()
        raise Interrupted(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _KernelRegistry:
    """Every kernel this process started and has not shut down yet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[Any] = set()  # jupyter_client KernelManagers
        self._stopping = False

    def reset(self) -> None:
        with self._lock:
            self._stopping = False

    @property
    def stopping(self) -> bool:
        return self._stopping

    def add(self, km: Any) -> None:
        with self._lock:
            self._live.add(km)
            stopping = self._stopping
        if stopping:  # started while we were stopping: it must not survive us
            _kill_kernel(km)

    def discard(self, km: Any) -> None:
        with self._lock:
            self._live.discard(km)

    def stop_all(self) -> int:
        with self._lock:
            self._stopping = True
            live, self._live = list(self._live), set()
        for km in live:
            _kill_kernel(km)
        return len(live)


_KERNELS = _KernelRegistry()


def _kill_kernel(km: Any) -> None:
    """SIGKILL a kernel and every process below it (a test run that setsid()s away included),
    and remove its connection file: a killed kernel cannot clean up after itself."""
    import psutil  # ipykernel's own dependency

    pid = getattr(km.provisioner, "pid", None) if km.provisioner is not None else None
    if pid:
        try:
            victims = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            victims = []
        for proc in victims:
            with suppress(psutil.Error):
                proc.kill()
        with suppress(OSError):
            os.killpg(pid, signal.SIGKILL)  # the kernel leads its own session and group
        psutil.wait_procs(victims, timeout=2)
    try:
        if km.connection_file:
            Path(km.connection_file).unlink(missing_ok=True)
    except OSError:
        pass


@cache
def _tracked_kernel_manager() -> type:
    """nbclient's kernel manager, registered while its kernel lives so an interrupt can kill it.
    Built on first use: the command line starts without importing jupyter_client."""
    from jupyter_client.manager import AsyncKernelManager

    class TrackedKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            await super()._async_launch_kernel(kernel_cmd, **kw)
            _KERNELS.add(self)

        async def _async_interrupt_kernel(self) -> None:
            # jupyter_client SIGINTs the kernel before every shutdown. A kernel caught between
            # two messages then logs "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel."
            # to our terminal (its stderr is ours). Nothing runs when we shut a kernel down:
            # there is nothing to interrupt.
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

        async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:  # type: ignore[override]
            try:
                await super().shutdown_kernel(now=now, restart=restart)
            finally:
                _KERNELS.discard(self)

    return TrackedKernelManager


def stop_all_kernels() -> int:
    """Kill every kernel this process started (and their children). Returns how many."""
    stopped = _KERNELS.stop_all()
    _close_report_kernel()
    return stopped


_ENGINE = "stability-proof"


@cache
def _papermill_engine() -> str:
    """papermill's nbclient engine, registered under our name, with two differences: it runs
    on a kernel started ahead of time when it is handed one (``km``), and it kills the kernel
    as soon as the last cell is done ("immediate": 0.1 s against 0.35-0.7 s for a graceful
    shutdown, which only waits for a kernel that has nothing left to do)."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    class WarmKernelEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(
            cls,
            nb_man: Any,
            kernel_name: str,
            log_output: bool = False,
            stdout_file: Any = None,
            stderr_file: Any = None,
            start_timeout: float = 60,
            execution_timeout: float | None = None,
            **kwargs: Any,
        ) -> Any:
            client = PapermillNotebookClient(
                nb_man,
                **merge_kwargs(
                    remove_args(["input_path", "timeout", "startup_timeout"], **kwargs),
                    timeout=execution_timeout,
                    startup_timeout=start_timeout,
                    kernel_name=kernel_name,
                    log=logger,
                    log_output=log_output,
                    stdout_file=stdout_file,
                    stderr_file=stderr_file,
                    shutdown_kernel="immediate",
                ),
            )
            # cleanup_kc: nbclient leaves a kernel it was handed running; this one is ours to stop.
            return client.execute(cleanup_kc=True)

    papermill_engines.register(_ENGINE, WarmKernelEngine)
    return _ENGINE


# Run in a warm kernel before a notebook gets it: the imports every notebook begins with (the
# package loads its parts on first use: open_section 0.5 s, the sections and their probes 1.7 s),
# paid while the previous notebook runs instead of in the next notebook's first cells.
WARM_UP_CODE = "import stability_lib as sl\nsl.open_section, sl.sections"
_KERNEL_START_TIMEOUT_S = 60.0  # papermill's default start_timeout


async def _start_and_warm_up(km: Any, cwd: Path) -> None:
    # The arguments nbclient passes when it starts a kernel itself.
    await km.start_kernel(cwd=str(cwd), extra_arguments=["--HistoryManager.hist_file=:memory:"])
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=_KERNEL_START_TIMEOUT_S)
        msg_id = kc.execute(WARM_UP_CODE, silent=True, store_history=False)
        deadline = time.monotonic() + _KERNEL_START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                reply = await kc.get_shell_msg(timeout=0.5)
            except queue.Empty:
                if not await km.is_alive():
                    raise RuntimeError("kernel died while warming up") from None
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                return  # an import error is the notebook's to report, in its own first cell
        raise TimeoutError("kernel warm-up timed out")
    finally:
        kc.stop_channels()


def _alive(km: Any) -> bool:
    process = getattr(km.provisioner, "process", None)
    return process is not None and process.poll() is None


def _discard(km: Any) -> None:
    _KERNELS.discard(km)
    _kill_kernel(km)


class _WarmKernel:
    """One kernel being started and warmed up in a daemon thread; ``on_done`` when that is over."""

    def __init__(self, cwd: Path, on_done: Callable[[], None]) -> None:
        self.km: Any = None
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._cancelled = False
        self._on_done = on_done
        threading.Thread(target=self._start, args=(cwd,), name="stability-warm-kernel", daemon=True).start()

    def _start(self, cwd: Path) -> None:
        km = _tracked_kernel_manager()(kernel_name=ensure_kernelspec())
        try:
            asyncio.run(_start_and_warm_up(km, cwd))
            started = True
        except Exception:  # no warm kernel: the notebook starts its own, and reports why if that fails too
            started = False
        with self._lock:
            keep = started and not self._cancelled
            self.km = km if keep else None
            self.done.set()
        if not keep:
            _discard(km)
        self._on_done()

    def wait(self) -> Any:
        """The started kernel's manager, or None if it could not be started (or died since)."""
        while not self.done.wait(0.2):  # short waits: a main thread stays responsive to signals
            pass
        if self.km is not None and not _alive(self.km):
            _discard(self.km)
            self.km = None
        return self.km

    def kill(self) -> None:
        """Kill the kernel now, or as soon as its start is over (without waiting for that)."""
        with self._lock:
            self._cancelled = True
            km, self.km = self.km, None
        if km is not None:
            _discard(km)


class _WarmKernels:
    """Kernels started ahead of the notebooks that will run in them, in one working folder.

    ``expect(n)``: n more notebooks will ask for a kernel. At most ``live`` kernels exist at
    once (running a notebook, or warm and waiting), so the warm-ups take the CPU of one spare
    kernel, not of every notebook to come; the spare starts once no other kernel is warming up
    (at the start of a run, the first notebooks' kernels get the CPU first). ``take()`` hands
    out the oldest warm kernel (waiting for it if it is still starting) or None when there is
    none: the notebook then starts its own, as papermill always does. ``release()`` when that
    notebook is done."""

    def __init__(self, cwd: Path, live: int) -> None:
        self._cwd, self._live = cwd, max(1, live)
        self._lock = threading.Lock()
        self._warm: deque[_WarmKernel] = deque()
        self._in_use = 0
        self._wanted = 0
        self._closed = False
        self._held = False

    def _fill(self) -> None:  # with the lock held
        while (
            not (self._closed or self._held)
            and not _KERNELS.stopping
            and len(self._warm) < self._wanted
            and len(self._warm) + self._in_use < self._live
            and (len(self._warm) + self._in_use < self._live - 1 or all(w.done.is_set() for w in self._warm))
        ):
            self._warm.append(_WarmKernel(self._cwd, self._warmed))

    def _warmed(self) -> None:
        with self._lock:
            self._fill()

    def expect(self, notebooks: int) -> None:
        with self._lock:
            self._wanted += notebooks
            self._fill()

    def take(self) -> Any:
        with self._lock:
            self._wanted = max(0, self._wanted - 1)
            self._in_use += 1
            warm = self._warm.popleft() if self._warm else None
            self._fill()  # the next notebook's kernel starts while this one runs
        return warm.wait() if warm is not None else None

    def release(self) -> None:
        with self._lock:
            self._in_use = max(0, self._in_use - 1)
            self._fill()

    def settle(self, *, hold: bool = False) -> None:
        """Wait until every kernel still wanted (within ``live``) is started and warmed up;
        with ``hold``, start none from then on."""
        while True:
            with self._lock:
                self._fill()
                starting = [warm for warm in self._warm if not warm.done.is_set()]
                if not starting:
                    self._held = self._held or hold
                    return
            starting[0].wait()

    def close(self) -> None:
        """Kill every kernel not handed out."""
        with self._lock:
            self._closed = True
            left, self._warm = list(self._warm), deque()
        for warm in left:
            warm.kill()


# A warm kernel execute_sections leaves for the run's report notebook: (run folder, kernels).
_REPORT_KERNEL: tuple[Path, _WarmKernels] | None = None
_REPORT_KERNEL_LOCK = threading.Lock()


def _leave_report_kernel(cwd: Path, kernels: _WarmKernels) -> None:
    global _REPORT_KERNEL
    with _REPORT_KERNEL_LOCK:
        previous, _REPORT_KERNEL = _REPORT_KERNEL, (cwd.resolve(), kernels)
    if previous is not None:
        previous[1].close()


def _take_report_kernel(cwd: Path) -> Any:
    global _REPORT_KERNEL
    with _REPORT_KERNEL_LOCK:
        if _REPORT_KERNEL is None or _REPORT_KERNEL[0] != cwd.resolve():
            return None
        kernels, _REPORT_KERNEL = _REPORT_KERNEL[1], None
    km = kernels.take()
    kernels.close()
    return km


def _close_report_kernel() -> None:
    global _REPORT_KERNEL
    with _REPORT_KERNEL_LOCK:
        left, _REPORT_KERNEL = _REPORT_KERNEL, None
    if left is not None:
        left[1].close()


atexit.register(stop_all_kernels)  # a warm kernel nobody took (a run never rendered) dies with us


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


def kernel_name() -> str:
    # Unique per interpreter: a stray global "python3" kernelspec cannot take over.
    digest = hashlib.sha256(sys.prefix.encode()).hexdigest()[:8]
    return f"stability-proof-{digest}"


def ensure_kernelspec() -> str:
    """Install (idempotently) a kernelspec pointing at this interpreter, under sys.prefix."""
    name = kernel_name()
    folder = Path(sys.prefix) / "share" / "jupyter" / "kernels" / name
    spec = {
        # log_level ERROR: every kernel start would otherwise print a harmless TCP warning to the terminal.
        "argv": [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            "--IPKernelApp.log_level=ERROR",
        ],
        "display_name": f"stability-proof ({sys.prefix})",
        "language": "python",
        "metadata": {"debugger": False},
    }
    target = folder / "kernel.json"
    try:
        current = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        current = None
    if current != spec:
        write_json_atomic(target, spec)  # two runs starting at once never read half a file
    return name


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
    try:
        (run_dir / "evidence").mkdir(parents=True, exist_ok=True)
        (run_dir / "notebooks").mkdir(exist_ok=True)
        # The raw params keep ${NAME} references: the secret values never reach the disk.
        (run_dir / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
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
                    "targets": {
                        "candidate": params.target.base_url,
                        **({"baseline": params.baseline.base_url} if params.baseline else {}),
                    },
                },
                secrets,
            ),
        )
        from .baseline import FINGERPRINT_FILE, fingerprint

        write_json_atomic(
            run_dir / FINGERPRINT_FILE,
            redact_obj(fingerprint(raw, params.target.base_url, params.target.commit), secrets),
        )
    except OSError as exc:
        raise RunError(f"cannot write the run directory {run_dir}: {exc.strerror or exc}") from exc
    return run_dir


def execute_notebook(
    source: Path,
    output: Path,
    parameters: dict[str, Any],
    *,
    cwd: Path,
    timeout_s: float,
    kernels: _WarmKernels | None = None,
) -> None:
    """Execute one notebook with papermill in a kernel of its own: from ``kernels`` when given,
    else the warm kernel a run left in ``cwd`` for its report, else a new one."""
    import papermill

    km = kernels.take() if kernels is not None else _take_report_kernel(cwd)
    try:
        papermill.execute_notebook(
            str(source),
            str(output),
            parameters=parameters,
            engine_name=_papermill_engine(),
            km=km,  # None: nbclient starts the kernel
            kernel_name=ensure_kernelspec(),
            progress_bar=False,
            log_output=False,
            execution_timeout=timeout_s,
            request_save_on_cell_execute=False,
            # Not papermill's cwd=: that os.chdir()s this whole process, and notebooks run in
            # threads. nbclient starts the kernel in resources' metadata path instead.
            resources={"metadata": {"path": str(cwd)}},
            kernel_manager_class=_tracked_kernel_manager(),  # an interrupt can find and kill the kernel
        )
    finally:
        if kernels is not None:
            kernels.release()


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
    kernels: _WarmKernels | None = None,
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
) -> None:
    """Run ``one`` over ``names`` in daemon threads. Not a ThreadPoolExecutor: its threads are joined
    at interpreter exit, so a notebook blocked in a thread would hold an interrupted run hostage."""
    todo: queue.SimpleQueue[str] = queue.SimpleQueue()
    for name in names:
        todo.put(name)

    def worker() -> None:
        while not stop.is_set():
            try:
                name = todo.get_nowait()
            except queue.Empty:
                return
            started[name] = (utc_now(), time.monotonic())
            done[name] = one(name)

    threads = [
        threading.Thread(target=worker, name=f"stability-section-{i}", daemon=True)
        for i in range(max(1, min(workers, len(names))))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():  # a short join: the main thread stays responsive to signals
            thread.join(0.2)


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


def execute_sections(
    run_dir: Path,
    params: Params,
    *,
    nb_dir: Path | None = None,
    workers: int | None = None,
    progress: Progress = lambda line: None,
    secrets: frozenset[str] = frozenset(),
) -> list[SectionRun]:
    """Run every enabled section. On SIGINT/SIGTERM (KeyboardInterrupt in the main thread): kill
    every kernel, record the unfinished sections as interrupted ERROR evidence, re-raise."""
    nb_dir = nb_dir or notebooks_for(run_dir, params)
    enabled = params.enabled_sections()
    runs: dict[str, SectionRun] = {}
    for name in SECTION_ORDER:
        if name not in enabled:
            runs[name] = write_skipped(name, run_dir, "switched off in params")
    ensure_kernelspec()
    _KERNELS.reset()
    stop = threading.Event()
    done: dict[str, SectionRun] = {}
    started: dict[str, tuple[str, float]] = {}
    workers = workers or params.runner.workers
    # A kernel for every section and one for the report notebook, each started while the
    # notebooks before it run: at most one more kernel than notebooks running at once.
    kernels = _WarmKernels(run_dir, workers + 1)
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
        _run_in_threads(shared, one, workers, stop, done, started)
        kernels.settle(hold=True)  # no kernel starts or warms up while performance measures
        _run_in_threads(exclusive, one, 1, stop, done, started)
    except KeyboardInterrupt as exc:
        stop.set()
        kernels.close()
        # nbclient logs every kernel we kill ("Kernel died ..."): expected noise now. It logs through traitlets' logger when papermill gives it none of its own. They
        # stay quiet: a section thread may notice its dead kernel after the grace period too, and
        # the process is on its way out.
        for name in ("papermill", "traitlets", "nbclient"):
            logging.getLogger(name).disabled = True
        stop_all_kernels()
        deadline = time.monotonic() + _INTERRUPT_GRACE_S
        for thread in threading.enumerate():  # threads notice their dead kernels and write their notebooks
            if thread.name.startswith("stability-section-"):
                thread.join(max(0.0, deadline - time.monotonic()))
        _record_interrupted(run_dir, enabled, dict(done), started, interrupt_signal(exc), secrets)
        raise
    except BaseException:
        kernels.close()
        raise
    _leave_report_kernel(run_dir, kernels)
    runs.update(done)
    return [runs[name] for name in SECTION_ORDER]
