"""Section configs of the probe families (WebSocket soak, golden path, isolation).

The scenario itself (auth, steps, soak caps) lives in params' top-level
``scenario`` block (see ``probes.scenario.ScenarioConfig``); these switch the sections
on and tune what each one asks of it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .conversation_spec import ConversationItem, MatchRule, compile_conditions

__all__ = [
    "WebSocketSectionConfig",
    "GoldenPathSectionConfig",
    "IsolationSectionConfig",
    "TargetAuth",
    "TargetConfig",
    "HealthEndpoint",
    "HealthWebSocket",
    "HealthConfig",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True


class _LocustOptions(_Section):
    """Who runs a section's traffic: our own engine, or a headless Locust master and its workers."""

    engine: Literal["own", "locust"] = Field(
        "own",
        description="own: our asyncio engine in the section's process; locust: a headless Locust master and "
        "locust_workers local worker processes run it (the soak: one fixed sample of scenario.soak.sessions per "
        "side; the golden path and the isolation check: each test user taken by one Locust user on some worker).",
    )
    locust_workers: int = Field(2, ge=0, le=64, description="Local Locust worker processes (engine: locust).")
    locust_master_bind: str = Field(
        "127.0.0.1:0",
        max_length=300,
        description="HOST:PORT the Locust master listens on (port 0: a free port); remote workers connect here.",
    )
    expect_workers: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Workers the master waits for before starting, local ones included (default: locust_workers); "
        "more than locust_workers waits for workers started on other machines.",
    )

    @model_validator(mode="after")
    def _workers(self) -> Self:
        if self.engine == "locust":
            total = self.expect_workers if self.expect_workers is not None else self.locust_workers
            if total < 1:
                raise ValueError("the locust engine needs at least one worker (locust_workers or expect_workers)")
            if total < self.locust_workers:
                raise ValueError("expect_workers counts the local workers too: it cannot be below locust_workers")
            host, sep, port = self.locust_master_bind.rpartition(":")
            if not sep or not host or not port.isdigit() or int(port) > 65535:
                raise ValueError("locust_master_bind must be HOST:PORT (port 0-65535)")
        return self


class WebSocketSectionConfig(_LocustOptions):
    """Soak: many sessions at bounded concurrency (scenario.soak); counts outcomes and close codes."""

    expect_fix: bool = Field(
        False,
        description="The change claims to fix 1011/1006 closes: soak the baseline target too and require the "
        "candidate's rate to be lower (one-sided Fisher exact test at 5%) and within the tolerated rate.",
    )
    sequential: bool = Field(
        True,
        description="Soak in rounds and stop as soon as every rate claim is decided (anytime-valid confidence "
        "sequences), within scenario.soak.sessions per side and scenario.soak.duration_s; false: one fixed soak.",
    )
    round_sessions: int | None = Field(
        None, ge=1, le=5000, description="Sessions per side and round (default 100, at most scenario.soak.sessions)."
    )

    @model_validator(mode="after")
    def _locust_soak_is_one_sample(self) -> Self:
        """On Locust the soak is one fixed sample of scenario.soak.sessions per side: rounds set beside
        it would be accepted and ignored."""
        if self.engine == "locust":
            asked = [name for name in ("round_sessions", "sequential") if name in self.model_fields_set]
            if asked and (asked[0] == "round_sessions" or self.sequential):
                raise ValueError(
                    f"{asked[0]} does not apply with engine: locust (Locust runs one fixed soak of "
                    "scenario.soak.sessions per side, judged by the fixed-sample rules); remove it"
                )
        return self


class GoldenPathSectionConfig(_LocustOptions):
    """The golden path for scenario.users.count users at once, scenario.golden_path.repetitions times each."""


