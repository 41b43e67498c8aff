"""Pure session logic: one outcome per session, honest aggregation, claims that can fail."""

from __future__ import annotations

import json

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosedError, InvalidMessage, InvalidStatus
from websockets.frames import Close
from websockets.http11 import Response

from stability_lib.core.models import Status
from stability_lib.probes.sessions import (
    EventExpectation,
    FeedStatus,
    OutcomeKind,
    SessionOutcome,
    SessionRecord,
    aggregate_sessions,
    cap_keeping_markers,
    outcome_for_close,
    session_claims,
    summarize_samples,
)
from stability_lib.probes.ws_errors import outcome_for_connect_error, received_close_code


def test_close_codes_map_to_outcomes_and_no_close_frame_is_1006() -> None:
    assert outcome_for_close(None).kind is OutcomeKind.ABNORMAL_1006
    assert outcome_for_close(1011).kind is OutcomeKind.CLOSED_1011
    other = outcome_for_close(1001)
    assert other.kind is OutcomeKind.CLOSED_OTHER and other.label == "closed_other(1001)"
    assert outcome_for_close(1006).is_crash and outcome_for_close(1011).is_crash
    assert not other.is_crash


def test_received_close_code_reads_rcvd_not_sent() -> None:
    dropped = ConnectionClosedError(None, Close(1000, "client said bye"), None)
    assert received_close_code(dropped) is None
    assert received_close_code(ConnectionClosedError(Close(1011, "boom"), None)) == 1011


def test_connect_failures_are_classified_by_type_never_by_message() -> None:
    rejected = outcome_for_connect_error(InvalidStatus(Response(403, "Forbidden", Headers())))
    assert rejected.label == "handshake_rejected(403)" and not rejected.connected
    assert outcome_for_connect_error(TimeoutError()).label == "connect_error(timeout)"
    assert outcome_for_connect_error(ConnectionRefusedError(111, "refused")).label == "connect_error(refused)"
    secret = outcome_for_connect_error(RuntimeError("ws://h/ws?token=SECRET"))
    assert "SECRET" not in json.dumps(secret.to_dict())
    assert outcome_for_connect_error(InvalidMessage("bad")).kind is OutcomeKind.CONNECT_ERROR


def expectation(other: str = "ignore") -> EventExpectation:
    return EventExpectation([("started", 1.0), ("completed", 2.0)], "final", 3.0, other_events=other)


def test_events_in_order_end_the_session() -> None:
    exp = expectation()
    assert exp.waiting_for == "started" and exp.current_timeout_s == 1.0
    assert exp.feed("started").status is FeedStatus.CONTINUE
    assert exp.feed("token").status is FeedStatus.CONTINUE  # ignored
    assert exp.feed(None).status is FeedStatus.CONTINUE  # not JSON: ignored too
    assert exp.feed("completed").status is FeedStatus.CONTINUE
    assert exp.waiting_for == "final" and exp.current_timeout_s == 3.0
    assert exp.feed("final").status is FeedStatus.DONE and exp.done


@pytest.mark.parametrize(
    ("events", "expected", "got"),
    [
        (["started", "final"], "completed", "final"),  # end before everything expected arrived
        (["completed"], "started", "completed"),  # out of order
        (["started", "error"], "completed", "error"),  # a fail event
    ],
)
def test_wrong_events_are_unexpected_with_what_was_awaited(events: list[str], expected: str, got: str) -> None:
    exp = expectation()
    results = [exp.feed(e) for e in events]
    assert results[-1].status is FeedStatus.UNEXPECTED
    assert (results[-1].expected, results[-1].got) == (expected, got)


def test_other_events_can_be_made_failures() -> None:
    result = expectation("fail").feed(None)
    assert result.status is FeedStatus.UNEXPECTED and result.got == EventExpectation.UNTYPED


def test_end_event_may_be_the_last_expected_one() -> None:
    exp = EventExpectation([("a", 1.0), ("done", 1.0)], "done", 1.0)
    assert exp.feed("a").status is FeedStatus.CONTINUE
    assert exp.feed("done").status is FeedStatus.DONE


