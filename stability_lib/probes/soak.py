"""The soak (I/O, kept thin): N sessions of one WebSocket step at bounded concurrency and time.

Users are set up first (``http_steps.prepare_user``), each with its own HTTP client. With
``soak.setup_scope: per_session`` every session runs ``soak.setup`` in its own context before its
WebSocket step, so concurrent sessions share no server-side state; ``soak.finally`` then runs after
every session (per_session) or once per user (per_user), whatever the session's outcome, also when
the soak's hard deadline or Ctrl-C cancels it. Teardown traffic is not counted in the soak's rates.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as _dt
import gc
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import httpx

from ..core.models import Claim, EvidenceRef, Status
from .aio import run_sync
from .http_steps import PreparedUser, UserSetup, new_http_client, new_nonce, prepare_user
from .scenario import HttpStep, ScenarioConfig, TemplateError, WsStep, render_template, template_placeholders
from .sessions import (
    SessionAggregate,
    SessionOutcome,
    SessionRecord,
    aggregate_sessions,
    down_since,
    session_claims,
)
from .teardown import (
    TeardownRecord,
    UsersBeingSetUp,
    Where,
    gather_units,
    run_finally,
    run_step,
    teardown_claims,
    users_without_records,
)
from .ws_session import LegacyPlan, WsExchange, run_ws_exchange, ws_url

__all__ = [
    "SoakResult",
    "SoakProgress",
    "SoaksSoFar",
    "fewer_collections",
    "prepare_users",
    "run_soak",
    "run_soak_sync",
    "run_blocking",
    "new_run_id",
    "SETUP_CONCURRENCY",
    "ensure_open_files",
]

T = TypeVar("T")
_SLACK_S = 5.0  # extra time before the soak's hard deadline cancels stragglers
_CANCEL_WAIT_S = 2.0  # on cancellation (Ctrl-C), how long the soak waits for its sessions to drop their sockets
# ... and with finally steps, for those to close what the sessions opened on the target (2 s was too
# short on a loaded CI machine: a session was left on the service). Below aio.CANCEL_GRACE_S, which
# is below the run's execution.notebooks.TEARDOWN_GRACE_S.
_CANCEL_WAIT_FINALLY_S = 6.0
SETUP_CONCURRENCY = 8  # users registered/logged in at once: users.count may be large
_FD_HEADROOM = 256  # open files beyond the soak's sockets: setup clients, logs, a kernel's own


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


def _ns_to_s(ns: int) -> float:
    return ns / 1e9


def ensure_open_files(sockets: int) -> int:
    """Make room for ``sockets`` open connections (plus headroom) in this process's open-file limit.

    Raises the soft limit up to the hard one when needed and returns the soft limit now in force.
    Refuses (``OSError``) when even the hard limit is too low: out of descriptors, sessions would
    fail with EMFILE and be counted as the target's connect errors.
    """
    try:
        import resource
    except ImportError:  # not POSIX: nothing to raise
        return sockets + _FD_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = sockets + _FD_HEADROOM
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise OSError(
                f"soak.concurrency={sockets} needs about {needed} open files; this process may open at most "
                f"{hard} (ulimit -n); lower soak.concurrency or raise the limit"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        soft = needed
    return int(soft)


def run_blocking(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, also inside Jupyter (a running loop)."""
    return run_sync(factory())


