"""Service health: is the target up, answering as documented, and does a WebSocket echo work?

``probe_*`` functions do the I/O (httpx, websockets) and return plain records;
``health_claims`` is pure and turns records into claims. Response bodies are untrusted:
each request has one deadline over connect, headers and body (``timeout_s``), and only
the first ``MAX_BODY_BYTES`` of a body are read.

Each configured endpoint is its own check, and a stateless one: every sample is the configured
request and nothing else. The client keeps no cookie (``_NoCookies``): a cookie one answer set
(a login session) would authenticate the requests after it, so an endpoint expecting 403 to a wrong
token PASSed or FAILed by its place in the list. A ``Cookie`` header in ``headers`` or target.auth
is asked for, and is sent. Samples carry their endpoint's index, and ``health_claims`` counts each
endpoint's own samples only, so two endpoints on one method and path are judged apart.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import urlencode

import httpx

from ..core.models import Claim, EvidenceRef, Figure, Status
from .aio import run_sync
from .config import HealthConfig, HealthEndpoint, HealthWebSocket, TargetConfig
from .conversation import check_body
from .engine import fetch_capped, run_ws_exchange, shared_ssl_context
from .http_steps import LeanTransport
from .message_checks import parse_json
from .scenario import AuthConfig, WsStep

__all__ = [
    "HttpSample",
    "WsEchoRecord",
    "probe_endpoint",
    "probe_ws_echo",
    "run_health",
    "health_claims",
    "health_claim_ids",
]

BODY_EXCERPT_BYTES = 512  # response bodies are untrusted: keep a short excerpt only
MAX_BODY_BYTES = 1 << 20  # read at most this much of a body (for the JSON key check); the rest is cut


@dataclass(frozen=True)
class HttpSample:
    path: str
    index: int
    status: int | None
    latency_ms: float | None
    error: str | None = None
    missing_keys: tuple[str, ...] = ()
    body_excerpt: str = ""
    method: str = "GET"
    truncated: bool = False  # the body was longer than MAX_BODY_BYTES and was cut there
    check_error: str = ""  # the first ``check`` condition on the JSON body that did not hold
    # Which configured endpoint took it: its index in ``sections.health.endpoints`` (None: evidence from
    # before the index was kept, attributed by method and path where only one endpoint has them).
    endpoint_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _NoCookies(DefaultCookiePolicy):
    """A cookie policy that stores no cookie and sends none: health requests are stateless.

    httpx stores every ``Set-Cookie`` of a response in the client's jar and sends it on the client's
    later requests; a per-request ``cookies={}`` does not stop that (httpx merges it into the jar's,
    and deprecates it). The jar refusing them does, whichever way httpx (or ``send_direct``) extracts
    them. Headers the user configures, ``Cookie`` among them, are not the jar's and are sent as given.
    """

    def set_ok(self, cookie: Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Cookie, request: Any) -> bool:
        return False


@dataclass(frozen=True)
class WsEchoRecord:
    path: str
    connected: bool
    echoed: bool
    close_code: int | None
    close_reason: str = ""
    round_trip_ms: float | None = None
    error: str | None = None
    outcome: str = ""  # the session outcome label, as the soak would judge it (e.g. ok, close_timeout)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _body_check(content: bytes, endpoint: HealthEndpoint) -> str:
    if not endpoint.check:
        return ""
    body, why = parse_json(content)
    if why:
        return f"check: the body is {why}"
    return check_body(endpoint.check, body, {})


def _missing_keys(content: bytes, keys: list[str]) -> tuple[str, ...]:
    if not keys:
        return ()
    body, why = parse_json(content)
    if why:  # includes a body cut at the cap: it is not a whole JSON document
        return tuple(keys)
    if not isinstance(body, dict):
        return tuple(keys)
    return tuple(k for k in keys if k not in body)


async def probe_endpoint(
    client: httpx.AsyncClient,
    endpoint: HealthEndpoint,
    samples: int,
    timeout_s: float,
    endpoint_index: int | None = None,
) -> list[HttpSample]:
    """``samples`` requests, one after another, each under one ``timeout_s`` deadline.

    The samples are alike only if ``client`` keeps no cookie between them (``run_health``'s keeps none).
    ``endpoint_index`` (the endpoint's place in the list) goes on every sample, for ``health_claims``.
    """
    out = []
    for i in range(samples):
        t0 = time.monotonic_ns()
        try:
            response = await fetch_capped(
                client,
                endpoint.method,
                endpoint.path,
                max_bytes=MAX_BODY_BYTES,
                deadline_s=timeout_s,
                headers=endpoint.headers,
            )
        except (TimeoutError, httpx.TimeoutException):
            error = f"timeout: no complete response within {timeout_s:g} s"
            out.append(
                HttpSample(endpoint.path, i, None, None, error, method=endpoint.method, endpoint_index=endpoint_index)
            )
            continue
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
            out.append(
                HttpSample(endpoint.path, i, None, None, error, method=endpoint.method, endpoint_index=endpoint_index)
            )
            continue
        latency_ms = (time.monotonic_ns() - t0) / 1e6
        out.append(
            HttpSample(
                endpoint.path,
                i,
                response.status,
                round(latency_ms, 3),
                None,
                _missing_keys(response.content, endpoint.json_keys),
                response.content[:BODY_EXCERPT_BYTES].decode("utf-8", "replace"),
                endpoint.method,
                response.truncated,
                _body_check(response.content, endpoint),
                endpoint_index,
            )
        )
    return out


async def _ws_echo(
    url: str, cfg: HealthWebSocket, timeout_s: float, headers: dict[str, str] | None = None
) -> WsEchoRecord:
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    from .engine import close_connection
    from .sessions import OutcomeKind, SessionOutcome, outcome_after_close
    from .ws_connect import RedirectRefused, SameOriginConnect

    try:
        async with asyncio.timeout(timeout_s * 3):
            # A redirect to another origin is not followed (target.auth's headers would go there); no
            # proxy from the environment carries the handshake, as for every other probe.
            async with SameOriginConnect(
                url,
                open_timeout=timeout_s,
                close_timeout=timeout_s,
                max_size=2**16,
                additional_headers=headers or None,
                subprotocols=cfg.subprotocols or None,  # type: ignore[arg-type]
                proxy=None,
            ) as ws:
                t0 = time.monotonic_ns()
                await ws.send(cfg.message)
                try:
                    reply = await asyncio.wait_for(ws.recv(), timeout_s)
                except ConnectionClosed as exc:
                    code = exc.rcvd.code if exc.rcvd else 1006
                    reason = exc.rcvd.reason if exc.rcvd else ""
                    why = "closed before echo" if cfg.expect_echo else "closed before a reply"
                    return WsEchoRecord(cfg.path, True, False, code, reason[:200], None, why)
                rtt = (time.monotonic_ns() - t0) / 1e6
                echoed = reply == cfg.message
                close_timed_out = await close_connection(ws)
            # Judged like a soak session: a close the server never answered is not a normal close.
            rcvd = ws.protocol.close_rcvd
            outcome = outcome_after_close(SessionOutcome.ok(), rcvd.code if rcvd else None, close_timed_out)
            error = None
            if outcome.kind is OutcomeKind.CLOSE_TIMEOUT:
                error = f"did not complete the close handshake (no close frame within {timeout_s:g} s)"
            elif not outcome.is_ok:
                error = f"closed badly after the echo: {outcome.label}"
            return WsEchoRecord(
                cfg.path,
                True,
                echoed,
                ws.close_code,
                (ws.close_reason or "")[:200],
                round(rtt, 3),
                error,
                outcome.label,
            )
    except InvalidStatus as exc:
        return WsEchoRecord(
            cfg.path, False, False, None, "", None, f"handshake rejected: HTTP {exc.response.status_code}"
        )
    except RedirectRefused as exc:
        return WsEchoRecord(cfg.path, False, False, None, "", None, str(exc))
    except (OSError, TimeoutError) as exc:
        return WsEchoRecord(cfg.path, False, False, None, "", None, f"{type(exc).__name__}: {exc}"[:300])
    except Exception as exc:  # a protocol error from the target is a finding, not a crash
        return WsEchoRecord(cfg.path, False, False, None, "", None, f"{type(exc).__name__}: {exc}"[:300])


async def _ws_conversation(target: TargetConfig, cfg: HealthWebSocket, timeout_s: float) -> WsEchoRecord:
    """The new form: the configured conversation, judged like a session (ok needs a normal close too)."""
    bound = cfg.timeout_s or timeout_s
    step = WsStep.model_validate(
        {
            "kind": "ws",
            "name": "health",
            "path": cfg.path,
            "subprotocols": cfg.subprotocols,
            "headers": {**target.auth.headers, **cfg.headers},
            "conversation": cfg.conversation,
            "ignore": cfg.ignore,
            "fail_on": cfg.fail_on,
            "label_paths": cfg.label_paths,
            "timeout_s": bound,
        }
    )
    url = target.websocket_url(cfg.path)
    if target.auth.query:
        url += ("&" if "?" in url else "?") + urlencode(target.auth.query)
    exchange = await run_ws_exchange(
        url=url,
        step=step,
        context={},
        auth=AuthConfig(),
        token=None,
        session_id="health",
        run_start_ns=time.monotonic_ns(),
        connect_timeout_s=timeout_s,
        close_timeout_s=timeout_s,
        max_message_bytes=2**16,
        secrets=target.auth.secrets,
    )
    rec = exchange.record
    outcome = rec.outcome
    rtt = round(rec.total_s * 1000, 3) if rec.total_s is not None else None
    error = None if outcome.is_ok else f"conversation: {outcome.label}"
    return WsEchoRecord(
        cfg.path, outcome.connected, outcome.is_ok, rec.close_code, rec.close_reason, rtt, error, outcome.label
    )


async def _ws_probe(target: TargetConfig, cfg: HealthWebSocket, timeout_s: float) -> WsEchoRecord:
    if cfg.conversation:
        return await _ws_conversation(target, cfg, timeout_s)
    url = target.websocket_url(cfg.path)
    if target.auth.query:
        url += ("&" if "?" in url else "?") + urlencode(target.auth.query)
    return await _ws_echo(url, cfg, cfg.timeout_s or timeout_s, {**target.auth.headers, **cfg.headers})


def probe_ws_echo(target: TargetConfig, cfg: HealthWebSocket, timeout_s: float) -> WsEchoRecord:
    return run_sync(_ws_probe(target, cfg, timeout_s))


def run_health(
    target: TargetConfig, cfg: HealthConfig, transport: httpx.AsyncBaseTransport | None = None
) -> dict[str, Any]:
    """Probe every endpoint ``cfg.samples`` times, then the WebSocket echo. Returns evidence data."""
    return run_sync(_run_health(target, cfg, transport))


async def _run_health(
    target: TargetConfig, cfg: HealthConfig, transport: httpx.AsyncBaseTransport | None
) -> dict[str, Any]:
    samples: list[HttpSample] = []
    async with httpx.AsyncClient(
        base_url=target.base_url,
        timeout=cfg.timeout_s,
        # The probes' own HTTP/1.1 transport unless a test injects one (issue 19: a fraction of httpx's CPU).
        transport=transport if transport is not None else LeanTransport(shared_ssl_context()),
        headers=target.auth.headers,
        params=target.auth.query,
        verify=shared_ssl_context(),
        trust_env=False,
        follow_redirects=False,
        # No cookie from one answer on any later request, of this endpoint or another (see _NoCookies).
        cookies=CookieJar(policy=_NoCookies()),
    ) as client:
        for index, endpoint in enumerate(cfg.endpoints):
            samples += await probe_endpoint(client, endpoint, cfg.samples, cfg.timeout_s, index)
    ws = await _ws_probe(target, cfg.websocket, cfg.timeout_s) if cfg.websocket else None
    return {
        "target": target.base_url,
        "samples": [s.to_dict() for s in samples],
        "websocket": ws.to_dict() if ws else None,
    }


def _base_claim_id(section: str, endpoint: HealthEndpoint) -> str:
    method = "" if endpoint.method == "GET" else "." + endpoint.method
    return f"{section}.http{method}{endpoint.path.replace('/', '.')}".rstrip(".")


def health_claim_ids(endpoints: Sequence[HealthEndpoint], section: str = "health") -> list[str]:
    """One claim id per endpoint, in order, all distinct.

    An endpoint's id is ``<section>.http[.METHOD]<path with '/' as '.'>`` (no trailing '.'), as it
    always was: users name it in ``checks.informative`` and history follows it. Where several
    endpoints come to one id (the same method and path listed twice, e.g. with the right token and
    with a wrong one; or ``/health`` and ``/health/``), the first listed keeps it and each later one
    gets ``.2``, ``.3``, ... (the first such suffix no endpoint's own id is, so an endpoint listed
    once, e.g. ``/health/2``, keeps its id whatever else is listed).
    """
    bases = [_base_claim_id(section, e) for e in endpoints]
    taken = set(bases)
    seen: Counter[str] = Counter()
    ids = []
    for base in bases:
        seen[base] += 1
        if seen[base] == 1:
            ids.append(base)
            continue
        n = seen[base]
        while f"{base}.{n}" in taken:
            n += 1
        ids.append(f"{base}.{n}")
        taken.add(ids[-1])
    return ids


def _own_samples(samples: list[HttpSample], index: int, endpoint: HealthEndpoint, shared: bool) -> list[HttpSample]:
    """The samples endpoint ``index`` took; one without an index only if no other endpoint has its method and path."""
    return [
        s
        for s in samples
        if s.path == endpoint.path
        and s.method == endpoint.method
        and (s.endpoint_index == index if s.endpoint_index is not None else not shared)
    ]


def health_claims(cfg: HealthConfig, data: dict[str, Any], section: str = "health") -> list[Claim]:
    claims = []
    samples = [HttpSample(**{**s, "missing_keys": tuple(s["missing_keys"])}) for s in data["samples"]]
    uses = Counter((e.method, e.path) for e in cfg.endpoints)
    ids = health_claim_ids(cfg.endpoints, section)
    for index, endpoint in enumerate(cfg.endpoints):
        shared = uses[(endpoint.method, endpoint.path)] > 1
        mine = _own_samples(samples, index, endpoint, shared)
        good = [s for s in mine if s.status in endpoint.expect_status and not s.missing_keys and not s.check_error]
        keys = f" with keys {', '.join(endpoint.json_keys)}" if endpoint.json_keys else ""
        checks = f" and {len(endpoint.check)} content checks" if endpoint.check else ""
        wanted = " or ".join(str(code) for code in endpoint.expect_status)
        statement = f"{endpoint.method} {endpoint.path} answers {wanted}{keys}{checks}"
        # Two endpoints on one method and path (headers differ, say): the statement says which one it is.
        statement += f" (endpoints[{index}])" if shared else ""
        record = f"samples[path={endpoint.path}" + (f", endpoint_index={index}]" if shared else "]")
        figure = None
        if not mine:
            status, statistic = Status.INCONCLUSIVE, "no sample taken"
        else:
            figure = Figure(
                kind="count",
                value=float(len(mine) - len(good)),
                k=len(mine) - len(good),
                n=len(mine),
                what="requests not as expected",
            )
            status = Status.PASS if len(good) == len(mine) else Status.FAIL
            statistic = f"{len(good)} of {len(mine)} requests as expected"
            bad = [s for s in mine if s not in good]
            if bad:
                first = bad[0]
                why = first.error or (
                    f"HTTP {first.status}"
                    + (f", missing {', '.join(first.missing_keys)}" if first.missing_keys else "")
                    + (f", {first.check_error}" if first.check_error else "")
                    + (f" (body over {MAX_BODY_BYTES} bytes, cut there)" if first.truncated else "")
                )
                statistic += f"; first problem: {why}"
            latencies = sorted(s.latency_ms for s in mine if s.latency_ms is not None)
            if latencies:
                statistic += f"; median latency {latencies[len(latencies) // 2]:.1f} ms"
        claims.append(
            Claim(
                id=ids[index],
                section=section,
                statement=statement,
                status=status,
                statistic=statistic,
                evidence=(EvidenceRef(section, "", (record,)),),
                figure=figure,
            )
        )
    if cfg.websocket:
        ws = data.get("websocket")
        statement = (
            f"WebSocket {cfg.websocket.path} holds its conversation and closes normally"
            if cfg.websocket.conversation
            else f"WebSocket {cfg.websocket.path} echoes a message and closes normally"
            if cfg.websocket.expect_echo
            else f"WebSocket {cfg.websocket.path} answers a message (any reply) and closes normally"
        )
        if ws is None:
            status, statistic = Status.INCONCLUSIVE, "no WebSocket probe recorded"
        elif not ws["connected"]:
            status, statistic = Status.FAIL, f"could not connect: {ws['error']}"
        else:
            # A conversation that ends by expecting the server's close (expect: {close: 4401}) closes as it said.
            closes_as_expected = ws["close_code"] == 1000 or (
                bool(cfg.websocket.conversation)
                and ws["echoed"]
                and ws["close_code"] in _expected_close_codes(cfg.websocket.conversation)
            )
            ok = (ws["echoed"] or not cfg.websocket.expect_echo) and closes_as_expected
            status = Status.PASS if ok else Status.FAIL
            if cfg.websocket.expect_echo or cfg.websocket.conversation:
                answer = f"echo {'matched' if ws['echoed'] else 'did not match'}"
            else:  # expect_echo: false: a reply came (else the probe records no round trip); not compared
                answer = "a reply came" if ws.get("round_trip_ms") is not None else "no reply"
            statistic = (
                f"{answer}, close code {ws['close_code']}"
                + (f", round trip {ws['round_trip_ms']:.1f} ms" if ws.get("round_trip_ms") is not None else "")
                + (f"; {ws['error']}" if ws.get("error") else "")
            )
        claims.append(
            Claim(
                id=f"{section}.websocket_echo",
                section=section,
                statement=statement,
                status=status,
                statistic=statistic,
                evidence=(EvidenceRef(section, "", ("websocket",)),),
            )
        )
    return claims


def _expected_close_codes(conversation: Sequence[Any]) -> tuple[int, ...]:
    """The codes the conversation's last item accepts when it awaits the server's close (else none)."""
    last = conversation[-1] if conversation else None
    if last is None or last.expect is None:
        return ()
    return tuple(code for stream in last.expect.streams for item in stream.ordered for code in item.close_codes)
