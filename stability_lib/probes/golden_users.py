"""Test users set up once for many golden-path runs (I/O, thin): ``log_in_users`` registers and logs
them in, ``finish_users`` runs their teardown and leftovers checks once at the end; with the records
both leave (``StepSample``, ``LeftoverCheck``) and the leftovers claim. ``probes.golden`` re-exports
all of it and runs the golden path as these users.

Judged before every unit ended (an interrupted section), ``users_finished_so_far`` says what is still owed:
the units whose finally steps are in flight, and every user set up whose own teardown records or leftovers
checks are not all in; the claims are then never PASS.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.models import Claim, EvidenceRef, Status
from .engine import SETUP_CONCURRENCY, UserSetup, new_http_client, new_nonce, new_run_id, prepare_user, run_blocking
from .http_steps import PreparedUser
from .scenario import HttpStep, ScenarioConfig
from .teardown import (
    OpenUnit,
    TeardownRecord,
    UsersBeingSetUp,
    Where,
    gather_units,
    run_finally,
    run_step,
    teardown_claims,
    users_without_records,
)

__all__ = [
    "StepSample",
    "LeftoverCheck",
    "leftovers_claim",
    "LoggedInUsers",
    "UsersFinished",
    "users_finished_so_far",
    "users_without_checks",
    "log_in_users",
    "log_in_users_sync",
    "finish_users",
    "finish_users_sync",
    "finish_user",
    "http_setup_steps",
]

_MAX_FAILURES_LISTED = 50  # evidence names failed checks; a systematic failure must not list thousands


@dataclass(frozen=True)
class StepSample:
    """One step's duration for one user and repetition (monotonic clock, seconds)."""

    step: str
    user: str
    repetition: int
    duration_s: float
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "user": self.user,
            "repetition": self.repetition,
            "duration_s": self.duration_s,
            "ok": self.ok,
        }


@dataclass(frozen=True)
class LeftoverCheck:
    """One leftovers check of one user after every finally and teardown step: did it hold, and why not."""

    user: str
    step: str
    ok: bool
    why: str = ""


def leftovers_claim(
    checks: Sequence[LeftoverCheck],
    section: str,
    evidence: Sequence[EvidenceRef] = (),
    *,
    unchecked: Sequence[str] = (),
) -> Claim:
    """PASS when every leftovers check held for every user; FAIL naming what was left; INCONCLUSIVE with none run.

    ``unchecked``: users set up whose leftovers checks have not all been recorded (an interrupted caller
    judges before every user ended, ``users_without_checks``): with any, never PASS, and the statistic
    says how many users have no complete record."""
    failed = [c for c in checks if not c.ok]
    owed = list(dict.fromkeys(unchecked))
    open_note = ""
    if owed:
        users = {c.user for c in checks} | set(owed)
        open_note = (
            f"{len(owed)} of {len(users)} users set up have no complete leftovers record (first: {owed[0]}): "
            "what they created may still be on the target"
        )
    if failed:
        first = failed[0]
        status = Status.FAIL
        statistic = (
            f"{len(failed)} of {len(checks)} leftovers checks failed (first: {first.user}: {first.step}: {first.why})"
        )
        if open_note:
            statistic += f"; {open_note}"
    elif owed:
        status = Status.INCONCLUSIVE
        statistic = f"{open_note}; the {len(checks)} leftovers checks that ran held"
    elif not checks:
        status, statistic = Status.INCONCLUSIVE, "no leftovers check ran (no user was set up)"
    else:
        status, statistic = Status.PASS, f"{len(checks)} leftovers checks held ({len({c.user for c in checks})} users)"
    details: dict[str, Any] = {"failures": [dataclasses.asdict(c) for c in failed[:_MAX_FAILURES_LISTED]]}
    if owed:
        details["unchecked_users"] = owed[:_MAX_FAILURES_LISTED]
        details["unchecked_count"] = len(owed)
    return Claim(
        id=f"{section}.teardown.nothing_left_behind",
        section=section,
        statement="Nothing the probe created is left on the target",
        status=status,
        statistic=statistic,
        evidence=tuple(evidence),
        details=details,
    )


