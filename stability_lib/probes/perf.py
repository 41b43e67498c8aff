"""Performance against a baseline: interleaved A/B samples per operation, judged sequentially.

I/O: ``collect_interleaved`` yields rounds of A/B pairs of golden-path runs (A B, then B A, ...),
run in a few lanes whose users log in once per section. Pure apart
from an injectable clock: ``sample_sequentially`` reads rounds until every judged operation is
decided by its confidence sequence (``stats.sequential``) or the budget runs out;
``compare_operations`` turns the samples (and the sequential results) into claims;
``performance_teardown_claims`` judges what the finally/teardown steps and leftovers checks did
(a ``TeardownLog`` the collector fills), as the other sections do.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ..core.models import Claim, Figure, Status
from ..stats.sequential import halt, round_would_overrun, update
from ..stats.sequential.core import SequentialResult, StopReason
from ..stats.sequential.performance import PerfFamilyState, PerfRound, PerfSequentialConfig, start_performance_family

if TYPE_CHECKING:  # the records' modules do I/O; this one only reads the records
    from .golden_users import LeftoverCheck
    from .teardown import TeardownRecord

__all__ = [
    "PerformanceConfig",
    "SampleRound",
    "SequentialSampling",
    "sample_sequentially",
    "compare_operations",
    "TeardownLog",
    "performance_teardown_claims",
    "teardown_evidence",
]

Samples = dict[str, dict[str, list[float]]]  # side -> operation -> milliseconds, in the order taken
RunCounts = dict[str, dict[str, int]]  # side -> {"runs": n, "failed": k}


class PerformanceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    tolerance: float = Field(0.10, gt=0, le=2, description="Allowed slowdown of the median (0.10 = 10%).")
    samples_per_side: int = Field(
        60,
        ge=1,
        le=5000,
        description="Golden-path runs per target in one round (that many A/B pairs). Sequential: the first "
        "look comes after one round and every further round adds as many. Not sequential: the whole sample.",
    )
    sequential: bool = Field(
        True,
        description="Sample in rounds until each judged operation is decided (anytime-valid confidence sequences), "
        "within max_samples_per_side and max_seconds. false: one round of samples_per_side, the fixed-sample rule.",
    )
    max_samples_per_side: int = Field(
        1000, ge=1, le=100_000, description="Sequential budget: no more samples per side than this (then INCONCLUSIVE)."
    )
    max_seconds: float = Field(
        120,
        gt=0,
        le=3600,
        description="Sequential budget: seconds of sampling in the section. Checked before each round: a round "
        "that would end past it (judged by the longest round so far) is not started.",
    )
    concurrency: int = Field(
        4,
        ge=1,
        le=50,
        description="Lanes at once: each has one user per target (logged in once per section) and takes "
        "A/B pairs of golden runs one after the other.",
    )
    resamples: int = Field(10_000, ge=100, le=100_000, description="Bootstrap resamples.")
    min_samples: int = Field(20, ge=2, description="Below this per side a comparison is INCONCLUSIVE.")
    seed: int = 0
    operations: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Operations that decide the verdict (glob patterns over names like 'step:login', "
        "'agent_session:connect'); the others are reported as informative.",
    )
    min_median_ms: float = Field(
        1.0,
        ge=0,
        description="Operations whose baseline median is under this are reported but do not decide the verdict: "
        "a relative change of a sub-millisecond loopback operation measures jitter, not the service.",
    )
    stored_baseline: str | None = Field(
        None,
        description="A stored baseline (name under baselines/ or a run directory) instead of a live baseline target.",
    )


# ---------------------------------------------------------------- A/B collection (I/O)


@dataclass(frozen=True)
class SampleRound:
    """One round: per side and operation, latencies (ms) in the order taken; runs per side; who went first;
    seconds of one-off setup it included."""

    samples: Samples
    runs: RunCounts
    order: tuple[str, ...] = ()
    setup_s: float = 0.0  # one-off work inside this round (the section's logins): not what a next round costs


OpSamples = dict[str, list[float]]  # operation -> milliseconds of one golden run


PairResult = dict[str, tuple[bool, OpSamples]]  # side -> (run ok, its operations' durations)


@dataclass
class TeardownLog:
    """What the section's finally steps (after each golden run), its per-user teardown and its leftovers
    checks did, per side ("baseline" | "candidate"). ``collect_interleaved`` adds the records as each
    step ends: mutable on purpose, so what ran before a Ctrl-C still reaches the evidence."""

    teardown: dict[str, list[TeardownRecord]] = field(default_factory=dict)
    leftovers: dict[str, list[LeftoverCheck]] = field(default_factory=dict)

    def add_side(self, side: str) -> None:
        """A side sampled live: its claims' statistics speak of it even when it left no record."""
        self.teardown.setdefault(side, [])
        self.leftovers.setdefault(side, [])

    def add_teardown(self, side: str, records: Iterable[TeardownRecord]) -> None:
        self.teardown.setdefault(side, []).extend(records)

    def add_leftovers(self, side: str, checks: Iterable[LeftoverCheck]) -> None:
        self.leftovers.setdefault(side, []).extend(checks)


