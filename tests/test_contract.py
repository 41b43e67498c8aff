"""Contract section: config, loading specs from files / git / HTTP, and the claims it makes."""

from __future__ import annotations

import contextlib
import copy
import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from support import QuietHandler, http_server

from stability_lib.contract.openapi_diff import Change, Level, SpecError
from stability_lib.contract.section import ContractConfig, DbCompareConfig, contract_claims, run_contract
from stability_lib.contract.spec_source import (
    FileSource,
    GitSource,
    UrlSource,
    fetch_spec,
    load_spec,
    load_spec_git,
    parse_spec_bytes,
)
from stability_lib.core.errors import TargetError
from stability_lib.core.models import Status

TODAY = date(2025, 6, 1)


def spec(*, with_email: bool = True, extra_path: bool = False) -> dict[str, Any]:
    user: dict[str, Any] = {
        "type": "object",
        "required": ["id"],
        "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
    }
    if with_email:
        user["properties"]["email"] = {"type": "string"}
    paths: dict[str, Any] = {
        "/users/{id}": {
            "get": {
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/User"}}},
                    }
                },
            }
        }
    }
    if extra_path:
        paths["/health"] = {"get": {"responses": {"200": {"description": "ok"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Users", "version": "1"},
        "paths": paths,
        "components": {"schemas": {"User": user}},
    }


def _api_claim(result: Any) -> Any:
    return next(c for c in result.claims() if c.id == "contract.no_breaking_api_changes")


# --------------------------------------------------------------------------- config


def test_config_defaults_and_sources() -> None:
    cfg = ContractConfig()
    assert cfg.enabled and cfg.openapi_path == "/api/openapi.json" and cfg.baseline_spec is None
    cfg = ContractConfig.model_validate(
        {
            "baseline_spec": {"git": {"ref": "v1.0", "path": "api/openapi.yaml"}},
            "candidate_spec": {"file": "openapi.json"},
            "fail_on_warn": True,
            "database": {"baseline": "old.db", "candidate": "sqlite:///new.db"},
        }
    )
    assert isinstance(cfg.baseline_spec, GitSource) and cfg.baseline_spec.git.repo == "."
    assert isinstance(cfg.candidate_spec, FileSource)
    assert isinstance(
        ContractConfig.model_validate({"baseline_spec": {"url": "http://x/o.json"}}).baseline_spec, UrlSource
    )
    assert isinstance(cfg.database, DbCompareConfig)


@pytest.mark.parametrize(
    "raw",
    [
        {"unknown": 1},
        {"baseline_spec": {"file": "a.json", "url": "http://x"}},
        {"baseline_spec": {"path": "a.json"}},
        {"baseline_spec": {"git": {"ref": "main"}}},
    ],
)
def test_config_rejects_unknown_or_ambiguous_keys(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ContractConfig.model_validate(raw)


# --------------------------------------------------------------------------- parsing


def test_parse_json_and_yaml() -> None:
    as_json = parse_spec_bytes(json.dumps(spec()).encode())
    as_yaml = parse_spec_bytes(yaml.safe_dump(spec()).encode())
    assert as_json == as_yaml == spec()


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe not utf-8",
        b"{not json",
        b"key: [unclosed",
        b'{"swaggerVersion": "1.2", "apis": []}',
        b"just a string",
        b"!!python/object/apply:os.system ['echo hi']",
    ],
)
def test_parse_rejects_what_is_not_an_openapi_3_document(data: bytes) -> None:
    with pytest.raises(SpecError):
        parse_spec_bytes(data)


def test_swagger_2_is_converted_to_openapi_3() -> None:
    doc = parse_spec_bytes(
        b'{"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {"/a": {"get": '
        b'{"responses": {"200": {"description": "ok", "schema": {"$ref": "#/definitions/A"}}}}}}, '
        b'"definitions": {"A": {"type": "object"}}}'
    )
    assert doc["openapi"].startswith("3.0")
    assert doc["paths"]["/a"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/A"
    }


def test_parse_caps_size_and_yaml_alias_expansion() -> None:
    with pytest.raises(SpecError, match="cap"):
        parse_spec_bytes(json.dumps(spec()).encode(), max_bytes=100)
    # "Billion laughs": a few hundred bytes that expand to 10^9 nodes.
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    lines.append("openapi: 3.0.0")
    with pytest.raises(SpecError, match="expands"):
        parse_spec_bytes("\n".join(lines).encode())


# --------------------------------------------------------------------------- files


def test_specs_from_json_and_yaml_files(tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text(json.dumps(spec()))
    (tmp_path / "new.yaml").write_text(yaml.safe_dump(spec(with_email=False)))
    (tmp_path / "same.yaml").write_text(yaml.safe_dump(spec(extra_path=True)))

    def run(old: str, new: str) -> Any:
        cfg = ContractConfig(
            baseline_spec=FileSource(file=old), candidate_spec=FileSource(file=new), compare_ws_events=False
        )
        return run_contract(cfg, baseline_url=None, candidate_url=None, base_dir=tmp_path, today=TODAY)

    failing = run("old.json", "new.yaml")
    claim = _api_claim(failing)
    assert claim.status is Status.FAIL
    assert (
        claim.statistic
        == "1 ERR, 0 WARN, 0 INFO across 1 operations compared; fails on WARN and above: failed by 1 ERR"
    )
    assert [c.rule for c in failing.changes] == ["response-property-removed"]

    passing = run("old.json", "same.yaml")
    assert _api_claim(passing).status is Status.PASS
    assert (
        _api_claim(passing).statistic == "0 ERR, 0 WARN, 1 INFO across 1 operations compared; fails on WARN and above"
    )

    evidence = passing.to_dict()
    json.dumps(evidence)  # evidence must be JSON
    assert evidence["openapi"]["baseline"]["origin"] == f"file {tmp_path / 'old.json'}"
    assert evidence["openapi"]["candidate"]["operations"] == 2
    assert evidence["openapi"]["counts"] == {"ERR": 0, "WARN": 0, "INFO": 1}
    assert evidence["openapi"]["changes"][0]["rule"] == "operation-added"


def test_missing_file_is_inconclusive_never_pass(tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text(json.dumps(spec()))
    cfg = ContractConfig(baseline_spec=FileSource(file="old.json"), candidate_spec=FileSource(file="gone.json"))
    result = run_contract(cfg, baseline_url=None, candidate_url=None, base_dir=tmp_path, today=TODAY)
    claim = _api_claim(result)
    assert claim.status is Status.INCONCLUSIVE
    assert "gone.json" in claim.statistic and "candidate" in claim.statistic
    assert result.to_dict()["openapi"]["ran"] is False


def test_no_source_and_no_url_is_inconclusive(tmp_path: Path) -> None:
    result = run_contract(ContractConfig(), baseline_url=None, candidate_url=None, base_dir=tmp_path)
    assert [c.status for c in result.claims()] == [Status.INCONCLUSIVE]
    asked = ContractConfig(compare_ws_events=True)  # demanded: no events is no evidence, never skipped
    result = run_contract(asked, baseline_url=None, candidate_url=None, base_dir=tmp_path)
    assert [c.status for c in result.claims()] == [Status.INCONCLUSIVE, Status.INCONCLUSIVE]
    assert result.claims()[1].statistic == "no comparison: no WebSocket events were collected from both targets"


def test_a_spec_file_only_run_of_identical_files_passes_without_live_targets(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps(spec()))
    # compare_ws_events left at its default: with no live target nothing can be collected.
    cfg = ContractConfig(baseline_spec=FileSource(file="s.json"), candidate_spec=FileSource(file="s.json"))
    result = run_contract(cfg, baseline_url=None, candidate_url=None, base_dir=tmp_path, today=TODAY)
    assert [(c.id, c.status) for c in result.claims()] == [("contract.no_breaking_api_changes", Status.PASS)]
    evidence = result.to_dict()
    assert "ws" not in evidence and "compare_ws_events: true" in evidence["ws_not_compared"]
    assert _api_claim(result).statistic == "0 ERR, 0 WARN, 0 INFO across 1 operations compared; fails on WARN and above"


def test_empty_baseline_is_inconclusive(tmp_path: Path) -> None:
    empty = {"openapi": "3.0.0", "info": {"title": "e", "version": "1"}, "paths": {}}
    (tmp_path / "e.json").write_text(json.dumps(empty))
    cfg = ContractConfig(
        baseline_spec=FileSource(file="e.json"), candidate_spec=FileSource(file="e.json"), compare_ws_events=False
    )
    claim = _api_claim(run_contract(cfg, baseline_url=None, candidate_url=None, base_dir=tmp_path))
    assert claim.status is Status.INCONCLUSIVE
    assert "no operations" in claim.statistic


# --------------------------------------------------------------------------- git


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        check=True,
        capture_output=True,
    )


def test_specs_from_git_refs(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "api").mkdir()
    (repo / "api" / "openapi.yaml").write_text(yaml.safe_dump(spec()))
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "v1")
    _git(repo, "tag", "v1")
    (repo / "api" / "openapi.yaml").write_text(yaml.safe_dump(spec(with_email=False)))
    _git(repo, "commit", "-q", "-am", "v2")

    cfg = ContractConfig.model_validate(
        {
            "baseline_spec": {"git": {"repo": "repo", "ref": "v1", "path": "api/openapi.yaml"}},
            "candidate_spec": {"git": {"repo": "repo", "ref": "HEAD", "path": "api/openapi.yaml"}},
            "compare_ws_events": False,
        }
    )
    result = run_contract(cfg, baseline_url=None, candidate_url=None, base_dir=tmp_path, today=TODAY)
    assert _api_claim(result).status is Status.FAIL
    assert [c.rule for c in result.changes] == ["response-property-removed"]
    assert result.baseline.origin == f"git v1:api/openapi.yaml in {repo}"
    assert len(result.baseline.sha256) == 64

    same, _ = load_spec_git(repo, "HEAD~1", "api/openapi.yaml")
    assert same == spec()


@pytest.mark.parametrize(
    ("ref", "path"), [("--output=/tmp/x", "a.yaml"), ("nope", "api/openapi.yaml"), ("HEAD", "missing.yaml")]
)
def test_bad_git_refs_are_errors(tmp_path: Path, ref: str, path: str) -> None:
    _git(tmp_path, "init", "-q")
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "openapi.yaml").write_text(yaml.safe_dump(spec()))
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "v1")
    with pytest.raises(TargetError):
        load_spec_git(tmp_path, ref, path)


