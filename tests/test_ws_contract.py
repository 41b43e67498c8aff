"""The WebSocket message contract: inferred from observed events, diffed, and judged."""

from __future__ import annotations

import copy
import json

from stability_lib.contract.openapi_diff import Level
from stability_lib.contract.ws_messages import (
    UNTYPED_EVENT,
    WS_RULES,
    diff_event_schemas,
    infer_event_schema,
    json_type,
    ws_contract_claims,
)
from stability_lib.core.models import Status

BASELINE = [
    {"type": "hello", "session": "abc", "server": {"version": "1.2", "features": ["a", "b"]}},
    {"type": "tick", "seq": 1, "value": 0.5},
    {"type": "tick", "seq": 2, "value": 1, "note": None},
    {"type": "bye", "reason": "done"},
]


def test_infer_collects_fields_and_types_per_event_type() -> None:
    schema = infer_event_schema(BASELINE)
    assert schema["hello"] == {
        "session": {"string"},
        "server": {"object"},
        "server.version": {"string"},
        "server.features": {"array"},
        "server.features[]": {"string"},
    }
    assert schema["tick"] == {"seq": {"integer"}, "value": {"number", "integer"}, "note": {"null"}}
    assert set(schema) == {"hello", "tick", "bye"}


def test_json_types_match_what_json_decoding_gives() -> None:
    decoded = json.loads('{"a": 3.0, "b": 3.5, "c": true, "d": null, "e": [], "f": {}, "g": "x", "h": 3}')
    assert {k: json_type(v) for k, v in decoded.items()} == {
        "a": "integer",
        "b": "number",
        "c": "boolean",
        "d": "null",
        "e": "array",
        "f": "object",
        "g": "string",
        "h": "integer",
    }


def test_key_field_is_configurable_and_untyped_events_are_grouped() -> None:
    schema = infer_event_schema([{"event": "x", "n": 1}, {"n": 2}, "plain text"], key_field="event")
    assert schema["x"] == {"n": {"integer"}}
    assert schema[UNTYPED_EVENT] == {"n": {"integer"}}
    assert "(string message)" in schema


def _rules(old: list[dict], new: list[dict]) -> dict[str, Level]:
    return {c.rule: c.level for c in diff_event_schemas(infer_event_schema(old), infer_event_schema(new))}


def test_same_events_have_no_changes() -> None:
    assert diff_event_schemas(infer_event_schema(BASELINE), infer_event_schema(list(reversed(BASELINE)))) == []


def test_removed_event_type_is_breaking() -> None:
    assert _rules(BASELINE, BASELINE[:3]) == {"ws-event-type-removed": Level.ERR}


def test_removed_field_is_breaking() -> None:
    new = copy.deepcopy(BASELINE)
    del new[0]["server"]["version"]  # nested
    changes = diff_event_schemas(infer_event_schema(BASELINE), infer_event_schema(new))
    assert [(c.rule, c.level, c.path, c.location) for c in changes] == [
        ("ws-field-removed", Level.ERR, "hello", "server.version")
    ]


def test_changed_type_is_breaking_and_integer_fits_number() -> None:
    new = copy.deepcopy(BASELINE)
    new[1] = {"type": "tick", "seq": "1", "value": 2}
    new[2] = {"type": "tick", "seq": "2", "value": 3, "note": None}
    changes = diff_event_schemas(infer_event_schema(BASELINE), infer_event_schema(new))
    assert [(c.rule, c.location) for c in changes if c.level is Level.ERR] == [("ws-field-type-changed", "seq")]
    # value: integer|number -> integer only is a narrowing, not a break.
    assert ("ws-field-type-narrowed", "value") in [(c.rule, c.location) for c in changes]


def test_additions_are_info() -> None:
    new = BASELINE + [{"type": "tick", "seq": 3, "value": 1.5, "extra": True}, {"type": "news", "x": 1}]
    assert _rules(BASELINE, new) == {"ws-field-added": Level.INFO, "ws-event-type-added": Level.INFO}


def test_claim_fails_on_breaking_change_and_passes_on_none() -> None:
    old = infer_event_schema(BASELINE)
    failing = ws_contract_claims(
        diff_event_schemas(old, infer_event_schema(BASELINE[:3])), baseline_events=4, candidate_events=3
    )
    assert failing[0].status is Status.FAIL
    assert failing[0].statistic == "1 ERR, 0 WARN, 0 INFO across 4 baseline and 3 candidate events"
    passing = ws_contract_claims(diff_event_schemas(old, old), baseline_events=4, candidate_events=4)
    assert passing[0].status is Status.PASS
    assert passing[0].statement == "WebSocket message contract unchanged"


def test_claim_is_inconclusive_without_events_on_either_side() -> None:
    empty = infer_event_schema([])
    changes = diff_event_schemas(empty, empty)
    assert changes == []
    assert ws_contract_claims(changes, baseline_events=0, candidate_events=0)[0].status is Status.INCONCLUSIVE
    assert ws_contract_claims([], baseline_events=5, candidate_events=0)[0].status is Status.INCONCLUSIVE
    assert ws_contract_claims(None, baseline_events=5, candidate_events=5)[0].status is Status.INCONCLUSIVE


def test_rules_table_is_complete() -> None:
    assert {r.id for r in WS_RULES} == {
        "ws-event-type-removed",
        "ws-field-removed",
        "ws-field-type-changed",
        "ws-field-type-narrowed",
        "ws-event-type-added",
        "ws-field-added",
    }


def test_hostile_event_shapes_are_bounded() -> None:
    deep: dict = {"type": "deep"}
    node = deep
    for _ in range(50):
        node["x"] = {}
        node = node["x"]
    wide = {"type": "wide", **{f"f{i}": i for i in range(5000)}}
    schema = infer_event_schema([deep, wide])
    assert max(name.count(".") for name in schema["deep"]) < 10
    assert len(schema["wide"]) <= 500
