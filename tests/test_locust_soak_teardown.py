"""Every test user a Locust soak set up has all its undo records in the result, however long the undo takes.

Found against jupyter_server (``setup_scope: per_user``, ``finally: [delete_session]``, 2 users, 2 workers):
Locust's stats counted both DELETEs, and the result had none of their records in 2 runs of 3, one in the
third. Cause: a worker's flusher greenlet (every 0.5 s) sent its pending records and *replaced* the outbox
lists, while the undo appended to the list it had looked up before its request went out
(``worker.teardown_out.extend(<run_finally_http(...)>)``): a DELETE slower than the flush interval (a kernel
shutting down) put its records into a list no flush would ever send. The sample service's undo steps answer
in milliseconds, so the soak tests never saw it.

Shaped so it does not depend on luck: the undo step is the sample service's login, slowed to 0.8 s (more than
the flush interval, so the flusher ticks during it), and each worker has two users and two Locust users (the
last sessions' records are pending when the undo starts; with two users in turn, the first user's records are
pending while the second's request runs). Before the fix, with 4 users: users 0 and 1 had no undo record in
each of 5 runs (4 of 8 records); both tests here failed 3 of 3 runs (the per-session one kept 0, 1 and
2 of its 8 sessions' finally records).
Locust runs in subprocesses (never imported here).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_golden import DEMO_SCENARIO

from stability_lib.core.models import Status
from stability_lib.demo import serve
from stability_lib.execution.params import resolve_env
from stability_lib.probes.scenario import ScenarioConfig
from stability_lib.scale.launcher import LocustSettings, LocustSoak, hard_deadline_s, run_locust_soak

PASSWORD_ENV = "LOCUST_TEARDOWN_TEST_PASSWORD"
PASSWORD = "pw-locust-teardown-40917"
SLOW_LOGIN = "slow=login:800"  # longer than a worker's flush interval (0.5 s)

AUTH = DEMO_SCENARIO["auth"]
CREATE_THREAD = DEMO_SCENARIO["golden_path"]["steps"][0]
AGENT_SESSION: dict[str, Any] = {**DEMO_SCENARIO["golden_path"]["steps"][1], "event_timeout_s": 10, "timeout_s": 30}
# The undo steps: each always succeeds; the login one answers after the slow fault's 0.8 s.
SLOW_UNDO: dict[str, Any] = {
    "kind": "http",
    "name": "undo_slow",
    "method": "POST",
    "path": "/api/auth/login",
    "body": {"username": "{username}", "password": "{password}"},
    "expect_status": 200,
}
QUICK_UNDO: dict[str, Any] = {"kind": "http", "name": "undo_quick", "method": "GET", "path": "/health"}


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)  # the workers inherit it: the plan file holds only ${NAME}


def scenario(users: int, soak: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "auth": AUTH,
        "users": {"prefix": "td-user", "password": "${" + PASSWORD_ENV + "}", "count": users},
        "golden_path": {"steps": [CREATE_THREAD, AGENT_SESSION]},
        "soak": {"duration_s": 60, "connect_timeout_s": 10, "close_timeout_s": 5, **soak},
        "tolerated_failure_rate": 0.01,
        "confidence": 0.95,
        **more,
    }


def resolved(raw: dict[str, Any]) -> ScenarioConfig:
    return ScenarioConfig.model_validate(resolve_env(raw, os.environ, "scenario"))


def locust_soak(url: str, out: Path, raw: dict[str, Any]) -> LocustSoak:
    return run_locust_soak(
        scenario=resolved(raw),
        raw_scenario=raw,
        base_url=url,
        raw_base_url=url,
        raw_ws_base_url=None,
        out_dir=out,
        settings=LocustSettings(workers=2),
    )


@pytest.mark.slow
def test_every_user_set_up_has_all_its_undo_records_when_the_undo_outlasts_a_flush(tmp_path: Path) -> None:
    raw = scenario(
        4,  # two per worker
        {"sessions": 24, "concurrency": 4, "setup_scope": "per_user", "finally": [SLOW_UNDO]},
        teardown=[QUICK_UNDO],
    )
    with serve(variant="candidate", faults=[SLOW_LOGIN], seed=1) as url:
        done = locust_soak(url, tmp_path / "locust", raw)
    soak = done.soak
    assert len(soak.records) == 24 and all(r.outcome.is_ok for r in soak.records)
    set_up = sorted(u.username for u in soak.users if u.ok)
    assert len(set_up) == 4 and soak.user_undo_steps == 2
    undone: dict[str, list[str]] = {}
    for record in soak.teardown:
        assert record.unit == "user" and record.ok, record
        undone.setdefault(record.user, []).append(record.step)
    assert {user: sorted(undone.get(user, [])) for user in set_up} == {
        user: ["undo_quick", "undo_slow"] for user in set_up
    }
    [claim] = soak.teardown_claims()
    assert claim.status is Status.PASS, claim.statistic


@pytest.mark.slow
def test_every_session_has_its_finally_record_when_it_outlasts_a_flush(tmp_path: Path) -> None:
    raw = scenario(
        2,
        {
            "sessions": 8,
            "concurrency": 2,  # one Locust user per worker: its sessions one after another
            "setup_scope": "per_session",
            "setup": [CREATE_THREAD],
            "finally": [SLOW_UNDO],
        },
    )
    with serve(variant="candidate", faults=[SLOW_LOGIN], seed=1) as url:
        done = locust_soak(url, tmp_path / "locust", raw)
    soak = done.soak
    assert len(soak.records) == 8 and all(r.outcome.is_ok for r in soak.records)
    per_session = Counter(r.index for r in soak.teardown if r.unit == "soak_session" and r.ok)
    assert per_session == Counter(range(8)), sorted(soak.teardown, key=lambda r: r.index)


def test_the_hard_deadline_leaves_room_for_a_sessions_own_undo_and_then_the_users() -> None:
    per_user = resolved(scenario(2, {"sessions": 8, "setup_scope": "per_user", "finally": [SLOW_UNDO]}))
    per_session = resolved(
        scenario(
            2,
            {"sessions": 8, "setup_scope": "per_session", "setup": [CREATE_THREAD], "finally": [SLOW_UNDO]},
            teardown=[QUICK_UNDO],
            teardown_timeout_s=20,
        )
    )
    session = 10 + 30 + 5  # connect, the ws step, close
    assert hard_deadline_s(per_user) == pytest.approx(60 + session + 30 + 5)
    # per session: its setup step (10 s) and its finally (teardown_timeout_s), then the users' teardown
    assert hard_deadline_s(per_session) == pytest.approx(60 + session + 10 + 20 + 20 + 5)
