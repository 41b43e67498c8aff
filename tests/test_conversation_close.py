"""A conversation can expect the server to close the connection with a given code (``expect: {close: 4401}``).

The pure machine and the params checks first (no sockets); then both drivers against a real
third-party server: strawberry-graphql over graphql-transport-ws closes a socket that subscribes
before ``connection_init`` with 4401 "Unauthorized" (strawberry's ``handle_subscribe``), and a
conversation that expects it passes, a soak of such sessions counts them complete and crash-free,
and one that expects 4403 fails naming what it expected and what came.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close as CloseFrame

from stability_lib import ParamsError, load_params
from stability_lib.core.models import Status
from stability_lib.probes.conversation import Conversation, Disposition, Frame
from stability_lib.probes.conversation import ConversationOutcomeKind as K
from stability_lib.probes.scenario import AuthConfig, ScenarioConfig, WsStep
from stability_lib.probes.sessions import OutcomeKind, SessionRecord, aggregate_sessions, outcome_after_close
from stability_lib.probes.ws_session import outcome_on_peer_close, run_ws_exchange

SUBSCRIBE = {
    "id": "1",
    "type": "subscribe",
    "payload": {"query": 'subscription {{ ticks(sessionId: "none", count: 1) {{ seq }} }}'},  # {{: a literal brace
}


def close_step(close: Any = 4401, **over: Any) -> dict[str, Any]:
    """A graphql-transport-ws client that subscribes without connection_init and expects the close."""
    return {
        "kind": "ws",
        "name": "unauthenticated",
        "path": "/graphql",
        "subprotocols": ["graphql-transport-ws"],
        "conversation": [{"send": SUBSCRIBE}, {"expect": {"close": close, "timeout_s": 5}}],
        **over,
    }


def started(raw: dict[str, Any]) -> Conversation:
    conv = Conversation(WsStep.model_validate(raw), {})
    conv.start(0.0, subprotocol="graphql-transport-ws")
    return conv


# -- the pure machine ------------------------------------------------------------------------------


@pytest.mark.parametrize(("close", "code"), [(4401, 4401), ([4400, 4401], 4400), ([4400, 4401], 4401)])
def test_an_accepted_close_code_ends_the_conversation_ok_with_the_close_in_its_transcript(
    close: Any, code: int
) -> None:
    conv = started(close_step(close))
    assert conv.outcome is None  # the subscribe was sent; now the close is awaited
    assert conv.closed(code, 0.2) == []  # nothing to send on a closed connection
    assert conv.outcome is not None and conv.outcome.kind is K.OK
    (record,) = conv.records
    assert (record.kind, record.label, record.disposition) == ("close", f"close {code}", Disposition.MATCHED)
    assert record.stream == "reply" and record.item == 0 and record.at_s == pytest.approx(0.2)
    assert conv.counts() == {"matched": 1}


@pytest.mark.parametrize(("code", "got"), [(1000, "close 1000"), (4403, "close 4403"), (None, "no close frame (1006)")])
def test_another_close_code_or_no_close_frame_fails_naming_what_was_expected_and_what_came(
    code: int | None, got: str
) -> None:
    conv = started(close_step(4401))
    conv.closed(code, 0.2)
    outcome = conv.outcome
    assert outcome is not None and outcome.kind is K.CLOSED and not outcome.ok
    assert outcome.label == f"closed(expected=close 4401, got={got})"
    assert (outcome.expected, outcome.got, outcome.close_code) == ("close 4401", got, code)
    assert conv.records[-1].disposition is Disposition.FAILED


def test_no_close_within_the_items_timeout_is_a_timeout_naming_the_close() -> None:
    conv = started(close_step([4400, 4401]))
    assert conv.next_deadline == 5.0  # the item's timeout_s
    assert conv.tick(4.9) == [] and conv.outcome is None
    conv.tick(5.0)
    assert conv.outcome is not None and conv.outcome.kind is K.TIMEOUT
    assert conv.outcome.label == "timeout(unauthenticated:reply:close 4400|4401)"


def test_the_groups_and_the_steps_timeouts_bound_the_wait_for_the_close_too() -> None:
    group = close_step(conversation=[{"send": SUBSCRIBE}, {"expect": {"streams": [
        {"name": "bye", "ordered": [{"close": 4401}]}], "timeout_s": 3}}])  # fmt: skip
    assert started(group).next_deadline == 3.0
    assert (
        started(close_step(conversation=[{"send": SUBSCRIBE}, {"expect": {"close": 4401}}], timeout_s=7)).next_deadline
        == 7.0
    )


def test_a_message_while_the_close_is_awaited_follows_the_message_rules() -> None:
    noise = Frame("text", '{"type": "ping"}')
    ignored = started(close_step())  # unmatched: ignore (the default); an empty close item matches no message
    ignored.receive(noise, 0.1)
    assert ignored.outcome is None and ignored.records[-1].disposition is Disposition.UNSOLICITED
    ignored.closed(4401, 0.2)
    assert ignored.outcome is not None and ignored.outcome.ok

    strict = started(close_step(unmatched="fail"))
    strict.receive(noise, 0.1)
    assert strict.outcome is not None and strict.outcome.kind is K.UNEXPECTED_EVENT
    assert (strict.outcome.expected, strict.outcome.got) == ("unauthenticated:reply:close 4401", "ping")

    rule = started(close_step(unmatched="fail", ignore=[{"match": {"type": "ping"}}]))
    rule.receive(noise, 0.1)
    assert rule.outcome is None and rule.records[-1].disposition is Disposition.IGNORED

    failing = started(close_step(fail_on=[{"name": "graphql_error", "match": {"type": "error"}}]))
    failing.receive(Frame("text", '{"type": "error", "id": "1"}'), 0.1)
    assert failing.outcome is not None and failing.outcome.label == "failed_by_message(graphql_error)"


def test_a_close_after_a_message_in_an_ordered_list_needs_the_message_first() -> None:
    raw = close_step(
        conversation=[{"send": SUBSCRIBE}, {"expect": {"ordered": [{"match": {"type": "error"}}, {"close": 4400}]}}]
    )
    conv = started(raw)
    conv.receive(Frame("text", '{"type": "error", "id": "1"}'), 0.1)
    conv.closed(4400, 0.2)
    assert conv.outcome is not None and conv.outcome.ok
    assert [r.label for r in conv.records] == ["error", "close 4400"]
    early = started(raw)
    early.closed(4400, 0.1)  # the error message never came: a plain early close, as before
    assert early.outcome is not None and early.outcome.kind is K.CLOSED and early.outcome.expected is None


# -- the params checks -------------------------------------------------------------------------------

PARAMS = """
title: t
target:
  base_url: http://127.0.0.1:9