def test_capping_keeps_nonce_markers_past_the_cap() -> None:
    nonce = "nonce-" + "a" * 32
    text = "x" * 100 + nonce
    capped = cap_keeping_markers(text, 20)
    assert len(capped) < len(text) and nonce in capped
    assert cap_keeping_markers("short", 20) == "short"


def rec(i: int, outcome: SessionOutcome, close: int | None = 1000) -> SessionRecord:
    return SessionRecord(
        f"s{i}", start_offset_s=i * 0.1, outcome=outcome, connect_s=0.01, total_s=0.05, close_code=close
    )


def test_aggregation_counts_each_outcome_and_builds_a_histogram_and_timeline() -> None:
    records = (
        [rec(i, SessionOutcome.ok()) for i in range(90)]
        + [rec(90 + i, outcome_for_close(1011), 1011) for i in range(4)]
        + [rec(94 + i, outcome_for_close(None), None) for i in range(3)]
        + [rec(97 + i, SessionOutcome.handshake_rejected(403), None) for i in range(3)]
    )
    agg = aggregate_sessions(records)
    assert (agg.sessions, agg.connected, agg.ok, agg.crashes, agg.failures) == (100, 97, 90, 7, 10)
    assert agg.outcome_counts["closed_1011"] == 4 and agg.outcome_counts["abnormal_1006"] == 3
    assert agg.close_codes == {"1000": 90, "1011": 4, "none": 3}  # rejected handshakes have no close
    assert agg.crash_rate.k == 7 and agg.crash_rate.n == 97
    assert agg.timeline[0] == (0.0, "ok") and len(agg.timeline) == 100
    assert agg.latency_s["total"]["n"] == 90  # latency of completed sessions only
    json.dumps(agg.to_dict())


def test_aggregation_of_records_read_back_from_json_is_the_same() -> None:
    """Read back, an ok outcome is its own instance (not the one every live ok session shares): still ok.
    Labels are by count, ties in first-seen order; latency is of completed sessions only."""
    records = (
        [rec(0, SessionOutcome.timeout("chat:final_response"), None)]
        + [rec(1 + i, SessionOutcome.ok()) for i in range(5)]
        + [rec(6, outcome_for_close(4000), 4000), rec(7, SessionOutcome.connect_error("refused"), None)]
        + [rec(8, SessionOutcome.timeout("chat:agent_started"), None)]
    )
    read_back = [SessionRecord.from_dict(json.loads(json.dumps(r.to_dict()))) for r in records]
    assert read_back[1].outcome is not SessionOutcome.ok()
    live, again = aggregate_sessions(records), aggregate_sessions(read_back)
    assert again.to_dict() == live.to_dict()
    assert (again.ok, again.failures, again.connected) == (5, 4, 8)
    assert list(again.outcome_labels) == [
        "ok",
        "timeout(chat:final_response)",
        "closed_other(4000)",
        "connect_error(refused)",
        "timeout(chat:agent_started)",
    ]
    assert again.close_codes == {"1000": 5, "4000": 1, "none": 2}
    assert again.latency_s["total"]["n"] == 5


def test_zero_failures_in_500_passes_with_the_bound_in_words() -> None:
    crash, complete = session_claims(
        aggregate_sessions([rec(i, SessionOutcome.ok()) for i in range(500)]), tolerated_rate=0.01
    )
    assert crash.status is Status.PASS and complete.status is Status.PASS
    assert crash.statistic == "0 of 500 sessions closed with 1011/1006 (95% upper bound 0.60%, tolerated 1.00%)"


def test_the_crash_rate_says_how_many_sessions_it_leaves_out() -> None:
    # Found against jupyter_server: "0 of 58" for a soak of 60 read as a miscount; 2 had timed out closing.
    records = [rec(i, SessionOutcome.ok()) for i in range(58)] + [
        rec(58 + i, SessionOutcome.timeout("x")) for i in range(2)
    ]
    crash, _ = session_claims(aggregate_sessions(records), tolerated_rate=0.05)
    assert crash.statistic.startswith("0 of 58 sessions closed with 1011/1006")
    assert crash.statistic.endswith(
        "; 2 of 60 sessions not seen to their end are not counted here (sessions_complete counts them)"
    )


