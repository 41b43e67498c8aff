"""The websocket section: the soak, in rounds until its claims are decided (issue 14), judged, as evidence.

Sequential (the default; ``sections.websocket.sequential: false`` keeps the single fixed-size soak):
rounds of ``round_sessions`` sessions per side, and after each round the anytime-valid confidence
sequences of the candidate's crash and failure rates (and, with ``expect_fix``, of both sides'
crash rates for "the fix works") are read; the soak stops as soon as all are decided, or when
``scenario.soak.sessions`` per side or ``scenario.soak.duration_s`` for the section are spent.

Interrupted (Ctrl-C, SIGTERM) or broken mid-soak, the section still writes what ended until then: the
finally and teardown steps' records, judged (``websocket.teardown.*``; never a PASS while a unit's finally
steps or a user's undo steps are owed: not begun, or still running on the soak's own thread in a kernel), a
rate claim only when it already FAILs on the rounds that ENDED before the interrupt (1011 closes seen there
are a FAIL whatever the rest would show; never a PASS on a part, never a verdict on the round the interrupt
cut short, whose records lean towards failure; without rounds, only on a candidate soak that ended), and one
INCONCLUSIVE claim that says the soak did not finish (``websocket.runs_finished``); then the interrupt goes
on. Stopped during the conversation soak, the evidence is written before its test user's teardown runs, and
again after it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..core.models import Claim, Figure, SectionResult, Status
from ..execution.section import Section
from ..stats.sequential import halt, round_would_overrun, update
from ..stats.sequential.core import SequentialResult, StopReason
from ..stats.sequential.fixes import FixRound, FixSequentialConfig, FixState, start_fix
from ..stats.sequential.rates import RateRound, RateSequentialConfig, RateState, start_failure_rate
from ._common import _scenario

if TYPE_CHECKING:
    from ..probes.conversation_soak_results import ConversationSoakResult
    from ..probes.golden_users import LoggedInUsers, UsersFinished
    from ..probes.scenario import ScenarioConfig
    from ..probes.soak import SoakResult, SoaksSoFar
    from ..probes.teardown import OpenUnit

__all__ = ["websocket", "soak_sequentially", "merge_soak_rounds", "SoakRounds", "ROUND_SESSIONS_DEFAULT"]


def websocket(sec: Section) -> SectionResult:
    if not sec.enabled:
        return sec.skip("switched off in params")
    if sec.config.engine == "locust":
        return _websocket_locust(sec)
    if not sec.config.sequential:
        return _websocket_fixed(sec)
    from ..probes.sessions import not_seen_to_the_end
    from ..probes.soak import SoaksSoFar

    scenario, target = _scenario(sec), sec.params.target
    soak = scenario.soak
    baseline_target = sec.params.baseline if sec.config.expect_fix else None
    round_sessions = min(soak.sessions, sec.config.round_sessions or ROUND_SESSIONS_DEFAULT)
    targets = {"candidate": target, "baseline": baseline_target}

    so_far = SoaksSoFar()

    def soak_round(side: str, index: int, seconds_left: float) -> Any:
        where = targets[side]
        assert where is not None
        part = soak.model_copy(update={"sessions": round_sessions, "duration_s": min(soak.duration_s, seconds_left)})
        on_side = scenario.on_side(side).model_copy(update={"soak": part})
        return so_far.run_soak(side, on_side, where.base_url, where.ws_base_url)

    # Budget: scenario.soak.sessions per side and scenario.soak.duration_s for the whole section.
    try:
        taken = soak_sequentially(
            soak_round,
            tolerated_rate=scenario.tolerated_failure_rate,
            confidence=scenario.confidence,
            max_sessions=soak.sessions,
            max_seconds=soak.duration_s,
            with_baseline=baseline_target is not None,
        )
    except BaseException as exc:  # Ctrl-C, SIGTERM, a failure of ours: what ended is still evidence
        _write_stopped(sec, scenario, so_far, exc, sequential=True)
        raise
    candidate = merge_soak_rounds(taken.rounds["candidate"], taken.offsets["candidate"], scenario.confidence)
    crash_claim, complete_claim = candidate.claims(sec.name)
    claims = [
        _sequential_rate_claim(
            crash_claim, taken.crash, "closed with 1011/1006", taken.stop_note, not_seen_to_the_end(candidate.aggregate)
        ),
        _sequential_rate_claim(complete_claim, taken.complete, "failed", taken.stop_note),
        *candidate.teardown_claims(sec.name),
    ]
    records = candidate.records
    sequential: dict[str, Any] = {
        "enabled": True,
        "round_sessions": round_sessions,
        "max_sessions": soak.sessions,
        "max_seconds": soak.duration_s,
        "sample_rounds": len(taken.rounds["candidate"]),
        "elapsed_s": round(taken.elapsed_s, 3),
        "stop_note": taken.stop_note,
        "claims": {
            "no_1011_or_1006": taken.crash.result.serialize(),
            "sessions_complete": taken.complete.result.serialize(),
        },
    }
    data: dict[str, Any] = {
        "candidate": candidate.to_dict(),
        "durations_ms": {
            "ws_connect": [r.connect_s * 1e3 for r in records if r.connect_s is not None],
            "ws_first_event": [r.first_event_s * 1e3 for r in records if r.first_event_s is not None],
        },
        "sequential": sequential,
        "sample_rounds": len(taken.rounds["candidate"]),
    }
    if sec.config.expect_fix:
        if baseline_target is None or taken.fix is None:
            claims.append(_no_baseline_claim(sec))
        else:
            baseline = merge_soak_rounds(taken.rounds["baseline"], taken.offsets["baseline"], scenario.confidence)
            data["baseline"] = baseline.to_dict()
            fix = taken.fix.result
            data["fix"] = fix.serialize()
            sequential["claims"]["fix_works"] = data["fix"]
            fs = taken.fix
            claims.append(
                _fix_claim(
                    sec,
                    fix.verdict.status,
                    "1011/1006 closes: " + _budget_tail(fix, taken.stop_note, "sessions per side"),
                    {"n": [fs.baseline_sessions, fs.candidate_sessions], "sequential": data["fix"]},
                    _rate_figure(
                        fix,
                        "1011/1006 closes",
                        fs.candidate_failures,
                        fs.candidate_sessions,
                        (fs.baseline_failures, fs.baseline_sessions),
                    ),
                )
            )
    return sec.finish(*_with_conversation_soak(sec, claims, data))


def _fix_claim(sec: Section, status: Status, statistic: str, details: dict[str, Any], figure: Figure | None) -> Claim:
    return Claim(
        id=f"{sec.name}.fix_works",
        section=sec.name,
        statement="The fix works: fewer sessions close with 1011/1006 than on the baseline",
        status=status,
        statistic=statistic,
        details=details,
        figure=figure,
    )


def _no_baseline_claim(sec: Section) -> Claim:
    return sec.claim(
        "fix_works",
        "The 1011/1006 fix works (fewer crash closes than the baseline)",
        Status.INCONCLUSIVE,
        "no baseline target in params to compare with",
    )


def _websocket_locust(sec: Section) -> SectionResult:
    """``engine: locust``: one fixed soak per side on a Locust master and its workers, judged as ``_websocket_fixed``.

    The plan the Locust processes read keeps the params' ``${NAME}`` references (from the run's
    params.yaml): no secret goes into a file; each worker resolves them from its own environment.
    """
    from ..execution.params import read_raw
    from ..probes.scenario import raw_scenario_on_side
    from ..scale.launcher import LocustSettings, run_locust_soak

    cfg = sec.config
    params_file = sec.run_dir / "params.yaml"
    if not params_file.exists():
        return sec.skip("the locust engine runs from `stability run` (no params.yaml in the run directory)")
    raw = read_raw(params_file)
    settings = LocustSettings.of_section(cfg)
    scenario = _scenario(sec)
    engines: dict[str, Any] = {}

    def soak(side: str) -> Any:
        where = sec.params.target if side == "candidate" else sec.params.baseline
        raw_where = raw.get("target" if side == "candidate" else "baseline") or {}
        assert where is not None
        done = run_locust_soak(
            scenario=scenario.on_side(side),
            raw_scenario=raw_scenario_on_side(raw["scenario"], side),
            base_url=where.base_url,
            raw_base_url=str(raw_where.get("base_url", where.base_url)),
            raw_ws_base_url=raw_where.get("ws_base_url"),
            out_dir=sec.run_dir / "locust" / side,
            settings=settings,
            side=side,
        )
        engines[side] = done.run.to_dict()
        return done.soak

    claims, data = _fixed_soak(sec, soak)
    note = engines.get("candidate", {}).get("note", "")
    if note:  # a worker lost mid-run: the rate claims say so, judged on what was seen
        claims = [
            replace(c, statistic=f"{c.statistic}; {note}") if c.id in _rate_claim_ids(sec.name) else c for c in claims
        ]
    return sec.finish(*_with_conversation_soak(sec, claims, {**data, "engine": {"engine": "locust", "sides": engines}}))


def _rate_claim_ids(section: str) -> set[str]:
    return {f"{section}.no_1011_or_1006", f"{section}.sessions_complete"}


def _websocket_fixed(sec: Section) -> SectionResult:
    """``sequential: false``: one soak of scenario.soak.sessions per side, the fixed-sample rules."""
    return sec.finish(*_with_conversation_soak(sec, *_fixed_soak(sec)))


def _with_conversation_soak(
    sec: Section, claims: list[Claim], data: dict[str, Any]
) -> tuple[list[Claim], dict[str, Any]]:
    """``scenario.conversation_soak``: many correlated messages per session on the candidate, as the
    first test user (logged in once; the scenario's teardown and leftovers checks after), judged by
    the failure-rate rule over messages and over sessions. Without it: the claims and data unchanged."""
    scenario = _scenario(sec)
    cs = scenario.conversation_soak
    if cs is None:
        return claims, data
    from ..probes.conversation_soak import run_conversation_soak_sync
    from ..probes.conversation_soak_results import conversation_soak_claims, summarize_conversation_soak
    from ..probes.golden_users import finish_users_sync, log_in_users_sync
    from ..probes.http_steps import new_nonce
    from ..probes.ws_session import with_token, ws_url

    target = sec.params.target
    users: LoggedInUsers | None = None
    result: ConversationSoakResult | None = None
    try:
        users = log_in_users_sync(target.base_url, scenario, count=1)
        if users.ok:
            user = users.users[0]
            url, headers, subprotocols = with_token(
                ws_url(target.base_url, cs.path, target.ws_base_url),
                {},
                list(cs.subprotocols),
                scenario.auth,
                user.token,
            )
            context = user.context(users.run_id, nonce=new_nonce())
            result = run_conversation_soak_sync(
                url, cs.model_copy(update={"subprotocols": subprotocols}), context=context, headers=headers
            )
    except BaseException as exc:  # the soak before it ended (its claims stand); the user's teardown is evidence
        _conversation_stopped(sec, claims, data, exc, users)
        raise
    try:
        finished = finish_users_sync(users, scenario, ws_base_url=target.ws_base_url)
    except BaseException as exc:  # stopped during the user's teardown: what ended before it still stands
        with contextlib.suppress(Exception):
            what = "during the conversation soak user's teardown (the soak before it ended and is judged)"
            sec.finish([*claims, _stopped_claim(sec, exc, what), *_conversation_teardown_pending(sec)], data)
        raise
    if result is None:
        return [*claims, _conversation_not_run(sec, "the test user could not be set up or log in")], data
    summary = summarize_conversation_soak(result, confidence=scenario.confidence)
    more = list(conversation_soak_claims(summary, tolerated_rate=scenario.tolerated_failure_rate, section=sec.name))
    more += _conversation_teardown_claims(sec, finished)
    return [*claims, *more], {**data, "conversation_soak": result.to_dict()}


def _conversation_stopped(
    sec: Section, claims: list[Claim], data: dict[str, Any], exc: BaseException, users: LoggedInUsers | None
) -> None:
    """Stopped during the conversation soak: the evidence is written FIRST (the soak before it, judged; an
    INCONCLUSIVE ``runs_finished``; the user's teardown claims INCONCLUSIVE, not run yet), then the test user's
    teardown runs, then the evidence is written again with the teardown's own claims. In that order because
    the runner SIGKILLs a kernel that is not done within execution.notebooks.TEARDOWN_GRACE_S of the
    interrupt: a slow teardown first left no evidence at all. A teardown that fails or is stopped in turn
    leaves the first evidence; the interrupt, not the teardown's failure, is what goes on."""
    from ..probes.golden_users import finish_users_sync

    stopped = _stopped_claim(sec, exc, "during the conversation soak (the soak before it ended and is judged)")
    # No users: the interrupt came while the test user was being set up (its account may be on the target).
    pending = _conversation_teardown_pending(sec, setup_cut=users is None)
    sec.finish_stopped(exc, lambda: sec.finish([*claims, stopped, *pending], data))
    if users is None:
        return
    try:
        finished = finish_users_sync(users, _scenario(sec), ws_base_url=sec.params.target.ws_base_url)
    except BaseException:  # a second Ctrl-C, or the teardown failed: the evidence above stands
        return
    with contextlib.suppress(Exception):
        sec.finish([*claims, stopped, *_conversation_teardown_claims(sec, finished)], data)


def _conversation_teardown_pending(sec: Section, *, setup_cut: bool = False) -> list[Claim]:
    """The conversation soak user's teardown claims before (or without) its end: INCONCLUSIVE, saying so
    (``setup_cut``: the run stopped while the user was being set up; its teardown will not run)."""
    from ..probes.golden_users import UsersFinished

    scenario = _scenario(sec)
    nothing = UsersFinished(
        (), (), teardown_configured=bool(scenario.teardown), leftovers_configured=bool(scenario.leftovers)
    )
    why = (
        "the run stopped while the test user was being set up: what its setup created may still be on the "
        "target, and its teardown did not run"
        if setup_cut
        else "the test user's teardown had not ended: the run stopped during the conversation soak"
    )
    return [
        replace(c, status=Status.INCONCLUSIVE, statistic=why, details={"teardown_ended": False})
        for c in _conversation_teardown_claims(sec, nothing)
    ]


def _conversation_teardown_claims(sec: Section, finished: UsersFinished) -> list[Claim]:
    """The conversation soak user's own teardown and leftovers checks, apart from the soak's (same rule, other ids)."""
    prefix = f"{sec.name}.teardown."
    return [
        replace(c, id=c.id.replace(prefix, f"{sec.name}.conversation_teardown.", 1)) for c in finished.claims(sec.name)
    ]


def _conversation_not_run(sec: Section, why: str) -> Claim:
    return sec.claim(
        "conversation_messages_correct",
        "Every message of the conversation soak got its correct reply",
        Status.INCONCLUSIVE,
        f"the conversation soak did not run: {why}",
    )


def _fixed_soak(sec: Section, soak: Callable[[str], Any] | None = None) -> tuple[list[Claim], dict[str, Any]]:
    """One soak per side and its claims and data; ``soak(side)`` runs a side (default: our own engine)."""
    from ..probes.soak import SoaksSoFar

    scenario, target = _scenario(sec), sec.params.target
    so_far = SoaksSoFar()

    def run_side(side: str) -> Any:
        on_side = scenario.on_side(side)
        if soak is not None:  # another engine: what ended is its result, once it ended
            return so_far.soak(side, on_side, lambda _progress: soak(side))
        where = target if side == "candidate" else sec.params.baseline
        assert where is not None
        return so_far.run_soak(side, on_side, where.base_url, where.ws_base_url)

    try:
        return _judge_fixed_soak(sec, scenario, run_side)
    except BaseException as exc:  # Ctrl-C, SIGTERM, a failure of ours: what ended is still evidence
        _write_stopped(sec, scenario, so_far, exc, sequential=False)
        raise


def _judge_fixed_soak(
    sec: Section, scenario: ScenarioConfig, run_side: Callable[[str], Any]
) -> tuple[list[Claim], dict[str, Any]]:
    from ..stats.fixes import compare_failure_rates

    candidate = run_side("candidate")
    claims = [*candidate.claims(sec.name), *candidate.teardown_claims(sec.name)]
    records = candidate.records
    data: dict = {
        "candidate": candidate.to_dict(),
        "durations_ms": {
            "ws_connect": [r.connect_s * 1e3 for r in records if r.connect_s is not None],
            "ws_first_event": [r.first_event_s * 1e3 for r in records if r.first_event_s is not None],
        },
    }
    if sec.config.expect_fix:
        baseline_target = sec.params.baseline
        if baseline_target is None:
            claims.append(_no_baseline_claim(sec))
        else:
            baseline = run_side("baseline")
            data["baseline"] = baseline.to_dict()
            b, c = baseline.aggregate, candidate.aggregate
            # Over sessions seen to their end: a candidate that hangs must not "fix" its crashes.
            fix = compare_failure_rates(
                b.crashes, b.observed, c.crashes, c.observed, scenario.tolerated_failure_rate, scenario.confidence
            )
            data["fix"] = fix.serialize()
            claims.append(
                _fix_claim(sec, fix.status.status, fix.describe(), {"n": [b.observed, c.observed]}, fix.figure())
            )
    return claims, data


# ---------------------------------------------------------------- sequential soak

ROUND_SESSIONS_DEFAULT = 100  # sessions per side and round: five looks at the demo's 500-session decision


@dataclass(frozen=True)
class SoakRounds:
    """A soak taken in rounds: every round's result per side, when each round started (seconds since
    the first), and the sequential states of the three claims (``fix`` None without a baseline)."""

    rounds: dict[str, list[Any]]  # side -> [SoakResult, ...]
    offsets: dict[str, list[float]]
    crash: RateState
    complete: RateState
    fix: FixState | None
    elapsed_s: float
    stop_note: str = ""


def soak_sequentially(
    soak_round: Callable[[str, int, float], Any],
    *,
    tolerated_rate: float,
    confidence: float,
    max_sessions: int,
    max_seconds: float,
    with_baseline: bool,
    clock: Callable[[], float] = time.monotonic,
) -> SoakRounds:
    """Soak in rounds until the candidate's crash and completion rates (and, ``with_baseline``,
    "the fix works") are decided by their confidence sequences or the budget is spent.

    ``soak_round(side, index, seconds_left)`` runs one round on "candidate" or "baseline" and returns
    its SoakResult (only ``.aggregate`` is read here). The baseline is soaked only while the fix is
    undecided; the sides alternate who goes first. A round is not started when it would end past
    ``max_seconds`` (judged by the longest round so far); a round with no session at all ends the
    soak (NO_MORE_DATA: e.g. no user could log in)."""
    crash, complete = _rate_states(tolerated_rate, confidence, max_sessions, max_seconds)
    fix = (
        start_fix(
            FixSequentialConfig(tolerated_rate, confidence, max_sessions_per_side=max_sessions, max_seconds=max_seconds)
        )
        if with_baseline
        else None
    )
    rounds: dict[str, list[Any]] = {"candidate": [], "baseline": []}
    offsets: dict[str, list[float]] = {"candidate": [], "baseline": []}
    start = clock()
    longest = 0.0
    note = ""
    index = 0
    # Sessions taken per side: the budget. The crash claim counts only sessions seen to their end
    # or crash; when none are (every session failed by a message, say), its own count never reaches
    # the budget, and the soak ran on to its time budget: 65,736 sessions for a budget of 12.
    taken = {"candidate": 0, "baseline": 0}
    while not (crash.done and complete.done and (fix is None or fix.done)):
        round_start = clock() - start
        sides = ["candidate"] + (["baseline"] if fix is not None and not fix.done else [])
        got: dict[str, Any] = {}
        for side in sides if index % 2 == 0 else sides[::-1]:  # neither side always goes first
            offsets[side].append(clock() - start)
            got[side] = soak_round(side, index, max(1.0, max_seconds - (clock() - start)))
            rounds[side].append(got[side])
        elapsed = clock() - start
        longest = max(longest, elapsed - round_start)
        c = got["candidate"].aggregate
        crash = update(crash, RateRound(c.crashes, c.observed), elapsed_s=elapsed)
        complete = update(complete, RateRound(c.failures, c.sessions), elapsed_s=elapsed)
        if "baseline" in got and fix is not None:
            b = got["baseline"].aggregate
            fix = update(fix, FixRound(b.crashes, b.observed, c.crashes, c.observed), elapsed_s=elapsed)
        index += 1
        for side in got:
            taken[side] += got[side].aggregate.sessions
        if any(got[side].aggregate.sessions == 0 for side in got):
            empty = ", ".join(side for side in got if got[side].aggregate.sessions == 0)
            note = f"round {index} ran no session on the {empty} target: the soak stopped"
            crash, complete = halt(crash), halt(complete)
            fix = None if fix is None else halt(fix)
            break
        spent = [side for side in got if taken[side] >= max_sessions]
        if spent and not (crash.done and complete.done and (fix is None or fix.done)):
            note = f"the budget of {max_sessions} sessions per side is spent ({', '.join(spent)})"
            crash, complete = halt(crash, StopReason.SAMPLE_BUDGET), halt(complete, StopReason.SAMPLE_BUDGET)
            fix = None if fix is None else halt(fix, StopReason.SAMPLE_BUDGET)
            break
        note = round_would_overrun(elapsed, longest, max_seconds)
        if note and not (crash.done and complete.done and (fix is None or fix.done)):
            crash, complete = halt(crash, StopReason.TIME_BUDGET), halt(complete, StopReason.TIME_BUDGET)
            fix = None if fix is None else halt(fix, StopReason.TIME_BUDGET)
            break
        note = ""
    return SoakRounds(
        rounds=rounds,
        offsets=offsets,
        crash=crash,
        complete=complete,
        fix=fix,
        elapsed_s=clock() - start,
        stop_note=note,
    )


def merge_soak_rounds(results: Sequence[Any], offsets: Sequence[float], confidence: float) -> Any:
    """One SoakResult over all rounds of a side: records with start offsets on the section's clock,
    the aggregate recomputed over every session."""
    from ..probes.sessions import aggregate_sessions

    first = results[0]
    records = tuple(
        replace(r, start_offset_s=r.start_offset_s + offset)
        for res, offset in zip(results, offsets, strict=True)
        for r in res.records
    )
    return replace(
        first,
        duration_s=sum(r.duration_s for r in results),
        sessions_planned=sum(r.sessions_planned for r in results),
        stopped_by_duration=any(r.stopped_by_duration for r in results),
        cancelled_at_deadline=sum(r.cancelled_at_deadline for r in results),
        records=records,
        aggregate=aggregate_sessions(records, confidence),
        users=tuple(u for res in results for u in res.users),  # each round sets its own users up
        teardown=tuple(t for res in results for t in res.teardown),
    )


def _budget_tail(result: SequentialResult, note: str, unit: str) -> str:
    stop = note if note and result.stop in (StopReason.TIME_BUDGET, StopReason.NO_MORE_DATA) else result.stop_text
    text = f"{result.verdict.label}: {result.reason}; {stop}"
    last = result.last
    if result.needed is not None and last is not None:
        n = max(last.n_candidate, last.n_baseline or 0)
        text += f"; about {max(0, result.needed - n)} more {unit} needed ({result.needed} in all, if the observed rate held)"
    return text


def _rate_figure(
    result: SequentialResult, what: str, k: int, n: int, baseline: tuple[int, int] | None = None
) -> Figure | None:
    last = result.last
    if last is None or n == 0:
        return None
    return Figure(
        kind="rate",
        value=k / n,
        low=last.low,
        high=last.high,
        confidence=result.confidence,
        k=k,
        n=n,
        baseline_k=baseline[0] if baseline else None,
        baseline_n=baseline[1] if baseline else None,
        test="confidence sequence (beta-binomial mixture)",
        tolerance=result.threshold,
        what=what,
    )


def _sequential_rate_claim(claim: Claim, state: RateState, what: str, note: str, suffix: str = "") -> Claim:
    if state.sessions == 0:
        return replace(claim, details={**claim.details, "sequential": state.result.serialize()})
    result = state.result
    return replace(
        claim,
        status=result.verdict.status,
        statistic=f"sessions {what}: " + _budget_tail(result, note, "sessions") + (f"; {suffix}" if suffix else ""),
        figure=_rate_figure(result, f"sessions {what}", state.failures, state.sessions) or claim.figure,
        details={**claim.details, "sequential": result.serialize()},
    )


def _rate_states(
    tolerated_rate: float, confidence: float, max_sessions: int, max_seconds: float
) -> tuple[RateState, RateState]:
    """The sequential states of the crash and the completion claims, before any round."""
    config = RateSequentialConfig(tolerated_rate, confidence, max_sessions=max_sessions, max_seconds=max_seconds)
    return start_failure_rate(config), start_failure_rate(config)


# ---------------------------------------------------------------- a soak stopped before its end


def _stopped_claim(sec: Section, exc: BaseException, what: str, details: dict[str, Any] | None = None) -> Claim:
    return sec.claim(
        "runs_finished",
        "The WebSocket soak ran to its end",
        Status.INCONCLUSIVE,
        f"stopped by {type(exc).__name__} {what}",
        details={"stopped_by": type(exc).__name__, **(details or {})},
    )


def _write_stopped(
    sec: Section, scenario: ScenarioConfig, so_far: SoaksSoFar, exc: BaseException, *, sequential: bool
) -> None:
    """The evidence of a soak stopped before its end (Ctrl-C, SIGTERM, a failure of ours): the INCONCLUSIVE
    ``runs_finished``, the candidate's rate claims that already FAIL (none that would PASS), and the finally
    and teardown records, judged as at the end but never PASS while some are owed (``_candidate_so_far``).

    Rates are judged only on soaks that ENDED before the interrupt, never on the one it cut short: there, the
    sessions the cancel cut left no record while the short ones (1011 closes, refused connects: e.g. services
    stopped by the same Ctrl-C) had ended, so its rates lean towards failure. In rounds, the confidence
    sequences are replayed over the rounds that ended (valid at any look); the fixed-sample rule holds only for
    the whole sample, so without rounds a rate is judged only when the candidate's soak ended.

    A failure of ours while judging is said in the evidence and never raised (``Section.finish_stopped``)."""
    sec.finish_stopped(exc, lambda: _judge_stopped(sec, scenario, so_far, exc, sequential=sequential))


def _judge_stopped(
    sec: Section, scenario: ScenarioConfig, so_far: SoaksSoFar, exc: BaseException, *, sequential: bool
) -> None:
    """``_write_stopped``'s judging and writing, which may fail."""
    from ..probes.teardown import teardown_claims

    so_far_candidate, owed = _candidate_so_far(so_far, scenario, sec.params.target.base_url)
    sides: dict[str, SoakResult] = {}
    for side, (results, offsets) in (("candidate", so_far_candidate), ("baseline", so_far.results("baseline"))):
        if results:
            sides[side] = merge_soak_rounds(results, offsets, scenario.confidence)
    candidate = sides.get("candidate")
    ended = candidate.aggregate.sessions if candidate is not None else 0
    rounds, offsets = so_far.results("candidate", running=False)
    cut = so_far.cut_short("candidate")
    judged: SoakResult | None = None
    if rounds and (sequential or not cut):
        judged = merge_soak_rounds(rounds, offsets, scenario.confidence)
    on = judged.aggregate.sessions if judged is not None else 0
    if sequential and not rounds:
        basis = "no round had ended before it: no rate was judged on the round it cut short"
    elif sequential:
        basis = (
            f"rates judged only on the {len(rounds)} rounds that ended before it ({on} sessions), never on the "
            "round it cut short; only one that already fails on them is kept"
        )
    elif judged is not None:
        basis = f"rates judged on the candidate's soak, which had ended ({on} sessions); only one that fails is kept"
    else:
        basis = "no rate was judged on a part (the fixed-sample rule holds only for the whole sample)"
    what = (
        f"after {ended} candidate sessions ended: {basis}; what the finally and teardown steps did until then "
        "is in the evidence"
    )
    details = {
        "candidate_sessions_ended": ended,
        "candidate_rounds_ended": len(rounds),
        "candidate_soak_cut_short": cut,
        "rates_judged_on_sessions": on,
    }
    claims = [_stopped_claim(sec, exc, what, details)]
    if judged is not None:
        rates = _sequential_rates_so_far(sec, scenario, judged, rounds) if sequential else judged.claims(sec.name)
        claims += [c for c in rates if c.status is Status.FAIL]
    if candidate is not None:
        claims += teardown_claims(candidate.teardown, candidate.teardown_configured, sec.name, unfinished=owed)
    sec.finish(claims, {side: result.to_dict() for side, result in sides.items()})


def _candidate_so_far(
    so_far: SoaksSoFar, scenario: ScenarioConfig, base_url: str
) -> tuple[tuple[list[SoakResult], list[float]], tuple[OpenUnit, ...]]:
    """The candidate's soaks so far (``SoaksSoFar.results``) and the units whose finally records are owed: those
    whose finally steps started and have not all left their record (``units_in_flight``, read before and after
    the records are copied: a unit that ends in between counts as owed, never as a silent PASS) and, per soak,
    each user whose setup held with fewer records than its undo steps (``soak.finally`` per user, then the
    scenario's ``teardown``; not begun when the interrupt came during the sessions). On a kernel, ``run_sync``
    waits only so long for the cancelled soak: its undo may still run on its own thread while this judges."""
    from ..probes.teardown import units_in_flight, users_without_records

    def in_flight() -> list[OpenUnit]:
        run_ids = [result.run_id for result, _ in so_far.ended["candidate"]]
        running = so_far.running
        if running is not None and running[0] == "candidate":
            run_ids.append(running[2].run_id)  # "" until its run_soak began: nothing of it started then
        return [unit for run_id in dict.fromkeys(run_ids) if run_id for unit in units_in_flight(run_id)]

    before = in_flight()
    results, offsets = so_far.results("candidate")
    after = in_flight()
    steps = len(scenario.soak_user_undo())
    users = [u for r in results for u in users_without_records(r.users, r.teardown, steps, target=base_url)]
    return (results, offsets), (*before, *after, *users)


def _sequential_rates_so_far(
    sec: Section, scenario: ScenarioConfig, merged: SoakResult, rounds: Sequence[SoakResult]
) -> list[Claim]:
    """The candidate's crash and completion claims by their confidence sequences over ``rounds`` (the rounds
    that ended; ``merged``: them as one result). The sequences are valid at any look between rounds, so a
    FAIL there is a FAIL; a round cut short is no such look (what it recorded is biased) and is never here."""
    soak = scenario.soak
    crash, complete = _rate_states(scenario.tolerated_failure_rate, scenario.confidence, soak.sessions, soak.duration_s)
    for result in rounds:
        a = result.aggregate
        crash = update(crash, RateRound(a.crashes, a.observed))
        complete = update(complete, RateRound(a.failures, a.sessions))
    crash_claim, complete_claim = merged.claims(sec.name)
    return [
        _sequential_rate_claim(crash_claim, crash, "closed with 1011/1006", ""),
        _sequential_rate_claim(complete_claim, complete, "failed", ""),
    ]