@dataclass(frozen=True)
class SoakResult:
    """Everything a soak observed: user setups, one record per session, the aggregate."""

    run_id: str
    step: str
    started_at: str
    duration_s: float
    sessions_planned: int
    concurrency: int
    stopped_by_duration: bool
    cancelled_at_deadline: int
    users: tuple[UserSetup, ...]
    records: tuple[SessionRecord, ...]
    aggregate: SessionAggregate
    tolerated_rate: float
    confidence: float
    teardown: tuple[TeardownRecord, ...] = ()
    teardown_configured: bool = False
    side: str = "candidate"
    user_undo_steps: int = 0  # soak.finally (per user) and teardown steps each user set up owes a record of

    @property
    def down_note(self) -> str:
        """``candidate refused connections from 12:03:05 (...)`` when the target stopped answering for good."""
        down = down_since(self.records)
        if down is None:
            return ""
        at = _dt.datetime.fromisoformat(self.started_at) + _dt.timedelta(seconds=down.offset_s)
        return (
            f"{self.side} refused connections from {at.strftime('%H:%M:%S')} UTC ({down.refused} refused, "
            f"0 succeeded after)"
        )

    @property
    def setup_note(self) -> str:
        failed = [u for u in self.users if not u.ok]
        notes = [self.down_note] if self.down_note else []
        if failed:
            first = failed[0]
            notes.append(
                f"user setup failed for {len(failed)} of {len(self.users)} users (first: {first.username}: "
                f"{first.error})"
            )
        return "; ".join(notes)

    def claims(self, section: str = "websocket", evidence: Sequence[EvidenceRef] = ()) -> tuple[Claim, Claim]:
        """The session claims; when the target went down mid-soak they say since when. A candidate that
        dies FAILs (the change does not stay up); a baseline that dies leaves its claims INCONCLUSIVE."""
        crash, complete = session_claims(
            self.aggregate,
            tolerated_rate=self.tolerated_rate,
            confidence=self.confidence,
            section=section,
            evidence=evidence,
            note=self.setup_note,
        )
        down = self.down_note
        if not down:
            return crash, complete

        def saying_down(claim: Claim) -> Claim:
            status = claim.status
            if self.side != "candidate" and status is Status.FAIL:
                status = Status.INCONCLUSIVE
            elif self.side == "candidate" and claim is complete:
                status = Status.FAIL
            statistic = claim.statistic if down in claim.statistic else f"{claim.statistic}; {down}"
            return dataclasses.replace(
                claim, status=status, statistic=statistic, details={**claim.details, "down": down}
            )

        return saying_down(crash), saying_down(complete)

    def teardown_claims(self, section: str = "websocket", evidence: Sequence[EvidenceRef] = ()) -> list[Claim]:
        """``<section>.teardown.steps_succeeded`` when the soak has finally steps (else none); never PASS while a
        user set up has fewer undo records than steps (its undo was cut off, or its records were lost: the Locust
        engine's workers send theirs last)."""
        owed = users_without_records(self.users, self.teardown, self.user_undo_steps)
        return teardown_claims(self.teardown, self.teardown_configured, section, evidence, unfinished=owed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "step": self.step,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "sessions_planned": self.sessions_planned,
            "concurrency": self.concurrency,
            "stopped_by_duration": self.stopped_by_duration,
            "cancelled_at_deadline": self.cancelled_at_deadline,
            "tolerated_rate": self.tolerated_rate,
            "confidence": self.confidence,
            "users": [u.to_dict() for u in self.users],
            "aggregate": self.aggregate.to_dict(),
            "records": [r.to_dict() for r in self.records],
            "teardown": [t.to_dict() for t in self.teardown],
            "side": self.side,
            "down": self.down_note,
        }


@dataclass
class SoakProgress:
    """What a ``run_soak`` call did so far, filled in as it goes (mutable on purpose): a call stopped from
    outside (Ctrl-C, SIGTERM) returns nothing, and the sessions that ended, the users set up and the record
    of every finally and teardown step that ended are still here (``result``)."""

    records: list[SessionRecord] = field(default_factory=list)
    teardown: list[TeardownRecord] = field(default_factory=list)
    users: list[PreparedUser] = field(default_factory=list, repr=False)  # as each user's setup ends
    run_id: str = ""
    step: str = ""
    started_at: str = ""
    start_ns: int = 0
    stopped_by_duration: bool = False
    cancelled_at_deadline: int = 0

    def result(self, scenario: ScenarioConfig, side: str = "candidate") -> SoakResult:
        """What ended, as a result (a soak cut short: judge its records, not its rates, unless they already FAIL)."""
        soak = scenario.soak
        records = sorted(self.records, key=lambda r: r.session_id)  # a copy: a cut-off session may still add
        return SoakResult(
            run_id=self.run_id,
            step=self.step,
            started_at=self.started_at,
            duration_s=_ns_to_s(time.monotonic_ns() - self.start_ns) if self.start_ns else 0.0,
            sessions_planned=soak.sessions,
            concurrency=soak.concurrency,
            stopped_by_duration=self.stopped_by_duration,
            cancelled_at_deadline=self.cancelled_at_deadline,
            users=tuple(u.setup for u in sorted(self.users, key=lambda u: u.setup.index)),
            records=tuple(records),
            aggregate=aggregate_sessions(records, scenario.confidence),
            tolerated_rate=scenario.tolerated_failure_rate,
            confidence=scenario.confidence,
            teardown=tuple(self.teardown),
            teardown_configured=bool(soak.finally_steps or scenario.teardown),
            side=side,
            user_undo_steps=len(scenario.soak_user_undo()),
        )


