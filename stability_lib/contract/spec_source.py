"""Where an API spec comes from and how it is read, bounded.

A URL (whole-request deadline, size cap, redirects followed here: the target's auth goes only to
the URL's own origin), a file (regular files only, capped) or a file at a git
revision (timeout); parsed safely (JSON, YAML safe loader, node cap).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field

from ..core.errors import StabilityError, TargetError
from ..core.origins import Origin, auth_may_go, origin
from .openapi_diff import SpecError, check_spec, count_operations
from .swagger2 import CONVERTED_FROM, as_openapi3

if TYPE_CHECKING:
    import httpx

__all__ = [
    "UrlSource",
    "FileSource",
    "GitRef",
    "GitSource",
    "SpecSource",
    "MAX_SPEC_BYTES",
    "MAX_SPEC_NODES",
    "FETCH_TIMEOUT_S",
    "GIT_TIMEOUT_S",
    "LoadedSpec",
    "parse_spec_bytes",
    "read_regular_file",
    "load_spec_file",
    "load_spec_git",
    "redact",
    "fetch_spec",
    "auth_follows",
    "MAX_REDIRECTS",
    "load_spec",
]


MAX_SPEC_BYTES = 32 * 1024 * 1024


# A YAML document can use aliases to expand to far more nodes than its size suggests.
MAX_SPEC_NODES = 5_000_000


FETCH_TIMEOUT_S = 10.0


GIT_TIMEOUT_S = 30.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UrlSource(_Strict):
    url: str = Field(..., description="URL of the OpenAPI document (JSON or YAML).")


class FileSource(_Strict):
    file: str = Field(..., description="Path of the OpenAPI document, relative to the params file.")


class GitRef(_Strict):
    repo: str = Field(".", description="Git work tree, relative to the params file.")
    ref: str = Field(..., description="Commit, tag or branch, e.g. 'origin/main' or 'v1.4.0'.")
    path: str = Field(..., description="Path of the OpenAPI document inside the repository.")


class GitSource(_Strict):
    git: GitRef


SpecSource = UrlSource | FileSource | GitSource


@dataclass(frozen=True)
class LoadedSpec:
    """One side's spec, or why it could not be had. ``origin`` never holds a password; ``notes`` say
    what the fetch did that a reader should know (the target's auth left behind at a redirect)."""

    origin: str
    spec: dict[str, Any] | None = None
    error: str | None = None
    size_bytes: int = 0
    sha256: str = ""
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.spec is not None

    def serialize(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "ok": self.ok,
            "error": self.error,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "openapi": str(self.spec.get("openapi")) if self.spec else None,
            "title": str((self.spec.get("info") or {}).get("title", "")) if self.spec else None,
            "version": str((self.spec.get("info") or {}).get("version", "")) if self.spec else None,
            "operations": count_operations(self.spec) if self.spec else 0,
            "converted_from": self.spec.get(CONVERTED_FROM) if self.spec else None,
            "notes": list(self.notes),
        }


def _count_nodes(root: Any, limit: int) -> int:
    """Nodes of the document as a tree (aliases counted each time); raises on a cycle or past ``limit``."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise SpecError("the document refers to itself (recursive YAML alias)")
        active.add(key)
        children = node.values() if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                raise SpecError(f"the document expands to more than {limit} nodes")
        active.discard(key)
        sizes[key] = total
        return total

    try:
        return size(root)
    except RecursionError as exc:
        raise SpecError("the document is nested too deeply") from exc


def parse_spec_bytes(data: bytes, *, origin: str = "spec", max_bytes: int = MAX_SPEC_BYTES) -> dict[str, Any]:
    """Parse an OpenAPI document (JSON or YAML, safely) and check it is OpenAPI 3.x. Pure."""
    import yaml

    if len(data) > max_bytes:
        raise SpecError(f"{origin}: {len(data)} bytes is over the {max_bytes}-byte cap")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{origin}: not UTF-8 text") from exc
    doc: Any
    try:
        if text.lstrip().startswith(("{", "[")):
            doc = json.loads(text)
        else:
            # The C loader when present: same safe subset, much faster on big specs.
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            doc = yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader
    except RecursionError as exc:
        raise SpecError(f"{origin}: nested too deeply") from exc
    except (ValueError, yaml.YAMLError) as exc:
        raise SpecError(f"{origin}: not valid JSON or YAML: {str(exc)[:300]}") from exc
    _count_nodes(doc, MAX_SPEC_NODES)
    doc = as_openapi3(doc)  # Swagger 2.0 is converted to 3.0 and diffed like any other spec
    check_spec(doc, what=origin)
    return doc


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_regular_file(path: Path, *, max_bytes: int) -> bytes:
    """At most ``max_bytes`` of a regular file; a FIFO, device, socket or folder is refused unread.

    ``/dev/zero`` reports size 0 and never ends, and opening a FIFO blocks until a writer
    comes: neither may be read. O_NONBLOCK keeps the open itself from blocking should the
    path be swapped for a FIFO between the stat and the open; the fstat then refuses it.
    """

    def refuse_unless_regular(st: os.stat_result) -> None:
        if not stat.S_ISREG(st.st_mode):
            raise SpecError(f"{path}: not a regular file (a FIFO, device, socket or folder is not read)")
        if st.st_size > max_bytes:
            raise SpecError(f"{path}: {st.st_size} bytes is over the {max_bytes}-byte cap")

    try:
        refuse_unless_regular(os.stat(path))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as fh:
            refuse_unless_regular(os.fstat(fh.fileno()))
            data = fh.read(max_bytes + 1)  # bounded even if the file grows meanwhile
    except OSError as exc:
        raise TargetError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        raise SpecError(f"{path}: over the {max_bytes}-byte cap")
    return data


def load_spec_file(path: Path, *, max_bytes: int = MAX_SPEC_BYTES) -> tuple[dict[str, Any], bytes]:
    data = read_regular_file(path, max_bytes=max_bytes)
    return parse_spec_bytes(data, origin=str(path), max_bytes=max_bytes), data


def load_spec_git(repo: Path, ref: str, path: str, *, max_bytes: int = MAX_SPEC_BYTES) -> tuple[dict[str, Any], bytes]:
    """The document at ``ref:path`` in the git work tree ``repo`` (``git show``)."""
    # A ref or path that starts with '-' would be read by git as an option.
    if not ref or ref.startswith("-") or any(c in ref for c in "\n\r\0 :"):
        raise TargetError(f"invalid git ref: {ref!r}")
    if not path or path.startswith("-") or "\0" in path or "\n" in path:
        raise TargetError(f"invalid path in git repository: {path!r}")
    spec_ref = f"{ref}:{path.lstrip('/')}"
    origin = f"git {spec_ref} in {repo}"
    with tempfile.TemporaryFile() as err_file:  # a file, not a pipe: git's stderr can never fill it and stall
        try:
            proc = subprocess.Popen(
                ["git", "-C", str(repo), "show", "--no-color", spec_ref],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err_file,
            )
        except OSError as exc:
            raise TargetError(f"{origin}: cannot run git: {exc}") from exc
        # The read below has no timeout of its own: a git that stalls is killed, which ends it.
        stalled = threading.Event()

        def kill_stalled() -> None:
            stalled.set()
            proc.kill()

        killer = threading.Timer(GIT_TIMEOUT_S, kill_stalled)
        killer.daemon = True
        killer.start()
        try:
            assert proc.stdout is not None
            data = proc.stdout.read(max_bytes + 1)  # bounded, whatever the blob's size
            if len(data) > max_bytes:
                proc.kill()
            proc.stdout.close()
            proc.wait()
        finally:
            killer.cancel()
        if len(data) > max_bytes:
            raise SpecError(f"{origin}: over the {max_bytes}-byte cap")
        if stalled.is_set():
            raise TargetError(f"{origin}: git did not answer in {GIT_TIMEOUT_S:.0f} s")
        if proc.returncode != 0:
            err_file.seek(0)
            err = err_file.read(4096).decode("utf-8", "replace").strip()[:300]
            raise TargetError(f"{origin}: git show failed: {err}")
    return parse_spec_bytes(data, origin=origin, max_bytes=max_bytes), data


def redact(url: str) -> str:
    """A URL without user info or query string (either may hold a token)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class _Watchdog:
    """Shuts the request's sockets at a deadline: httpx's timeouts are per read, and a server
    dripping its headers or body a byte at a time never trips them."""

    def __init__(self, seconds: float) -> None:
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def trace(self, event: str, info: dict[str, Any]) -> None:
        # httpcore reports each new connection's stream; its socket is what a deadline must cut.
        if event.endswith("connect_tcp.complete") or event.endswith("start_tls.complete"):
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                with self._lock:
                    self._sockets.append(sock)
                    if self.fired:
                        self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                self._shut(sock)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


MAX_REDIRECTS = 5


def _origin(url: httpx.URL) -> Origin:
    return origin(url.scheme, url.host, url.port)


def auth_follows(first: httpx.URL, url: httpx.URL) -> bool:
    """Whether the auth given for ``first`` (an ``httpx.URL``) is sent to ``url`` after a redirect: the rule of
    every probe (``core.origins.auth_may_go``: the same origin, or the same host from http:80 to https:443)."""
    return auth_may_go(_origin(first), _origin(url))


@dataclass(frozen=True)
class _Fetched:
    spec: dict[str, Any]
    data: bytes
    notes: tuple[str, ...] = ()


def fetch_spec(
    url: str,
    *,
    timeout_s: float | None = None,
    max_bytes: int | None = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], bytes]:
    """GET the document at ``url`` (status 200, at most ``max_bytes``, all of it within ``3 * timeout_s``).

    The defaults are the module's FETCH_TIMEOUT_S and MAX_SPEC_BYTES, read at each call. At most
    MAX_REDIRECTS redirects are followed; ``headers`` and ``query`` (the target's auth) go only to the
    origin of ``url`` (see ``auth_follows``), never to another host or port a redirect points at.
    """
    got = _fetch(url, timeout_s=timeout_s, max_bytes=max_bytes, headers=headers, query=query)
    return got.spec, got.data


