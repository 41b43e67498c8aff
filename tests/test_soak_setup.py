"""The soak's users get the scenario's own setup and teardown, as the golden path's do (real sample service).

``scenario.setup`` runs per user once "before the golden path and soak", and ``scenario.teardown`` once at the
very end. The soak skipped both: it soaked a service the setup never prepared (a setup that failed still let
every session pass) and left what its users created behind, unreported.
"""

from __future__ import annotations

from typing import Any

from test_locust_engine import SCENARIO as LOCUST_SCENARIO

from stability_lib.core.models import Status
from stability_lib.demo import serve
from stability_lib.probes.engine import run_soak_sync
from stability_lib.probes.scenario import ScenarioConfig

# The sample service's auth and steps, as the Locust engine's tests use them.
AUTH: dict[str, Any] = LOCUST_SCENARIO["auth"]
CREATE_THREAD, AGENT_SESSION = LOCUST_SCENARIO["golden_path"]["steps"]


def scenario(
    setup: list[dict[str, Any]], teardown: list[dict[str, Any]], step: dict[str, Any] = AGENT_SESSION
) -> ScenarioConfig:
    return ScenarioConfig.model_validate(
        {
            "auth": AUTH,
            "users": {"prefix": "soak-setup", "password": "pw-for-the-sample-service", "count": 2},
            "setup": setup,
            "teardown": teardown,
            "golden_path": {"steps": [step]},
            "soak": {"sessions": 8, "concurrency": 4, "duration_s": 60, "connect_timeout_s": 10, "close_timeout_s": 5},
            "tolerated_failure_rate": 0.5,
        }
    )


def test_a_failing_scenario_setup_stops_the_soak_instead_of_soaking_an_unprepared_service() -> None:
    broken = {"kind": "http", "name": "enable_feature", "method": "GET", "path": "/api/no-such-endpoint"}
    with serve(variant="candidate", seed=1) as url:
        # The soaked step needs nothing from the setup: before, its sessions ran and passed anyway.
        no_thread = {**AGENT_SESSION, "send": {"type": "user_message", "content": "hello {nonce}"}}
        result = run_soak_sync(url, scenario([{**broken, "expect_status": 200}], [], no_thread))
    assert all(not u.ok and "enable_feature" in u.error for u in result.users), [u.error for u in result.users]
    assert result.records == ()  # no user ready: no session, and no claim can pass
    assert {c.status for c in result.claims("websocket")} == {Status.INCONCLUSIVE}


def test_the_soak_users_run_the_scenario_setup_first_and_its_teardown_last() -> None:
    # The thread the setup creates is what the soak's messages go to ({thread_id}); the teardown reads it back.
    read_back = {"kind": "http", "name": "read_thread", "method": "GET", "path": "/api/threads/{thread_id}"}
    gone = {**read_back, "name": "read_missing_thread", "path": "/api/threads/999999999"}
    with serve(variant="candidate", seed=1) as url:
        result = run_soak_sync(url, scenario([CREATE_THREAD], [{**read_back, "expect_status": 200}]))
        failing = run_soak_sync(url, scenario([CREATE_THREAD], [{**gone, "expect_status": 200}]))
    assert all(u.ok and [s.name for s in u.steps][-1] == "create_thread" for u in result.users)
    assert {r.outcome.label for r in result.records} == {"ok"} and len(result.records) == 8
    assert [(t.step, t.ok) for t in result.teardown] == [("read_thread", True)] * 2  # once per user, at the end
    (steps_succeeded,) = result.teardown_claims("websocket")
    assert steps_succeeded.status is Status.PASS
    (steps_failed,) = failing.teardown_claims("websocket")
    assert steps_failed.status is Status.FAIL
