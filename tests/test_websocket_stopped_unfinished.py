"""An interrupted WebSocket soak's teardown claim is no PASS while finally or undo steps are still owed.

In a kernel (a loop already runs in the main thread) the soak runs on a thread of its own, and on Ctrl-C
``run_sync`` waits only so long (its grace) for the cancelled soak before the interrupt goes on: the soak's finally
and undo steps may still run while the section writes its evidence. Before, ``_write_stopped`` judged
``websocket.teardown.steps_succeeded`` on the records written so far only: the finally steps that had ended had
held, and the claim said PASS while the users' undo steps still ran (or had not begun) and sessions were still in
their finally steps. Now the units whose finally steps have not all left their record (``units_in_flight``) and the
users set up without every record of their undo steps (``users_without_records``) are owed, and the claim is
INCONCLUSIVE naming them; with nothing owed it is still PASS. Real sample service on 127.0.0.1; the steps are held
in the client, and the interrupt is a SIGINT to the main thread (the rest of an interrupted soak's evidence:
tests/test_soak_interrupt.py).
"""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml
from support import interrupted_as_in_a_kernel
from test_golden_interrupt import section_params
from test_soak_interrupt import SOAK_SCENARIO

from stability_lib import sections
from stability_lib.execution.section import open_section
from stability_lib.probes import aio
from stability_lib.probes import soak as soak_module
from stability_lib.probes import teardown as teardown_steps

pytest.importorskip("stability_lib.demo")

ECHO = {
    "kind": "ws",
    "name": "echo",
    "path": "/ws/echo",
    "send": {"type": "echo", "text": "hello {nonce}"},
    "expect": ["echo"],
}
LIST_THREADS = {"kind": "http", "name": "list_threads", "method": "GET", "path": "/api/threads", "expect_status": 200}
# Two users, four sessions; each session's finally step reads its user's threads back (it holds), then each user's
# undo step (SOAK_SCENARIO's teardown: undo_user) runs once.
SCENARIO: dict[str, Any] = {
    **SOAK_SCENARIO,
    "golden_path": {"steps": [ECHO]},
    "soak": {
        "sessions": 4,
        "concurrency": 2,
        "duration_s": 60,
        "setup_scope": "per_session",
        "finally": [LIST_THREADS],
    },
}


@dataclass(frozen=True)
class Stopped:
    """What the interrupted section wrote: its teardown claim, the candidate's teardown records and users."""

    steps: dict[str, Any]  # websocket.teardown.steps_succeeded
    teardown: list[dict[str, Any]]
    users: list[str]
    status: str  # the section's


def undo_user(step: Any, _context: Mapping[str, Any]) -> bool:
    return bool(step.name == "undo_user")


def third_and_fourth_sessions_finally(step: Any, context: Mapping[str, Any]) -> bool:
    return bool(step.name == "list_threads" and int(str(context["session_id"])[-5:]) >= 2)


def interrupted_at(
    tmp_path: Path,
    url: str,
    monkeypatch: pytest.MonkeyPatch,
    held: Callable[[Any, Mapping[str, Any]], bool],
    *,
    outlasts_the_grace: bool,
) -> Stopped:
    """The websocket section run as in a kernel, and its evidence after a Ctrl-C as the first finally or undo step
    that ``held`` names began.

    The steps it names wait until the interrupt has reached the section (``outlasts_the_grace`` False: they end
    well within ``run_sync``'s grace) or until the section has written its evidence and re-raised (True: a grace
    of 0.2 s runs out first, as when a service is slow to undo)."""
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(section_params("websocket", url, SCENARIO)))
    section = open_section("websocket", tmp_path / "run", params)
    main, interrupted, go_on = threading.main_thread().ident, threading.Event(), threading.Event()
    run_step = teardown_steps.run_step

    async def ctrl_c_as_a_held_step_begins(where: Any, step: Any, context: Any, **kwargs: Any) -> Any:
        if held(step, context):
            if not interrupted.is_set():
                interrupted.set()
                assert main is not None
                signal.pthread_kill(main, signal.SIGINT)
            while not go_on.is_set():
                await asyncio.sleep(0.01)
        return await run_step(where, step, context, **kwargs)

    def ctrl_c(_signum: int, _frame: FrameType | None) -> None:
        if not outlasts_the_grace:
            go_on.set()
        raise KeyboardInterrupt

    monkeypatch.setattr(teardown_steps, "run_step", ctrl_c_as_a_held_step_begins)
    if outlasts_the_grace:
        monkeypatch.setattr(soak_module, "run_sync", functools.partial(aio.run_sync, cancel_grace_s=0.2))
    # On the way out, what the section no longer waited for ends, before the service stops.
    interrupted_as_in_a_kernel(lambda: sections.websocket(section), ctrl_c, on_the_way_out=go_on.set)
    assert interrupted.is_set()
    written = json.loads((tmp_path / "run" / "evidence" / "websocket.json").read_text())
    claims = {c["id"]: c for c in written["claims"]}
    assert claims["websocket.runs_finished"]["status"] == "INCONCLUSIVE"
    candidate = written["data"]["candidate"]
    users = [u["username"] for u in candidate["users"]]
    return Stopped(claims["websocket.teardown.steps_succeeded"], candidate["teardown"], users, written["status"])


