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

Users logged in once for many runs (``log_in_users``, ``finish_users``) are in ``probes.golden_users``,
re-exported here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as _dt
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..core.models import Claim, EvidenceRef, Figure, Status
from ..stats.rates import RateEstimate, rate_estimate
from .engine import (
    SETUP_CONCURRENCY,
    HttpStepResult,
    UserSetup,
    new_http_client,
    new_nonce,
    new_run_id,
    prepare_user,
    run_blocking,
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
from .sessions import NONCE_PATTERN, SessionRecord, summarize_samples
from .teardown import TeardownRecord, Where, run_finally, run_step

__all__ = [
    "Sighting",
    "StepSample",
    "GoldenRun",
    "Leak",
    "IsolationResult",
    "GoldenResult",
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

_MAX_LEAKS_LISTED = 50  # evidence names pairs; a systematic leak must not list thousands


@dataclass(frozen=True)
class Sighting:
    """Something one user received: where, and its (capped, redacted) text."""

    viewer: str
    step: str
    where: str
    text: str = field(repr=False)
    repetition: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "viewer": self.viewer,
            "step": self.step,
            "where": self.where,
            "repetition": self.repetition,
            "text": self.text,
        }


@dataclass(frozen=True)
class GoldenRun:
    """One user's pass through the steps: ok, or the step that failed and why."""

    user: str
    user_index: int
    repetition: int
    ok: bool
    nonce: str
    failed_step: str = ""
    failure: str = ""
    http_steps: tuple[HttpStepResult, ...] = ()
    ws_sessions: tuple[SessionRecord, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "user_index": self.user_index,
            "repetition": self.repetition,
            "ok": self.ok,
            "nonce": self.nonce,
            "failed_step": self.failed_step,
            "failure": self.failure,
            "http_steps": [s.to_dict() for s in self.http_steps],
            "ws_sessions": [{k: v for k, v in r.to_dict().items() if k != "payloads"} for r in self.ws_sessions],
        }


# --------------------------------------------------------------------------- isolation (pure)


@dataclass(frozen=True)
class Leak:
    """``viewer`` received ``owner``'s nonce at ``step`` / ``where`` (``count`` times)."""

    viewer: str
    owner: str
    step: str
    where: str
    nonce: str
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "viewer": self.viewer,
            "owner": self.owner,
            "step": self.step,
            "where": self.where,
            "nonce": self.nonce,
            "count": self.count,
        }