def _fetch(
    url: str,
    *,
    timeout_s: float | None,
    max_bytes: int | None,
    headers: Mapping[str, str] | None,
    query: Mapping[str, str] | None,
) -> _Fetched:
    """``fetch_spec``, with notes on what the fetch did that a reader should know (auth left behind)."""
    import httpx

    timeout_s = FETCH_TIMEOUT_S if timeout_s is None else timeout_s
    max_bytes = MAX_SPEC_BYTES if max_bytes is None else max_bytes
    safe = redact(url)
    whole_s = 3 * timeout_s
    too_slow = f"GET {safe}: not complete within {whole_s:g} s"
    deadline = time.monotonic() + whole_s
    try:
        first = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise TargetError(f"GET {safe}: not a valid URL") from exc
    accept = {"Accept": "application/json, application/yaml;q=0.9, */*;q=0.1"}
    # A URL's user info is basic auth: httpx takes it from the first URL only, so same-origin hops get it here.
    basic = httpx.BasicAuth(first.username, first.password) if first.userinfo else None
    given = [n for n, v in (("headers", headers), ("query", query), ("user info of the URL", first.userinfo)) if v]
    quoted = [url]  # every URL of the chain: an error text may quote one, token and all
    dropped: str | None = None  # what the evidence says when the auth was not sent somewhere
    current = first
    hop = 0
    try:
        # trust_env off: the spec comes from the target itself, as the probes do, not via a proxy.
        # Redirects are followed here, not by httpx: it would send every header but Authorization anywhere.
        with (
            _Watchdog(whole_s) as watchdog,
            httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False) as client,
        ):
            while True:
                if time.monotonic() > deadline:
                    raise TargetError(too_slow)
                ours = auth_follows(first, current)
                if not ours and given and dropped is None:
                    dropped = (
                        f"redirected to {redact(str(current))}, another origin: the auth {' and '.join(given)} "
                        "given for the target were not sent there"
                    )
                with client.stream(
                    "GET",
                    current,
                    headers={**accept, **(headers or {})} if ours else accept,
                    params=dict(query or {}) if ours else None,
                    auth=basic if ours and basic is not None and not current.userinfo else httpx.USE_CLIENT_DEFAULT,
                    extensions={"trace": watchdog.trace},
                ) as resp:
                    if resp.next_request is None:
                        data = _read_spec_response(
                            resp,
                            safe=safe,
                            hop=hop,
                            dropped=dropped,
                            max_bytes=max_bytes,
                            too_slow=too_slow,
                            deadline=deadline,
                        )
                        break
                    if hop == MAX_REDIRECTS:
                        raise TargetError(
                            f"GET {safe}: more than {MAX_REDIRECTS} redirects (a redirect loop?), the last "
                            f"from {redact(str(current))}"
                        )
                    current = resp.next_request.url
                    hop += 1
                    quoted.append(str(current))
                    if current.scheme not in ("http", "https"):
                        raise TargetError(
                            f"GET {safe}: redirected to a {current.scheme}: URL; only http:// and https:// "
                            "redirects are followed"
                        )
    except httpx.HTTPError as exc:
        if watchdog.fired:
            raise TargetError(too_slow) from exc
        detail = str(exc)
        for each in sorted(quoted, key=len, reverse=True):
            detail = detail.replace(each, redact(each))
        raise TargetError(f"GET {safe}: {type(exc).__name__}: {detail[:200]}") from exc
    if watchdog.fired:  # the cut may also look like a clean end of a body without a length
        raise TargetError(too_slow)
    spec = parse_spec_bytes(data, origin=f"GET {safe}", max_bytes=max_bytes)
    return _Fetched(spec, data, (dropped,) if dropped else ())