def owed_units(claim: dict[str, Any]) -> list[tuple[str, str, int]]:
    return sorted((u["unit"], u["user"], u["index"]) for u in claim["details"]["unfinished"])


def test_users_undo_still_running_when_the_evidence_is_written_is_no_pass(
    tmp_path: Path, candidate_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: PASS, "4 teardown steps ran and succeeded", while both users' undo step still ran.
    stopped = interrupted_at(tmp_path, candidate_url, monkeypatch, undo_user, outlasts_the_grace=True)
    records = sorted((r["unit"], r["step"], r["ok"]) for r in stopped.teardown)
    assert records == [("soak_session", "list_threads", True)] * 4
    steps = stopped.steps
    assert steps["status"] == "INCONCLUSIVE", steps
    assert steps["statistic"].startswith("2 of 6 units that started have no complete record of their finally steps")
    assert steps["statistic"].endswith("the 4 teardown steps that ran succeeded")
    assert owed_units(steps) == [("user", stopped.users[0], 0), ("user", stopped.users[1], 1)]
    assert {u["target"] for u in steps["details"]["unfinished"]} == {candidate_url}
    assert steps["details"]["unfinished_count"] == 2
    assert stopped.status != "PASS"


def test_sessions_finally_still_running_and_users_undo_not_begun_are_no_pass(
    tmp_path: Path, candidate_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The third (and fourth) session's finally step holds past the grace; a session before it had ended, its finally
    # step held. Before: PASS on that record alone, with sessions still in their finally steps and no user's undo
    # begun (it runs after the sessions).
    held = third_and_fourth_sessions_finally
    stopped = interrupted_at(tmp_path, candidate_url, monkeypatch, held, outlasts_the_grace=True)
    assert stopped.teardown and all(r["unit"] == "soak_session" and r["ok"] for r in stopped.teardown)
    assert {r["index"] for r in stopped.teardown} <= {0, 1}
    assert stopped.steps["status"] == "INCONCLUSIVE", stopped.steps
    owed = owed_units(stopped.steps)
    users = [("user", stopped.users[0], 0), ("user", stopped.users[1], 1)]
    assert [u for u in owed if u[0] == "user"] == users  # their undo had not begun
    assert any(unit == "soak_session" and index >= 2 for unit, _user, index in owed)  # still running
    assert stopped.status != "PASS"


def test_users_undo_that_ended_within_the_grace_owes_nothing_and_passes(
    tmp_path: Path, candidate_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped = interrupted_at(tmp_path, candidate_url, monkeypatch, undo_user, outlasts_the_grace=False)
    assert sorted((r["unit"], r["step"], r["ok"]) for r in stopped.teardown) == [
        *[("soak_session", "list_threads", True)] * 4,
        *[("user", "undo_user", True)] * 2,
    ]
    assert stopped.steps["status"] == "PASS", stopped.steps
    assert stopped.steps["statistic"] == "6 teardown steps ran and succeeded"
    assert "unfinished" not in stopped.steps["details"]
