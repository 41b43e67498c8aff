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
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from ..core.errors import RunError, StabilityError

__all__ = ["DemoProcess", "demo_process", "demo_targets", "run_demo", "interactive_run", "DEMO_PARAMS"]

DEMO_PARAMS = Path(__file__).resolve().parents[2] / "params" / "demo.yaml"
_START_TIMEOUT_S = 30.0


class DemoProcess:
    """One sample service process. ``wait=False`` returns as soon as it is launched (start
    several at once, then ``wait_ready()`` on each): ``url`` is set once it listens."""

    def __init__(
        self, variant: str, faults: Sequence[str] = (), seed: int = 0, db: Path | None = None, *, wait: bool = True
    ) -> None:
        self._t0 = time.monotonic()
        self.variant = variant
        self.url = ""
        cmd = [sys.executable, "-m", "stability_lib.demo", "--variant", variant, "--port", "0", "--seed", str(seed)]
        if db is not None:
            cmd += ["--db", str(db)]
        for fault in faults:
            cmd += ["--fault", fault]
        env = {k: v for k, v in os.environ.items() if k != "STABILITY_DEMO_FAULTS"}
        # stderr goes to a file, not a pipe nobody reads: a chatty server must never block on it.
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (lives as long as the process: closed by stop())
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        if wait:
            self.wait_ready()

    def wait_ready(self) -> str:
        """Wait until the service prints its URL; a service that cannot start is stopped."""
        if not self.url:
            try:
                self.url = self._read_url(self.variant)
            except BaseException:  # a bad variant, or Ctrl-C while it starts: it must not outlive us
                self.stop()
                raise
        return self.url

    def _read_url(self, variant: str) -> str:
        box: list[str] = []
        stdout = self.proc.stdout
        assert stdout is not None  # Popen(stdout=PIPE)
        reader = threading.Thread(target=lambda: box.append(stdout.readline()), daemon=True)
        reader.start()
        while reader.is_alive() and time.monotonic() - self._t0 < _START_TIMEOUT_S:
            reader.join(0.2)  # short joins: the main thread stays responsive to signals
        line = box[0].strip() if box else ""
        if not line.startswith("http://127.0.0.1:"):
            self._wait_stopped()
            self.log.seek(0)  # read before stop() closes the log
            lines = [ln.strip() for ln in self.log.read()[-2000:].splitlines() if ln.strip()]
            raise RunError(
                f"sample service ({variant}) did not start: {lines[-1][:300] if lines else 'no URL printed'}"
            )
        return line

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


@contextmanager
def demo_targets(
    variant: str = "candidate", baseline_variant: str | None = "baseline", faults: Sequence[str] = ()
) -> Iterator[dict[str, str]]:
    """Start candidate (and baseline) services; yield the environment that params/demo.yaml reads."""
    with ExitStack() as stack:
        # Database files at known paths, so the contract section can compare their schemas.
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stability-demo-db-")))
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

        stack.callback(terminate_all)
        env["DEMO_CANDIDATE_URL"] = services[0].wait_ready()
        if baseline_variant:
            env["DEMO_BASELINE_URL"] = services[-1].wait_ready()
        # A fresh password for the generated test users: a secret that only the environment holds.
        env["DEMO_USER_PASSWORD"] = os.environ.get("DEMO_USER_PASSWORD") or secrets.token_urlsafe(16)
        yield env


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
    with demo_targets(variant, baseline_variant, faults) as env:
        for name in ("DEMO_CANDIDATE_URL", "DEMO_BASELINE_URL"):
            if name in env:
                print(f"  {name}={env[name]}")
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            outcome = run(params_file, overrides=list(overrides), out=out, pdf=pdf)
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
