"""Golden path and multi-user isolation: pure analysis, then real runs against the demo service."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from stability_lib.core.models import Status
from stability_lib.probes.engine import run_soak
from stability_lib.probes.golden import (
    GoldenRun,
    Sighting,
    analyze_isolation,
    golden_claim,
    run_golden_path,
    run_golden_path_sync,
)
from stability_lib.probes.scenario import ScenarioConfig

N_ALICE = "nonce-" + "a" * 32
N_BOB = "nonce-" + "b" * 32


def test_a_user_seeing_another_users_nonce_fails_and_names_the_pair_and_place() -> None:
    sightings = [
        Sighting("alice", "chat", "ws event final_response", f"you said {N_ALICE}"),
        Sighting("bob", "chat", "ws event final_response", f"you said {N_BOB}"),
        Sighting("bob", "history", "GET /api/threads/2/messages", f"[..{N_BOB}..{N_ALICE}]"),
    ]
    result = analyze_isolation({"alice": [N_ALICE], "bob": [N_BOB]}, sightings)
    assert result.status is Status.FAIL
    assert result.pairs == [("bob", "alice")]
    (leak,) = result.leaks
    assert (leak.step, leak.where, leak.nonce) == ("history", "GET /api/threads/2/messages", N_ALICE)
    claim = result.claim()
    assert claim.status is Status.FAIL and "bob saw alice's data" in claim.statistic


def test_isolation_passes_only_when_each_user_saw_their_own_nonce() -> None:
    own = [Sighting("alice", "chat", "ws", N_ALICE), Sighting("bob", "chat", "ws", N_BOB)]
    assert analyze_isolation({"alice": [N_ALICE], "bob": [N_BOB]}, own).status is Status.PASS
    # Bob never got his own message back: a leak to him could not have been seen.
    partial = analyze_isolation({"alice": [N_ALICE], "bob": [N_BOB]}, own[:1])
    assert partial.status is Status.INCONCLUSIVE and "bob" in partial.explanation


def test_isolation_with_one_user_or_no_data_is_inconclusive() -> None:
    assert analyze_isolation({"alice": [N_ALICE]}, [Sighting("alice", "c", "ws", N_ALICE)]).status is (
        Status.INCONCLUSIVE
    )
    assert analyze_isolation({}, []).status is Status.INCONCLUSIVE


def test_nonces_of_any_shape_are_found_as_substrings() -> None:
    result = analyze_isolation(
        {"a": ["A-1"], "b": ["B-2"]}, [Sighting("a", "s", "w", "A-1 B-2"), Sighting("b", "s", "w", "B-2")]
    )
    assert result.status is Status.FAIL and result.pairs == [("a", "b")]


def test_golden_claim_passes_only_when_every_run_succeeded() -> None:
    ok = [GoldenRun("u", 0, r, True, f"n{r}") for r in range(3)]
    assert golden_claim(ok).status is Status.PASS
    failed = [*ok, GoldenRun("v", 1, 0, False, "n", "chat", "closed_1011")]
    claim = golden_claim(failed)
    assert claim.status is Status.FAIL and claim.statistic.startswith("3 of 4 runs succeeded (2 users")
    assert claim.details["failed_by_step"] == {"chat": 1}
    assert golden_claim([]).status is Status.INCONCLUSIVE


# --------------------------------------------------------------------------- against the demo service

demo = pytest.importorskip("stability_lib.demo")

DEMO_SCENARIO: dict[str, Any] = {
    "auth": {
        "register": {
            "path": "/api/auth/register",
            "body": {"username": "{username}", "password": "{password}"},
            "expect_status": [201],
        },
        "login": {
            "path": "/api/auth/login",
            "body": {"username": "{username}", "password": "{password}"},
            "expect_status": [200],
        },
        "token_path": "access_token",
        "ws_token_via": "header",
    },
    "users": {"prefix": "demo-user", "password": "correct-horse-battery", "count": 3},
    "golden_path": {
        "repetitions": 3,
        "steps": [
            {
                "kind": "http",
                "name": "create_thread",
                "path": "/api/threads",
                "body": {"title": "thread {nonce}"},
                "expect_status": 201,
                "capture": {"thread_id": "id"},
            },
            {
                "kind": "ws",
                "name": "agent_session",
                "path": "/ws",
                "send": {"type": "user_message", "thread_id": "{thread_id}", "content": "hello {nonce}"},
                "expect": ["agent_started", "agent_completed"] * 3,
                "end_event": "final_response",
            },
            {
                "kind": "http",
                "name": "list_messages",
                "method": "GET",
                "path": "/api/threads/{thread_id}/messages",
                "expect_status": 200,
            },
        ],
    },
    "soak": {"sessions": 300, "concurrency": 20, "duration_s": 60},
}


def demo_scenario(**soak: Any) -> ScenarioConfig:
    raw = json.loads(json.dumps(DEMO_SCENARIO))
    raw["soak"].update(soak)
    return ScenarioConfig.model_validate(raw)


def test_candidate_golden_path_and_isolation_pass_with_raw_step_durations() -> None:
    with demo.serve(variant="candidate") as url:
        result = run_golden_path_sync(url, demo_scenario())
    golden, isolation = result.claims()
    assert golden.status is Status.PASS, golden.details
    assert golden.statistic.startswith("9 of 9 runs succeeded (3 users")
    assert isolation.status is Status.PASS, isolation.details["explanation"]
    durations = result.step_durations()
    assert durations["agent_session"]["n"] == 9 and durations["auth.login"]["n"] == 3
    evidence = json.loads(json.dumps(result.to_dict()))
    assert len([s for s in evidence["samples"] if s["step"] == "create_thread"]) == 9
    assert "correct-horse-battery" not in json.dumps(evidence)


def test_a_leaking_service_fails_isolation_with_the_offending_pair() -> None:
    with demo.serve(variant="candidate", faults={"leak_rate": 1.0}, seed=3) as url:
        result = asyncio.run(run_golden_path(url, demo_scenario()))
    golden, isolation = result.claims()
    assert golden.status is Status.PASS  # every run "worked"; the data went to the wrong user
    assert isolation.status is Status.FAIL
    pair = isolation.details["pairs"][0]
    assert pair[0] != pair[1] and all(p.startswith("demo-user-") for p in pair)
    assert isolation.details["leaks"][0]["where"].startswith(("ws event", "GET "))


def test_users_who_cannot_log_in_fail_the_golden_path_and_leave_isolation_inconclusive() -> None:
    raw = json.loads(json.dumps(DEMO_SCENARIO))
    raw["auth"]["register"] = None
    with demo.serve(variant="candidate") as url:
        result = run_golden_path_sync(url, ScenarioConfig.model_validate(raw))
    golden, isolation = result.claims()
    assert golden.status is Status.FAIL and golden.details["failed_by_step"] == {"auth.login": 9}
    assert isolation.status is Status.INCONCLUSIVE


def test_candidate_soak_passes_both_session_claims() -> None:
    with demo.serve(variant="candidate") as url:
        result = asyncio.run(run_soak(url, demo_scenario()))
    crash, complete = result.claims()
    assert result.aggregate.ok == 300
    assert crash.status is Status.PASS and complete.status is Status.PASS, crash.statistic


def test_demo_1011_fault_fails_the_crash_claim_with_the_observed_count() -> None:
    with demo.serve(variant="candidate", faults={"ws_1011_rate": 0.05}, seed=11) as url:
        result = asyncio.run(run_soak(url, demo_scenario(sessions=400)))
    crash, _ = result.claims()
    observed = result.aggregate.outcome_counts["closed_1011"]
    assert observed > 0 and result.aggregate.close_codes["1011"] == observed
    assert crash.status is Status.FAIL
    assert crash.statistic.startswith(f"{observed} of 400 sessions closed with 1011/1006")


def test_demo_connection_drops_count_as_1006_failures() -> None:
    with demo.serve(variant="candidate", faults={"ws_drop_rate": 0.1}, seed=5) as url:
        result = asyncio.run(run_soak(url, demo_scenario(sessions=200)))
    assert result.aggregate.outcome_counts["abnormal_1006"] > 0
    assert result.aggregate.crashes == result.aggregate.outcome_counts["abnormal_1006"]
    assert result.claims()[1].status is not Status.PASS