@dataclass(frozen=True)
class IsolationResult:
    status: Status
    users: tuple[str, ...]
    leaks: tuple[Leak, ...]
    leak_count: int
    own_seen: dict[str, int]
    sightings: int
    explanation: str

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return sorted({(leak.viewer, leak.owner) for leak in self.leaks})

    def claim(self, section: str = "isolation", evidence: Sequence[EvidenceRef] = ()) -> Claim:
        if self.leak_count:
            pairs = ", ".join(f"{v} saw {o}'s data" for v, o in self.pairs[:5])
            statistic = (
                f"{self.leak_count} sighting(s) of another user's nonce across {len(self.pairs)} "
                f"viewer/owner pair(s): {pairs}"
            )
        else:
            seen = sum(1 for c in self.own_seen.values() if c > 0)
            statistic = (
                f"0 of {self.sightings} received messages/bodies held another user's nonce; "
                f"{seen} of {len(self.users)} users saw their own"
            )
        return Claim(
            id=f"{section}.no_cross_user_data",
            section=section,
            statement="No user sees another user's data",
            status=self.status,
            statistic=statistic,
            evidence=tuple(evidence),
            details=self.to_dict(),
            # k: sightings of another user's nonce, n: messages and bodies received.
            figure=Figure(
                kind="count",
                value=float(self.leak_count),
                k=self.leak_count,
                n=self.sightings,
                test="nonce tracing",
                what="received messages held another user's data",
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "users": list(self.users),
            "leak_count": self.leak_count,
            "pairs": [list(p) for p in self.pairs],
            "leaks": [leak.to_dict() for leak in self.leaks],
            "own_seen": dict(self.own_seen),
            "sightings": self.sightings,
            "explanation": self.explanation,
        }


def _markers_in(
    text: str, owners: Mapping[str, str], pattern: re.Pattern[str] | None, irregular: Sequence[str]
) -> list[str]:
    found = [m for m in pattern.findall(text) if m in owners] if pattern is not None else []
    found.extend(n for n in irregular if n in text)
    return found


def analyze_isolation(
    nonces_by_user: Mapping[str, Iterable[str]],
    sightings: Iterable[Sighting],
    pattern: re.Pattern[str] | None = NONCE_PATTERN,
) -> IsolationResult:
    """Did any user receive a nonce that belongs to another user?

    Nonces matching ``pattern`` are found with one regex pass per text; any other
    nonce is searched for as a plain substring.
    """
    owners: dict[str, str] = {}
    for user, nonces in nonces_by_user.items():
        for nonce in nonces:
            owners[nonce] = user
    irregular = [n for n in owners if pattern is None or not pattern.fullmatch(n)]
    users = tuple(sorted(nonces_by_user))
    own_seen: Counter[str] = Counter(dict.fromkeys(users, 0))
    leaks: Counter[tuple[str, str, str, str]] = Counter()
    first_nonce: dict[tuple[str, str, str, str], str] = {}
    total = 0
    for sighting in sightings:
        total += 1
        for nonce in _markers_in(sighting.text, owners, pattern, irregular):
            owner = owners[nonce]
            if owner == sighting.viewer:
                own_seen[owner] += 1
                continue
            key = (sighting.viewer, owner, sighting.step, sighting.where)
            leaks[key] += 1
            first_nonce.setdefault(key, nonce)
    leak_list = tuple(Leak(v, o, s, w, first_nonce[(v, o, s, w)], c) for (v, o, s, w), c in sorted(leaks.items()))[
        :_MAX_LEAKS_LISTED
    ]
    leak_count = sum(leaks.values())
    unseen = [u for u in users if own_seen[u] == 0]
    if leak_count:
        status = Status.FAIL
        explanation = f"{leak_count} time(s) a user received another user's nonce"
    elif len(users) < 2:
        status = Status.INCONCLUSIVE
        explanation = f"{len(users)} user(s): isolation needs at least 2 users to be tested"
    elif unseen:
        status = Status.INCONCLUSIVE
        explanation = (
            f"{len(unseen)} of {len(users)} users never saw their own nonce ({', '.join(unseen[:5])}), "
            "so a leak to or from them could not have been seen"
        )
    else:
        status = Status.PASS
        explanation = f"each of {len(users)} users saw their own nonce and none saw another's"
    return IsolationResult(status, users, leak_list, leak_count, dict(own_seen), total, explanation)


# --------------------------------------------------------------------------- golden path result


def golden_claim(
    runs: Sequence[GoldenRun],
    confidence: float = 0.95,
    section: str = "golden_path",
    evidence: Sequence[EvidenceRef] = (),
) -> Claim:
    """PASS only if every run succeeded and there was at least one; any failed run FAILs."""
    n = len(runs)
    failed = [r for r in runs if not r.ok]
    est = rate_estimate(len(failed), n, confidence)
    users = len({r.user for r in runs})
    conf = f"{100 * confidence:g}%"
    if n == 0:
        status, statistic = Status.INCONCLUSIVE, "no golden path run"
    else:
        status = Status.PASS if not failed else Status.FAIL
        statistic = (
            f"{n - len(failed)} of {n} runs succeeded ({users} users; failure rate {conf} upper bound "
            f"{100 * est.upper:.2f}%)"
        )
    by_step = Counter(r.failed_step for r in failed)
    return Claim(
        id=f"{section}.succeeds_for_every_user",
        section=section,
        statement="Golden path succeeds for every user",
        status=status,
        statistic=statistic,
        evidence=tuple(evidence),
        figure=est.figure("runs failed") if n else None,
        details={
            "estimate": est.serialize(),
            "failed_by_step": dict(by_step),
            "failures": [
                {"user": r.user, "repetition": r.repetition, "step": r.failed_step, "failure": r.failure}
                for r in failed[:50]
            ],
        },
    )


@dataclass(frozen=True)
class GoldenResult:
    run_id: str
    started_at: str
    duration_s: float
    repetitions: int
    users: tuple[UserSetup, ...]
    runs: tuple[GoldenRun, ...]
    samples: tuple[StepSample, ...]
    sightings: tuple[Sighting, ...]
    isolation: IsolationResult
    confidence: float
    teardown: tuple[TeardownRecord, ...] = ()
    teardown_configured: bool = False
    leftovers: tuple[LeftoverCheck, ...] = ()
    leftovers_configured: bool = False

    @property
    def success(self) -> RateEstimate:
        """Estimate of the *failure* rate over runs (k failed of n)."""
        return rate_estimate(sum(1 for r in self.runs if not r.ok), len(self.runs), self.confidence)

    def step_durations(self) -> dict[str, dict[str, Any]]:
        """Per step: summary of the durations of successful attempts, over all users and repetitions."""
        steps: dict[str, list[float]] = {}
        for s in self.samples:
            steps.setdefault(s.step, [])
            if s.ok:
                steps[s.step].append(s.duration_s)
        return {name: summarize_samples(values) for name, values in steps.items()}

    def claims(
        self,
        golden_section: str = "golden_path",
        isolation_section: str = "isolation",
        evidence: Sequence[EvidenceRef] = (),
    ) -> tuple[Claim, Claim]:
        return (
            golden_claim(self.runs, self.confidence, golden_section, evidence),
            self.isolation.claim(isolation_section, evidence),
        )

    def teardown_claims(self, section: str = "golden_path", evidence: Sequence[EvidenceRef] = ()) -> list[Claim]:
        """``<section>.teardown.steps_succeeded`` when the scenario has finally/teardown steps, and
        ``<section>.teardown.nothing_left_behind`` when it has leftovers checks (else none)."""
        done = UsersFinished(self.teardown, self.leftovers, self.teardown_configured, self.leftovers_configured)
        return done.claims(section, evidence)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "repetitions": self.repetitions,
            "users": [u.to_dict() for u in self.users],
            "runs": [r.to_dict() for r in self.runs],
            "success": self.success.serialize(),
            "step_durations": self.step_durations(),
            "samples": [s.to_dict() for s in self.samples],
            "isolation": self.isolation.to_dict(),
            "sightings": [s.to_dict() for s in self.sightings],
            "teardown": [t.to_dict() for t in self.teardown],
            "leftovers": [dataclasses.asdict(c) for c in self.leftovers],
        }


