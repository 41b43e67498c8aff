"""Ctrl-C during the golden path: what the finally and teardown steps did until then is still evidence.

A cancelled ``run_finally`` re-raises without returning its records; before, the golden path's runs lost
them with the cancellation and the section wrote no evidence at all (the runner then showed the section
only as "interrupted"). Now the records reach a sink as each step ends, and the golden path and isolation
sections write them, judged, beside an INCONCLUSIVE ``<section>.runs_finished``, before the interrupt goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support import REPO
from test_golden import DEMO_SCENARIO
from test_perf_teardown import FINALLY

from stability_lib.probes.engine import new_http_client, new_run_id, prepare_user
from stability_lib.probes.scenario import HttpStep, ScenarioConfig
from stability_lib.probes.teardown import TeardownRecord, Where, gather_units, run_finally, run_step

demo = pytest.importorskip("stability_lib.demo")

SECTIONS = ("health", "suites", "websocket", "golden_path", "isolation", "performance", "contract")
CREATE_THREAD = DEMO_SCENARIO["golden_path"]["steps"][0]  # capturing {thread_id}
POST_MESSAGE = {
    "kind": "http",
    "name": "post_message",
    "path": "/api/threads/{thread_id}/messages",
    "body": {"content": "hello {nonce}"},
    "expect_status": 201,
}
CLOSE_THREAD = {**FINALLY, "expect_status": 200}
# The sample service deletes nothing: reading the thread's messages back stands in for "delete the thread"
# (405 with the messages endpoint removed: a finally step that fails), listing threads for the user's teardown.
SCENARIO: dict[str, Any] = {
    "auth": DEMO_SCENARIO["auth"],
    "users": {"prefix": "golden-interrupt", "password": "pw-for-the-sample-service", "count": 2},
    "golden_path": {"repetitions": 2, "steps": [CREATE_THREAD, POST_MESSAGE], "finally": [CLOSE_THREAD]},
    "teardown": [{"kind": "http", "name": "close_account", "method": "GET", "path": "/api/threads"}],
    "leftovers": [{"kind": "http", "name": "threads_listed", "method": "GET", "path": "/api/threads"}],
}

# Runs one section in its own process, sends it a SIGINT (Ctrl-C) when every user is at step `trip_step`
# of repetition `trip_rep` (after `trip_after_s`), and says whether the interrupt came through.
INTERRUPTED_RUN = """
import json, os, signal, sys, threading
from pathlib import Path
import yaml
import stability_lib.probes.golden as golden
from stability_lib import demo, sections
from stability_lib.execution.section import open_section

tmp, section, faults, trip = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
params = json.loads(sys.argv[5])
run_step, arrived = golden.run_step, set()

async def run_and_trip(where, step, context, **kwargs):
    if (step.name, context["repetition"]) == (trip["step"], trip["rep"]):
        arrived.add(where.user.setup.username)
        if len(arrived) == params["scenario"]["users"]["count"]:
            threading.Timer(trip["after_s"], os.kill, (os.getpid(), signal.SIGINT)).start()
    return await run_step(where, step, context, **kwargs)

golden.run_step = run_and_trip
with demo.serve(variant="candidate", faults=faults, seed=4, db_path=tmp / "service.db") as url:
    params["target"]["base_url"] = url
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    try:
        getattr(sections, section)(open_section(section, tmp / "run", tmp / "params.yaml"))
        print("not interrupted")
    except KeyboardInterrupt:
        print("interrupted")
    sys.stdout.flush()
    os._exit(0)  # a cancelled request may still sleep in the service: no graceful shutdown to wait for
"""


def section_params(section: str, url: str, scenario: dict[str, Any] = SCENARIO) -> dict[str, Any]:
    """Params that run ``section`` alone against ``url``."""
    return {
        "title": f"{section} on the sample service",
        "target": {"name": "candidate", "base_url": url},
        "sections": {name: {"enabled": name == section} for name in SECTIONS},
        "scenario": scenario,
    }


def interrupted(
    tmp_path: Path, section: str, scenario: dict[str, Any], faults: dict[str, Any], trip: dict[str, Any]
) -> dict[str, Any]:
    """The section's evidence after a Ctrl-C mid-run (fails when the section wrote none)."""
    params = section_params(section, "", scenario)
    args = [str(tmp_path), section, json.dumps(faults), json.dumps(trip), json.dumps(params)]
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_RUN, *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.split() == ["interrupted"], done.stderr[-3000:]
    path = tmp_path / "run" / "evidence" / f"{section}.json"
    assert path.exists(), f"the interrupted section wrote no evidence; stderr: {done.stderr[-2000:]}"
    return json.loads(path.read_text())


