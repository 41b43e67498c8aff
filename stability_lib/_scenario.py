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

import enum
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ._errors import ParamsError
from ._templates import MISSING, TemplateError, render_template, template_placeholders

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
_ABSOLUTE_CAPS: dict[str, float] = {"sessions": 100_000, "concurrency": 2_000, "duration_s": 3_600}
# Every user is registered and logged in at once before the golden path starts: 500 is ten times
# the soft cap, as many as the soak's highest default concurrency keeps busy, and small enough that
# setting them all up stays within memory on a small runner.
GOLDEN_HARD_CAPS: dict[str, int] = {"users": 500, "repetitions": 10_000}

# Fields of params that ``render_template`` renders (dotted paths as the params loader names them).
_TEMPLATE_FIELD = re.compile(
    r"scenario\.(?:auth\.(?:register|login)\.(?:path|body|headers)"
    r"|auth\.(?:header_format|subprotocol_format)"
    r"|golden_path\.steps\[\d+\]\.(?:path|body|headers|send))"
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
    header_name: str = Field("Authorization", description="Header that carries the token on HTTP steps (and WS when ws_token_via=header).")
    header_format: str = Field("Bearer {token}", description="Value of that header; {token} is the token.")
    ws_token_via: TokenDelivery = Field(
        TokenDelivery.HEADER, description="How the WebSocket handshake carries the token: header, query or subprotocol."
    )
    query_param: str = Field("token", description="Query parameter name when ws_token_via=query.")
    subprotocol_format: str = Field("{token}", description="Subprotocol value offered when ws_token_via=subprotocol.")

    @model_validator(mode="after")
    def _formats_use_token(self) -> AuthConfig:
        for name in ("header_format", "subprotocol_format"):
            unknown = template_placeholders(getattr(self, name)) - {"token"}
            if unknown:
                raise ValueError(f"auth.{name} may only use {{token}}, found {sorted(unknown)}")
        return self


class UsersConfig(_Strict):
    """Test users: generated names (prefix + run id + index) or a fixed list."""

    prefix: str = Field("stability-user", min_length=1, max_length=40, description="Prefix of generated usernames.")
    password: SecretStr = Field(
        description="Password for every test user; write it as a ${NAME} environment reference in params."
    )
    count: int = Field(
        2, ge=1, description="Number of users that run the golden path at once (isolation needs >= 2; cap 50, "
        "never above 500)."
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
        if self.names and len(self.names) < self.count:
            raise ValueError(f"users.count is {self.count} but users.names lists only {len(self.names)}")
        if not self.allow_over_caps and self.count > GOLDEN_CAPS["users"]:
            raise ValueError(
                f"users.count={self.count} is over the cap of {GOLDEN_CAPS['users']:g} (set allow_over_caps: true)"
            )
        return self

    def usernames(self, run_id: str) -> list[str]:
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

    _norm_status = field_validator("expect_status", mode="before")(_status_list)

    def placeholders(self) -> set[str]:
        return template_placeholders(self.path) | template_placeholders(self.body) | template_placeholders(self.headers)


class WsStep(_Strict):
    """A WebSocket exchange: connect, send one message, read events until the end event."""

    kind: Literal["ws"] = Field("ws", description="Step kind.")
    name: str = Field(min_length=1, max_length=80, description="Step name shown in the report.")
    path: str = Field(description="WebSocket path template relative to the base URL, e.g. /ws.")
    send: Any = Field(
        description="JSON message template; put {nonce} into user content so isolation can be checked."
    )
    event_timeout_s: float = Field(10.0, gt=0, le=600, description="Default wait for each expected event.")
    expect: list[ExpectedEvent] = Field(
        default_factory=list,
        description="Event types that must arrive in this order (plain strings use event_timeout_s).",
    )
    end_event: str | None = Field(
        None, description="Event type that ends the exchange; default: the last expected event."
    )
    event_type_key: str = Field("type", description="Key of the event type in each JSON event.")
    timeout_s: float = Field(60.0, gt=0, le=900, description="Bound on the whole exchange after the message is sent.")
    other_events: Literal["ignore", "fail"] = Field(
        "ignore", description="What an event type that is not expected does: ignore it or fail the session."
    )
    fail_events: list[str] = Field(
        default_factory=lambda: ["error"], description="Event types that fail the session at once."
    )

    @field_validator("expect", mode="before")
    @classmethod
    def _strings_to_events(cls, value: Any, info: Any) -> Any:
        if not isinstance(value, list):
            return value
        default_timeout = (info.data or {}).get("event_timeout_s", 10.0)
        return [{"type": v, "timeout_s": default_timeout} if isinstance(v, str) else v for v in value]

    @model_validator(mode="after")
    def _has_end(self) -> WsStep:
        if self.end_event is None and not self.expect:
            raise ValueError(f"ws step {self.name!r} needs expect events or an end_event")
        return self

    @property
    def final_event(self) -> str:
        return self.end_event if self.end_event is not None else self.expect[-1].type

    def placeholders(self) -> set[str]:
        return template_placeholders(self.path) | template_placeholders(self.send)


Step = Annotated[HttpStep | WsStep, Field(discriminator="kind")]


class GoldenPathConfig(_Strict):
    """The steps a real user goes through, run by every test user R times."""

    steps: list[Step] = Field(min_length=1, description="HTTP and WebSocket steps in order (kind: http | ws).")
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
        known = set(BUILTIN_PLACEHOLDERS)
        for step in self.steps:
            unknown = step.placeholders() - known
            if unknown:
                raise ValueError(
                    f"golden_path step {step.name!r} uses {sorted(unknown)} which no earlier step captures"
                )
            if isinstance(step, HttpStep):
                known |= set(step.capture)
        return self

    def ws_steps(self) -> list[WsStep]:
        return [s for s in self.steps if isinstance(s, WsStep)]


class SoakConfig(_Strict):
    """How many WebSocket sessions to run, how many at once, and for how long at most."""

    sessions: int = Field(200, ge=1, description="Sessions to run (cap 5000).")
    concurrency: int = Field(20, ge=1, description="Sessions open at once (cap 200).")
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
    tolerated_failure_rate: float = Field(
        0.01, gt=0, lt=1, description="Highest failure rate still acceptable (0.01 = 1%)."
    )
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Confidence level of the bounds (0.95 = 95%).")
    max_capture_bytes: int = Field(
        16_384, ge=256, le=1 << 20, description="Bytes kept per received message/body for the isolation check."
    )

    @model_validator(mode="after")
    def _check(self) -> ScenarioConfig:
        ws_steps = self.golden_path.ws_steps()
        if self.soak.ws_step is not None and self.soak.ws_step not in {s.name for s in ws_steps}:
            raise ValueError(f"soak.ws_step {self.soak.ws_step!r} is not a ws step of golden_path")
        return self

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
