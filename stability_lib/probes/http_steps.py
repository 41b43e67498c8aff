"""HTTP steps and test users (I/O, kept thin): one templated request with a whole-request deadline and a
capped, redacted body; a user's setup (register, login or a static token, prerequisite steps).

Each user gets its own ``httpx.AsyncClient``: one client shared under concurrency serialises on its
pool (encode/httpx#3215) and its latency would be the client's, not the service's. Every client
shares one ``ssl.SSLContext`` (building one costs 13-16 ms of CPU: field notes). Proxies from the
environment are not used: a probe measures the service directly. The clients' HTTP/1.1 transport
(``LeanTransport``) is in ``probes.http_transport``, and so is the path below httpx's client layer
that ``fetch_capped`` takes when the client has nothing for that layer to do (``direct_request``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
import uuid
from collections.abc import AsyncIterator, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..core.origins import auth_may_go, origin, origin_of, origin_text
from .conversation import check_body
from .http_transport import LeanTransport, direct_request, send_direct, send_directly, shared_ssl_context
from .message_checks import parse_json
from .scenario import (
    MISSING,
    AuthConfig,
    HttpRequestTemplate,
    HttpStep,
    ScenarioConfig,
    TemplateError,
    extract_path,
    render_template,
)
from .sessions import cap_keeping_markers

__all__ = [
    "CappedBody",
    "HttpStepResult",
    "HttpRequestPlan",
    "SetupRequest",
    "UserSetupPlan",
    "MAX_HTTP_BODY_BYTES",
    "PreparedUser",
    "UserSetup",
    "new_nonce",
    "redact",
    "auth_headers",
    "absolute_url",
    "off_target",
    "fetch_capped",
    "build_request",
    "judge_response",
    "run_http_step",
    "setup_context",
    "user_setup_plan",
    "advance_setup",
    "login_step",
    "login_outcome",
    "prepare_user",
    "log_in_again",
    "cookies_of",
    "new_http_client",
    "shared_ssl_context",
    "LeanTransport",
]

MAX_HTTP_BODY_BYTES = 4 << 20  # bodies are read up to this; beyond it the step fails (untrusted size)


def _ns_to_s(ns: int) -> float:
    return ns / 1e9


def new_nonce() -> str:
    """A marker no other session can produce: ``nonce-<uuid4 hex>``."""
    return f"nonce-{uuid.uuid4().hex}"


def redact(text: str, secrets: Sequence[str]) -> str:
    """Replace every secret (password, token) in untrusted text before it is kept."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text


@dataclass(frozen=True)
class HttpStepResult:
    """One HTTP request as observed: status, duration, capped and redacted body."""

    name: str
    method: str
    path: str
    ok: bool
    status: int | None
    duration_s: float
    error: str = ""
    body: str = field(default="", repr=False)
    captured: tuple[str, ...] = ()

    def to_dict(self, include_body: bool = False) -> dict[str, Any]:
        out = {
            "name": self.name,
            "method": self.method,
            "path": self.path,
            "ok": self.ok,
            "status": self.status,
            "duration_s": self.duration_s,
            "error": self.error,
            "captured": list(self.captured),
        }
        if include_body:
            out["body"] = self.body
        return out


@dataclass(frozen=True)
class CappedBody:
    """A response read under a size cap: the status and at most ``max_bytes`` of body."""

    status: int
    content: bytes = field(repr=False)
    truncated: bool  # the body was longer: only the first ``max_bytes`` were read


async def fetch_capped(
    client: httpx.AsyncClient, method: str, url: str, *, max_bytes: int, deadline_s: float, **request: Any
) -> CappedBody:
    """One request with one deadline over connect, headers and the whole body, the body cut at ``max_bytes``.

    httpx's timeout bounds each read only: a server dripping a byte at a time would hold it forever.
    Raises TimeoutError at the deadline and ``httpx.HTTPError`` for transport failures. A cut body
    is not read further: the connection is closed instead of being drained.
    """
    # identity: the cap counts bytes after decompression, and one small gzip chunk can inflate a thousandfold.
    headers = {"Accept-Encoding": "identity", **dict(request.get("headers") or {})}
    async with asyncio.timeout(deadline_s):
        # Below httpx's client layer where it would only send the request (``direct_request``).
        direct = None
        if request.keys() <= {"headers", "json"}:
            direct = direct_request(client, method, url, headers, request.get("json"), deadline_s)
        if direct is None:
            async with client.stream(method, url, timeout=deadline_s, **{**request, "headers": headers}) as response:
                return await _read_capped(response, response.aiter_bytes(), max_bytes)
        response, body = await send_direct(client, *direct)
        try:
            return await _read_capped(response, body, max_bytes)
        finally:
            await response.aclose()


