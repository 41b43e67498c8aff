"""Notebook kernels: every kernel a run starts, tracked so an interrupt can kill it; kernels
started and warmed up ahead of the notebooks that will run in them; papermill's engine with an
immediate shutdown; the kernelspec of this interpreter.

Kernels talk to us over Unix domain sockets (``ipc``), not TCP: jupyter_client picks a TCP port by
binding and releasing it, and on a machine that opens other sockets at the same time (a test run,
a CI host, our own probes) another process can take that port before the kernel binds it; the
kernel then dies at start ("Kernel died before replying to kernel_info"). Socket files named by a
random id cannot collide.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import json
import os
import queue
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .evidence import write_json_atomic

__all__ = [
    "KERNELS",
    "WarmKernels",
    "close_report_kernel",
    "ensure_kernelspec",
    "kernel_name",
    "leave_report_kernel",
    "papermill_engine",
    "stop_all_kernels",
    "socket_file_kernel_manager",
    "take_report_kernel",
    "tracked_kernel_manager",
]


class _KernelRegistry:
    """Every kernel this process started and has not shut down yet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[Any] = set()  # jupyter_client KernelManagers
        self._running: set[Any] = set()  # of those, the ones handed to a notebook (started and warm)
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
            self._running.discard(km)

    def running_a_notebook(self, km: Any) -> None:
        with self._lock:
            if km in self._live:
                self._running.add(km)

    def idle(self, km: Any) -> None:
        with self._lock:
            self._running.discard(km)

    def interrupt_all(self) -> int:
        """SIGINT every live kernel, as Ctrl-C in JupyterLab would: the running cell gets a
        KeyboardInterrupt, and the probes cancel their sessions and run their finally steps (which
        close what setup steps opened on the target). No new kernel may start from now on.
        Only kernels running a notebook: one still starting would die of the signal in its imports,
        printing a fatal error on our terminal (it has nothing to tear down)."""
        with self._lock:
            self._stopping = True
            live = list(self._running & self._live)
        for km in live:
            pid = getattr(km.provisioner, "pid", None) if km.provisioner is not None else None
            if pid:
                with suppress(OSError):
                    os.kill(pid, signal.SIGINT)
        return len(live)

    def stop_all(self) -> int:
        with self._lock:
            self._stopping = True
            live, self._live, self._running = list(self._live), set(), set()
        for km in live:
            _kill_kernel(km)
        return len(live)


KERNELS = _KernelRegistry()


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
        km.cleanup_ipc_files()
    except OSError:
        pass


def _ipc_prefix() -> str:
    """Where a kernel's five socket files go (``<prefix>-<n>``): a short path, since a Unix socket
    path holds at most 107 bytes, under the temporary folder when that is short enough."""
    folder = tempfile.gettempdir()
    if len(folder) > 64:
        folder = "/tmp"
    return os.path.join(folder, f"stability-kernel-{uuid.uuid4().hex[:16]}")


# How long one look at IOPub waits while a client checks that a kernel is ready (see below).
_IOPUB_POLL_S = 0.02


@cache
def quick_ready_client() -> type:
    """jupyter_client's asyncio kernel client, with ``wait_for_ready`` polling IOPub every 20 ms
    instead of every 200 ms. jupyter_client's version asks for kernel_info, then looks at IOPub
    (nothing there: not subscribed yet, ask again), then empties IOPub until a look finds
    nothing, and that last look always waits out its whole timeout: 0.2 s of every start of a
    notebook on a running kernel, and of every reset between two notebooks, with nothing to do.
    The steps and their order are the same here; only the waits are shorter (a kernel slower
    than that to publish is asked again, as it is there)."""
    from jupyter_client.asynchronous.client import AsyncKernelClient

    class QuickReadyClient(AsyncKernelClient):
        async def wait_for_ready(self, timeout: float | None = None) -> None:
            deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
            while True:
                self.kernel_info()
                try:
                    reply = await self.shell_channel.get_msg(timeout=1)
                except queue.Empty:
                    reply = None
                if reply is not None and reply["msg_type"] == "kernel_info_reply":
                    try:
                        await self.iopub_channel.get_msg(timeout=_IOPUB_POLL_S)
                    except queue.Empty:
                        pass  # IOPub not connected yet: ask again
                    else:
                        self._handle_kernel_info_reply(reply)
                        break
                if not await self._async_is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")
            while True:  # what kernel_info left on IOPub (its busy and idle) must not reach a cell
                try:
                    await self.iopub_channel.get_msg(timeout=_IOPUB_POLL_S)
                except queue.Empty:
                    return

    return QuickReadyClient


