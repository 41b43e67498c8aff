"""Run the soak on Locust (I/O, kept thin): start a headless master and N local workers, wait, stop them all.

``run_locust`` (the processes: start, wait, stop) is shared with the golden path (``scale.golden_launcher``).

Never imports locust: the master and the workers are subprocesses (``python -m locust -f
scale/locust_user.py``), each in its own process group, so gevent's monkey-patching never reaches the
calling process (a notebook kernel, the ``stability`` command). Every process started here is stopped
here: when the soak ends, on Ctrl-C or SIGTERM (KeyboardInterrupt in the caller), at the hard deadline,
and when the caller fails. A worker killed mid-run is seen by the master (missing heartbeats): the
sessions leased to it and never reported are counted as lost, and the soak is judged on what was seen.

The result is the same ``SoakResult`` as our own engine's (records, aggregate, users, teardown), plus
``LocustRun``: engine, workers, achieved rate, sessions lost, Locust's own counts, where the logs are.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.util
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import StabilityError
from ..probes.golden_records import user_setup_from_dict
from ..probes.scenario import HttpStep, ScenarioConfig
from ..probes.sessions import SessionRecord, aggregate_sessions
from ..probes.soak import SoakResult, new_run_id
from ..probes.teardown import TeardownRecord

__all__ = [
    "LocustSettings",
    "LocustRun",
    "LocustSoak",
    "run_locust_soak",
    "run_locust",
    "LOCUSTFILE",
    "LocustEngineError",
    "last_line",
    "read_summary",
    "hard_deadline_s",
]

LOCUSTFILE = Path(__file__).with_name("locust_user.py")
_PLAN_ENV = "STABILITY_LOCUST_PLAN"  # the same name as locust_user.PLAN_ENV (that module may not be imported here)
_SLACK_S = 5.0
_WORKERS_WAIT_S = 30.0  # local workers connect in about 2 s; remote ones are given longer (expect_wait_s)
_STOP_WAIT_S = 5.0
REMOTE_WORKERS_WAIT_S = 300.0  # the Locust master waits this long for workers started on other machines


class LocustEngineError(StabilityError):
    """The Locust engine could not run (locust not installed, a scenario it cannot drive, the master failed)."""


@dataclass(frozen=True)
class LocustSettings:
    """How many local workers to start, where the master listens, how many remote workers to wait for."""

    workers: int = 2
    master_bind: str = "127.0.0.1:0"  # HOST:PORT; port 0: a free port
    expect_workers: int | None = None  # workers to wait for, local ones included (None: ``workers``)
    expect_wait_s: float = _WORKERS_WAIT_S

    @classmethod
    def of_section(cls, cfg: Any) -> LocustSettings:
        """From a section config's Locust options (``probes.config._LocustOptions``): more workers
        expected than started locally are remote ones, given ``REMOTE_WORKERS_WAIT_S`` to connect."""
        remote = (cfg.expect_workers or cfg.locust_workers) > cfg.locust_workers
        return cls(
            workers=cfg.locust_workers,
            master_bind=cfg.locust_master_bind,
            expect_workers=cfg.expect_workers,
            expect_wait_s=REMOTE_WORKERS_WAIT_S if remote else _WORKERS_WAIT_S,
        )


@dataclass(frozen=True)
class LocustRun:
    """What the report says about the engine: workers, the rate achieved, what was lost."""

    workers: int
    workers_seen: int
    sessions_seen: int
    sessions_lost: int
    workers_lost: tuple[int, ...]
    elapsed_s: float
    locust_ws_sessions: int
    locust_ws_failures: int
    log_dir: str
    note: str = ""
    resources: dict[str, Any] = field(default_factory=dict)  # master and each worker: peak memory (MiB), CPU s

    @property
    def rate_per_s(self) -> float:
        return self.sessions_seen / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": "locust",
            "workers": self.workers,
            "workers_seen": self.workers_seen,
            "sessions_seen": self.sessions_seen,
            "sessions_lost": self.sessions_lost,
            "workers_lost": list(self.workers_lost),
            "elapsed_s": round(self.elapsed_s, 3),
            "rate_per_s": round(self.rate_per_s, 2),
            "locust_stats": {"ws_sessions": self.locust_ws_sessions, "ws_failures": self.locust_ws_failures},
            "note": self.note,
            "resources": self.resources,
        }


@dataclass(frozen=True)
class LocustSoak:
    soak: SoakResult
    run: LocustRun
    processes: tuple[int, ...] = field(default=())  # pids started (all stopped when this returns)


def _refuse_unsupported(scenario: ScenarioConfig) -> None:
    check_locust_installed()
    soak = scenario.soak
    steps = [*(soak.setup or ()), *soak.finally_steps, *scenario.teardown]
    if any(not isinstance(s, HttpStep) for s in steps):
        raise LocustEngineError(
            "the locust engine runs HTTP setup, finally and teardown steps only (a ws step is in "
            "soak.setup/finally or teardown)"
        )
    if scenario.soak_step() is None:
        raise LocustEngineError("the golden path has no ws step to soak")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _bind(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise LocustEngineError(f"--locust-master-bind {text!r}: expected HOST:PORT")
    try:
        number = int(port)
    except ValueError:
        raise LocustEngineError(f"--locust-master-bind {text!r}: the port is not a number") from None
    return host, number or _free_port(host)


def _start(cmd: Sequence[str], log: Path, env: Mapping[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            list(cmd), stdout=out, stderr=subprocess.STDOUT, env=dict(env), cwd=cwd, start_new_session=True
        )


def _stop(procs: Sequence[subprocess.Popen[bytes]], wait_s: float = _STOP_WAIT_S) -> None:
    """SIGTERM each process group (Locust quits cleanly on it), then SIGKILL what is left."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    for proc in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group too: nothing of ours may outlive the run
        proc.wait()


