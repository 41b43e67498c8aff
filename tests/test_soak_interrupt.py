"""Ctrl-C during the WebSocket soak: what ended is still evidence, and what the users created is undone.

Before, a session cancelled by Ctrl-C or at the soak's hard deadline lost its finally records (a cancelled
``run_finally`` returns none), the users' undo steps (``soak.finally`` per user, ``scenario.teardown``) never
ran on Ctrl-C, and the websocket section wrote no evidence at all. Now the records reach the soak's
``SoakProgress`` as each step ends, the users' undo runs in a ``finally``, and the section writes the
teardown claims, a rate claim that already FAILs on the soaks (rounds) that ENDED before the interrupt (never
on the one it cut short), and an INCONCLUSIVE ``websocket.runs_finished`` before the interrupt goes on. Real
sample service on 127.0.0.1 (the judging rule without a service: tests/test_soak_interrupt_judging.py).

Also here: the soak's garbage-collector setting (issue 19) is restored after every soak, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from support import REPO
from test_golden_interrupt import CLOSE_THREAD, CREATE_THREAD, SCENARIO, section_params
from test_locust_engine import SCENARIO as LOCUST_SCENARIO

from stability_lib.probes import soak as soak_module
from stability_lib.probes.engine import run_soak, run_soak_sync
from stability_lib.probes.scenario import ScenarioConfig

demo = pytest.importorskip("stability_lib.demo")

AGENT_SESSION = LOCUST_SCENARIO["golden_path"]["steps"][1]  # needs {thread_id}
# The users' undo creates a thread titled "undone <username>": the service's database shows it ran.
UNDO = {"kind": "http", "name": "undo_user", "path": "/api/threads", "body": {"title": "undone {username}"}}
SOAK_SCENARIO: dict[str, Any] = {
    "auth": SCENARIO["auth"],
    "users": {"prefix": "soak-interrupt", "password": "pw-for-the-sample-service", "count": 2},
    "golden_path": {"steps": [CREATE_THREAD, AGENT_SESSION]},
    "soak": {
        "sessions": 8,
        "concurrency": 4,
        "duration_s": 60,
        "setup_scope": "per_session",
        "setup": [CREATE_THREAD],  # every session's own thread ...
        "finally": [CLOSE_THREAD],  # ... "closed" after it (405 with the messages endpoint removed)
    },
    "teardown": [{**UNDO, "method": "POST", "expect_status": 201}],
    "tolerated_failure_rate": 0.01,
}

# Runs the websocket section in its own process and sends it a SIGINT once `started` sessions have begun
# their WebSocket exchange or `ended` have ended it (after `after_s`; with `hold`, the `started`-th session waits
# for it); says whether the interrupt came through.
INTERRUPTED_SOAK = """
import asyncio, json, os, signal, sys, threading
from pathlib import Path
import yaml
import stability_lib.probes.soak as soak
from stability_lib import demo, sections
from stability_lib.execution.section import open_section

