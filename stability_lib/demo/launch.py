"""Start the sample service for ``stability demo`` and for notebooks run by hand.

Each variant runs as its own process (``python -m stability_lib.demo``), so the
service under test never shares a GIL with the probes. The params file reaches
the services through environment variables (``DEMO_CANDIDATE_URL``,
``DEMO_BASELINE_URL``): a target stays data, and the library knows nothing of the demo.
"""

from __future__ import annotations

import atexit
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import RunError, StabilityError
from ._socket import HOST, listening_socket
from .db_folders import DB_FOLDER_PREFIX, sweep_stale_db_folders, write_owner

__all__ = [
    "DemoProcess",
    "DemoServices",
    "demo_process",
    "demo_services",
    "demo_targets",
    "run_demo",
    "interactive_run",
    "DEMO_PARAMS",
]

DEMO_PARAMS = Path(__file__).resolve().parents[2] / "params" / "demo.yaml"
_START_TIMEOUT_S = 30.0


class DemoProcess:
    """One sample service process. Its listening socket is bound here and handed to it, so
    ``url`` is known at once, before the service has started (a connection made early waits in
    the socket's backlog). ``wait=False`` returns as soon as it is launched (start several at
    once, then ``wait_ready()`` on each, or start other work first)."""

    def __init__(
        self, variant: str, faults: Sequence[str] = (), seed: int = 0, db: Path | None = None, *, wait: bool = True
    ) -> None:
        self._t0 = time.monotonic()
        self.variant = variant
        self._ready = False
        env = {k: v for k, v in os.environ.items() if k != "STABILITY_DEMO_FAULTS"}
        # stderr goes to a file, not a pipe nobody reads: a chatty server must never block on it.
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (lives as long as the process: closed by stop())
        try:
            sock = listening_socket()
        except OSError as exc:
            self.log.close()
            raise RunError(f"sample service ({variant}) did not start: cannot listen on {HOST}: {exc}") from None
        with sock:  # the service holds its own copy of the socket
            self.url = f"http://{HOST}:{sock.getsockname()[1]}"
            cmd = [sys.executable, "-m", "stability_lib.demo", "--variant", variant, "--fd", str(sock.fileno())]
            # It stops by itself if we die without stopping it (SIGKILL, a kernel killed): no orphan holding a port.
            cmd += ["--seed", str(seed), "--parent-pid", str(os.getpid())]
            if db is not None:
                cmd += ["--db", str(db)]
            for fault in faults:
                cmd += ["--fault", fault]
            # A session of its own: a terminal's Ctrl-C (sent to its foreground process group) must not stop
            # the service under a soak still running, whose remaining sessions would then be refused connects
            # (a false FAIL). We stop it ourselves on the way out (terminate(), stop(): by its pid).
            self.proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=self.log,
                text=True,
                env=env,
                pass_fds=(sock.fileno(),),
                start_new_session=True,
            )
        if wait:
            self.wait_ready()

    def wait_ready(self) -> str:
        """Wait until the service prints its URL (it serves from then on); a service that cannot
        start is stopped, and RunError says why."""
        if not self._ready:
            try:
                self._read_url(self.variant)
            except BaseException:  # a bad variant, or Ctrl-C while it starts: it must not outlive us
                self.stop()
                raise
            self._ready = True
        return self.url

    def _read_url(self, variant: str) -> None:
        box: list[str] = []
        stdout = self.proc.stdout
        assert stdout is not None  # Popen(stdout=PIPE)
        reader = threading.Thread(target=lambda: box.append(stdout.readline()), daemon=True)
        reader.start()
        while reader.is_alive() and time.monotonic() - self._t0 < _START_TIMEOUT_S:
            reader.join(0.2)  # short joins: the main thread stays responsive to signals
        line = box[0].strip() if box else ""
        if line != self.url:
            self._wait_stopped()
            self.log.seek(0)  # read before stop() closes the log
            lines = [ln.strip() for ln in self.log.read()[-2000:].splitlines() if ln.strip()]
            raise RunError(
                f"sample service ({variant}) did not start: {lines[-1][:300] if lines else 'no URL printed'}"
            )

    def terminate(self) -> None:
        """Ask the service to shut down (SIGTERM) without waiting: stop() waits."""
        if self.proc.poll() is None:
            self.proc.terminate()

    def _wait_stopped(self) -> None:
        self.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self) -> None:
        self._wait_stopped()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()


