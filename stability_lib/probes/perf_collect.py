"""The performance section's A/B collection (I/O): rounds of paired golden runs on baseline and candidate.

Lanes of logged-in users take pairs of golden runs back to back, the order alternating, and yield
``perf.SampleRound``s; ``perf.sample_sequentially`` reads them until every operation is decided, and
``perf.compare_operations`` judges them (both pure). What the finally steps, the per-user teardown
and the leftovers checks did goes into a ``perf.TeardownLog`` as each ends (``perf.performance_teardown_claims``
judges it): an interrupted section keeps what ran before the interrupt.

``InterleavedRuns`` keeps the users' teardown apart from the rounds: the section writes its evidence, then
runs ``finish_users``, then writes it again (a kernel killed during a slow teardown still leaves evidence);
``so_far(side)`` says what the records owe until then (units in flight, users not yet undone or checked).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .perf import OpSamples, PairResult, PerformanceConfig, RunCounts, SampleRound, Samples, TeardownLog

if TYPE_CHECKING:
    from .golden_users import UsersFinished
    from .teardown import UsersBeingSetUp

__all__ = [
    "InterleavedRuns",
    "collect_interleaved",
]


@dataclass(frozen=True)
class _Lanes:
    """What every lane's work shares: the scenario, the targets and their logged-in users (per side, one
    per lane), the run, and the log the finally and teardown steps add their records to."""

    scenario: Any
    targets: Mapping[str, Any]
    users: Mapping[str, list[Any]]
    run_id: str
    run_start_ns: int
    log: TeardownLog

    def where(self, side: str, client: Any, user: Any) -> Any:
        from .teardown import Where

        target = self.targets[side]
        return Where(client, target.base_url, target.ws_base_url, self.scenario, user, self.run_id, self.run_start_ns)


class InterleavedRuns:
    """The section's A/B collection: ``rounds()`` yields rounds of paired golden runs; the users' own
    teardown and leftovers checks run once, in ``finish_users()``, called by the section after it has
    written what it has (``collect_interleaved`` runs them when its rounds are closed)."""

    def __init__(
        self, scenario: Any, cfg: PerformanceConfig, targets: dict[str, Any], log: TeardownLog, *, run_id: str = ""
    ) -> None:
        from .soak import new_run_id

        self.scenario, self.cfg, self.targets, self.log = scenario, cfg, targets, log
        self.run_id = run_id or new_run_id()
        self._shared: _Lanes | None = None
        self._finish_started = False

    def rounds(self) -> Generator[SampleRound, None, None]:
        """Rounds of paired golden-path runs, endlessly (the caller stops, then closes the generator).

        ``concurrency`` lanes run at once; a lane has one test user per target, registered and logged
        in once for the whole section (their setup steps are sampled in the first round). A lane takes
        pairs one after the other: one golden run on every target back to back, the order alternating
        from pair to pair (A B, B A, ...), so the two runs of a pair are next to each other in time
        and drift on the machine hits both alike; neither side always goes first. A round is
        ``samples_per_side`` pairs. In a round's samples of an operation, the i-th baseline value
        and the i-th candidate value come from the same pair; values whose partner run failed
        follow after the paired ones.

        Every golden run's finally steps (outside its timed steps, as they always were) add their
        records to ``log``, per side, as each step ends. The users' own teardown and leftovers checks
        are not run here: ``finish_users``."""
        from .soak import run_blocking
        from .teardown import UsersBeingSetUp

        scenario, cfg, targets = self.scenario, self.cfg, self.targets
        sides = list(targets)
        for side in sides:
            self.log.add_side(side)
        lanes = max(1, min(cfg.concurrency, cfg.samples_per_side))
        run_start_ns = time.monotonic_ns()
        setup_started = time.monotonic()
        # Owed until held here: a cancel cuts a setup off, or loses the users already set up (never torn down
        # then, and the section's claims say they may be on the target).
        pending = {side: UsersBeingSetUp(self.run_id, target.base_url) for side, target in targets.items()}
        users, setup = run_blocking(lambda: _prepare_lanes(scenario, targets, lanes, self.run_id, pending))
        setup_s = time.monotonic() - setup_started
        shared = _Lanes(scenario, targets, users, self.run_id, run_start_ns, self.log)
        self._shared = shared
        for side_users in pending.values():
            side_users.handed_over()  # finish_users and so_far know them now
        first_pair = 0
        while True:
            pairs = run_blocking(functools.partial(_run_pairs, shared, first_pair, cfg.samples_per_side))
            rnd = _round_of(pairs, sides, first_pair, setup if first_pair == 0 else None)
            yield dataclasses.replace(rnd, setup_s=setup_s) if first_pair == 0 else rnd
            first_pair += cfg.samples_per_side

    @property
    def users_to_finish(self) -> bool:
        """Whether ``finish_users`` has work: users were set up and the scenario has teardown or leftovers."""
        return self._shared is not None and bool(self.scenario.teardown or self.scenario.leftovers)

    def finish_users(self) -> None:
        """Per user, once (a second call does nothing): the scenario's teardown, then its leftovers checks,
        every user at once; records into ``log`` as each user ends, also when interrupted."""
        from .soak import run_blocking

        shared = self._shared
        if self._finish_started or shared is None or not self.users_to_finish:
            return
        self._finish_started = True
        run_blocking(lambda: _finish_lanes(shared))

    def so_far(self, side: str) -> UsersFinished:
        """The side's records until now with what they owe: its units whose finally steps have not all left
        their record, and each of its users set up whose teardown records or leftovers checks are not all
        in (before ``finish_users``, every one). Its claims are never PASS while anything is owed."""
        from .golden_users import users_finished_so_far
        from .teardown import units_in_flight

        target = self.targets[side].base_url
        before = units_in_flight(self.run_id, target=target)
        teardown = tuple(self.log.teardown.get(side, ()))
        leftovers = tuple(self.log.leftovers.get(side, ()))
        after = units_in_flight(self.run_id, target=target)
        scenario = self.scenario
        return users_finished_so_far(
            teardown,
            leftovers,
            teardown_configured=bool(scenario.golden_path.finally_steps or scenario.teardown),
            leftovers_configured=bool(scenario.leftovers),
            scenario=scenario,
            users=self._shared.users.get(side, ()) if self._shared is not None else (),
            in_flight=(*before, *after),
            target=target,
        )


def collect_interleaved(
    scenario: Any, cfg: PerformanceConfig, targets: dict[str, Any], log: TeardownLog
) -> Generator[SampleRound, None, None]:
    """``InterleavedRuns.rounds``, with each user's teardown and leftovers checks when the generator is
    closed (or ends with an error): close the generator before judging ``log``."""
    runs = InterleavedRuns(scenario, cfg, targets, log)
    try:
        yield from runs.rounds()
    finally:  # the scenario's per-user teardown and leftovers checks, once, after the last round (or a Ctrl-C)
        runs.finish_users()


async def _prepare_lanes(
    scenario: Any, targets: Mapping[str, Any], lanes: int, run_id: str, pending: Mapping[str, UsersBeingSetUp]
) -> tuple[dict[str, list[Any]], dict[str, OpSamples]]:
    """Register and log in ``lanes`` users per target (a few at a time), once for the section.
    Returns the users per side and, per side, the setup steps' samples. Each user is in ``pending`` (owed)
    from the start of its setup: the caller hands them over once it holds them."""
    import asyncio

    from .engine import SETUP_CONCURRENCY, new_http_client, prepare_user
    from .operations import operation_samples_ms
    from .scenario import HttpStep

    names = scenario.users.model_copy(update={"count": lanes}).usernames(run_id)
    setup_steps = [s for s in scenario.setup if isinstance(s, HttpStep)]
    slots = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def one(side: str, index: int) -> Any:  # on the baseline, a static user's baseline_token
        pending[side].begin(index, names[index])
        async with slots, new_http_client(targets[side].base_url) as client:
            return await prepare_user(client, scenario.on_side(side), index, names[index], run_id, setup_steps)

    users = {side: list(await asyncio.gather(*(one(side, i) for i in range(lanes)))) for side in targets}
    setup: dict[str, OpSamples] = {}
    for side, prepared in users.items():
        steps = [{"step": r.name, "ok": r.ok, "duration_s": r.duration_s} for u in prepared for r in u.setup.steps]
        setup[side] = operation_samples_ms({"samples": steps})
    return users, setup


@dataclass(frozen=True)
class _IntoLog:
    """A ``run_finally`` sink that adds each record to the side's log as its step ends."""

    log: TeardownLog
    side: str

    def append(self, record: Any, /) -> None:
        self.log.add_teardown(self.side, [record])


