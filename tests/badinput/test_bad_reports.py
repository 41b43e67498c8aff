"""Bad JUnit, Cobertura and OpenAPI files (issue 11, items 3, 4, 5, 6, 10).

JUnit and Cobertura files go through the real category runner: a command writes the file,
``run_category`` takes it, ``evaluate_run`` judges it. No bad file may give a PASS, none may
raise, and none may block or balloon. OpenAPI documents go through ``load_spec`` and the
contract claims. A few run in a fresh interpreter to measure peak memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _corpus import assert_bad_input_outcome, marker_in_environment, run_bounded, run_python

from stability_lib.contract.section import ContractConfig, run_contract
from stability_lib.contract.spec_source import FileSource
from stability_lib.core.models import Status
from stability_lib.suites.config import CategoryConfig
from stability_lib.suites.coverage import CoverageParseError, parse_cobertura
from stability_lib.suites.process import run_category
from stability_lib.suites.runner import evaluate_run

NOT_PASS = frozenset({Status.FAIL, Status.ERROR, Status.INCONCLUSIVE})
ERROR = frozenset({Status.ERROR})
FAIL = frozenset({Status.FAIL})
INCONCLUSIVE = frozenset({Status.INCONCLUSIVE})

PASSING_CASE = '<testcase classname="m" name="t{i}" time="0.01"/>'


def suite(body: str, **attrs: Any) -> bytes:
    extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
    return f'<?xml version="1.0"?>\n<testsuite name="s"{extra}>{body}</testsuite>'.encode()


def passing(n: int) -> str:
    return "".join(PASSING_CASE.format(i=i) for i in range(n))


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<testsuite name="s"><testcase classname="m" name="&lol4;"/></testsuite>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<testsuite name="s"><testcase classname="m" name="&x;"/></testsuite>"""


def nested(depth: int, inner: str, tag: str = "testsuite") -> bytes:
    return (f'<{tag} name="n">' * depth + inner + f"</{tag}>" * depth).encode()


@dataclass(frozen=True)
class ReportCase:
    id: str
    payload: bytes | Callable[[Path], None] | None  # the file's bytes, or a maker of whatever sits at its path
    statuses: frozenset[Status]
    exit_code: int = 0  # what the test command itself exits with
    issue_item: str = ""


JUNIT_CASES = [
    ReportCase("junit-empty-file", b"", ERROR),
    ReportCase("junit-not-xml", b"all tests passed!\n", ERROR),
    ReportCase("junit-binary", bytes(range(256)) * 64, ERROR),
    ReportCase("junit-truncated", suite(passing(3))[:-20], ERROR),
    ReportCase("junit-wrong-root", b"<html><body>ok</body></html>", ERROR),
    ReportCase("junit-billion-laughs", BILLION_LAUGHS, ERROR),
    ReportCase("junit-external-entity", XXE, ERROR),
    ReportCase("junit-nul-char-reference", suite('<testcase classname="m" name="a&#0;b"/>'), ERROR),
    ReportCase("junit-50k-nested-suites", nested(50_000, passing(1)), ERROR, issue_item="5"),
    ReportCase("junit-50k-nested-failures", nested(50_000, "x", tag="failure"), ERROR, issue_item="5"),
    ReportCase("junit-declares-failures-lists-none", suite(passing(3), tests=5, failures=2), NOT_PASS, issue_item="6"),
    ReportCase("junit-declares-errors-lists-none", suite(passing(3), tests=3, errors=1), NOT_PASS, issue_item="6"),
    ReportCase(
        "junit-root-declares-failures",
        f'<testsuites tests="2" failures="1"><testsuite name="s">{passing(2)}</testsuite></testsuites>'.encode(),
        NOT_PASS,
        issue_item="6",
    ),
    ReportCase("junit-declares-more-tests", suite(passing(2), tests=10), NOT_PASS, issue_item="6"),
    ReportCase("junit-no-testcases", suite(""), INCONCLUSIVE),
    ReportCase("junit-only-skipped", suite('<testcase classname="m" name="t"><skipped/></testcase>'), INCONCLUSIVE),
    ReportCase(
        "junit-one-failure",
        suite(passing(3) + '<testcase classname="m" name="f"><failure message="no"/></testcase>'),
        FAIL,
    ),
    ReportCase("junit-suite-level-error", suite(passing(2) + '<error message="import failed"/>'), FAIL),
    ReportCase("junit-exit-0-with-failure", suite('<testcase classname="m" name="f"><failure/></testcase>'), FAIL),
    ReportCase("junit-all-pass-but-exit-1", suite(passing(3)), NOT_PASS, exit_code=1),
    ReportCase("junit-all-pass-but-killed", suite(passing(3)), NOT_PASS, exit_code=137),
    ReportCase(
        "junit-nan-and-negative-times",
        suite(
            '<testcase classname="m" name="a" time="nan"/><testcase classname="m" name="b" time="-5"/>'
            '<testcase classname="m" name="c" time="inf"/><failure/>'
        ),
        FAIL,
    ),
    ReportCase(
        "junit-10mb-failure-message",
        suite(f'<testcase classname="m" name="f"><failure message="{"M" * 10_000_000}"/></testcase>'),
        FAIL,
        issue_item="3",
    ),
    ReportCase(
        "junit-2mb-test-name",
        suite(f'<testcase classname="m" name="{"N" * 2_000_000}"><failure/></testcase>'),
        FAIL,
        issue_item="3",
    ),
    ReportCase("junit-fifo", lambda p: os.mkfifo(p), ERROR, issue_item="3"),
    ReportCase("junit-symlink-to-dev-zero", lambda p: p.symlink_to("/dev/zero"), ERROR, issue_item="3"),
    ReportCase("junit-a-directory", lambda p: p.mkdir(), ERROR),
    ReportCase("junit-not-written", None, ERROR),
    ReportCase("junit-sparse-200mb", lambda p: p.open("wb").truncate(200 * 1024 * 1024), ERROR, issue_item="3"),
]