def run_locust_soak(
    *,
    scenario: ScenarioConfig,
    raw_scenario: Mapping[str, Any],
    base_url: str,
    raw_base_url: str,
    raw_ws_base_url: str | None,
    out_dir: Path,
    settings: LocustSettings,
    side: str = "candidate",
    run_id: str | None = None,
) -> LocustSoak:
    """The soak of ``scenario`` on Locust, to the same bounds as ``probes.soak.run_soak``.

    ``raw_scenario`` and the raw URLs keep their ``${NAME}`` references: they are written to the plan
    (no secret in a file) and resolved by each worker from its own environment. ``scenario`` is the
    resolved model (bounds, confidence). Logs, the plan, records.jsonl and summary.json go to ``out_dir``.
    """
    _refuse_unsupported(scenario)
    soak = scenario.soak
    step = scenario.soak_step()
    assert step is not None
    run_id = run_id or new_run_id()
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("records.jsonl", "summary.json"):
        (out_dir / name).unlink(missing_ok=True)
    workers = total_workers(settings)
    users = max(1, min(soak.concurrency, soak.sessions))
    hard_s = hard_deadline_s(scenario)
    plan = {
        "run_id": run_id,
        "out_dir": str(out_dir.resolve()),
        "scenario": dict(raw_scenario),
        "base_url": raw_base_url,
        "ws_base_url": raw_ws_base_url,
        "sessions": soak.sessions,
        "duration_s": soak.duration_s,
        "workers": workers,
        "lease": max(1, math.ceil(users / workers)),
        "step": step.name,
    }
    procs, elapsed, started_at = run_locust(LOCUSTFILE, plan, users, hard_s, settings, out_dir)
    return LocustSoak(
        _soak_result(scenario, run_id, step.name, started_at, out_dir, side),
        _locust_run(workers, out_dir, elapsed, procs[0].returncode if procs else None),
        tuple(p.pid for p in procs),
    )


def hard_deadline_s(scenario: ScenarioConfig) -> float:
    """The soak's hard deadline on Locust: the duration, then the last session (its per-session setup and
    finally steps too), then the users' undo (all users at once, each bounded by ``teardown_timeout_s``)."""
    soak, step = scenario.soak, scenario.soak_step()
    assert step is not None
    step_timeout = soak.step_timeout_s if soak.step_timeout_s is not None else step.timeout_s
    session_bound = soak.connect_timeout_s + step_timeout + soak.close_timeout_s
    if soak.setup_scope == "per_session":
        session_bound += sum(s.timeout_s for s in soak.setup or () if isinstance(s, HttpStep))
        if soak.finally_steps:
            session_bound += scenario.teardown_timeout_s
    return soak.duration_s + session_bound + scenario.teardown_timeout_s + _SLACK_S


def run_locust(
    locustfile: Path,
    plan: Mapping[str, Any],
    users: int,
    hard_s: float,
    settings: LocustSettings,
    out_dir: Path,
) -> tuple[list[subprocess.Popen[bytes]], float, str]:
    """Write ``plan`` to ``out_dir``, start a headless master (``users`` Locust users, at most ``hard_s``)
    and the local workers on ``locustfile``, wait for the master, stop them all. The processes (all
    stopped), the seconds it took and when it started."""
    host, port = _bind(settings.master_bind)
    connect_host = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - the master's bind, as asked
    total_workers = settings.expect_workers if settings.expect_workers is not None else settings.workers
    plan_path = out_dir / "plan.json"
    plan_path.write_text(json.dumps(dict(plan), indent=1), encoding="utf-8")
    env = {**os.environ, _PLAN_ENV: str(plan_path.resolve()), "PYTHONUNBUFFERED": "1"}
    locust = [sys.executable, "-m", "locust", "-f", str(locustfile)]
    master_cmd = [
        *locust,
        "--master",
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(users),
        "--expect-workers",
        str(total_workers),
        "--expect-workers-max-wait",
        str(int(settings.expect_wait_s)),
        "--master-bind-host",
        host,
        "--master-bind-port",
        str(port),
        "--run-time",
        f"{math.ceil(hard_s)}s",
        "--stop-timeout",
        "0",
        "--loglevel",
        "WARNING",
        "--only-summary",
    ]
    worker_cmd = [
        *locust,
        "--worker",
        "--master-host",
        connect_host,
        "--master-port",
        str(port),
        "--loglevel",
        "WARNING",
    ]
    started_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    procs: list[subprocess.Popen[bytes]] = []
    t0 = time.monotonic()
    try:
        procs.append(_start(master_cmd, out_dir / "master.log", env, out_dir))
        for i in range(settings.workers):
            procs.append(_start(worker_cmd, out_dir / f"worker-{i}.log", env, out_dir))
        master = procs[0]
        with contextlib.suppress(subprocess.TimeoutExpired):  # past every bound: stopped below, judged on what came
            master.wait(timeout=settings.expect_wait_s + hard_s + _SLACK_S)
    finally:
        _stop(procs)
    return procs, time.monotonic() - t0, started_at


