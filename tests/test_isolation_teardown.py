"""The isolation section judges the finally steps of its runs and its users' teardown and leftovers checks,
as the golden path does: a step that fails to undo what a run created was a silent pass there before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_golden_interrupt import section_params

from stability_lib import sections
from stability_lib.execution.section import open_section

demo = pytest.importorskip("stability_lib.demo")


def isolation_evidence(tmp_path: Path, faults: dict[str, Any]) -> dict[str, Any]:
    with demo.serve(variant="candidate", faults=faults, seed=5, db_path=tmp_path / "service.db") as url:
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(section_params("isolation", url)))
        sections.isolation(open_section("isolation", tmp_path / "run", tmp_path / "params.yaml"))
    return json.loads((tmp_path / "run" / "evidence" / "isolation.json").read_text())


@pytest.mark.slow
def test_a_finally_step_that_fails_in_the_isolation_runs_fails_its_teardown_claim(tmp_path: Path) -> None:
    # The finally step reads the run's thread back (405 with the endpoint removed): it fails in every run.
    written = isolation_evidence(tmp_path, {"api_break": ["endpoint_removed"]})
    claims = {c["id"]: c for c in written["claims"]}
    steps = claims["isolation.teardown.steps_succeeded"]
    assert steps["status"] == "FAIL" and "close_thread: status 405" in steps["statistic"]
    assert written["status"] == "FAIL"
    failed = {(r["unit"], r["step"]) for r in written["data"]["teardown"] if not r["ok"]}
    assert failed == {("golden_run", "close_thread")}


@pytest.mark.slow
def test_isolation_teardown_claims_pass_on_a_healthy_service(tmp_path: Path) -> None:
    written = isolation_evidence(tmp_path, {})
    claims = {c["id"]: c["status"] for c in written["claims"]}
    assert claims == {
        "isolation.no_cross_user_data": "PASS",
        "isolation.teardown.steps_succeeded": "PASS",
        "isolation.teardown.nothing_left_behind": "PASS",
    }
    assert len(written["data"]["teardown"]) == 2 * 2 + 2  # every run's finally step, then each user's teardown
    assert [c["ok"] for c in written["data"]["leftovers"]] == [True, True]
