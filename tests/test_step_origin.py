"""An HTTP step's request goes to the target's origin only: the user's token reaches no other host.

A step's ``path`` was sent as it is: ``path: http://other/...`` (or a captured link that renders to one)
sent the request, with the user's token header, ``target.auth``'s headers and Locust's basic auth, to
another host; on the Locust engine ``@other/...`` did too (``HttpSession`` appends a path to the base URL,
so it reads as user info before another host). Now a literal path must start with a single '/' (or a
``{placeholder}``, which cannot be checked before it is rendered), refused when params are read naming
the field; and a rendered path that leads to another origin fails its step, naming the path and the
origin, with nothing sent. Real servers: the target and another server on 127.0.0.1, reached as
``localhost`` (another origin), that records every connection it gets.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import yaml
from pydantic import ValidationError

from stability_lib import ParamsError, load_params
from stability_lib.probes.http_steps import new_http_client, run_http_step
from stability_lib.probes.scenario import AuthConfig, HttpStep, ScenarioConfig

TOKEN = "tok-SECRET-5e1d0c9b77"
API_KEY = "key-SECRET-2a4c6e8f10"
SECRET = "s3cr3t-fr0m-the-env"

AUTH: dict[str, Any] = {"mode": "static", "header_name": "X-User-Token", "header_format": "{token}"}
WS_STEP: dict[str, Any] = {"kind": "ws", "name": "chat", "path": "/ws", "send": {"type": "hi"}, "expect": ["hi"]}


def http_step(path: str, name: str = "read", **over: Any) -> dict[str, Any]:
    return {"kind": "http", "name": name, "method": "GET", "path": path, "expect_status": [200], **over}


def scenario(**over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "auth": AUTH,
        "users": {"count": 1, "credentials": [{"name": "alice", "token": TOKEN}]},
        "golden_path": {"steps": [http_step("/api/items"), WS_STEP]},
    }
    raw.update(over)
    return raw


def refused(raw: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        ScenarioConfig.model_validate(raw)
    return str(info.value)


# --------------------------------------------------------------------------- params time

BAD_PATHS = [
    "http://127.0.0.1:18602/api/items",
    "https://evil.example/api/items",
    "HTTP://evil.example/api/items",
    "http://evil.example/{thread_id}",  # a placeholder later on does not make it a path on the target
    "//evil.example/api/items",  # scheme-relative
    "///evil.example/api/items",
    "/\\evil.example/api/items",
    "@evil.example/api/items",  # Locust: base URL + path reads as user info @ another host
    "api/items",  # relative: not from the target's root
    ".evil.example/api/items",  # Locust: http://target.example.evil.example/...
    "",
    " /api/items",
    "{{literal}}/api/items",  # an escaped brace is text, not a placeholder
]

GOOD_PATHS = ["/", "/api/items", "/api/items/{user_index}?q=1", "/%2F%2Fevil.example", "{next}", "{base}/items"]


@pytest.mark.parametrize("path", BAD_PATHS, ids=repr)
def test_a_golden_step_path_that_leaves_the_target_is_refused_naming_the_field(path: str) -> None:
    error = refused(scenario(golden_path={"steps": [http_step(path), WS_STEP]}))
    assert "golden_path.steps.0.http.path" in error, error
    assert "single '/'" in error and "{placeholder}" in error, error


@pytest.mark.parametrize(
    ("where", "raw"),
    [
        ("auth.login.path", {"auth": {"login": {"path": "https://evil.example/login", "body": {}}}}),
        ("auth.register.path", {"auth": {"register": {"path": "//evil.example/r"}, "login": {"path": "/l"}}}),
        ("steps.read.http.path", {"steps": {"read": http_step("http://evil.example/x")}}),
        ("setup.0.http.path", {"setup": [http_step("http://evil.example/x", "prep")]}),
        ("teardown.0.http.path", {"teardown": [http_step("http://evil.example/x", "undo")]}),
        ("leftovers.0.http.path", {"leftovers": [http_step("http://evil.example/x", "left")]}),
        (
            "golden_path.finally.0.http.path",
            {"golden_path": {"steps": [http_step("/a"), WS_STEP], "finally": [http_step("@evil.example/x", "f")]}},
        ),
    ],
)
def test_every_http_request_template_of_the_scenario_is_checked(where: str, raw: dict[str, Any]) -> None:
    error = refused(scenario(**raw))
    assert where in error, error
    assert "single '/'" in error, error


@pytest.mark.parametrize("path", GOOD_PATHS)
def test_paths_on_the_target_and_leading_placeholders_are_accepted(path: str) -> None:
    first = http_step("/links", "links", capture={"next": "next", "base": "base"})
    sc = ScenarioConfig.model_validate(scenario(golden_path={"steps": [first, http_step(path), WS_STEP]}))
    assert sc.golden_path.steps[1].path == path
    HttpStep.model_validate(http_step(path))


def test_a_path_from_the_environment_is_checked_and_not_echoed(tmp_path: Path) -> None:
    raw = scenario(golden_path={"steps": [http_step("${P}"), WS_STEP]})
    raw["users"] = {"count": 1, "credentials": [{"name": "alice", "token": "${TOKEN_A}"}]}
    doc = {"title": "t", "target": {"base_url": "http://127.0.0.1:9"}, "scenario": raw}
    file = tmp_path / "p.yaml"
    file.write_text(yaml.safe_dump(doc))
    with pytest.raises(ParamsError) as info:
        load_params(file, env={"P": f"http://{SECRET}.example/x", "TOKEN_A": TOKEN})
    message = str(info.value)
    assert "scenario.golden_path.steps.0.http.path" in message and SECRET not in message, message


# --------------------------------------------------------------------------- send time, real servers


@dataclass
class Site:
    """One HTTP server on 127.0.0.1 recording what reached it: every connection, and each request's path and headers."""

    server: ThreadingHTTPServer
    connections: list[str] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def clear(self) -> None:
        self.connections.clear()
        self.requests.clear()