async def _read_capped(response: httpx.Response, body: AsyncIterator[bytes], max_bytes: int) -> CappedBody:
    chunks: list[bytes] = []
    size = 0
    truncated = False
    async for chunk in body:
        room = max_bytes - size
        if len(chunk) > room:
            chunks.append(chunk[:room])
            truncated = True
            break
        chunks.append(chunk)
        size += len(chunk)
    return CappedBody(response.status_code, b"".join(chunks), truncated)


def absolute_url(client: httpx.AsyncClient, path: str) -> str:
    """``path`` joined to the client's base URL as httpx joins it, for the plain case of a path from the root.

    httpx parses a relative URL and then joins it to the base (two parses, about a tenth of a step's
    CPU); the joined string parses to the same URL (tests/test_http_transport.py checks it over
    generated paths). Anything else (``//host``, a scheme, a fragment) is left to httpx.
    """
    base = str(client.base_url)  # a base with an empty path (httpx's "/") ends without the slash
    if "?" in base or "#" in base or not path.startswith("/") or path.startswith("//") or "#" in path or "\\" in path:
        return path
    return (base if base.endswith("/") else base + "/") + path[1:]


# An absolute http(s) URL whose authority every parser reads alike: no user info, no backslash, no
# space or control character, a plain host name or address (or a bracketed IPv6 one), a numeric port.
_PLAIN_URL = re.compile(r"(https?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?(?=[/?#]|\Z)", re.IGNORECASE)


def off_target(target: str, base_url: str | httpx.URL) -> str | None:
    """Why a rendered request ``target`` would not go to the origin of ``base_url`` (a reason naming the
    origin, to fail the step with, nothing sent), or None when it goes there.

    A path from the root (one leading '/') is joined to the base URL by both engines' clients (httpx and
    Locust's ``HttpSession``) and stays there: that case costs two comparisons. Anything else (a captured
    link, a value from the environment) must be an http(s) URL on the target's origin (``core.origins``:
    the same origin, or the same host from http:80 to https:443): a URL to another host, ``//host/...``,
    ``@host`` (which Locust would append to the base URL's authority) or a relative path is refused.
    The reason names origins only; the caller puts in the path as the evidence keeps it (redacted).
    """
    if target[:1] == "/" and target[1:2] not in ("/", "\\"):
        return None
    here = origin_of(str(base_url))  # made a string only here: the common case above needs none
    plain = _PLAIN_URL.match(target)
    if plain is not None:
        port = int(plain[3]) if plain[3] else None
        there = origin(plain[1], plain[2], port)
        if here is not None and auth_may_go(here, there):
            return None
        return f"leads to another origin {origin_text(there)}, not the target's {origin_text(here)}"
    if target.startswith("//"):  # scheme-relative: another host
        other = origin_of(f"{here[0] if here else 'http'}:{target}")
        return f"leads to another origin {origin_text(other)}, not the target's {origin_text(here)}"
    return (
        f"leads to another origin or to none: not a path from the root of the target {origin_text(here)} "
        "(one leading '/') nor a plain URL on it"
    )


def auth_headers(auth: AuthConfig, token: str | None) -> dict[str, str]:
    if token is None:
        return {}
    return {auth.header_name: str(render_template(auth.header_format, {"token": token}))}


@dataclass(frozen=True)
class HttpRequestPlan:
    """One templated request, rendered: what to send, and the path as evidence keeps it (secrets replaced)."""

    method: str
    target: str  # the rendered path (or URL); sent only when ``off_target`` finds it on the target
    kept_path: str = field(repr=False)
    body: Any = field(repr=False)  # the JSON body, None for none
    headers: dict[str, str] = field(repr=False)  # the step's headers, then the auth header

    def failed(
        self, name: str, duration_s: float, error: str, status: int | None = None, kept: str = ""
    ) -> HttpStepResult:
        return HttpStepResult(name, self.method, self.kept_path, False, status, duration_s, error, kept)

    def not_sent(self, why: str, secrets: Sequence[str]) -> str:
        """The error of a step not sent because its path leaves the target (``off_target``'s ``why``)."""
        return redact(f"path {self.kept_path!r} {why}: not sent (the request would carry the auth there)", secrets)