def users_without_checks(users: Iterable[Any], checks: Sequence[LeftoverCheck], per_user: int) -> tuple[str, ...]:
    """Users whose setup held (``UserSetup`` or ``PreparedUser``) with fewer than ``per_user`` leftovers checks
    recorded: their checks did not run to their end, or not yet."""
    if per_user <= 0:
        return ()
    have: dict[str, int] = {}
    for c in checks:
        have[c.user] = have.get(c.user, 0) + 1
    names = (getattr(u, "setup", u) for u in users)
    return tuple(s.username for s in names if s.ok and have.get(s.username, 0) < per_user)


@dataclass(frozen=True)
class LoggedInUsers:
    """Test users set up once (register, login, prerequisite steps) on one target, for many golden runs.

    A section that repeats the golden path (performance rounds, isolation) logs its users in once with
    ``log_in_users`` and passes them to every ``run_golden_path(..., users=...)``; the per-user teardown
    and leftovers checks then run once, at the end, in ``finish_users``. Tokens and cookies live only
    in memory (never in evidence).
    """

    base_url: str
    run_id: str
    users: tuple[PreparedUser, ...] = field(repr=False)
    started_ns: int = 0

    @property
    def setups(self) -> tuple[UserSetup, ...]:
        return tuple(u.setup for u in self.users)

    @property
    def ok(self) -> bool:
        return bool(self.users) and all(u.setup.ok for u in self.users)

    def samples(self) -> tuple[StepSample, ...]:
        """The setup steps (register, login, prerequisites) as step samples, once per user."""
        return tuple(
            StepSample(step.name, u.setup.username, 0, step.duration_s, step.ok)
            for u in self.users
            for step in u.setup.steps
        )


@dataclass(frozen=True)
class UsersFinished:
    """What ``finish_users`` did: the per-user teardown steps and the leftovers checks."""

    teardown: tuple[TeardownRecord, ...]
    leftovers: tuple[LeftoverCheck, ...]
    teardown_configured: bool
    leftovers_configured: bool
    unfinished: tuple[OpenUnit, ...] = ()  # units whose finally steps have not all left their record (yet)
    unchecked: tuple[str, ...] = ()  # users set up whose leftovers checks have not all been recorded (yet)

    def claims(self, section: str, evidence: Sequence[EvidenceRef] = ()) -> list[Claim]:
        """``<section>.teardown.steps_succeeded`` when teardown steps are configured, and
        ``<section>.teardown.nothing_left_behind`` when leftovers checks are (else none); neither is
        PASS while something is ``unfinished`` / ``unchecked``."""
        claims = teardown_claims(self.teardown, self.teardown_configured, section, evidence, unfinished=self.unfinished)
        if self.leftovers_configured:
            claims.append(leftovers_claim(self.leftovers, section, evidence, unchecked=self.unchecked))
        return claims


def users_finished_so_far(
    teardown: Sequence[TeardownRecord],
    leftovers: Sequence[LeftoverCheck],
    *,
    teardown_configured: bool,
    leftovers_configured: bool,
    scenario: ScenarioConfig,
    users: Iterable[Any] = (),
    in_flight: Iterable[OpenUnit] = (),
    target: str = "",
) -> UsersFinished:
    """What the finally and teardown steps and the leftovers checks recorded until now, with what is owed:
    ``in_flight`` (``units_in_flight`` read before and after the records were copied) and, of ``users``
    (those whose own teardown and leftovers checks are due here, ``UserSetup`` or ``PreparedUser``), each
    one whose setup held and whose teardown records or leftovers checks are not all in. A ``user`` unit in
    flight (its teardown running, or its setup begun and not handed over: ``UsersBeingSetUp``) has not had
    its leftovers checks either."""
    users, in_flight = list(users), tuple(in_flight)
    owed = (*in_flight, *users_without_records(users, teardown, len(scenario.teardown), target=target))
    unchecked = users_without_checks(users, leftovers, len(scenario.leftovers))
    if scenario.leftovers:
        unchecked += tuple(u.user for u in in_flight if u.unit == "user")
    return UsersFinished(
        tuple(teardown),
        tuple(leftovers),
        teardown_configured,
        leftovers_configured,
        unfinished=tuple(dict.fromkeys(owed)),
        unchecked=tuple(dict.fromkeys(unchecked)),
    )