def _read_spec_response(
    resp: httpx.Response, *, safe: str, hop: int, dropped: str | None, max_bytes: int, too_slow: str, deadline: float
) -> bytes:
    """The body of the last response of a fetch (status 200 only), capped and within the deadline."""
    redirected = hop > 0
    where = f" from {redact(str(resp.url))}" if redirected else ""
    if resp.status_code in (401, 403, 407):
        why = f"; {dropped}" if dropped else " (target.auth)"
        raise TargetError(f"GET {safe}: HTTP {resp.status_code}{where}: authentication required{why}")
    if resp.status_code != 200:
        raise TargetError(f"GET {safe}: HTTP {resp.status_code}{where}")
    if redirected and "html" in resp.headers.get("content-type", "").lower():
        # Redirected to a web page: a login page far more often than a spec.
        raise TargetError(
            f"GET {safe}: redirected to an HTML page ({redact(str(resp.url))}): authentication required "
            "(target.auth), or the spec lives elsewhere (contract.openapi_path)"
        )
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise SpecError(f"GET {safe}: {declared} bytes is over the {max_bytes}-byte cap")
    chunks: list[bytes] = []
    total = 0
    for chunk in resp.iter_bytes():
        if time.monotonic() > deadline:
            raise TargetError(too_slow)
        total += len(chunk)
        if total > max_bytes:
            raise SpecError(f"GET {safe}: over the {max_bytes}-byte cap")
        chunks.append(chunk)
    return b"".join(chunks)


