"""Table-driven: each evidence warning fires on the tell it looks for, and stays quiet otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from stability_lib import Claim, SectionResult, Status
from stability_lib.execution.params import validate_params
from stability_lib.report.evidence_warnings import WARNING_KINDS, evidence_warnings


def params(environment: str = "local", url: str = "http://127.0.0.1:8000", rereading: bool = False, **warnings: Any):
    return validate_params(
        {"title": "t", "environment": environment, "target": {"base_url": url}, "warnings": warnings},
        rereading=rereading,
    )


def health(latency_ms: float) -> SectionResult:
    sample = {
        "path": "/health",
        "index": 0,
        "status": 200,
        "latency_ms": latency_ms,
        "error": None,
        "missing_keys": [],
        "body_excerpt": "",
    }
    return SectionResult("health", Status.PASS, data={"samples": [sample]}, duration_s=1.0)


def suites(
    counts: dict[str, int],
    warnings: list[str] = (),
    coverage: float | None = None,
    status: str = "PASS",
    declared_unlisted: list[str] = (),
):
    cat = {
        "name": "auth",
        "status": status,
        "counts": counts,
        "warnings": list(warnings),
        "coverage": {"line_rate": coverage} if coverage is not None else None,
        "declared_unlisted": list(declared_unlisted),
    }
    return SectionResult("suites", Status.PASS, data={"categories": [cat]}, duration_s=1.0)


def claim_with_n(n: int, status: Status = Status.PASS) -> SectionResult:
    claim = Claim("performance.login", "performance", "s", status, details={"n": [n, n]})
    return SectionResult("performance", status, claims=(claim,), duration_s=1.0)


CASES = [
    # (kind expected or None, params, evidence)
    ("implausible_duration", params(), health(0.0)),
    (None, params(), health(0.8)),
    (
        "implausible_duration",
        params(),
        SectionResult("golden_path", Status.PASS, data={"durations_ms": {"ws_connect": [0.0]}}, duration_s=1),
    ),
    ("implausible_duration", params(), SectionResult("golden_path", Status.PASS, data={"x": 1}, duration_s=0.0)),
    ("empty_test_category", params(), suites({"passed": 0, "failed": 0, "errors": 0, "skipped": 0})),
    ("empty_test_category", params(), suites({"passed": 0, "failed": 0, "errors": 0, "skipped": 4})),
    (None, params(), suites({"passed": 3, "failed": 0, "errors": 0, "skipped": 1})),
    ("exit_code_disagrees", params(), suites({"passed": 3}, ["exit code 0 but 2 tests failed in the XML"])),
    ("low_coverage", params(coverage_floor=0.8), suites({"passed": 3}, coverage=0.5)),
    (None, params(coverage_floor=0.8), suites({"passed": 3}, coverage=0.9)),
    # Found from outside: a floor, or a baseline, asked for and never checked said nothing (fail_run: PASS).
    ("coverage_unchecked", params(coverage_floor=0.8), suites({"passed": 3})),
    ("coverage_missing", params(), suites({"passed": 3}, ["no coverage file was written at cov.xml"])),
    ("baseline_junit_missing", params(), suites({"passed": 3}, ["no baseline JUnit file api.junit.xml in base/"])),
    (None, params(), suites({"passed": 3}, ["output log truncated at 1000 bytes"])),
    (
        "junit_counts_disagree",
        params(),
        suites({"passed": 3}, declared_unlisted=["suite 's' declares failures=2 but only 0 listed"]),
    ),
    ("small_sample", params(min_samples=20), claim_with_n(10)),
    (None, params(min_samples=20), claim_with_n(10, Status.INCONCLUSIVE)),
    (None, params(min_samples=20), claim_with_n(200)),
    (
        "foreign_baseline",
        params(),
        SectionResult("performance", Status.PASS, data={"baseline_differences": ["host: a, now b"]}, duration_s=1),
    ),
    ("local_target_in_shared_environment", params("staging", "http://127.0.0.1:8000"), health(1.0)),
    ("local_target_in_shared_environment", params("production", "https://10.1.2.3"), health(1.0)),
    (None, params("staging", "https://staging.example.com"), health(1.0)),
    (None, params("local", "http://127.0.0.1:8000"), health(1.0)),
]


@pytest.mark.parametrize(("kind", "p", "result"), CASES)
def test_each_warning(kind: str | None, p, result: SectionResult) -> None:
    found = evidence_warnings(p, {result.section: result})
    kinds = {w.kind for w in found}
    if kind is None:
        assert kinds == set()
    else:
        assert kind in kinds
        assert all(w.evidence.file for w in found)  # each warning names its evidence


def test_every_kind_is_covered_by_a_case() -> None:
    assert {k for k, *_ in CASES if k} == set(WARNING_KINDS)


def test_recorded_targets_decide_not_unresolved_references() -> None:
    # Re-rendering on another machine: params hold a marker, run.json holds what was probed.
    p = params("staging", "<STAGING_URL not set>", rereading=True)
    assert evidence_warnings(p, {}, targets={"candidate": "https://staging.example.com"}) == []
    assert [w.kind for w in evidence_warnings(p, {}, targets={"candidate": "http://10.0.0.5"})] == [
        "local_target_in_shared_environment"
    ]


def test_a_rate_claim_on_few_runs_is_flagged() -> None:
    claim = Claim("golden_path.ok", "golden_path", "s", Status.PASS, details={"estimate": {"k": 0, "n": 1}})
    result = SectionResult("golden_path", Status.PASS, claims=(claim,), duration_s=1.0)
    assert [w.kind for w in evidence_warnings(params(min_samples=20), {"golden_path": result})] == ["small_sample"]


def test_a_run_without_a_live_target_is_not_called_local() -> None:
    # A spec-file or existing-JUnit run records no address: nothing there is a local target.
    p = params("staging", "https://staging.example.com")
    assert evidence_warnings(p, {}, targets={"candidate": ""}) == []
