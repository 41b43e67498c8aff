"""The golden path for U users at once, R times each, and the multi-user isolation check.

I/O (thin): ``run_golden_path`` logs every test user in, then runs the scenario's
steps R times per user (all users at the same time, one HTTP client per user). Each
run gets a unique nonce (``{nonce}`` in the templates) that only its user should
ever see back. Everything a user receives (WebSocket event payloads, REST bodies;
capped, secrets redacted) is kept as a ``Sighting``.

Pure: ``analyze_isolation`` reads the sightings: a user who sees another user's nonce
anywhere is a leak (FAIL, naming viewer, owner and where). PASS needs at least two
users, and every user must have seen their own nonce at least once: otherwise the
check could not have failed, and it says INCONCLUSIVE.

Stopped from outside (Ctrl-C cancels the call), every run still runs its finally steps and every user
its teardown and leftovers checks; the call then returns nothing, but a ``GoldenProgress`` passed to it
holds what it did, each record added as its step ended, for the section's evidence.

Users logged in once for many runs (``log_in_users``, ``finish_users``) are in ``probes.golden_users``,
re-exported here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as _dt
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..core.models import Claim, Status
from .engine import (
    SETUP_CONCURRENCY,
    HttpStepResult,
    new_http_client,
    new_nonce,
    new_run_id,
    prepare_user,
    run_blocking,
)
from .golden_records import (
    GoldenResult,
    GoldenRun,
    IsolationResult,
    Leak,
    Sighting,
    UserOutcome,
    analyze_isolation,
    assemble_result,
    golden_claim,
)
from .golden_users import (
    LeftoverCheck,
    LoggedInUsers,
    StepSample,
    UsersFinished,
    finish_user,
    finish_users,
    finish_users_sync,
    http_setup_steps,
    leftovers_claim,
    log_in_users,
    log_in_users_sync,
)
from .http_steps import PreparedUser, log_in_again
from .scenario import ScenarioConfig
from .teardown import UsersBeingSetUp, Where, gather_units, run_finally, run_step

__all__ = [
    "Sighting",
    "StepSample",
    "GoldenRun",
    "Leak",
    "IsolationResult",
    "GoldenResult",
    "GoldenProgress",
    "runs_stopped_claim",
    "analyze_isolation",
    "golden_claim",
    "run_golden_path",
    "run_golden_path_sync",
    "LoggedInUsers",
    "UsersFinished",
    "log_in_users",
    "log_in_users_sync",
    "finish_users",
    "finish_users_sync",
    "LeftoverCheck",
    "leftovers_claim",
]

# --------------------------------------------------------------------------- runner (I/O)


@dataclass
class GoldenProgress:
    """What a ``run_golden_path`` call did so far, filled in as it goes (mutable on purpose): a call stopped
    from outside returns nothing, and its users' ended runs, finally, teardown and leftovers records are
    still here (``result``)."""

    outcomes: list[UserOutcome] = field(default_factory=list)
    run_id: str = ""
    started_at: str = ""
    start_ns: int = 0
    planned_runs: int = 0
    users_own: bool = True

    def result(self, scenario: ScenarioConfig) -> GoldenResult:
        """The runs that ended and the records of every step that ended, as a result (judge only the records)."""
        elapsed_s = (time.monotonic_ns() - self.start_ns) / 1e9 if self.start_ns else 0.0
        return assemble_result(
            run_id=self.run_id,
            started_at=self.started_at,
            duration_s=elapsed_s,
            scenario=scenario,
            outcomes=list(self.outcomes),  # a copy: a run cut off by the grace may still be adding to them
            users_own=self.users_own,
        )


def runs_stopped_claim(result: GoldenResult, planned_runs: int, stopped_by: str, section: str) -> Claim:
    """``<section>.runs_finished``, INCONCLUSIVE: the golden runs were stopped (``stopped_by``: Ctrl-C's
    KeyboardInterrupt, SIGTERM, a failure of ours) before they all ended, so none is judged on a part."""
    return Claim(
        id=f"{section}.runs_finished",
        section=section,
        statement="The golden-path runs ran to their end",
        status=Status.INCONCLUSIVE,
        statistic=(
            f"stopped by {stopped_by} after {len(result.runs)} of {planned_runs} runs ended: the runs were not "
            "judged; what the finally and teardown steps did until then is in the evidence"
        ),
        details={"runs_ended": len(result.runs), "runs_planned": planned_runs, "stopped_by": stopped_by},
    )


async def _user_for_this_run(
    client: httpx.AsyncClient,
    scenario: ScenarioConfig,
    index: int,
    username: str,
    run_id: str,
    setup_slots: asyncio.Semaphore,
    prepared: PreparedUser | None,
    sample_login: bool,
) -> tuple[PreparedUser, tuple[HttpStepResult, ...]]:
    """The user this call's runs go as, and the setup steps taken for it in this call (they are samples)."""
    if prepared is None:
        async with setup_slots:  # registration and login of many users at once would be a load test of its own
            user = await prepare_user(client, scenario, index, username, run_id, http_setup_steps(scenario))
        return user, user.setup.steps
    if not (sample_login and prepared.setup.ok and scenario.auth.effective_mode == "login" and scenario.auth.login):
        return prepared, ()
    async with setup_slots:
        login, user = await log_in_again(client, scenario, prepared, run_id)
    if not login.ok:  # as a failed login of a fresh user: this user's runs fail at auth.login
        failed = dataclasses.replace(user.setup, ok=False, error=f"login: {login.error}", steps=(login,))
        return dataclasses.replace(user, setup=failed), (login,)
    return user, (login,)