def total_workers(settings: LocustSettings) -> int:
    """Workers the master waits for, local ones included."""
    return settings.expect_workers if settings.expect_workers is not None else settings.workers


def check_locust_installed() -> None:
    if importlib.util.find_spec("locust") is None:  # looked up, not imported: gevent must stay out of this process
        raise LocustEngineError("the locust engine needs Locust: pip install 'stability-proof[locust]'")


def last_line(log: Path, limit: int = 200) -> str:
    """The master's last words (e.g. Locust's "Gave up waiting for workers"), capped."""
    try:
        with log.open("rb") as fh:
            fh.seek(max(0, log.stat().st_size - 4096))
            lines = [line.strip() for line in fh.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""


def read_summary(out_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_records(out_dir: Path) -> list[SessionRecord]:
    records: list[SessionRecord] = []
    try:
        lines = (out_dir / "records.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return records
    for line in lines:
        with contextlib.suppress(ValueError, KeyError, TypeError):  # a line cut by a killed master
            raw = json.loads(line)
            raw.pop("worker", None)
            records.append(SessionRecord.from_dict(raw))
    return records


def _soak_result(
    scenario: ScenarioConfig, run_id: str, step: str, started_at: str, out_dir: Path, side: str
) -> SoakResult:
    summary = read_summary(out_dir) or {}
    records = sorted(_read_records(out_dir), key=lambda r: r.session_id)
    users = tuple(sorted((user_setup_from_dict(u) for u in summary.get("users", ())), key=lambda u: u.index))
    teardown = tuple(TeardownRecord(**t) for t in summary.get("teardown", ()))
    return SoakResult(
        run_id=run_id,
        step=step,
        started_at=started_at,
        duration_s=float(summary.get("elapsed_s", 0.0)),
        sessions_planned=scenario.soak.sessions,
        concurrency=scenario.soak.concurrency,
        stopped_by_duration=bool(summary.get("stopped_by_duration", False)),
        cancelled_at_deadline=int(summary.get("cancelled_at_deadline", 0)),
        users=users,
        records=tuple(records),
        aggregate=aggregate_sessions(records, scenario.confidence),
        tolerated_rate=scenario.tolerated_failure_rate,
        confidence=scenario.confidence,
        teardown=teardown,
        teardown_configured=bool(scenario.soak.finally_steps or scenario.teardown),
        side=side,
        user_undo_steps=len(scenario.soak_user_undo()),
    )


def _locust_run(workers: int, out_dir: Path, elapsed: float, master_rc: int | None) -> LocustRun:
    summary = read_summary(out_dir)
    records = len(_read_records(out_dir))
    if summary is None:
        said = last_line(out_dir / "master.log")
        note = (
            f"the Locust master ended without a summary (exit {master_rc}{': ' + said if said else ''}): "
            f"judged on the {records} sessions reported"
        )
        return LocustRun(workers, 0, records, 0, (), elapsed, 0, 0, str(out_dir), note)
    lost = int(summary.get("sessions_lost", 0))
    workers_lost = tuple(int(w) for w in summary.get("workers_lost", ()))
    note = ""
    if workers_lost:
        note = (
            f"{len(workers_lost)} worker(s) lost mid-run; {lost} sessions leased to them never reported: "
            f"judged on the {records} sessions seen"
        )
    stats = summary.get("locust_stats", {})
    soak_s = float(summary.get("elapsed_s", elapsed)) or elapsed
    return LocustRun(
        workers,
        int(summary.get("workers_seen", 0)),
        records,
        lost,
        workers_lost,
        soak_s,
        int(stats.get("ws_sessions", 0)),
        int(stats.get("ws_failures", 0)),
        str(out_dir),
        note,
        dict(summary.get("resources") or {}),
    )
