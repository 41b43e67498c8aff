"""Whole runs with bad inputs and signals: real kernels, real Chromium (issue 11, items 3, 5, 9).

Few and slow: everything cheaper is in the other files of this folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from _corpus import EXIT_COULD_NOT_RUN, EXIT_FAIL, EXIT_INCONCLUSIVE, assert_bad_input_outcome, run_stability
from test_bad_reports import nested, passing, suite
from test_bad_servers import misbehaving_server

pytestmark = pytest.mark.slow


def write_params(folder: Path, data: dict) -> Path:
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_contract_run_with_a_fifo_and_dev_zero_for_specs_is_inconclusive_and_bounded(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "candidate.fifo")
    params = write_params(
        tmp_path,
        {
            "title": "specs that are not files",
            "target": {"base_url": "http://127.0.0.1:9"},
            "sections": {
                "contract": {
                    "baseline_spec": {"file": "/dev/zero"},
                    "candidate_spec": {"file": "candidate.fifo"},
                    "compare_ws_events": False,
                }
            },
        },
    )
    outcome = run_stability(["run", params, "--out", tmp_path / "run"], cwd=tmp_path, timeout_s=300)
    assert_bad_input_outcome(outcome, EXIT_INCONCLUSIVE, max_rss_mb=1000)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    claim = next(c for c in summary["claims"] if c["id"] == "contract.no_breaking_api_changes")
    assert claim["status"] == "INCONCLUSIVE" and "not a regular file" in claim["statistic"]


def test_a_50k_deep_junit_fails_its_own_category_only(tmp_path: Path) -> None:
    """Issue 11, item 5: RecursionError took the whole section down and turned real FAILs into INCONCLUSIVE."""
    (tmp_path / "deep.xml").write_bytes(nested(50_000, passing(1)))
    (tmp_path / "failing.xml").write_bytes(
        suite('<testcase classname="m" name="broken"><failure message="no"/></testcase>')
    )
    params = write_params(
        tmp_path,
        {
            "title": "deep junit",
            "target": {"base_url": "http://127.0.0.1:9"},
            "sections": {
                "suites": {
                    "rerun_failures": 0,
                    "categories": [
                        {
                            "name": "deep",
                            "command": ["cp", "deep.xml", "out/deep.xml"],
                            "junit_xml": "out/deep.xml",
                            "cwd": ".",
                        },
                        {
                            "name": "real",
                            "command": ["cp", "failing.xml", "out/real.xml"],
                            "junit_xml": "out/real.xml",
                            "cwd": ".",
                        },
                    ],
                }
            },
        },
    )
    (tmp_path / "out").mkdir()
    outcome = run_stability(["run", params, "--out", tmp_path / "run"], cwd=tmp_path, timeout_s=300)
    assert_bad_input_outcome(outcome, EXIT_FAIL)
    claims = {c["id"]: c["status"] for c in json.loads((tmp_path / "run" / "summary.json").read_text())["claims"]}
    assert claims.get("suites.real") == "FAIL", claims
    assert claims.get("suites.deep") in {"ERROR", "INCONCLUSIVE"}, claims


def _soak_params(folder: Path, base: str) -> Path:
    step = {
        "kind": "ws",
        "name": "chat",
        "path": "/ws/good",
        "send": {"type": "user_message", "content": "hi {nonce}"},
        "expect": ["agent_started", "agent_completed"],
        "end_event": "final_response",
        "event_timeout_s": 2,
        "timeout_s": 5,
    }
    return write_params(
        folder,
        {
            "title": "interrupted soak",
            "target": {"base_url": base},
            # One fixed soak: a sequential one decides this healthy server within seconds and the run
            # would end before the signal (then a PASS on re-render is right, and nothing is tested).
            "sections": {"websocket": {"sequential": False}},
            "scenario": {
                "users": {"password": "pw-unused", "count": 1},
                "golden_path": {"steps": [step]},
                "soak": {
                    "sessions": 20_000,  # the long soak: still running when the signal comes at 12 s
                    "allow_over_caps": True,
                    "concurrency": 20,
                    "duration_s": 300,
                    "connect_timeout_s": 2,
                    "close_timeout_s": 1,
                },
            },
        },
    )


# Extended: Ctrl-C mid-soak is also tests/test_real_services_run.py's (nothing left on the service,
# exit 3) and SIGTERM on the demo this file's next test.
@pytest.mark.extended
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_soak_stops_promptly_leaves_nothing_and_reports_inconclusive(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """Issue 11, item 9: Ctrl-C during a long soak (20,000 sessions in the issue) took 59 s while the soak kept loading the target."""

    def interrupt(proc: subprocess.Popen[bytes]) -> None:
        time.sleep(12)  # the kernel is up and the soak is under way
        if sig is signal.SIGINT:
            os.killpg(proc.pid, sig)  # Ctrl-C reaches the terminal's whole process group
        else:
            os.kill(proc.pid, sig)  # `kill <pid>`: the tool alone

    with misbehaving_server() as base:
        params = _soak_params(tmp_path, base)
        outcome = run_stability(
            ["run", params, "--out", tmp_path / "run"], cwd=tmp_path, timeout_s=120, on_start=interrupt
        )
    assert_bad_input_outcome(outcome, {EXIT_INCONCLUSIVE, EXIT_COULD_NOT_RUN})
    assert (tmp_path / "run" / "run.json").is_file(), f"stopped before the run began\n{outcome.describe()}"
    assert outcome.seconds - 12 < 30, f"exit {outcome.seconds - 12:.0f} s after the signal\n{outcome.describe()}"
    rerender = run_stability(["report", tmp_path / "run"], cwd=tmp_path, timeout_s=300)
    assert_bad_input_outcome(rerender, EXIT_INCONCLUSIVE)
    summary = (tmp_path / "run" / "summary.json").read_text()
    assert json.loads(summary)["verdict"] == "INCONCLUSIVE" and "interrupt" in summary.lower()


def test_sigterm_on_the_demo_stops_both_services_and_every_kernel(tmp_path: Path) -> None:
    """Issue 11, item 9: SIGTERM on `stability demo` left both sample services and kernel files behind."""

    def terminate(proc: subprocess.Popen[bytes]) -> None:
        time.sleep(6)  # mid-run: the sections take over 10 s on this machine even when idle
        os.kill(proc.pid, signal.SIGTERM)

    outcome = run_stability(
        ["demo", "--out", tmp_path / "run", "--set", "sections.performance.enabled=false", "--no-pdf"],
        cwd=tmp_path,
        timeout_s=180,
        on_start=terminate,
    )
    assert_bad_input_outcome(outcome, {EXIT_INCONCLUSIVE, EXIT_COULD_NOT_RUN})
    assert outcome.seconds - 6 < 30, outcome.describe()
