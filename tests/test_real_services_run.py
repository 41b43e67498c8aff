"""``stability run`` on each example params file against its real third-party service (issue 13).

Lean on purpose (the whole suite stays under 10 minutes on 2 cores): HTML only, the performance
section off, 2 repetitions and 12 soak sessions with a tolerated rate those 12 can settle. A
healthy service gives PASS with the teardown claim and nothing left on the service; a service that
reports death by message gives FAIL, and the evidence names the outcome.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


def stability_run(name: str, service: Service, out: Path) -> tuple[int, dict[str, Any]]:
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
    args += ["--format", "html", "--out", str(out)] + [f"--set={item}" for item in LEAN]
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=400, check=False)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    assert summary, done.stderr[-2000:]
    return done.returncode, summary


@pytest.mark.parametrize("name", ["jsonrpc_ws", pytest.param("graphql_ws", marks=pytest.mark.extended)])
def test_stability_run_passes_on_the_healthy_service(name: str, tmp_path: Path) -> None:
    with SERVICES[name]() as service:
        code, summary = stability_run(name, service, tmp_path / "run")
        left = service.resources()
    claims = {c["id"]: c["status"] for c in summary["claims"]}
    assert summary["verdict"] == "PASS", claims
    assert code == 0
    assert claims["golden_path.teardown.steps_succeeded"] == "PASS"
    assert claims["health.websocket_echo"] == "PASS"  # the health conversation, with target.auth
    assert left["sessions"] == 0


def test_stability_run_fails_when_the_backend_reports_death_by_message(tmp_path: Path) -> None:
    with jsonrpc_service("--fault", "dead-by-message") as service:
        code, summary = stability_run("jsonrpc_ws", service, tmp_path / "run")
        left = service.resources()
    assert summary["verdict"] == "FAIL" and code == 1
    golden = json.loads((tmp_path / "run" / "evidence" / "golden_path.json").read_text())
    assert "failed_by_message(backend_dead)" in json.dumps(golden)
    assert left["sessions"] == 0
