"""Steps of any kind in a unit's context, and the ``finally`` steps that undo what a unit created.

A unit is a golden run (one user, one repetition), a soak session, or a user. Its ``finally``
steps run after it ends whatever the outcome, also when it is cancelled (Ctrl-C, the soak's hard
deadline): they run shielded under ``teardown_timeout_s`` and the cancellation is re-raised after;
their records reach the caller's ``sink`` as each step ends (a cancelled call returns none).
A ``finally`` step whose placeholders are not all known (the step that captures ``{session_id}``
never ran) is skipped: the resource was never created. Each step runs even if an earlier one failed.
What teardown did is evidence (``TeardownRecord``); its claims are pure (``teardown_claims``).

A unit whose finally steps started and have not all left their record (still running after an interrupt,
or cut off) is ``units_in_flight(run_id)``: a caller that judges while some may still run (an interrupted
section) passes them to ``teardown_claims(..., unfinished=...)``, which then never says PASS. An
``asyncio.gather`` of units is ``gather_units``: it waits for every unit's finally steps before it
raises, whether it was cancelled or one unit failed.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import httpx

from ..core.models import Claim, EvidenceRef, Status
from .http_steps import HttpStepResult, PreparedUser, run_http_step
from .scenario import HttpStep, ScenarioConfig, TemplateError, WsStep, render_template
from .sessions import SessionRecord
from .ws_session import run_ws_exchange, ws_url

__all__ = [
    "StepRun",
    "TeardownRecord",
    "OpenUnit",
    "RecordSink",
    "gather_units",
    "nothing_to_undo",
    "run_step",
    "run_finally",
    "teardown_claims",
    "units_in_flight",
    "UsersBeingSetUp",
    "users_without_records",
]

_MAX_LISTED = 50
T = TypeVar("T")


@dataclass(frozen=True)
class StepRun:
    """One step of any kind as run: whether it held, why not, what it captured (values in memory only)."""

    name: str
    ok: bool
    why: str = ""
    captured: dict[str, Any] = field(default_factory=dict, repr=False)
    http: HttpStepResult | None = None
    ws: SessionRecord | None = None
    duration_s: float = 0.0


class _FromScenario:
    """``run_step``'s default compression: what the scenario says (``scenario.permessage_deflate``)."""


FROM_SCENARIO = _FromScenario()


@dataclass(frozen=True)
class Where:
    """Where a unit's steps go and as whom."""

    client: httpx.AsyncClient
    base_url: str
    ws_base_url: str | None
    scenario: ScenarioConfig
    user: PreparedUser
    run_id: str
    run_start_ns: int


async def run_step(
    where: Where,
    step: HttpStep | WsStep,
    context: Mapping[str, Any],
    *,
    capture_bytes: int = 0,
    compression: str | None | _FromScenario = FROM_SCENARIO,
) -> StepRun:
    """Run one HTTP or WebSocket step with the user's credentials; never raises for a service failure.

    A WebSocket step offers permessage-deflate as ``scenario.permessage_deflate`` says unless
    ``compression`` is given ("deflate" or None).
    """
    scenario, user = where.scenario, where.user
    if isinstance(compression, _FromScenario):
        compression = "deflate" if scenario.permessage_deflate else None
    soak = scenario.soak
    started = time.monotonic_ns()
    try:
        if isinstance(step, HttpStep):
            result, captured = await run_http_step(
                where.client,
                step,
                step.name,
                context,
                auth=scenario.auth,
                token=user.token,
                secrets=user.secrets,
                capture_bytes=capture_bytes,
            )
            return StepRun(
                step.name,
                result.ok,
                result.error,
                captured,
                http=result,
                duration_s=(time.monotonic_ns() - started) / 1e9,
            )
        path = str(render_template(step.path, context))
        exchange = await run_ws_exchange(
            url=ws_url(where.base_url, path, where.ws_base_url),
            step=step,
            context=context,
            auth=scenario.auth,
            token=user.token,
            session_id=str(context.get("session_id", "")),
            run_start_ns=where.run_start_ns,
            user=user.setup.username,
            connect_timeout_s=soak.connect_timeout_s,
            close_timeout_s=soak.close_timeout_s,
            max_message_bytes=soak.max_message_bytes,
            capture_bytes=capture_bytes,
            secrets=user.secrets,
            run_id=where.run_id,
            compression=compression,
        )
        record = exchange.record
        return StepRun(
            step.name,
            record.outcome.is_ok,
            "" if record.outcome.is_ok else record.outcome.label,
            exchange.captured,
            ws=record,
            duration_s=(time.monotonic_ns() - started) / 1e9,
        )
    except TemplateError as exc:
        return StepRun(step.name, False, f"template: {exc}", duration_s=(time.monotonic_ns() - started) / 1e9)