def _run_category_with(
    tmp_path: Path, junit: ReportCase, coverage: bytes | Callable[[Path], None] | None = None
) -> Any:
    """A category whose command exits with ``junit.exit_code`` after the payload is put in place."""
    work = tmp_path / "work"
    work.mkdir()
    staged = {"out.xml": junit.payload, "coverage.xml": coverage}
    for name, payload in staged.items():
        if isinstance(payload, bytes):
            (tmp_path / name).write_bytes(payload)
    # The file must be written by this run (older files are never read): the command moves it in.
    script = "".join(f"mv {tmp_path / n} {work / n}; " for n, p in staged.items() if isinstance(p, bytes))
    cfg = CategoryConfig(
        name="bad",
        command=["sh", "-c", f"{script}exit {junit.exit_code}"],
        junit_xml="out.xml",
        cwd="work",
        coverage_xml="coverage.xml" if coverage is not None else None,
        timeout_s=60,
    )
    for name, payload in staged.items():
        if callable(payload):
            payload(work / name)
    with marker_in_environment():
        run = run_bounded(lambda: run_category(cfg, base_dir=tmp_path, out_dir=tmp_path / "out", target_url=None), 90)
        return run_bounded(lambda: evaluate_run(cfg, run), 60)


@pytest.mark.parametrize("case", JUNIT_CASES, ids=[c.id for c in JUNIT_CASES])
def test_bad_junit_never_passes_nor_raises(case: ReportCase, tmp_path: Path) -> None:
    result = _run_category_with(tmp_path, case)
    assert result.status in case.statuses, f"{result.status}: {result.reason}"
    evidence = json.dumps(result.to_dict())
    assert len(evidence) < 2_000_000, f"evidence of {len(evidence)} characters from one category"
    assert "root:" not in evidence  # /etc/passwd never read through an entity


