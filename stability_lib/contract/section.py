"""Contract section: is the candidate's API, WebSocket messages and database schema backward compatible?

Config (``ContractConfig``), loading of the two OpenAPI specs (live URL, file, or a
file at a git ref), and the claims. The diffs themselves are pure and live in
``contract.openapi_diff``, ``contract.ws_messages`` and ``contract.db_schema``.

"No breaking changes" is only claimed from a diff that could have found one: two
real specs, with at least one operation in the baseline. Anything less is
INCONCLUSIVE, with the reason.
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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..core.errors import StabilityError, TargetError
from ..core.models import Claim, EvidenceRef, Figure, Status
from .db_schema import DB_RULES
from .openapi_diff import (
    RULES,
    Change,
    Level,
    Rule,
    SpecError,
    check_spec,
    count_levels,
    count_operations,
    diff_openapi,
)
from .swagger2 import as_openapi3
from .ws_messages import WS_RULES

__all__ = [
    "MAX_SPEC_BYTES",
    "RULE_TABLES",
    "UrlSource",
    "FileSource",
    "GitRef",
    "GitSource",
    "SpecSource",
    "DbCompareConfig",
    "ContractConfig",
    "LoadedSpec",
    "ContractResult",
    "WsComparison",
    "DbComparison",
    "redact",
    "parse_spec_bytes",
    "read_regular_file",
    "load_spec_file",
    "load_spec_git",
    "fetch_spec",
    "load_spec",
    "contract_claims",
    "run_contract",
]

SECTION = "contract"
# Every rule the section judges by, for the report's table: id, level, description.
RULE_TABLES: dict[str, tuple[Rule, ...]] = {"openapi": RULES, "websocket": WS_RULES, "database": DB_RULES}
EVIDENCE_FILE = "contract.json"
MAX_SPEC_BYTES = 32 * 1024 * 1024
# A YAML document can use aliases to expand to far more nodes than its size suggests.
MAX_SPEC_NODES = 5_000_000
FETCH_TIMEOUT_S = 10.0
GIT_TIMEOUT_S = 30.0
# Events and changes kept in evidence are capped; counts are always complete.
MAX_CHANGES_IN_EVIDENCE = 2000


# --------------------------------------------------------------------------- config


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


class DbCompareConfig(_Strict):
    baseline: str = Field(..., description="SQLAlchemy URL or SQLite file path of the baseline database.")
    candidate: str = Field(..., description="SQLAlchemy URL or SQLite file path of the candidate database.")


class ContractConfig(_Strict):
    enabled: bool = True
    openapi_path: str = Field("/api/openapi.json", description="Where each target serves its OpenAPI document.")
    baseline_spec: SpecSource | None = Field(None, description="Default: fetched from the baseline target.")
    candidate_spec: SpecSource | None = Field(None, description="Default: fetched from the candidate target.")
    fail_on: Literal["ERR", "WARN"] = Field(
        "WARN",
        description=(
            "Lowest level of change that fails the check. WARN (default): no breaking changes in oasdiff's "
            "sense, possibly-breaking ones included; ERR: only changes that certainly break a client. "
            "The old key fail_on_warn: true|false is still read as WARN|ERR."
        ),
    )
    compare_ws_events: bool = Field(
        True,
        description=(
            "Compare the WebSocket events that the scenario's sessions receive from the baseline and "
            "the candidate (the fields and types of each event type). It needs a live baseline target "
            "and a scenario: left at its default, the comparison is skipped when either is missing "
            "(a spec-file-only run) and the evidence says why; set true to demand it (INCONCLUSIVE "
            "without events), false to switch it off."
        ),
    )
    ws_event_key: str = Field("type", description="Field of a WebSocket message that names its event type.")
    database: DbCompareConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_old_fail_on_warn(cls, data: Any) -> Any:
        # Params files written before fail_on still say fail_on_warn: true|false.
        if not isinstance(data, dict) or "fail_on_warn" not in data:
            return data
        data = dict(data)
        old = data.pop("fail_on_warn")
        if not isinstance(old, bool):
            raise ValueError("fail_on_warn must be true or false (or use fail_on: ERR|WARN)")
        level = "WARN" if old else "ERR"
        given = data.get("fail_on")
        if given is not None and str(given).strip().upper() != level:
            raise ValueError(f"fail_on: {given} contradicts fail_on_warn: {str(old).lower()}; keep only fail_on")
        data["fail_on"] = level
        return data

    @field_validator("fail_on", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @property
    def fail_on_warn(self) -> bool:
        return self.fail_on == "WARN"


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class LoadedSpec:
    """One side's spec, or why it could not be had. ``origin`` never holds a password."""

    origin: str
    spec: dict[str, Any] | None = None
    error: str | None = None
    size_bytes: int = 0
    sha256: str = ""

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