@dataclass(frozen=True)
class TeardownRecord:
    """One finally/teardown step of one unit: ran and held, ran and failed, or skipped (nothing to undo)."""

    unit: str  # golden_run | soak_session | user
    user: str
    index: int  # repetition or session number
    step: str
    ok: bool
    skipped: bool = False
    reason: str = ""
    status: int | None = None
    error: str = ""
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "user": self.user,
            "index": self.index,
            "step": self.step,
            "ok": self.ok,
            "skipped": self.skipped,
            "reason": self.reason,
            "status": self.status,
            "error": self.error,
            "duration_s": self.duration_s,
        }


class RecordSink(Protocol):
    """Where ``run_finally`` puts each record as its step ends: a list, or anything with ``append``."""

    def append(self, record: TeardownRecord, /) -> None: ...


@dataclass(frozen=True)
class OpenUnit:
    """A unit whose finally steps started (or were due) and have not all left their record: what it
    created may still be on the target. ``target`` is the base URL its steps go to."""

    unit: str  # golden_run | soak_session | user
    user: str
    index: int
    target: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "user": self.user, "index": self.index, "target": self.target}


class _InFlight:
    """Per run id, the units whose ``run_finally`` started and whose records are not all in (thread-safe:
    the steps run on a worker thread's loop while an interrupted section reads this from its own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, dict[OpenUnit, int]] = {}

    def begin(self, run_id: str, unit: OpenUnit) -> None:
        with self._lock:
            units = self._open.setdefault(run_id, {})
            units[unit] = units.get(unit, 0) + 1

    def end(self, run_id: str, unit: OpenUnit) -> None:
        with self._lock:
            units = self._open.get(run_id)
            if units is None or unit not in units:
                return
            if units[unit] > 1:
                units[unit] -= 1
            else:
                del units[unit]
            if not units:
                del self._open[run_id]

    def of(self, run_id: str, target: str | None) -> tuple[OpenUnit, ...]:
        with self._lock:
            units = list(self._open.get(run_id, ()))
        return tuple(u for u in units if target is None or u.target == target)


_IN_FLIGHT = _InFlight()


def units_in_flight(run_id: str, *, target: str | None = None) -> tuple[OpenUnit, ...]:
    """The units of run ``run_id`` (on ``target``, a base URL, when given) whose finally steps started
    and have not all left their record: still running (an interrupted section judges before they end),
    or cut off before they ended (a unit cut off stays here). Read it before and after copying the
    records: a unit that ends in between is then counted as unfinished, never as a silent pass."""
    return _IN_FLIGHT.of(run_id, target)


class UsersBeingSetUp:
    """Users whose setup has begun count as owed (``units_in_flight``, unit ``user``) until ``handed_over()``.

    Why: a setup cut off by an interrupt (registered, not yet logged in) or a set-up user whose caller never
    got it (``asyncio.gather`` cancelled) may be on the target with no record and no teardown; an interrupted
    section that judges then says so instead of "nothing was created to undo". Call ``handed_over()`` once the
    users are where the caller's own bookkeeping (``users_without_records``) and teardown find them. Never
    handed over (cancelled, failed), they stay owed, as a unit whose finally steps were cut off does."""

    def __init__(self, run_id: str, target: str) -> None:
        self._run_id, self._target = run_id, target
        self._units: list[OpenUnit] = []

    def begin(self, index: int, username: str) -> None:
        unit = OpenUnit("user", username, index, self._target)
        _IN_FLIGHT.begin(self._run_id, unit)
        self._units.append(unit)

    def handed_over(self) -> None:
        units, self._units = self._units, []
        for unit in units:
            _IN_FLIGHT.end(self._run_id, unit)


def users_without_records(
    users: Iterable[Any], records: Sequence[TeardownRecord], steps: int, *, unit: str = "user", target: str = ""
) -> tuple[OpenUnit, ...]:
    """Users whose setup held (``UserSetup`` or ``PreparedUser``) with fewer than ``steps`` records of their
    own ``unit`` finally steps: their undo did not run to its end, or not yet (it is owed)."""
    if steps <= 0:
        return ()
    have: dict[str, int] = {}
    for r in records:
        if r.unit == unit:
            have[r.user] = have.get(r.user, 0) + 1
    out = []
    for user in users:
        setup = getattr(user, "setup", user)
        if setup.ok and have.get(setup.username, 0) < steps:
            out.append(OpenUnit(unit, setup.username, setup.index, target))
    return tuple(out)


def nothing_to_undo(step: Any, context: Mapping[str, Any], unit: str, user: str, index: int) -> TeardownRecord | None:
    """The record of a finally step skipped because a value it needs was never captured (what it
    would undo was never created), or None when it can run. Shared by both engines' finally loops."""
    missing = sorted(step.placeholders() - set(context))
    if not missing:
        return None
    return TeardownRecord(
        unit, user, index, step.name, True, True, f"nothing to undo: {{{missing[0]}}} was never captured"
    )