def build_request(
    step: HttpStep | HttpRequestTemplate,
    context: Mapping[str, Any],
    *,
    auth: AuthConfig,
    token: str | None,
    secrets: Sequence[str],
) -> HttpRequestPlan:
    """Render a step's request (pure; raises TemplateError). Both engines send it: asyncio and gevent."""
    target = str(render_template(step.path, context))
    body = render_template(step.body, context) if step.body is not None else None
    headers = {str(k): str(v) for k, v in render_template(step.headers, context).items()}
    headers.update(auth_headers(auth, token))
    # What is kept is redacted: a token in a path must not reach evidence.
    return HttpRequestPlan(step.method, target, redact(target, secrets), body, headers)


def judge_response(
    step: HttpStep | HttpRequestTemplate,
    name: str,
    request: HttpRequestPlan,
    context: Mapping[str, Any],
    *,
    status: int,
    content: bytes,
    truncated: bool,
    duration_s: float,
    secrets: Sequence[str],
    capture_bytes: int,
) -> tuple[HttpStepResult, dict[str, Any]]:
    """What a response means for the step (pure): status, body checks, captures; the result and the captured variables.

    The body is parsed as JSON only for ``capture`` and ``check`` (and login's token path); the kept
    body text is capped at ``capture_bytes`` and has secrets replaced.
    """
    if truncated:  # captures need the whole JSON document: a cut body fails the step
        return request.failed(name, duration_s, "body_too_large", status), {}
    text = content.decode("utf-8", errors="replace")
    kept = cap_keeping_markers(redact(text, secrets), capture_bytes) if capture_bytes > 0 else ""
    if status not in step.expect_status:
        return request.failed(name, duration_s, f"status {status}, expected {step.expect_status}", status, kept), {}
    captures = dict(getattr(step, "capture", {}) or {})
    conditions = dict(getattr(step, "check", {}) or {})
    captured: dict[str, Any] = {}
    if captures or conditions:
        data, why = parse_json(text)
        if why:
            return request.failed(name, duration_s, f"response is {why}", status, kept), {}
        why = check_body(conditions, data, context)
        if why:  # the body came without the content the step requires
            return request.failed(name, duration_s, redact(why, secrets), status, kept), {}
        for var, json_path in captures.items():
            value = extract_path(data, json_path)
            if value is MISSING:
                error = f"capture {var}: nothing at {json_path!r} in the response"
                return request.failed(name, duration_s, error, status, kept), {}
            captured[var] = value
    result = HttpStepResult(name, step.method, request.kept_path, True, status, duration_s, "", kept, tuple(captured))
    return result, captured


async def run_http_step(
    client: httpx.AsyncClient,
    step: HttpStep | HttpRequestTemplate,
    name: str,
    context: Mapping[str, Any],
    *,
    auth: AuthConfig,
    token: str | None,
    secrets: Sequence[str],
    capture_bytes: int,
) -> tuple[HttpStepResult, dict[str, Any]]:
    """Send one templated request; return what was observed and the captured variables (``judge_response``)."""
    request = build_request(step, context, auth=auth, token=token, secrets=secrets)
    started = time.monotonic_ns()
    elsewhere = off_target(request.target, client.base_url)
    if elsewhere is not None:  # nothing is sent: the request would carry the user's token to another host
        return request.failed(name, 0.0, request.not_sent(elsewhere, secrets)), {}
    try:
        response = await fetch_capped(
            client,
            request.method,
            absolute_url(client, request.target),
            max_bytes=MAX_HTTP_BODY_BYTES,
            deadline_s=step.timeout_s,
            json=request.body,
            headers=request.headers,
        )
    except (TimeoutError, httpx.TimeoutException):
        return request.failed(name, _ns_to_s(time.monotonic_ns() - started), "timeout"), {}
    except httpx.HTTPError as exc:
        return request.failed(name, _ns_to_s(time.monotonic_ns() - started), type(exc).__name__), {}
    except RecursionError:  # a captured value that parsed just under the limit cannot be encoded again
        return request.failed(name, 0.0, "request body nested too deeply to encode: not sent"), {}
    return judge_response(
        step,
        name,
        request,
        context,
        status=response.status,
        content=response.content,
        truncated=response.truncated,
        duration_s=_ns_to_s(time.monotonic_ns() - started),
        secrets=secrets,
        capture_bytes=capture_bytes,
    )


@dataclass(frozen=True)
class UserSetup:
    """How a test user's setup went (register, login, prerequisite steps); no secrets."""

    index: int
    username: str
    ok: bool
    error: str = ""
    steps: tuple[HttpStepResult, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "username": self.username,
            "ok": self.ok,
            "error": self.error,
            "steps": [s.to_dict() for s in self.steps],
        }