@pytest.mark.slow
def test_ctrl_c_mid_run_keeps_the_finally_and_teardown_records_judged_in_the_golden_path_evidence(
    tmp_path: Path,
) -> None:
    # Every user's first run hangs in post_message (a 20 s message store); a Ctrl-C 1 s after the last
    # user got there cancels both runs: their finally steps run (and fail: 405), then the users' teardown
    # and leftovers checks, and the section writes all of it before the interrupt goes on.
    faults = {"slow": {"message_store": 20000}, "api_break": ["endpoint_removed"]}
    written = interrupted(tmp_path, "golden_path", SCENARIO, faults, {"step": "post_message", "rep": 0, "after_s": 1.0})
    claims = {c["id"]: c for c in written["claims"]}
    assert set(claims) == {
        "golden_path.runs_finished",
        "golden_path.teardown.steps_succeeded",
        "golden_path.teardown.nothing_left_behind",
    }  # no golden-path verdict on a part
    stopped = claims["golden_path.runs_finished"]
    assert stopped["status"] == "INCONCLUSIVE"
    assert stopped["statistic"].startswith("stopped by KeyboardInterrupt after 0 of 4 runs ended")
    steps = claims["golden_path.teardown.steps_succeeded"]
    assert steps["status"] == "FAIL" and "close_thread: status 405" in steps["statistic"]
    assert steps["statistic"].startswith("2 of 4 teardown steps failed (first: golden_run 0 of golden-interrupt")
    assert claims["golden_path.teardown.nothing_left_behind"]["status"] == "PASS"
    assert written["status"] == "FAIL"
    data = written["data"]
    assert sorted((r["unit"], r["index"], r["step"], r["ok"]) for r in data["teardown"]) == [
        ("golden_run", 0, "close_thread", False),  # the runs the interrupt cancelled
        ("golden_run", 0, "close_thread", False),
        ("user", 0, "close_account", True),
        ("user", 1, "close_account", True),
    ]
    assert {r["status"] for r in data["teardown"] if not r["ok"]} == {405}
    assert [c["ok"] for c in data["leftovers"]] == [True, True] and data["runs"] == []


@pytest.mark.slow
def test_ctrl_c_after_a_leak_was_seen_keeps_the_isolation_fail(tmp_path: Path) -> None:
    # A leaking service; the Ctrl-C comes when every user has started a second run (so every first run
    # ended): the leak seen in the first runs is a FAIL whatever the rest would have shown.
    scenario = {**SCENARIO, "users": {**SCENARIO["users"], "count": 3}}
    list_messages = {**CLOSE_THREAD, "name": "list_messages"}  # where the service shows another user's message
    scenario["golden_path"] = {**SCENARIO["golden_path"], "repetitions": 3}
    scenario["golden_path"]["steps"] = [CREATE_THREAD, POST_MESSAGE, list_messages]
    trip = {"step": "create_thread", "rep": 1, "after_s": 0.0}
    written = interrupted(tmp_path, "isolation", scenario, {"leak_rate": 1.0}, trip)
    claims = {c["id"]: c for c in written["claims"]}
    assert set(claims) == {
        "isolation.runs_finished",
        "isolation.no_cross_user_data",
        "isolation.teardown.steps_succeeded",  # the runs' finally steps and the users' teardown, judged too
        "isolation.teardown.nothing_left_behind",
    }
    assert claims["isolation.runs_finished"]["status"] == "INCONCLUSIVE"
    leak = claims["isolation.no_cross_user_data"]
    assert leak["status"] == "FAIL" and "saw" in leak["statistic"] and written["status"] == "FAIL"
    assert 3 <= written["data"]["runs"] < 9


@pytest.mark.slow
def test_run_finally_gives_the_sink_the_records_of_steps_that_ended_before_a_cancel() -> None:
    # Two finally steps: listing threads ends at once, posting a message hangs (a 20 s message store) past
    # the 3 s teardown bound. The call is cancelled while the second step runs: it re-raises, returns
    # nothing, and the sink holds the first step's record and the second's teardown_timeout.
    scenario = ScenarioConfig.model_validate({**SCENARIO, "teardown_timeout_s": 3})
    steps = [HttpStep.model_validate({**s}) for s in (SCENARIO["teardown"][0], POST_MESSAGE)]

    async def cancelled_mid_teardown(url: str) -> list[TeardownRecord]:
        run_id = new_run_id()
        async with new_http_client(url) as client:
            user = await prepare_user(client, scenario, 0, f"sink-{run_id}", run_id)
            where = Where(client, url, None, scenario, user, run_id, 0)
            created = await run_step(where, HttpStep.model_validate(CREATE_THREAD), user.context(run_id, nonce="n"))
            context = {**user.context(run_id, nonce="n"), **created.captured}
            sink: list[TeardownRecord] = []
            task = asyncio.ensure_future(run_finally(where, steps, context, unit="golden_run", index=0, sink=sink))
            while not sink:  # the first step has ended: the second hangs
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return sink

    with demo.serve(variant="candidate", faults={"slow": {"message_store": 20000}}, seed=1) as url:
        sink = asyncio.run(cancelled_mid_teardown(url))
    assert [(r.step, r.ok, r.status, r.error) for r in sink] == [
        ("close_account", True, 200, ""),
        ("post_message", False, None, "teardown_timeout"),
    ]
    assert all(r.unit == "golden_run" and r.index == 0 for r in sink)