# --------------------------------------------------------------------------- HTTP


@contextlib.contextmanager
def _static_server(routes: dict[str, tuple[int, bytes]]) -> Iterator[str]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.reply(*routes.get(self.path, (404, b"not found")))

    with http_server(Handler) as url:
        yield url


@contextlib.contextmanager
def _guarded_spec_server(key: str) -> Iterator[str]:
    """Serves the spec only with the right X-API-Key (or ?key=); /login is an HTML page, /moved redirects there."""
    body = json.dumps(spec()).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.startswith("/moved"):
                self.send_response(302)
                self.send_header("Location", "/login?next=/api/openapi.json")
                self.end_headers()
                return
            if self.path.startswith("/login"):
                page = b"<html><body>Sign in</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
                return
            allowed = self.headers.get("X-API-Key") == key or self.path.endswith(f"key={key}")
            self.send_response(200 if allowed else 401)
            payload = body if allowed else b'{"error": "unauthorized"}'
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_spec_fetches_carry_the_target_auth_and_name_a_missing_one(tmp_path: Path) -> None:
    with _guarded_spec_server("k3y-v4lue") as base:
        authed = run_contract(
            ContractConfig(compare_ws_events=False),
            baseline_url=base,
            candidate_url=base,
            base_dir=tmp_path,
            today=TODAY,
            baseline_auth=({"X-API-Key": "k3y-v4lue"}, {}),
            candidate_auth=({}, {"key": "k3y-v4lue"}),
        )
        assert _api_claim(authed).status is Status.PASS
        without = run_contract(
            ContractConfig(compare_ws_events=False),
            baseline_url=base,
            candidate_url=base,
            base_dir=tmp_path,
            today=TODAY,
        )
        assert _api_claim(without).status is Status.INCONCLUSIVE
        assert "authentication required" in (without.baseline.error or "")
        # A redirect to a login page is named as such, not reported as a YAML parse error.
        login = load_spec(None, default_url=f"{base}/moved", base_dir=tmp_path)
        assert "authentication required" in (login.error or "") and "YAML" not in (login.error or "")