def test_twenty_clean_sessions_at_a_tolerance_of_01_percent_are_inconclusive() -> None:
    crash, _ = session_claims(
        aggregate_sessions([rec(i, SessionOutcome.ok()) for i in range(20)]), tolerated_rate=0.001
    )
    assert crash.status is Status.INCONCLUSIVE
    assert "2995 sessions needed" in crash.statistic


def test_clearly_too_many_crashes_fail_and_name_the_count() -> None:
    records = [rec(i, SessionOutcome.ok()) for i in range(380)] + [
        rec(380 + i, outcome_for_close(1011), 1011) for i in range(20)
    ]
    crash, complete = session_claims(aggregate_sessions(records), tolerated_rate=0.01)
    assert crash.status is Status.FAIL and complete.status is Status.FAIL
    assert crash.statistic.startswith("20 of 400 sessions closed with 1011/1006 (5.00%")
    assert crash.details["crashes"] == 20


def test_timeouts_fail_completion_but_not_the_crash_claim() -> None:
    records = [rec(i, SessionOutcome.ok()) for i in range(400)] + [
        rec(400 + i, SessionOutcome.timeout("chat:final"), None) for i in range(40)
    ]
    crash, complete = session_claims(aggregate_sessions(records), tolerated_rate=0.01)
    assert crash.status is Status.PASS
    assert complete.status is Status.FAIL


def test_no_sessions_is_inconclusive_never_pass() -> None:
    crash, complete = session_claims(aggregate_sessions([]), tolerated_rate=0.01, note="user setup failed")
    assert crash.status is Status.INCONCLUSIVE and complete.status is Status.INCONCLUSIVE
    assert "user setup failed" in crash.statistic


def test_records_round_trip_through_json() -> None:
    original = SessionRecord(
        "s1",
        0.5,
        SessionOutcome.unexpected_event("a", "b"),
        user="u",
        step="chat",
        event_types=("b",),
        event_offsets_s=(0.1,),
        close_code=1000,
        payloads=("{}",),
    )
    assert SessionRecord.from_dict(json.loads(json.dumps(original.to_dict()))) == original


def test_summaries_use_nearest_rank_percentiles() -> None:
    summary = summarize_samples([float(i) for i in range(1, 101)] + [None])
    assert (summary["n"], summary["p50"], summary["p95"], summary["max"]) == (100, 50.0, 95.0, 100.0)
    assert summarize_samples([]) == {"n": 0}


def test_a_close_our_client_started_is_not_a_server_crash() -> None:
    from websockets.exceptions import ConnectionClosedError
    from websockets.frames import Close

    from stability_lib.probes.ws_errors import outcome_for_connection_closed

    too_big = ConnectionClosedError(None, Close(1009, "message too big"), None)  # we sent 1009, no reply
    assert outcome_for_connection_closed(too_big).kind is OutcomeKind.CLOSED_OTHER
    assert outcome_for_connection_closed(too_big).close_code == 1009
    dropped = ConnectionClosedError(None, None, None)  # nothing sent, nothing received: the server dropped us
    assert outcome_for_connection_closed(dropped).kind is OutcomeKind.ABNORMAL_1006
    server_1011 = ConnectionClosedError(Close(1011, "boom"), Close(1011, "boom"), True)
    assert outcome_for_connection_closed(server_1011).kind is OutcomeKind.CLOSED_1011


def test_sessions_that_never_ended_do_not_count_as_crash_free() -> None:
    records = [SessionRecord(f"s{i}", 0.0, SessionOutcome.timeout("chat:final")) for i in range(500)]
    aggregate = aggregate_sessions(records)
    assert aggregate.observed == 0
    crash, complete = session_claims(aggregate, tolerated_rate=0.01)
    assert crash.status is Status.INCONCLUSIVE and complete.status is Status.FAIL