@dataclass(frozen=True)
class PreparedUser:
    """A logged-in test user: the token and captured variables live only in memory."""

    setup: UserSetup
    token: str | None = field(default=None, repr=False)
    variables: dict[str, Any] = field(default_factory=dict, repr=False)
    password: str = field(default="", repr=False)
    # The cookies the service set during setup (a session cookie is a login too): a later client of the
    # same user starts with them. (name, value, domain, path) each.
    cookies: tuple[tuple[str, str, str, str], ...] = field(default=(), repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.password, self.token) if s)

    def context(self, run_id: str, **extra: Any) -> dict[str, Any]:
        return {
            "username": self.setup.username,
            "password": self.password,
            "token": self.token or "",
            "user_index": self.setup.index,
            "run_id": run_id,
            "repetition": 0,
            **self.variables,
            **extra,
        }


@dataclass(frozen=True)
class SetupRequest:
    """One request of a user's setup, for the engine to send with its ``run_http_step``."""

    step: HttpStep | HttpRequestTemplate
    name: str
    context: Mapping[str, Any] = field(repr=False)
    token: str | None = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)
    capture_bytes: int


# Yields the requests to send, is sent what each observed (or thrown the TemplateError that rendering it
# raised), returns the user.
UserSetupPlan = Generator[SetupRequest, tuple[HttpStepResult, dict[str, Any]], PreparedUser]


def setup_context(username: str, password: str, index: int, run_id: str) -> dict[str, Any]:
    """The template variables of a user's register and login requests (a fresh ``{nonce}`` each time)."""
    return {
        "username": username,
        "password": password,
        "user_index": index,
        "run_id": run_id,
        "repetition": 0,
        "nonce": new_nonce(),
    }


def user_setup_plan(
    scenario: ScenarioConfig, index: int, username: str, run_id: str, prerequisite_steps: Sequence[HttpStep] = ()
) -> UserSetupPlan:
    """A user's setup without I/O, for both engines (asyncio, gevent): register and log in (auth.mode login)
    or take the user's static token, then the prerequisite HTTP steps, stopping at the first that fails.

    The user it returns has no cookies: the engine's client holds them.
    """
    auth = scenario.auth
    # No password configured: the scenario's load checks refuse any template that uses {password}.
    password = scenario.users.password.get_secret_value() if scenario.users.password is not None else ""
    context = setup_context(username, password, index, run_id)
    secrets = [password] if password else []
    steps: list[HttpStepResult] = []
    token: str | None = None
    if auth.effective_mode == "static":  # no login exists: the token comes from users.credentials[index]
        token = scenario.users.credentials[index].token.get_secret_value()

    def failed(error: str) -> PreparedUser:
        return PreparedUser(UserSetup(index, username, False, error, tuple(steps)), token, {}, password)

    try:
        if auth.registration is not None:
            cap = scenario.max_capture_bytes
            result, _ = yield SetupRequest(auth.registration, "auth.register", context, None, tuple(secrets), cap)
            steps.append(result)
            if not result.ok:
                return failed(f"register: {result.error}")
        if auth.login is not None:
            observed = yield SetupRequest(login_step(auth), "auth.login", context, None, tuple(secrets), 0)
            login_result, token = login_outcome(auth, *observed)
            steps.append(login_result)
            if not login_result.ok:
                return failed(f"login: {login_result.error}")
        if token:
            secrets.append(token)
        context["token"] = token or ""
        variables: dict[str, Any] = {}
        for step in prerequisite_steps:
            step_context = {**context, **variables}
            res, captured = yield SetupRequest(
                step, step.name, step_context, token, tuple(secrets), scenario.max_capture_bytes
            )
            steps.append(res)
            if not res.ok:
                return failed(f"{step.name}: {res.error}")
            variables.update(captured)
    except TemplateError as exc:
        return failed(f"template: {exc}")
    return PreparedUser(UserSetup(index, username, True, "", tuple(steps)), token, variables, password)


def advance_setup(
    plan: UserSetupPlan, observed: tuple[HttpStepResult, dict[str, Any]] | TemplateError | None
) -> SetupRequest | PreparedUser:
    """Start the plan (``observed`` None) or give it what the last request observed: the next request, or the user."""
    try:
        if observed is None:
            return next(plan)
        if isinstance(observed, TemplateError):
            return plan.throw(observed)
        return plan.send(observed)
    except StopIteration as done:
        user: PreparedUser = done.value
        return user