def test_specs_fetched_from_each_target(tmp_path: Path) -> None:
    routes = {
        "/old/api/openapi.json": (200, json.dumps(spec()).encode()),
        "/new/api/openapi.json": (200, json.dumps(spec(with_email=False)).encode()),
        "/yaml/api/openapi.json": (200, yaml.safe_dump(spec()).encode()),
    }
    with _static_server(routes) as base:
        result = run_contract(
            ContractConfig(compare_ws_events=False),
            baseline_url=f"{base}/old",
            candidate_url=f"{base}/new/",
            base_dir=tmp_path,
            today=TODAY,
        )
        assert _api_claim(result).status is Status.FAIL
        assert result.baseline.origin == f"GET {base}/old/api/openapi.json"

        same = run_contract(
            ContractConfig(compare_ws_events=False),
            baseline_url=f"{base}/old",
            candidate_url=f"{base}/yaml",
            base_dir=tmp_path,
        )
        assert _api_claim(same).status is Status.PASS

        missing = run_contract(
            ContractConfig(compare_ws_events=False),
            baseline_url=f"{base}/old",
            candidate_url=f"{base}/nothing",
            base_dir=tmp_path,
        )
        assert _api_claim(missing).status is Status.INCONCLUSIVE
        assert "HTTP 404" in _api_claim(missing).statistic

        with pytest.raises(SpecError, match="cap"):
            fetch_spec(f"{base}/old/api/openapi.json", max_bytes=64)