async def finish_user(
    where: Where, *, teardown: list[TeardownRecord] | None = None, leftovers: list[LeftoverCheck] | None = None
) -> tuple[list[TeardownRecord], list[LeftoverCheck]]:
    """Per user, once, at the very end: teardown, then the checks that prove nothing was left behind.

    Returns the records in ``teardown`` and ``leftovers`` (new lists when not given), appended as each
    step or check ends: a caller that passes its own lists keeps what ran before a cancellation."""
    user, run_id = where.user, where.run_id
    index, username = user.setup.index, user.setup.username
    teardown = [] if teardown is None else teardown
    leftovers = [] if leftovers is None else leftovers
    context = user.context(run_id, nonce=new_nonce(), session_id=f"{run_id}-u{index}-end")
    await run_finally(where, where.scenario.teardown, context, unit="user", index=index, sink=teardown)
    for check in where.scenario.leftovers:
        run = await run_step(where, check, context)
        leftovers.append(LeftoverCheck(username, check.name, run.ok, run.why))
    return teardown, leftovers


def http_setup_steps(scenario: ScenarioConfig) -> list[HttpStep]:
    """The scenario's setup steps a user's setup runs (the HTTP ones)."""
    return [s for s in scenario.setup if isinstance(s, HttpStep)]


async def log_in_users(
    base_url: str, scenario: ScenarioConfig, *, run_id: str | None = None, count: int | None = None
) -> LoggedInUsers:
    """Set up ``users.count`` users (or ``count``) once, ``SETUP_CONCURRENCY`` at a time, for
    ``run_golden_path(users=...)``; the same ``run_id`` on two targets gives the same usernames."""
    run_id = run_id or new_run_id()
    if count is not None:
        scenario = scenario.model_copy(update={"users": scenario.users.model_copy(update={"count": count})})
    started_ns = time.monotonic_ns()
    slots = asyncio.Semaphore(SETUP_CONCURRENCY)
    # Owed until the caller has them: a cancel cuts a setup off, or loses the users already set up.
    pending = UsersBeingSetUp(run_id, base_url)

    async def one(index: int, username: str) -> PreparedUser:
        pending.begin(index, username)
        async with slots, new_http_client(base_url) as client:
            return await prepare_user(client, scenario, index, username, run_id, http_setup_steps(scenario))

    users = await asyncio.gather(*(one(i, name) for i, name in enumerate(scenario.users.usernames(run_id))))
    pending.handed_over()
    return LoggedInUsers(base_url, run_id, tuple(users), started_ns)


def log_in_users_sync(
    base_url: str, scenario: ScenarioConfig, *, run_id: str | None = None, count: int | None = None
) -> LoggedInUsers:
    """``log_in_users`` from sync code (notebooks included)."""
    return run_blocking(lambda: log_in_users(base_url, scenario, run_id=run_id, count=count))


async def finish_users(
    users: LoggedInUsers, scenario: ScenarioConfig, *, ws_base_url: str | None = None
) -> UsersFinished:
    """Once per user, after the last golden run: the scenario's teardown, then its leftovers checks."""

    async def one(user: PreparedUser) -> tuple[list[TeardownRecord], list[LeftoverCheck]]:
        if not user.setup.ok:
            return [], []
        async with new_http_client(users.base_url, cookies=user.cookies) as client:
            where = Where(client, users.base_url, ws_base_url, scenario, user, users.run_id, users.started_ns)
            return await finish_user(where)

    done = await gather_units(*(one(u) for u in users.users))
    return UsersFinished(
        teardown=tuple(t for ts, _ in done for t in ts),
        leftovers=tuple(c for _, cs in done for c in cs),
        teardown_configured=bool(scenario.teardown),
        leftovers_configured=bool(scenario.leftovers),
    )


def finish_users_sync(
    users: LoggedInUsers, scenario: ScenarioConfig, *, ws_base_url: str | None = None
) -> UsersFinished:
    """``finish_users`` from sync code (notebooks included)."""
    return run_blocking(lambda: finish_users(users, scenario, ws_base_url=ws_base_url))