async def _finally_into(
    log: TeardownLog, side: str, where: Any, steps: Sequence[Any], context: Mapping[str, Any], *, unit: str, index: int
) -> None:
    """``run_finally`` with its records added to ``log`` as each step ends, also when this call is cancelled
    (Ctrl-C mid-run): an interrupted section that reads the log finds every record of a unit whose steps
    ended (the unit leaves ``teardown.units_in_flight`` only after)."""
    from .teardown import run_finally

    await run_finally(where, steps, context, unit=unit, index=index, sink=_IntoLog(log, side))


async def _one_run(where: Any, rep: int, side: str, log: TeardownLog) -> tuple[bool, OpSamples]:
    """One pass through the golden path's steps (then its finally steps, untimed, their records into
    ``log``): ok, and its operations' durations."""
    from .http_steps import new_nonce
    from .operations import operation_samples_ms
    from .teardown import run_step

    scenario, user = where.scenario, where.user
    index = user.setup.index
    context: dict[str, Any] = user.context(
        where.run_id, nonce=new_nonce(), repetition=rep, session_id=f"{where.run_id}-u{index}-r{rep}"
    )
    steps: list[dict[str, Any]] = []
    sessions: list[dict[str, Any]] = []
    ok = True
    try:
        for step in scenario.golden_path.steps:
            run = await run_step(where, step, context)
            if run.ws is not None:
                sessions.append(run.ws.to_dict())
            context.update(run.captured)
            steps.append({"step": step.name, "ok": run.ok, "duration_s": run.duration_s})
            if not run.ok:
                ok = False
                break
    finally:  # pass, fail or cancel: undo what the run created
        await _finally_into(log, side, where, scenario.golden_path.finally_steps, context, unit="golden_run", index=rep)
    return ok, operation_samples_ms({"samples": steps, "runs": [{"ok": ok, "ws_sessions": sessions}]})


