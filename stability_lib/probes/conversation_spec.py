"""The params models of a WebSocket conversation (issue 13, design sections 2.5, 3, 4, 9, 12).

Pure pydantic models plus the load-time checks that can be decided without a target: a path that
can never match, a placeholder used before it exists, a correlation without an id. The sugar forms
of ``expect`` (one item, ``ordered``, ``unordered``) are normalised into ``streams`` here, so the
machine in ``probes.conversation`` sees one shape only.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .conditions import BYTES_OPERATORS, Condition, format_path, parse_condition, parse_path
from .templates import malformed_brace, template_placeholders

__all__ = [
    "MatchRule",
    "ExpectItem",
    "StreamSpec",
    "ExpectGroup",
    "BinarySend",
    "ConversationItem",
    "compile_conditions",
    "check_conversation",
    "legacy_conversation",
    "unknown_placeholder_message",
    "ConversationSoakConfig",
    "MAX_SOAK_MESSAGES",
]

_RULE_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
# Close codes a server can send in a close frame (RFC 6455 7.4; websockets refuses any other as a protocol error).
_SENDABLE_CLOSE_CODES = frozenset({*range(1000, 1004), *range(1007, 1015), *range(3000, 5000)})
_SCALAR_TYPES = frozenset({"string", "number", "integer", "boolean", "null"})
MAX_BINARY_SEND = 64 << 20


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def compile_conditions(
    conditions: Mapping[str, Any], *, allow_star: bool
) -> tuple[tuple[tuple[str, ...], Condition], ...]:
    """``{path: cond}`` as parsed (segments, Condition) pairs; ValueError naming the path."""
    out: list[tuple[tuple[str, ...], Condition]] = []
    for raw_path, raw_cond in conditions.items():
        try:
            out.append((parse_path(raw_path, allow_star=allow_star), parse_condition(raw_cond)))
        except ValueError as exc:
            raise ValueError(f"[{raw_path!r}]: {exc}") from None
    return tuple(out)


def _never_matches(pairs: Sequence[tuple[tuple[str, ...], Condition]]) -> str | None:
    """Why these conditions (all required together) can never hold at once, or None."""
    by_path: dict[tuple[str, ...], list[Condition]] = {}
    for path, cond in pairs:
        by_path.setdefault(path, []).append(cond)
    for path, conds in by_path.items():
        equals = [c.arg for c in conds if c.op == "equals"]
        if len({repr(e) for e in equals}) > 1:
            return f"{format_path(path)!r} can never match: required to equal {equals[0]!r} and {equals[1]!r}"
        counts = {c.op: c.arg for c in conds if c.op in ("min_count", "max_count")}
        if counts.get("min_count", 0) > counts.get("max_count", 1 << 30):
            return f"{format_path(path)!r} can never match: min_count above max_count"
    for path, conds in by_path.items():
        for cond in conds:
            below = [p for p in by_path if len(p) > len(path) and p[: len(path)] == path]
            if cond.op == "exists" and cond.arg is False and (len(by_path[path]) > 1 or below):
                return f"{format_path(path)!r} can never match: it must be absent and also meet another condition"
            scalar = (cond.op == "equals" and not isinstance(cond.arg, (Mapping, list))) or (
                cond.op == "type" and cond.arg in _SCALAR_TYPES
            )
            for deeper in below:
                nxt = deeper[len(path)]
                if scalar:
                    return f"{format_path(deeper)!r} can never match: {format_path(path)!r} is required to be a scalar"
                if cond.op == "type" and cond.arg == "object" and re.fullmatch(r"-?\d+", nxt):
                    return f"{format_path(deeper)!r} can never match: {format_path(path)!r} is an object"
                if cond.op == "type" and cond.arg == "array" and nxt != "*" and not re.fullmatch(r"-?\d+", nxt):
                    return f"{format_path(deeper)!r} can never match: {format_path(path)!r} is an array"
    return None


class MatchRule(_Strict):
    """A message rule: ``ignore`` entries and ``fail_on`` entries (which need a ``name``)."""

    name: str | None = Field(None, description="Outcome label of a fail_on rule: failed_by_message(<name>).")
    match: dict[str, Any] = Field(description="{dotted path: condition}: all must hold.")
    correlated: bool = Field(False, description="Only messages that belong to one of our streams count.")

    @model_validator(mode="after")
    def _check(self) -> MatchRule:
        _never = _never_matches(compile_conditions(self.match, allow_star=False))
        if _never:
            raise ValueError(f"match: {_never}")
        if self.name is not None and not _RULE_NAME.fullmatch(self.name):
            raise ValueError(f"name {self.name!r} must match [a-z][a-z0-9_]{{0,39}} (it becomes an outcome label)")
        return self


class ExpectItem(_Strict):
    """One expected message: ``match`` says which message it is, ``check`` what it must contain."""

    match: dict[str, Any] = Field(default_factory=dict, description="Identity: {dotted path: condition}.")
    check: dict[str, Any] = Field(default_factory=dict, description="Content: {dotted path: condition}; * allowed.")
    capture: dict[str, str | list[str]] = Field(default_factory=dict, description="{var: dotted path} for later sends.")
    count: int = Field(1, ge=1, le=1000, description="How many such messages in a row.")
    timeout_s: float | None = Field(None, gt=0, le=900, description="Longest wait after the stream's previous message.")
    frame: Literal["text", "binary"] = Field("text", description="Frame kind this item accepts.")
    close: int | list[int] | None = Field(
        None, description="The server closes the connection with this code (or one of these): the last item."
    )

    @model_validator(mode="after")
    def _check(self) -> ExpectItem:
        if self.close is not None:
            _check_close(self)
            return self
        if self.frame == "binary":
            for where, conds in (("match", self.match), ("check", self.check)):
                for key, spec in conds.items():
                    if key != "bytes":
                        raise ValueError(f"{where}[{key!r}]: binary frames have no JSON paths; use bytes:")
                    if not isinstance(spec, Mapping) or not spec or set(spec) - BYTES_OPERATORS:
                        raise ValueError(f"{where}['bytes']: takes a mapping of {sorted(BYTES_OPERATORS)}")
            if self.capture:
                raise ValueError("capture: binary frames have no JSON paths")
            return self
        pairs = compile_conditions(self.match, allow_star=False)
        checks = compile_conditions(self.check, allow_star=True)
        why = _never_matches(pairs + checks)
        if why:
            raise ValueError(why)
        check_capture_paths(self.capture)
        return self

    @property
    def close_codes(self) -> tuple[int, ...]:
        """The accepted close codes of a close item (empty for a message item)."""
        if self.close is None:
            return ()
        return (self.close,) if isinstance(self.close, int) else tuple(self.close)

    def label(self) -> str:
        """What this item waits for, for outcome labels (``type=next``, ``close 4401``)."""
        if self.close is not None:
            return "close " + "|".join(str(code) for code in self.close_codes)
        if self.frame == "binary":
            return "binary"
        parts = [f"{k}={v}" for k, v in self.match.items() if not isinstance(v, (Mapping, list))]
        return ",".join(parts) or "message"


def _check_close(item: ExpectItem) -> None:
    """A close item has codes only (a close frame has no content) and every code can come in a close frame."""
    given = [k for k in ("match", "check", "capture") if getattr(item, k)]
    given += ["count"] * (item.count != 1) + ["frame"] * (item.frame != "text")
    if given:
        raise ValueError(f"close: cannot be combined with {given[0]} (a close frame carries a code, not a message)")
    if not item.close_codes:
        raise ValueError("close: give a code or a list of codes")
    for code in item.close_codes:
        if code == 1011:
            raise ValueError(
                "close: 1011 is what this tool counts as a server crash (the no-1011 claim would fail on it); "
                "expect the code your service sends on purpose"
            )
        if code in (1005, 1006, 1015):
            raise ValueError(f"close: {code} is never sent in a close frame (it only names a missing or failed close)")
        if code not in _SENDABLE_CLOSE_CODES:
            raise ValueError(f"close: {code} is not a close code a server can send (1000-1003, 1007-1014, 3000-4999)")


class StreamSpec(_Strict):
    """Messages that belong together (by correlation), in order."""

    name: str = Field(min_length=1, max_length=40, description="Stream name, shown in outcomes.")
    correlate: list[dict[str, Any]] = Field(
        default_factory=list, description="Alternatives {dotted path: template with an id placeholder}."
    )
    ordered: list[ExpectItem] = Field(min_length=1, description="The expected messages of this stream, in order.")
    extra: Literal["fail", "ignore"] = Field("fail", description="A correlated message no item matches.")

    @model_validator(mode="after")
    def _check(self) -> StreamSpec:
        for index, alternative in enumerate(self.correlate):
            if not alternative:
                raise ValueError(f"correlate[{index}]: empty alternative")
            for path in alternative:
                try:
                    parse_path(path)
                except ValueError as exc:
                    raise ValueError(f"correlate[{index}][{path!r}]: {exc}") from None
        return self


_ITEM_KEYS = frozenset(ExpectItem.model_fields)


class ExpectGroup(_Strict):
    """Streams that run in parallel: no order between them. Sugar forms are normalised here."""

    timeout_s: float | None = Field(None, gt=0, le=900, description="Bound on the whole group from its entry.")
    streams: list[StreamSpec] = Field(min_length=1, description="Parallel streams.")

    @model_validator(mode="before")
    @classmethod
    def _desugar(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or "streams" in data:
            return data
        data = dict(data)
        group = {k: data.pop(k) for k in ("timeout_s",) if k in data}
        correlate = data.pop("correlate", [])
        extra = {"extra": data.pop("extra")} if "extra" in data else {}
        if "ordered" in data:
            group["streams"] = [{"name": "reply", "correlate": correlate, "ordered": data.pop("ordered"), **extra}]
        elif "unordered" in data:
            items = data.pop("unordered")
            group["streams"] = [
                {"name": f"item{i}", "correlate": correlate, "ordered": [item], **extra}
                for i, item in enumerate(items if isinstance(items, list) else [items])
            ]
        else:
            item = {k: data.pop(k) for k in list(data) if k in _ITEM_KEYS}
            group["streams"] = [{"name": "reply", "correlate": correlate, "ordered": [item], **extra}]
        if data:
            raise ValueError(f"unknown keys in expect: {sorted(data)}")
        return group

    @model_validator(mode="after")
    def _names(self) -> ExpectGroup:
        names = [s.name for s in self.streams]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"stream names must be unique, repeated: {repeated}")
        return self


class BinarySend(_Strict):
    """Bytes to send as one binary frame: exactly one source."""

    name: str | None = Field(None, description="Name for a later bytes: {equals_sent: <name>} check.")
    base64: str | None = None
    hex: str | None = None
    repeat: str | None = Field(None, description="A string repeated (UTF-8) up to size bytes.")
    random: int | None = Field(None, ge=1, le=MAX_BINARY_SEND, description="Seeded random bytes of this size.")
    size: int | None = Field(None, ge=1, le=MAX_BINARY_SEND, description="Size for repeat.")

    @model_validator(mode="after")
    def _one_source(self) -> BinarySend:
        sources = [k for k in ("base64", "hex", "repeat", "random") if getattr(self, k) is not None]
        if len(sources) != 1:
            raise ValueError(f"send_binary needs exactly one of base64, hex, repeat, random; got {sources}")
        if (self.repeat is None) != (self.size is None):
            raise ValueError("send_binary: repeat and size go together")
        try:
            if self.base64 is not None:
                base64.b64decode(self.base64, validate=True)
            if self.hex is not None:
                bytes.fromhex(self.hex)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"send_binary: {exc}") from None
        return self


class ConversationItem(_Strict):
    """Exactly one of ``send`` (JSON template), ``send_text``, ``send_binary``, ``expect``."""

    send: Any = None
    send_text: str | None = None
    send_binary: BinarySend | None = None
    expect: ExpectGroup | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ConversationItem:
        given = sorted(self.model_fields_set)
        if len(given) != 1:
            raise ValueError(f"a conversation item is exactly one of send, send_text, send_binary, expect; got {given}")
        return self

    @property
    def kind(self) -> str:
        return next(iter(self.model_fields_set))


def unknown_placeholder_message(name: str, known: Iterable[str]) -> str:
    known = sorted(set(known))
    hint = difflib.get_close_matches(name, known, n=1)
    close = f"; did you mean {{{hint[0]}}}?" if hint else ""
    return f"unknown placeholder {{{name}}}{close} (known: {', '.join(known)})"


def check_conversation(
    conversation: Sequence[ConversationItem],
    ids: Mapping[str, str],
    builtins: Iterable[str],
    final_send: Sequence[Any],
    frames: str,
) -> set[str]:
    """Load-time checks of one conversation; returns the placeholders it needs from outside.

    Raises ValueError with the field spelled as in params. Placeholders that are neither builtins,
    ids nor captures of this conversation are returned: earlier steps must capture them.
    """
    builtin = set(builtins)
    captures_all = {
        var
        for item in conversation
        if item.expect
        for s in item.expect.streams
        for it in s.ordered
        for var in it.capture
    }
    local = set(ids) | captures_all
    known_now = set(ids)
    sent_ids: set[str] = set()
    blobs: set[str] = set()
    external: set[str] = set()

    def well_formed(template: Any, where: str) -> None:
        bad = malformed_brace(template)
        if bad is not None:
            raise ValueError(f"{where}: unbalanced brace in {bad[:60]!r} (write {{{{ and }}}} for literal braces)")

    def use(names: set[str], where: str) -> None:
        for name in sorted(names):
            if name in captures_all and name not in known_now:
                raise ValueError(f"{where}: placeholder {{{name}}} is used before the expect that captures it")
            if name not in local and name not in builtin:
                external.add(name)

    if not conversation or conversation[-1].expect is None:
        raise ValueError("conversation: must end with an expect (what proves the exchange worked)")
    for index, item in enumerate(conversation):
        where = f"conversation[{index}]"
        if item.expect is None:
            if item.send_binary is not None and item.send_binary.name:
                blobs.add(item.send_binary.name)
            value = item.send if item.kind == "send" else item.send_text
            well_formed(value, f"{where}.{item.kind}")
            names = template_placeholders(value)
            use(names, f"{where}.{item.kind}")
            sent_ids |= names & set(ids)
            continue
        for s_index, stream in enumerate(item.expect.streams):
            s_where = f"{where}.expect.streams[{s_index}]"
            for a_index, alternative in enumerate(stream.correlate):
                for path, template in alternative.items():
                    a_where = f"{s_where}.correlate[{a_index}][{path!r}]"
                    well_formed(template, a_where)
                    names = template_placeholders(template)
                    id_like = names & (set(ids) | known_now - builtin)
                    if not id_like:
                        raise ValueError(
                            f'{a_where}: correlates on a value with no id placeholder; write "{{my_id}}" '
                            "and list my_id under ids"
                        )
                    unsent = sorted((names & set(ids)) - sent_ids)
                    if unsent:
                        raise ValueError(f"{a_where}: nothing was sent with {{{unsent[0]}}} before this expect")
                    use(names, a_where)
            for i_index, expected in enumerate(stream.ordered):
                i_where = f"{s_where}.ordered[{i_index}]"
                if expected.close is not None:
                    _check_close_placement(
                        i_where, index == len(conversation) - 1 and i_index == len(stream.ordered) - 1, item.expect
                    )
                    if final_send:
                        raise ValueError(f"{i_where}.close: final_send cannot be sent after the server closed")
                if frames == "text" and expected.frame == "text":
                    paths = [p for p in (*expected.match, *expected.check) if p != "."]
                    if paths:
                        raise ValueError(f"{i_where}: frames: text has no JSON paths, only '.', got {paths[0]!r}")
                for spec in expected.check.values():
                    if (
                        expected.frame == "binary"
                        and isinstance(spec, Mapping)
                        and "equals_sent" in spec
                        and spec["equals_sent"] not in blobs
                    ):
                        raise ValueError(
                            f"{i_where}.check['bytes']: no send_binary named {spec['equals_sent']!r} before this expect"
                        )
                well_formed([list(expected.match.values()), list(expected.check.values())], i_where)
                use(template_placeholders(list(expected.match.values())), f"{i_where}.match")
                use(template_placeholders(list(expected.check.values())), f"{i_where}.check")
                known_now |= set(expected.capture)
        if item.expect.timeout_s is None:
            continue
    well_formed(list(final_send), "final_send")
    use(template_placeholders(list(final_send)), "final_send")
    unused = sorted(set(ids) - sent_ids - template_placeholders(list(final_send)))
    if unused:
        raise ValueError(f"ids: {unused[0]!r} is listed under ids but sent nowhere")
    return external


def _check_close_placement(where: str, last: bool, group: ExpectGroup) -> None:
    if not last:
        raise ValueError(
            f"{where}.close: must be the last item of the conversation (nothing is sent or received after a close)"
        )
    if len(group.streams) > 1:
        raise ValueError(f"{where}.close: a close ends every stream; it cannot share an expect with other streams")


def legacy_conversation(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The new keys of a ws step written in the old form (send / expect / end_event ...)."""
    key = raw.get("event_type_key", "type")
    default_timeout = raw.get("event_timeout_s", 10.0)
    events: list[dict[str, Any]] = []
    for entry in raw.get("expect", []) or []:
        events.append({"type": entry, "timeout_s": default_timeout} if isinstance(entry, str) else dict(entry))
    end = raw.get("end_event")
    if end is not None and (not events or events[-1].get("type") != end):
        events.append({"type": end, "timeout_s": default_timeout})
    ordered = [{"match": {key: e.get("type")}, "timeout_s": e.get("timeout_s", default_timeout)} for e in events]
    out: dict[str, Any] = {
        "label_paths": [key],
        "unmatched": raw.get("other_events", "ignore"),
        "fail_on": [{"name": _rule_name(e), "match": {key: e}} for e in raw.get("fail_events", ["error"]) or []],
    }
    if ordered:
        out["conversation"] = [{"send": raw.get("send")}, {"expect": {"ordered": ordered}}]
    return out