async def prepare_user(
    client: httpx.AsyncClient,
    scenario: ScenarioConfig,
    index: int,
    username: str,
    run_id: str,
    prerequisite_steps: Sequence[HttpStep] = (),
) -> PreparedUser:
    """Register and log in (auth.mode login) or take the user's static token, then run prerequisite HTTP steps."""
    plan = user_setup_plan(scenario, index, username, run_id, prerequisite_steps)
    next_up = advance_setup(plan, None)
    while isinstance(next_up, SetupRequest):
        call = next_up
        observed: tuple[HttpStepResult, dict[str, Any]] | TemplateError
        try:
            observed = await run_http_step(
                client,
                call.step,
                call.name,
                call.context,
                auth=scenario.auth,
                token=call.token,
                secrets=call.secrets,
                capture_bytes=call.capture_bytes,
            )
        except TemplateError as exc:
            observed = exc
        next_up = advance_setup(plan, observed)
    return dataclasses.replace(next_up, cookies=cookies_of(client)) if next_up.setup.ok else next_up


def cookies_of(client: httpx.AsyncClient) -> tuple[tuple[str, str, str, str], ...]:
    """The client's cookie jar as plain values, to give a later client of the same user."""
    return tuple((c.name, c.value or "", c.domain, c.path) for c in client.cookies.jar)


async def log_in_again(
    client: httpx.AsyncClient, scenario: ScenarioConfig, user: PreparedUser, run_id: str
) -> tuple[HttpStepResult, PreparedUser]:
    """One more login of a user already set up (auth.mode login), timed like the first one.

    For a section that logs its users in once and still measures the login: the result is the
    ``auth.login`` step (body never kept), and the user with the new token when it succeeded
    (with the old one, unchanged, when it did not).
    """
    auth = scenario.auth
    assert auth.login is not None
    context = setup_context(user.setup.username, user.password, user.setup.index, run_id)
    try:
        observed = await run_http_step(
            client,
            login_step(auth),
            "auth.login",
            context,
            auth=auth,
            token=None,
            secrets=user.secrets,
            capture_bytes=0,
        )
    except TemplateError as exc:
        return HttpStepResult("auth.login", auth.login.method, "", False, None, 0.0, f"template: {exc}"), user
    result, token = login_outcome(auth, *observed)
    if not result.ok or token is None:
        return result, user
    return result, dataclasses.replace(user, token=token, cookies=cookies_of(client))


def login_step(auth: AuthConfig) -> HttpStep:
    """The login request as a step that captures the token (``auth.login`` must be set)."""
    assert auth.login is not None
    return HttpStep(
        name="auth.login",
        method=auth.login.method,
        path=auth.login.path,
        body=auth.login.body,
        headers=auth.login.headers,
        expect_status=auth.login.expect_status,
        capture={"token": auth.token_path},
        timeout_s=auth.login.timeout_s,
    )


def login_outcome(
    auth: AuthConfig, result: HttpStepResult, captured: Mapping[str, Any]
) -> tuple[HttpStepResult, str | None]:
    """The login step as kept (its body never: it holds the token) and the token, None unless it is a string."""
    token = captured.get("token")
    error = result.error
    if result.ok and not isinstance(token, str):
        error, token = f"token at {auth.token_path!r} is not a string", None
    kept = HttpStepResult(result.name, result.method, result.path, not error, result.status, result.duration_s, error)
    return kept, token


def new_http_client(
    base_url: str,
    headers: Mapping[str, str] | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    cookies: Sequence[tuple[str, str, str, str]] = (),
) -> httpx.AsyncClient:
    """A client for one user (or one probe) with the shared TLS context; ``headers`` go on every request,
    ``cookies`` (``PreparedUser.cookies``) start in its jar.

    Requests go through ``LeanTransport`` (HTTP/1.1 on asyncio streams and h11) unless ``transport``
    is given (tests inject ``httpx.MockTransport``; ``httpx.AsyncHTTPTransport()`` is httpx's own); only
    a client on its own ``LeanTransport`` lets ``fetch_capped`` go below httpx's client layer.
    """
    lean = LeanTransport(shared_ssl_context()) if transport is None else None
    client = httpx.AsyncClient(
        base_url=base_url,
        trust_env=False,
        follow_redirects=False,
        verify=shared_ssl_context(),
        headers=headers,
        transport=transport if lean is None else lean,
    )
    if lean is not None:
        send_directly(client, lean)
    for name, value, domain, path in cookies:
        client.cookies.set(name, value, domain=domain, path=path)
    return client
