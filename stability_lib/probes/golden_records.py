"""The golden path's records, its isolation check, its result and claims, and their wire form (no I/O).

Shared by both engines: ``probes.golden`` (asyncio) and the Locust engine (``scale.locust_golden``,
gevent) record a user's golden runs through ``UserOutcome`` / ``Repetition`` (what a step run adds:
a sample, sightings, the run's HTTP results and WebSocket records, the failed step), send them as
``UserOutcome.to_dict`` and rebuild them with ``UserOutcome.from_dict``; ``assemble_result`` turns the
per-user outcomes into one ``GoldenResult`` (isolation analysed over every sighting).

Pure: ``analyze_isolation`` reads the sightings: a user who sees another user's nonce
anywhere is a leak (FAIL, naming viewer, owner and where). PASS needs at least two
users, and every user must have seen their own nonce at least once: otherwise the
check could not have failed, and it says INCONCLUSIVE.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.models import Claim, EvidenceRef, Figure, Status
from ..stats.rates import RateEstimate, rate_estimate
from .golden_users import LeftoverCheck, StepSample, UsersFinished
from .http_steps import HttpStepResult, UserSetup
from .scenario import ScenarioConfig
from .sessions import NONCE_PATTERN, SessionRecord, summarize_samples
from .teardown import TeardownRecord

__all__ = [
    "Sighting",
    "GoldenRun",
    "Leak",
    "IsolationResult",
    "GoldenResult",
    "analyze_isolation",
    "golden_claim",
    "Repetition",
    "UserOutcome",
    "assemble_result",
    "http_result_from_dict",
    "user_setup_from_dict",
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


# --------------------------------------------------------------------------- records of one user (both engines)


def http_result_from_dict(raw: Mapping[str, Any]) -> HttpStepResult:
    """``HttpStepResult.to_dict`` read back (the body is not on the wire: sightings carry what was received)."""
    return HttpStepResult(
        str(raw["name"]),
        str(raw["method"]),
        str(raw["path"]),
        bool(raw["ok"]),
        None if raw.get("status") is None else int(raw["status"]),
        float(raw.get("duration_s", 0.0)),
        str(raw.get("error", "")),
        "",
        tuple(str(c) for c in raw.get("captured", ())),
    )


def user_setup_from_dict(raw: Mapping[str, Any]) -> UserSetup:
    """``UserSetup.to_dict`` read back."""
    steps = tuple(http_result_from_dict(s) for s in raw.get("steps", ()))
    return UserSetup(int(raw["index"]), str(raw["username"]), bool(raw["ok"]), str(raw.get("error", "")), steps)


def _run_from_dict(raw: Mapping[str, Any]) -> GoldenRun:
    return GoldenRun(
        str(raw["user"]),
        int(raw["user_index"]),
        int(raw["repetition"]),
        bool(raw["ok"]),
        str(raw.get("nonce", "")),
        str(raw.get("failed_step", "")),
        str(raw.get("failure", "")),
        tuple(http_result_from_dict(h) for h in raw.get("http_steps", ())),
        tuple(SessionRecord.from_dict(dict(w)) for w in raw.get("ws_sessions", ())),
    )


@dataclass
class UserOutcome:
    """Everything one test user's golden runs produced, on either engine."""

    setup: UserSetup
    runs: list[GoldenRun] = field(default_factory=list)
    samples: list[StepSample] = field(default_factory=list)
    sightings: list[Sighting] = field(default_factory=list)
    teardown: list[TeardownRecord] = field(default_factory=list)
    leftovers: list[LeftoverCheck] = field(default_factory=list)

    def setup_taken(self, steps: Iterable[HttpStepResult]) -> None:
        """The setup steps taken for this user (register, login, prerequisites) are samples of repetition 0."""
        self.samples.extend(StepSample(s.name, self.setup.username, 0, s.duration_s, s.ok) for s in steps)

    def setup_failed(self, repetitions: int) -> None:
        """A user whose setup failed: each of its runs fails at the setup step that failed."""
        failed_step = self.setup.steps[-1].name if self.setup.steps else "setup"
        for rep in range(repetitions):
            self.runs.append(
                GoldenRun(self.setup.username, self.setup.index, rep, False, "", failed_step, self.setup.error)
            )

    def repetition(self, rep: int, nonce: str) -> Repetition:
        return Repetition(self, rep, nonce)

    def to_dict(self) -> dict[str, Any]:
        """The wire form (Locust worker -> master): sightings keep their capped, redacted text."""
        return {
            "setup": self.setup.to_dict(),
            "runs": [r.to_dict() for r in self.runs],
            "samples": [s.to_dict() for s in self.samples],
            "sightings": [s.to_dict() for s in self.sightings],
            "teardown": [t.to_dict() for t in self.teardown],
            "leftovers": [dataclasses.asdict(c) for c in self.leftovers],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> UserOutcome:
        return cls(
            setup=user_setup_from_dict(raw["setup"]),
            runs=[_run_from_dict(r) for r in raw.get("runs", ())],
            samples=[StepSample(**s) for s in raw.get("samples", ())],
            sightings=[Sighting(**s) for s in raw.get("sightings", ())],
            teardown=[TeardownRecord(**t) for t in raw.get("teardown", ())],
            leftovers=[LeftoverCheck(**c) for c in raw.get("leftovers", ())],
        )


@dataclass
class Repetition:
    """One repetition of one user in progress: ``took`` each step run, then ``close`` (after its finally steps)."""

    outcome: UserOutcome
    rep: int
    nonce: str
    http: list[HttpStepResult] = field(default_factory=list)
    ws: list[SessionRecord] = field(default_factory=list)
    failed_step: str = ""
    failure: str = ""

    def took(
        self,
        step: str,
        ok: bool,
        why: str,
        duration_s: float,
        http: HttpStepResult | None = None,
        ws: SessionRecord | None = None,
    ) -> bool:
        """Record one step run (its sample and everything the user received); False: the repetition stops here."""
        out, user = self.outcome, self.outcome.setup.username
        if http is not None:
            self.http.append(http)
            out.sightings.append(Sighting(user, step, f"{http.method} {http.path}", http.body, self.rep))
        if ws is not None:
            self.ws.append(ws)
            for event_type, payload in zip(ws.event_types, ws.payloads, strict=False):
                out.sightings.append(Sighting(user, step, f"ws event {event_type}", payload, self.rep))
        out.samples.append(StepSample(step, user, self.rep, duration_s, ok))
        if not ok:
            self.failed_step, self.failure = step, why
        return ok

    def close(self) -> GoldenRun:
        run = GoldenRun(
            self.outcome.setup.username,
            self.outcome.setup.index,
            self.rep,
            not self.failed_step,
            self.nonce,
            self.failed_step,
            self.failure,
            tuple(self.http),
            tuple(self.ws),
        )
        self.outcome.runs.append(run)
        return run


def assemble_result(
    *,
    run_id: str,
    started_at: str,
    duration_s: float,
    scenario: ScenarioConfig,
    outcomes: Sequence[UserOutcome],
    users_own: bool,
) -> GoldenResult:
    """One ``GoldenResult`` from the users' outcomes (in user order); ``users_own``: the users' own
    teardown and leftovers checks ran in this result (else once, later, in ``finish_users``)."""
    sightings = [s for o in outcomes for s in o.sightings]
    nonces = {o.setup.username: [r.nonce for r in o.runs if r.nonce] for o in outcomes}
    return GoldenResult(
        run_id=run_id,
        started_at=started_at,
        duration_s=duration_s,
        repetitions=scenario.golden_path.repetitions,
        users=tuple(o.setup for o in outcomes),
        runs=tuple(r for o in outcomes for r in o.runs),
        samples=tuple(s for o in outcomes for s in o.samples),
        sightings=tuple(sightings),
        isolation=analyze_isolation(nonces, sightings),
        confidence=scenario.confidence,
        teardown=tuple(t for o in outcomes for t in o.teardown),
        teardown_configured=bool(scenario.golden_path.finally_steps or (users_own and scenario.teardown)),
        leftovers=tuple(c for o in outcomes for c in o.leftovers),
        leftovers_configured=users_own and bool(scenario.leftovers),
    )