# ---------------------------------------------------------------- sequential sampling (pure but for the clock)


@dataclass(frozen=True)
class SequentialSampling:
    """What ``sample_sequentially`` saw: every sample and run count over all rounds, which operations
    were judged (fixed after the first round), and their sequential state (None when none was judged)."""

    samples: Samples
    runs: RunCounts
    judged: dict[str, tuple[bool, str]]
    state: PerfFamilyState | None
    rounds: int
    elapsed_s: float
    round_seconds: tuple[float, ...] = ()
    stop_note: str = ""

    @property
    def results(self) -> dict[str, SequentialResult]:
        return {} if self.state is None else self.state.results

    def serialize(self, cfg: PerformanceConfig) -> dict[str, Any]:
        results = self.results
        stops = sorted({r.stop.value for r in results.values()})
        return {
            "enabled": True,
            "round_samples_per_side": cfg.samples_per_side,
            "max_samples_per_side": cfg.max_samples_per_side,
            "max_seconds": cfg.max_seconds,
            "sample_rounds": self.rounds,
            "elapsed_s": round(self.elapsed_s, 3),
            "round_seconds": [round(s, 3) for s in self.round_seconds],
            "stop": stops,
            "stop_note": self.stop_note,
            "judged": sorted(results),
        }


def _positive(values: Iterable[float]) -> list[float]:
    return [v for v in values if v > 0]


def _paired_round(baseline: list[float], candidate: list[float]) -> PerfRound:
    """A round's values as pairs (index i on both sides): a pair with a non-positive value on either
    side is dropped whole, so one bad value does not shift every later pair onto the wrong partner."""
    n = min(len(baseline), len(candidate))
    pairs = [(b, c) for b, c in zip(baseline[:n], candidate[:n], strict=True) if b > 0 and c > 0]
    return PerfRound(
        [b for b, _ in pairs] + _positive(baseline[n:]),
        [c for _, c in pairs] + _positive(candidate[n:]),
    )


def _sequential_config(cfg: PerformanceConfig) -> PerfSequentialConfig:
    return PerfSequentialConfig(
        tolerance=cfg.tolerance,
        confidence=0.95,
        paired=True,
        min_samples=cfg.min_samples,
        max_samples_per_side=cfg.max_samples_per_side,
        max_seconds=cfg.max_seconds,
    )


