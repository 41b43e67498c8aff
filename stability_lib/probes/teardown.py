"""Steps of any kind in a unit's context, and the ``finally`` steps that undo what a unit created.

A unit is a golden run (one user, one repetition), a soak session, or a user. Its ``finally``
steps run after it ends whatever the outcome, also when it is cancelled (Ctrl-C, the soak's hard
deadline): they run shielded under ``teardown_timeout_s`` and the cancellation is re-raised after;
their records reach the caller's ``sink`` as each step ends (a cancelled call returns none).
A ``finally`` step whose placeholders are not all known (the step that captures ``{session_id}``
never ran) is skipped: the resource was never created. Each step runs even if an earlier one failed.
What teardown did is evidence (``TeardownRecord``); its claims are pure (``teardown_claims``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from ..core.models import Claim, EvidenceRef, Status
from .http_steps import HttpStepResult, PreparedUser, run_http_step
from .scenario import HttpStep, ScenarioConfig, TemplateError, WsStep, render_template
from .sessions import SessionRecord
from .ws_session import run_ws_exchange, ws_url

__all__ = [
    "StepRun",
    "TeardownRecord",
    "gather_units",
    "nothing_to_undo",
    "run_step",
    "run_finally",
    "teardown_claims",
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
    sink: list[TeardownRecord] | None = None,
) -> list[TeardownRecord]:
    """Run ``steps`` in order, each even if an earlier one failed, bounded by the scenario's teardown timeout.

    Shielded from cancellation: a unit cancelled mid-run still undoes what it created, then the
    cancellation goes on (re-raised here, so a cancelled call returns nothing). ``sink`` gets each
    record too, as its step ends: what a cancelled call did is there (pass a sink or use the return
    value, not both, or each record is counted twice).
    """
    out: list[TeardownRecord] = []
    if not steps:
        return out
    task = asyncio.ensure_future(_bounded(where, steps, dict(context), unit, index, _Records(out, sink)))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task], timeout=where.scenario.teardown_timeout_s)
        raise
    return out


async def gather_units(*units: Awaitable[T]) -> list[T]:
    """``asyncio.gather`` of units that undo what they created when cancelled; a cancelled call waits
    until every unit has ended its finally steps before the cancellation goes on. (``gather`` itself
    raises when the first unit ends cancelled, and the loop's shutdown would then cancel the others'
    finally steps a second time, losing their records.)"""
    tasks = [asyncio.ensure_future(u) for u in units]
    try:
        return list(await asyncio.gather(*tasks))
    except asyncio.CancelledError:
        await asyncio.wait(tasks)  # each unit's finally steps are bounded (teardown_timeout_s, step timeouts)
        raise


@dataclass(frozen=True)
class _Records:
    """Where ``run_finally``'s records go as each step ends: its own list, and the caller's sink if any."""

    kept: list[TeardownRecord]
    sink: list[TeardownRecord] | None

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
    records: Sequence[TeardownRecord], configured: bool, section: str, evidence: Sequence[EvidenceRef] = ()
) -> list[Claim]:
    """``<section>.teardown.steps_succeeded``: FAIL naming unit, step and error when a finally step failed.

    None when the scenario has no finally steps for this section (nothing was asked to be undone).
    """
    if not configured:
        return []
    failed = [r for r in records if not r.ok and not r.skipped]
    ran = [r for r in records if not r.skipped]
    if failed:
        first = failed[0]
        status = Status.FAIL
        statistic = (
            f"{len(failed)} of {len(ran)} teardown steps failed (first: {first.unit} {first.index} of "
            f"{first.user}: {first.step}: {first.error})"
        )
    elif ran:
        status, statistic = Status.PASS, f"{len(ran)} teardown steps ran and succeeded"
    else:
        status, statistic = Status.INCONCLUSIVE, "no teardown step ran (nothing was created to undo)"
    return [
        Claim(
            id=f"{section}.teardown.steps_succeeded",
            section=section,
            statement="What the probe created was deleted again (every finally step succeeded)",
            status=status,
            statistic=statistic,
            evidence=tuple(evidence),
            details={
                "failures": [r.to_dict() for r in failed[:_MAX_LISTED]],
                "skipped": sum(1 for r in records if r.skipped),
            },
        )
    ]
