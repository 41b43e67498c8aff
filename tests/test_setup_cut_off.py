"""A test user whose setup an interrupt cut off, or whose setup ended but never reached the caller, is owed.

Such a user may be on the target (registered, not yet logged in; or set up in full while the ``gather`` that
would have returned it was cancelled), and its teardown never runs. Before, the interrupted section's teardown
claims did not know of it: the performance section said "no teardown step ran (nothing was created to undo)"
while both lanes' users were registered, and the golden path and the soak named only the users that had reached
their bookkeeping. Now ``UsersBeingSetUp`` counts each user as owed from the start of its setup until the caller
holds it, and the claims are INCONCLUSIVE naming it. Real sample service on 127.0.0.1; the interrupt is a SIGINT
to the main thread, whose loop runs the section as a Jupyter cell does (the probes run on a worker thread).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml
from support import interrupted_as_in_a_kernel
from test_golden import DEMO_SCENARIO
from test_golden_interrupt import SECTIONS
from test_websocket_stopped_unfinished import ECHO

from stability_lib import sections
from stability_lib.execution.section import Section, open_section
from stability_lib.probes import http_steps

pytest.importorskip("stability_lib.demo")
performance_section = importlib.import_module("stability_lib.sections.performance")

LIST_THREADS = {"kind": "http", "name": "list_threads", "method": "GET", "path": "/api/threads"}
SCENARIO: dict[str, Any] = {
    "auth": DEMO_SCENARIO["auth"],
    "users": {"prefix": "setup-cut", "password": "pw-for-the-sample-service", "count": 2},
    "golden_path": {"steps": [DEMO_SCENARIO["golden_path"]["steps"][0]]},  # create_thread
    "teardown": [{**LIST_THREADS, "name": "close_account"}],
    "leftovers": [{**LIST_THREADS, "name": "threads_listed"}],
}


def _params(section: str, url: str) -> dict[str, Any]:
    scenario = dict(SCENARIO)
    configs: dict[str, Any] = {name: {"enabled": name == section} for name in SECTIONS}
    if section == "websocket":
        scenario["golden_path"] = {"steps": [ECHO]}
        scenario["soak"] = {"sessions": 4, "concurrency": 2, "duration_s": 60}
    if section == "performance":
        configs["performance"] = {"samples_per_side": 4, "sequential": False, "concurrency": 2, "min_samples": 2}
    params: dict[str, Any] = {
        "title": f"{section}, setup cut off",
        "target": {"name": "candidate", "base_url": url},
        "sections": configs,
        "scenario": scenario,
    }
    if section == "performance":
        params["baseline"] = {"name": "baseline", "base_url": url}
    return params


def cut_during_the_second_users_login(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch, run: Callable[[Section], Any], section: str
) -> dict[str, Any]:
    """The section's evidence after a Ctrl-C as user 1 starts logging in (user 0's setup has ended by then);
    that login never returns (its request is cut off by the cancel)."""
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(_params(section, url)))
    sec = open_section(section, tmp_path / "run", params)
    main, first_done, interrupted = threading.main_thread().ident, threading.Event(), threading.Event()
    original = http_steps.run_http_step

    async def hooked(client: Any, step: Any, name: str, context: Any, **kwargs: Any) -> Any:
        if name == "auth.login" and context.get("user_index") == 1:
            while not first_done.is_set():
                await asyncio.sleep(0.01)
            if not interrupted.is_set():
                interrupted.set()
                assert main is not None
                signal.pthread_kill(main, signal.SIGINT)
            while True:  # cancelled here
                await asyncio.sleep(0.05)
        result = await original(client, step, name, context, **kwargs)
        if name == "auth.login" and context.get("user_index") == 0:
            first_done.set()
        return result

    def ctrl_c(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(http_steps, "run_http_step", hooked)
    interrupted_as_in_a_kernel(lambda: run(sec), ctrl_c)
    assert interrupted.is_set()
    written = json.loads((tmp_path / "run" / "evidence" / f"{section}.json").read_text())
    return {c["id"]: c for c in written["claims"]}


def owed_users(claim: dict[str, Any]) -> set[tuple[str, int]]:
    return {(u["user"], u["index"]) for u in claim["details"].get("unfinished", []) if u["unit"] == "user"}


def test_performance_users_set_up_when_the_interrupt_came_are_owed(
    tmp_path: Path, candidate_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: INCONCLUSIVE "no teardown step ran (nothing was created to undo)" with both users registered.
    claims = cut_during_the_second_users_login(
        tmp_path, candidate_url, monkeypatch, performance_section.performance, "performance"
    )
    steps = claims["performance.teardown.steps_succeeded"]
    assert steps["status"] == "INCONCLUSIVE", steps
    owed = owed_users(steps)
    assert [index for _user, index in sorted(owed, key=lambda o: o[1])] == [0, 1], steps  # set up, and cut off
    assert "may still be on the target" in steps["statistic"]
    left = claims["performance.teardown.nothing_left_behind"]
    assert left["status"] == "INCONCLUSIVE" and left["details"]["unchecked_count"] == 2, left


def test_a_golden_path_user_cut_off_in_its_setup_is_owed(
    tmp_path: Path, candidate_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = cut_during_the_second_users_login(
        tmp_path, candidate_url, monkeypatch, sections.golden_path, "golden_path"
    )
    steps = claims["golden_path.teardown.steps_succeeded"]
    assert steps["status"] == "INCONCLUSIVE", steps
    assert 1 in {index for _user, index in owed_users(steps)}, steps  # before: only user 0 could be named


def test_a_soak_user_cut_off_in_its_setup_is_owed(
    tmp_path: Path, candidate_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = cut_during_the_second_users_login(tmp_path, candidate_url, monkeypatch, sections.websocket, "websocket")
    steps = claims["websocket.teardown.steps_succeeded"]
    assert steps["status"] == "INCONCLUSIVE", steps
    assert 1 in {index for _user, index in owed_users(steps)}, steps