@cache
def socket_file_kernel_manager() -> type:
    """jupyter_client's kernel manager over socket files (``ipc``) instead of TCP ports (see the
    module's docstring), handing out ``quick_ready_client`` clients. Built on first use: the
    command line starts without importing jupyter_client."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class SocketFileKernelManager(AsyncKernelManager):
        @default("client_factory")
        def _client_factory_default(self) -> type:
            return quick_ready_client()

        def __init__(self, **kw: Any) -> None:
            kw.setdefault("transport", "ipc")
            super().__init__(**kw)
            if self.transport == "ipc":
                # Absolute and unique: jupyter_client's default ("kernel-ipc") is relative to
                # each process's cwd, and the kernel runs in the notebook's folder, not ours.
                self.ip = _ipc_prefix()

    return SocketFileKernelManager


_MANAGER_CLASS_LOCK = threading.Lock()


def tracked_kernel_manager() -> type:
    """nbclient's kernel manager, over socket files, registered while its kernel lives so an
    interrupt can kill it. Built once, under a lock, with its traits resolved (see below)."""
    with _MANAGER_CLASS_LOCK:
        return _tracked_kernel_manager()


@cache
def _tracked_kernel_manager() -> type:
    base: Any = socket_file_kernel_manager()

    class TrackedKernelManager(base):  # base: a class built at run time (Any to mypy)
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            await super()._async_launch_kernel(kernel_cmd, **kw)
            KERNELS.add(self)

        async def _async_interrupt_kernel(self) -> None:
            # jupyter_client SIGINTs the kernel before every shutdown. A kernel caught between
            # two messages then logs "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel."
            # to our terminal (its stderr is ours). Nothing runs when we shut a kernel down:
            # there is nothing to interrupt.
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

        async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
            try:
                await super().shutdown_kernel(now=now, restart=restart)
            finally:
                KERNELS.discard(self)

    # traitlets resolves a trait's class given by name on the first instance, unguarded: two threads
    # making their first manager (or client) at once can both see the name and one then resolves the
    # class itself ("import_item accepts strings, not MetaHasTraits"), ending a warm kernel's thread.
    # One instance and one client made here, under the caller's lock, resolve them all ahead.
    TrackedKernelManager(kernel_name="python3").client()
    return TrackedKernelManager


def stop_all_kernels() -> int:
    """Kill every kernel this process started (and their children). Returns how many."""
    stopped = KERNELS.stop_all()
    close_report_kernel()
    return stopped


_ENGINE = "stability-proof"


@cache
def papermill_engine() -> str:
    """papermill's nbclient engine, registered under our name, with two differences: it runs
    on a kernel started ahead of time when it is handed one (``km``), and it kills the kernel
    as soon as the last cell is done ("immediate": 0.1 s against 0.35-0.7 s for a graceful
    shutdown, which only waits for a kernel that has nothing left to do) — unless told to
    ``keep_kernel``: the kernel a notebook ran in is then left running, for the next one."""
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
            keep_kernel: bool = False,
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
            if not keep_kernel:
                # cleanup_kc: nbclient leaves a kernel it was handed running; this one is ours to stop.
                return client.execute(cleanup_kc=True)
            try:  # the kernel lives on for the next notebook; only this notebook's channels close
                return client.execute(cleanup_kc=False)
            finally:
                if client.kc is not None:
                    client.kc.stop_channels()

    papermill_engines.register(_ENGINE, WarmKernelEngine)
    return _ENGINE


# Run in a warm kernel before a notebook gets it: the imports every notebook begins with (the
# package loads its parts on first use: open_section 0.5 s, the sections and their probes 1.7 s;
# pyplot 0.35 s, which every notebook's questions import; show_section 0.1 s, which every notebook
# ends with), paid while the previous notebook runs instead of in the next notebook's first cells.
# Then the process state a notebook may change is noted (``_snapshot_kernel_state``), for the reset
# below to put back. Then gc.freeze(): what the imports made lives as long as the kernel, and a full
# collection no longer walks it (80 ms each here; the reset below makes two, and a probe's long run
# makes more).
WARM_UP_CODE = (
    "import stability_lib as sl\n"
    "sl.open_section, sl.sections, sl.show_section\n"
    "import matplotlib.pyplot\n"
    "from stability_lib.execution.kernels import _snapshot_kernel_state\n"
    "_snapshot_kernel_state()\n"
    "del _snapshot_kernel_state\n"
    "import gc\n"
    "gc.freeze()"
)
# Run in a kernel between two notebooks: the next one starts with an empty namespace, no open
# figure and the process state of the end of the warm-up (``_restore_kernel_state``), as in a
# kernel of its own; imported modules stay (that is the point of keeping it). A kernel whose state
# cannot be put back fails its reset, and is not reused.
# What survives a full collection with the namespace empty is module state (the modules the last
# notebook imported): frozen too.
RESET_CODE = (
    "import matplotlib.pyplot\n"
    "matplotlib.pyplot.close('all')\n"
    "from stability_lib.execution.kernels import _restore_kernel_state\n"
    "_restore_kernel_state()\n"
    "get_ipython().reset(new_session=True)\n"  # names of the last notebook, its outputs, its count
    "import gc\n"
    "gc.collect()\n"
    "gc.freeze()\n"
)
# Module-level registries a notebook may add to or take from (module, attribute: a dict), put back
# between two notebooks. Looked up in sys.modules: this layer never imports the report.
_KERNEL_REGISTRIES = (("stability_lib.report.views", "_VIEWS"),)


@dataclass(frozen=True, repr=False)  # no repr: the environment holds secrets
class _KernelState:
    """What a notebook may change in its kernel's process and the next notebook must not inherit,
    as it was at the end of the warm-up. Kept in the kernel's memory only: never shown or written."""

    cwd: str
    path: list[str]
    environ: dict[str, str]
    warning_filters: list[Any]
    rc_params: dict[str, Any] | None  # matplotlib's, but its backend; None: matplotlib not imported
    registries: dict[tuple[str, str], tuple[dict[Any, Any], dict[Any, Any]]]  # the dict, its entries


