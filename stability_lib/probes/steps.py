"""The steps a scenario is made of: an HTTP request with its checks and captures, and a WebSocket
step (the legacy ``expect`` list or a conversation), with the placeholders each may use
(``check_scope``). Pure (pydantic models); ``scenario.py`` assembles them into a ScenarioConfig."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .conditions import parse_path
from .conversation_spec import (
    ConversationItem,
    MatchRule,
    check_capture_paths,
    check_conversation,
    compile_conditions,
    legacy_conversation,
    unknown_placeholder_message,
)
from .templates import malformed_brace, template_placeholders

__all__ = [
    "BUILTIN_PLACEHOLDERS",
    "StrictModel",
    "HttpMethod",
    "HttpRequestTemplate",
    "ExpectedEvent",
    "HttpStep",
    "WsStep",
    "check_scope",
]


# Filled by the runners for every user / session; captures from HTTP steps add more.
BUILTIN_PLACEHOLDERS: frozenset[str] = frozenset(
    {"username", "password", "token", "nonce", "user_index", "repetition", "session_id", "run_id"}
)


class StrictModel(BaseModel):
    """Params models: unknown keys refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


def _status_list(value: Any) -> Any:
    return [value] if isinstance(value, int) else value


_LEADING_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


def _request_path(value: str) -> str:
    """An HTTP step's path: one on the target, from its root (one leading '/'), or one that starts with a
    ``{placeholder}`` (a captured link: its rendered value is checked when the step is sent, see
    ``probes.http_steps.off_target``). A URL, ``//host/...`` or a relative path would send the request,
    and the user's token and the target's auth headers with it, to another host. The value is never
    echoed (an environment value may be in it)."""
    if value.startswith("/") and value[1:2] not in ("/", "\\"):
        return value
    if _LEADING_PLACEHOLDER.match(value):
        return value
    raise ValueError(
        "must be a path on the target starting with a single '/' (e.g. /api/items/{id}) or with a "
        "{placeholder}; not a URL, //host or a relative path (the request and its auth would go elsewhere)"
    )