def load_spec(
    source: SpecSource | None,
    *,
    default_url: str | None,
    base_dir: Path,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
) -> LoadedSpec:
    """Load one side's spec; a failure is recorded in the result, not raised. ``headers``/``query``
    (the target's auth) go with a fetch from a URL."""
    notes: tuple[str, ...] = ()
    if isinstance(source, FileSource):
        path = Path(source.file)
        path = path if path.is_absolute() else base_dir / path
        origin = f"file {path}"
        load = lambda: load_spec_file(path)  # noqa: E731
    elif isinstance(source, GitSource):
        repo = Path(source.git.repo)
        repo = repo if repo.is_absolute() else base_dir / repo
        origin = f"git {source.git.ref}:{source.git.path} in {repo}"
        load = lambda: load_spec_git(repo, source.git.ref, source.git.path)  # noqa: E731
    else:
        url = source.url if isinstance(source, UrlSource) else default_url
        if not url:
            return LoadedSpec(origin="none", error="no spec source configured and no target URL to fetch it from")
        origin = f"GET {redact(url)}"

        def load() -> tuple[dict[str, Any], bytes]:
            nonlocal notes
            got = _fetch(url, timeout_s=None, max_bytes=None, headers=headers, query=query)
            notes = got.notes
            return got.spec, got.data

    try:
        spec, data = load()
    except StabilityError as exc:
        return LoadedSpec(origin=origin, error=str(exc))
    except RecursionError:  # a check deeper than the parser's own guards: never out of the section
        return LoadedSpec(origin=origin, error="the document is nested too deeply")
    return LoadedSpec(origin=origin, spec=spec, size_bytes=len(data), sha256=_digest(data), notes=notes)
