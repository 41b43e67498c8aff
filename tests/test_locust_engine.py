"""The Locust engine (issue 18): the params soak run by a headless Locust master and 2 local workers
against the sample service on 127.0.0.1, with the same records, claims and statistics as our own engine,
and no process of ours left behind: after a run, after SIGINT, and when a worker is SIGKILLed mid-run.

Locust is never imported here (it monkey-patches with gevent): the engine runs it in subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support import run_cli

from stability_lib.core.models import Status
from stability_lib.demo import serve
from stability_lib.execution.params import resolve_env
from stability_lib.probes.engine import run_soak_sync
from stability_lib.probes.scenario import ScenarioConfig
from stability_lib.scale.launcher import LocustSettings, LocustSoak, run_locust_soak
from stability_lib.stats.rates import clopper_pearson

pytestmark = pytest.mark.slow

PASSWORD_ENV = "LOCUST_TEST_USER_PASSWORD"
PASSWORD = "pw-locust-test-73519"

SCENARIO: dict[str, Any] = {
    "auth": {
        "register": {
            "method": "POST",
            "path": "/api/auth/register",
            "body": {"username": "{username}", "password": "{password}"},
            "expect_status": [201],
        },
        "login": {
            "method": "POST",
            "path": "/api/auth/login",
            "body": {"username": "{username}", "password": "{password}"},
            "expect_status": [200],
        },
        "token_path": "access_token",
        "header_name": "Authorization",
        "header_format": "Bearer {token}",
        "ws_token_via": "header",
    },
    "users": {"prefix": "lt-user", "password": "${" + PASSWORD_ENV + "}", "count": 4},
    "golden_path": {
        "steps": [
            {
                "kind": "http",
                "name": "create_thread",
                "method": "POST",
                "path": "/api/threads",
                "body": {"title": "thread {nonce}"},
                "expect_status": 201,
                "capture": {"thread_id": "id"},
            },
            {
                "kind": "ws",
                "name": "agent_session",
                "path": "/ws",
                "send": {"type": "user_message", "thread_id": "{thread_id}", "content": "hello {nonce}"},
                "expect": ["agent_started", "agent_completed"] * 3,
                "end_event": "final_response",
                "event_timeout_s": 10,
                "timeout_s": 30,
            },
        ]
    },
    "soak": {"sessions": 300, "concurrency": 20, "duration_s": 60, "connect_timeout_s": 10, "close_timeout_s": 5},
    "tolerated_failure_rate": 0.01,
    "confidence": 0.95,
}


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)  # the workers inherit it: the plan file holds only ${NAME}


def raw_scenario(**soak: Any) -> dict[str, Any]:
    return {**SCENARIO, "soak": {**SCENARIO["soak"], **soak}}


def resolved(raw: dict[str, Any]) -> ScenarioConfig:
    return ScenarioConfig.model_validate(resolve_env(raw, os.environ, "scenario"))


def locust_soak(url: str, out: Path, raw: dict[str, Any], workers: int = 2) -> LocustSoak:
    return run_locust_soak(
        scenario=resolved(raw),
        raw_scenario=raw,
        base_url=url,
        raw_base_url=url,
        raw_ws_base_url=None,
        out_dir=out,
        settings=LocustSettings(workers=workers),
    )


def processes_of(plan: Path) -> list[int]:
    """Live processes started for this plan (the launcher gives every Locust process its path)."""
    marker = f"STABILITY_LOCUST_PLAN={plan.resolve()}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def wait_for_lines(path: Path, count: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} did not reach {count} records in {timeout_s} s")


PARAMS = """
title: "Locust soak"
environment: local
target:
  base_url: ${TARGET_URL}
sections:
  websocket: {}
  golden_path: {}
  isolation: {}
