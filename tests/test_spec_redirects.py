"""Spec fetches that are redirected: the target's auth goes only to the target's origin.

httpx strips only ``Authorization`` on a cross-origin redirect; a spec fetch carries the target's
auth headers (``X-API-Key``, ``X-Token``, ...) and query, which must not follow a redirect to another
host or port. Real servers on 127.0.0.1: ``localhost`` and another port are other origins.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from stability_lib.contract.spec_source import UrlSource, fetch_spec, load_spec
from stability_lib.core.errors import TargetError

SECRET = "s3cr3t-t0ken-4f1c"
SPEC = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {}}
BODY = json.dumps(SPEC).encode()
Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Server:
    """One HTTP server: ``routes`` maps a path to (status, headers, body), or to a function of the request
    that returns them; every request is recorded."""

    routes: dict[str, Answer | Callable[[http.server.BaseHTTPRequestHandler], Answer]] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    delay_s: float = 0.0
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def got_secret(self) -> bool:
        return any(SECRET in path or SECRET in json.dumps(headers) for path, headers in self.seen)


@contextlib.contextmanager
def serving(server: Server) -> Iterator[Server]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            server.seen.append((self.path, dict(self.headers.items())))
            if server.delay_s:
                time.sleep(server.delay_s)
            route = urlsplit(self.path).path
            answer = server.routes.get(route, (404, {}, b"{}"))
            status, headers, body = answer(self) if callable(answer) else answer
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def redirect(location: str, status: int = 302) -> tuple[int, dict[str, str], bytes]:
    return status, {"Location": location}, b""


def guarded(handler: http.server.BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
    """The spec with the right X-Token header or ?key= query, 401 otherwise."""
    query = parse_qs(urlsplit(handler.path).query)
    if handler.headers.get("X-Token") == SECRET or query.get("key") == [SECRET]:
        return 200, {}, BODY
    return 401, {}, b'{"error": "unauthorized"}'


@contextlib.contextmanager
def two_origins() -> Iterator[tuple[Server, Server]]:
    """The target (A) and another origin (B), both recording what reaches them."""
    with serving(Server()) as a, serving(Server()) as b:
        b.routes["/spec.json"] = (200, {}, BODY)
        b.routes["/guarded.json"] = guarded
        a.routes["/guarded.json"] = guarded
        yield a, b


OTHER_HOSTS = ["localhost", "127.0.0.1"]  # localhost: another host; 127.0.0.1: the same host, another port


# --------------------------------------------------------------------------- same origin


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_same_origin_redirect_keeps_the_auth_headers(status: int) -> None:
    with two_origins() as (a, _b):
        a.routes["/moved"] = redirect("/guarded.json", status)
        spec, data = fetch_spec(f"{a.base}/moved", headers={"X-Token": SECRET}, timeout_s=5)
    assert spec["openapi"] == "3.0.3" and data == BODY
    assert [path for path, _ in a.seen] == ["/moved", "/guarded.json"]
    assert all(headers.get("X-Token") == SECRET for _, headers in a.seen)


def test_a_same_origin_redirect_keeps_the_auth_query(tmp_path: Path) -> None:
    """httpx sends ``params`` on the first request only; a same-origin hop needs them just as much."""
    with two_origins() as (a, _b):
        a.routes["/moved"] = redirect(f"{a.base}/guarded.json")  # absolute, still the same origin
        got = load_spec(UrlSource(url=f"{a.base}/moved"), default_url=None, base_dir=tmp_path, query={"key": SECRET})
    assert got.ok, got.error
    assert got.notes == ()


def test_a_same_origin_chain_of_five_redirects_is_followed() -> None:
    with two_origins() as (a, _b):
        for i in range(5, 0, -1):
            a.routes[f"/hop{i}"] = redirect(f"/hop{i - 1}")
        a.routes["/hop0"] = guarded
        spec, _ = fetch_spec(f"{a.base}/hop5", headers={"X-Token": SECRET}, timeout_s=5)
    assert spec["openapi"] == "3.0.3"
    assert len(a.seen) == 6


# --------------------------------------------------------------------------- another origin


@pytest.mark.parametrize("host", OTHER_HOSTS)
def test_a_cross_origin_redirect_does_not_carry_the_secret_header(host: str, tmp_path: Path) -> None:
    with two_origins() as (a, b):
        a.routes["/spec.json"] = redirect(f"http://{host}:{b.port}/spec.json")
        got = load_spec(
            UrlSource(url=f"{a.base}/spec.json"),
            default_url=None,
            base_dir=tmp_path,
            headers={"X-Token": SECRET, "X-API-Key": SECRET},
            query={"key": SECRET},
        )
    assert a.got_secret(), "the target itself should get its auth"
    assert b.seen, "the redirect was not followed"
    assert not b.got_secret(), f"the target's auth reached another origin: {b.seen}"
    # Fetched (the spec there needs no auth), and the evidence says the auth was left behind.
    assert got.ok, got.error
    assert got.notes and f"{host}:{b.port}" in got.notes[0] and "not sent" in got.notes[0]
    assert got.serialize()["notes"] == list(got.notes)
    assert SECRET not in json.dumps(got.serialize())


@pytest.mark.parametrize("host", OTHER_HOSTS)
def test_a_cross_origin_spec_behind_auth_fails_naming_the_dropped_auth(host: str, tmp_path: Path) -> None:
    with two_origins() as (a, b):
        a.routes["/spec.json"] = redirect(f"http://{host}:{b.port}/guarded.json")
        got = load_spec(
            UrlSource(url=f"{a.base}/spec.json"), default_url=None, base_dir=tmp_path, headers={"X-Token": SECRET}
        )
    assert not b.got_secret()
    assert not got.ok
    error = got.error or ""
    assert "HTTP 401" in error and "another origin" in error and f"{host}:{b.port}" in error, error
    assert SECRET not in error


def test_the_secret_is_not_sent_after_leaving_the_origin_through_a_chain() -> None:
    """A -> A (keeps) -> B (drops) -> B (drops): the header is decided per request, by its URL's origin."""
    with two_origins() as (a, b):
        a.routes["/start"] = redirect("/next")
        a.routes["/next"] = redirect(f"http://localhost:{b.port}/hop")
        b.routes["/hop"] = redirect("/spec.json")
        spec, _ = fetch_spec(f"{a.base}/start", headers={"X-Token": SECRET}, timeout_s=5)
    assert spec["openapi"] == "3.0.3"
    assert [h.get("X-Token") for _, h in a.seen] == [SECRET, SECRET]
    assert [p for p, _ in b.seen] == ["/hop", "/spec.json"] and not b.got_secret()


