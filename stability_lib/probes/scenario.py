"""The user scenario as data: auth, test users, golden path steps, soak bounds.

Pure: pydantic models (``extra="forbid"``) plus a small safe template renderer and a
dotted-path reader for JSON responses. Nothing here knows about a particular service:
the same models drive the bundled demo and any staging target.

Templates use ``{name}`` placeholders filled from a context dict (``{{``/``}}`` for a
literal brace). There is no attribute access, indexing or evaluation: a placeholder is a
plain name looked up in the context. ``${NAME}`` environment references are resolved by
the params loader before these models see the values; in the fields listed by
``is_template_field`` it doubles the braces of each value, so a value is never read as a template.
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from .conditions import parse_path
from .conversation_spec import (
    ConversationItem,
    ConversationSoakConfig,
    MatchRule,
    check_conversation,
    compile_conditions,
    legacy_conversation,
    unknown_placeholder_message,
)
from .templates import MISSING, TemplateError, malformed_brace, render_template, template_placeholders

__all__ = [
    "TemplateError",
    "TokenDelivery",
    "HttpRequestTemplate",
    "AuthConfig",
    "UsersConfig",
    "ExpectedEvent",
    "HttpStep",
    "WsStep",
    "GoldenPathConfig",
    "SoakConfig",
    "ScenarioConfig",
    "SOAK_CAPS",
    "GOLDEN_CAPS",
    "BUILTIN_PLACEHOLDERS",
    "render_template",
    "template_placeholders",
    "is_template_field",
    "GOLDEN_HARD_CAPS",
    "extract_path",
    "MISSING",
]


# Filled by the runners for every user / session; captures from HTTP steps add more.
BUILTIN_PLACEHOLDERS: frozenset[str] = frozenset(
    {"username", "password", "token", "nonce", "user_index", "repetition", "session_id", "run_id"}
)

# Soft caps: params cannot exceed them unless ``allow_over_caps: true``.
SOAK_CAPS: dict[str, float] = {"sessions": 5000, "concurrency": 200, "duration_s": 900}
GOLDEN_CAPS: dict[str, float] = {"users": 50, "repetitions": 100}
# Hard ceilings that even ``allow_over_caps`` cannot lift: a probe is always bounded.
# 10,000 sessions held at once fit one process in under 300 MB without deflate (benchmarks/bench_engine.py
# --held 10000); the soak raises its open-file limit to match, or refuses to start (probes.soak).
_ABSOLUTE_CAPS: dict[str, float] = {"sessions": 100_000, "concurrency": 10_000, "duration_s": 3_600}
# Every user is registered and logged in at once before the golden path starts: 500 is ten times
# the soft cap, as many as the soak's highest default concurrency keeps busy, and small enough that
# setting them all up stays within memory on a small runner.
GOLDEN_HARD_CAPS: dict[str, int] = {"users": 500, "repetitions": 10_000}

# Fields of params that ``render_template`` renders (dotted paths as the params loader names them).
_STEP_TEMPLATE_KEYS = r"(?:path|body|headers|send|conversation|final_send|check|ignore|fail_on)"
_TEMPLATE_FIELD = re.compile(
    r"scenario\.(?:auth\.(?:register|login)\.(?:path|body|headers)"
    r"|auth\.(?:header_format|subprotocol_format)"
    r"|(?:golden_path\.(?:steps|finally)|setup|teardown|leftovers|soak\.(?:setup|finally))\[\d+\]\."
    + _STEP_TEMPLATE_KEYS
    + r"|steps\.[^.\[]+\."
    + _STEP_TEMPLATE_KEYS
    + r")"
    r"(?=$|[.\[])"
)


def is_template_field(where: str) -> bool:
    """True for a params field whose strings are ``{placeholder}`` templates."""
    return _TEMPLATE_FIELD.match(where) is not None


def extract_path(data: Any, path: str) -> Any:
    """Read ``a.b.0.c`` from parsed JSON; returns ``MISSING`` when any part is absent."""
    current = data
    if path in ("", "."):
        return current
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit() and -len(current) <= int(part) < len(current):
            current = current[int(part)]
        else:
            return MISSING
    return current


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


def _status_list(value: Any) -> Any:
    return [value] if isinstance(value, int) else value


class HttpRequestTemplate(_Strict):
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


class TokenDelivery(str, enum.Enum):
    """How the WebSocket handshake carries the token."""

    HEADER = "header"
    QUERY = "query"
    SUBPROTOCOL = "subprotocol"
    NONE = "none"  # the handshake carries no token (a public socket, or auth inside the conversation)


class AuthConfig(_Strict):
    """How test users are created and authenticated.

    In params the registration request is written under the key ``register``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    registration: HttpRequestTemplate | None = Field(
        None,
        alias="register",
        description="Request that creates a test user (placeholders {username}, {password}); omit when the "
        "service does not allow it and list existing users in users.names.",
    )
    login: HttpRequestTemplate | None = Field(
        None, description="Request that returns a token; omit for a service without authentication."
    )
    token_path: str = Field("access_token", description="Dotted JSON path of the token in the login response.")
    header_name: str = Field(
        "Authorization", description="Header that carries the token on HTTP steps (and WS when ws_token_via=header)."
    )
    header_format: str = Field("Bearer {token}", description="Value of that header; {token} is the token.")
    ws_token_via: TokenDelivery = Field(
        TokenDelivery.HEADER, description="How the WebSocket handshake carries the token: header, query or subprotocol."
    )
    query_param: str = Field("token", description="Query parameter name when ws_token_via=query.")
    subprotocol_format: str = Field("{token}", description="Subprotocol value offered when ws_token_via=subprotocol.")
    mode: Literal["login", "static", "none"] | None = Field(
        None,
        description="login (register/login requests), static (a token per user from users.credentials, no "
        "login) or none; default: login when auth.login is given, else none.",
    )

    @property
    def effective_mode(self) -> str:
        return self.mode or ("login" if self.login is not None else "none")

    @model_validator(mode="after")
    def _formats_use_token(self) -> AuthConfig:
        if self.mode == "static" and (self.login is not None or self.registration is not None):
            raise ValueError("auth.mode static takes no register/login requests (tokens come from users.credentials)")
        if self.mode == "login" and self.login is None:
            raise ValueError("auth.mode login needs auth.login")
        for name in ("header_format", "subprotocol_format"):
            unknown = template_placeholders(getattr(self, name)) - {"token"}
            if unknown:
                raise ValueError(f"auth.{name} may only use {{token}}, found {sorted(unknown)}")
        return self