sections:
  health:
    samples: 2
scenario:
  auth: {{mode: static, header_name: Authorization, header_format: "Bearer {{token}}", ws_token_via: header}}
  users: {{count: 1, credentials: [{{name: alice, token: "${{TOK}}"}}]}}
  golden_path:
    steps:
      - kind: ws
        name: sub
        path: /graphql
        conversation:
{conversation}
"""


def load_conversation(tmp_path: Path, *items: str, extra: str = "") -> Any:
    path = tmp_path / "p.yaml"
    lines = "".join(f"          - {item}\n" for item in items)
    path.write_text(PARAMS.format(conversation=lines.rstrip("\n")) + extra)
    params, _ = load_params(path, env={"TOK": "t0k"})
    return params


def test_a_close_item_loads_with_a_code_or_a_list_of_codes(tmp_path: Path) -> None:
    for expect in (
        "{close: 4401}",
        "{close: [4400, 4401], timeout_s: 3}",
        "{ordered: [{match: {type: error}}, {close: 1000}]}",
    ):
        params = load_conversation(tmp_path, "send: {type: subscribe}", f"expect: {expect}")
        assert params.scenario.golden_path.steps[0].conversation[-1].expect is not None


REFUSED_EXPECTS = {  # expect: ... after one send -> the message
    "{ordered: [{close: 4401}, {match: {type: y}}]}": "close: must be the last item",
    "{unordered: [{close: 4401}, {match: {type: y}}]}": "a close ends every stream",
    "{close: 4401, match: {type: y}}": "close: cannot be combined with match",
    "{close: 4401, check: {a: 1}}": "close: cannot be combined with check",
    "{close: 4401, capture: {v: a}}": "close: cannot be combined with capture",
    "{close: 4401, count: 2}": "close: cannot be combined with count",
    "{close: 4401, frame: binary}": "close: cannot be combined with frame",
    "{close: 1011}": "close: 1011 is what this tool counts as a server crash",
    "{close: [4401, 1011]}": "close: 1011 is what this tool counts as a server crash",
    "{close: 1006}": "close: 1006 is never sent in a close frame",
    "{close: 1005}": "close: 1005 is never sent in a close frame",
    "{close: 1015}": "close: 1015 is never sent in a close frame",
    "{close: 999}": "close: 999 is not a close code a server can send",
    "{close: 5000}": "close: 5000 is not a close code a server can send",
    "{close: 2000}": "close: 2000 is not a close code a server can send",
    "{close: []}": "close: give a code or a list of codes",
}


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (("expect: {close: 4401}", "send: {type: x}", "expect: {match: {type: y}}"), "close: must be the last item"),
        *((("send: {type: x}", f"expect: {expect}"), message) for expect, message in REFUSED_EXPECTS.items()),
    ],
)
def test_a_close_item_that_cannot_mean_what_it_says_is_refused_in_one_line(
    tmp_path: Path, items: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ParamsError) as err:
        load_conversation(tmp_path, *items)
    text = str(err.value)
    assert "\n" not in text and message in text, text


def test_final_send_after_an_expected_close_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ParamsError) as err:
        load_conversation(
            tmp_path, "send: {type: x}", "expect: {close: 4401}", extra="        final_send: [{type: bye}]\n"
        )
    assert "\n" not in str(err.value) and "final_send cannot be sent after the server closed" in str(err.value)


# -- what a driver makes of the close (pure: a ConnectionClosed as websockets raises it) --------------------


def peer_closed(conv: Conversation, code: int | None) -> ConnectionClosed:
    return ConnectionClosed(CloseFrame(code, "") if code is not None else None, None)


def session(code: int | None, expected: Any = 4401) -> SessionRecord:
    conv = started(close_step(expected))
    outcome, closed_at_s = outcome_on_peer_close(conv, peer_closed(conv, code))
    assert (closed_at_s is not None) == outcome.is_ok
    outcome = outcome_after_close(outcome, code, close_timed_out=False)  # as the drivers judge the close
    return SessionRecord("s", 0.0, outcome, close_code=code)


def test_an_expected_close_is_a_complete_session_and_no_crash_while_1011_or_a_drop_still_is() -> None:
    assert session(4401).outcome.is_ok
    wrong = session(4403).outcome
    assert wrong.kind is OutcomeKind.UNEXPECTED_EVENT
    assert wrong.label == "unexpected_event(expected=close 4401, got=close 4403)"
    assert session(1011).outcome.kind is OutcomeKind.CLOSED_1011  # a crash whatever was expected
    assert session(None).outcome.kind is OutcomeKind.ABNORMAL_1006
    aggregate = aggregate_sessions([session(4401) for _ in range(5)] + [session(1011), session(4403)])
    assert (aggregate.ok, aggregate.crashes, aggregate.failures, aggregate.observed) == (5, 1, 2, 6)
    assert aggregate.close_codes == {"1011": 1, "4401": 5, "4403": 1}


# -- both drivers against a real third-party server ------------------------------------------------------


@pytest.fixture(scope="module")
def graphql() -> Iterator[Any]:
    pytest.importorskip("strawberry", reason="strawberry-graphql is not installed (test extra of issue 13)")
    pytest.importorskip("jsonrpcserver", reason="jsonrpcserver is not installed (test extra of issue 13)")
    from services.test_services_smoke import ALICE, graphql_service

    with graphql_service() as service:
        yield service, ALICE


def exchange(graphql: Any, close: Any) -> SessionRecord:
    service, token = graphql
    step = WsStep.model_validate(close_step(close, headers={"Authorization": f"Bearer {token}"}))
    result = asyncio.run(
        run_ws_exchange(
            url=f"{service.ws_base}/graphql",
            step=step,
            context={},
            auth=AuthConfig(),
            token=None,
            session_id="s1",
            run_start_ns=time.monotonic_ns(),
            secrets=(token,),
        )
    )
    return result.record


@pytest.mark.slow
def test_strawberry_closes_an_unauthenticated_subscribe_with_4401_and_the_session_is_ok(graphql: Any) -> None:
    record = exchange(graphql, 4401)
    assert record.outcome.is_ok, record.outcome.label
    assert (record.close_code, record.close_reason) == (4401, "Unauthorized")
    assert record.event_types == ("close 4401",) and record.frame_counts == {"matched": 1}
    assert record.total_s is not None  # the exchange completed when the close came


@pytest.mark.slow
def test_expecting_4403_from_strawberry_fails_naming_expected_and_got(graphql: Any) -> None:
    record = exchange(graphql, 4403)
    assert record.outcome.kind is OutcomeKind.UNEXPECTED_EVENT
    assert record.outcome.label == "unexpected_event(expected=close 4403, got=close 4401)"
    assert record.close_code == 4401 and record.total_s is None


def scenario(graphql: Any, close: Any, sessions: int) -> ScenarioConfig:
    service, token = graphql
    del service
    return ScenarioConfig.model_validate(
        {
            "auth": {"mode": "static", "header_name": "Authorization", "header_format": "Bearer {token}"},
            "users": {"count": 1, "credentials": [{"name": "alice", "token": token}]},
            "golden_path": {"steps": [close_step(close)]},
            "soak": {"sessions": sessions, "concurrency": 2, "duration_s": 30},
            "tolerated_failure_rate": 0.3,  # 0 of 12: the 95% upper bound is 22%
        }
    )


@pytest.mark.slow
def test_a_soak_counts_sessions_closed_as_expected_complete_and_crash_free(graphql: Any) -> None:
    from stability_lib.probes.soak import run_soak

    service, _ = graphql
    passing = asyncio.run(run_soak(service.url, scenario(graphql, 4401, 12)))
    crash, complete = passing.claims()
    assert [r.outcome.label for r in passing.records] == ["ok"] * 12
    assert (crash.status, complete.status) == (Status.PASS, Status.PASS), (crash.statistic, complete.statistic)
    assert passing.aggregate.close_codes == {"4401": 12}

    failing = asyncio.run(run_soak(service.url, scenario(graphql, 4403, 12)))
    crash, complete = failing.claims()
    assert complete.status is Status.FAIL
    assert complete.details["outcome_labels"] == {"unexpected_event(expected=close 4403, got=close 4401)": 12}
    assert crash.status is Status.INCONCLUSIVE  # no session was seen to its end: nothing says "no crash"


@pytest.mark.slow
def test_the_gevent_driver_judges_the_expected_close_as_the_asyncio_one(graphql: Any) -> None:
    pytest.importorskip("gevent")
    from stability_lib.probes.http_steps import PreparedUser, UserSetup
    from stability_lib.scale.gevent_steps import run_ws_session

    service, token = graphql
    user = PreparedUser(UserSetup(0, "alice", True), token=token)
    records = {
        close: run_ws_session(
            base_url=service.url,
            ws_base_url=None,
            step=WsStep.model_validate(close_step(close)),
            context={},
            scenario=scenario(graphql, close, 1),
            user=user,
            session_id="g1",
            run_id="r",
            run_start_ns=time.monotonic_ns(),
            golden=True,
        )
        for close in (4401, 4403)
    }
    assert records[4401].outcome.is_ok and records[4401].close_code == 4401, records[4401].outcome.label
    assert records[4401].event_types == ("close 4401",) and records[4401].total_s is not None
    assert records[4403].outcome.label == "unexpected_event(expected=close 4403, got=close 4401)"