def test_url_credentials_never_reach_evidence(tmp_path: Path) -> None:
    with _static_server({}) as base:
        host = base.removeprefix("http://")
        cfg = ContractConfig(
            baseline_spec=UrlSource(url=f"http://user:hunter2@{host}/spec.json?token=abc123"), compare_ws_events=False
        )
        result = run_contract(cfg, baseline_url=None, candidate_url=base, base_dir=tmp_path)
        dumped = json.dumps(result.to_dict()) + json.dumps([c.serialize() for c in result.claims()])
        assert "hunter2" not in dumped and "abc123" not in dumped


def test_unreachable_target_is_inconclusive(tmp_path: Path) -> None:
    with _static_server({}) as base:
        pass  # closed: nothing listens there any more
    result = run_contract(
        ContractConfig(compare_ws_events=False), baseline_url=base, candidate_url=base, base_dir=tmp_path
    )
    assert _api_claim(result).status is Status.INCONCLUSIVE


# --------------------------------------------------------------------------- claims


def _change(level: Level) -> Change:
    return Change(level, "x", "/p", "GET", "", "m")


def test_contract_claims_verdicts() -> None:
    assert contract_claims([], fail_on_warn=False, operations_compared=12)[0].status is Status.PASS
    warn = [_change(Level.WARN), _change(Level.INFO), _change(Level.INFO), _change(Level.INFO)]
    claim = contract_claims(warn, fail_on_warn=False, operations_compared=12)[0]
    assert claim.status is Status.PASS
    assert claim.statistic == "0 ERR, 1 WARN, 3 INFO across 12 operations compared; fails on ERR only"
    assert contract_claims(warn, fail_on_warn=True, operations_compared=12)[0].status is Status.FAIL
    assert contract_claims([_change(Level.ERR)], fail_on_warn=False, operations_compared=1)[0].status is Status.FAIL
    assert contract_claims(None, fail_on_warn=False, reason="candidate spec: HTTP 500")[0].status is Status.INCONCLUSIVE


