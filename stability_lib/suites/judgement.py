"""Test-suite judgement (pure): the verdict of a category, reruns, the diff against a baseline, claims.

A category PASSes only when tests ran and none failed or errored (the rule: ``suites.runner``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.models import Claim, EvidenceRef, Figure, Status
from .config import SECTION, CategoryConfig, CategoryRun, is_pytest_command
from .coverage import CoverageReport
from .junit import JUnitReport, TestCase, TestOutcome, merge_reports

__all__ = [
    "FAILURE_EXCERPT_CHARS",
    "MAX_FAILURES_LISTED",
    "PASSED_SAMPLE",
    "MAX_IDS_LISTED",
    "SLOWEST_LISTED",
    "PYTEST_NO_TESTS_COLLECTED",
    "RerunSummary",
    "DurationChange",
    "SuiteDiff",
    "diff_against_baseline",
    "CategoryResult",
    "judge_category",
    "category_claims",
]


FAILURE_EXCERPT_CHARS = 2048


MAX_FAILURES_LISTED = 100  # failing, flaky cases and suite errors kept in detail, each


PASSED_SAMPLE = 20  # passing cases named in evidence (counts stay exact)


MAX_IDS_LISTED = 200  # test ids in rerun lists


SLOWEST_LISTED = 10


PYTEST_NO_TESTS_COLLECTED = 5  # pytest's exit code when nothing was selected


@dataclass(frozen=True)
class RerunSummary:
    """What rerunning the failing tests showed."""

    attempts: int
    recovered: tuple[str, ...]  # failed first, passed on a rerun: flaky
    still_failing: tuple[str, ...]  # failed every time: broken
    not_rerun: tuple[str, ...] = ()  # failing tests we could not address by node id

    def to_dict(self, limit: int = MAX_IDS_LISTED) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            **_listed(
                limit,
                recovered_flaky=self.recovered,
                still_failing=self.still_failing,
                not_rerun=self.not_rerun,
            ),
        }


def _listed(limit: int, **ids: tuple[str, ...]) -> dict[str, Any]:
    """Each list of test ids cut at ``limit``, with its full length under ``counts``."""
    out: dict[str, Any] = {key: list(values[:limit]) for key, values in ids.items()}
    out["counts"] = {key: len(values) for key, values in ids.items()}
    return out


@dataclass(frozen=True)
class DurationChange:
    id: str
    baseline_s: float
    current_s: float

    @property
    def ratio(self) -> float | None:
        return self.current_s / self.baseline_s if self.baseline_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "baseline_s": round(self.baseline_s, 4),
            "current_s": round(self.current_s, 4),
            "ratio": None if self.ratio is None else round(self.ratio, 3),
        }


@dataclass(frozen=True)
class SuiteDiff:
    """One category's tests now versus a baseline run, by ``classname::name``."""

    newly_failing: tuple[str, ...]
    newly_passing: tuple[str, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    duration_changes: tuple[DurationChange, ...]  # the slowest tests present in both
    baseline_source: str = ""

    def to_dict(self, limit: int = MAX_IDS_LISTED) -> dict[str, Any]:
        return {
            "baseline_source": self.baseline_source,
            **_listed(
                limit,
                newly_failing=self.newly_failing,
                newly_passing=self.newly_passing,
                added=self.added,
                removed=self.removed,
            ),
            "duration_changes": [d.to_dict() for d in self.duration_changes],
        }


_FAILING = (TestOutcome.FAILED, TestOutcome.ERROR)


def diff_against_baseline(current: JUnitReport, baseline: JUnitReport, *, slowest: int = SLOWEST_LISTED) -> SuiteDiff:
    """Newly failing/passing, added/removed tests and how the slowest tests' times moved."""
    now = {c.id: c for c in current.cases}
    before = {c.id: c for c in baseline.cases}
    common = [i for i in now if i in before]
    newly_failing = sorted(i for i in common if now[i].outcome in _FAILING and before[i].outcome not in _FAILING)
    newly_passing = sorted(i for i in common if now[i].outcome is TestOutcome.PASSED and before[i].outcome in _FAILING)
    by_time = sorted(common, key=lambda i: max(now[i].time_s, before[i].time_s), reverse=True)
    changes = tuple(
        DurationChange(id=i, baseline_s=before[i].time_s, current_s=now[i].time_s) for i in by_time[:slowest]
    )
    return SuiteDiff(
        newly_failing=tuple(newly_failing),
        newly_passing=tuple(newly_passing),
        added=tuple(sorted(i for i in now if i not in before)),
        removed=tuple(sorted(i for i in before if i not in now)),
        duration_changes=changes,
        baseline_source=baseline.source,
    )


def _excerpt(case: TestCase) -> str:
    text = case.message
    if case.detail and case.detail not in text:
        text = f"{text}\n{case.detail}" if text else case.detail
    if len(text) > FAILURE_EXCERPT_CHARS:
        text = text[:FAILURE_EXCERPT_CHARS] + f"... [truncated {len(text) - FAILURE_EXCERPT_CHARS} chars]"
    return text


def _case_dict(case: TestCase, *, excerpt: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": case.id,
        "outcome": case.outcome.value,
        "time_s": round(case.time_s, 4),
        "suite": case.suite,
    }
    if excerpt:
        out["message"] = _excerpt(case)
    if case.reruns:
        out["reruns"] = case.reruns
    return out


def _names(ids: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


@dataclass(frozen=True)
class CategoryResult:
    """One category's verdict with everything behind it."""

    name: str
    status: Status
    reason: str
    required: bool
    run: CategoryRun
    report: JUnitReport | None  # after reruns were applied
    warnings: tuple[str, ...] = ()
    coverage: CoverageReport | None = None
    coverage_error: str | None = None
    reruns: RerunSummary | None = None
    diff: SuiteDiff | None = None

    @property
    def counts(self) -> dict[str, int]:
        if self.report is None:
            return dict.fromkeys(("total", "passed", "failed", "errors", "skipped", "flaky", "suite_errors"), 0)
        return self.report.counts()

    @property
    def statistic(self) -> str:
        run = self.run
        if run.start_error is not None:
            return f"not run: {run.start_error}"
        if run.timed_out:
            return f"timed out after {run.timeout_s:g} s; killed with its child processes"
        how = f"exit {run.exit_code}" if run.ran_command else "an existing report, no command run"
        if self.report is None:
            return f"no readable JUnit XML ({how}, {run.duration_s:.1f} s)"
        c = self.counts
        suite_errors = f", {c['suite_errors']} suite errors" if c["suite_errors"] else ""
        return (
            f"{c['passed']} passed, {c['failed']} failed, {c['errors']} errors, "
            f"{c['skipped']} skipped, {c['flaky']} flaky{suite_errors} "
            f"in {run.duration_s:.1f} s ({how})"
        )

    def to_dict(self) -> dict[str, Any]:
        report = self.report
        failing = report.cases_with(*_FAILING) if report else ()
        flaky = report.cases_with(TestOutcome.FLAKY) if report else ()
        slowest = sorted(report.cases, key=lambda c: c.time_s, reverse=True)[:SLOWEST_LISTED] if report else []
        passed = report.cases_with(TestOutcome.PASSED) if report else ()
        suite_errors = report.suite_errors if report else ()
        return {
            "name": self.name,
            "status": self.status.value,
            "reason": self.reason,
            "required": self.required,
            "statistic": self.statistic,
            "command": list(self.run.argv),
            "cwd": self.run.cwd,
            "exit_code": self.run.exit_code,
            "duration_s": round(self.run.duration_s, 3),
            "timed_out": self.run.timed_out,
            "start_error": self.run.start_error,
            "counts": self.counts,
            "failures": [_case_dict(c, excerpt=True) for c in failing[:MAX_FAILURES_LISTED]],
            "failures_omitted": max(0, len(failing) - MAX_FAILURES_LISTED),
            "flaky": [_case_dict(c, excerpt=True) for c in flaky[:MAX_FAILURES_LISTED]],
            "flaky_omitted": max(0, len(flaky) - MAX_FAILURES_LISTED),
            "passed_sample": [c.id for c in passed[:PASSED_SAMPLE]],
            "passed_omitted": max(0, len(passed) - PASSED_SAMPLE),
            "suite_errors": [
                {"suite": e.suite, "kind": e.kind, "message": e.message[:FAILURE_EXCERPT_CHARS]}
                for e in suite_errors[:MAX_FAILURES_LISTED]
            ],
            "suite_errors_omitted": max(0, len(suite_errors) - MAX_FAILURES_LISTED),
            "declared_unlisted": list(report.declared_unlisted) if report else [],
            "slowest": [_case_dict(c, excerpt=False) for c in slowest],
            "warnings": list(self.warnings),
            "output_tail": list(self.run.output_tail),
            "junit_file": self.run.junit_path.name if self.run.junit_path else None,
            "log_file": self.run.log_path.name if self.run.log_path else None,
            "coverage": self.coverage.to_dict() if self.coverage else None,
            "coverage_error": self.coverage_error,
            "reruns": self.reruns.to_dict() if self.reruns else None,
            "baseline": self.diff.to_dict() if self.diff else None,
        }


def judge_category(
    cfg: CategoryConfig,
    run: CategoryRun,
    report: JUnitReport | None,
    *,
    junit_error: str | None = None,
    rerun_reports: Sequence[JUnitReport] = (),
    not_rerun: Sequence[str] = (),
    coverage: CoverageReport | None = None,
    coverage_error: str | None = None,
    baseline: JUnitReport | None = None,
) -> CategoryResult:
    """The verdict for one category (pure). ``report`` is the first run's JUnit."""
    warnings = list(run.warnings)

    def result(status: Status, reason: str, final: JUnitReport | None = None, **extra: Any) -> CategoryResult:
        if final is not None:
            warnings.extend(final.warnings)
        if coverage is not None:
            warnings.extend(f"coverage: {w}" for w in coverage.warnings)
        return CategoryResult(
            name=cfg.name,
            status=status,
            reason=reason,
            required=cfg.required,
            run=run,
            report=final,
            warnings=tuple(warnings),
            coverage=coverage,
            coverage_error=coverage_error,
            **extra,
        )

    if run.start_error is not None:
        return result(Status.ERROR, f"the command could not start: {run.start_error}")
    if run.timed_out:
        return result(
            Status.ERROR,
            f"the command did not finish within {run.timeout_s:g} s and was killed with its child processes",
        )
    if junit_error is not None:
        return result(Status.ERROR, f"the JUnit XML could not be read: {junit_error}")
    if report is None and run.junit_problem is not None:
        return result(Status.ERROR, f"the JUnit XML could not be used: {run.junit_problem}")
    if report is None:
        return result(
            Status.ERROR,
            f"the command (exit {run.exit_code}) wrote no JUnit XML at {run.junit_expected_at}",
        )

    first_failing = [c.id for c in report.cases_with(*_FAILING)]
    first_bad = len(first_failing) + len(report.suite_errors)
    final = merge_reports(report, rerun_reports)
    reruns: RerunSummary | None = None
    if rerun_reports or not_rerun:
        still = [c.id for c in final.cases_with(*_FAILING)]
        recovered = [i for i in first_failing if i not in set(still)]
        reruns = RerunSummary(
            attempts=len(rerun_reports),
            recovered=tuple(recovered),
            still_failing=tuple(still),
            not_rerun=tuple(not_rerun),
        )
    diff = diff_against_baseline(final, baseline) if baseline is not None else None

    # Exit code versus XML: either one lying is worth a warning.
    is_pytest = cfg.command is None or is_pytest_command(cfg.command)
    if run.exit_code == 0 and first_bad:
        warnings.append(
            f"exit code 0 although the JUnit XML records {first_bad} failed or errored "
            "tests: the command hides failures"
        )
    nonzero_unexplained = (
        run.ran_command  # an existing report has no exit code to contradict it
        and run.exit_code != 0
        and first_bad == 0
        and not (is_pytest and run.exit_code == PYTEST_NO_TESTS_COLLECTED and report.total == 0)
    )
    if nonzero_unexplained:
        warnings.append(
            f"exit code {run.exit_code} although the JUnit XML records no failed or errored "
            "test: something else went wrong (see the output tail)"
        )

    failing = final.cases_with(*_FAILING)
    flaky = final.cases_with(TestOutcome.FLAKY)
    extra = {"reruns": reruns, "diff": diff}
    if failing or final.suite_errors:
        parts = []
        if failing:
            parts.append(f"{len(failing)} tests failed or errored: {_names([c.id for c in failing])}")
        if final.suite_errors:
            parts.append(f"{len(final.suite_errors)} suites errored: {_names([e.suite for e in final.suite_errors])}")
        return result(Status.FAIL, "; ".join(parts), final, **extra)
    if report.declared_unlisted:
        # The file says tests failed (or ran) that it does not list: their outcome is
        # unknown, so nothing can be claimed. Not FAIL: no failing test can be named.
        unlisted = list(report.declared_unlisted)
        more = f" (and {len(unlisted) - 1} more)" if len(unlisted) > 1 else ""
        return result(
            Status.INCONCLUSIVE,
            f"the JUnit XML is inconsistent: {unlisted[0]}{more}; outcomes it declares are "
            "missing from its testcases, so a pass cannot be claimed",
            final,
            **extra,
        )
    executed = final.executed
    if executed == 0:
        reason = (
            f"only skipped tests ({final.skipped}); nothing was checked"
            if final.skipped
            else "no test ran (nothing was selected or collected)"
        )
        return result(Status.INCONCLUSIVE, reason, final, **extra)
    if flaky:
        return result(
            Status.INCONCLUSIVE,
            f"{len(flaky)} flaky tests passed only on a rerun: {_names([c.id for c in flaky])}",
            final,
            **extra,
        )
    if nonzero_unexplained:
        return result(
            Status.INCONCLUSIVE,
            f"{executed} tests passed but the command exited with {run.exit_code}",
            final,
            **extra,
        )
    return result(Status.PASS, f"{final.passed} tests passed, none failed", final, **extra)


def category_claims(results: Iterable[CategoryResult]) -> list[Claim]:
    """One claim per category: "Test category 'auth' passes"."""
    claims: list[Claim] = []
    for res in results:
        evidence: tuple[EvidenceRef, ...] = ()
        if res.run.junit_path is not None:
            failing = res.report.cases_with(*_FAILING, TestOutcome.FLAKY) if res.report else ()
            evidence = (
                EvidenceRef(
                    section=SECTION,
                    file=res.run.junit_path.name,
                    records=tuple(c.id for c in failing[:20]),
                ),
            )
        claims.append(
            Claim(
                id=f"{SECTION}.{res.name}",
                section=SECTION,
                statement=f"Test category '{res.name}' passes",
                status=res.status,
                statistic=res.statistic,
                required=res.required,
                evidence=evidence,
                details={"reason": res.reason, "warnings": list(res.warnings[:20])},
                figure=_failed_tests_figure(res),
            )
        )
    return claims


def _failed_tests_figure(res: CategoryResult) -> Figure | None:
    """Failed or errored tests (and errored suites) of the executed ones; none when nothing was read."""
    report = res.report
    if report is None or res.run.start_error is not None or res.run.timed_out:
        return None
    failing = len(report.cases_with(*_FAILING)) + len(report.suite_errors)
    what = "tests failed or errored" + (
        f" (with {len(report.suite_errors)} errored suites)" if report.suite_errors else ""
    )
    return Figure(kind="count", value=float(failing), k=failing, n=report.executed, test="JUnit XML", what=what)
