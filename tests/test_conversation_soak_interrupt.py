"""Ctrl-C during the conversation soak: the evidence is written BEFORE the test user's teardown runs.

The runner SIGKILLs a kernel that is not done within execution.notebooks.TEARDOWN_GRACE_S of the interrupt.
Before, the websocket section ran the conversation soak user's teardown first and wrote its evidence after:
a slow teardown meant no evidence at all (not even the WebSocket soak that had ended and been judged). Now
the evidence is written first (the soak's claims, an INCONCLUSIVE ``websocket.runs_finished``, the user's
teardown claims INCONCLUSIVE: not ended yet), then the teardown runs, then the evidence is written again with
the teardown's own claims. Real sample service on 127.0.0.1, the section in its own process.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import REPO
from test_golden_interrupt import section_params
from test_soak_interrupt import SOAK_SCENARIO, undone_users

pytest.importorskip("stability_lib.demo")

# The conversation soak sends SIGINT to its own process (Ctrl-C lands during it); the test user's teardown
# first copies the evidence written so far, then runs (`ends`) or the process is SIGKILLed in it (`killed`:
# what the runner does to a kernel still busy at its grace limit).
INTERRUPTED_CONVERSATION = """
import json, os, signal, sys, time
from pathlib import Path
import yaml
import stability_lib.probes.conversation_soak as conversation_soak
import stability_lib.probes.golden_users as golden_users
from stability_lib import demo, sections
from stability_lib.execution.section import open_section

tmp, mode, params = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
evidence, finish = tmp / "run" / "evidence" / "websocket.json", golden_users.finish_users_sync

def ctrl_c_during_the_soak(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(60)

def teardown(*args, **kwargs):
    seen = json.loads(evidence.read_text()) if evidence.exists() else None
    (tmp / "at_teardown.json").write_text(json.dumps(seen))
    if mode == "killed":
        os.kill(os.getpid(), signal.SIGKILL)
    return finish(*args, **kwargs)

conversation_soak.run_conversation_soak_sync = ctrl_c_during_the_soak
golden_users.finish_users_sync = teardown
with demo.serve(variant="candidate", seed=4, db_path=tmp / "service.db") as url:
    params["target"]["base_url"] = url
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    try:
        sections.websocket(open_section("websocket", tmp / "run", tmp / "params.yaml"))
        print("not interrupted")
    except KeyboardInterrupt:
        print("interrupted")
    sys.stdout.flush()
    os._exit(0)
"""

SCENARIO: dict[str, Any] = {
    **SOAK_SCENARIO,
    "soak": {**SOAK_SCENARIO["soak"], "sessions": 4, "concurrency": 2},
    "conversation_soak": {
        "path": "/ws/echo",
        "send": {"id": "{msg_id}", "text": "hello {nonce}"},
        "correlate": {"id": "{msg_id}"},
        "sessions": 1,
        "concurrency": 1,
        "messages_per_session": 1,
    },
}
SOAK_CLAIMS = {"websocket.no_1011_or_1006", "websocket.sessions_complete", "websocket.teardown.steps_succeeded"}


def interrupted_conversation(tmp_path: Path, mode: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """The run of the section and what the evidence file held when the user's teardown began."""
    params = section_params("websocket", "", SCENARIO)
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_CONVERSATION, str(tmp_path), mode, json.dumps(params)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    at_teardown = tmp_path / "at_teardown.json"
    assert at_teardown.exists(), f"the user's teardown never began; stderr: {done.stderr[-3000:]}"
    return done, json.loads(at_teardown.read_text())


def claims_of(written: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    assert written is not None, "no evidence was written before the user's teardown"
    return {c["id"]: c for c in written["claims"]}


@pytest.mark.slow
def test_the_evidence_is_written_before_the_users_teardown_and_again_with_its_claims(tmp_path: Path) -> None:
    done, at_teardown = interrupted_conversation(tmp_path, "ends")
    assert done.returncode == 0 and done.stdout.split() == ["interrupted"], done.stderr[-3000:]
    first = claims_of(at_teardown)
    assert set(first) >= SOAK_CLAIMS  # the soak before it ended, judged
    assert first["websocket.runs_finished"]["status"] == "INCONCLUSIVE"
    assert "during the conversation soak" in first["websocket.runs_finished"]["statistic"]
    pending = first["websocket.conversation_teardown.steps_succeeded"]
    assert pending["status"] == "INCONCLUSIVE" and "teardown had not ended" in pending["statistic"]

    final = claims_of(json.loads((tmp_path / "run" / "evidence" / "websocket.json").read_text()))
    assert set(final) == set(first)
    assert final["websocket.runs_finished"] == first["websocket.runs_finished"]
    undone = final["websocket.conversation_teardown.steps_succeeded"]
    assert undone["status"] == "PASS" and undone["statistic"] == "1 teardown steps ran and succeeded"
    # The soak's two users (its undo) and the conversation soak's user (its teardown)
    assert len(undone_users(tmp_path / "service.db")) == 3


@pytest.mark.slow
def test_a_kernel_killed_during_the_users_teardown_still_leaves_the_evidence(tmp_path: Path) -> None:
    done, _ = interrupted_conversation(tmp_path, "killed")
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    path = tmp_path / "run" / "evidence" / "websocket.json"
    assert path.exists(), f"no evidence at all; stderr: {done.stderr[-2000:]}"
    written = json.loads(path.read_text())
    claims = claims_of(written)
    assert set(claims) >= SOAK_CLAIMS
    assert claims["websocket.runs_finished"]["status"] == "INCONCLUSIVE"
    assert claims["websocket.conversation_teardown.steps_succeeded"]["status"] == "INCONCLUSIVE"
    assert written["status"] != "PASS"