class IsolationSectionConfig(_LocustOptions):
    """Multi-user isolation: the golden path with a unique nonce per message; no user may see another's."""

    users: int | None = Field(None, ge=2, le=50, description="Users at once (default: scenario.users.count).")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _checked_url(value: str, schemes: tuple[str, ...]) -> str:
    """A URL that parses, with one of ``schemes`` and a host. Messages never echo the value:
    it may hold a secret from the environment."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        reason = "unbalanced '[' or ']' in the host" if "IPv6" in str(exc) else "the port is not a number 0-65535"
        raise ValueError(f"not a valid URL ({reason})") from None
    if parts.scheme.lower() not in schemes:
        raise ValueError(f"the scheme must be {' or '.join(s + '://' for s in schemes)}")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    return value


def _checked_path(value: str) -> str:
    """A path on the target, from its root: one leading '/', then no backslash, whitespace or control
    character. A URL (``http://other/...``), ``//host/...`` or ``@host/...`` would send the request, and
    the target's auth headers, to another host, and a claim would then be about that host. Messages
    never echo the value (an environment value may be in it)."""
    if not value.startswith("/") or value.startswith("//"):
        raise ValueError(
            "must be a path on the target starting with a single '/' (e.g. /health), "
            "not a URL, //host or a relative path"
        )
    if "\\" in value:
        raise ValueError("must not contain a backslash")
    if any(c.isspace() or unicodedata.category(c) == "Cc" for c in value):
        raise ValueError("must not contain whitespace or control characters (percent-encode them, e.g. %20)")
    return value


# RFC 9110 field names: a token.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _checked_headers(headers: dict[str, str]) -> dict[str, str]:
    """Header names that are HTTP tokens and values HTTP can carry (printable ASCII, inner tabs), refused
    here rather than by the HTTP library in the middle of a section. Values are never echoed: they
    usually come from the environment."""
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(
                f"header name {name[:40]!r} is not a valid HTTP header name "
                "(letters, digits and !#$%&'*+-.^_`|~; no spaces or ':')"
            )
        if any(c in "\r\n\0" for c in value):
            raise ValueError(
                f"header {name}: the value holds a line break or NUL (a trailing newline in the environment variable?)"
            )
        if value != value.strip(" \t"):
            raise ValueError(f"header {name}: the value starts or ends with whitespace")
        if not all(" " <= c <= "~" or c == "\t" for c in value):
            raise ValueError(f"header {name}: the value holds a control or non-ASCII character (HTTP sends ASCII)")
    return headers


def _rereading(info: ValidationInfo) -> bool:
    """Params of a stored run re-read for its report (``LenientEnv``): the addresses were checked
    when the run started, and an unset variable's marker is not a URL."""
    return bool(info.context and info.context.get("rereading"))


class TargetAuth(_Strict):
    """Credentials sent on every request to a target that is not made on behalf of a test user:
    health endpoints, the health WebSocket, contract spec fetches. Values are ``${NAME}`` references."""

    headers: dict[str, str] = Field(default_factory=dict, description="Headers on every such request.")
    query: dict[str, str] = Field(
        default_factory=dict, description="Query parameters on every such request (discouraged: proxies log them)."
    )

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        return value if _rereading(info) else _checked_headers(value)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(v for v in (*self.headers.values(), *self.query.values()) if v)


class TargetConfig(_Strict):
    name: str = Field(
        "candidate", max_length=100, description="Label shown in the report (e.g. 'candidate', 'v2.3.1')."
    )
    base_url: str = Field(
        ...,
        max_length=2048,
        description="Base HTTP URL of the service (http:// or https://), e.g. https://staging.example.com",
    )
    ws_base_url: str | None = Field(
        None,
        max_length=2048,
        description="Base WebSocket URL (ws:// or wss://); derived from base_url (http->ws, https->wss) when omitted.",
    )
    commit: str | None = Field(
        None, max_length=200, description="Commit or version of the service, recorded in baselines."
    )
    auth: TargetAuth = Field(
        default_factory=TargetAuth,
        description="Headers/query sent on health, health WebSocket and spec fetches (not on user requests).",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str, info: ValidationInfo) -> str:
        return value if _rereading(info) else _checked_url(value, ("http", "https"))

    @field_validator("ws_base_url")
    @classmethod
    def _ws_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return value if value is None or _rereading(info) else _checked_url(value, ("ws", "wss"))

    def websocket_url(self, path: str) -> str:
        base = self.ws_base_url or re.sub(r"^http", "ws", self.base_url, count=1)
        return base.rstrip("/") + path


def _status_list(value: Any) -> Any:
    return [value] if isinstance(value, int) else value


class HealthEndpoint(_Strict):
    path: str = Field(..., description="Path on the target, from its root (e.g. /health); never a URL.")
    method: Literal["GET", "HEAD", "OPTIONS"] = "GET"
    expect_status: list[int] = Field(default_factory=lambda: [200], description="Expected status: an int or a list.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers, on top of target.auth.")
    json_keys: list[str] = Field(default_factory=list, description="Keys the JSON body must hold.")
    check: dict[str, Any] = Field(default_factory=dict, description="Conditions on the JSON body ({path: cond}).")

    _norm_status = field_validator("expect_status", mode="before")(_status_list)
    _path = field_validator("path")(_checked_path)
    _headers = field_validator("headers")(_checked_headers)

    @model_validator(mode="after")
    def _conditions(self) -> HealthEndpoint:
        try:
            compile_conditions(self.check, allow_star=True)
        except ValueError as exc:
            raise ValueError(f"check{exc}") from None
        return self


class HealthWebSocket(_Strict):
    """The old form echoes ``message``; the new form runs a short ``conversation`` (same grammar as a ws step)."""

    path: str = Field(..., description="WebSocket path on the target, from its root, e.g. /ws/echo; never a URL.")
    message: str = "stability-proof ping"
    expect_echo: bool = True
    subprotocols: list[str] = Field(default_factory=list, description="Subprotocols offered, in this order.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra handshake headers, on top of target.auth.")
    conversation: list[ConversationItem] = Field(
        default_factory=list, description="Sends and expects, as in a ws step; replaces the echo when given."
    )
    ignore: list[MatchRule] = Field(default_factory=list, description="Messages that are fine and mean nothing.")
    fail_on: list[MatchRule] = Field(default_factory=list, description="Messages that mean the service failed.")
    label_paths: list[str | list[str]] = Field(
        default_factory=lambda: list[str | list[str]](["type"]), description="Message label paths."
    )
    timeout_s: float | None = Field(None, gt=0, le=60, description="Bound on the exchange; default: health timeout_s.")

    _path = field_validator("path")(_checked_path)
    _headers = field_validator("headers")(_checked_headers)

    @model_validator(mode="after")
    def _one_form(self) -> HealthWebSocket:
        """Each form's own fields only: a field of the other form would be accepted and do nothing (with a
        conversation, ``expect_echo: false`` would even have switched its verdict off)."""
        given = self.model_fields_set
        if self.conversation:
            echo_only = sorted({"message", "expect_echo"} & given)
            if echo_only:
                raise ValueError(
                    f"{echo_only[0]} belongs to the echo form; a conversation says what it sends and expects itself"
                )
        else:
            conversation_only = sorted({"ignore", "fail_on", "label_paths"} & given)
            if conversation_only:
                raise ValueError(f"{conversation_only[0]} applies to a conversation; the echo form has none")
        return self


class HealthConfig(_Strict):
    enabled: bool = True
    samples: int = Field(5, ge=1, le=200, description="Requests per endpoint.")
    timeout_s: float = Field(5.0, gt=0, le=60)
    endpoints: list[HealthEndpoint] = Field(
        default_factory=lambda: [HealthEndpoint(path="/health")],
        description="Each is its own check (claim health.http[.METHOD]<path, '/' as '.'>), judged on its own "
        "samples; one whose id an earlier endpoint has (the same method and path again, or /health/ after "
        "/health) gets .2, .3, ... Requests keep no cookie from one answer to the next.",
    )
    websocket: HealthWebSocket | None = None