def fetch_spec(
    url: str, *, timeout_s: float | None = None, max_bytes: int | None = None, headers: dict[str, str] | None = None
) -> tuple[dict[str, Any], bytes]:
    """GET the document at ``url`` (status 200, at most ``max_bytes``, all of it within ``3 * timeout_s``).

    The defaults are the module's FETCH_TIMEOUT_S and MAX_SPEC_BYTES, read at each call.
    """
    import httpx

    timeout_s = FETCH_TIMEOUT_S if timeout_s is None else timeout_s
    max_bytes = MAX_SPEC_BYTES if max_bytes is None else max_bytes
    safe = redact(url)
    whole_s = 3 * timeout_s
    too_slow = f"GET {safe}: not complete within {whole_s:g} s"
    deadline = time.monotonic() + whole_s
    try:
        # trust_env off: the spec comes from the target itself, as the probes do, not via a proxy.
        with (
            _Watchdog(whole_s) as watchdog,
            httpx.Client(timeout=timeout_s, follow_redirects=True, max_redirects=5, trust_env=False) as client,
            client.stream(
                "GET",
                url,
                headers={"Accept": "application/json, application/yaml;q=0.9, */*;q=0.1", **(headers or {})},
                extensions={"trace": watchdog.trace},
            ) as resp,
        ):
            if resp.status_code != 200:
                raise TargetError(f"GET {safe}: HTTP {resp.status_code}")
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
    except httpx.HTTPError as exc:
        if watchdog.fired:
            raise TargetError(too_slow) from exc
        detail = str(exc).replace(url, safe)[:200]  # an error text may quote the URL, token and all
        raise TargetError(f"GET {safe}: {type(exc).__name__}: {detail}") from exc
    if watchdog.fired:  # the cut may also look like a clean end of a body without a length
        raise TargetError(too_slow)
    data = b"".join(chunks)
    return parse_spec_bytes(data, origin=f"GET {safe}", max_bytes=max_bytes), data