# (changes, fail_on, status, end of the statistic): WARN fails by default, as "breaking" does in oasdiff's sense.
FAIL_ON_TABLE: list[tuple[list[Level], str | None, Status, str]] = [
    ([Level.WARN], None, Status.FAIL, "fails on WARN and above: failed by 1 WARN"),
    (
        [Level.ERR, Level.ERR, Level.WARN, Level.INFO],
        None,
        Status.FAIL,
        "fails on WARN and above: failed by 2 ERR, 1 WARN",
    ),
    ([Level.INFO, Level.INFO], None, Status.PASS, "fails on WARN and above"),
    ([Level.WARN], "ERR", Status.PASS, "fails on ERR only"),
    ([Level.ERR, Level.WARN], "ERR", Status.FAIL, "fails on ERR only: failed by 1 ERR"),
    ([Level.ERR, Level.WARN], "warn", Status.FAIL, "fails on WARN and above: failed by 1 ERR, 1 WARN"),
]


@pytest.mark.parametrize(("levels", "fail_on", "status", "tail"), FAIL_ON_TABLE)
def test_claim_fails_on_warn_by_default_and_says_which_levels_failed(
    levels: list[Level], fail_on: str | None, status: Status, tail: str
) -> None:
    kwargs = {} if fail_on is None else {"fail_on": fail_on}
    (claim,) = contract_claims([_change(lvl) for lvl in levels], operations_compared=4, **kwargs)
    assert claim.status is status
    assert claim.statistic.endswith(tail), claim.statistic
    assert claim.details["fail_on"] == (fail_on or "WARN").upper()


@pytest.mark.parametrize(
    ("raw", "fail_on"),
    [
        ({}, "WARN"),
        ({"fail_on": "ERR"}, "ERR"),
        ({"fail_on": "warn"}, "WARN"),
        ({"fail_on_warn": False}, "ERR"),  # params written before fail_on
        ({"fail_on_warn": True}, "WARN"),
        ({"fail_on_warn": True, "fail_on": "WARN"}, "WARN"),
    ],
)
def test_fail_on_defaults_to_warn_and_the_old_key_is_still_read(raw: dict[str, Any], fail_on: str) -> None:
    cfg = ContractConfig.model_validate(raw)
    assert cfg.fail_on == fail_on
    assert cfg.fail_on_warn is (fail_on == "WARN")