tmp, faults, trip, params = Path(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
exchange, seen = soak.run_ws_exchange, {"started": 0, "ended": 0}

def count(what):
    seen[what] += 1
    if seen[what] == trip.get(what):
        threading.Timer(trip["after_s"], os.kill, (os.getpid(), signal.SIGINT)).start()

async def counted(**kwargs):
    count("started")
    if trip.get("hold") and seen["started"] == trip.get("started"):
        await asyncio.sleep(60)  # this session keeps its soak from ending until the interrupt cancels it
    done = await exchange(**kwargs)
    count("ended")
    return done

soak.run_ws_exchange = counted
with demo.serve(variant="candidate", faults=faults, seed=4, db_path=tmp / "service.db") as url:
    params["target"]["base_url"] = url
    if "baseline" in params:  # the same service: soaked as the baseline too
        params["baseline"]["base_url"] = url
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    try:
        sections.websocket(open_section("websocket", tmp / "run", tmp / "params.yaml"))
        print("not interrupted")
    except KeyboardInterrupt:
        print("interrupted")
    sys.stdout.flush()
    os._exit(0)  # a cancelled session may still sleep in the service: no graceful shutdown to wait for
"""


def interrupted_soak(
    tmp_path: Path,
    sequential: bool,
    faults: dict[str, Any],
    trip: dict[str, Any],
    scenario: dict[str, Any],
    *,
    with_baseline: bool = False,
) -> dict[str, Any]:
    """The websocket section's evidence after a Ctrl-C mid-soak (fails when the section wrote none);
    ``with_baseline``: expect_fix, the same service soaked as the baseline after the candidate."""
    params = section_params("websocket", "", scenario)
    params["sections"]["websocket"]["sequential"] = sequential
    if with_baseline:
        params["baseline"] = {"name": "baseline", "base_url": ""}
        params["sections"]["websocket"]["expect_fix"] = True
    args = [str(tmp_path), json.dumps(faults), json.dumps(trip), json.dumps(params)]
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_SOAK, *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.split() == ["interrupted"], done.stderr[-3000:]
    path = tmp_path / "run" / "evidence" / "websocket.json"
    assert path.exists(), f"the interrupted section wrote no evidence; stderr: {done.stderr[-2000:]}"
    return json.loads(path.read_text())


def undone_users(database: Path) -> list[str]:
    """The threads the users' undo step created (one per user it ran for)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        return sorted(r[0] for r in db.execute("SELECT title FROM threads WHERE title LIKE 'undone %'"))


@pytest.mark.slow
@pytest.mark.parametrize("sequential", [True, False], ids=["rounds", "fixed"])
def test_ctrl_c_mid_soak_keeps_the_finally_and_teardown_records_and_says_the_soak_did_not_finish(
    tmp_path: Path, sequential: bool
) -> None:
    # Every session hangs in the agent's first step (20 s); a Ctrl-C 1 s after all four open sessions
    # started cancels them: their finally steps run (and fail: 405), then both users' undo steps.
    faults = {"slow": {"agent_data": 20000}, "api_break": ["endpoint_removed"]}
    written = interrupted_soak(tmp_path, sequential, faults, {"started": 4, "after_s": 1.0}, SOAK_SCENARIO)
    claims = {c["id"]: c for c in written["claims"]}
    assert set(claims) == {"websocket.runs_finished", "websocket.teardown.steps_succeeded"}  # no rate on a part
    stopped = claims["websocket.runs_finished"]
    assert stopped["status"] == "INCONCLUSIVE"
    assert stopped["statistic"].startswith("stopped by KeyboardInterrupt after 0 candidate sessions ended")
    steps = claims["websocket.teardown.steps_succeeded"]
    assert steps["status"] == "FAIL" and "close_thread: status 405" in steps["statistic"]
    assert steps["statistic"].startswith("4 of 6 teardown steps failed (first: soak_session")
    teardown = written["data"]["candidate"]["teardown"]
    assert sorted((r["unit"], r["step"], r["ok"], r["status"]) for r in teardown) == [
        *[("soak_session", "close_thread", False, 405)] * 4,  # the sessions the interrupt cancelled
        *[("user", "undo_user", True, 201)] * 2,
    ]
    assert sorted(r["index"] for r in teardown if r["unit"] == "soak_session") == [0, 1, 2, 3]
    assert [t.rsplit("-", 1)[1] for t in undone_users(tmp_path / "service.db")] == ["0", "1"]  # both users


@pytest.mark.slow
@pytest.mark.parametrize("sequential", [True, False], ids=["rounds", "fixed"])
def test_ctrl_c_after_the_candidates_soak_ended_with_1011_closes_keeps_the_crash_fail(
    tmp_path: Path, sequential: bool
) -> None:
    # Every session closes with 1011; the candidate's soak (in rounds: its first round) of 10 sessions ends,
    # then the Ctrl-C comes as the baseline's first session starts: the candidate's closes are a FAIL whatever
    # the rest would have shown, judged by the rule of the soak's mode on what ENDED.
    scenario = {**SOAK_SCENARIO, "soak": {**SOAK_SCENARIO["soak"], "sessions": 10}}
    trip = {"started": 11, "after_s": 0.0, "hold": True}
    written = interrupted_soak(tmp_path, sequential, {"ws_1011_rate": 1.0}, trip, scenario, with_baseline=True)
    claims = {c["id"]: c for c in written["claims"]}
    stopped = claims["websocket.runs_finished"]
    assert stopped["status"] == "INCONCLUSIVE" and stopped["details"]["candidate_soak_cut_short"] is False
    crash = claims["websocket.no_1011_or_1006"]
    assert crash["status"] == "FAIL" and written["status"] == "FAIL"
    assert ("sequential" in crash["details"]) is sequential  # the confidence sequence in rounds
    assert written["data"]["candidate"]["aggregate"]["sessions"] == 10
    assert stopped["details"]["rates_judged_on_sessions"] == 10
    assert "websocket.fix_works" not in claims  # the baseline was cut short
    assert claims["websocket.teardown.steps_succeeded"]["status"] == "PASS"  # every session's thread read back
    assert len(undone_users(tmp_path / "service.db")) == 2 * (1 + 1)  # both users, on each side's soak


@pytest.mark.slow
@pytest.mark.parametrize("sequential", [True, False], ids=["rounds", "fixed"])
def test_ctrl_c_while_the_first_round_runs_judges_no_rate_even_on_1011_closes(tmp_path: Path, sequential: bool) -> None:
    # Every session closes with 1011; the Ctrl-C comes once 30 have ended (of 2,000 planned; 100 a round):
    # no round ended. Before, the cut round's rates were judged and kept as a FAIL; but a round cut short is
    # biased towards failure (its cancelled sessions leave no record, its short failed ones had ended: with
    # `stability demo` a terminal Ctrl-C also stopped the services, and the remaining sessions were refused
    # connects), so nothing is judged on it: INCONCLUSIVE, saying how many sessions had ended.
    scenario = {**SOAK_SCENARIO, "soak": {**SOAK_SCENARIO["soak"], "sessions": 2000}}
    written = interrupted_soak(tmp_path, sequential, {"ws_1011_rate": 1.0}, {"ended": 30, "after_s": 0.0}, scenario)
    claims = {c["id"]: c for c in written["claims"]}
    assert set(claims) == {"websocket.runs_finished", "websocket.teardown.steps_succeeded"}  # no rate on a part
    assert written["status"] == "INCONCLUSIVE"
    stopped = claims["websocket.runs_finished"]
    ended = written["data"]["candidate"]["aggregate"]["sessions"]
    # A session whose exchange had ended may still have been in its finally step: cut there, it is not counted.
    assert 30 - 4 <= ended < 2000
    assert stopped["statistic"].startswith(f"stopped by KeyboardInterrupt after {ended} candidate sessions ended")
    assert stopped["details"]["candidate_soak_cut_short"] is True
    assert stopped["details"]["rates_judged_on_sessions"] == 0
    assert claims["websocket.teardown.steps_succeeded"]["status"] == "PASS"  # every session's thread read back
    assert len(undone_users(tmp_path / "service.db")) == 2


@pytest.mark.slow
def test_a_session_cancelled_at_the_hard_deadline_keeps_its_finally_records() -> None:
    # A 12 s message store: each session's exchange times out after 1 s, then its finally steps read the
    # thread back (at once) and post to it (12 s), past the soak's hard deadline (1 s + 3 s of session bounds
    # + slack). Cancelled there mid-finally, each session still finishes its finally steps (within the
    # teardown bound) and both records are kept; before, a cancelled run_finally returned none of them.
    post_message = {
        "kind": "http",
        "name": "post_message",
        "path": "/api/threads/{thread_id}/messages",
        "body": {"content": "hello {nonce}"},
        "expect_status": 201,
        "timeout_s": 30,
    }
    raw = {
        **SOAK_SCENARIO,
        "users": {**SOAK_SCENARIO["users"], "count": 1},
        "teardown": [],
        "soak": {
            **SOAK_SCENARIO["soak"],
            "sessions": 2,
            "concurrency": 2,
            "duration_s": 1,
            "connect_timeout_s": 1,
            "step_timeout_s": 1,
            "close_timeout_s": 1,
            "finally": [CLOSE_THREAD, post_message],
        },
    }
    with demo.serve(variant="candidate", faults={"slow": {"message_store": 12000}}, seed=1) as url:
        result = run_soak_sync(url, ScenarioConfig.model_validate(raw))
    assert result.cancelled_at_deadline == 2
    assert {r.outcome.label for r in result.records} == {"timeout(deadline)"}
    assert sorted((t.unit, t.index, t.step, t.ok, t.status) for t in result.teardown) == [
        ("soak_session", 0, "close_thread", True, 200),
        ("soak_session", 0, "post_message", True, 201),
        ("soak_session", 1, "close_thread", True, 200),
        ("soak_session", 1, "post_message", True, 201),
    ]
    (steps,) = result.teardown_claims("websocket")
    assert steps.statistic == "4 teardown steps ran and succeeded"


@pytest.mark.slow
def test_the_users_undo_runs_when_the_soak_is_cancelled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every session hangs in the agent's first step (20 s); cancelled once all four have started, the soak
    # still runs both users' undo step (the service's database shows what it did), and its progress
    # holds every finally and undo record.
    exchange, started, all_started = soak_module.run_ws_exchange, [], asyncio.Event()

    async def counted(**kwargs: Any) -> Any:
        started.append(kwargs["session_id"])
        if len(started) == 4:
            all_started.set()
        return await exchange(**kwargs)

    monkeypatch.setattr(soak_module, "run_ws_exchange", counted)
    progress = soak_module.SoakProgress()

    async def cancelled(url: str) -> None:
        task = asyncio.ensure_future(run_soak(url, ScenarioConfig.model_validate(SOAK_SCENARIO), progress=progress))
        await all_started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    database = tmp_path / "service.db"
    with demo.serve(variant="candidate", faults={"slow": {"agent_data": 20000}}, seed=1, db_path=database) as url:
        asyncio.run(cancelled(url))
    assert [t.rsplit("-", 1)[1] for t in undone_users(database)] == ["0", "1"]
    assert sorted((t.unit, t.step, t.ok) for t in progress.teardown) == [
        *[("soak_session", "close_thread", True)] * 4,
        *[("user", "undo_user", True)] * 2,
    ]
    assert progress.records == [] and [u.setup.ok for u in progress.users] == [True, True]


# --------------------------------------------------------------------------- the garbage collector


def test_the_soaks_gc_threshold_is_raised_inside_and_restored_after_an_exception() -> None:
    before = gc.get_threshold()
    inside: list[tuple[int, ...]] = []

    def failing_soak() -> None:
        with soak_module.fewer_collections():
            inside.append(gc.get_threshold())
            raise RuntimeError("a failure inside the soak")

    with pytest.raises(RuntimeError):
        failing_soak()
    assert inside == [(soak_module.SOAK_GC_THRESHOLD0, *before[1:])]
    assert gc.get_threshold() == before


def test_two_overlapping_soaks_restore_the_threshold_only_when_the_last_ends() -> None:
    before = gc.get_threshold()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, tuple[int, ...]] = {}

    def first() -> None:
        with soak_module.fewer_collections():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with soak_module.fewer_collections():
            second_in.set()
            first_out.wait(10)
            seen["after the first ended"] = gc.get_threshold()
        seen["after both ended"] = gc.get_threshold()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen == {
        "after the first ended": (soak_module.SOAK_GC_THRESHOLD0, *before[1:]),
        "after both ended": before,
    }


@pytest.mark.slow
def test_a_soak_raises_the_threshold_while_its_sessions_run_and_restores_it_after_an_end_and_a_cancel() -> None:
    raw = {**SOAK_SCENARIO, "users": {**SOAK_SCENARIO["users"], "count": 1}, "teardown": []}
    raw["soak"] = {"sessions": 3, "concurrency": 1, "duration_s": 60}
    raw["golden_path"] = {"steps": [{**AGENT_SESSION, "send": {"type": "user_message", "content": "hi {nonce}"}}]}
    scenario = ScenarioConfig.model_validate(raw)
    before = gc.get_threshold()
    during: list[int] = []

    async def soaks(url: str) -> None:
        await run_soak(url, scenario, on_session=lambda _record: during.append(gc.get_threshold()[0]))
        assert gc.get_threshold() == before  # after a soak that ended
        first = asyncio.Event()
        task = asyncio.ensure_future(run_soak(url, scenario, on_session=lambda _record: first.set()))
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with demo.serve(variant="candidate", seed=1) as url:
        asyncio.run(soaks(url))
    assert during == [soak_module.SOAK_GC_THRESHOLD0] * 3
    assert gc.get_threshold() == before  # after a cancelled one