@contextmanager
def demo_process(variant: str, faults: Sequence[str] = (), seed: int = 0, db: Path | None = None) -> Iterator[str]:
    proc = DemoProcess(variant, faults, seed, db)
    try:
        yield proc.url
    finally:
        proc.stop()


@dataclass(frozen=True)
class DemoServices:
    """Sample services launched and not yet waited for: ``env`` already holds their URLs."""

    env: dict[str, str]
    wait_ready: Callable[[], None]  # until every service serves; RunError if one did not start
    terminate: Callable[[], None]  # ask every service to shut down, without waiting


@contextmanager
def demo_services(
    variant: str = "candidate", baseline_variant: str | None = "baseline", faults: Sequence[str] = ()
) -> Iterator[DemoServices]:
    """Launch candidate (and baseline) services without waiting for them; on the way out,
    stop them. The environment that params/demo.yaml reads is known at once."""
    with ExitStack() as stack:
        sweep_stale_db_folders()  # the database folders of earlier launchers that were killed
        # Database files at known paths, so the contract section can compare their schemas.
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=DB_FOLDER_PREFIX)))
        write_owner(folder)  # so that a later sweep can tell when we are gone
        env = {
            "DEMO_CANDIDATE_DB": str(folder / "candidate.sqlite3"),
            "DEMO_BASELINE_DB": str(folder / "baseline.sqlite3"),
        }
        # Both services boot at once: each spends about a second of its own CPU on imports.
        services = [DemoProcess(variant, faults, seed=1, db=Path(env["DEMO_CANDIDATE_DB"]), wait=False)]
        stack.callback(services[0].stop)
        if baseline_variant:
            services.append(DemoProcess(baseline_variant, (), seed=2, db=Path(env["DEMO_BASELINE_DB"]), wait=False))
            stack.callback(services[-1].stop)

        # Runs first on the way out: both services shut down at once, then each stop() waits.
        def terminate_all() -> None:
            for service in services:
                service.terminate()

        def wait_all() -> None:
            for service in services:
                service.wait_ready()

        stack.callback(terminate_all)
        env["DEMO_CANDIDATE_URL"] = services[0].url
        if baseline_variant:
            env["DEMO_BASELINE_URL"] = services[-1].url
        # A fresh password for the generated test users: a secret that only the environment holds.
        env["DEMO_USER_PASSWORD"] = os.environ.get("DEMO_USER_PASSWORD") or secrets.token_urlsafe(16)
        yield DemoServices(env, wait_all, terminate_all)


@contextmanager
def demo_targets(
    variant: str = "candidate", baseline_variant: str | None = "baseline", faults: Sequence[str] = ()
) -> Iterator[dict[str, str]]:
    """Start candidate (and baseline) services; yield the environment that params/demo.yaml reads
    once they serve."""
    with demo_services(variant, baseline_variant, faults) as services:
        services.wait_ready()
        yield services.env


def run_demo(
    *,
    variant: str = "candidate",
    baseline_variant: str = "baseline",
    faults: Sequence[str] = (),
    overrides: Sequence[str] = (),
    out: Path | None = None,
    params_file: Path | None = None,
    pdf: bool = True,
) -> int:
    from .._pipeline import run

    params_file = params_file or DEMO_PARAMS
    print(f"starting the sample service: candidate={variant}, baseline={baseline_variant}")
    with demo_services(variant, baseline_variant, faults) as services:
        for name in ("DEMO_CANDIDATE_URL", "DEMO_BASELINE_URL"):
            if name in services.env:
                print(f"  {name}={services.env[name]}")
        saved = {k: os.environ.get(k) for k in services.env}
        os.environ.update(services.env)
        try:
            # The kernels start while the services boot (their URLs are known already); the first
            # section waits for them. The report reads only the run folder: the services shut down
            # while it renders.
            outcome = run(
                params_file,
                overrides=list(overrides),
                out=out,
                pdf=pdf,
                before_sections=services.wait_ready,
                after_sections=services.terminate,
            )
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    print("sample service stopped")
    return outcome.exit_code


_interactive: ExitStack | None = None


def interactive_run() -> tuple[str, str]:
    """For a notebook run by hand: start the demo services once per kernel, return (run_dir, params_path)."""
    global _interactive
    if _interactive is None:
        stack = ExitStack()
        try:
            env = stack.enter_context(demo_targets())
        except StabilityError:
            stack.close()
            raise
        os.environ.update(env)
        atexit.register(stack.close)
        _interactive = stack
    run_dir = Path(tempfile.mkdtemp(prefix="stability-interactive-"))
    (run_dir / "evidence").mkdir()
    return str(run_dir), str(DEMO_PARAMS)