def test_a_huge_junit_file_gives_bounded_evidence_and_memory(tmp_path: Path) -> None:
    """26 MB of test names made 131 MB of evidence (issue 11, item 3): counts stay exact, text is capped."""
    cases = "".join(
        f'<testcase classname="m" name="t{i}-{"x" * 200}"><failure message="{"y" * 300}"/></testcase>'
        for i in range(40_000)
    )
    (tmp_path / "big.xml").write_bytes(suite(cases))
    code = f"""
import json, pathlib
from stability_lib.suites.junit import parse_junit
from stability_lib.suites.judgement import judge_category; from stability_lib.suites.config import CategoryConfig, CategoryRun
report = parse_junit(pathlib.Path({str(tmp_path / "big.xml")!r}).read_bytes())
assert report.failed == 40_000, report.failed
cfg = CategoryConfig(name="big", command=["true"], junit_xml="x.xml")
run = CategoryRun(name="big", argv=("true",), cwd=".", exit_code=1, duration_s=1.0, output_tail=(), junit_path=None)
result = judge_category(cfg, run, report)
print(len(json.dumps(result.to_dict())), result.status.value)
"""
    outcome = run_python(code, timeout_s=180)
    assert outcome.returncode == 0, outcome.describe()
    size, status = outcome.stdout.split()
    assert status == "FAIL"
    assert int(size) < 5_000_000, f"{int(size)} characters of evidence from a 21 MB file"
    assert outcome.max_rss_kb < 1_500_000, outcome.describe()
    assert not outcome.left_behind


def test_a_test_process_that_setsids_away_is_stopped_or_named(tmp_path: Path) -> None:
    """Issue 11, item 10: `setsid sleep` escaped the category's process group and survived."""
    (tmp_path / "out.xml").write_bytes(suite(passing(1)))
    cfg = CategoryConfig(
        name="escapes",
        command=["sh", "-c", "setsid sleep 120 & cp ../out.xml out.xml"],
        junit_xml="out.xml",
        cwd="work",
        timeout_s=60,
    )
    (tmp_path / "work").mkdir()
    from _corpus import marked_processes

    with marker_in_environment() as marker:
        run = run_bounded(lambda: run_category(cfg, base_dir=tmp_path, out_dir=tmp_path / "out", target_url=None), 90)
        import time

        time.sleep(0.5)
        survivors = marked_processes(marker)
        warned = any("sleep" in w or "left" in w for w in run.warnings)
        assert not survivors or warned, f"a setsid'd process survived without a word: {survivors}"
        if survivors:  # the marker check would report them: warned is the accepted minimum
            import signal

            for pid in survivors:
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("key", ["junit_xml", "coverage_xml"])
@pytest.mark.parametrize("where", ["absolute", "dotdot"])
def test_report_paths_outside_cwd_never_delete_a_file_the_tool_did_not_create(
    tmp_path: Path, key: str, where: str
) -> None:
    """Issue 11, item 4: absolute and ../ paths deleted a file outside the category's folder."""
    precious = tmp_path / "precious.xml"
    precious.write_bytes(suite(passing(1)))
    (tmp_path / "work").mkdir()
    path = str(precious) if where == "absolute" else "../precious.xml"
    raw = {"name": "x", "command": ["true"], "junit_xml": "j.xml", "cwd": "work", key: path}
    try:
        cfg = CategoryConfig.model_validate(raw)
    except ValueError:
        cfg = None  # refused at load: nothing can be deleted
    if cfg is not None:
        with marker_in_environment():
            run_bounded(lambda: run_category(cfg, base_dir=tmp_path, out_dir=tmp_path / "out", target_url=None), 60)
    assert precious.exists(), "a file outside the category's folder was deleted"


# --------------------------------------------------------------------------- Cobertura


COVERAGE_CASES: list[tuple[str, bytes]] = [
    ("coverage-empty", b""),
    ("coverage-not-xml", b"100%"),
    ("coverage-wrong-root", b"<report/>"),
    ("coverage-billion-laughs", BILLION_LAUGHS.replace(b"testsuite", b"coverage")),
    ("coverage-external-entity", XXE.replace(b"testsuite", b"coverage")),
    ("coverage-rate-over-one", b'<coverage line-rate="2.5"/>'),
    ("coverage-rate-nan", b'<coverage line-rate="nan"/>'),
    ("coverage-rate-negative", b'<coverage line-rate="-1"/>'),
    ("coverage-covered-over-valid", b'<coverage lines-covered="10" lines-valid="5"/>'),
    ("coverage-negative-counts", b'<coverage lines-covered="-3" lines-valid="-5"/>'),
    ("coverage-counts-not-numbers", b'<coverage lines-covered="many" lines-valid="lots"/>'),
    ("coverage-50k-nested", nested(50_000, "", tag="coverage")),
    ("coverage-truncated", b'<coverage lines-covered="1" lines-valid="2"><packages><package'),
]