def _rule_name(event: Any) -> str:
    name = re.sub(r"[^a-z0-9_]", "_", str(event).lower()).strip("_")[:40]
    return name if _RULE_NAME.fullmatch(name) else f"e_{name}"[:40]


# -- conversation soak (issue 19): many request/reply messages per session ----------------------------

SOAK_MESSAGE_PLACEHOLDERS = frozenset({"msg_id", "seq", "session"})
SOAK_ID_PLACEHOLDERS = frozenset({"msg_id", "seq"})
MAX_SOAK_MESSAGES = 10_000_000  # every message costs 21 bytes of arrays: 210 MB at the cap
MAX_SOAK_SESSIONS = 100_000
MAX_SOAK_CONCURRENCY = 10_000
MAX_SOAK_DURATION_S = 3600.0
# Soft caps: params cannot exceed them unless allow_over_caps: true (then the MAX_ values above bound them).
SOAK_SOFT_CAPS: dict[str, float] = {"sessions": 5000, "concurrency": 500, "duration_s": 900, "messages": 1_000_000}


class ConversationSoakConfig(_Strict):
    """Sessions that each exchange many correlated request/reply messages (``probes.conversation_soak``).

    Every message is ``send`` rendered with ``{msg_id}`` (unique in the soak), ``{seq}`` (1, 2, ... in
    its session), ``{session}`` and the caller's context. Its reply is the message whose value at the
    ``correlate`` path equals the rendered ``correlate`` template; ``check`` is then the content that
    reply must have (placeholders allowed). Messages nobody waits for are counted (``unmatched``).
    """

    path: str = Field("/", description="WebSocket path, joined to the target's ws base URL.")
    send: Any = Field(description="JSON template of every request.")
    correlate: dict[str, str] = Field(
        description="{dotted path: template with {msg_id} or {seq}}: which reply answers which request."
    )
    check: dict[str, Any] = Field(default_factory=dict, description="{dotted path: condition} on every reply; * ok.")
    fail_on: list[MatchRule] = Field(default_factory=list, description="Messages that mean the session failed.")
    unmatched: Literal["ignore", "fail"] = Field(
        "ignore", description="A message that answers no pending request: count it, or end the session."
    )
    subprotocols: list[str] = Field(default_factory=list, description="Offered subprotocols (first one required).")
    headers: dict[str, str] = Field(default_factory=dict, description="Handshake headers (templates).")
    init_send: list[Any] = Field(
        default_factory=list, description="JSON templates sent once after the handshake (e.g. connection_init)."
    )
    init_expect: dict[str, Any] | None = Field(
        None, description="{dotted path: condition} of the message that must come before the first request."
    )
    init_timeout_s: float = Field(10.0, gt=0, le=300, description="Longest wait for init_expect.")
    messages_per_session: int = Field(100, ge=1, le=MAX_SOAK_MESSAGES, description="Requests each session sends.")
    rate_per_session: float | None = Field(
        None, gt=0, le=100_000, description="Requests per second per session; none: the next as soon as a reply comes."
    )
    in_flight: int = Field(1, ge=1, le=1000, description="Requests a session may have awaiting their reply.")
    reply_timeout_s: float = Field(10.0, gt=0, le=900, description="A request without its reply by then failed.")
    sessions: int = Field(50, ge=1, le=MAX_SOAK_SESSIONS, description="Sessions in the soak.")
    concurrency: int = Field(50, ge=1, le=MAX_SOAK_CONCURRENCY, description="Sessions open at once.")
    duration_s: float = Field(60.0, gt=0, le=MAX_SOAK_DURATION_S, description="No request is sent after this.")
    connect_timeout_s: float = Field(10.0, gt=0, le=120, description="TCP connect and opening handshake.")
    close_timeout_s: float = Field(5.0, gt=0, le=60, description="Wait for the closing handshake.")
    max_message_bytes: int = Field(1 << 20, ge=1024, le=64 << 20, description="Largest incoming message.")
    allow_over_caps: bool = Field(
        False, description="Allow sessions, concurrency, duration_s and messages above their soft caps."
    )

    @model_validator(mode="after")
    def _check(self) -> ConversationSoakConfig:
        total = self.sessions * self.messages_per_session
        if total > MAX_SOAK_MESSAGES:
            raise ValueError(
                f"sessions x messages_per_session = {total:,} is over the cap of {MAX_SOAK_MESSAGES:,} messages"
            )
        if not self.allow_over_caps:
            sizes: dict[str, float] = {
                "sessions": self.sessions,
                "concurrency": self.concurrency,
                "duration_s": self.duration_s,
                "messages": total,
            }
            for name, size in sizes.items():
                if size > SOAK_SOFT_CAPS[name]:
                    shown = "sessions x messages_per_session" if name == "messages" else name
                    raise ValueError(
                        f"{shown}={size:g} is over the cap of {SOAK_SOFT_CAPS[name]:g} (set allow_over_caps: true)"
                    )
        if not self.correlate:
            raise ValueError("correlate: name the reply's path that carries the request's id")
        if len(self.correlate) != 1:
            raise ValueError("correlate: exactly one {dotted path: template} (the reply's id)")
        ((path, template),) = self.correlate.items()
        try:
            parse_path(path)
        except ValueError as exc:
            raise ValueError(f"correlate[{path!r}]: {exc}") from None
        if path == ".":
            raise ValueError("correlate['.']: the whole message is not an id; name the path that carries it")
        for where, value in (("send", self.send), ("correlate", template), ("check", self.check)):
            bad = malformed_brace(value)
            if bad is not None:
                raise ValueError(f"{where}: unbalanced brace in {bad[:60]!r} (write {{{{ and }}}} for literal braces)")
        if not template_placeholders(template) & SOAK_ID_PLACEHOLDERS:
            raise ValueError(
                f'correlate[{path!r}]: correlates on a value with no id placeholder; write "{{msg_id}}" or "{{seq}}"'
            )
        if not template_placeholders(self.send) & SOAK_ID_PLACEHOLDERS:
            raise ValueError("send: carries no {msg_id} or {seq}, so no reply can be told from another")
        checks = compile_conditions(self.check, allow_star=True)
        why = _never_matches(checks)
        if why:
            raise ValueError(f"check: {why}")
        if self.init_expect is not None:
            why = _never_matches(compile_conditions(self.init_expect, allow_star=False))
            if why:
                raise ValueError(f"init_expect: {why}")
        for where, value in (("init_send", self.init_send), ("init_expect", self.init_expect)):
            per_message = sorted(template_placeholders(value) & SOAK_ID_PLACEHOLDERS)
            if per_message:
                raise ValueError(f"{where}: {{{per_message[0]}}} exists per request, not before the first one")
        return self

    def placeholders(self) -> set[str]:
        """Placeholders the caller's context must provide (beyond msg_id, seq, session)."""
        used = template_placeholders(
            [self.send, self.correlate, self.check, self.headers, self.init_send, self.init_expect]
        )
        used |= template_placeholders([rule.match for rule in self.fail_on])
        return used - SOAK_MESSAGE_PLACEHOLDERS


def check_capture_paths(capture: Mapping[str, str | Sequence[str]]) -> None:
    """Every ``capture`` value is a dotted path that parses; ValueError naming the variable if not."""
    for var, path in capture.items():
        try:
            parse_path(path)
        except ValueError as exc:
            raise ValueError(f"capture[{var!r}]: {exc}") from None