def _start() -> Site:
    site: Site

    class Handler(BaseHTTPRequestHandler):
        def setup(self) -> None:
            site.connections.append(str(self.client_address))
            super().setup()

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            site.requests.append((self.path, dict(self.headers.items())))
            query = parse_qs(urlsplit(self.path).query)
            body = json.dumps({"next": query.get("to", [""])[0], "ok": True}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    site = Site(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
    threading.Thread(target=site.server.serve_forever, daemon=True).start()
    return site


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Site, Site]]:
    target, other = _start(), _start()
    yield target, other
    for site in (target, other):
        site.server.shutdown()
        site.server.server_close()


@pytest.fixture
def sites(servers: tuple[Site, Site]) -> tuple[Site, Site]:
    for site in servers:
        site.clear()
    return servers


def links(to: str) -> HttpStep:
    """A step whose response links to ``to``: the value a later step renders as its path."""
    return HttpStep.model_validate(http_step("/links?" + urlencode({"to": to}), "links", capture={"next": "next"}))


FOLLOW = HttpStep.model_validate(http_step("{next}", "follow"))


def elsewhere(other: Site) -> dict[str, tuple[str, str]]:
    """Captured links that lead off the target, and the origin the step's error must name."""
    return {
        "url": (f"http://localhost:{other.port}/steal", f"http://localhost:{other.port}"),
        "port": (f"http://127.0.0.1:{other.port}/steal", f"http://127.0.0.1:{other.port}"),
        "scheme-relative": (f"//localhost:{other.port}/steal", f"http://localhost:{other.port}"),
        "user-info": (f"@localhost:{other.port}/steal", ""),  # what Locust would append to the base URL
    }


CASES = ["url", "port", "scheme-relative", "user-info"]


def _asyncio_steps(target: Site, to: str) -> tuple[Any, Any]:
    async def main() -> tuple[Any, Any]:
        auth = AuthConfig.model_validate(AUTH)
        async with new_http_client(f"http://127.0.0.1:{target.port}", {"X-API-Key": API_KEY}) as client:
            kw: dict[str, Any] = {"auth": auth, "token": TOKEN, "secrets": [TOKEN, API_KEY], "capture_bytes": 0}
            first, captured = await run_http_step(client, links(to), "links", {}, **kw)
            second, _ = await run_http_step(client, FOLLOW, "follow", captured, **kw)
        return first, second

    return asyncio.run(main())


