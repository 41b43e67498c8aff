"""The conversation machine, driven by frames recorded from two real third-party services and by
synthetic exchanges. Pure: no sockets, the clock is a number passed in."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stability_lib.probes.conversation import (
    Close,
    Conversation,
    Disposition,
    Frame,
    Send,
    make_ids,
)
from stability_lib.probes.conversation import (
    ConversationOutcomeKind as K,
)
from stability_lib.probes.scenario import WsStep

TRANSCRIPTS = Path(__file__).parent / "fixtures" / "transcripts"
CONTEXT = {"run_id": "run1", "nonce": "nonce-x", "username": "alice", "session_id": "sess-9"}

GRAPHQL_STEP: dict[str, Any] = {
    "kind": "ws",
    "name": "echo_and_ticks",
    "path": "/graphql",
    "subprotocols": ["graphql-transport-ws"],
    "ids": {"open_op": "string", "echo_op": "string", "ticks_op": "string"},
    "conversation": [
        {"send": {"type": "connection_init", "payload": {}}},
        {"expect": {"match": {"type": "connection_ack"}, "timeout_s": 5}},
        {
            "send": {
                "type": "subscribe",
                "id": "{open_op}",
                "payload": {"query": 'mutation {{ openSession(label: "probe-{run_id} {nonce}") {{ id }} }}'},
            }
        },
        {
            "expect": {
                "correlate": [{"id": "{open_op}"}],
                "ordered": [
                    {
                        "match": {"type": "next"},
                        "check": {"data": {"exists": False}, "payload.data.openSession.id": {"not_empty": True}},
                        "capture": {"gql_session": "payload.data.openSession.id"},
                    },
                    {"match": {"type": "complete"}},
                ],
            }
        },
        {
            "send": {
                "type": "subscribe",
                "id": "{echo_op}",
                "payload": {
                    "query": "subscription($s: ID!, $t: String!) {{ echo(sessionId: $s, text: $t, count: 3) {{ seq text sessionId }} }}",
                    "variables": {"s": "{gql_session}", "t": "{nonce}"},
                },
            }
        },
        {
            "send": {
                "type": "subscribe",
                "id": "{ticks_op}",
                "payload": {
                    "query": "subscription($s: ID!) {{ ticks(sessionId: $s, count: 3) {{ seq sessionId }} }}",
                    "variables": {"s": "{gql_session}"},
                },
            }
        },
        {
            "expect": {
                "timeout_s": 10,
                "streams": [
                    {
                        "name": "echo",
                        "correlate": [{"id": "{echo_op}"}],
                        "ordered": [
                            *[
                                {
                                    "match": {"type": "next"},
                                    "check": {
                                        "payload.data.echo.seq": n,
                                        "payload.data.echo.text": "probe-{run_id} {nonce}: {nonce}",
                                        "payload.data.echo.sessionId": "{gql_session}",
                                    },
                                }
                                for n in (1, 2, 3)
                            ],
                            {"match": {"type": "complete"}},
                        ],
                    },
                    {
                        "name": "ticks",
                        "correlate": [{"id": "{ticks_op}"}],
                        "ordered": [
                            {
                                "match": {"type": "next"},
                                "count": 3,
                                "check": {
                                    "payload.data.ticks.sessionId": "{gql_session}",
                                    "payload.data.ticks.seq": {"one_of": [1, 2, 3]},
                                },
                            },
                            {"match": {"type": "complete"}},
                        ],
                    },
                ],
            }
        },
    ],
    "ignore": [{"match": {"type": {"one_of": ["ping", "pong"]}}}],
    "unmatched": "fail",
    "fail_on": [
        {"name": "graphql_error", "match": {"type": "next", "payload.errors": {"exists": True}}},
        {"name": "protocol_error", "match": {"type": "error"}},
    ],
    "timeout_s": 30,
}
GRAPHQL_IDS = {"open_op": "op-open", "echo_op": "op-echo", "ticks_op": "op-ticks"}

RPC_IGNORE = [
    {"match": {"method": "status", "params.status": {"one_of": ["connected", "ready", "idle"]}}},
    {"match": {"method": "progress"}},
]
RPC_FAIL_ON = [
    {"name": "backend_dead", "match": {"method": "status", "params.status": "dead"}},
    {"name": "backend_restarting", "match": {"method": "status", "params.status": "restarting"}},
    {"name": "rpc_error", "correlated": True, "match": {"error": {"exists": True}}},
]
RPC_STEP: dict[str, Any] = {
    "kind": "ws",
    "name": "rpc",
    "path": "/rpc",
    "label_paths": ["method"],
    "ids": {"open_id": "string", "echo_id": "string", "add_id": "string"},
    "conversation": [
        {
            "send": {
                "jsonrpc": "2.0",
                "id": "{open_id}",
                "method": "session.open",
                "params": {"label": "probe-{run_id} {nonce}"},
            }
        },
        {
            "expect": {
                "correlate": [{"id": "{open_id}"}],
                "match": {"jsonrpc": "2.0"},
                "check": {"result.label": "probe-{run_id} {nonce}", "result.session_id": {"not_empty": True}},
                "capture": {"rpc_session": "result.session_id"},
            }
        },
        {
            "send": {
                "jsonrpc": "2.0",
                "id": "{echo_id}",
                "method": "echo",
                "params": {"session_id": "{rpc_session}", "text": "{nonce}"},
            }
        },
        {"send": {"jsonrpc": "2.0", "id": "{add_id}", "method": "add", "params": {"a": 40, "b": 2}}},
        {
            "expect": {
                "timeout_s": 10,
                "streams": [
                    {
                        "name": "echo",
                        "correlate": [{"id": "{echo_id}"}, {"params.request_id": "{echo_id}"}],
                        "ordered": [
                            {"match": {"method": "progress"}, "check": {"params.stage": "working"}},
                            {
                                "match": {"jsonrpc": "2.0", "result": {"exists": True}},
                                "check": {
                                    "result.text": "probe-{run_id} {nonce}: {nonce}",
                                    "result.session_id": "{rpc_session}",
                                },
                            },
                        ],
                    },
                    {
                        "name": "add",
                        "correlate": [{"id": "{add_id}"}],
                        "ordered": [{"match": {"jsonrpc": "2.0"}, "check": {"result.sum": 42}}],
                    },
                ],
            }
        },
    ],
    "ignore": RPC_IGNORE,
    "unmatched": "fail",
    "fail_on": RPC_FAIL_ON,
    "timeout_s": 30,
}
RPC_IDS = {"open_id": "open-1", "echo_id": "echo-1", "add_id": "add-1"}


def step(raw: dict[str, Any], **over: Any) -> WsStep:
    return WsStep.model_validate({**raw, **over})


def sent_messages(actions: list[Any]) -> list[Any]:
    return [
        json.loads(a.frame.data) if a.frame.kind == "text" else a.frame.data for a in actions if isinstance(a, Send)
    ]


def replay(conv: Conversation, name: str, subprotocol: str | None = None) -> list[Any]:
    """Drive the machine with a recorded transcript as a driver would; returns what it sent."""
    lines = [json.loads(line) for line in (TRANSCRIPTS / name).read_text().splitlines() if line.strip()]
    sent = sent_messages(conv.start(0.0, subprotocol=subprotocol))
    for line in lines:
        if line["dir"] != "in" or conv.done:
            continue
        deadline = conv.next_deadline
        if deadline is not None and deadline <= line["t"]:
            sent += sent_messages(conv.tick(line["t"]))
            continue
        sent += sent_messages(conv.receive(Frame("text", json.dumps(line["msg"])), line["t"]))
    return sent


def recorded_out(name: str) -> list[Any]:
    lines = [json.loads(line) for line in (TRANSCRIPTS / name).read_text().splitlines() if line.strip()]
    return [line["msg"] for line in lines if line["dir"] == "out"]


# -- the recorded real services --------------------------------------------------------------------


def test_graphql_healthy_transcript_is_ok_and_sends_what_the_client_sent() -> None:
    conv = Conversation(step(GRAPHQL_STEP), CONTEXT, ids=GRAPHQL_IDS)
    sent = replay(conv, "graphql_ws.none.jsonl", subprotocol="graphql-transport-ws")
    assert conv.outcome is not None and conv.outcome.kind is K.OK, conv.outcome
    assert sent == recorded_out("graphql_ws.none.jsonl")
    assert conv.captured == {"gql_session": "s1"}
    assert {r.disposition for r in conv.records} == {Disposition.MATCHED}


def test_graphql_changed_content_is_a_content_mismatch_naming_stream_and_path() -> None:
    conv = Conversation(step(GRAPHQL_STEP), CONTEXT, ids=GRAPHQL_IDS)
    replay(conv, "graphql_ws.changed-content.jsonl", subprotocol="graphql-transport-ws")
    assert conv.outcome is not None and conv.outcome.kind is K.CONTENT_MISMATCH
    assert conv.outcome.label == "content_mismatch(echo: payload.data.echo.text)"
    assert conv.outcome.expected == "probe-run1 nonce-x: nonce-x" and conv.outcome.got == ""


def test_graphql_dead_by_message_fails_by_message_at_the_message_not_at_the_timeout() -> None:
    conv = Conversation(step(GRAPHQL_STEP), CONTEXT, ids=GRAPHQL_IDS)
    replay(conv, "graphql_ws.dead-by-message.jsonl", subprotocol="graphql-transport-ws")
    assert conv.outcome is not None and conv.outcome.label == "failed_by_message(graphql_error)"
    failed = [r for r in conv.records if r.disposition is Disposition.FAILED]
    assert len(failed) == 1 and failed[0].at_s < 1.0 and failed[0].rule == "graphql_error"


def test_jsonrpc_healthy_transcript_with_notifications_and_reordered_replies_is_ok() -> None:
    conv = Conversation(step(RPC_STEP), CONTEXT, ids=RPC_IDS)
    sent = replay(conv, "jsonrpc_ws.none.jsonl")
    assert conv.outcome is not None and conv.outcome.kind is K.OK, conv.outcome
    assert sent == recorded_out("jsonrpc_ws.none.jsonl")
    counts = conv.counts()
    assert counts["ignored"] >= 5 and counts["matched"] == 4  # status/progress noise ignored by rule


def test_jsonrpc_changed_content_is_a_content_mismatch() -> None:
    conv = Conversation(step(RPC_STEP), CONTEXT, ids=RPC_IDS)
    replay(conv, "jsonrpc_ws.changed-content.jsonl")
    assert conv.outcome is not None and conv.outcome.label == "content_mismatch(echo: result.text)"


def test_jsonrpc_dead_by_message_fails_by_message_before_the_step_timeout() -> None:
    conv = Conversation(step(RPC_STEP), CONTEXT, ids=RPC_IDS)
    replay(conv, "jsonrpc_ws.dead-by-message.jsonl")
    assert conv.outcome is not None and conv.outcome.label == "failed_by_message(backend_dead)"
    assert conv.records[-1].at_s < 0.1 and conv.records[-1].disposition is Disposition.FAILED


def test_without_fail_on_a_dead_backend_is_only_a_timeout_proving_the_rule_matters() -> None:
    conv = Conversation(step(RPC_STEP, fail_on=[], unmatched="ignore"), CONTEXT, ids=RPC_IDS)
    replay(conv, "jsonrpc_ws.dead-by-message.jsonl")
    assert conv.outcome is None  # the idle heartbeats never end it: only the deadline does
    assert conv.tick(30.0) == [Close(1000)]
    assert conv.outcome is not None and conv.outcome.label == "timeout(rpc:reply:jsonrpc=2.0)"


# -- synthetic exchanges --------------------------------------------------------------------------

TWO_CHANNELS: dict[str, Any] = {
    "kind": "ws",
    "name": "two",
    "path": "/ws",
    "ids": {"a": "string", "b": "string"},
    "conversation": [
        {"send": {"id": "{a}", "op": "x"}},
        {"send": {"id": "{b}", "op": "y"}},
        {
            "expect": {
                "timeout_s": 5,
                "streams": [
                    {
                        "name": "a",
                        "correlate": [{"ref": "{a}"}],
                        "ordered": [
                            {"match": {"type": "data"}, "check": {"value": "A {nonce}"}},
                            {"match": {"type": "done"}},
                        ],
                    },
                    {
                        "name": "b",
                        "correlate": [{"ref": "{b}"}],
                        "ordered": [{"match": {"type": "data"}, "check": {"value": "B"}}, {"match": {"type": "done"}}],
                    },
                ],
            }
        },
    ],
    "unmatched": "ignore",
}
A_FRAMES = [{"ref": "ida", "type": "data", "value": "A nonce-x"}, {"ref": "ida", "type": "done"}]
B_FRAMES = [{"ref": "idb", "type": "data", "value": "B"}, {"ref": "idb", "type": "done"}]
NOISE = [{"type": "status", "status": "busy"}, {"ref": "someone-else", "type": "data", "value": "Z"}]


def run_frames(raw: dict[str, Any], frames: list[Any], ids: dict[str, Any], **over: Any) -> Conversation:
    conv = Conversation(step(raw, **over), CONTEXT, ids=ids)
    conv.start(0.0)
    for at, message in enumerate(frames, start=1):
        data = message if isinstance(message, (bytes, Frame)) else json.dumps(message)
        conv.receive(data if isinstance(data, Frame) else Frame.of(data), at / 100)
    return conv


@settings(max_examples=60, deadline=None)
@given(st.permutations(range(len(A_FRAMES) + len(B_FRAMES) + len(NOISE))))
def test_two_channels_in_any_interleaving_with_unsolicited_noise_are_ok(order: list[int]) -> None:
    pool = [("a", f) for f in A_FRAMES] + [("b", f) for f in B_FRAMES] + [("n", f) for f in NOISE]
    # keep each stream's own order, interleave everything else freely
    streams: dict[str, list[Any]] = {"a": list(A_FRAMES), "b": list(B_FRAMES), "n": list(NOISE)}
    frames = [streams[pool[i][0]].pop(0) for i in order]
    conv = run_frames(TWO_CHANNELS, frames, {"a": "ida", "b": "idb"})
    assert conv.outcome is not None and conv.outcome.kind is K.OK, (frames, conv.outcome)
    counts = conv.counts()
    assert counts["matched"] == 4 and counts.get("unsolicited", 0) + counts.get("after_end", 0) == 2


def test_dropping_a_reply_is_a_timeout_naming_the_stream_and_item() -> None:
    conv = run_frames(TWO_CHANNELS, [A_FRAMES[0], *B_FRAMES, *NOISE], {"a": "ida", "b": "idb"})
    assert conv.outcome is None and conv.next_deadline == 5.0
    assert conv.tick(4.99) == [] and conv.outcome is None
    conv.tick(5.0)
    assert conv.outcome is not None and conv.outcome.label == "timeout(two:a:type=done)"


def test_a_correlated_reply_out_of_order_is_an_unexpected_event() -> None:
    conv = run_frames(TWO_CHANNELS, [A_FRAMES[1]], {"a": "ida", "b": "idb"})
    assert conv.outcome is not None and conv.outcome.label == "unexpected_event(expected=type=data, got=done)"


def test_unmatched_fail_makes_unsolicited_messages_fail() -> None:
    conv = run_frames(TWO_CHANNELS, [NOISE[0]], {"a": "ida", "b": "idb"}, unmatched="fail")
    assert conv.outcome is not None and conv.outcome.kind is K.UNEXPECTED_EVENT
    assert conv.outcome.got == "status"


def test_a_late_reply_after_its_stream_finished_fails_unless_ignored() -> None:
    raw = {
        **TWO_CHANNELS,
        "conversation": [
            *TWO_CHANNELS["conversation"],
            {"send": {"op": "z"}},
            {"expect": {"match": {"type": "final"}}},
        ],
    }
    frames = [*A_FRAMES, *B_FRAMES, A_FRAMES[1]]
    conv = run_frames(raw, frames, {"a": "ida", "b": "idb"})
    assert conv.outcome is not None and conv.outcome.label == "unexpected_event(expected=nothing, got=late reply to a)"
    conv = run_frames(raw, [*frames, {"type": "final"}], {"a": "ida", "b": "idb"}, late_replies="ignore")
    assert conv.outcome is not None and conv.outcome.kind is K.OK


SET_STEP: dict[str, Any] = {
    "kind": "ws",
    "name": "set",
    "path": "/ws",
    "conversation": [
        {"send": {"go": 1}},
        {
            "expect": {
                "unordered": [
                    {"match": {"type": "a"}},
                    {"match": {"type": "b"}},
                    {
                        "match": {"type": "c"},
                        "check": {
                            "n": {
                                "gte": 1,
                            }
                        },
                    },
                ]
            }
        },
    ],
}


@pytest.mark.parametrize("order", [("a", "b", "c"), ("c", "b", "a"), ("b", "c", "a")])
def test_a_set_expectation_accepts_any_order(order: tuple[str, ...]) -> None:
    conv = run_frames(SET_STEP, [{"type": t, "n": 2} for t in order], {})
    assert conv.outcome is not None and conv.outcome.kind is K.OK


# A kernel-style request/reply: the reply and the output answer the same request id on two channels, in no
# fixed order, among other messages of that request (status busy/idle). Found against jupyter_server: with a
# correlation shared by the unordered items, the first item's stream took every correlated message, called
# the other item's reply extra (ignored, or failed) and the session timed out waiting for a message it had.
KERNEL_STEP: dict[str, Any] = {
    "kind": "ws",
    "name": "execute",
    "path": "/ws",
    "ids": {"exec_id": "string"},
    "conversation": [
        {"send": {"header": {"msg_id": "{exec_id}"}, "code": "print('{nonce}')"}},
        {
            "expect": {
                "correlate": [{"parent_header.msg_id": "{exec_id}"}],
                "extra": "ignore",
                "unordered": [
                    {"match": {"msg_type": "execute_reply"}, "check": {"content.status": "ok"}},
                    {"match": {"msg_type": "stream"}, "check": {"content.text": {"contains": "{nonce}"}}},
                ],
            }
        },
    ],
}


def _kernel_message(msg_type: str, **content: Any) -> dict[str, Any]:
    return {"msg_type": msg_type, "parent_header": {"msg_id": "e1"}, "content": content}


@pytest.mark.parametrize("extra", ["ignore", "fail"])
@pytest.mark.parametrize("reply_first", [True, False])
def test_unordered_items_sharing_a_correlation_take_their_replies_in_any_order(extra: str, reply_first: bool) -> None:
    reply, output = _kernel_message("execute_reply", status="ok"), _kernel_message("stream", text="nonce-x\n")
    frames = [reply, output] if reply_first else [output, reply]
    if extra == "ignore":
        frames = [_kernel_message("status", execution_state="busy"), *frames]
    raw = {
        **KERNEL_STEP,
        "conversation": [
            KERNEL_STEP["conversation"][0],
            {"expect": {**KERNEL_STEP["conversation"][1]["expect"], "extra": extra}},
        ],
    }
    conv = run_frames(raw, frames, {"exec_id": "e1"})
    assert conv.outcome is not None and conv.outcome.kind is K.OK, conv.outcome


@pytest.mark.parametrize("idle_first", [True, False])
def test_unordered_items_that_differ_by_their_check_only_take_the_frame_they_meet(idle_first: bool) -> None:
    # Found against jupyter_server: status busy and status idle share a match; listed idle before busy, the busy
    # frame went to the idle item and failed its check (0 of 5), listed the other way round it passed.
    busy = {"match": {"msg_type": "status"}, "check": {"content.execution_state": "busy"}}
    idle = {"match": {"msg_type": "status"}, "check": {"content.execution_state": "idle"}}
    expect = {**KERNEL_STEP["conversation"][1]["expect"], "extra": "fail"}
    expect["unordered"] = [*expect["unordered"], *([idle, busy] if idle_first else [busy, idle])]
    raw = {**KERNEL_STEP, "conversation": [KERNEL_STEP["conversation"][0], {"expect": expect}]}
    frames = [
        _kernel_message("status", execution_state="busy"),
        _kernel_message("stream", text="nonce-x\n"),
        _kernel_message("execute_reply", status="ok"),
        _kernel_message("status", execution_state="idle"),
    ]
    conv = run_frames(raw, frames, {"exec_id": "e1"})
    assert conv.outcome is not None and conv.outcome.kind is K.OK, conv.outcome
    # Still a check that can fail: a second busy where idle was awaited.
    bad = run_frames(raw, [*frames[:3], _kernel_message("status", execution_state="busy")], {"exec_id": "e1"})
    assert bad.outcome is not None and bad.outcome.kind is not K.OK


def test_unordered_items_sharing_a_correlation_still_check_content_and_extras() -> None:
    wrong = run_frames(
        KERNEL_STEP,
        [_kernel_message("stream", text="other"), _kernel_message("execute_reply", status="ok")],
        {"exec_id": "e1"},
    )
    assert wrong.outcome is not None and wrong.outcome.label == "content_mismatch(item1: content.text)"
    raw = {
        **KERNEL_STEP,
        "conversation": [
            KERNEL_STEP["conversation"][0],
            {"expect": {**KERNEL_STEP["conversation"][1]["expect"], "extra": "fail"}},
        ],
    }
    extra = run_frames(raw, [_kernel_message("status", execution_state="busy")], {"exec_id": "e1"})
    assert extra.outcome is not None and extra.outcome.kind is K.UNEXPECTED_EVENT


def test_a_set_expectation_still_checks_content() -> None:
    conv = run_frames(SET_STEP, [{"type": "c", "n": 0}], {})
    assert conv.outcome is not None and conv.outcome.label == "content_mismatch(item2: n)"


def test_an_ordered_sequence_violated_is_an_unexpected_event_and_in_order_is_ok() -> None:
    raw = {
        "kind": "ws",
        "name": "seq",
        "path": "/ws",
        "conversation": [
            {"send": {"go": 1}},
            {"expect": {"ordered": [{"match": {"type": t}} for t in ("one", "two", "three")]}},
        ],
    }
    bad = run_frames(raw, [{"type": "one"}, {"type": "three"}], {})
    assert bad.outcome is not None and bad.outcome.label == "unexpected_event(expected=type=two, got=three)"
    good = run_frames(raw, [{"type": "one"}, {"type": "other"}, {"type": "two"}, {"type": "three"}], {})
    assert good.outcome is not None and good.outcome.kind is K.OK


def test_graphql_transport_ws_handshake_waits_for_the_ack_before_subscribing() -> None:
    raw = {
        "kind": "ws",
        "name": "gql",
        "path": "/graphql",
        "ids": {"op": "string"},
        "conversation": [
            {"send": {"type": "connection_init", "payload": {}}},
            {"expect": {"match": {"type": "connection_ack"}}},
            {"send": {"type": "subscribe", "id": "{op}", "payload": {"query": "{{ hello }}"}}},
            {
                "expect": {
                    "correlate": [{"id": "{op}"}],
                    "ordered": [
                        {"match": {"type": "next"}, "check": {"payload.data.hello": "world"}},
                        {"match": {"type": "complete"}},
                    ],
                }
            },
        ],
        "final_send": [{"type": "complete", "id": "{op}"}],
    }
    conv = Conversation(step(raw), CONTEXT, ids=make_ids(step(raw), "session-1"))
    op = conv._context["op"]
    first = conv.start(0.0)
    assert sent_messages(first) == [{"type": "connection_init", "payload": {}}]  # nothing more before the ack
    assert sent_messages(conv.receive(Frame.of('{"type": "connection_ack"}'), 0.1)) == [
        {"type": "subscribe", "id": op, "payload": {"query": "{ hello }"}}
    ]
    assert (
        conv.receive(Frame.of(json.dumps({"id": op, "type": "next", "payload": {"data": {"hello": "world"}}})), 0.2)
        == []
    )
    last = conv.receive(Frame.of(json.dumps({"id": op, "type": "complete"})), 0.3)
    assert sent_messages(last) == [{"type": "complete", "id": op}] and last[-1] == Close(1000)
    assert conv.outcome is not None and conv.outcome.kind is K.OK


def test_fresh_ids_differ_between_sessions_and_int_ids_count() -> None:
    ws = step({**RPC_STEP, "ids": {"open_id": "int", "echo_id": "string", "add_id": "string"}})
    one, two = make_ids(ws, "s1"), make_ids(ws, "s2")
    assert one["echo_id"] != two["echo_id"] and isinstance(one["open_id"], int)


def test_jsonrpc_int_ids_are_compared_with_json_types() -> None:
    raw = {
        "kind": "ws",
        "name": "rpc",
        "path": "/rpc",
        "ids": {"rid": "int"},
        "conversation": [
            {"send": {"jsonrpc": "2.0", "id": "{rid}", "method": "add", "params": [40, 2]}},
            {"expect": {"correlate": [{"id": "{rid}"}], "match": {"jsonrpc": "2.0"}, "check": {"result": 42}}},
        ],
        "unmatched": "fail",
        "ignore": [{"match": {"method": {"exists": True}}}],
    }
    notes = [{"jsonrpc": "2.0", "method": "tick"}, {"jsonrpc": "2.0", "method": "tick", "params": {"id": 1}}]
    ok = run_frames(raw, [*notes, {"jsonrpc": "2.0", "id": 1, "result": 42}], {"rid": 1})
    assert ok.outcome is not None and ok.outcome.kind is K.OK
    wrong_type = run_frames(raw, [{"jsonrpc": "2.0", "id": "1", "result": 42}], {"rid": 1})
    assert wrong_type.outcome is not None and wrong_type.outcome.kind is K.UNEXPECTED_EVENT


def test_an_rpc_error_reply_correlated_to_us_fails_by_message_but_not_someone_elses() -> None:
    raw = {**RPC_STEP, "conversation": RPC_STEP["conversation"][:2], "ids": {"open_id": "string"}}
    theirs = run_frames(raw, [{"jsonrpc": "2.0", "id": "other", "error": {"code": 1}}], RPC_IDS, unmatched="ignore")
    assert theirs.outcome is None
    ours = run_frames(raw, [{"jsonrpc": "2.0", "id": "open-1", "error": {"code": 1}}], RPC_IDS)
    assert ours.outcome is not None and ours.outcome.label == "failed_by_message(rpc_error)"


BINARY_STEP: dict[str, Any] = {
    "kind": "ws",
    "name": "bin",
    "path": "/ws",
    "conversation": [
        {"send_binary": {"name": "blob", "random": 512}},
        {"expect": {"frame": "binary", "check": {"bytes": {"equals_sent": "blob"}}}},
    ],
}


def test_binary_frames_are_sent_seeded_and_echoed_bytes_are_matched() -> None:
    conv = Conversation(step(BINARY_STEP), CONTEXT, seed="run1/s1")
    (send,) = conv.start(0.0)
    assert isinstance(send, Send) and send.frame.kind == "binary" and len(send.frame.data) == 512
    again = Conversation(step(BINARY_STEP), CONTEXT, seed="run1/s1").start(0.0)
    assert again == [send]  # reproducible for a rerun
    conv.receive(Frame.of(b"not json at all"[:0] + send.frame.data), 0.1)
    assert conv.outcome is not None and conv.outcome.kind is K.OK
    record = conv.records[0]
    assert record.size == 512 and record.sha256 == hashlib.sha256(send.frame.data).hexdigest()


def test_changed_binary_bytes_are_a_content_mismatch_and_text_where_binary_is_due_does_not_match() -> None:
    conv = Conversation(step(BINARY_STEP, unmatched="fail"), CONTEXT, seed="s")
    (send,) = conv.start(0.0)
    assert isinstance(send, Send) and isinstance(send.frame.data, bytes)
    conv.receive(Frame.of(send.frame.data[::-1]), 0.1)
    assert conv.outcome is not None and conv.outcome.label == "content_mismatch(reply: bytes)"
    text = Conversation(step(BINARY_STEP, unmatched="fail"), CONTEXT, seed="s")
    text.start(0.0)
    text.receive(Frame.of('{"type": "x"}'), 0.1)
    assert text.outcome is not None and text.outcome.kind is K.UNEXPECTED_EVENT


def test_a_text_frame_that_is_not_json_is_a_bad_frame() -> None:
    conv = run_frames(SET_STEP, [Frame.of("{not json")], {})
    assert conv.outcome is not None and conv.outcome.label == "bad_frame(not_json)"


def test_too_many_frames_end_the_session() -> None:
    conv = run_frames(SET_STEP, [{"type": "noise"}] * 4, {}, max_frames=3)
    assert conv.outcome is not None and conv.outcome.label == "bad_frame(too_many)"


def test_the_wrong_subprotocol_fails_before_anything_is_sent() -> None:
    conv = Conversation(step(GRAPHQL_STEP), CONTEXT, ids=GRAPHQL_IDS)
    assert conv.start(0.0, subprotocol=None) == [Close(1000)]
    assert (
        conv.outcome is not None and conv.outcome.label == "subprotocol_mismatch(wanted=graphql-transport-ws, got=none)"
    )


def test_item_deadlines_count_from_the_streams_last_message_and_the_step_bounds_everything() -> None:
    raw = {
        "kind": "ws",
        "name": "slow",
        "path": "/ws",
        "timeout_s": 20,
        "conversation": [
            {"send": {"go": 1}},
            {
                "expect": {
                    "ordered": [{"match": {"type": "a"}, "timeout_s": 3}, {"match": {"type": "b"}, "timeout_s": 3}]
                }
            },
        ],
    }
    conv = Conversation(step(raw), CONTEXT)
    conv.start(0.0)
    assert conv.next_deadline == 3.0
    conv.receive(Frame.of('{"type": "a"}'), 2.0)
    assert conv.next_deadline == 5.0
    # unsolicited heartbeats do not renew the deadline (a per-message timeout would wait forever)
    for at in (2.5, 3.5, 4.5):
        conv.receive(Frame.of('{"type": "idle"}'), at)
    assert conv.tick(4.9) == [] and conv.outcome is None
    conv.tick(5.0)
    assert conv.outcome is not None and conv.outcome.label == "timeout(slow:reply:type=b)"


def test_a_missing_capture_ends_in_a_template_error_not_a_crash() -> None:
    raw = {**RPC_STEP, "conversation": RPC_STEP["conversation"][:4] + [{"expect": {"match": {"x": 1}}}]}
    conv = Conversation(step(raw), CONTEXT, ids=RPC_IDS)
    conv.start(0.0)
    conv.receive(
        Frame.of(
            json.dumps(
                {"jsonrpc": "2.0", "id": "open-1", "result": {"label": "probe-run1 nonce-x", "session_id": "s1"}}
            )
        ),
        0.1,
    )
    assert conv.outcome is None  # captured: the sends went out
    conv2 = Conversation(
        step(
            {
                **raw,
                "conversation": [
                    {"send": {"id": "{open_id}"}},
                    {
                        "expect": {
                            "correlate": [{"id": "{open_id}"}],
                            "match": {},
                            "capture": {"rpc_session": "result.nope"},
                        }
                    },
                    {"send": {"id": "{echo_id}", "s": "{rpc_session}"}},
                    {"send": {"id": "{add_id}"}},
                    {"expect": {"match": {"x": 1}}},
                ],
            }
        ),
        CONTEXT,
        ids=RPC_IDS,
    )
    conv2.start(0.0)
    conv2.receive(Frame.of('{"id": "open-1", "result": {}}'), 0.1)
    assert conv2.outcome is not None and conv2.outcome.kind is K.TEMPLATE_ERROR


def test_a_frame_after_the_outcome_is_recorded_and_changes_nothing() -> None:
    conv = run_frames(SET_STEP, [{"type": t} for t in "abc"], {}, **{})
    assert conv.outcome is None or conv.outcome.kind is K.CONTENT_MISMATCH
    ok = run_frames(SET_STEP, [{"type": "a"}, {"type": "b"}, {"type": "c", "n": 1}, {"type": "late"}], {})
    assert ok.outcome is not None and ok.outcome.kind is K.OK
    assert ok.records[-1].disposition is Disposition.AFTER_END


def test_a_close_by_the_peer_is_reported_with_its_code() -> None:
    conv = Conversation(step(SET_STEP), CONTEXT)
    conv.start(0.0)
    conv.closed(1011, 0.5)
    assert conv.outcome is not None and conv.outcome.kind is K.CLOSED and conv.outcome.close_code == 1011


def test_legacy_steps_run_through_the_machine_with_a_dotted_event_type_key() -> None:
    legacy = {
        "kind": "ws",
        "name": "agent",
        "path": "/ws",
        "send": {"content": "hi {nonce}"},
        "expect": ["started", "delta"],
        "end_event": "done",
        "event_type_key": "header.msg_type",
        "other_events": "ignore",
    }
    frames = [{"header": {"msg_type": t}} for t in ("started", "status", "delta", "done")]
    conv = run_frames(legacy, frames, {})
    assert conv.outcome is not None and conv.outcome.kind is K.OK
    assert [r.label for r in conv.records] == ["started", "status", "delta", "done"]
    bad = run_frames(legacy, [{"header": {"msg_type": "error"}}], {})
    assert bad.outcome is not None and bad.outcome.label == "failed_by_message(error)"
    early_end = run_frames(legacy, [{"header": {"msg_type": "started"}}, {"header": {"msg_type": "done"}}], {})
    assert early_end.outcome is not None and early_end.outcome.kind is K.UNEXPECTED_EVENT


def rpc_in_frames(name: str) -> list[tuple[float, Any]]:
    lines = [json.loads(line) for line in (TRANSCRIPTS / name).read_text().splitlines() if line.strip()]
    return [(line["t"], line["msg"]) for line in lines if line["dir"] == "in"]


def drive(conv: Conversation, frames: list[tuple[float, Any]]) -> None:
    conv.start(0.0)
    for at, message in frames:
        if not conv.done:
            conv.receive(Frame.of(json.dumps(message)), at)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=0, max_value=8))
def test_a_dead_status_anywhere_in_a_healthy_exchange_fails_by_message(position: int) -> None:
    frames = rpc_in_frames("jsonrpc_ws.none.jsonl")
    at = frames[min(position, len(frames) - 1)][0]
    frames.insert(position, (at, {"jsonrpc": "2.0", "method": "status", "params": {"status": "dead"}}))
    conv = Conversation(step(RPC_STEP), CONTEXT, ids=RPC_IDS)
    drive(conv, frames)
    assert conv.outcome is not None and conv.outcome.label == "failed_by_message(backend_dead)"


@pytest.mark.parametrize("dropped", ["open-1", "echo-1", "add-1"])
def test_dropping_any_reply_of_a_healthy_exchange_is_a_timeout(dropped: str) -> None:
    # without the open reply the client never sends echo/add, so their replies cannot come either
    gone = {"open-1", "echo-1", "add-1"} if dropped == "open-1" else {dropped}
    frames = [f for f in rpc_in_frames("jsonrpc_ws.none.jsonl") if f[1].get("id") not in gone]
    conv = Conversation(step(RPC_STEP), CONTEXT, ids=RPC_IDS)
    drive(conv, frames)
    assert conv.outcome is None
    assert conv.next_deadline is not None
    conv.tick(conv.next_deadline)
    assert conv.outcome is not None and conv.outcome.kind is K.TIMEOUT


@pytest.mark.parametrize(
    ("path", "value"),
    [(("result", "text"), "probe-run1 nonce-x: other"), (("result", "session_id"), "s2"), (("result", "sum"), 41)],
)
def test_changing_any_checked_field_of_a_healthy_exchange_is_a_content_mismatch(
    path: tuple[str, str], value: Any
) -> None:
    frames = rpc_in_frames("jsonrpc_ws.none.jsonl")
    for _, message in frames:
        if path[0] in message and path[1] in message[path[0]] and message.get("id") != "open-1":
            message[path[0]][path[1]] = value
    conv = Conversation(step(RPC_STEP), CONTEXT, ids=RPC_IDS)
    drive(conv, frames)
    assert conv.outcome is not None and conv.outcome.kind is K.CONTENT_MISMATCH
    assert conv.outcome.path == ".".join(path)


def test_the_old_strict_ordered_form_false_fails_the_healthy_service_the_new_form_does_not() -> None:
    """What issue 13 measured: an uncorrelated ordered list on a service that interleaves replies."""
    legacy = {
        "kind": "ws",
        "name": "rpc",
        "path": "/rpc",
        "send": {"jsonrpc": "2.0", "id": "open-1"},
        "expect": ["status", "progress"],
        "end_event": "status",
        "event_type_key": "method",
        "other_events": "fail",
    }
    old = Conversation(step(legacy), CONTEXT)
    drive(old, rpc_in_frames("jsonrpc_ws.none.jsonl"))
    assert old.outcome is not None and old.outcome.kind is K.UNEXPECTED_EVENT
    new = Conversation(step(RPC_STEP), CONTEXT, ids=RPC_IDS)
    drive(new, rpc_in_frames("jsonrpc_ws.none.jsonl"))
    assert new.outcome is not None and new.outcome.kind is K.OK


def test_records_name_the_item_each_frame_matched() -> None:
    conv = run_frames(SET_STEP, [{"type": "b"}, {"type": "a"}], {})
    assert [(r.stream, r.item, r.disposition) for r in conv.records] == [
        ("item1", 0, Disposition.MATCHED),
        ("item0", 0, Disposition.MATCHED),
    ]
    raw = {
        "kind": "ws",
        "name": "seq",
        "path": "/ws",
        "conversation": [
            {"send": {"go": 1}},
            {"expect": {"ordered": [{"match": {"type": "a"}}, {"match": {"type": "b"}}]}},
        ],
    }
    seq = run_frames(raw, [{"type": "a"}, {"type": "b"}], {})
    assert [r.item for r in seq.records] == [0, 1]


def test_a_check_on_a_capture_that_never_came_is_a_template_error_not_a_crash() -> None:
    raw = {
        "kind": "ws",
        "name": "cap",
        "path": "/ws",
        "conversation": [
            {"send": {"go": 1}},
            {"expect": {"match": {"type": "a"}, "capture": {"sid": "sid"}}},
            {"send": {"go": 2}},
            {"expect": {"match": {"type": "b"}, "check": {"sid": "{sid}"}}},
        ],
    }
    conv = run_frames(raw, [{"type": "a"}, {"type": "b", "sid": "x"}], {})
    assert conv.outcome is not None and conv.outcome.kind is K.TEMPLATE_ERROR


def test_text_frames_are_matched_whole_with_the_dot_path() -> None:
    raw = {
        "kind": "ws",
        "name": "echo",
        "path": "/ws/echo",
        "frames": "text",
        "label_paths": ["."],
        "conversation": [
            {"send_text": "ping {nonce}"},
            {"expect": {"match": {".": {"regex": "pong .*"}}, "check": {".": "pong {nonce}"}}},
        ],
    }
    conv = Conversation(step(raw), CONTEXT)
    assert conv.start(0.0) == [Send(Frame("text", "ping nonce-x"))]
    conv.receive(Frame.of("not json, fine here"), 0.1)
    conv.receive(Frame.of("pong nonce-x"), 0.2)
    assert conv.outcome is not None and conv.outcome.kind is K.OK
    assert [r.disposition for r in conv.records] == [Disposition.UNSOLICITED, Disposition.MATCHED]
    bad = Conversation(step(raw), CONTEXT)
    bad.start(0.0)
    bad.receive(Frame.of("pong someone-else"), 0.1)
    assert bad.outcome is not None and bad.outcome.label == "content_mismatch(reply: .)"


def test_a_send_too_deep_to_encode_ends_the_conversation_not_the_session_runner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The HTTP step's twin (tests/test_deep_json.py): a captured value that parsed just under the parser's limit
    # raised RecursionError out of the machine when encoded again. Here the encoding is made to overflow (the
    # window between "parses" and "cannot be encoded again" depends on the stack it is reached from).
    import stability_lib.probes.conversation as machine

    real = machine.render_template

    def overflowing(value: Any, context: Any) -> Any:
        if isinstance(value, dict) and value.get("op") == "echo":
            raise RecursionError("maximum recursion depth exceeded while encoding a JSON object")
        return real(value, context)

    monkeypatch.setattr(machine, "render_template", overflowing)
    raw = {
        "kind": "ws",
        "name": "echo_back",
        "path": "/ws",
        "conversation": [
            {"send": {"op": "open"}},
            {"expect": {"match": {"op": "opened"}, "capture": {"item": "data"}}},
            {"send": {"op": "echo", "data": "{item}"}},
            {"expect": {"match": {"op": "echoed"}}},
        ],
    }
    conv = run_frames(raw, [{"op": "opened", "data": [[1]]}], {})
    assert conv.outcome is not None and conv.outcome.kind is K.TEMPLATE_ERROR
    assert "nested too deeply to encode" in conv.outcome.detail