@pytest.mark.slow
def test_ctrl_c_on_stability_run_keeps_the_golden_paths_teardown_claims_in_the_interrupted_section(
    tmp_path: Path,
) -> None:
    # The whole tool: `stability run` with the golden path in a kernel; Ctrl-C once both users' first runs
    # hang in post_message (both threads exist). The kernel's cell is interrupted, the runs' finally steps
    # and the users' teardown run, the section writes its claims, and the runner marks it ERROR
    # "interrupted" keeping them.
    faults = {"slow": {"message_store": 20000}, "api_break": ["endpoint_removed"]}
    database = tmp_path / "service.db"
    with demo.serve(variant="candidate", faults=faults, seed=4, db_path=database) as url:
        (tmp_path / "params.yaml").write_text(json.dumps(section_params("golden_path", url)))
        out = tmp_path / "run"
        proc = subprocess.Popen(
            [sys.executable, "-m", "stability_lib.cli", "run", str(tmp_path / "params.yaml"), "--out", str(out)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            while proc.poll() is None and threads_in(database) < 2:  # waits for the runs, asserts nothing on time
                time.sleep(0.1)
            assert proc.poll() is None, proc.communicate()
            proc.send_signal(signal.SIGINT)
            _stdout, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 3 and "interrupted by SIGINT" in stderr, stderr[-3000:]
    written = json.loads((out / "evidence" / "golden_path.json").read_text())
    assert written["status"] == "ERROR" and "interrupted" in written["error"]
    claims = {c["id"]: c for c in written["claims"]}
    assert claims["golden_path.runs_finished"]["status"] == "INCONCLUSIVE"
    steps = claims["golden_path.teardown.steps_succeeded"]
    assert steps["status"] == "FAIL" and "close_thread: status 405" in steps["statistic"]
    assert sorted((r["unit"], r["step"], r["ok"]) for r in written["data"]["teardown"]) == [
        ("golden_run", "close_thread", False),
        ("golden_run", "close_thread", False),
        ("user", "close_account", True),
        ("user", "close_account", True),
    ]


def threads_in(database: Path) -> int:
    """Threads the sample service has stored (0 before its database exists)."""
    if not database.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT count(*) FROM threads").fetchone()[0])


# As in a Jupyter kernel: the section runs while an event loop runs in this thread, so `run_sync` runs the
# golden path on a worker thread and, after a Ctrl-C, waits only so long (shortened here from 8 s) for the
# cancelled runs before the section writes. Every user hangs in post_message (a 20 s message store); a SIGINT
# 1 s after the last got there cancels every run. The last user's finally step is then sent as a message post
# (a real request, held 20 s by the slow store): its undo is still in flight when the section writes, while
# the first user's finally step, teardown and leftovers check have ended.
KERNEL_LIKE_RUN = """
import asyncio, json, os, signal, sys, threading
from pathlib import Path
import yaml
import stability_lib.probes.golden as golden
import stability_lib.probes.teardown as teardown
from stability_lib.probes import aio
from stability_lib.probes.scenario import HttpStep
from stability_lib import demo, sections
from stability_lib.execution.section import open_section

tmp, section, params, slow_undo = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
aio.run_sync.__kwdefaults__["cancel_grace_s"] = 5.0
users = params["scenario"]["users"]["count"]
run_step, undo_step, arrived = golden.run_step, teardown.run_step, set()

async def run_and_trip(where, step, context, **kwargs):
    if step.name == "post_message" and context["repetition"] == 0:
        arrived.add(where.user.setup.username)
        if len(arrived) == users:
            threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
    return await run_step(where, step, context, **kwargs)

async def last_user_undoes_slowly(where, step, context, **kwargs):
    if where.user.setup.index == users - 1 and step.name == "close_thread":
        step = HttpStep.model_validate(slow_undo)
    return await undo_step(where, step, context, **kwargs)

golden.run_step, teardown.run_step = run_and_trip, last_user_undoes_slowly

async def cell():
    getattr(sections, section)(open_section(section, tmp / "run", tmp / "params.yaml"))

with demo.serve(variant="candidate", faults={"slow": {"message_store": 20000}}, seed=4, db_path=tmp / "db") as url:
    params["target"]["base_url"] = url
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    try:
        asyncio.new_event_loop().run_until_complete(cell())
        print("not interrupted")
    except KeyboardInterrupt:
        print("interrupted")
    sys.stdout.flush()
    os._exit(0)  # the last user's undo still waits on the service: the runner would kill the kernel now
"""


@pytest.mark.slow
@pytest.mark.parametrize("section", ["golden_path", pytest.param("isolation", marks=pytest.mark.extended)])
def test_a_teardown_still_in_flight_when_the_interrupted_section_writes_is_never_a_pass(
    tmp_path: Path, section: str
) -> None:
    # Before, the section judged only the records that were in: "2 teardown steps ran and succeeded" (PASS)
    # and "1 leftovers checks held (1 users)" (PASS), while the last user's thread was still being undone.
    params = section_params(section, "")
    slow_undo = {**POST_MESSAGE, "name": "close_thread", "body": {"content": "undo {nonce}"}}
    args = [str(tmp_path), section, json.dumps(params), json.dumps(slow_undo)]
    done = subprocess.run(
        [sys.executable, "-c", KERNEL_LIKE_RUN, *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.split() == ["interrupted"], done.stderr[-3000:]
    written = json.loads((tmp_path / "run" / "evidence" / f"{section}.json").read_text())
    data, claims = written["data"], {c["id"]: c for c in written["claims"]}
    first, last = (u["username"] for u in sorted(data["users"], key=lambda u: u["index"]))
    # the first user's undo had ended (so the records alone would have passed) ...
    assert sorted((r["user"], r["unit"], r["ok"]) for r in data["teardown"]) == [
        (first, "golden_run", True),
        (first, "user", True),
    ]
    assert [(c["user"], c["ok"]) for c in data["leftovers"]] == [(first, True)]
    # ... the last user's was not: its run's finally step in flight, its own teardown and leftovers check owed
    steps = claims[f"{section}.teardown.steps_succeeded"]
    assert steps["status"] == "INCONCLUSIVE", steps
    assert steps["statistic"].startswith("2 of 4 units that started have no complete record of their finally steps")
    assert sorted((u["unit"], u["user"], u["index"]) for u in steps["details"]["unfinished"]) == [
        ("golden_run", last, 0),
        ("user", last, 1),
    ]
    left = claims[f"{section}.teardown.nothing_left_behind"]
    assert left["status"] == "INCONCLUSIVE", left
    assert left["statistic"].startswith("1 of 2 users set up have no complete leftovers record")
    assert left["details"]["unchecked_users"] == [last]
    assert claims[f"{section}.runs_finished"]["status"] == "INCONCLUSIVE"


@pytest.mark.slow
def test_gather_units_lets_the_other_units_finish_undoing_when_one_raises() -> None:
    # One unit is undoing what it created (a message post held 1 s by the slow store) when another raises an
    # error of ours. Before, gather_units raised at once and the loop's shutdown cancelled the undoing unit and
    # its shielded finally task: the step's record was lost. Now the others are stopped, their finally steps
    # end, and then the error goes on.
    scenario = ScenarioConfig.model_validate(SCENARIO)
    undo = HttpStep.model_validate({**POST_MESSAGE, "name": "close_thread", "body": {"content": "undo"}})
    sink: list[TeardownRecord] = []

    async def undoing(url: str, run_id: str, undo_started: asyncio.Event) -> None:
        async with new_http_client(url) as client:
            user = await prepare_user(client, scenario, 0, f"gather-{run_id}", run_id)
            where = Where(client, url, None, scenario, user, run_id, 0)
            created = await run_step(where, HttpStep.model_validate(CREATE_THREAD), user.context(run_id, nonce="n"))
            context = {**user.context(run_id, nonce="n"), **created.captured}
            try:
                undo_started.set()
            finally:
                await run_finally(where, [undo], context, unit="golden_run", index=0, sink=sink)

    async def failing(undo_started: asyncio.Event) -> None:
        await undo_started.wait()
        await asyncio.sleep(0.1)  # the undo's request is on its way
        raise ValueError("a failure of ours")

    async def both(url: str) -> None:
        undo_started = asyncio.Event()
        await gather_units(undoing(url, new_run_id(), undo_started), failing(undo_started))

    with (
        demo.serve(variant="candidate", faults={"slow": {"message_store": 1000}}, seed=1) as url,
        pytest.raises(ValueError, match="a failure of ours"),
    ):
        asyncio.run(both(url))
    assert [(r.step, r.ok, r.status) for r in sink] == [("close_thread", True, 201)]