@pytest.mark.parametrize(("name", "data"), COVERAGE_CASES, ids=[c[0] for c in COVERAGE_CASES])
def test_bad_cobertura_is_refused_or_gives_a_rate_between_0_and_1(name: str, data: bytes) -> None:
    try:
        report = run_bounded(lambda: parse_cobertura(data, source=name), 30)
    except CoverageParseError:
        return
    rate = report.line_rate
    assert rate is None or 0.0 <= rate <= 1.0, f"line rate {rate} from {data[:80]!r}"
    assert report.branch_rate is None or 0.0 <= report.branch_rate <= 1.0


@pytest.mark.parametrize(
    "payload",
    [
        lambda p: os.mkfifo(p),
        lambda p: p.symlink_to("/dev/zero"),
        b"<coverage",
        BILLION_LAUGHS.replace(b"testsuite", b"coverage"),
    ],
    ids=["fifo", "dev-zero", "truncated", "billion-laughs"],
)
def test_a_bad_coverage_file_never_blocks_nor_sinks_the_category(tmp_path: Path, payload: Any) -> None:
    result = _run_category_with(tmp_path, ReportCase("cov", suite(passing(2)), NOT_PASS), coverage=payload)
    # The tests passed; a coverage file that cannot be read is said, not silently dropped.
    assert result.status in {Status.PASS, Status.ERROR, Status.INCONCLUSIVE}
    assert "coverage" in json.dumps(result.to_dict()).lower()


# --------------------------------------------------------------------------- OpenAPI


def _spec(paths: int = 1) -> dict[str, Any]:
    ops = {f"/p{i}": {"get": {"responses": {"200": {"description": "ok"}}}} for i in range(paths)}
    return {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": ops}


def _yaml_bomb(levels: int) -> bytes:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return ("\n".join(lines) + "\nopenapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths: {}\n").encode()


OPENAPI_CASES: list[tuple[str, bytes | Callable[[Path], None]]] = [
    ("openapi-empty", b""),
    ("openapi-not-utf8", b"openapi: caf\xe9"),
    ("openapi-swagger-2", b'{"swagger": "2.0", "paths": {}}'),
    ("openapi-top-level-list", b"[1, 2, 3]"),
    ("openapi-python-tag", b"!!python/object/apply:os.system ['true']"),
    ("openapi-paths-a-list", json.dumps({**_spec(), "paths": ["/a"]}).encode()),
    ("openapi-operation-a-string", json.dumps({**_spec(), "paths": {"/a": {"get": "yes"}}}).encode()),
    ("openapi-alias-bomb", _yaml_bomb(9)),
    ("openapi-recursive-alias", b"openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths: {}\nx: &x [*x]\n"),
    ("openapi-deep-json", b'{"openapi": "3.0.0", "x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"),
    ("openapi-deep-yaml", b"openapi: 3.0.0\nx: " + b"{a: " * 50_000 + b"1" + b"}" * 50_000),
    ("openapi-fifo", lambda p: os.mkfifo(p)),
    ("openapi-dev-zero", lambda p: p.symlink_to("/dev/zero")),
    ("openapi-directory", lambda p: p.mkdir()),
    ("openapi-sparse-100mb", lambda p: p.open("wb").truncate(100 * 1024 * 1024)),
    (
        "openapi-ref-cycle",
        json.dumps(
            {
                **_spec(),
                "paths": {
                    "/a": {
                        "get": {
                            "responses": {
                                "200": {
                                    "description": "x",
                                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}},
                                }
                            }
                        }
                    }
                },
                "components": {
                    "schemas": {"A": {"$ref": "#/components/schemas/B"}, "B": {"$ref": "#/components/schemas/A"}}
                },
            }
        ).encode(),
    ),
    (
        "openapi-external-ref",
        json.dumps(
            {
                **_spec(),
                "paths": {
                    "/a": {
                        "get": {
                            "responses": {
                                "200": {
                                    "description": "x",
                                    "content": {"application/json": {"schema": {"$ref": "https://127.0.0.1:9/s.json"}}},
                                }
                            }
                        }
                    }
                },
            }
        ).encode(),
    ),
]


