"""``stability run`` on each example params file against its real third-party service (issue 13).

Lean on purpose (the whole suite stays under 10 minutes on 2 cores): HTML only, the performance
section off, 2 repetitions and 12 soak sessions with a tolerated rate those 12 can settle. A
healthy service gives PASS with the teardown claim and nothing left on the service; a service that
reports death by message gives FAIL, and the evidence names the outcome.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("strawberry", reason="strawberry-graphql is not installed (test extra of issue 13)")
pytest.importorskip("jsonrpcserver", reason="jsonrpcserver is not installed (test extra of issue 13)")

# tests/services is on the path through tests/ (rootdir-relative imports)
from services.test_services_smoke import ALICE, BOB, Service, graphql_service, jsonrpc_service

pytestmark = pytest.mark.slow  # a whole run: a service, kernels, the report

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"graphql_ws": graphql_service, "jsonrpc_ws": jsonrpc_service}
LEAN = [
    "sections.performance.enabled=false",
    "scenario.golden_path.repetitions=2",
    "scenario.soak.sessions=12",
    "scenario.soak.concurrency=3",
    "scenario.tolerated_failure_rate=0.4",  # 0 failures in 12: the soak's 95% confidence sequence ends near 30%
]


def stability_run(name: str, service: Service, out: Path, *more: str) -> tuple[int, dict[str, Any]]:
    prefix = "GQL" if name.startswith("graphql") else "RPC"
    env = {
        **os.environ,
        f"{prefix}_CANDIDATE_URL": service.url,
        f"{prefix}_BASELINE_URL": service.url,
        f"{prefix}_TOKEN_ALICE": ALICE,
        f"{prefix}_TOKEN_BOB": BOB,
        "GQL_SERVICE_TOKEN": ALICE,
    }
    args = [sys.executable, "-m", "stability_lib.cli", "run", str(ROOT / "params" / "examples" / f"{name}.yaml")]
    args += ["--format", "html", "--out", str(out)] + [f"--set={item}" for item in (*LEAN, *more)]
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=400, check=False)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    assert summary, done.stderr[-2000:]
    return done.returncode, summary


@pytest.mark.parametrize("name", ["jsonrpc_ws", pytest.param("graphql_ws", marks=pytest.mark.extended)])
def test_stability_run_passes_on_the_healthy_service(name: str, tmp_path: Path) -> None:
    # At the scenario's confidence, every claim of the run (the conversation soak's were at 95% whatever it said)
    with SERVICES[name]() as service:
        code, summary = stability_run(name, service, tmp_path / "run", "scenario.confidence=0.9")
        left = service.resources()
    claims = {c["id"]: c["status"] for c in summary["claims"]}
    assert summary["verdict"] == "PASS", claims
    assert code == 0
    assert claims["golden_path.teardown.steps_succeeded"] == "PASS"
    assert claims["health.websocket_echo"] == "PASS"  # the health conversation, with target.auth
    if name == "jsonrpc_ws":  # its example has a conversation soak: 1,000 correlated, checked messages
        assert claims["websocket.conversation_messages_correct"] == "PASS"
        statistic = next(
            c["statistic"] for c in summary["claims"] if c["id"] == "websocket.conversation_messages_correct"
        )
        assert "failure rate 90% upper bound" in statistic, statistic
        assert "Conversation soak" in (tmp_path / "run" / "report.html").read_text()
    assert left["sessions"] == 0


def test_stability_run_fails_when_the_backend_reports_death_by_message(tmp_path: Path) -> None:
    with jsonrpc_service("--fault", "dead-by-message") as service:
        code, summary = stability_run("jsonrpc_ws", service, tmp_path / "run")
        left = service.resources()
    assert summary["verdict"] == "FAIL" and code == 1
    golden = json.loads((tmp_path / "run" / "evidence" / "golden_path.json").read_text())
    assert "failed_by_message(backend_dead)" in json.dumps(golden)
    claims = {c["id"]: c["status"] for c in summary["claims"]}
    assert claims["websocket.conversation_messages_correct"] == "FAIL"
    assert left["sessions"] == 0


def test_ctrl_c_mid_soak_runs_the_finally_steps_and_leaves_nothing_on_the_service(tmp_path: Path) -> None:
    # Issue 13: the soak's setup steps open sessions on the service; its finally steps close them.
    # Ctrl-C interrupts the kernels first (their cells cancel the sessions and run finally), and
    # kills them only after a grace period: before, the kernels were killed at once and every
    # session in flight stayed open on the service.
    soak_only = [
        "sections.health.enabled=false",
        "sections.golden_path.enabled=false",
        "sections.isolation.enabled=false",
        "sections.performance.enabled=false",
        "sections.websocket.sequential=false",
        "scenario.soak.sessions=5000",
        "scenario.soak.concurrency=4",
        "scenario.soak.duration_s=300",
    ]
    with jsonrpc_service() as service:
        env = {
            **os.environ,
            "RPC_CANDIDATE_URL": service.url,
            "RPC_BASELINE_URL": service.url,
            "RPC_TOKEN_ALICE": ALICE,
            "RPC_TOKEN_BOB": BOB,
        }
        args = [sys.executable, "-m", "stability_lib.cli", "run", str(ROOT / "params" / "examples" / "jsonrpc_ws.yaml")]
        args += ["--format", "html", "--out", str(tmp_path / "run")] + [f"--set={item}" for item in soak_only]
        proc = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            deadline, open_sessions = time.monotonic() + 120, 0
            # Sessions open and close all the time: the count is judged as read, never read again.
            while proc.poll() is None and time.monotonic() < deadline and open_sessions < 2:
                time.sleep(0.1)
                open_sessions = service.resources()["sessions"]
            if proc.poll() is not None:  # the run ended on its own: say how
                out, err = proc.communicate()
                raise AssertionError(f"the run ended before the soak got under way: {out[-3000:]} {err[-3000:]}")
            assert open_sessions >= 2, "the soak never got under way"
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends (the foreground group)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        left = service.resources()
    assert proc.returncode == 3 and "interrupted by SIGINT" in stderr and "Traceback" not in stderr, stderr
    assert left["sessions"] == 0, left


def test_the_baseline_is_soaked_with_its_own_tokens_where_the_credentials_give_them(tmp_path: Path) -> None:
    # Candidate and baseline are two deployments with their own API keys: users.credentials[].baseline_token.
    # Before, it was accepted and ignored: every baseline session was refused (401), and a fix
    # comparison set a candidate against a baseline that never ran a single session.
    base_alice, base_bob = f"tok-base-alice-{os.getpid()}", f"tok-base-bob-{os.getpid()}"
    credentials = [
        {"name": "alice", "token": "${RPC_TOKEN_ALICE}", "baseline_token": "${RPC_BASE_ALICE}"},
        {"name": "bob", "token": "${RPC_TOKEN_BOB}", "baseline_token": "${RPC_BASE_BOB}"},
    ]
    overrides = [
        *LEAN,
        "sections.health.enabled=false",
        "sections.golden_path.enabled=false",
        "sections.isolation.enabled=false",
        "sections.websocket.sequential=false",
        "sections.websocket.expect_fix=true",
        f"scenario.users.credentials={json.dumps(credentials)}",
    ]
    with (
        jsonrpc_service() as candidate,
        jsonrpc_service(tokens=f"alice={base_alice},bob={base_bob}") as baseline,
    ):
        env = {
            **os.environ,
            "RPC_CANDIDATE_URL": candidate.url,
            "RPC_BASELINE_URL": baseline.url,
            "RPC_TOKEN_ALICE": ALICE,
            "RPC_TOKEN_BOB": BOB,
            "RPC_BASE_ALICE": base_alice,
            "RPC_BASE_BOB": base_bob,
        }
        args = [sys.executable, "-m", "stability_lib.cli", "run", str(ROOT / "params" / "examples" / "jsonrpc_ws.yaml")]
        args += ["--format", "html", "--out", str(tmp_path / "run")] + [f"--set={item}" for item in overrides]
        done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=400, check=False)
        left = baseline.resources(base_alice)
    evidence = tmp_path / "run" / "evidence" / "websocket.json"
    assert evidence.exists(), done.stdout[-2000:] + done.stderr[-2000:]
    data = json.loads(evidence.read_text())["data"]
    outcomes = {r["outcome"]["label"] for r in data["baseline"]["records"]}
    assert data["baseline"]["aggregate"]["sessions"] == 12 and outcomes == {"ok"}, outcomes
    assert {r["outcome"]["label"] for r in data["candidate"]["records"]} == {"ok"}
    assert left["sessions"] == 0  # the finally steps closed the baseline's sessions with the baseline's keys
    for secret in (base_alice, base_bob):
        assert secret not in done.stdout + done.stderr + (tmp_path / "run" / "report.html").read_text()