def _join_url(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def load_spec(source: SpecSource | None, *, default_url: str | None, base_dir: Path) -> LoadedSpec:
    """Load one side's spec; a failure is recorded in the result, not raised."""
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
        load = lambda: fetch_spec(url)  # noqa: E731
    try:
        spec, data = load()
    except StabilityError as exc:
        return LoadedSpec(origin=origin, error=str(exc))
    except RecursionError:  # a check deeper than the parser's own guards: never out of the section
        return LoadedSpec(origin=origin, error="the document is nested too deeply")
    return LoadedSpec(origin=origin, spec=spec, size_bytes=len(data), sha256=_digest(data))


# --------------------------------------------------------------------------- claims


_UNCOMPARED_RULES = frozenset({"unresolved-ref", "schema-depth-limit"})


def _fails_on(fail_on: Level | str, fail_on_warn: bool | None) -> Level:
    if fail_on_warn is not None:  # the old keyword, still accepted
        return Level.WARN if fail_on_warn else Level.ERR
    level = Level(str(fail_on).strip().upper())
    if level is Level.INFO:
        raise ValueError("fail_on must be ERR or WARN")
    return level


def _failing_levels(levels: Iterable[Level], fail_on: Level) -> list[Level]:
    return [lvl for lvl in levels if lvl is Level.ERR or (fail_on is Level.WARN and lvl is Level.WARN)]


def contract_claims(
    changes: Sequence[Change] | None,
    *,
    fail_on: Level | str = Level.WARN,
    fail_on_warn: bool | None = None,
    operations_compared: int | None = None,
    reason: str = "",
    section: str = SECTION,
    evidence_file: str = EVIDENCE_FILE,
    required: bool = True,
) -> list[Claim]:
    """The claim "No breaking API changes".

    ``changes=None`` means no diff ran (a spec could not be had: say why in
    ``reason``): INCONCLUSIVE. A baseline with no operations gives the diff
    nothing to find: INCONCLUSIVE too. Otherwise FAIL on any change at or above
    ``fail_on`` (WARN by default: "breaking" in oasdiff's sense includes WARN; the
    old ``fail_on_warn`` keyword, when given, decides instead), else PASS. The
    statistic says which level the check fails on and which levels failed it.
    """
    threshold = _fails_on(fail_on, fail_on_warn)
    statement = "No breaking API changes"
    claim_id = f"{section}.no_breaking_api_changes"
    evidence = (EvidenceRef(section=section, file=evidence_file, records=("openapi",)),)
    if changes is None:
        return [
            Claim(
                claim_id,
                section,
                statement,
                Status.INCONCLUSIVE,
                f"no diff: {reason or 'a spec could not be obtained'}",
                required,
                evidence,
            )
        ]
    counts = count_levels(changes)
    ops = f" across {operations_compared} operations compared" if operations_compared is not None else ""
    statistic = f"{counts['ERR']} ERR, {counts['WARN']} WARN, {counts['INFO']} INFO{ops}"
    if operations_compared is not None and operations_compared <= 0:
        return [
            Claim(
                claim_id,
                section,
                statement,
                Status.INCONCLUSIVE,
                f"{statistic}: the baseline spec has no operations",
                required,
                evidence,
            )
        ]
    failing_levels = _failing_levels(Level, threshold)
    # A schema the diff could not follow is no evidence either way: INCONCLUSIVE below, never FAIL.
    failing = [c for c in changes if c.level in failing_levels and c.rule not in _UNCOMPARED_RULES]
    rule_text = "fails on WARN and above" if threshold is Level.WARN else "fails on ERR only"
    if failing:
        failed_by = ", ".join(
            f"{n} {lvl.value}" for lvl in failing_levels if (n := sum(c.level is lvl for c in failing))
        )
        statistic += f"; {rule_text}: failed by {failed_by}"
    else:
        statistic += f"; {rule_text}"
    details = {
        "counts": counts,
        "fail_on": threshold.value,
        "failed_by": {lvl.value: n for lvl in failing_levels if (n := sum(c.level is lvl for c in failing))},
        "failing": [f"{c.level} {c.rule} {c.method} {c.path} {c.location}".strip() for c in failing[:20]],
    }
    # A schema the diff could not follow (an external $ref, a depth limit) was never compared:
    # "nothing breaking found" would be a claim without evidence.
    blind = [c for c in changes if c.rule in _UNCOMPARED_RULES]
    if failing:
        status = Status.FAIL
    elif blind:
        status = Status.INCONCLUSIVE
        statistic += f"; {len(blind)} schema(s) could not be compared ({blind[0].rule} at {blind[0].location})"
    else:
        status = Status.PASS
    what = "breaking changes (ERR or WARN)" if threshold is Level.WARN else "breaking changes (ERR)"
    figure = Figure(kind="count", value=float(len(failing)), k=len(failing), test="OpenAPI diff rules", what=what)
    return [Claim(claim_id, section, statement, status, statistic, required, evidence, details, figure)]


# --------------------------------------------------------------------------- the section


@dataclass(frozen=True)
class WsComparison:
    changes: tuple[Change, ...] | None
    baseline_events: int
    candidate_events: int
    baseline_schema: dict[str, dict[str, list[str]]]
    candidate_schema: dict[str, dict[str, list[str]]]
    collected: bool = True  # False: the caller gathered no events at all (no scenario, no baseline)


@dataclass(frozen=True)
class DbComparison:
    changes: tuple[Change, ...] | None
    tables_compared: int
    baseline_source: str
    candidate_source: str
    error: str | None = None


@dataclass(frozen=True)
class ContractResult:
    """What the contract section established, with everything needed to check it."""

    fail_on: Level
    baseline: LoadedSpec
    candidate: LoadedSpec
    changes: tuple[Change, ...] | None
    operations_compared: int
    diff_error: str | None = None
    ws: WsComparison | None = None
    db: DbComparison | None = None
    today: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def _api_reason(self) -> str:
        missing = [
            f"{side} spec ({spec.origin}): {spec.error}"
            for side, spec in (("baseline", self.baseline), ("candidate", self.candidate))
            if not spec.ok
        ]
        return "; ".join(missing) or (self.diff_error or "")

    def claims(self) -> list[Claim]:
        from .db_schema import db_schema_claims
        from .ws_messages import ws_contract_claims

        out = contract_claims(
            self.changes,
            fail_on=self.fail_on,
            operations_compared=self.operations_compared if self.changes is not None else None,
            reason=self._api_reason(),
        )
        if self.ws is not None:
            out += ws_contract_claims(
                list(self.ws.changes) if self.ws.changes is not None else None,
                baseline_events=self.ws.baseline_events,
                candidate_events=self.ws.candidate_events,
                reason="" if self.ws.collected else "no WebSocket events were collected from both targets",
            )
        if self.db is not None:
            out += db_schema_claims(
                self.db.changes,
                tables_compared=self.db.tables_compared,
                fail_on_warn=self.fail_on is Level.WARN,
                reason=self.db.error or "",
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        def listing(changes: Iterable[Change] | None) -> dict[str, Any]:
            if changes is None:
                return {"ran": False, "counts": None, "changes": []}
            changes = list(changes)
            return {
                "ran": True,
                "counts": count_levels(changes),
                "changes": [c.serialize() for c in changes[:MAX_CHANGES_IN_EVIDENCE]],
                "changes_truncated": max(0, len(changes) - MAX_CHANGES_IN_EVIDENCE),
            }

        out: dict[str, Any] = {
            "fail_on": self.fail_on.value,
            "fail_on_warn": self.fail_on is Level.WARN,  # read by reports written before fail_on
            "today": self.today,
            "openapi": {
                "baseline": self.baseline.serialize(),
                "candidate": self.candidate.serialize(),
                "operations_compared": self.operations_compared,
                "error": self.diff_error,
                **listing(self.changes),
            },
        }
        if self.ws is not None:
            out["ws"] = {
                "collected": self.ws.collected,
                "baseline_events": self.ws.baseline_events,
                "candidate_events": self.ws.candidate_events,
                "baseline_schema": self.ws.baseline_schema,
                "candidate_schema": self.ws.candidate_schema,
                **listing(self.ws.changes),
            }
        out.update(self.extra)
        if self.db is not None:
            out["database"] = {
                "baseline": self.db.baseline_source,
                "candidate": self.db.candidate_source,
                "tables_compared": self.db.tables_compared,
                "error": self.db.error,
                **listing(self.db.changes),
            }
        return out


def _compare_ws(
    cfg: ContractConfig, baseline_events: Iterable[Any] | None, candidate_events: Iterable[Any] | None
) -> WsComparison:
    from .ws_messages import diff_event_schemas, infer_event_schema

    old_list = list(baseline_events or [])
    new_list = list(candidate_events or [])
    old = infer_event_schema(old_list, key_field=cfg.ws_event_key)
    new = infer_event_schema(new_list, key_field=cfg.ws_event_key)
    ran = bool(old_list) and bool(new_list)
    return WsComparison(
        changes=tuple(diff_event_schemas(old, new)) if ran else None,
        baseline_events=len(old_list),
        candidate_events=len(new_list),
        baseline_schema={k: {f: sorted(t) for f, t in v.items()} for k, v in old.items()},
        candidate_schema={k: {f: sorted(t) for f, t in v.items()} for k, v in new.items()},
        collected=baseline_events is not None and candidate_events is not None,
    )


def _compare_db(db: DbCompareConfig, base_dir: Path) -> DbComparison:
    from .db_schema import diff_schemas, read_schema, redact_url, to_sqlalchemy_url

    old_url = to_sqlalchemy_url(db.baseline, base_dir)
    new_url = to_sqlalchemy_url(db.candidate, base_dir)
    sources = (redact_url(old_url), redact_url(new_url))
    try:
        old = read_schema(old_url)
        new = read_schema(new_url)
    except StabilityError as exc:
        return DbComparison(None, 0, *sources, error=str(exc))
    return DbComparison(tuple(diff_schemas(old, new)), len(old.tables), *sources)


def run_contract(
    cfg: ContractConfig,
    *,
    baseline_url: str | None,
    candidate_url: str | None,
    base_dir: Path,
    baseline_events: Iterable[Any] | None = None,
    candidate_events: Iterable[Any] | None = None,
    today: date | None = None,
) -> ContractResult:
    """Load both specs, diff them, and compare WebSocket events and databases when configured."""
    day = today or date.today()
    baseline = load_spec(
        cfg.baseline_spec,
        default_url=_join_url(baseline_url, cfg.openapi_path) if baseline_url else None,
        base_dir=base_dir,
    )
    candidate = load_spec(
        cfg.candidate_spec,
        default_url=_join_url(candidate_url, cfg.openapi_path) if candidate_url else None,
        base_dir=base_dir,
    )
    changes: tuple[Change, ...] | None = None
    diff_error: str | None = None
    operations = 0
    if baseline.spec is not None and candidate.spec is not None:
        try:
            changes = tuple(diff_openapi(baseline.spec, candidate.spec, today=day))
            operations = count_operations(baseline.spec)
        except (SpecError, RecursionError) as exc:
            diff_error = f"diff failed: {exc}"
    ws = _compare_ws(cfg, baseline_events, candidate_events) if cfg.compare_ws_events else None
    extra: dict[str, Any] = {}
    nothing_collected = baseline_events is None and candidate_events is None
    if ws is not None and nothing_collected and "compare_ws_events" not in cfg.model_fields_set:
        # Not asked for, and impossible here: no claim rather than an INCONCLUSIVE one nobody can fix.
        ws = None
        extra["ws_not_compared"] = (
            "no WebSocket events were collected (that needs a live baseline target and a scenario); "
            "set compare_ws_events: true to require the comparison"
        )
    db = _compare_db(cfg.database, base_dir) if cfg.database is not None else None
    return ContractResult(
        fail_on=Level(cfg.fail_on),
        baseline=baseline,
        candidate=candidate,
        changes=changes,
        operations_compared=operations,
        diff_error=diff_error,
        ws=ws,
        db=db,
        today=day.isoformat(),
        extra=extra,
    )
