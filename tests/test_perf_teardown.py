"""The performance section judges what its finally/teardown steps and leftovers checks did (performance.teardown.*).

The golden runs it samples undo what they created; before, their records were dropped and a candidate
whose finally step failed passed the section. Judged on the candidate, by the other sections' rules;
the baseline's records are named in the statistics, and every record (with its side) is in the evidence.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import REPO
from test_golden import DEMO_SCENARIO

from stability_lib.core.models import SectionResult, Status
from stability_lib.execution.section import open_section
from stability_lib.probes.golden_users import LeftoverCheck
from stability_lib.probes.perf import TeardownLog, performance_teardown_claims, teardown_evidence
from stability_lib.probes.teardown import TeardownRecord
from stability_lib.sections.performance import performance

demo = pytest.importorskip("stability_lib.demo")

OTHERS_OFF = {name: {"enabled": False} for name in ("health", "suites", "websocket", "golden_path", "isolation")}
# The sample service deletes nothing: reading the thread's messages back stands in for "delete the thread",
# and the candidate with the messages endpoint removed is one whose finally step fails (405: only POST is left).
FINALLY = {"kind": "http", "name": "close_thread", "method": "GET", "path": "/api/threads/{thread_id}/messages"}
SCENARIO: dict[str, Any] = {
    "auth": DEMO_SCENARIO["auth"],
    "users": {"prefix": "perf-teardown", "password": "pw-for-the-sample-service", "count": 2},
    "golden_path": {
        "steps": [
            DEMO_SCENARIO["golden_path"]["steps"][0],  # create_thread, capturing {thread_id}
            {"kind": "http", "name": "get_thread", "method": "GET", "path": "/api/threads/{thread_id}"},
        ],
        "finally": [{**FINALLY, "expect_status": 200}],
    },
    "teardown": [{"kind": "http", "name": "close_account", "method": "GET", "path": "/api/threads"}],
    "leftovers": [{"kind": "http", "name": "threads_listed", "method": "GET", "path": "/api/threads"}],
}
ENDPOINT_REMOVED = {"api_break": ["endpoint_removed"]}


def params_file(tmp_path: Path, candidate: str, baseline: str, **performance_cfg: Any) -> Path:
    cfg = {"samples_per_side": 4, "sequential": False, "concurrency": 2, "min_samples": 2, **performance_cfg}
    params = {
        "title": "performance teardown",
        "target": {"name": "candidate", "base_url": candidate},
        "baseline": {"name": "baseline", "base_url": baseline},
        "sections": {**OTHERS_OFF, "contract": {"enabled": False}, "performance": cfg},
        "scenario": SCENARIO,
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def run_section(tmp_path: Path, candidate_faults: dict[str, Any] | None = None) -> SectionResult:
    with (
        demo.serve(variant="candidate", seed=1) as baseline,
        demo.serve(variant="candidate", faults=candidate_faults, seed=2) as candidate,
    ):
        return performance(open_section("performance", tmp_path / "run", params_file(tmp_path, candidate, baseline)))


def evidence(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "run" / "evidence" / "performance.json").read_text())


@pytest.mark.slow
def test_a_finally_step_failing_on_the_candidate_fails_the_performance_section(tmp_path: Path) -> None:
    result = run_section(tmp_path, ENDPOINT_REMOVED)
    claims = {c.id: c for c in result.claims}
    steps = claims["performance.teardown.steps_succeeded"]
    assert steps.status is Status.FAIL and steps.required and result.status is Status.FAIL
    assert "4 of 6 teardown steps failed (first: golden_run" in steps.statistic
    assert "close_thread: status 405" in steps.statistic
    # the baseline, where the same step held, is named but does not decide
    assert "baseline, not judged (the claim is about the candidate): 6 teardown steps ran and succeeded" in (
        steps.statistic
    )
    assert claims["performance.teardown.nothing_left_behind"].status is Status.PASS
    # every record in the evidence, with its side: 4 runs' finally steps and 2 users' teardown per side
    records = evidence(tmp_path)["data"]["teardown"]
    seen = sorted((r["side"], r["unit"], r["step"], r["ok"]) for r in records)
    assert seen == sorted(
        [("baseline", "golden_run", "close_thread", True)] * 4
        + [("candidate", "golden_run", "close_thread", False)] * 4
        + [(side, "user", "close_account", True) for side in ("baseline", "candidate") for _ in range(2)]
    )
    assert {r["status"] for r in records if not r["ok"]} == {405}


@pytest.mark.slow
def test_healthy_targets_pass_the_teardown_claims_beside_the_timings(tmp_path: Path) -> None:
    result = run_section(tmp_path)
    claims = {c.id: c for c in result.claims}
    steps, left = claims["performance.teardown.steps_succeeded"], claims["performance.teardown.nothing_left_behind"]
    assert steps.status is Status.PASS and steps.statistic.startswith("6 teardown steps ran and succeeded; baseline")
    assert left.status is Status.PASS and left.statistic.startswith("2 leftovers checks held (2 users); baseline")
    assert any(c.id == "performance.step:get_thread" for c in result.claims)  # the timings are judged as before
    data = evidence(tmp_path)["data"]
    assert len(data["teardown"]) == 12 and all(r["ok"] and not r["skipped"] for r in data["teardown"])
    assert sorted((c["side"], c["step"], c["ok"]) for c in data["leftovers"]) == [
        ("baseline", "threads_listed", True),
        ("baseline", "threads_listed", True),
        ("candidate", "threads_listed", True),
        ("candidate", "threads_listed", True),
    ]


# Ctrl-C mid-run: the candidate's only golden run hangs in its second step (a 20 s message store); a
# SIGINT 3 s after the baseline's run has ended cancels it, its finally step runs (and fails: 405), the
# users' teardown and leftovers checks run, and the section writes all of it before the interrupt goes on.
INTERRUPTED_RUN = """
import json, os, signal, sys, threading
from pathlib import Path
import yaml
import stability_lib.probes.perf as perf
from stability_lib import demo
from stability_lib.execution.section import open_section
from stability_lib.sections.performance import performance