async def run_finally(
    where: Where,
    steps: Sequence[HttpStep | WsStep],
    context: Mapping[str, Any],
    *,
    unit: str,
    index: int,
    sink: RecordSink | None = None,
) -> list[TeardownRecord]:
    """Run ``steps`` in order, each even if an earlier one failed, bounded by the scenario's teardown timeout.

    Shielded from cancellation: a unit cancelled mid-run still undoes what it created, then the
    cancellation goes on (re-raised here, so a cancelled call returns nothing). ``sink`` gets each
    record too, as its step ends: what a cancelled call did is there (pass a sink or use the return
    value, not both, or each record is counted twice). Until every step has its record the unit is
    in ``units_in_flight(where.run_id)`` (for good when the steps are cut off before they end).
    """
    out: list[TeardownRecord] = []
    if not steps:
        return out
    key = OpenUnit(unit, where.user.setup.username, index, where.base_url)
    _IN_FLIGHT.begin(where.run_id, key)
    task = asyncio.ensure_future(_bounded(where, steps, dict(context), unit, index, _Records(out, sink)))
    task.add_done_callback(functools.partial(_recorded, where.run_id, key))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task], timeout=where.scenario.teardown_timeout_s)
        raise
    return out


def _recorded(run_id: str, key: OpenUnit, task: asyncio.Future[None]) -> None:
    """``run_finally``'s steps ended: every one has its record, unless they were cut off (then the unit stays open)."""
    if not task.cancelled() and task.exception() is None:
        _IN_FLIGHT.end(run_id, key)


async def gather_units(*units: Awaitable[T]) -> list[T]:
    """``asyncio.gather`` of units that undo what they created when cancelled; the call raises only once
    every unit has ended its finally steps. Cancelled, it waits for them before the cancellation goes on;
    when a unit raises, the others are cancelled (their finally steps run) and waited for, then the first
    error goes on. (``gather`` itself raises at the first unit that ends cancelled or failed, and the loop's
    shutdown would then cancel the others and their shielded finally steps, losing their records.)"""
    tasks = [asyncio.ensure_future(u) for u in units]
    try:
        return list(await asyncio.gather(*tasks))
    except asyncio.CancelledError:
        # gather cancelled every unit once: cancelling again would cut a unit's wait for its finally steps
        await asyncio.wait(tasks)  # each unit's finally steps are bounded (teardown_timeout_s, step timeouts)
        raise
    except BaseException:
        for task in tasks:
            if not task.done():
                task.cancel()  # the others stop here too, and undo what they created on the way out
        await asyncio.wait(tasks)
        raise