async def _run_user(
    base_url: str,
    scenario: ScenarioConfig,
    index: int,
    username: str,
    run_id: str,
    run_start_ns: int,
    ws_base_url: str | None,
    setup_slots: asyncio.Semaphore,
    prepared: PreparedUser | None = None,
    sample_login: bool = False,
    progress: GoldenProgress | None = None,
) -> UserOutcome:
    """One user's golden runs (the asyncio shell; ``scale.locust_golden`` is the gevent one, same records).

    Its outcome goes into ``progress`` once the user is set up; every record lands in it as its step ends."""
    cap = scenario.max_capture_bytes
    setting_up = UsersBeingSetUp(run_id, base_url)  # owed until its outcome is in progress (a cancel may cut it)
    if prepared is None:
        setting_up.begin(index, username)
    async with new_http_client(base_url, cookies=prepared.cookies if prepared is not None else ()) as client:
        user, setup_taken = await _user_for_this_run(
            client, scenario, index, username, run_id, setup_slots, prepared, sample_login
        )
        where = Where(client, base_url, ws_base_url, scenario, user, run_id, run_start_ns)
        out = UserOutcome(user.setup)
        if progress is not None:
            progress.outcomes.append(out)
        setting_up.handed_over()
        out.setup_taken(setup_taken)
        if not user.setup.ok:
            out.setup_failed(scenario.golden_path.repetitions)
            return out
        try:
            for rep in range(scenario.golden_path.repetitions):
                nonce = new_nonce()
                context: dict[str, Any] = user.context(
                    run_id, nonce=nonce, repetition=rep, session_id=f"{run_id}-u{index}-r{rep}"
                )
                repetition = out.repetition(rep, nonce)
                try:
                    for step in scenario.golden_path.steps:
                        run = await run_step(where, step, context, capture_bytes=cap)
                        context.update(run.captured)
                        if not repetition.took(step.name, run.ok, run.why, run.duration_s, run.http, run.ws):
                            break
                finally:  # after every repetition, pass, fail or cancel: undo what it created
                    finally_steps = scenario.golden_path.finally_steps
                    await run_finally(where, finally_steps, context, unit="golden_run", index=rep, sink=out.teardown)
                repetition.close()
        finally:  # also after a cancel: what the user's setup created is undone, and checked
            if prepared is None:  # else the users' own teardown and leftovers checks run once, in finish_users
                await finish_user(where, teardown=out.teardown, leftovers=out.leftovers)
        return out


async def run_golden_path(
    base_url: str,
    scenario: ScenarioConfig,
    *,
    ws_base_url: str | None = None,
    run_id: str | None = None,
    users: LoggedInUsers | None = None,
    sample_login: bool = False,
    progress: GoldenProgress | None = None,
) -> GoldenResult:
    """Run the golden path for ``users.count`` users at once, ``repetitions`` times each.

    Users are set up (register, login) ``SETUP_CONCURRENCY`` at a time; their golden runs then overlap.
    With ``users`` (``log_in_users`` on this target), nobody is set up here: the runs go as those users,
    and their own teardown and leftovers checks are left to ``finish_users``. ``sample_login`` then logs
    each of them in once more in this call and uses the new token, so ``auth.login`` is still a sample
    of every call (the section's login is not repeated for anything else: no registration, no setup steps).
    ``progress`` is filled in as the call goes: a cancelled call leaves what it did there.
    """
    if users is not None and users.base_url != base_url:
        raise ValueError(f"users were logged in on {users.base_url}, not on {base_url}")
    run_id = run_id or new_run_id()
    started_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    run_start_ns = time.monotonic_ns()
    setup_slots = asyncio.Semaphore(SETUP_CONCURRENCY)
    if users is None:
        who: list[tuple[str, PreparedUser | None]] = [(name, None) for name in scenario.users.usernames(run_id)]
    else:
        who = [(u.setup.username, u) for u in users.users]
    if progress is not None:
        progress.run_id, progress.started_at, progress.start_ns = run_id, started_at, run_start_ns
        progress.planned_runs = len(who) * scenario.golden_path.repetitions
        progress.users_own = users is None
    outcomes = await gather_units(
        *(
            _run_user(
                base_url,
                scenario,
                i,
                name,
                run_id,
                run_start_ns,
                ws_base_url,
                setup_slots,
                prepared,
                sample_login,
                progress,
            )
            for i, (name, prepared) in enumerate(who)
        )
    )
    return assemble_result(
        run_id=run_id,
        started_at=started_at,
        duration_s=(time.monotonic_ns() - run_start_ns) / 1e9,
        scenario=scenario,
        outcomes=outcomes,
        users_own=users is None,  # the users' teardown and leftovers are part of this result
    )


def run_golden_path_sync(
    base_url: str,
    scenario: ScenarioConfig,
    *,
    ws_base_url: str | None = None,
    run_id: str | None = None,
    users: LoggedInUsers | None = None,
    sample_login: bool = False,
    progress: GoldenProgress | None = None,
) -> GoldenResult:
    """``run_golden_path`` from sync code (notebooks included)."""
    return run_blocking(
        lambda: run_golden_path(
            base_url,
            scenario,
            ws_base_url=ws_base_url,
            run_id=run_id,
            users=users,
            sample_login=sample_login,
            progress=progress,
        )
    )