_KERNEL_STATE: _KernelState | None = None  # in a kernel, from its warm-up on


def _snapshot_kernel_state() -> None:
    """In a kernel, at the end of its warm-up (after its imports): note the state
    ``_restore_kernel_state`` puts back between two notebooks."""
    import warnings

    global _KERNEL_STATE
    matplotlib = sys.modules.get("matplotlib")
    rc_params = None
    if matplotlib is not None:
        rc_params = dict(matplotlib.rcParams.copy())  # raw values: no revalidation, no backend resolution
        rc_params.pop("backend", None)  # as matplotlib.rc_context: not a setting a reset can switch
    registries = {}
    for module_name, attribute in _KERNEL_REGISTRIES:
        module = sys.modules.get(module_name)
        if module is not None:
            registry = getattr(module, attribute)
            registries[module_name, attribute] = (registry, dict(registry))
    _KERNEL_STATE = _KernelState(
        cwd=os.getcwd(),
        path=list(sys.path),
        environ=dict(os.environ),
        warning_filters=list(warnings.filters),
        rc_params=rc_params,
        registries=registries,
    )


def _restore_kernel_state() -> None:
    """In a kernel, between two notebooks: put back the working folder, sys.path, os.environ, the
    warnings filters, matplotlib's rcParams and the registries as the warm-up left them. Raises
    (the kernel is then not reused) when there is nothing to put back: no warm-up state, or
    matplotlib or a registry imported only since."""
    import warnings

    state = _KERNEL_STATE
    if state is None:
        raise RuntimeError("this kernel's state was not noted at its warm-up")
    os.chdir(state.cwd)
    if sys.path != state.path:
        sys.path[:] = state.path
    if os.environ != state.environ:  # compares without showing a value
        for name in os.environ.keys() - state.environ.keys():
            del os.environ[name]
        os.environ.update(state.environ)
    if warnings.filters != state.warning_filters:
        warnings.resetwarnings()  # invalidates what the warnings machinery cached under these filters
        warnings.filters = list(state.warning_filters)  # as catch_warnings puts them back
    matplotlib = sys.modules.get("matplotlib")
    if matplotlib is not None:
        if state.rc_params is None:
            raise RuntimeError("matplotlib was imported after the warm-up: its rcParams cannot be put back")
        update = getattr(matplotlib.rcParams, "_update_raw", None)  # matplotlib 3.9+; a dict before
        if update is not None:
            update(state.rc_params)
        else:
            dict.update(matplotlib.rcParams, state.rc_params)
    for module_name, attribute in _KERNEL_REGISTRIES:
        module = sys.modules.get(module_name)
        if module is None:
            continue
        if (module_name, attribute) not in state.registries:
            raise RuntimeError(f"{module_name} was imported after the warm-up: {attribute} cannot be put back")
        registry, entries = state.registries[module_name, attribute]
        setattr(module, attribute, registry)
        if registry != entries:
            registry.clear()
            registry.update(entries)