@dataclass(frozen=True)
class _Records:
    """Where ``run_finally``'s records go as each step ends: its own list, and the caller's sink if any."""

    kept: list[TeardownRecord]
    sink: RecordSink | None

    def append(self, record: TeardownRecord) -> None:
        self.kept.append(record)
        if self.sink is not None:
            self.sink.append(record)


async def _bounded(
    where: Where,
    steps: Sequence[HttpStep | WsStep],
    context: Mapping[str, Any],
    unit: str,
    index: int,
    out: _Records,
) -> None:
    try:
        async with asyncio.timeout(where.scenario.teardown_timeout_s):
            for step in steps:
                skipped = nothing_to_undo(step, context, unit, where.user.setup.username, index)
                if skipped is not None:
                    out.append(skipped)
                    continue
                run = await run_step(where, step, context, compression=None)
                status = run.http.status if run.http is not None else None
                out.append(
                    TeardownRecord(
                        unit,
                        where.user.setup.username,
                        index,
                        step.name,
                        run.ok,
                        False,
                        "",
                        status,
                        run.why,
                        run.duration_s,
                    )
                )
    except TimeoutError:
        done = {r.step for r in out.kept}
        for step in steps:
            if step.name not in done:
                out.append(
                    TeardownRecord(
                        unit, where.user.setup.username, index, step.name, False, False, "", None, "teardown_timeout"
                    )
                )


def teardown_claims(
    records: Sequence[TeardownRecord],
    configured: bool,
    section: str,
    evidence: Sequence[EvidenceRef] = (),
    *,
    unfinished: Sequence[OpenUnit] = (),
) -> list[Claim]:
    """``<section>.teardown.steps_succeeded``: FAIL naming unit, step and error when a finally step failed.

    None when the scenario has no finally steps for this section (nothing was asked to be undone).
    ``unfinished``: units that started (or owed) their finally steps and have not all left their record
    (``units_in_flight``, ``users_without_records``; an interrupted caller judges before every unit ended):
    with any, the claim is never PASS: INCONCLUSIVE, saying how many, or FAIL when a recorded step failed.
    """
    if not configured:
        return []
    failed = [r for r in records if not r.ok and not r.skipped]
    ran = [r for r in records if not r.skipped]
    by_unit: dict[tuple[str, str, int], OpenUnit] = {}
    for u in unfinished:  # one unit once, whoever said it is owed
        by_unit.setdefault((u.unit, u.user, u.index), u)
    owed = list(by_unit.values())
    open_note = ""
    if owed:
        units = {(r.unit, r.user, r.index) for r in records} | set(by_unit)
        first_open = owed[0]
        open_note = (
            f"{len(owed)} of {len(units)} units that started have no complete record of their finally steps "
            f"(first: {first_open.unit} {first_open.index} of {first_open.user}): what they would undo may "
            "still be on the target"
        )
    if failed:
        first = failed[0]
        status = Status.FAIL
        statistic = (
            f"{len(failed)} of {len(ran)} teardown steps failed (first: {first.unit} {first.index} of "
            f"{first.user}: {first.step}: {first.error})"
        )
        if open_note:
            statistic += f"; {open_note}"
    elif owed:
        status = Status.INCONCLUSIVE
        statistic = f"{open_note}; the {len(ran)} teardown steps that ran succeeded"
    elif ran:
        status, statistic = Status.PASS, f"{len(ran)} teardown steps ran and succeeded"
    else:
        status, statistic = Status.INCONCLUSIVE, "no teardown step ran (nothing was created to undo)"
    details: dict[str, Any] = {
        "failures": [r.to_dict() for r in failed[:_MAX_LISTED]],
        "skipped": sum(1 for r in records if r.skipped),
    }
    if owed:
        details["unfinished"] = [u.to_dict() for u in owed[:_MAX_LISTED]]
        details["unfinished_count"] = len(owed)
    return [
        Claim(
            id=f"{section}.teardown.steps_succeeded",
            section=section,
            statement="What the probe created was deleted again (every finally step succeeded)",
            status=status,
            statistic=statistic,
            evidence=tuple(evidence),
            details=details,
        )
    ]