tmp, params = Path(sys.argv[1]), json.loads(sys.argv[2])
add_teardown = perf.TeardownLog.add_teardown

def add_and_trip(self, side, records):
    records = list(records)
    add_teardown(self, side, records)
    if side == "baseline" and any(r.unit == "golden_run" for r in records):
        threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGINT)).start()

perf.TeardownLog.add_teardown = add_and_trip
faults = {"slow": {"message_store": 20000}, "api_break": ["endpoint_removed"]}
with demo.serve(variant="candidate", seed=1, db_path=tmp / "baseline.db") as baseline, demo.serve(
    variant="candidate", faults=faults, seed=2, db_path=tmp / "candidate.db"
) as candidate:
    params["target"]["base_url"], params["baseline"]["base_url"] = candidate, baseline
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    try:
        performance(open_section("performance", tmp / "run", tmp / "params.yaml"))
        print("not interrupted")
    except KeyboardInterrupt:
        print("interrupted")
    sys.stdout.flush()
    os._exit(0)  # the candidate still sleeps in the cancelled request: no graceful shutdown to wait for
"""


@pytest.mark.slow
@pytest.mark.parametrize("lanes", [1, 2])
def test_a_run_cancelled_by_ctrl_c_still_has_its_finally_records_judged_in_the_evidence(
    tmp_path: Path, lanes: int
) -> None:
    # With two lanes, one starts on the candidate (pairs alternate A B, B A) and hangs there from the start:
    # both lanes' candidate runs are cancelled, and each one's finally record is kept (the lanes are waited
    # for until every one has ended its finally steps, not only the first).
    params = yaml.safe_load(params_file(tmp_path, "", "", concurrency=lanes, sequential=True).read_text())
    post = {"kind": "http", "name": "post_message", "path": "/api/threads/{thread_id}/messages"}
    steps = params["scenario"]["golden_path"]["steps"]
    steps[1] = {**post, "body": {"content": "hello {nonce}"}, "expect_status": 201}
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_RUN, str(tmp_path), json.dumps(params)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.split() == ["interrupted"], done.stderr[-3000:]
    written = evidence(tmp_path)
    claims = {c["id"]: c for c in written["claims"]}
    assert claims["performance.sampling_finished"]["status"] == "INCONCLUSIVE"
    assert "KeyboardInterrupt" in claims["performance.sampling_finished"]["statistic"]
    assert not [cid for cid in claims if cid.startswith("performance.step:")]  # nothing judged on a part
    steps_succeeded = claims["performance.teardown.steps_succeeded"]
    assert steps_succeeded["status"] == "FAIL" and "close_thread: status 405" in steps_succeeded["statistic"]
    assert written["status"] == "FAIL"
    seen = sorted((r["side"], r["unit"], r["step"], r["ok"]) for r in written["data"]["teardown"])
    assert seen == [
        ("baseline", "golden_run", "close_thread", True),
        *[("baseline", "user", "close_account", True)] * lanes,
        *[("candidate", "golden_run", "close_thread", False)] * lanes,  # the runs the interrupt cancelled
        *[("candidate", "user", "close_account", True)] * lanes,
    ]
    assert [c["side"] for c in written["data"]["leftovers"]] == ["baseline"] * lanes + ["candidate"] * lanes


def record(ok: bool, user: str = "u0", unit: str = "golden_run") -> TeardownRecord:
    return TeardownRecord(unit, user, 3, "delete_room", ok, error="" if ok else "status 500, expected [204]")


def test_a_baseline_teardown_failure_is_named_but_does_not_decide() -> None:
    log = TeardownLog()
    log.add_teardown("baseline", [record(False), record(True)])
    log.add_teardown("candidate", [record(True), record(True)])
    log.add_leftovers("baseline", [LeftoverCheck("u0", "rooms_gone", False, "status 200, expected [404]")])
    log.add_leftovers("candidate", [LeftoverCheck("u0", "rooms_gone", True)])
    steps, left = performance_teardown_claims(
        log, steps_configured=True, leftovers_configured=True, section="performance"
    )
    assert (steps.id, steps.status) == ("performance.teardown.steps_succeeded", Status.PASS)
    assert "baseline, not judged (the claim is about the candidate): 1 of 2 teardown steps failed" in steps.statistic
    assert steps.details["baseline_failures"][0]["step"] == "delete_room" and steps.details["failures"] == []
    assert (left.id, left.status) == ("performance.teardown.nothing_left_behind", Status.PASS)
    assert "not judged (the claim is about the candidate): 1 of 1 leftovers checks failed" in left.statistic


def test_the_candidates_records_decide_and_a_stored_baseline_adds_no_note() -> None:
    log = TeardownLog()
    log.add_side("candidate")
    log.add_teardown("candidate", [record(True), record(False, user="u1")])
    (steps,) = performance_teardown_claims(
        log, steps_configured=True, leftovers_configured=False, section="performance"
    )
    assert steps.status is Status.FAIL and "baseline" not in steps.statistic
    assert "golden_run 3 of u1: delete_room: status 500" in steps.statistic
    # nothing configured: no claim (as in the other sections); nothing ran: INCONCLUSIVE, never PASS
    assert performance_teardown_claims(log, steps_configured=False, leftovers_configured=False, section="p") == []
    empty = TeardownLog()
    empty.add_side("candidate")
    statuses = {
        c.status
        for c in performance_teardown_claims(empty, steps_configured=True, leftovers_configured=True, section="p")
    }
    assert statuses == {Status.INCONCLUSIVE}


def test_the_evidence_lists_the_records_with_their_side_and_counts_what_it_cannot_list(monkeypatch) -> None:
    import stability_lib.probes.perf as perf

    monkeypatch.setattr(perf, "_MAX_RECORDS_LISTED", 3)
    log = TeardownLog()
    log.add_teardown("candidate", [record(True)] * 5)
    log.add_leftovers("baseline", [LeftoverCheck("u0", "rooms_gone", True)])
    data = teardown_evidence(log)
    assert [r["side"] for r in data["teardown"]] == ["candidate"] * 3
    assert data["leftovers"] == [{"side": "baseline", "user": "u0", "step": "rooms_gone", "ok": True, "why": ""}]
    assert data["teardown_not_listed"] == {"candidate": 2}


# Ctrl-C mid-run as above (no broken endpoint: every finally step holds), and the kernel killed while the users'
# teardown runs: the runner SIGKILLs a kernel TEARDOWN_GRACE_S after the interrupt, and a slow teardown takes
# longer. The first teardown step ends the process on the spot, printing what is on disk by then.
KILLED_DURING_TEARDOWN = """
import json, os, signal, sys, threading
from pathlib import Path
import yaml
import stability_lib.probes.perf as perf
import stability_lib.probes.teardown as teardown
from stability_lib import demo
from stability_lib.execution.section import open_section
from stability_lib.sections.performance import performance