def test_a_nonce_cut_in_half_by_the_cap_is_still_listed() -> None:
    from stability_lib.probes.sessions import cap_keeping_markers

    nonce = "nonce-" + "a" * 32
    kept = cap_keeping_markers("x" * 90 + nonce + "y" * 50, 100)
    assert nonce in kept


def test_a_completed_exchange_is_ok_only_after_a_clean_close() -> None:
    from stability_lib.probes.sessions import outcome_after_close

    ok = SessionOutcome.ok()
    assert outcome_after_close(ok, 1000, close_timed_out=False).is_ok
    assert outcome_after_close(ok, 1001, close_timed_out=False).is_ok
    unanswered = outcome_after_close(ok, None, close_timed_out=True)
    assert unanswered.kind is OutcomeKind.CLOSE_TIMEOUT and unanswered.label == "close_timeout"
    assert not unanswered.is_ok and not unanswered.is_crash and unanswered.connected
    assert outcome_after_close(ok, None, close_timed_out=False).kind is OutcomeKind.ABNORMAL_1006
    assert outcome_after_close(ok, 1011, close_timed_out=False).kind is OutcomeKind.CLOSED_1011
    # The first thing that went wrong stays the outcome.
    timeout = SessionOutcome.timeout("chat:final")
    assert outcome_after_close(timeout, None, close_timed_out=True) == timeout


def test_unanswered_closes_fail_completion_and_are_no_evidence_against_crashes() -> None:
    records = [SessionRecord(f"s{i}", 0.0, SessionOutcome.close_timeout()) for i in range(400)]
    agg = aggregate_sessions(records)
    assert (agg.failures, agg.crashes, agg.observed, agg.outcome_counts["close_timeout"]) == (400, 0, 0, 400)
    crash, complete = session_claims(agg, tolerated_rate=0.01)
    assert complete.status is Status.FAIL
    assert crash.status is Status.INCONCLUSIVE  # 400 "ok" sessions would have been a PASS
    restored = SessionRecord.from_dict(json.loads(json.dumps(records[0].to_dict())))
    assert restored.outcome.kind is OutcomeKind.CLOSE_TIMEOUT


def test_a_target_that_stops_answering_is_down_from_its_first_refusal_after_the_last_success() -> None:
    from stability_lib.probes.sessions import down_since

    def rec(offset: float, outcome: SessionOutcome) -> SessionRecord:
        return SessionRecord(f"s{offset}", offset, outcome)

    refused = SessionOutcome.connect_error("refused")
    ok = SessionOutcome.ok()
    dies = [rec(0, ok), rec(1, refused), rec(2, ok), rec(3, refused), rec(4, refused), rec(5, refused)]
    down = down_since(dies)
    assert down is not None and down.offset_s == 3 and down.refused == 3
    assert down_since(dies[:5]) is None  # two refusals after the last success: not yet "down"
    assert down_since([rec(0, ok), rec(1, refused), rec(2, ok)]) is None  # one refusal among successes
    assert down_since([rec(0, refused)]) is not None  # never up at all
    assert down_since([rec(0, ok), rec(1, SessionOutcome.timeout("x:y"))]) is None


def test_teardown_claim_fails_naming_the_step_and_ignores_skipped_steps() -> None:
    from stability_lib.probes.teardown import TeardownRecord, teardown_claims

    ok = TeardownRecord("golden_run", "alice", 0, "close_session", True)
    skipped = TeardownRecord("golden_run", "bob", 1, "close_session", True, True, "nothing to undo")
    failed = TeardownRecord("soak_session", "bob", 7, "close_session", False, error="status 500, expected [200]")
    assert teardown_claims([ok], configured=False, section="golden_path") == []
    (passed,) = teardown_claims([ok, skipped], configured=True, section="golden_path")
    assert passed.status is Status.PASS and passed.id == "golden_path.teardown.steps_succeeded"
    (fails,) = teardown_claims([ok, skipped, failed], configured=True, section="websocket")
    assert fails.status is Status.FAIL
    assert "soak_session 7 of bob: close_session: status 500" in fails.statistic
    (nothing,) = teardown_claims([skipped], configured=True, section="golden_path")
    assert nothing.status is Status.INCONCLUSIVE
