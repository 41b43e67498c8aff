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
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, SecretStr, model_validator

from .conversation_spec import (
    ConversationSoakConfig,
    unknown_placeholder_message,
)
from .steps import (
    BUILTIN_PLACEHOLDERS,
    ExpectedEvent,
    HttpMethod,
    HttpRequestTemplate,
    HttpStep,
    StrictModel,
    WsStep,
    check_scope,
)
from .templates import MISSING, TemplateError, render_template, template_placeholders

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
    "raw_scenario_on_side",
    "SOAK_CAPS",
    "GOLDEN_CAPS",
    "BUILTIN_PLACEHOLDERS",
    "render_template",
    "template_placeholders",
    "is_template_field",
    "GOLDEN_HARD_CAPS",
    "extract_path",
    "MISSING",
    "HttpMethod",
    "check_scope",
]


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


class TokenDelivery(str, enum.Enum):
    """How the WebSocket handshake carries the token."""

    HEADER = "header"
    QUERY = "query"
    SUBPROTOCOL = "subprotocol"
    NONE = "none"  # the handshake carries no token (a public socket, or auth inside the conversation)


class AuthConfig(StrictModel):
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


class UserCredential(StrictModel):
    """One existing user of a service where users cannot be created (auth.mode static)."""

    name: str = Field(min_length=1, max_length=80, description="Shown in the report; not secret.")
    token: SecretStr = Field(min_length=1, description="The user's token, as a ${NAME} reference.")
    baseline_token: SecretStr | None = Field(None, description="Token on the baseline when it differs.")


class UsersConfig(StrictModel):
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
        if self.credentials and self.names:  # credentials name the users: names would be ignored
            raise ValueError("users.names and users.credentials both name the users; give one of them")
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


Step = Annotated[HttpStep | WsStep, Field(discriminator="kind")]


class GoldenPathConfig(StrictModel):
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


class SoakConfig(StrictModel):
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


class ScenarioConfig(StrictModel):
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
        self._check_setup_kinds()
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

    def _check_setup_kinds(self) -> None:
        """A user's setup runs HTTP steps only (its WebSocket steps would be skipped, their captures missing)."""
        blocks = [("setup", self.setup)]
        if self.soak.setup_scope == "per_user":
            blocks.append(("soak.setup", self.soak.setup or []))
        for where, steps in blocks:
            for index, step in enumerate(steps):
                if isinstance(step, WsStep):
                    raise ValueError(
                        f"{where}[{index}] ({step.name}) is a ws step: a user's setup runs HTTP steps only; put it "
                        "in golden_path.steps, or in soak.setup with soak.setup_scope: per_session"
                    )

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

    def soak_user_setup(self) -> list[HttpStep]:
        """What each soak user runs once before its sessions: the scenario's own ``setup``, then ``soak.setup``
        (when it runs per user) or, without one, the golden path's HTTP steps before the soaked step."""
        soak, step = self.soak, self.soak_step()
        if soak.setup is None:
            own = self.steps_before(step.name) if step is not None else []
        else:
            own = [] if soak.setup_scope == "per_session" else [s for s in soak.setup if isinstance(s, HttpStep)]
        return [*(s for s in self.setup if isinstance(s, HttpStep)), *own]

    def soak_user_undo(self) -> list[HttpStep | WsStep]:
        """What each soak user runs once after its sessions: ``soak.finally`` (when it runs per user), then the
        scenario's own ``teardown``."""
        per_user = self.soak.finally_steps if self.soak.setup_scope != "per_session" else []
        return [*per_user, *self.teardown]

    def on_side(self, side: str) -> ScenarioConfig:
        """The scenario as it runs against ``side`` ("candidate" or "baseline"): on the baseline, each
        static user whose credentials give a ``baseline_token`` uses it as its token."""
        credentials = self.users.credentials
        if side != "baseline" or not any(c.baseline_token is not None for c in credentials):
            return self
        swapped = [
            c if c.baseline_token is None else c.model_copy(update={"token": c.baseline_token}) for c in credentials
        ]
        return self.model_copy(update={"users": self.users.model_copy(update={"credentials": swapped})})

    def steps_before(self, step_name: str) -> list[HttpStep]:
        """HTTP steps that precede a step: the per-user prerequisites of a soak."""
        before: list[HttpStep] = []
        for step in self.golden_path.steps:
            if step.name == step_name:
                break
            if isinstance(step, HttpStep):
                before.append(step)
        return before


def raw_scenario_on_side(raw: Mapping[str, Any], side: str) -> dict[str, Any]:
    """``ScenarioConfig.on_side`` for the raw params block (its ``${NAME}`` references unresolved), as
    processes that resolve the environment themselves (Locust workers) are given it."""
    users = raw.get("users")
    if side != "baseline" or not isinstance(users, Mapping) or not isinstance(users.get("credentials"), list):
        return dict(raw)
    credentials = users["credentials"]
    swapped = [
        {**c, "token": c["baseline_token"]} if isinstance(c, Mapping) and c.get("baseline_token") is not None else c
        for c in credentials
    ]
    return {**raw, "users": {**users, "credentials": swapped}}