tmp, params = Path(sys.argv[1]), json.loads(sys.argv[2])
add_teardown, undo_step = perf.TeardownLog.add_teardown, teardown.run_step

def add_and_trip(self, side, records):
    records = list(records)
    add_teardown(self, side, records)
    if side == "baseline" and any(r.unit == "golden_run" for r in records):
        threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGINT)).start()

async def killed_in_the_users_teardown(where, step, context, **kwargs):
    if step.name == "close_account":
        path = tmp / "run" / "evidence" / "performance.json"
        print(json.dumps(json.loads(path.read_text()) if path.exists() else None))
        sys.stdout.flush()
        os._exit(0)
    return await undo_step(where, step, context, **kwargs)

perf.TeardownLog.add_teardown, teardown.run_step = add_and_trip, killed_in_the_users_teardown
with demo.serve(variant="candidate", seed=1, db_path=tmp / "baseline.db") as baseline, demo.serve(
    variant="candidate", faults={"slow": {"message_store": 20000}}, seed=2, db_path=tmp / "candidate.db"
) as candidate:
    params["target"]["base_url"], params["baseline"]["base_url"] = candidate, baseline
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    try:
        performance(open_section("performance", tmp / "run", tmp / "params.yaml"))
        print("not interrupted")
    except KeyboardInterrupt:
        print("interrupted")
    sys.stdout.flush()
    os._exit(0)
