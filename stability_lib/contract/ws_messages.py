"""WebSocket message contract inferred from observed events, and its diff (pure: no I/O).

There is rarely a written schema for WebSocket messages, so the contract is what
clients actually received: for each event type (the value of a key field, ``type``
by default), every field seen and the JSON types it had. Nested objects are
flattened into dotted names (``user.id``), array elements into ``items[]``.

A diff of two observations can only see what was observed: a field that appears
in rare events may be missing from a short sample. ``diff_event_schemas`` reports
it as removed all the same (ERR): it is a lead to check, and the evidence lists
how many events each side saw.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..core.models import Claim, EvidenceRef, Figure, Status
from .openapi_diff import Change, Level, Rule, count_levels

__all__ = [
    "WS_RULES",
    "EventSchema",
    "UNTYPED_EVENT",
    "json_type",
    "infer_event_schema",
    "diff_event_schemas",
    "ws_contract_claims",
]

EventSchema = dict[str, dict[str, set[str]]]
# Events without the key field are grouped under this name.
UNTYPED_EVENT = "(no type)"
MAX_DEPTH = 6
MAX_FIELDS_PER_EVENT_TYPE = 500
MAX_EVENT_TYPES = 500

WS_RULES: tuple[Rule, ...] = (
    Rule("ws-event-type-removed", Level.ERR, "An event type seen on the baseline was never seen on the candidate."),
    Rule(
        "ws-field-removed", Level.ERR, "A field of an event type seen on the baseline was never seen on the candidate."
    ),
    Rule("ws-field-type-changed", Level.ERR, "A field had a JSON type on the candidate never seen on the baseline."),
    Rule("ws-field-type-narrowed", Level.INFO, "A field's JSON types on the candidate are a subset of the baseline's."),
    Rule("ws-event-type-added", Level.INFO, "A new event type was seen on the candidate."),
    Rule("ws-field-added", Level.INFO, "A new field was seen on the candidate."),
)
_LEVEL = {r.id: r.level for r in WS_RULES}


def json_type(value: Any) -> str:
    """The JSON Schema type name of a decoded JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        # 3.0 is an integer to JSON Schema; json.loads gives a float for "3.0".
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return "unknown"


def _walk(value: Any, prefix: str, fields: dict[str, set[str]], depth: int) -> None:
    if isinstance(value, Mapping) and depth < MAX_DEPTH:
        for key, child in value.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if name not in fields and len(fields) >= MAX_FIELDS_PER_EVENT_TYPE:
                continue
            fields.setdefault(name, set()).add(json_type(child))
            _walk(child, name, fields, depth + 1)
    elif isinstance(value, (list, tuple)) and depth < MAX_DEPTH:
        name = f"{prefix}[]"
        for child in value:
            if name not in fields and len(fields) >= MAX_FIELDS_PER_EVENT_TYPE:
                break
            fields.setdefault(name, set()).add(json_type(child))
            _walk(child, name, fields, depth + 1)


def infer_event_schema(events: Iterable[Any], *, key_field: str = "type") -> EventSchema:
    """Fields and JSON types seen per event type. Non-object events are grouped as their JSON type."""
    schema: EventSchema = {}
    for event in events:
        if isinstance(event, Mapping):
            raw = event.get(key_field)
            event_type = raw if isinstance(raw, str) else (UNTYPED_EVENT if raw is None else f"{raw!r}")
            body: Any = {k: v for k, v in event.items() if k != key_field}
        else:
            event_type, body = f"({json_type(event)} message)", None
        if event_type not in schema and len(schema) >= MAX_EVENT_TYPES:
            continue
        fields = schema.setdefault(event_type, {})
        if body is not None:
            _walk(body, "", fields, 0)
    return schema


def _covers(wide: set[str], narrow: set[str]) -> bool:
    return all(t in wide or (t == "integer" and "number" in wide) for t in narrow)


def diff_event_schemas(
    old: Mapping[str, Mapping[str, set[str]]], new: Mapping[str, Mapping[str, set[str]]]
) -> list[Change]:
    """Changes a client of the baseline's messages would notice (``path`` = event type, ``location`` = field)."""
    changes: list[Change] = []

    def emit(rule: str, event_type: str, field: str, message: str) -> None:
        changes.append(Change(_LEVEL[rule], rule, event_type, "WS", field, message))

    for event_type, old_fields in old.items():
        if event_type not in new:
            emit("ws-event-type-removed", event_type, "", f"event {event_type!r} was not seen on the candidate")
            continue
        new_fields = new[event_type]
        for field, old_types in old_fields.items():
            if field not in new_fields:
                emit(
                    "ws-field-removed",
                    event_type,
                    field,
                    f"event {event_type!r}: field {field!r} was not seen on the candidate",
                )
                continue
            new_types = set(new_fields[field])
            if not _covers(set(old_types), new_types):
                emit(
                    "ws-field-type-changed",
                    event_type,
                    field,
                    f"event {event_type!r}: field {field!r} type {_fmt(old_types)} -> {_fmt(new_types)}",
                )
            elif set(old_types) != new_types:
                emit(
                    "ws-field-type-narrowed",
                    event_type,
                    field,
                    f"event {event_type!r}: field {field!r} type {_fmt(old_types)} -> {_fmt(new_types)}",
                )
        for field in new_fields:
            if field not in old_fields:
                emit("ws-field-added", event_type, field, f"event {event_type!r}: new field {field!r}")
    for event_type in new:
        if event_type not in old:
            emit("ws-event-type-added", event_type, "", f"new event {event_type!r} seen on the candidate")
    return changes


def _fmt(types: Iterable[str]) -> str:
    return "|".join(sorted(types)) or "none"


def ws_contract_claims(
    changes: list[Change] | None,
    *,
    baseline_events: int,
    candidate_events: int,
    section: str = "contract",
    evidence_file: str = "contract.json",
    required: bool = True,
    reason: str = "",
) -> list[Claim]:
    """The claim "WebSocket message contract unchanged": INCONCLUSIVE unless both sides saw events."""
    statement = "WebSocket message contract unchanged"
    claim_id = f"{section}.ws_message_contract"
    evidence = (EvidenceRef(section=section, file=evidence_file, records=("ws",)),)
    if changes is None or baseline_events <= 0 or candidate_events <= 0:
        return [
            Claim(
                id=claim_id,
                section=section,
                statement=statement,
                status=Status.INCONCLUSIVE,
                statistic=(
                    f"no comparison: {reason or f'{baseline_events} baseline and {candidate_events} candidate events observed'}"
                ),
                required=required,
                evidence=evidence,
            )
        ]
    counts = count_levels(changes)
    status = Status.FAIL if counts["ERR"] else Status.PASS
    breaking = sorted(
        {f"{c.rule} {c.path}{'.' + c.location if c.location else ''}" for c in changes if c.level is Level.ERR}
    )
    return [
        Claim(
            id=claim_id,
            section=section,
            statement=statement,
            status=status,
            statistic=(
                f"{counts['ERR']} ERR, {counts['WARN']} WARN, {counts['INFO']} INFO across "
                f"{baseline_events} baseline and {candidate_events} candidate events"
            ),
            required=required,
            evidence=evidence,
            details={"counts": counts, "breaking": breaking[:50]},
            figure=Figure(
                kind="count",
                value=float(counts["ERR"]),
                k=counts["ERR"],
                test="message schema diff",
                what="breaking message changes (ERR)",
            ),
        )
    ]