class UserCredential(_Strict):
    """One existing user of a service where users cannot be created (auth.mode static)."""

    name: str = Field(min_length=1, max_length=80, description="Shown in the report; not secret.")
    token: SecretStr = Field(min_length=1, description="The user's token, as a ${NAME} reference.")
    baseline_token: SecretStr | None = Field(None, description="Token on the baseline when it differs.")


class UsersConfig(_Strict):
    """Test users: generated names (prefix + run id + index) or a fixed list."""

    prefix: str = Field("stability-user", min_length=1, max_length=40, description="Prefix of generated usernames.")
    password: SecretStr | None = Field(
        None,
        description="Password for every test user, as a ${NAME} reference; needed only when a register/login "
        "template uses {password}.",
    )
    credentials: list[UserCredential] = Field(
        default_factory=list, description="auth.mode static: one entry per user, in order ({name, token})."
    )
    count: int = Field(
        2,
        ge=1,
        description="Number of users that run the golden path at once (isolation needs >= 2; cap 50, never above 500).",
    )
    names: list[str] = Field(
        default_factory=list,
        description="Existing usernames to use instead of generated ones (when the service cannot register users).",
    )
    unique_per_run: bool = Field(True, description="Append the run id to generated names so reruns do not collide.")
    allow_over_caps: bool = Field(False, description="Allow count above the cap of 50 (never above 500).")

    @model_validator(mode="after")
    def _check(self) -> UsersConfig:
        if self.count > GOLDEN_HARD_CAPS["users"]:
            raise ValueError(f"users.count={self.count} is over the hard limit of {GOLDEN_HARD_CAPS['users']}")
        if self.credentials and len(self.credentials) < self.count:
            raise ValueError(f"users.count is {self.count} but users.credentials lists only {len(self.credentials)}")
        if self.names and len(self.names) < self.count:
            raise ValueError(f"users.count is {self.count} but users.names lists only {len(self.names)}")
        if not self.allow_over_caps and self.count > GOLDEN_CAPS["users"]:
            raise ValueError(
                f"users.count={self.count} is over the cap of {GOLDEN_CAPS['users']:g} (set allow_over_caps: true)"
            )
        return self

    def usernames(self, run_id: str) -> list[str]:
        if self.credentials:
            return [c.name for c in self.credentials[: self.count]]
        if self.names:
            return list(self.names[: self.count])
        middle = f"-{run_id}" if self.unique_per_run else ""
        return [f"{self.prefix}{middle}-{index}" for index in range(self.count)]