class LocustLikeSession:
    """What ``scale.gevent_steps`` sends through, in this process: Locust's ``HttpSession`` (importing locust
    monkey-patches the process) sends an ``http(s)://`` URL as it is and appends anything else to its base URL
    (``locust.clients.HttpSession._build_url``), with requests; ``name`` is Locust's stats name."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        import requests

        self.base_url = base_url
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers.update(headers)

    def request(self, method: str, url: str, name: str | None = None, **kwargs: Any) -> Any:
        del name
        full = url if re.match(r"^https?://", url, re.IGNORECASE) else f"{self.base_url}{url}"
        return self.session.request(method, full, **kwargs)


def _gevent_steps(target: Site, to: str) -> tuple[Any, Any]:
    pytest.importorskip("gevent")
    from stability_lib.scale.gevent_steps import run_http_step as run_on_gevent

    sc = ScenarioConfig.model_validate(scenario())
    client = LocustLikeSession(f"http://127.0.0.1:{target.port}", {"X-API-Key": API_KEY})
    kw: dict[str, Any] = {"scenario": sc, "token": TOKEN, "secrets": [TOKEN, API_KEY], "capture_bytes": 0}
    first, captured = run_on_gevent(client, links(to), "links", {}, **kw)
    second, _ = run_on_gevent(client, FOLLOW, "follow", captured, **kw)
    return first, second


ENGINES = {"asyncio": _asyncio_steps, "gevent": _gevent_steps}


@pytest.mark.parametrize("engine", sorted(ENGINES))
@pytest.mark.parametrize("case", CASES)
def test_a_captured_link_to_another_origin_fails_the_step_and_nothing_is_sent(
    sites: tuple[Site, Site], engine: str, case: str
) -> None:
    target, other = sites
    to, origin = elsewhere(other)[case]
    first, second = ENGINES[engine](target, to)
    assert first.ok, first.error  # the link was captured from a real response of the target
    # Before: the request went out (to the other server with the token and X-API-Key on the absolute URL,
    # through Locust's base URL + '@host' too), and the step was judged on that server's answer.
    assert other.connections == [] and other.requests == [], other.requests
    assert [urlsplit(p).path for p, _ in target.requests] == ["/links"]  # nothing more reached the target either
    assert not second.ok and second.status is None
    assert second.error.startswith(f"path {to!r} leads to another origin"), second.error
    assert origin in second.error and f"http://127.0.0.1:{target.port}" in second.error, second.error
    assert second.error.endswith("not sent (the request would carry the auth there)")
    assert TOKEN not in second.error and API_KEY not in second.error


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_a_captured_link_on_the_target_is_followed_with_the_auth(sites: tuple[Site, Site], engine: str) -> None:
    target, other = sites
    first, second = ENGINES[engine](target, f"http://127.0.0.1:{target.port}/api/next?page=2")
    assert first.ok and second.ok, (first.error, second.error)
    assert [p for p, _ in target.requests][1] == "/api/next?page=2"
    headers = target.requests[1][1]
    assert headers.get("X-User-Token") == TOKEN and headers.get("X-API-Key") == API_KEY
    assert other.connections == []


def test_a_token_in_the_path_is_redacted_in_the_error(sites: tuple[Site, Site]) -> None:
    target, other = sites
    _, second = _asyncio_steps(target, f"http://localhost:{other.port}/steal?t={TOKEN}")
    assert TOKEN not in second.error and "[redacted]" in second.error
    assert other.connections == []


# --------------------------------------------------------------------------- the rule itself


@pytest.mark.parametrize(
    ("target", "base", "goes"),
    [
        ("/api/x", "http://api.example.com", True),
        ("/", "http://api.example.com/base/", True),
        ("http://api.example.com/x", "http://api.example.com/base", True),
        ("HTTP://API.example.com:80/x", "http://api.example.com", True),
        ("https://api.example.com/x", "http://api.example.com", True),  # upgraded to TLS, same host
        ("http://[::1]:8000/x", "http://[::1]:8000", True),
        ("http://api.example.com?x=1", "http://api.example.com", True),
        ("http://api.example.com:8080/x", "http://api.example.com", False),
        ("http://api.example.com/x", "https://api.example.com", False),  # downgraded
        ("http://localhost:8000/x", "http://127.0.0.1:8000", False),
        ("http://api.example.com.evil.net/x", "http://api.example.com", False),
        ("http://api.example.com@evil.net/x", "http://api.example.com", False),  # user info
        ("http://evil.net\\@api.example.com/x", "http://api.example.com", False),
        ("http://api.example.com /x", "http://api.example.com", False),
        ("ws://api.example.com/x", "http://api.example.com", False),
        ("//api.example.com/x", "http://api.example.com", False),
        ("/\\evil.net/x", "http://api.example.com", False),
        ("x/y", "http://api.example.com", False),
        ("", "http://api.example.com", False),
    ],
)
def test_which_rendered_paths_stay_on_the_target(target: str, base: str, goes: bool) -> None:
    from stability_lib.probes.http_steps import off_target

    assert (off_target(target, base) is None) is goes


@pytest.mark.parametrize(
    ("first", "then", "keeps"),
    [
        ("http://api.example.com/a", "http://api.example.com/b", True),
        ("http://api.example.com/a", "http://API.example.com:80/b", True),
        ("https://api.example.com/a", "https://api.example.com:443/b", True),
        ("http://api.example.com/a", "https://api.example.com/b", True),
        ("http://api.example.com:8080/a", "https://api.example.com/b", False),
        ("https://api.example.com/a", "http://api.example.com/b", False),
        ("http://api.example.com/a", "http://api.example.com:8080/b", False),
        ("http://api.example.com/a", "http://evil.example.com/b", False),
        ("http://127.0.0.1:8000/a", "http://localhost:8000/b", False),
        ("http://api.example.com/a", "http://api.example.com.evil.net/b", False),
        ("http://[::1]:8000/a", "http://[::1]:8000/b", True),
    ],
)
def test_the_core_origin_rule_is_the_spec_fetchs_rule(first: str, then: str, keeps: bool) -> None:
    """One rule for where auth may go: ``core.origins`` (probes may not import contract) agrees with
    ``contract.spec_source.auth_follows`` (which works on httpx.URL)."""
    from stability_lib.contract.spec_source import auth_follows
    from stability_lib.core.origins import auth_may_go, origin_of

    given, there = origin_of(first), origin_of(then)
    assert given is not None and there is not None
    assert auth_may_go(given, there) is keeps
    assert auth_follows(httpx.URL(first), httpx.URL(then)) is keeps