_KERNEL_START_TIMEOUT_S = 60.0  # papermill's default start_timeout
_RESET_TIMEOUT_S = 10.0


async def _run_quietly(km: Any, code: str, timeout_s: float) -> bool:
    """Run ``code`` in the kernel (silent, not in its history). True when it ran without error."""
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=timeout_s)
        msg_id = kc.execute(code, silent=True, store_history=False)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                reply = await kc.get_shell_msg(timeout=0.5)
            except queue.Empty:
                if not await km.is_alive():
                    raise RuntimeError("kernel died") from None
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                return bool(reply["content"].get("status") == "ok")
        raise TimeoutError("kernel did not answer in time")
    finally:
        kc.stop_channels()


async def _start_and_warm_up(km: Any, cwd: Path) -> None:
    # The arguments nbclient passes when it starts a kernel itself.
    await km.start_kernel(cwd=str(cwd), extra_arguments=["--HistoryManager.hist_file=:memory:"])
    # An import error is the notebook's to report, in its own first cell.
    await _run_quietly(km, WARM_UP_CODE, _KERNEL_START_TIMEOUT_S)


def _alive(km: Any) -> bool:
    process = getattr(km.provisioner, "process", None)
    return process is not None and process.poll() is None


def _discard(km: Any) -> None:
    KERNELS.discard(km)
    _kill_kernel(km)


class _WarmKernel:
    """One kernel being started and warmed up in a daemon thread; ``on_done`` when that is over.
    ``ready``: a kernel that is already warm (one a notebook ran in, reset since)."""

    def __init__(self, cwd: Path, on_done: Callable[[], None], ready: Any = None) -> None:
        self.km: Any = ready
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._cancelled = False
        self._on_done = on_done
        if ready is not None:
            self.done.set()
            return
        threading.Thread(target=self._start, args=(cwd,), name="stability-warm-kernel", daemon=True).start()

    def _start(self, cwd: Path) -> None:
        km: Any = None
        try:  # any failure here, making the manager included, must still end in done.set(): wait() waits for it
            km = tracked_kernel_manager()(kernel_name=ensure_kernelspec())
            asyncio.run(_start_and_warm_up(km, cwd))
            started = True
        except Exception:  # no warm kernel: the notebook starts its own, and reports why if that fails too
            started = False
        with self._lock:
            keep = started and not self._cancelled
            self.km = km if keep else None
            self.done.set()
        if not keep and km is not None:
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