class HttpRequestTemplate(StrictModel):
    """One templated HTTP request (used for register and login)."""

    method: HttpMethod = Field("POST", description="HTTP method.")
    path: str = Field(description="Path relative to the base URL, may contain {placeholders}, e.g. /api/auth/login.")
    body: Any = Field(
        None,
        description="JSON body template, e.g. {username: '{username}', password: '{password}'}; null sends no body.",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers (templated).")
    expect_status: list[int] = Field(
        default_factory=lambda: [200, 201],
        description="Statuses that count as success (a single int is accepted).",
    )
    timeout_s: float = Field(10.0, gt=0, le=120, description="Timeout for this request in seconds.")

    _norm_status = field_validator("expect_status", mode="before")(_status_list)
    _on_target = field_validator("path")(_request_path)


class ExpectedEvent(StrictModel):
    """One event type the WebSocket step must receive, in order."""

    type: str = Field(description="Value of the event type key, e.g. agent_started.")
    timeout_s: float = Field(10.0, gt=0, le=600, description="Longest wait for this event after the previous one.")


class HttpStep(StrictModel):
    """An HTTP request of the golden path."""

    kind: Literal["http"] = Field("http", description="Step kind.")
    name: str = Field(min_length=1, max_length=80, description="Step name shown in the report.")
    method: HttpMethod = Field("POST", description="HTTP method.")
    path: str = Field(description="Path template, e.g. /api/threads/{thread_id}.")
    body: Any = Field(None, description="JSON body template; null sends no body.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers (templated).")
    expect_status: list[int] = Field(
        default_factory=lambda: [200, 201], description="Statuses that count as success (a single int is accepted)."
    )
    capture: dict[str, str] = Field(
        default_factory=dict,
        description="Variables for later steps: {var: dotted JSON path in the response}, e.g. {thread_id: id}.",
    )
    timeout_s: float = Field(10.0, gt=0, le=120, description="Timeout for this request in seconds.")

    check: dict[str, Any] = Field(
        default_factory=dict, description="Conditions on the JSON body: {dotted path: condition} (* allowed)."
    )

    _norm_status = field_validator("expect_status", mode="before")(_status_list)
    _on_target = field_validator("path")(_request_path)

    @model_validator(mode="after")
    def _paths(self) -> HttpStep:
        for name in ("path", "body", "headers"):
            bad = malformed_brace(getattr(self, name))
            if bad is not None:
                raise ValueError(f"{name}: unbalanced brace in {bad[:60]!r} (write {{{{ and }}}} for literal braces)")
        try:
            compile_conditions(self.check, allow_star=True)
        except ValueError as exc:
            raise ValueError(f"check{exc}") from None
        check_capture_paths(self.capture)
        return self

    def captures(self) -> set[str]:
        return set(self.capture)

    def placeholders(self) -> set[str]:
        return (
            template_placeholders(self.path)
            | template_placeholders(self.body)
            | template_placeholders(self.headers)
            | template_placeholders(list(self.check.values()))
        )


_LEGACY_WS_KEYS = ("send", "expect", "end_event", "event_type_key", "event_timeout_s", "other_events", "fail_events")


# Keys only the conversation machine reads: next to the old form's keys they would do nothing.
_CONVERSATION_ONLY_KEYS = (
    "label_paths",
    "unmatched",
    "fail_on",
    "ignore",
    "late_replies",
    "final_send",
    "close_code",
    "max_frames",
    "require_subprotocol",
    "ids",
)


class WsStep(StrictModel):
    """A WebSocket exchange: a conversation of sends and expectations (issue 13).

    The old form (``send`` + ``expect`` + ``end_event`` ...) stays valid: at load it is translated
    into a one-send conversation with one ordered stream, and its old fields stay filled for the
    engine that still reads them.
    """

    kind: Literal["ws"] = Field("ws", description="Step kind.")
    name: str = Field(min_length=1, max_length=80, description="Step name shown in the report.")
    path: str = Field(description="WebSocket path template relative to the base URL, e.g. /ws.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra handshake headers (templated).")
    subprotocols: list[str] = Field(default_factory=list, description="Subprotocols offered, in this order.")
    require_subprotocol: str | None = Field(
        None, description="Subprotocol the server must choose; default: the first offered, when any."
    )
    ids: dict[str, Literal["string", "int"]] = Field(
        default_factory=dict, description="Ids this session sends, fresh per session: {name: string | int}."
    )
    frames: Literal["json", "text"] = Field("json", description="How text frames parse: json or text.")
    label_paths: list[str | list[str]] = Field(
        default_factory=lambda: list[str | list[str]](["type"]),
        description="Dotted paths naming a message; the first present wins.",
    )
    conversation: list[ConversationItem] = Field(
        default_factory=list, description="Sends and expect groups, in order; ends with an expect."
    )
    ignore: list[MatchRule] = Field(default_factory=list, description="Messages that are fine and mean nothing.")
    unmatched: Literal["ignore", "fail"] = Field("ignore", description="A message nothing claims: ignore or fail.")
    late_replies: Literal["fail", "ignore"] = Field("fail", description="A reply to a stream that already finished.")
    fail_on: list[MatchRule] = Field(default_factory=list, description="Messages that mean the session failed.")
    final_send: list[Any] = Field(default_factory=list, description="JSON templates sent after success, before close.")
    close_code: int = Field(1000, ge=1000, le=4999, description="Our close code.")
    max_frames: int = Field(1000, ge=1, le=100_000, description="More received frames than this: bad_frame(too_many).")
    timeout_s: float = Field(60.0, gt=0, le=900, description="Bound on the whole exchange after the handshake.")
    # Old form, kept filled for the engine that still reads it.
    send: Any = Field(None, description="(old form) JSON message template sent once.")
    event_timeout_s: float = Field(10.0, gt=0, le=600, description="(old form) Default wait for each expected event.")
    expect: list[ExpectedEvent] = Field(
        default_factory=list, description="(old form) Event types that must arrive in this order."
    )
    end_event: str | None = Field(None, description="(old form) Event type that ends the exchange.")
    event_type_key: str = Field("type", description="(old form) Dotted path of the event type in each JSON event.")
    other_events: Literal["ignore", "fail"] = Field("ignore", description="(old form) see unmatched.")
    fail_events: list[str] = Field(default_factory=lambda: ["error"], description="(old form) see fail_on.")

    @model_validator(mode="before")
    @classmethod
    def _desugar_legacy(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        legacy = [k for k in _LEGACY_WS_KEYS if k in data]
        if "conversation" in data:
            if legacy:
                raise ValueError(f"the old keys {legacy} and conversation are mutually exclusive")
            return data
        if not legacy:
            return data
        clashes = [k for k in _CONVERSATION_ONLY_KEYS if k in data]
        if clashes:
            raise ValueError(
                f"the old keys {legacy} and the new keys {clashes} are mutually exclusive "
                "(the new keys take effect in a conversation)"
            )
        return {**data, **legacy_conversation(data)}

    @field_validator("expect", mode="before")
    @classmethod
    def _strings_to_events(cls, value: Any, info: Any) -> Any:
        if not isinstance(value, list):
            return value
        default_timeout = (info.data or {}).get("event_timeout_s", 10.0)
        return [{"type": v, "timeout_s": default_timeout} if isinstance(v, str) else v for v in value]

    @model_validator(mode="after")
    def _check(self) -> WsStep:
        if not self.conversation:
            raise ValueError(f"ws step {self.name!r} needs a conversation (or the old expect events / end_event)")
        for index, label in enumerate([self.event_type_key, *self.label_paths]):
            try:
                parse_path(label)
            except ValueError as exc:
                where = "event_type_key" if index == 0 else f"label_paths[{index - 1}]"
                raise ValueError(f"{where}: {exc}") from None
        names = [r.name for r in self.fail_on]
        if any(n is None for n in names):
            raise ValueError("fail_on: every rule needs a name (it becomes the outcome label)")
        repeated = sorted({n for n in names if n is not None and names.count(n) > 1})
        if repeated:
            raise ValueError(f"fail_on: names must be unique, repeated: {repeated}")
        if self.require_subprotocol is not None and self.require_subprotocol not in self.subprotocols:
            raise ValueError(f"require_subprotocol {self.require_subprotocol!r} is not in subprotocols")
        for index, item in enumerate(self.conversation):
            if item.expect and item.expect.timeout_s is not None and item.expect.timeout_s > self.timeout_s:
                raise ValueError(f"conversation[{index}].expect.timeout_s is over the step's timeout_s")
        self._external()
        return self

    def _external(self) -> set[str]:
        needed = check_conversation(self.conversation, self.ids, BUILTIN_PLACEHOLDERS, self.final_send, self.frames)
        rules = [r.match for r in (*self.ignore, *self.fail_on)]
        return (
            needed
            | template_placeholders(self.path)
            | template_placeholders(self.headers)
            | (template_placeholders(rules) - set(self.ids))
        )

    @property
    def final_event(self) -> str:
        """(old form) The event type that ends the exchange."""
        return self.end_event if self.end_event is not None else self.expect[-1].type

    @property
    def is_legacy(self) -> bool:
        return self.send is not None or bool(self.expect) or self.end_event is not None

    def captures(self) -> set[str]:
        """Variables this step captures from replies, for later steps and finally."""
        return {
            var
            for item in self.conversation
            if item.expect
            for s in item.expect.streams
            for it in s.ordered
            for var in it.capture
        }

    def placeholders(self) -> set[str]:
        """Placeholders this step needs from outside (builtins and earlier captures)."""
        return self._external()


def check_scope(steps: Sequence[HttpStep | WsStep], known: set[str], where: str) -> set[str]:
    """Refuse a step that uses a placeholder no builtin or earlier step provides; returns the captures."""
    known = set(known)
    for index, step in enumerate(steps):
        unknown = sorted(step.placeholders() - known)
        if unknown:
            raise ValueError(
                f"{where}[{index}] ({step.name!r}): {unknown_placeholder_message(unknown[0], known)}, "
                "which no earlier step captures"
            )
        # A capture named like a builtin would hide that the step never captured it: a finally step meant to
        # be skipped without it ran with the builtin's value instead (DELETE /sessions/<run_id>-u0-r0).
        shadowing = sorted(step.captures() & BUILTIN_PLACEHOLDERS)
        if shadowing:
            raise ValueError(
                f"{where}[{index}] ({step.name!r}): capture {shadowing[0]!r} has the name of a built-in placeholder "
                f"(built-ins: {', '.join(sorted(BUILTIN_PLACEHOLDERS))}); name it otherwise, e.g. "
                f"created_{shadowing[0]}"
            )
        known |= step.captures()
    return known