def test_the_diff_command_path_does_not_leak_either() -> None:
    """``stability diff --header`` goes through ``fetch_spec`` with the resolved headers."""
    with two_origins() as (a, b):
        a.routes["/openapi.json"] = redirect(f"http://localhost:{b.port}/spec.json", 307)
        fetch_spec(f"{a.base}/openapi.json", headers={"X-API-Key": SECRET}, timeout_s=5)
    assert b.seen and not b.got_secret()


def test_a_redirect_to_another_scheme_is_refused_clearly() -> None:
    with two_origins() as (a, _b):
        a.routes["/spec.json"] = redirect("file:///etc/passwd")
        with pytest.raises(TargetError, match=r"redirect.*(file|scheme)") as caught:
            fetch_spec(f"{a.base}/spec.json", headers={"X-Token": SECRET}, timeout_s=5)
    assert SECRET not in str(caught.value)


# --------------------------------------------------------------------------- loops, caps, deadline


def test_a_redirect_loop_ends_with_a_clear_error(tmp_path: Path) -> None:
    with two_origins() as (a, _b):
        a.routes["/loop"] = redirect("/loop")
        with pytest.raises(TargetError, match="redirect") as caught:
            fetch_spec(f"{a.base}/loop", headers={"X-Token": SECRET}, timeout_s=5)
        got = load_spec(UrlSource(url=f"{a.base}/loop"), default_url=None, base_dir=tmp_path)
    assert "more than 5 redirects" in str(caught.value)
    assert not got.ok and "more than 5 redirects" in (got.error or "")
    assert len(a.seen) == 12  # 6 requests each: the first and 5 redirects followed


def test_six_redirects_are_one_too_many() -> None:
    with two_origins() as (a, _b):
        for i in range(6, 0, -1):
            a.routes[f"/hop{i}"] = redirect(f"/hop{i - 1}")
        a.routes["/hop0"] = (200, {}, BODY)
        with pytest.raises(TargetError, match="more than 5 redirects"):
            fetch_spec(f"{a.base}/hop6", timeout_s=5)
        assert len(a.seen) == 6


def test_a_cross_origin_loop_ends_with_a_clear_error_and_no_leak() -> None:
    with two_origins() as (a, b):
        a.routes["/ping"] = redirect(f"http://localhost:{b.port}/pong")
        b.routes["/pong"] = redirect(f"{a.base}/ping")
        with pytest.raises(TargetError, match="more than 5 redirects"):
            fetch_spec(f"{a.base}/ping", headers={"X-Token": SECRET}, timeout_s=5)
    assert b.seen and not b.got_secret()


def test_the_whole_request_deadline_covers_every_hop() -> None:
    """Each hop answers within the per-read timeout; all of them together do not within 3 x timeout."""
    with two_origins() as (a, _b):
        for i in range(5, 0, -1):
            a.routes[f"/hop{i}"] = redirect(f"/hop{i - 1}")
        a.routes["/hop0"] = (200, {}, BODY)
        a.delay_s = 0.7
        started = time.monotonic()
        with pytest.raises(TargetError, match="not complete within 3 s"):
            fetch_spec(f"{a.base}/hop5", timeout_s=1)
        took = time.monotonic() - started
    assert took < 3.6, f"the fetch ran {took:.1f} s past a 3 s deadline"
    assert len(a.seen) < 6


# --------------------------------------------------------------------------- the origin rule itself


@pytest.mark.parametrize(
    ("first", "then", "keeps"),
    [
        ("http://api.example.com/a", "http://api.example.com/b", True),
        ("http://api.example.com/a", "http://API.example.com:80/b", True),
        ("https://api.example.com/a", "https://api.example.com:443/b", True),
        ("http://api.example.com/a", "https://api.example.com/b", True),  # upgraded to TLS, same host
        ("http://api.example.com:8080/a", "https://api.example.com/b", False),
        ("https://api.example.com/a", "http://api.example.com/b", False),  # downgraded
        ("http://api.example.com/a", "http://api.example.com:8080/b", False),
        ("http://api.example.com/a", "http://evil.example.com/b", False),
        ("http://127.0.0.1:8000/a", "http://localhost:8000/b", False),
        ("http://api.example.com/a", "http://api.example.com.evil.net/b", False),
    ],
)
def test_which_redirects_the_auth_follows(first: str, then: str, keeps: bool) -> None:
    from stability_lib.contract.spec_source import auth_follows

    assert auth_follows(httpx.URL(first), httpx.URL(then)) is keeps