class WarmKernels:
    """Kernels started ahead of the notebooks that will run in them, in one working folder, and
    kept for the next notebook once one is done with them.

    ``expect(n)``: n more notebooks will ask for a kernel. At most ``live`` kernels exist at
    once (running a notebook, or warm and waiting), so the warm-ups take the CPU of at most
    ``spare`` kernels beyond the notebooks running at once; a spare starts once no other kernel
    is warming up (at the start of a run, the first notebooks' kernels get the CPU first).
    ``take()`` hands out a warm kernel (one kept from a notebook first, else the oldest started,
    waiting for it if it is still starting) or None when there is none: the notebook then starts
    its own, as papermill always does.
    ``release(km, reuse=...)`` when that notebook is done: with ``reuse`` (it ran to its end),
    the kernel's namespace is reset and it waits for the next notebook, which saves a kernel's
    start and imports (about 1.3 CPU-s each); otherwise it is killed."""

    def __init__(self, cwd: Path, live: int, spare: int = 1) -> None:
        self._cwd, self._live = cwd, max(1, live)
        self._spare = max(0, min(spare, self._live - 1))
        self._lock = threading.Lock()
        self._warm: deque[_WarmKernel] = deque()
        self._in_use = 0
        self._wanted = 0
        self._closed = False
        self._held = False

    def _fill(self) -> None:  # with the lock held
        while (
            not (self._closed or self._held)
            and not KERNELS.stopping
            and len(self._warm) < self._wanted
            and len(self._warm) + self._in_use < self._live
            and (len(self._warm) + self._in_use < self._live - self._spare or all(w.done.is_set() for w in self._warm))
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

    def release(self, km: Any = None, *, reuse: bool = False) -> None:
        """A notebook is done with ``km`` (None: it had no kernel from us). With ``reuse``, keep
        the kernel, reset, for the next notebook if one is still to come; else kill it."""
        keep = reuse and km is not None and _alive(km) and self._reset(km)
        with self._lock:
            self._in_use = max(0, self._in_use - 1)
            keep = keep and not self._closed and not KERNELS.stopping and self._wanted > len(self._warm)
            if keep:
                KERNELS.idle(km)  # an interrupt has nothing to stop in it until it runs again
                self._warm.appendleft(_WarmKernel(self._cwd, self._warmed, ready=km))
            self._fill()
        if km is not None and not keep:
            _discard(km)

    @staticmethod
    def _reset(km: Any) -> bool:
        try:
            return asyncio.run(_run_quietly(km, RESET_CODE, _RESET_TIMEOUT_S))
        except Exception:  # a kernel that cannot be reset is not reused: a fresh one starts instead
            return False

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
_REPORT_KERNEL: tuple[Path, WarmKernels] | None = None
_REPORT_KERNEL_LOCK = threading.Lock()


def leave_report_kernel(cwd: Path, kernels: WarmKernels) -> None:
    global _REPORT_KERNEL
    with _REPORT_KERNEL_LOCK:
        previous, _REPORT_KERNEL = _REPORT_KERNEL, (cwd.resolve(), kernels)
    if previous is not None:
        previous[1].close()


def take_report_kernel(cwd: Path) -> Any:
    global _REPORT_KERNEL
    with _REPORT_KERNEL_LOCK:
        if _REPORT_KERNEL is None or _REPORT_KERNEL[0] != cwd.resolve():
            return None
        kernels, _REPORT_KERNEL = _REPORT_KERNEL[1], None
    km = kernels.take()
    kernels.close()
    return km


def close_report_kernel() -> None:
    global _REPORT_KERNEL
    with _REPORT_KERNEL_LOCK:
        left, _REPORT_KERNEL = _REPORT_KERNEL, None
    if left is not None:
        left[1].close()


atexit.register(stop_all_kernels)  # a warm kernel nobody took (a run never rendered) dies with us


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