class ExpectedEvent(_Strict):
    """One event type the WebSocket step must receive, in order."""

    type: str = Field(description="Value of the event type key, e.g. agent_started.")
    timeout_s: float = Field(10.0, gt=0, le=600, description="Longest wait for this event after the previous one.")


class HttpStep(_Strict):
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
        for var, path in self.capture.items():
            try:
                parse_path(path)
            except ValueError as exc:
                raise ValueError(f"capture[{var!r}]: {exc}") from None
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


class WsStep(_Strict):
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
        clashes = [k for k in ("label_paths", "unmatched", "fail_on") if k in data]
        if clashes:
            raise ValueError(f"the old keys {legacy} and the new keys {clashes} are mutually exclusive")
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


Step = Annotated[HttpStep | WsStep, Field(discriminator="kind")]


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
        known |= step.captures()
    return known


class GoldenPathConfig(_Strict):
    """The steps a real user goes through, run by every test user R times."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    steps: list[Step] = Field(min_length=1, description="HTTP and WebSocket steps in order (kind: http | ws).")
    finally_steps: list[Step] = Field(
        default_factory=list,
        alias="finally",
        description="Steps run after every repetition, pass or fail (a {ref: name} or inline); a step whose "
        "placeholders were never captured is skipped: nothing to undo.",
    )
    repetitions: int = Field(3, ge=1, description="How many times each user runs the steps.")
    allow_over_caps: bool = Field(False, description="Allow repetitions above the cap of 100 (never above 10000).")

    @model_validator(mode="after")
    def _check(self) -> GoldenPathConfig:
        if self.repetitions > GOLDEN_HARD_CAPS["repetitions"]:
            raise ValueError(
                f"golden_path.repetitions={self.repetitions} is over the hard limit of "
                f"{GOLDEN_HARD_CAPS['repetitions']}"
            )
        names = [s.name for s in self.steps]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"golden_path step names must be unique, repeated: {duplicates}")
        if not self.allow_over_caps and self.repetitions > GOLDEN_CAPS["repetitions"]:
            raise ValueError(
                f"golden_path.repetitions={self.repetitions} is over the cap of "
                f"{GOLDEN_CAPS['repetitions']:g} (set allow_over_caps: true)"
            )
        return self

    def ws_steps(self) -> list[WsStep]:
        return [s for s in self.steps if isinstance(s, WsStep)]


class SoakConfig(_Strict):
    """How many WebSocket sessions to run, how many at once, and for how long at most."""

    sessions: int = Field(200, ge=1, description="Sessions to run (cap 5000).")
    concurrency: int = Field(
        20, ge=1, description="Sessions open at once (cap 200; up to 10,000 with allow_over_caps)."
    )
    duration_s: float = Field(120.0, gt=0, description="No session starts after this many seconds (cap 900).")
    step_timeout_s: float | None = Field(
        None, gt=0, le=900, description="Bound on one session's exchange; default: the WS step's timeout_s."
    )
    connect_timeout_s: float = Field(10.0, gt=0, le=120, description="WebSocket opening handshake timeout.")
    close_timeout_s: float = Field(5.0, gt=0, le=60, description="Wait for the closing handshake.")
    ws_step: str | None = Field(
        None, description="Name of the golden path WS step to soak; default: the first WS step."
    )
    max_message_bytes: int = Field(
        1 << 20, ge=1024, le=64 << 20, description="Largest incoming WebSocket message accepted."
    )
    allow_over_caps: bool = Field(False, description="Allow sessions/concurrency/duration_s above their caps.")
    permessage_deflate: bool = Field(
        False,
        description="Offer permessage-deflate on soak sessions (about 57 KB per open connection; off by default).",
    )
    setup_scope: Literal["per_user", "per_session"] = Field(
        "per_user", description="Run soak.setup once per user (shared by its sessions) or before every session."
    )
    setup: list[Step] | None = Field(
        None, description="Steps before the soaked ws step; default: the golden path's HTTP steps before it."
    )
    finally_steps: list[Step] = Field(
        default_factory=list,
        alias="finally",
        description="Steps after every session (per_session) or user (per_user), pass or fail.",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _caps(self) -> SoakConfig:
        for name, cap in SOAK_CAPS.items():
            value = getattr(self, name)
            if value > _ABSOLUTE_CAPS[name]:
                raise ValueError(f"soak.{name}={value} is over the hard limit of {_ABSOLUTE_CAPS[name]:g}")
            if value > cap and not self.allow_over_caps:
                raise ValueError(f"soak.{name}={value} is over the cap of {cap:g} (set allow_over_caps: true)")
        return self


class ScenarioConfig(_Strict):
    """Everything the WebSocket/golden-path section needs to act like the service's users."""

    auth: AuthConfig = Field(default_factory=AuthConfig, description="User creation and authentication.")
    users: UsersConfig = Field(description="Test users.")
    golden_path: GoldenPathConfig = Field(description="The steps of a real user's session.")
    soak: SoakConfig = Field(default_factory=SoakConfig, description="WebSocket soak bounds.")
    conversation_soak: ConversationSoakConfig | None = Field(
        None,
        description="Sessions that each exchange many correlated request/reply messages at a rate, every "
        "message's latency recorded (probes/conversation_soak.py); the websocket section runs it after the "
        "soak, as the first test user.",
    )
    tolerated_failure_rate: float = Field(
        0.01, gt=0, lt=1, description="Highest failure rate still acceptable (0.01 = 1%)."
    )
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Confidence level of the bounds (0.95 = 95%).")
    permessage_deflate: bool = Field(
        True,
        description="Offer permessage-deflate on golden-path and performance WebSocket sessions, as browsers and "
        "most real clients do (default true; false when the service's clients do not); the soak has its own "
        "soak.permessage_deflate (default false: about 57 KB more per open connection).",
    )
    max_capture_bytes: int = Field(
        16_384, ge=256, le=1 << 20, description="Bytes kept per received message/body for the isolation check."
    )
    steps: dict[str, Step] = Field(
        default_factory=dict,
        description="Named steps that golden_path, finally, setup and teardown refer to with "
        "{ref: name}; the key is the step's name.",
    )
    setup: list[Step] = Field(default_factory=list, description="Per user, once, before the golden path and soak.")
    teardown: list[Step] = Field(default_factory=list, description="Per user, once, always, at the very end.")
    leftovers: list[Step] = Field(
        default_factory=list,
        description="Per user, after every finally and teardown: checks that prove nothing "
        "the probe created is left on the target.",
    )
    teardown_timeout_s: float = Field(30.0, gt=0, le=300, description="Bound on all finally/teardown steps of a unit.")

    @model_validator(mode="before")
    @classmethod
    def _resolve_refs(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        named = data.get("steps") or {}
        if not isinstance(named, Mapping):
            return data
        named = {k: {**v, "name": v.get("name", k)} if isinstance(v, Mapping) else v for k, v in named.items()}
        data = {**data, "steps": named}

        def resolve(steps: Any, where: str) -> Any:
            if not isinstance(steps, list):
                return steps
            out = []
            for index, entry in enumerate(steps):
                if isinstance(entry, Mapping) and "ref" in entry:
                    if set(entry) != {"ref"}:
                        raise ValueError(f"{where}[{index}]: a ref step takes only ref, got {sorted(entry)}")
                    if entry["ref"] not in named:
                        hint = difflib.get_close_matches(str(entry["ref"]), list(named), n=1)
                        raise ValueError(
                            f"{where}[{index}].ref: no step named {entry['ref']!r} under scenario.steps"
                            + (f" (did you mean {hint[0]!r}?)" if hint else "")
                        )
                    entry = named[entry["ref"]]
                out.append(entry)
            return out

        for key in ("setup", "teardown", "leftovers"):
            if key in data:
                data[key] = resolve(data[key], key)
        for block, keys in (("golden_path", ("steps", "finally")), ("soak", ("setup", "finally"))):
            if isinstance(data.get(block), Mapping):
                data[block] = {
                    **data[block],
                    **{k: resolve(data[block][k], f"{block}.{k}") for k in keys if k in data[block]},
                }
        return data

    @model_validator(mode="after")
    def _check(self) -> ScenarioConfig:
        self._check_auth()
        builtins = set(BUILTIN_PLACEHOLDERS) - ({"password"} if self.users.password is None else set())
        setup = check_scope(self.setup, builtins, "setup")
        golden = check_scope(self.golden_path.steps, setup, "golden_path.steps")
        # finally may run after any step failed: it sees every capture, and is skipped when one is missing.
        check_scope(self.golden_path.finally_steps, golden, "golden_path.finally")
        check_scope(self.teardown, setup, "teardown")
        check_scope(self.leftovers, setup, "leftovers")
        soaked = self.soak_step()
        if self.soak.setup is not None:
            soak_setup = check_scope(self.soak.setup, setup, "soak.setup")
            if soaked is not None:
                check_scope([soaked], soak_setup, "soak.ws_step")
                check_scope(self.soak.finally_steps, soak_setup | soaked.captures(), "soak.finally")
        else:
            check_scope(self.soak.finally_steps, golden, "soak.finally")
        if self.conversation_soak is not None:
            known = setup | {"nonce", "run_id"}
            unknown = sorted(self.conversation_soak.placeholders() - known)
            if unknown:
                raise ValueError("conversation_soak: " + unknown_placeholder_message(unknown[0], known))
        ws_steps = self.golden_path.ws_steps()
        if self.soak.ws_step is not None and self.soak.ws_step not in {s.name for s in ws_steps}:
            raise ValueError(f"soak.ws_step {self.soak.ws_step!r} is not a ws step of golden_path")
        return self

    def _check_auth(self) -> None:
        mode = self.auth.effective_mode
        if mode == "static" and len(self.users.credentials) < self.users.count:
            raise ValueError(
                f"auth.mode static needs users.credentials with at least users.count={self.users.count} "
                f"entries, got {len(self.users.credentials)}"
            )
        if mode != "static" and self.users.credentials:
            raise ValueError("users.credentials is used only with auth.mode static")
        if self.users.password is None:
            for name, request in (("register", self.auth.registration), ("login", self.auth.login)):
                if request is not None and "password" in (
                    template_placeholders(request.body)
                    | template_placeholders(request.headers)
                    | template_placeholders(request.path)
                ):
                    raise ValueError(f"auth.{name} uses {{password}} but users.password is not set")

    def soak_step(self) -> WsStep | None:
        """The WS step the soak repeats, or None when the golden path has none."""
        for step in self.golden_path.ws_steps():
            if self.soak.ws_step is None or step.name == self.soak.ws_step:
                return step
        return None

    def steps_before(self, step_name: str) -> list[HttpStep]:
        """HTTP steps that precede a step: the per-user prerequisites of a soak."""
        before: list[HttpStep] = []
        for step in self.golden_path.steps:
            if step.name == step_name:
                break
            if isinstance(step, HttpStep):
                before.append(step)
        return before
