"""Run the golden path on Locust (I/O, kept thin): a headless master and N local workers, then one ``GoldenResult``.

Never imports locust (see ``scale.launcher``, whose process handling it reuses: every process started
here is stopped here, on the run's end, Ctrl-C, SIGTERM, the hard deadline, or a failure). Each test
user of ``scenario.users`` is taken by one Locust user on some worker (``scale.locust_golden``); what it
produced comes back to the master and into ``outcomes.jsonl``, read here into the same ``GoldenResult``
as our own engine's (``probes.golden_records.assemble_result``), so its claims work unchanged. Users a
killed worker held are lost, not judged: the golden claim says how many.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..core.models import Claim, Status
from ..probes.golden_records import GoldenResult, UserOutcome, assemble_result
from ..probes.scenario import HttpStep, ScenarioConfig
from ..probes.soak import SETUP_CONCURRENCY, new_run_id
from .launcher import (
    LocustEngineError,
    LocustSettings,
    check_locust_installed,
    last_line,
    read_summary,
    run_locust,
    total_workers,
)

__all__ = ["GOLDEN_LOCUSTFILE", "GoldenLocustRun", "LocustGolden", "run_locust_golden"]

GOLDEN_LOCUSTFILE = Path(__file__).with_name("locust_golden.py")
_SETUP_BOUND_S = 60.0  # register, login and setup steps of one user, generously
_SLACK_S = 10.0


@dataclass(frozen=True)
class GoldenLocustRun:
    """What the report says about the engine of the golden path: workers, the rate achieved, what was lost."""

    workers: int
    workers_seen: int
    users_seen: int
    runs_seen: int
    users_lost: tuple[int, ...]
    workers_lost: tuple[int, ...]
    users_cut: tuple[int, ...]
    elapsed_s: float
    log_dir: str
    note: str = ""
    locust_stats: dict[str, int] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)

    @property
    def rate_per_s(self) -> float:
        """Golden runs (one user, one repetition) per second."""
        return self.runs_seen / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": "locust",
            "workers": self.workers,
            "workers_seen": self.workers_seen,
            "users_seen": self.users_seen,
            "runs_seen": self.runs_seen,
            "users_lost": len(self.users_lost),
            "workers_lost": list(self.workers_lost),
            "users_cut": len(self.users_cut),
            "elapsed_s": round(self.elapsed_s, 3),
            "rate_per_s": round(self.rate_per_s, 2),
            "rate_unit": "golden runs/s",
            "locust_stats": dict(self.locust_stats),
            "note": self.note,
            "resources": self.resources,
        }


@dataclass(frozen=True)
class LocustGolden:
    result: GoldenResult
    run: GoldenLocustRun
    processes: tuple[int, ...] = ()  # pids started (all stopped when this returns)

    def claims(self, golden_section: str = "golden_path", isolation_section: str = "isolation") -> tuple[Claim, Claim]:
        """The result's claims; users lost with a worker are named in both claims' statistics.
        A run judged on fewer users than asked is never a PASS: INCONCLUSIVE at best (the isolation
        check too: what a lost user saw, and what others saw of its data, was never read)."""
        golden, isolation = self.result.claims(golden_section, isolation_section)
        missing = len(self.run.users_lost) + len(self.run.users_cut)
        if not missing:
            return golden, isolation

        def short_of_users(claim: Claim) -> Claim:
            status = Status.INCONCLUSIVE if claim.status is Status.PASS else claim.status
            return replace(claim, statistic=f"{claim.statistic}; {self.run.note}", status=status)

        return short_of_users(golden), short_of_users(isolation)


def _refuse_unsupported(scenario: ScenarioConfig) -> None:
    check_locust_installed()
    undo = [*scenario.golden_path.finally_steps, *scenario.teardown]
    if any(not isinstance(s, HttpStep) for s in undo):
        raise LocustEngineError(
            "the locust engine runs HTTP finally and teardown steps only (a ws step is in "
            "golden_path.finally or teardown)"
        )
    if not scenario.golden_path.steps:
        raise LocustEngineError("the golden path has no steps")


def _hard_bound_s(scenario: ScenarioConfig, workers: int) -> float:
    """Every user runs at once, set up ``SETUP_CONCURRENCY`` at a time per worker: the setup rounds, one
    user's repetitions (each step to its timeout, then its finally steps to the teardown timeout), its
    teardown and leftovers checks bound the whole run."""
    setup_rounds = math.ceil(scenario.users.count / (SETUP_CONCURRENCY * max(1, workers)))
    golden = scenario.golden_path
    soak = scenario.soak
    step_s = sum(
        s.timeout_s + (0 if isinstance(s, HttpStep) else soak.connect_timeout_s + soak.close_timeout_s)
        for s in golden.steps
    )
    checks_s = sum(s.timeout_s for s in scenario.leftovers)
    return (
        _SETUP_BOUND_S * setup_rounds
        + golden.repetitions * (step_s + scenario.teardown_timeout_s)
        + (scenario.teardown_timeout_s + checks_s + _SLACK_S)
    )


def run_locust_golden(
    *,
    scenario: ScenarioConfig,
    raw_scenario: Mapping[str, Any],
    raw_base_url: str,
    raw_ws_base_url: str | None,
    out_dir: Path,
    settings: LocustSettings,
    run_id: str | None = None,
) -> LocustGolden:
    """The golden path of ``scenario`` on Locust, as ``probes.golden.run_golden_path`` runs it.

    ``raw_scenario`` and the raw URLs keep their ``${NAME}`` references (written to the plan; each worker
    resolves them from its own environment). Logs, the plan, outcomes.jsonl and summary.json go to ``out_dir``.
    """
    _refuse_unsupported(scenario)
    run_id = run_id or new_run_id()
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("outcomes.jsonl", "leases.jsonl", "summary.json"):
        (out_dir / name).unlink(missing_ok=True)
    workers = total_workers(settings)
    users = scenario.users.count
    plan = {
        "run_id": run_id,
        "out_dir": str(out_dir.resolve()),
        "scenario": dict(raw_scenario),
        "base_url": raw_base_url,
        "ws_base_url": raw_ws_base_url,
        "users": users,
        "workers": workers,
    }
    procs, elapsed, started_at = run_locust(
        GOLDEN_LOCUSTFILE, plan, users, _hard_bound_s(scenario, workers), settings, out_dir
    )
    outcomes = _read_outcomes(out_dir)
    summary = read_summary(out_dir)
    duration = float(summary.get("elapsed_s", elapsed)) if summary else elapsed
    result = assemble_result(
        run_id=run_id,
        started_at=started_at,
        duration_s=duration,
        scenario=scenario,
        outcomes=outcomes,
        users_own=True,
    )
    master_rc = procs[0].returncode if procs else None
    return LocustGolden(
        result, _golden_run(workers, out_dir, duration, master_rc, outcomes, users), tuple(p.pid for p in procs)
    )


def _read_outcomes(out_dir: Path) -> list[UserOutcome]:
    """Each reported user's outcome (a line cut by a killed master is skipped), in user order."""
    found: dict[int, UserOutcome] = {}
    try:
        lines = (out_dir / "outcomes.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            outcome = UserOutcome.from_dict(json.loads(line))
            found.setdefault(outcome.setup.index, outcome)
    return [found[i] for i in sorted(found)]


def _golden_run(
    workers: int, out_dir: Path, elapsed: float, master_rc: int | None, outcomes: list[UserOutcome], users: int
) -> GoldenLocustRun:
    runs = sum(len(o.runs) for o in outcomes)
    summary = read_summary(out_dir)
    seen = {o.setup.index for o in outcomes}
    if summary is None:
        said = last_line(out_dir / "master.log")
        unseen = tuple(i for i in range(users) if i not in seen)
        note = (
            f"the Locust master ended without a summary (exit {master_rc}{': ' + said if said else ''}): "
            f"{len(unseen)} of {users} users never reported, judged on the {len(outcomes)} that did"
        )
        return GoldenLocustRun(workers, 0, len(outcomes), runs, unseen, (), (), elapsed, str(out_dir), note)
    lost = tuple(int(i) for i in summary.get("users_lost", ()) if int(i) not in seen)
    cut = tuple(int(i) for i in summary.get("users_cut", ()) if int(i) not in seen)
    workers_lost = tuple(int(w) for w in summary.get("workers_lost", ()))
    parts = []
    if lost:
        parts.append(f"{len(lost)} user(s) lost with {len(workers_lost)} worker(s) that went missing mid-run")
    if cut:
        parts.append(f"{len(cut)} user(s) still running at the hard deadline ({math.ceil(elapsed)} s)")
    note = f"{'; '.join(parts)}: not judged, judged on the {len(outcomes)} of {users} users reported" if parts else ""
    return GoldenLocustRun(
        workers,
        int(summary.get("workers_seen", 0)),
        len(outcomes),
        runs,
        lost,
        workers_lost,
        cut,
        elapsed,
        str(out_dir),
        note,
        dict(summary.get("locust_stats") or {}),
        dict(summary.get("resources") or {}),
    )