def sample_sequentially(
    rounds: Iterable[SampleRound], cfg: PerformanceConfig, *, clock: Callable[[], float] = time.monotonic
) -> SequentialSampling:
    """Read rounds (``collect_interleaved``: each ``next`` runs one) until every judged operation is
    decided or the budget is spent. The judged operations (``performance.operations`` and the
    ``min_median_ms`` floor over the first round's baseline) form one family (Bonferroni over
    them). The time budget is checked before a round: one that would end past ``max_seconds``,
    judged by the longest round so far (without one-off setup such as logins), is not started."""
    start = clock()
    samples: Samples = {}
    runs: RunCounts = {}
    judged: dict[str, tuple[bool, str]] = {}
    state: PerfFamilyState | None = None
    taken = 0
    previous = 0.0
    round_seconds: list[float] = []
    sampling_seconds: list[float] = []  # without one-off setup: what another round would take
    note = ""
    for rnd in rounds:
        taken += 1
        elapsed = clock() - start
        round_seconds.append(elapsed - previous)
        sampling_seconds.append(max(0.0, elapsed - previous - rnd.setup_s))
        previous = elapsed
        for side, ops in rnd.samples.items():
            for op, values in ops.items():
                samples.setdefault(side, {}).setdefault(op, []).extend(values)
        for side, counts in rnd.runs.items():
            total = runs.setdefault(side, {"runs": 0, "failed": 0})
            total["runs"] += counts["runs"]
            total["failed"] += counts["failed"]
        if state is None:
            baseline = samples.get("baseline", {})
            names = sorted(set(baseline) | set(samples.get("candidate", {})))
            judged = {op: _judged(op, _positive(baseline.get(op, [])), cfg) for op in names}
            family = [op for op, (yes, _) in judged.items() if yes]
            if not family:
                break  # nothing to decide: more rounds would not change that
            state = start_performance_family(family, _sequential_config(cfg))
        state = update(
            state,
            {
                op: _paired_round(
                    rnd.samples.get("baseline", {}).get(op, []), rnd.samples.get("candidate", {}).get(op, [])
                )
                for op in state.operations
            },
            elapsed_s=elapsed,
        )
        if state.done:
            break
        note = round_would_overrun(elapsed, max(sampling_seconds), cfg.max_seconds)
        if note:
            state = halt(state, StopReason.TIME_BUDGET)
            break
    close = getattr(rounds, "close", None)
    if close is not None:  # a generator's per-user teardown runs now, not whenever it is collected
        close()
    return SequentialSampling(
        samples=samples,
        runs=runs,
        judged=judged,
        state=state,
        rounds=taken,
        elapsed_s=clock() - start,
        round_seconds=tuple(round_seconds),
        stop_note=note,
    )


# ---------------------------------------------------------------- judgement (pure)


def _judged(op: str, baseline: list[float], cfg: PerformanceConfig) -> tuple[bool, str]:
    """Does this operation decide the verdict? (yes/no, and why not)"""
    if not any(fnmatch.fnmatchcase(op, p) for p in cfg.operations):
        return False, "not in performance.operations"
    if baseline and statistics.median(baseline) < cfg.min_median_ms:
        return (
            False,
            f"baseline median {statistics.median(baseline):.3g} ms is under the {cfg.min_median_ms:g} ms floor",
        )
    return True, ""


def _survivorship(runs: Mapping[str, Mapping[str, int]] | None) -> str:
    """Why a NO REGRESSION cannot stand: the candidate lost more runs than the baseline, and a
    failed run leaves no latency sample (its slowest requests may be exactly the ones missing)."""
    if not runs or "baseline" not in runs or "candidate" not in runs:
        return ""
    b, c = runs["baseline"], runs["candidate"]
    if c["runs"] and c["failed"] / c["runs"] > (b["failed"] / b["runs"] if b["runs"] else 0.0):
        return (
            f"{c['failed']} of {c['runs']} candidate runs failed (baseline {b['failed']} of {b['runs']}); "
            "their latencies are missing, so no regression is not shown"
        )
    return ""


def _sequential_statistic(result: SequentialResult, stop_note: str) -> tuple[str, str]:
    """(statistic, recommendation) of one sequentially judged operation."""
    last = result.last
    n = 0 if last is None else max(last.n_candidate, last.n_baseline or 0)
    stop = stop_note if result.stop is StopReason.TIME_BUDGET and stop_note else result.stop_text
    text = f"{result.verdict.label}: {result.reason}; {stop}"
    advice = ""
    if result.verdict.status is Status.INCONCLUSIVE and result.stop is not StopReason.RUNNING and result.needed:
        more = max(0, result.needed - n)
        text += f"; about {more} more per side needed ({result.needed} in all, if the observed ratios held)"
        advice = (
            f"Allow about {result.needed} samples per side (performance.max_samples_per_side) "
            "or more time (performance.max_seconds) to settle it."
        )
    return text, advice