@dataclass
class SoaksSoFar:
    """Several soaks (a section's rounds, both sides) so far, filled in as they go (mutable on purpose): per
    side the results of the soaks that ended with when each started, and the one running now with its
    ``SoakProgress``, so an interrupted section can write what ended and tell an ended round from a cut one."""

    # side -> (result, start offset) of every soak of that side that ended, in order
    ended: dict[str, list[tuple[SoakResult, float]]] = field(default_factory=lambda: {"candidate": [], "baseline": []})
    # (side, scenario, progress, start offset, how many soaks of that side had ended when it started)
    running: tuple[str, ScenarioConfig, SoakProgress, float, int] | None = None
    started: float = field(default_factory=time.monotonic)

    def soak(self, side: str, scenario: ScenarioConfig, run: Callable[[SoakProgress], SoakResult]) -> SoakResult:
        """``run(progress)``: one soak of ``side`` (``scenario``: the one it runs), kept as it goes."""
        progress, offset = SoakProgress(), time.monotonic() - self.started
        self.running = (side, scenario, progress, offset, len(self.ended[side]))
        result = run(progress)
        # Kept first (one append: result and offset together), cleared after: a signal between the two lines
        # finds the soak among those that ended, and ``results`` does not count it twice. Before, ``running``
        # was cleared first, and a SIGINT landing there lost the whole round.
        self.ended[side].append((result, offset))
        self.running = None
        return result

    def run_soak(self, side: str, scenario: ScenarioConfig, base_url: str, ws_base_url: str | None) -> SoakResult:
        """One soak of ``side`` on our own engine (``run_soak_sync``), kept as it goes."""
        return self.soak(
            side,
            scenario,
            lambda progress: run_soak_sync(base_url, scenario, ws_base_url=ws_base_url, side=side, progress=progress),
        )

    def cut_short(self, side: str) -> bool:
        """Whether a soak of ``side`` is running (not ended) now: an interrupt cuts it short."""
        running = self.running
        return running is not None and running[0] == side and len(self.ended[side]) == running[4]

    def results(self, side: str, *, running: bool = True) -> tuple[list[SoakResult], list[float]]:
        """The side's soaks that ended and (``running``) what ended of the one running, with their start offsets."""
        ended = list(self.ended[side])
        results, offsets = [r for r, _ in ended], [o for _, o in ended]
        now = self.running
        if running and now is not None and now[0] == side and len(ended) == now[4]:
            _side, scenario, progress, offset, _index = now
            results.append(progress.result(scenario, side))
            offsets.append(offset)
        return results, offsets