"""


@pytest.mark.slow
def test_the_interrupted_evidence_is_written_before_the_users_teardown_runs(tmp_path: Path) -> None:
    # Before, the users' teardown and leftovers checks ran first (the sampling generator's finally), and a kernel
    # killed during them left no evidence at all. Now the evidence is on disk before they start, its teardown
    # claims saying what they still owe: never PASS, though every finally step that ran held.
    params = yaml.safe_load(params_file(tmp_path, "", "", concurrency=1, sequential=True).read_text())
    post = {"kind": "http", "name": "post_message", "path": "/api/threads/{thread_id}/messages"}
    params["scenario"]["golden_path"]["steps"][1] = {**post, "body": {"content": "hi {nonce}"}, "expect_status": 201}
    done = subprocess.run(
        [sys.executable, "-c", KILLED_DURING_TEARDOWN, str(tmp_path), json.dumps(params)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.strip(), done.stderr[-3000:]
    written = json.loads(done.stdout.splitlines()[-1])
    assert written is not None, "the section wrote no evidence before the users' teardown"
    claims = {c["id"]: c for c in written["claims"]}
    assert claims["performance.sampling_finished"]["status"] == "INCONCLUSIVE"
    records = sorted((r["side"], r["unit"], r["ok"]) for r in written["data"]["teardown"])
    assert records == [("baseline", "golden_run", True), ("candidate", "golden_run", True)]
    steps, left = claims["performance.teardown.steps_succeeded"], claims["performance.teardown.nothing_left_behind"]
    assert steps["status"] == "INCONCLUSIVE" and left["status"] == "INCONCLUSIVE"
    assert steps["statistic"].startswith("1 of 2 units that started have no complete record")
    assert [u["unit"] for u in steps["details"]["unfinished"]] == ["user"]  # the candidate's user's own teardown
    assert left["statistic"].startswith("1 of 1 users set up have no complete leftovers record")
    assert written["data"]["leftovers"] == []


def test_units_without_their_records_keep_the_teardown_claims_from_pass() -> None:
    from stability_lib.probes.golden_users import UsersFinished, leftovers_claim
    from stability_lib.probes.teardown import OpenUnit, teardown_claims

    done = [record(True), record(True, user="u0", unit="user")]
    owed = (OpenUnit("golden_run", "u1", 3, "http://127.0.0.1:1"), OpenUnit("golden_run", "u1", 3))  # one unit
    (steps,) = teardown_claims(done, True, "golden_path", unfinished=owed)
    assert steps.status is Status.INCONCLUSIVE
    assert steps.statistic == (
        "1 of 3 units that started have no complete record of their finally steps (first: golden_run 3 of u1): "
        "what they would undo may still be on the target; the 2 teardown steps that ran succeeded"
    )
    assert steps.details["unfinished_count"] == 1 and steps.details["unfinished"][0]["user"] == "u1"
    (failed,) = teardown_claims([*done, record(False, user="u2")], True, "golden_path", unfinished=owed)
    assert failed.status is Status.FAIL and "1 of 4 units that started have no complete record" in failed.statistic
    assert teardown_claims(done, True, "golden_path")[0].status is Status.PASS  # nothing owed: as before
    checks = [LeftoverCheck("u0", "rooms_gone", True)]
    left = leftovers_claim(checks, "golden_path", unchecked=["u1"])
    assert left.status is Status.INCONCLUSIVE and left.details["unchecked_users"] == ["u1"]
    assert left.statistic.startswith("1 of 2 users set up have no complete leftovers record (first: u1)")
    bad = leftovers_claim([*checks, LeftoverCheck("u2", "rooms_gone", False, "status 200")], "p", unchecked=["u1"])
    assert bad.status is Status.FAIL
    assert leftovers_claim(checks, "golden_path").status is Status.PASS
    # the four-field form the other sections build keeps its meaning
    assert {c.status for c in UsersFinished(tuple(done), tuple(checks), True, True).claims("p")} == {Status.PASS}