def _sequence_figure(result: SequentialResult, tolerance: float) -> Figure | None:
    last = result.last
    if last is None:
        return None

    def num(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    return Figure(
        kind="ratio",
        value=num(last.estimate),
        low=num(last.low),
        high=num(last.high),
        confidence=result.confidence,
        n=last.n_candidate,
        baseline_n=last.n_baseline,
        test="confidence sequence of the median paired ratio (sign test)",
        tolerance=tolerance,
        what="median",
    )


def compare_operations(
    baseline: dict[str, list[float]],
    candidate: dict[str, list[float]],
    cfg: PerformanceConfig,
    *,
    section: str,
    runs: Mapping[str, Mapping[str, int]] | None = None,
    sequential: SequentialSampling | None = None,
) -> tuple[list[dict[str, Any]], list[Claim]]:
    """Claims per operation. With ``sequential``, its judged operations are decided by their
    confidence sequences; the fixed-sample comparison of all samples stays in the evidence beside it."""
    from ..stats.performance import compare_samples

    survivorship = _survivorship(runs)
    comparisons: list[dict[str, Any]] = []
    claims: list[Claim] = []
    samples = {
        op: (_positive(baseline.get(op, [])), _positive(candidate.get(op, [])))
        for op in sorted(set(baseline) | set(candidate))
    }
    results = sequential.results if sequential is not None else {}
    if sequential is not None:
        judgement = {op: sequential.judged.get(op, (False, "appeared after the first round")) for op in samples}
    else:
        judgement = {op: _judged(op, a, cfg) for op, (a, _b) in samples.items()}
    m = sum(1 for judged, _ in judgement.values() if judged)
    # Bonferroni: m judged operations at 95% each would raise a false alarm far more often
    # than 5% of runs; each interval is widened to 1 - 0.05/m so the whole family holds at 95%.
    family_confidence = 1 - 0.05 / max(1, m)
    for op, (a, b) in samples.items():
        judged, why_not = judgement[op]
        cmp = compare_samples(
            a,
            b,
            tolerance=cfg.tolerance,
            resamples=cfg.resamples,
            seed=cfg.seed,
            min_samples=cfg.min_samples,
            unit="ms",
            confidence=family_confidence if judged else 0.95,
        )
        details: dict[str, Any] = {"n": [len(a), len(b)]}
        entry: dict[str, Any] = {"operation": op, "judged": judged, **cmp.serialize()}
        result = results.get(op) if judged else None
        figure = cmp.figure()
        if result is not None:
            status = result.verdict.status
            statistic, advice = _sequential_statistic(result, sequential.stop_note if sequential else "")
            figure = _sequence_figure(result, cfg.tolerance) or figure
            last = result.last
            entry["fixed_sample"] = {
                "median_ratio": entry["median_ratio"],
                "verdict": entry["verdict"],
                "samples_needed": entry.get("samples_needed"),
            }
            entry.update(
                verdict=result.verdict.value,
                confidence=result.confidence,
                samples_needed=result.needed,
                interval="confidence sequence of the median paired ratio",
                sequential=result.serialize(),
            )
            if last is not None:
                entry["median_ratio"] = {"ratio": figure.value, "ci_low": figure.low, "ci_high": figure.high}
        else:
            status = cmp.verdict.status
            statistic, advice = cmp.describe(), ""
            if cmp.samples_needed:
                advice = (
                    f"Collect about {cmp.samples_needed} samples per side for '{op}' "
                    f"(performance.samples_per_side) to settle it."
                )
        if status is Status.PASS and survivorship:
            status, statistic = Status.INCONCLUSIVE, f"{statistic}; {survivorship}"
        if not judged:
            statistic = f"informative only: {why_not}; {statistic}"
        else:
            if m > 1:
                statistic += f"; interval Bonferroni-adjusted over {m} judged operations"
            if status is Status.FAIL:
                details["recommendation"] = (
                    f"'{op}' is slower than the baseline beyond {cfg.tolerance:.0%}: {statistic}"
                )
            elif advice and status is Status.INCONCLUSIVE:
                details["recommendation"] = advice
        comparisons.append(entry)
        claims.append(
            Claim(
                id=f"{section}.{op}",
                section=section,
                statement=f"'{op}' is no more than {cfg.tolerance:.0%} slower than the baseline (median)",
                status=status,
                statistic=statistic,
                required=judged,
                details=details,
                figure=figure,
            )
        )
    if m == 0:
        # Switched on yet deciding nothing must not read as a pass.
        why = (
            "no operation produced a sample"
            if not samples
            else "no operation is judged: " + "; ".join(sorted({why for _, why in judgement.values()}))
        )
        sampled = [op for op, (a, b) in samples.items() if a or b]
        unmatched = [p for p in cfg.operations if not any(fnmatch.fnmatchcase(op, p) for op in sampled)]
        if unmatched:  # named in operations, yet no sample: said as such, not as "not in operations"
            why += f"; performance.operations {', '.join(unmatched)} matched no operation with samples"
        failed = [f"{side} {r['failed']} of {r['runs']}" for side, r in (runs or {}).items() if r.get("failed")]
        if failed:  # a failed golden run leaves no sample of the steps after its failure
            why += f"; golden runs failed: {', '.join(failed)}"
        claims.append(
            Claim(
                id=f"{section}.judged",
                section=section,
                statement="At least one operation's performance was judged against the baseline",
                status=Status.INCONCLUSIVE,
                statistic=why,
            )
        )
    return comparisons, claims


# ---------------------------------------------------------------- teardown (pure)

_MAX_RECORDS_LISTED = 5000  # per side and kind: the default budget's records fit; the claims name every failure kind


def performance_teardown_claims(
    log: TeardownLog, *, steps_configured: bool, leftovers_configured: bool, section: str
) -> list[Claim]:
    """``<section>.teardown.steps_succeeded`` (when the scenario has finally or teardown steps) and
    ``<section>.teardown.nothing_left_behind`` (when it has leftovers checks), by the other sections'
    rules over the candidate's records. The baseline is the reference, not what is judged: its
    failures change no status; each claim's statistic says how the baseline fared (a baseline that
    kept what it should have deleted is named there) and ``details["baseline_failures"]`` lists them."""
    from .golden_users import UsersFinished

    def finished(side: str) -> UsersFinished:
        return UsersFinished(
            tuple(log.teardown.get(side, ())),
            tuple(log.leftovers.get(side, ())),
            steps_configured,
            leftovers_configured,
        )

    claims = finished("candidate").claims(section)
    if "baseline" not in log.teardown:  # a stored baseline: nothing ran on it here
        return claims
    baseline = {c.id: c for c in finished("baseline").claims(section)}
    out = []
    for claim in claims:
        on_baseline = baseline[claim.id]
        note = f"baseline, not judged (the claim is about the candidate): {on_baseline.statistic}"
        out.append(
            dataclasses.replace(
                claim,
                statistic=f"{claim.statistic}; {note}",
                details={**claim.details, "baseline_failures": on_baseline.details.get("failures", [])},
            )
        )
    return out


def teardown_evidence(log: TeardownLog) -> dict[str, Any]:
    """The records for the evidence, each saying its side; at most ``_MAX_RECORDS_LISTED`` per side and
    kind (the first ones), the rest counted in ``teardown_not_listed``."""
    teardown: list[dict[str, Any]] = []
    leftovers: list[dict[str, Any]] = []
    not_listed: dict[str, int] = {}
    for side in dict.fromkeys([*log.teardown, *log.leftovers]):
        records = log.teardown.get(side, [])
        teardown += [{"side": side, **r.to_dict()} for r in records[:_MAX_RECORDS_LISTED]]
        checks = log.leftovers.get(side, [])
        leftovers += [{"side": side, **dataclasses.asdict(c)} for c in checks[:_MAX_RECORDS_LISTED]]
        hidden = max(0, len(records) - _MAX_RECORDS_LISTED) + max(0, len(checks) - _MAX_RECORDS_LISTED)
        if hidden:
            not_listed[side] = hidden
    out: dict[str, Any] = {"teardown": teardown, "leftovers": leftovers}
    if not_listed:
        out["teardown_not_listed"] = not_listed
    return out
