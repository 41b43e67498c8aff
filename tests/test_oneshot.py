"""`stability diff` and `stability junit`: one check, no target, no notebook, no Chromium."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stability_lib.demo._app import create_app
from stability_lib.demo._faults import Faults

FIXTURES = Path(__file__).parent / "fixtures"


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "stability_lib.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def sample_spec(tmp_path: Path, name: str, faults: str = "") -> Path:
    app = create_app(faults=Faults.parse(faults) if faults else None, db_path=tmp_path / f"{name}.db")
    try:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(app.openapi()))
        return path
    finally:
        app.state.store.close()


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("specs")
    return {
        "candidate": sample_spec(tmp, "candidate"),
        "field_removed": sample_spec(tmp, "field_removed", "api_break=field_removed"),
        "endpoint_removed": sample_spec(tmp, "endpoint_removed", "api_break=endpoint_removed"),
    }


def test_same_spec_is_exit_0(specs: dict[str, Path]) -> None:
    proc = cli("diff", str(specs["candidate"]), str(specs["candidate"]))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


@pytest.mark.parametrize("fault", ["field_removed", "endpoint_removed"])
def test_a_breaking_change_of_the_sample_service_is_exit_1_in_every_format(specs: dict[str, Path], fault: str) -> None:
    for fmt in ("text", "json", "junit", "html"):
        proc = cli("diff", str(specs["candidate"]), str(specs[fault]), "--format", fmt)
        assert proc.returncode == 1, (fmt, proc.stderr)
        assert "ERR" in proc.stdout or "error" in proc.stdout.lower()
    as_json = json.loads(cli("diff", str(specs["candidate"]), str(specs[fault]), "--format", "json").stdout)
    assert as_json["exit_code"] == 1


def test_fail_on_levels_and_swagger_2(tmp_path: Path) -> None:
    # A new optional response header is INFO: it fails only --fail-on INFO.
    def swagger(headers: dict) -> Path:
        doc = {
            "swagger": "2.0",
            "info": {"title": "t", "version": "1"},
            "paths": {"/a": {"get": {"responses": {"200": {"description": "ok", "headers": headers}}}}},
        }
        path = tmp_path / f"s{len(headers)}.json"
        path.write_text(json.dumps(doc))
        return path

    old, new = swagger({}), swagger({"X-Trace": {"type": "string"}})
    assert cli("diff", str(old), str(new), "--fail-on", "INFO").returncode == 1
    assert cli("diff", str(old), str(new), "--fail-on", "WARN").returncode == 0
    assert cli("diff", str(old), str(new), "--fail-on", "ERR").returncode == 0


def test_git_ref_sources(tmp_path: Path, specs: dict[str, Path]) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "api.json").write_text(specs["candidate"].read_text())
    subprocess.run([*git, "add", "api.json"], check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], check=True)
    (repo / "api.json").write_text(specs["endpoint_removed"].read_text())
    proc = cli("diff", "HEAD:api.json", str(repo / "api.json"), "--repo", str(repo))
    assert proc.returncode == 1, proc.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["missing.json", "missing.json"], "no such file"),
        (["--header", "Authorization=Bearer ${NOT_SET_ANYWHERE}", "http://127.0.0.1:1/a", "b"], "NOT_SET_ANYWHERE"),
        (["--format", "pdf", "a", "b"], "invalid choice"),
    ],
)
def test_diff_that_cannot_run_is_one_line_and_exit_3(tmp_path: Path, args: list[str], says: str) -> None:
    proc = cli("diff", *args, cwd=tmp_path)
    assert proc.returncode == 3
    assert len(proc.stderr.strip().splitlines()) == 1 and says in proc.stderr and "Traceback" not in proc.stderr


def test_a_header_secret_is_sent_and_never_printed(tmp_path: Path) -> None:
    import http.server
    import threading

    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.append(self.headers.get("Authorization", ""))
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/openapi.json"
        proc = cli(
            "diff", url, url, "--header", "Authorization=Bearer ${SPEC_TOKEN}", env={"SPEC_TOKEN": "t0k3n-s3cret"}
        )
    finally:
        server.shutdown()
    assert seen and seen[0] == "Bearer t0k3n-s3cret"
    assert proc.returncode == 3 and "401" in proc.stderr
    assert "t0k3n-s3cret" not in proc.stdout + proc.stderr


def test_junit_counts_and_judges_existing_files(tmp_path: Path) -> None:
    passing = tmp_path / "api.xml"
    passing.write_text(
        '<testsuite name="api" tests="2"><testcase classname="t" name="a"/><testcase classname="t" name="b"/></testsuite>'
    )
    proc = cli("junit", str(passing))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "VERDICT: PASS" in proc.stdout and "2 passed" in proc.stdout

    # pytest's own file from the fixtures: counted exactly, and its failures fail the verdict.
    proc = cli("junit", str(passing), str(FIXTURES / "junit" / "pytest.xml"))
    assert proc.returncode == 1 and "VERDICT: FAIL" in proc.stdout
    assert "3 passed     1 failed     1 errors     2 skipped" in proc.stdout
    assert "test_sample::test_fails" in proc.stdout


@pytest.mark.parametrize(
    ("xml", "code"),
    [
        ('<testsuite name="s" tests="1"><testcase classname="t" name="a"><skipped/></testcase></testsuite>', 2),
        ('<testsuite name="s" tests="5" failures="2"><testcase classname="t" name="a"/></testsuite>', 2),
        ("<testsuite", 2),  # unreadable: ERROR, never PASS
    ],
)
def test_junit_that_proves_nothing_is_not_a_pass(tmp_path: Path, xml: str, code: int) -> None:
    path = tmp_path / "x.xml"
    path.write_text(xml)
    assert cli("junit", str(path)).returncode == code


def test_junit_against_a_baseline_names_newly_failing_tests(tmp_path: Path) -> None:
    base, now = tmp_path / "base", tmp_path / "now"
    base.mkdir(), now.mkdir()
    (base / "api.xml").write_text('<testsuite name="api"><testcase classname="t" name="a"/></testsuite>')
    (now / "api.xml").write_text(
        '<testsuite name="api"><testcase classname="t" name="a"><failure message="x"/></testcase></testsuite>'
    )
    proc = cli("junit", str(now), "--baseline", str(base))
    assert proc.returncode == 1 and "newly failing since the baseline: t::a" in proc.stdout


def test_a_junit_baseline_that_is_not_there_is_refused_or_named(tmp_path: Path) -> None:
    # Before: PASS, exit 0, and no word that nothing was compared (found from outside).
    now = tmp_path / "now"
    now.mkdir()
    (now / "api.xml").write_text('<testsuite name="api"><testcase classname="t" name="a"/></testsuite>')
    proc = cli("junit", str(now), "--baseline", str(tmp_path / "nowhere"))
    assert proc.returncode == 3 and proc.stderr.strip().endswith(
        "--baseline " + str(tmp_path / "nowhere") + ": no such folder"
    )
    (tmp_path / "empty").mkdir()
    proc = cli("junit", str(now), "--baseline", str(tmp_path / "empty"))
    assert (
        proc.returncode == 0 and f"not compared: api.xml (no file of that name in {tmp_path / 'empty'})" in proc.stdout
    )


def test_junit_with_nothing_to_read_is_exit_3(tmp_path: Path) -> None:
    proc = cli("junit", str(tmp_path))
    assert proc.returncode == 3 and "no JUnit XML files found" in proc.stderr


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_text_output_escapes_exactly_what_a_terminal_or_parser_would_act_on(text: str) -> None:
    from stability_lib.contract.diff_output import _BIDI, _inert

    def unsafe(ch: str) -> bool:
        code = ord(ch)
        return (
            code < 0x20 or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF) or ch in _BIDI
        )

    shown = _inert(text)
    assert not any(unsafe(ch) for ch in shown)
    if not any(unsafe(ch) for ch in text):
        assert shown == text
    else:
        assert len(shown) > len(text)