@pytest.mark.parametrize(
    "raw",
    [{"fail_on": "INFO"}, {"fail_on": "error"}, {"fail_on_warn": "yes"}, {"fail_on_warn": False, "fail_on": "WARN"}],
)
def test_fail_on_refuses_other_levels_and_contradictions(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ContractConfig.model_validate(raw)


def test_the_section_fails_on_a_warn_change_by_default_and_not_with_fail_on_err(tmp_path: Path) -> None:
    baseline = spec()
    baseline["paths"]["/users/{id}"]["get"]["parameters"].append(
        {"name": "q", "in": "query", "schema": {"type": "string"}}
    )
    (tmp_path / "old.json").write_text(json.dumps(baseline))
    (tmp_path / "new.json").write_text(json.dumps(spec()))  # the candidate drops 'q': request-parameter-removed, WARN

    def claim(**cfg: Any) -> Any:
        config = ContractConfig(
            baseline_spec=FileSource(file="old.json"),
            candidate_spec=FileSource(file="new.json"),
            compare_ws_events=False,
            **cfg,
        )
        result = run_contract(config, baseline_url=None, candidate_url=None, base_dir=tmp_path, today=TODAY)
        assert result.to_dict()["fail_on"] == config.fail_on
        return _api_claim(result)

    assert [claim().status, claim(fail_on="ERR").status] == [Status.FAIL, Status.PASS]
    assert claim().statistic.endswith("fails on WARN and above: failed by 1 WARN")


# --------------------------------------------------------------------------- WebSocket and database through the section


def test_ws_events_and_database_are_compared(tmp_path: Path) -> None:
    import sqlite3

    for name, ddl in (("old.db", "CREATE TABLE t (a INTEGER, b TEXT);"), ("new.db", "CREATE TABLE t (a INTEGER);")):
        with sqlite3.connect(tmp_path / name) as conn:
            conn.executescript(ddl)
    (tmp_path / "s.json").write_text(json.dumps(spec()))
    cfg = ContractConfig(
        baseline_spec=FileSource(file="s.json"),
        candidate_spec=FileSource(file="s.json"),
        database=DbCompareConfig(baseline="old.db", candidate="new.db"),
    )
    events = [{"type": "tick", "n": 1}]
    result = run_contract(
        cfg,
        baseline_url=None,
        candidate_url=None,
        base_dir=tmp_path,
        baseline_events=events,
        candidate_events=[{"type": "tick", "n": "1"}],
    )
    by_id = {c.id: c for c in result.claims()}
    assert by_id["contract.no_breaking_api_changes"].status is Status.PASS
    assert by_id["contract.ws_message_contract"].status is Status.FAIL
    assert by_id["contract.db_schema_compatible"].status is Status.FAIL
    evidence = result.to_dict()
    assert evidence["database"]["changes"][0]["rule"] == "db-column-removed"
    assert evidence["ws"]["changes"][0]["rule"] == "ws-field-type-changed"

    no_events = run_contract(cfg, baseline_url=None, candidate_url=None, base_dir=tmp_path, baseline_events=events)
    assert {c.id: c for c in no_events.claims()}["contract.ws_message_contract"].status is Status.INCONCLUSIVE


def test_missing_database_is_inconclusive(tmp_path: Path) -> None:
    cfg = ContractConfig(compare_ws_events=False, database=DbCompareConfig(baseline="nope.db", candidate="nope.db"))
    result = run_contract(cfg, baseline_url=None, candidate_url=None, base_dir=tmp_path)
    claim = {c.id: c for c in result.claims()}["contract.db_schema_compatible"]
    assert claim.status is Status.INCONCLUSIVE
    assert "not found" in claim.statistic
    assert not (tmp_path / "nope.db").exists()


def test_result_dict_is_a_copy_not_shared_state(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps(spec()))
    cfg = ContractConfig(
        baseline_spec=FileSource(file="s.json"), candidate_spec=FileSource(file="s.json"), compare_ws_events=False
    )
    result = run_contract(cfg, baseline_url=None, candidate_url=None, base_dir=tmp_path)
    before = copy.deepcopy(result.to_dict())
    result.to_dict()["openapi"]["counts"]["ERR"] = 99
    assert result.to_dict() == before


# --------------------------------------------------------------------------- live: the bundled sample service


@pytest.fixture(scope="module")
def candidate_url() -> Iterator[str]:
    from stability_lib.demo import serve

    with serve(variant="candidate") as url:
        yield url


@pytest.mark.parametrize(
    ("api_break", "rule", "where"),
    [
        ("field_removed", "response-property-removed", "created_at"),
        ("param_required", "request-parameter-became-required", "parameters/query/limit"),
        ("endpoint_removed", "operation-removed", ""),
    ],
)
def test_live_api_break_fails_with_the_right_rule(
    candidate_url: str, tmp_path: Path, api_break: str, rule: str, where: str
) -> None:
    from stability_lib.demo import serve

    with serve(variant="candidate", faults=[f"api_break={api_break}"]) as broken_url:
        result = run_contract(
            ContractConfig(compare_ws_events=False),
            baseline_url=candidate_url,
            candidate_url=broken_url,
            base_dir=tmp_path,
        )
    claim = _api_claim(result)
    assert claim.status is Status.FAIL
    errors = [c for c in result.changes if c.level is Level.ERR]
    assert errors and {c.rule for c in errors} == {rule}
    assert all(where in c.location for c in errors)
    assert result.operations_compared > 0


def test_live_candidate_against_itself_passes(candidate_url: str, tmp_path: Path) -> None:
    result = run_contract(
        ContractConfig(compare_ws_events=False),
        baseline_url=candidate_url,
        candidate_url=candidate_url,
        base_dir=tmp_path,
    )
    claim = _api_claim(result)
    assert claim.status is Status.PASS, claim.statistic
    assert claim.statistic.startswith("0 ERR, 0 WARN, 0 INFO across ")
    assert result.baseline.sha256 == result.candidate.sha256


def test_a_schema_behind_an_external_ref_makes_the_claim_inconclusive_not_pass() -> None:
    from stability_lib.contract.openapi_diff import Change, Level
    from stability_lib.contract.section import contract_claims

    blind = Change(Level.WARN, "unresolved-ref", "/users", "get", "/responses/200", "not compared")
    (claim,) = contract_claims([blind], fail_on_warn=False, operations_compared=3)
    assert claim.status.value == "INCONCLUSIVE" and "could not be compared" in claim.statistic
    # Failing on WARN (the default) does not turn a blind spot into a FAIL: it is no evidence either way.
    (claim,) = contract_claims([blind], operations_compared=3)
    assert claim.status.value == "INCONCLUSIVE" and "could not be compared" in claim.statistic
    (claim,) = contract_claims(
        [blind, Change(Level.WARN, "request-parameter-removed", "/u", "GET", "p", "m")], operations_compared=3
    )
    assert claim.status.value == "FAIL" and claim.statistic.endswith("fails on WARN and above: failed by 1 WARN")


# --------------------------------------------------------------------------- unbounded inputs (issue 11, item 3)


def _in_thread(fn: Any, wait_s: float) -> tuple[bool, Any]:
    """Run ``fn`` in a daemon thread: (finished within ``wait_s``, its result or exception)."""
    box: list[Any] = []

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(wait_s)
    return (not thread.is_alive(), box[0] if box else None)


def test_a_fifo_spec_file_is_refused_without_blocking(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "spec.fifo"
    os.mkfifo(fifo)
    (tmp_path / "old.json").write_text(json.dumps(spec()))
    cfg = ContractConfig(
        baseline_spec=FileSource(file="old.json"), candidate_spec=FileSource(file="spec.fifo"), compare_ws_events=False
    )
    finished, result = _in_thread(
        lambda: run_contract(cfg, baseline_url=None, candidate_url=None, base_dir=tmp_path), 20
    )
    if not finished:  # unblock the reader so the test process does not keep a stuck thread
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    assert finished, "opening a FIFO spec blocked"
    claim = _api_claim(result)
    assert claim.status is Status.INCONCLUSIVE
    assert "not a regular file" in claim.statistic


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_spec_file_is_refused_unread_within_bounded_memory(device: str) -> None:
    """/dev/zero says it is 0 bytes long and never ends: before the fix it was read to 6.7 GB."""
    import sys

    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from pathlib import Path\n"
        "from stability_lib.contract.spec_source import FileSource, load_spec\n"
        f"got = load_spec(FileSource(file={device!r}), default_url=None, base_dir=Path('.'))\n"
        "print(got.error)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "not a regular file" in proc.stdout


def test_a_directory_spec_file_is_refused(tmp_path: Path) -> None:
    from stability_lib.contract.spec_source import load_spec

    got = load_spec(FileSource(file=str(tmp_path)), default_url=None, base_dir=tmp_path)
    assert not got.ok and "not a regular file" in str(got.error)


def test_a_spec_file_over_the_cap_is_refused_before_reading(tmp_path: Path) -> None:
    from stability_lib.contract.spec_source import load_spec_file

    big = tmp_path / "big.json"
    with big.open("wb") as fh:  # sparse: large on paper, nothing to write
        fh.truncate(64 * 1024 * 1024)
    with pytest.raises(SpecError, match="cap"):
        load_spec_file(big)


@contextlib.contextmanager
def _dripping_server(head: bytes, drip: bytes, every_s: float) -> Iterator[str]:
    """Answers every connection with ``head`` then ``drip`` every ``every_s``, forever."""
    import socket

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                try:
                    conn.sendall(head)
                    while not stop.wait(every_s):
                        conn.sendall(drip)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


@pytest.mark.parametrize(
    ("head", "drip"),
    [
        (b"HTTP/1.1 200 OK\r\n", b"X"),  # headers that never end
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
            b" ",
        ),  # a body that never ends
    ],
    ids=["headers", "body"],
)
def test_a_spec_fetch_that_drips_is_cut_at_the_whole_request_deadline(head: bytes, drip: bytes) -> None:
    with _dripping_server(head, drip, 0.1) as base:
        finished, outcome = _in_thread(lambda: fetch_spec(f"{base}/openapi.json", timeout_s=1), 30)
    assert finished, "a dripping server held the spec fetch past its deadline"
    assert isinstance(outcome, TargetError) and "not complete within 3 s" in str(outcome)


def test_a_spec_fetch_of_an_endless_body_stops_at_the_cap() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
    with _dripping_server(head, chunk, 0.0001) as base:
        finished, outcome = _in_thread(lambda: fetch_spec(f"{base}/openapi.json", max_bytes=1 << 20), 60)
    assert finished and isinstance(outcome, SpecError) and "cap" in str(outcome)


def test_a_stalled_git_is_killed_at_its_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import stat as stat_mod

    from stability_lib.contract import spec_source as _contract

    fake = tmp_path / "bin"
    fake.mkdir()
    git = fake / "git"
    git.write_text("#!/bin/sh\nprintf 'openapi: 3.0.0\\n'\nexec sleep 60\n")
    git.chmod(git.stat().st_mode | stat_mod.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(_contract, "GIT_TIMEOUT_S", 1.0)
    finished, outcome = _in_thread(lambda: load_spec_git(tmp_path, "HEAD", "api.yaml"), 20)
    assert finished, "a stalled git held the read"
    assert isinstance(outcome, TargetError) and "did not answer" in str(outcome)


@pytest.mark.parametrize(
    "data",
    [
        b'{"openapi": "3.0.0", "info": {"title": "t", "version": "1"}, "paths": {}, "x": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}",
        b"openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths: {}\nx: " + b"[" * 100_000 + b"]" * 100_000,
        b"openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths: {}\nx:\n"
        + b"".join(b" " * i + b"- \n" for i in range(1, 3000)),
    ],
    ids=["json", "yaml-flow", "yaml-block"],
)
def test_a_deeply_nested_spec_is_an_inconclusive_claim_naming_the_nesting(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "deep").write_bytes(data)
    (tmp_path / "old.json").write_text(json.dumps(spec()))
    cfg = ContractConfig(
        baseline_spec=FileSource(file="old.json"), candidate_spec=FileSource(file="deep"), compare_ws_events=False
    )
    claim = _api_claim(run_contract(cfg, baseline_url=None, candidate_url=None, base_dir=tmp_path))
    assert claim.status is Status.INCONCLUSIVE
    assert "nest" in claim.statistic
