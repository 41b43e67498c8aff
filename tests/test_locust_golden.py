"""The golden path on the Locust engine (issue 18): each test user run by a Locust user on one of 2 local
workers against the sample service on 127.0.0.1, giving the same ``GoldenResult`` (runs, isolation,
claims) as our own engine; a seeded fault fails it naming the step; no Locust process outlives the run.

Locust is never imported here (it monkey-patches with gevent): the engine runs it in subprocesses.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_locust_engine import PASSWORD, PASSWORD_ENV, processes_of
from test_locust_engine import SCENARIO as SOAK_SCENARIO

from stability_lib.core.models import Status
from stability_lib.demo import serve
from stability_lib.execution.params import resolve_env
from stability_lib.probes.scenario import ScenarioConfig
from stability_lib.scale.golden_launcher import LocustGolden, run_locust_golden
from stability_lib.scale.launcher import LocustSettings

# The soak tests' scenario (auth, users, create_thread then agent_session): 3 users, 2 repetitions each.
SCENARIO: dict[str, Any] = {
    **SOAK_SCENARIO,
    "users": {**SOAK_SCENARIO["users"], "count": 3},
    "golden_path": {**SOAK_SCENARIO["golden_path"], "repetitions": 2},
}


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)  # the workers inherit it: the plan file holds only ${NAME}


def locust_golden(url: str, out: Path, raw: dict[str, Any] = SCENARIO) -> LocustGolden:
    scenario = ScenarioConfig.model_validate(resolve_env(raw, os.environ, "scenario"))
    return run_locust_golden(
        scenario=scenario,
        raw_scenario=raw,
        raw_base_url=url,
        raw_ws_base_url=None,
        out_dir=out,
        settings=LocustSettings(workers=2),
    )


def alive(pids: tuple[int, ...]) -> list[int]:
    found = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(pid)
    return found


@pytest.mark.slow
def test_the_golden_path_on_locust_passes_on_the_candidate_with_every_run_and_isolation(tmp_path: Path) -> None:
    read_thread = {"kind": "http", "method": "GET", "path": "/api/threads/{thread_id}", "expect_status": 200}
    list_threads = {"kind": "http", "method": "GET", "path": "/api/threads", "expect_status": 200}
    raw = {
        **SCENARIO,
        "golden_path": {**SCENARIO["golden_path"], "finally": [{**read_thread, "name": "after_run"}]},
        "teardown": [{**list_threads, "name": "user_teardown"}],
        "leftovers": [{**list_threads, "name": "user_leftovers"}],
    }
    with serve(variant="candidate", seed=1) as url:
        done = locust_golden(url, tmp_path / "locust", raw)
    golden, isolation = done.claims()
    assert golden.status is Status.PASS, golden.statistic
    # The finally steps after each run, then each user's teardown and leftovers checks, as our own engine.
    assert sorted((t.unit, t.step) for t in done.result.teardown) == sorted(
        [("golden_run", "after_run")] * 6 + [("user", "user_teardown")] * 3
    )
    assert [c.status for c in done.result.teardown_claims()] == [Status.PASS, Status.PASS]
    assert len(done.result.runs) == 3 * 2 and {r.user for r in done.result.runs} == set(
        ScenarioConfig.model_validate(resolve_env(SCENARIO, os.environ, "scenario")).users.usernames(done.result.run_id)
    )
    assert isolation.status is Status.PASS, isolation.statistic
    assert {s.step for s in done.result.samples} >= {"create_thread", "agent_session"}
    engine = done.run.to_dict()
    assert engine["engine"] == "locust" and engine["workers_seen"] == 2 and engine["runs_seen"] == 6
    assert engine["rate_per_s"] > 0 and engine["users_lost"] == 0
    assert not alive(done.processes)
    # The plan and the evidence on disk hold the password's reference, never its value.
    for name in ("plan.json", "outcomes.jsonl", "summary.json"):
        assert PASSWORD not in (tmp_path / "locust" / name).read_text()


@pytest.mark.slow
def test_a_seeded_ws_fault_fails_the_golden_path_on_locust_naming_the_step(tmp_path: Path) -> None:
    with serve(variant="candidate", faults=["ws_1011_rate=1.0"], seed=1) as url:
        done = locust_golden(url, tmp_path / "locust")
    golden, _isolation = done.claims()
    assert golden.status is Status.FAIL
    assert golden.details["failed_by_step"] == {"agent_session": 6}
    assert "0 of 6 runs succeeded" in golden.statistic
    assert not alive(done.processes)


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_its_users_unjudged_and_leaves_no_process(tmp_path: Path) -> None:
    out = tmp_path / "locust"
    raw = {**SCENARIO, "users": {**SCENARIO["users"], "count": 4}}
    got: dict[str, LocustGolden] = {}
    # Creating a thread takes 1.5 s: each user runs for 3 s or more, so the kill lands mid-run.
    with serve(variant="candidate", faults=["slow=thread_create:1500"], seed=1) as url:
        runner = threading.Thread(target=lambda: got.setdefault("done", locust_golden(url, out, raw)))
        runner.start()
        leases = out / "leases.jsonl"
        deadline = time.monotonic() + 60
        while not (leases.exists() and leases.read_text().count("\n") >= 4) and time.monotonic() < deadline:
            time.sleep(0.1)  # until every user is leased to a worker
        workers = [p for p in processes_of(out / "plan.json") if b"--worker" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        runner.join(timeout=120)
    assert not runner.is_alive()
    done = got["done"]
    golden, isolation = done.claims()
    lost = len(done.run.users_lost)
    assert len(done.run.workers_lost) == 1 and 1 <= lost < 4
    # The users the live worker ran are judged (all their runs passed); the lost ones are named, never a PASS.
    assert len(done.result.runs) == (4 - lost) * 2 and all(r.ok for r in done.result.runs)
    assert golden.status is Status.INCONCLUSIVE and f"{lost} user(s) lost" in golden.statistic
    # No leak among the users judged, but what the lost ones saw was never read: not a PASS either.
    assert isolation.status is Status.INCONCLUSIVE and f"{lost} user(s) lost" in isolation.statistic
    assert processes_of(out / "plan.json") == []


def test_the_engine_options_are_refused_when_no_section_they_drive_is_enabled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stability_lib.cli import _engine_sections, main

    params = tmp_path / "health.yaml"
    params.write_text("title: t\ntarget: {base_url: 'http://127.0.0.1:9'}\nsections:\n  health: {}\n")
    assert main(["run", str(params), "--engine", "locust", "--out", str(tmp_path / "run")]) == 3
    assert "none of them is enabled" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    golden_only = tmp_path / "golden.yaml"
    golden_only.write_text(
        "title: t\ntarget: {base_url: 'http://127.0.0.1:9'}\nsections:\n  golden_path: {}\n  websocket: {enabled: false}\n"
    )
    assert _engine_sections(golden_only, []) == ["golden_path"]