@pytest.mark.parametrize(("name", "payload"), OPENAPI_CASES, ids=[c[0] for c in OPENAPI_CASES])
def test_a_bad_candidate_spec_never_passes_nor_raises(tmp_path: Path, name: str, payload: Any) -> None:
    (tmp_path / "good.json").write_text(json.dumps(_spec()))
    bad = tmp_path / "bad"
    if isinstance(payload, bytes):
        bad.write_bytes(payload)
    else:
        payload(bad)
    for baseline, candidate in (("good.json", "bad"), ("bad", "good.json")):
        cfg = ContractConfig(
            baseline_spec=FileSource(file=baseline), candidate_spec=FileSource(file=candidate), compare_ws_events=False
        )
        result = run_bounded(lambda: run_contract(cfg, baseline_url=None, candidate_url=None, base_dir=tmp_path), 60)
        claim = next(c for c in result.claims() if c.id == "contract.no_breaking_api_changes")
        assert claim.status in NOT_PASS, f"{baseline} -> {candidate}: {claim.status} {claim.statistic}"
        json.dumps(result.to_dict())


@pytest.mark.parametrize("name", ["openapi-alias-bomb-11-levels", "openapi-dev-zero"])
def test_a_spec_bomb_stays_within_memory(tmp_path: Path, name: str) -> None:
    if name == "openapi-dev-zero":
        path = "/dev/zero"
    else:
        (tmp_path / "bomb.yaml").write_bytes(_yaml_bomb(11))
        path = str(tmp_path / "bomb.yaml")
    code = f"""
from pathlib import Path
from stability_lib.contract.spec_source import FileSource, load_spec
got = load_spec(FileSource(file={path!r}), default_url=None, base_dir=Path("."))
assert not got.ok
print(got.error)
"""
    outcome = run_python(code, timeout_s=120, cwd=tmp_path, memory_cap_bytes=2 << 30)
    assert_bad_input_outcome_ok = outcome.returncode == 0 and not outcome.timed_out
    assert assert_bad_input_outcome_ok, outcome.describe()
    assert outcome.max_rss_kb < 400 * 1024, outcome.describe()
    assert not outcome.left_behind


def test_the_corpus_helper_flags_a_false_pass() -> None:
    """The shared assertion must fail on exit 0: a corpus that cannot fail proves nothing."""
    from _corpus import Outcome

    with pytest.raises(AssertionError, match="passed"):
        assert_bad_input_outcome(Outcome(["x"], 0, "", "", 0.1, 1000), 3)
    with pytest.raises(AssertionError, match="traceback"):
        assert_bad_input_outcome(Outcome(["x"], 3, "", "Traceback (most recent call last):\nboom\n", 0.1, 1000), 3)
    with pytest.raises(AssertionError, match="one stderr line"):
        assert_bad_input_outcome(Outcome(["x"], 3, "", "a\nb\n", 0.1, 1000), 3)


# --------------------------------------------------------------------------- secrets in every encoding (item 2a)


SECRET = 's3cr3t"Pl4nted\\XYZ&<>'


def _encodings(secret: str) -> dict[str, str]:
    import base64
    import html
    from urllib.parse import quote, quote_plus

    return {
        "plain": secret,
        "repr": repr(secret),
        "repr-of-repr": repr(repr(secret)),
        "json": json.dumps(secret),
        "json-of-json": json.dumps(json.dumps(secret)),
        "xml": html.escape(secret, quote=True),
        "xml-no-quotes": html.escape(secret, quote=False),
        "url": quote(secret, safe=""),
        "url-plus": quote_plus(secret),
        "base64": base64.b64encode(secret.encode()).decode(),
        "basic-auth": base64.b64encode(f"user:{secret}".encode()).decode(),
    }


@pytest.mark.parametrize("encoding", list(_encodings(SECRET)))
def test_a_secret_is_redacted_in_every_common_encoding(encoding: str) -> None:
    """Issue 11, item 2a: pytest's repr doubled the backslash and the exact-bytes redactor missed it."""
    from stability_lib.execution.secrets import redact_text

    encoded = _encodings(SECRET)[encoding]
    text = f"assert token == {encoded} # failed"
    redacted = redact_text(text, frozenset({SECRET}))
    for form in _encodings(SECRET).values():
        assert form not in redacted, f"{encoding}: {form!r} survived in {redacted!r}"
