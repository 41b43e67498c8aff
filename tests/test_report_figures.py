"""Suites and contract claims carry their decisive figure (failed tests, breaking changes), so page 1
and the trends report state a number, not only a status."""

from __future__ import annotations

from pathlib import Path

from stability_lib.contract.db_schema import db_schema_claims
from stability_lib.contract.openapi_rules_table import Change, Level
from stability_lib.contract.section import contract_claims
from stability_lib.contract.ws_messages import ws_contract_claims
from stability_lib.report.figures import figure_text
from stability_lib.suites.config import CategoryConfig, CategoryRun
from stability_lib.suites.judgement import category_claims, judge_category
from stability_lib.suites.junit import parse_junit

JUNIT = b"""<testsuite name="s" tests="3" failures="1" errors="1">
<testcase classname="m" name="a" time="0.1"/>
<testcase classname="m" name="b" time="0.1"><failure message="boom"/></testcase>
<testcase classname="m" name="c" time="0.1"><error message="bang"/></testcase>
</testsuite>"""


def _run(exit_code: int | None = 1, **extra: object) -> CategoryRun:
    fields: dict[str, object] = {
        "name": "auth",
        "argv": ("tool",),
        "cwd": "/src",
        "exit_code": exit_code,
        "duration_s": 1.0,
        "output_tail": (),
        "junit_path": Path("/out/auth.junit.xml"),
        "junit_expected_at": "/out/auth.junit.xml",
        "timeout_s": 300.0,
        **extra,
    }
    return CategoryRun(**fields)  # type: ignore[arg-type]


def test_a_failing_test_category_counts_its_failed_tests() -> None:
    cfg = CategoryConfig(name="auth", command=["tool"], junit_xml="out.xml")
    result = judge_category(cfg, _run(), parse_junit(JUNIT))
    claim = category_claims([result])[0]
    assert claim.status.value == "FAIL"
    assert claim.figure is not None and (claim.figure.k, claim.figure.n) == (2, 3)
    assert figure_text(claim.figure.serialize()) == "2 of 3 tests failed or errored"


def test_a_category_that_never_started_has_no_figure() -> None:
    cfg = CategoryConfig(name="auth", command=["tool"], junit_xml="out.xml")
    result = judge_category(cfg, _run(exit_code=None, start_error="no such file"), None)
    assert category_claims([result])[0].figure is None


def test_contract_claims_count_breaking_changes() -> None:
    change = Change(Level.ERR, "response-property-removed", "/x", "get", "200", "property id removed")
    failed = contract_claims([change], operations_compared=3)[0]
    assert failed.status.value == "FAIL" and failed.figure is not None and failed.figure.k == 1
    assert figure_text(failed.figure.serialize()) == "1 breaking changes (ERR or WARN)"
    clean = contract_claims([], operations_compared=3)[0]
    assert clean.status.value == "PASS" and clean.figure is not None and clean.figure.k == 0
    assert contract_claims(None, reason="no spec")[0].figure is None  # nothing compared: no figure
    ws = ws_contract_claims([change], baseline_events=5, candidate_events=5)[0]
    assert ws.figure is not None and ws.figure.k == 1 and ws.status.value == "FAIL"
    db = db_schema_claims([], tables_compared=4)[0]
    assert db.figure is not None and db.figure.k == 0 and db.status.value == "PASS"