# --------------------------------------------------------------------------- runner (I/O)


@dataclass
class _UserOutcome:
    setup: UserSetup
    runs: list[GoldenRun] = field(default_factory=list)
    samples: list[StepSample] = field(default_factory=list)
    sightings: list[Sighting] = field(default_factory=list)
    teardown: list[TeardownRecord] = field(default_factory=list)
    leftovers: list[LeftoverCheck] = field(default_factory=list)


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
) -> _UserOutcome:
    cap = scenario.max_capture_bytes
    async with new_http_client(base_url, cookies=prepared.cookies if prepared is not None else ()) as client:
        user, setup_taken = await _user_for_this_run(
            client, scenario, index, username, run_id, setup_slots, prepared, sample_login
        )
        where = Where(client, base_url, ws_base_url, scenario, user, run_id, run_start_ns)
        out = _UserOutcome(user.setup)
        for step_result in setup_taken:
            out.samples.append(StepSample(step_result.name, username, 0, step_result.duration_s, step_result.ok))
        if not user.setup.ok:
            failed_step = user.setup.steps[-1].name if user.setup.steps else "setup"
            for rep in range(scenario.golden_path.repetitions):
                out.runs.append(GoldenRun(username, index, rep, False, "", failed_step, user.setup.error))
            return out
        for rep in range(scenario.golden_path.repetitions):
            nonce = new_nonce()
            context: dict[str, Any] = user.context(
                run_id, nonce=nonce, repetition=rep, session_id=f"{run_id}-u{index}-r{rep}"
            )
            http_results: list[HttpStepResult] = []
            ws_records: list[SessionRecord] = []
            failed_step, failure = "", ""
            try:
                for step in scenario.golden_path.steps:
                    run = await run_step(where, step, context, capture_bytes=cap)
                    if run.http is not None:
                        http_results.append(run.http)
                        where_seen = f"{run.http.method} {run.http.path}"
                        out.sightings.append(Sighting(username, step.name, where_seen, run.http.body, rep))
                    if run.ws is not None:
                        ws_records.append(run.ws)
                        for event_type, payload in zip(run.ws.event_types, run.ws.payloads, strict=False):
                            out.sightings.append(Sighting(username, step.name, f"ws event {event_type}", payload, rep))
                    context.update(run.captured)
                    out.samples.append(StepSample(step.name, username, rep, run.duration_s, run.ok))
                    if not run.ok:
                        failed_step, failure = step.name, run.why
                        break
            finally:  # after every repetition, pass, fail or cancel: undo what it created
                out.teardown.extend(
                    await run_finally(where, scenario.golden_path.finally_steps, context, unit="golden_run", index=rep)
                )
            out.runs.append(
                GoldenRun(
                    username,
                    index,
                    rep,
                    not failed_step,
                    nonce,
                    failed_step,
                    failure,
                    tuple(http_results),
                    tuple(ws_records),
                )
            )
        if prepared is None:  # else the users' own teardown and leftovers checks run once, in finish_users
            teardown, leftovers = await finish_user(where)
            out.teardown.extend(teardown)
            out.leftovers.extend(leftovers)
        return out