async def _run_pairs(shared: _Lanes, first: int, count: int) -> dict[int, PairResult]:
    """Pairs ``first`` .. ``first + count - 1``, spread over the lanes (each lane one pair at a time)."""
    from contextlib import AsyncExitStack

    from .engine import new_http_client
    from .teardown import gather_units

    targets, users = shared.targets, shared.users
    sides = list(targets)
    lanes = len(next(iter(users.values())))
    results: dict[int, PairResult] = {}
    queue = iter(range(first, first + count))

    async def lane(index: int) -> None:
        async with AsyncExitStack() as stack:
            wheres = {}
            for side in sides:
                client = await stack.enter_async_context(new_http_client(targets[side].base_url))
                wheres[side] = shared.where(side, client, users[side][index])
            for pair in queue:  # shared by the lanes: each pair is taken once
                order = sides if pair % 2 == 0 else list(reversed(sides))  # ABBA
                result: PairResult = {}
                for side in order:
                    if not users[side][index].setup.ok:  # no user on this side: a failed run, no sample
                        result[side] = (False, {})
                        continue
                    result[side] = await _one_run(wheres[side], pair, side, shared.log)
                results[pair] = result

    await gather_units(*(lane(i) for i in range(lanes)))  # a Ctrl-C waits for every lane's finally steps
    return results


async def _finish_lanes(shared: _Lanes) -> None:
    """Per user, once, at the end (as ``golden_users.finish_user``): the teardown, then the checks that
    nothing was left behind; each user's records into ``log`` when the user is done, or cancelled."""
    from .engine import new_http_client
    from .golden_users import LeftoverCheck, finish_user
    from .teardown import TeardownRecord, gather_units

    log = shared.log

    async def one(side: str, user: Any) -> None:
        if not user.setup.ok:
            return
        teardown: list[TeardownRecord] = []
        leftovers: list[LeftoverCheck] = []
        try:
            async with new_http_client(shared.targets[side].base_url) as client:
                await finish_user(shared.where(side, client, user), teardown=teardown, leftovers=leftovers)
        finally:  # also when cancelled: what ended is evidence
            log.add_teardown(side, teardown)
            log.add_leftovers(side, leftovers)

    await gather_units(*(one(side, u) for side, prepared in shared.users.items() for u in prepared))


def _round_of(
    pairs: Mapping[int, PairResult],
    sides: list[str],
    first: int,
    setup: Mapping[str, OpSamples] | None,
) -> SampleRound:
    """Per operation, the values of pairs where both runs have one, in pair order (so index i on
    every side is pair i), then each side's values whose partner is missing."""
    samples: Samples = {side: {} for side in sides}
    runs: RunCounts = {side: {"runs": 0, "failed": 0} for side in sides}
    extras: Samples = {side: {} for side in sides}
    for pair in sorted(pairs):
        result = pairs[pair]
        for side in sides:
            ok, _ = result[side]
            runs[side]["runs"] += 1
            runs[side]["failed"] += 0 if ok else 1
        for op in sorted({op for side in sides for op in result[side][1]}):
            per_side = {side: result[side][1].get(op, []) for side in sides}
            paired = min(len(v) for v in per_side.values())
            for side, v in per_side.items():
                samples[side].setdefault(op, []).extend(v[:paired])
                if len(v) > paired:
                    extras[side].setdefault(op, []).extend(v[paired:])
    for side in sides:
        for op, rest in extras[side].items():
            samples[side].setdefault(op, []).extend(rest)
        if setup is not None:
            for op, durations in setup[side].items():
                samples[side].setdefault(op, []).extend(durations)
    order = tuple(sides if first % 2 == 0 else reversed(sides))
    return SampleRound(samples=samples, runs=runs, order=order)