scenario: %s
"""


def test_clean_candidate_passes_with_two_workers_and_the_report_names_the_engine(tmp_path: Path) -> None:
    params = tmp_path / "ws.yaml"
    params.write_text(PARAMS % json.dumps(raw_scenario()))
    out = tmp_path / "run"
    with serve(variant="candidate", seed=1) as url:
        proc = run_cli(
            ["run", str(params), "--out", str(out), "--format", "html", "--engine", "locust", "--locust-workers", "2"],
            env={"TARGET_URL": url},
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    evidence = json.loads((out / "evidence" / "websocket.json").read_text())
    statuses = {c["id"]: c["status"] for c in evidence["claims"]}
    assert statuses == {"websocket.no_1011_or_1006": "PASS", "websocket.sessions_complete": "PASS"}
    engine = evidence["data"]["engine"]["sides"]["candidate"]
    assert engine["workers"] == 2 and engine["workers_seen"] == 2
    assert engine["sessions_seen"] == 300 and engine["rate_per_s"] > 0
    candidate = evidence["data"]["candidate"]  # the same schema as our own engine's soak
    assert candidate["aggregate"]["sessions"] == 300 and len(candidate["records"]) == 300
    assert {r["outcome"]["kind"] for r in candidate["records"]} == {"ok"}
    assert all(u["ok"] for u in candidate["users"]) and len(candidate["users"]) == 4
    # --engine locust drives the golden path too: every user's runs, judged as our own engine's
    golden = json.loads((out / "evidence" / "golden_path.json").read_text())
    assert {c["id"]: c["status"] for c in golden["claims"]}["golden_path.succeeds_for_every_user"] == "PASS"
    golden_engine = golden["data"]["engine"]["sides"]["candidate"]
    assert golden_engine["workers_seen"] == 2 and golden_engine["users_lost"] == 0
    assert golden_engine["runs_seen"] == len(golden["data"]["runs"]) > 4
    isolation = json.loads((out / "evidence" / "isolation.json").read_text())  # and the isolation check
    assert [c["status"] for c in isolation["claims"]] == ["PASS"]
    assert isolation["data"]["engine"]["sides"]["candidate"]["users_seen"] == 4
    html = (out / "report.html").read_text()
    assert "Engine: Locust" in html and "Sessions per second" in html and "Golden runs per second" in html
    plan = out / "locust" / "candidate" / "plan.json"
    assert PASSWORD not in plan.read_text() and "${" + PASSWORD_ENV + "}" in plan.read_text()
    assert processes_of(plan) == []


def test_1011_faults_over_1000_sessions_fail_and_agree_with_our_own_engine(tmp_path: Path) -> None:
    raw = raw_scenario(sessions=1000, concurrency=40)
    with serve(variant="candidate", faults=["ws_1011_rate=0.05"], seed=1) as url:
        done = locust_soak(url, tmp_path / "locust", raw)
        own = run_soak_sync(url, resolved(raw))
    soak = done.soak
    assert len(soak.records) == 1000 and done.run.sessions_lost == 0
    crashes = soak.aggregate.outcome_counts["closed_1011"]
    assert crashes > 10 and soak.aggregate.crashes == crashes
    crash_claim, complete_claim = soak.claims()
    assert crash_claim.status is Status.FAIL and complete_claim.status is Status.FAIL
    assert f"{crashes} of 1000 sessions" in crash_claim.statistic
    # Locust's own count of failed WS sessions is ours.
    assert done.run.locust_ws_sessions == 1000 and done.run.locust_ws_failures == soak.aggregate.failures
    # The same scenario on our own engine: the failure rates agree within their 95% intervals.
    low_l, high_l = clopper_pearson(soak.aggregate.failures, 1000, 0.95)
    low_o, high_o = clopper_pearson(own.aggregate.failures, own.aggregate.sessions, 0.95)
    assert own.aggregate.sessions == 1000
    assert low_l <= high_o and low_o <= high_l, (soak.aggregate.failures, own.aggregate.failures)
    assert processes_of(tmp_path / "locust" / "plan.json") == []


def test_a_worker_killed_mid_run_is_counted_as_lost_and_nothing_is_left_behind(tmp_path: Path) -> None:
    out = tmp_path / "locust"
    got: dict[str, LocustSoak] = {}
    with serve(variant="candidate", seed=1) as url:
        runner = threading.Thread(
            target=lambda: got.setdefault("soak", locust_soak(url, out, raw_scenario(sessions=400)))
        )
        runner.start()
        wait_for_lines(out / "records.jsonl", 60)
        workers = [p for p in processes_of(out / "plan.json") if b"--worker" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        runner.join(timeout=180)
    assert not runner.is_alive()
    done = got["soak"]
    assert len(done.run.workers_lost) == 1
    assert "lost mid-run" in done.run.note and f"judged on the {len(done.soak.records)} sessions seen" in done.run.note
    assert done.soak.aggregate.sessions == len(done.soak.records) < 400
    # Every session is either seen or lost with the killed worker (the other worker ran the rest).
    assert len(done.soak.records) + done.run.sessions_lost == 400
    assert processes_of(out / "plan.json") == []


def test_ctrl_c_on_stability_run_stops_the_master_and_every_worker(tmp_path: Path) -> None:
    params = tmp_path / "ws.yaml"
    params.write_text(PARAMS % json.dumps(raw_scenario(sessions=5000, duration_s=120)))
    out = tmp_path / "run"
    plan = out / "locust" / "candidate" / "plan.json"
    with serve(variant="candidate", seed=1) as url:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stability_lib.cli", "run", str(params), "--out", str(out), "--format", "html"]
            + ["--engine", "locust"],
            env={**os.environ, "TARGET_URL": url},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for_lines(plan.with_name("records.jsonl"), 20)
            assert len(processes_of(plan)) == 3
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 3 and "interrupted by SIGINT" in err
    assert processes_of(plan) == []