async def run_golden_path(
    base_url: str,
    scenario: ScenarioConfig,
    *,
    ws_base_url: str | None = None,
    run_id: str | None = None,
    users: LoggedInUsers | None = None,
    sample_login: bool = False,
) -> GoldenResult:
    """Run the golden path for ``users.count`` users at once, ``repetitions`` times each.

    Users are set up (register, login) ``SETUP_CONCURRENCY`` at a time; their golden runs then overlap.
    With ``users`` (``log_in_users`` on this target), nobody is set up here: the runs go as those users,
    and their own teardown and leftovers checks are left to ``finish_users``. ``sample_login`` then logs
    each of them in once more in this call and uses the new token, so ``auth.login`` is still a sample
    of every call (the section's login is not repeated for anything else: no registration, no setup steps).
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
    outcomes = await asyncio.gather(
        *(
            _run_user(
                base_url, scenario, i, name, run_id, run_start_ns, ws_base_url, setup_slots, prepared, sample_login
            )
            for i, (name, prepared) in enumerate(who)
        )
    )
    runs = [r for o in outcomes for r in o.runs]
    sightings = [s for o in outcomes for s in o.sightings]
    nonces = {o.setup.username: [r.nonce for r in o.runs if r.nonce] for o in outcomes}
    users_own = users is None  # the users' teardown and leftovers are part of this result
    return GoldenResult(
        run_id=run_id,
        started_at=started_at,
        duration_s=(time.monotonic_ns() - run_start_ns) / 1e9,
        repetitions=scenario.golden_path.repetitions,
        users=tuple(o.setup for o in outcomes),
        runs=tuple(runs),
        samples=tuple(s for o in outcomes for s in o.samples),
        sightings=tuple(sightings),
        isolation=analyze_isolation(nonces, sightings),
        confidence=scenario.confidence,
        teardown=tuple(t for o in outcomes for t in o.teardown),
        teardown_configured=bool(scenario.golden_path.finally_steps or (users_own and scenario.teardown)),
        leftovers=tuple(c for o in outcomes for c in o.leftovers),
        leftovers_configured=users_own and bool(scenario.leftovers),
    )


def run_golden_path_sync(
    base_url: str,
    scenario: ScenarioConfig,
    *,
    ws_base_url: str | None = None,
    run_id: str | None = None,
    users: LoggedInUsers | None = None,
    sample_login: bool = False,
) -> GoldenResult:
    """``run_golden_path`` from sync code (notebooks included)."""
    return run_blocking(
        lambda: run_golden_path(
            base_url, scenario, ws_base_url=ws_base_url, run_id=run_id, users=users, sample_login=sample_login
        )
    )