SOAK_GC_THRESHOLD0 = 7000  # generation 0 collected every 7,000 net allocations while a soak runs (default 700)
SOAK_GC_FREEZE = False  # also gc.freeze() what exists before the soak (measured: see benchmarks/bench_engine.py)
_gc_lock = threading.Lock()
_gc_soaks = 0  # soaks inside fewer_collections now, in this process (threads: Jupyter's run_sync)
_gc_saved: tuple[int, ...] = ()


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the garbage collector's first-generation threshold while soaks run; restored on any exit.

    Why (issue 19): every session allocates many short-lived objects, so the young generation fills every
    few sessions, and every tenth young collection escalates; full collections traverse all the process
    loaded (scipy, pandas: about 50 ms each). That was 6-9% of the bare client's CPU at 50 sessions at
    once and 20-27% at 500. The sessions' garbage is freed by reference counting anyway. Thresholds are
    process-wide: overlapping soaks (threads) share one count, and the last to end restores them.
    """
    global _gc_soaks, _gc_saved
    with _gc_lock:
        if _gc_soaks == 0:
            _gc_saved = gc.get_threshold()
            if _gc_saved[0] < SOAK_GC_THRESHOLD0:
                gc.set_threshold(SOAK_GC_THRESHOLD0, *_gc_saved[1:])
            if SOAK_GC_FREEZE:
                gc.freeze()
        _gc_soaks += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_soaks -= 1
            if _gc_soaks == 0:
                gc.set_threshold(*_gc_saved)
                if SOAK_GC_FREEZE:
                    gc.unfreeze()


async def prepare_users(
    base_url: str,
    scenario: ScenarioConfig,
    run_id: str,
    prerequisite_steps: Sequence[HttpStep],
    *,
    into: list[PreparedUser] | None = None,
) -> list[PreparedUser]:
    """Set every test user up, ``SETUP_CONCURRENCY`` at a time, each with its own HTTP client.

    ``into`` gets each user as its setup ends: the users a cancelled call set up are there. A user whose
    setup a cancel cut off stays owed (``UsersBeingSetUp``), as does every user without ``into``."""
    names = scenario.users.usernames(run_id)
    slots = asyncio.Semaphore(SETUP_CONCURRENCY)
    pending = UsersBeingSetUp(run_id, base_url)

    async def one(index: int, name: str) -> PreparedUser:
        own = UsersBeingSetUp(run_id, base_url) if into is not None else pending
        own.begin(index, name)
        async with slots, new_http_client(base_url) as client:
            user = await prepare_user(client, scenario, index, name, run_id, prerequisite_steps)
        if into is not None:
            into.append(user)
            own.handed_over()
        return user

    users = list(await asyncio.gather(*(one(i, n) for i, n in enumerate(names))))
    pending.handed_over()
    return users


async def _undo_users(
    base_url: str, ws_base_url: str | None, scenario: ScenarioConfig, progress: SoakProgress, run_start_ns: int
) -> None:
    """Per user whose setup held, once: soak.finally (per_user scope), then scenario.teardown; all users at
    once, each bounded by ``teardown_timeout_s``, records into ``progress.teardown`` as each step ends."""
    undo = scenario.soak_user_undo()
    if not undo:
        return

    async def one(user: PreparedUser) -> None:
        async with new_http_client(base_url, cookies=user.cookies) as client:
            where = Where(client, base_url, ws_base_url, scenario, user, progress.run_id, run_start_ns)
            context = user.context(progress.run_id, nonce=new_nonce())
            await run_finally(where, undo, context, unit="user", index=user.setup.index, sink=progress.teardown)

    ready = sorted((u for u in progress.users if u.setup.ok), key=lambda u: u.setup.index)
    await gather_units(*(one(u) for u in ready))


async def run_soak(
    base_url: str,
    scenario: ScenarioConfig,
    *,
    ws_base_url: str | None = None,
    run_id: str | None = None,
    on_session: Callable[[SessionRecord], Awaitable[None] | None] | None = None,
    side: str = "candidate",
    progress: SoakProgress | None = None,
) -> SoakResult:
    """Run the scenario's soak: N sessions of its WS step at bounded concurrency and time.

    No session starts after ``soak.duration_s``; sessions still open at the hard deadline
    (duration + connect + step + close timeouts + slack) are cancelled and recorded as
    ``timeout(deadline)``. Sessions are spread round robin over the users whose setup
    succeeded; with none, no session runs and the claims are INCONCLUSIVE. Cancelled
    (Ctrl-C through ``run_sync``), it launches nothing more, cuts the open sessions' sockets,
    runs the users' undo steps and re-raises; ``progress`` then holds what it did.
    """
    step = scenario.soak_step()
    if step is None:
        raise TemplateError("the golden path has no ws step to soak")
    progress = progress if progress is not None else SoakProgress()
    run_id = progress.run_id = run_id or new_run_id()
    progress.step = step.name
    progress.started_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    run_start_ns = progress.start_ns = time.monotonic_ns()
    try:
        # scenario.setup, then soak.setup per user (per_session: before every session, below)
        await prepare_users(base_url, scenario, run_id, scenario.soak_user_setup(), into=progress.users)
        with fewer_collections():
            await _sessions(base_url, scenario, step, ws_base_url, on_session, progress)
    finally:  # also after a cancel or a failure: what the users' setup created is undone
        await _undo_users(base_url, ws_base_url, scenario, progress, run_start_ns)
    return progress.result(scenario, side)


async def _sessions(
    base_url: str,
    scenario: ScenarioConfig,
    step: WsStep,
    ws_base_url: str | None,
    on_session: Callable[[SessionRecord], Awaitable[None] | None] | None,
    progress: SoakProgress,
) -> None:
    """The soak's sessions, round robin over the users whose setup held; records into ``progress``."""
    soak = scenario.soak
    run_id, run_start_ns = progress.run_id, progress.start_ns
    ready = sorted((u for u in progress.users if u.setup.ok), key=lambda u: u.setup.index)
    if not ready:
        return
    step_timeout = soak.step_timeout_s if soak.step_timeout_s is not None else step.timeout_s
    session_bound = soak.connect_timeout_s + step_timeout + soak.close_timeout_s
    launch_deadline_ns = time.monotonic_ns() + int(soak.duration_s * 1e9)
    hard_bound_s = soak.duration_s + session_bound + _SLACK_S

    records = progress.records
    in_flight: dict[int, tuple[str, str, float]] = {}
    next_index = 0

    teardown, finally_steps = progress.teardown, soak.finally_steps
    per_session = soak.setup_scope == "per_session"
    compression = "deflate" if soak.permessage_deflate else None
    # Per-session setup/finally steps need an HTTP client; a plain soak makes none (about 1 ms of CPU
    # and some KB each: with one per worker, that was most of the engine's cost per session at 500).
    needs_client = per_session and bool(soak.setup or soak.finally_steps)
    fixed_url = None if template_placeholders(step.path) else ws_url(base_url, str(step.path), ws_base_url)
    # Worked out once, not per session: the old form's plan, each user's context and secrets.
    plan = LegacyPlan.of(step) if step.is_legacy else None
    # Session ``index`` is run by user ``ready[index % len(ready)]`` (round robin).
    user_contexts = [u.context(run_id) for u in ready]
    user_secrets = [u.secrets for u in ready]

    def session_context(index: int, session_id: str) -> dict[str, Any]:
        """``user.context(run_id, nonce=..., session_id=...)``, from the user's context made once."""
        return {**user_contexts[index % len(ready)], "nonce": new_nonce(), "session_id": session_id}

    def exchange(
        index: int, session_id: str, context: dict[str, Any], captured: dict[str, Any] | None
    ) -> Coroutine[Any, Any, WsExchange]:
        """The session's WebSocket exchange, not yet awaited: a plain soak awaits it from the worker
        itself (one coroutine less per open session, on every resume)."""
        user = ready[index % len(ready)]
        url = fixed_url or ws_url(base_url, str(render_template(step.path, context)), ws_base_url)
        return run_ws_exchange(
            url=url,
            step=step,
            context=context,
            auth=scenario.auth,
            token=user.token,
            session_id=session_id,
            run_start_ns=run_start_ns,
            user=user.setup.username,
            connect_timeout_s=soak.connect_timeout_s,
            close_timeout_s=soak.close_timeout_s,
            step_timeout_s=step_timeout,
            max_message_bytes=soak.max_message_bytes,
            secrets=user_secrets[index % len(ready)],
            run_id=run_id,
            compression=compression,
            captured_into=captured,
            plan=plan,
        )

    async def session_with_steps(where: Where, user: PreparedUser, index: int, session_id: str) -> SessionRecord:
        """soak.setup before the exchange and soak.finally after it, in this session's own context."""
        context = session_context(index, session_id)
        captured: dict[str, Any] = {}  # filled even when the session is cancelled: finally needs it
        try:
            for setup_step in soak.setup or ():
                run = await run_step(where, setup_step, {**context, **captured}, compression=compression)
                if not run.ok:  # no WebSocket session happened: counted as a failure to connect
                    offset = _ns_to_s(time.monotonic_ns() - run_start_ns)
                    refused = run.http is not None and run.why == "ConnectError"  # the target is not listening
                    why = "refused" if refused else f"setup {setup_step.name}: {run.why}"[:120]
                    outcome = SessionOutcome.connect_error(why)
                    return SessionRecord(session_id, offset, outcome, user=user.setup.username, step=step.name)
                captured.update(run.captured)
            return (await exchange(index, session_id, {**context, **captured}, captured)).record
        finally:  # each record reaches progress as its step ends: a session cancelled mid-undo keeps them
            finally_context = {**context, **captured}
            await run_finally(where, finally_steps, finally_context, unit="soak_session", index=index, sink=teardown)

    async def worker() -> None:
        nonlocal next_index
        # One coroutine per worker (not a wrapper around one): each frame is kept per open session.
        http: contextlib.AbstractAsyncContextManager[httpx.AsyncClient | None] = (
            new_http_client(base_url) if needs_client else contextlib.nullcontext(None)
        )
        async with http as client:  # setup/finally requests of this worker's sessions
            while next_index < soak.sessions:
                if time.monotonic_ns() >= launch_deadline_ns:
                    progress.stopped_by_duration = True
                    return
                index = next_index
                next_index += 1
                user = ready[index % len(ready)]
                session_id = f"{run_id}-s{index:05d}"
                in_flight[index] = (session_id, user.setup.username, (time.monotonic_ns() - run_start_ns) / 1e9)
                try:
                    if client is None:
                        rec = (await exchange(index, session_id, session_context(index, session_id), None)).record
                    else:
                        where = Where(client, base_url, ws_base_url, scenario, user, run_id, run_start_ns)
                        rec = await session_with_steps(where, user, index, session_id)
                finally:
                    del in_flight[index]
                records.append(rec)
                if on_session is not None:
                    maybe = on_session(rec)
                    if asyncio.iscoroutine(maybe):
                        await maybe

    ensure_open_files(min(soak.concurrency, soak.sessions))
    tasks = [asyncio.create_task(worker()) for _ in range(min(soak.concurrency, soak.sessions))]
    try:
        done, pending = await asyncio.wait(tasks, timeout=hard_bound_s)
    except asyncio.CancelledError:
        # Stopped from outside (Ctrl-C): launch nothing more, cut the open sessions, return soon.
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=_CANCEL_WAIT_FINALLY_S if soak.finally_steps else _CANCEL_WAIT_S)
        raise
    if pending:
        stranded = dict(in_flight)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for session_id, username, offset in stranded.values():
            records.append(
                SessionRecord(session_id, offset, SessionOutcome.timeout("deadline"), user=username, step=step.name)
            )
        progress.cancelled_at_deadline = len(stranded)
    for task in done:
        exc = task.exception()
        if exc is not None:
            raise exc


def run_soak_sync(
    base_url: str,
    scenario: ScenarioConfig,
    *,
    ws_base_url: str | None = None,
    run_id: str | None = None,
    side: str = "candidate",
    progress: SoakProgress | None = None,
) -> SoakResult:
    """``run_soak`` from sync code (notebooks included); ``side="baseline"`` for a baseline soak; ``progress``
    holds what it did so far when it is interrupted."""
    return run_blocking(
        lambda: run_soak(base_url, scenario, ws_base_url=ws_base_url, run_id=run_id, side=side, progress=progress)
    )
