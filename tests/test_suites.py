"""Test-suite section: real commands, real pytest runs, honest verdicts."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydantic import ValidationError

from stability_lib.core.models import Status
from stability_lib.suites.config import TARGET_URL_ENV, CategoryConfig, CategoryRun, SuitesConfig, build_command
from stability_lib.suites.judgement import category_claims, diff_against_baseline, judge_category
from stability_lib.suites.junit import JUnitReport, TestCase, TestOutcome, parse_junit
from stability_lib.suites.process import run_category
from stability_lib.suites.runner import evaluate_run, run_suites

FIXTURES = Path(__file__).parent / "fixtures" / "junit"

# These projects need no pytest plugin: not loading the installed ones (Hypothesis, Schemathesis, xdist)
# makes a pytest start 0.4 s instead of 2.8 s.
NO_PLUGINS = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def process_gone(pid: int, wait_s: float = 5.0) -> bool:
    """True once ``pid`` no longer runs (a zombie waiting for init to reap it counts as gone)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, IndexError):
            return True
        if state == "Z":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def kill_if_alive(*pids: int) -> None:
    """Clean up after a failed assertion: no test leaves a process behind."""
    for pid in pids:
        if not process_gone(pid, wait_s=0):
            os.kill(pid, signal.SIGKILL)


@contextmanager
def interrupted_once_written(files: Sequence[Path]) -> Iterator[None]:
    """Ctrl-C (a KeyboardInterrupt in the main thread) as soon as every file has content: the
    processes that write them are running."""

    def interrupt_when_written(signum: int, frame: object) -> None:
        if all(f.is_file() and f.read_text().strip() for f in files):
            raise KeyboardInterrupt
        signal.setitimer(signal.ITIMER_REAL, 0.1)

    previous = signal.signal(signal.SIGALRM, interrupt_when_written)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def fake_run(name: str = "auth", *, exit_code: int | None = 0, **kwargs: object) -> CategoryRun:
    fields: dict[str, object] = {
        "name": name,
        "argv": ("tool",),
        "cwd": "/src",
        "exit_code": exit_code,
        "duration_s": 1.25,
        "output_tail": ("last line",),
        "junit_path": Path(f"/out/{name}.junit.xml"),
        "junit_expected_at": f"/out/{name}.junit.xml",
        "timeout_s": 300.0,
    }
    fields.update(kwargs)
    return CategoryRun(**fields)  # type: ignore[arg-type]


def case(name: str, outcome: TestOutcome, time_s: float = 0.1, message: str = "") -> TestCase:
    return TestCase(classname="m", name=name, time_s=time_s, outcome=outcome, message=message)


CUSTOM = CategoryConfig(name="auth", command=["tool"], junit_xml="out.xml")


# --------------------------------------------------------------------------- config


def test_config_defaults_and_validation() -> None:
    cfg = SuitesConfig.model_validate({"categories": [{"name": "auth", "marker": "auth"}]})
    category = cfg.categories[0]
    assert (category.timeout_s, category.required, category.cwd, cfg.rerun_failures) == (300.0, True, ".", 0)

    bad = [
        {"categories": [{"name": "auth", "colour": "red"}]},  # unknown key
        {"categories": [{"name": "auth", "timeout_s": 7200}]},  # above the cap
        {"categories": [{"name": "auth", "timeout_s": 0}]},
        {"categories": [{"name": "a b"}]},  # name becomes a file name and a claim id
        {"categories": [{"name": "auth"}, {"name": "auth"}]},
        {"categories": [{"name": "js", "command": ["npx", "jest"]}]},  # not pytest, no junit_xml
        {"categories": [{"name": "x", "command": ["pytest"], "marker": "auth"}]},
        {"categories": [{"name": "x", "command": []}]},
        {"rerun_failures": 50},
    ]
    for raw in bad:
        with pytest.raises(ValidationError):
            SuitesConfig.model_validate(raw)
    # Any tool that writes JUnit XML works by naming the file.
    SuitesConfig.model_validate({"categories": [{"name": "js", "command": ["npx", "jest"], "junit_xml": "junit.xml"}]})


def test_default_command_is_pytest_with_our_junit_file(tmp_path: Path) -> None:
    cfg = CategoryConfig(name="auth", marker="auth and not slow", paths=["tests/api"])
    argv = build_command(cfg, tmp_path / "auth.junit.xml")
    assert argv[:3] == [sys.executable, "-m", "pytest"]
    assert f"--junitxml={tmp_path / 'auth.junit.xml'}" in argv
    assert argv[argv.index("-m", 3) + 1] == "auth and not slow"
    assert argv[-1] == "tests/api"
    assert "no:cacheprovider" in argv

    custom = CategoryConfig(name="x", command=["pytest", "-x", "tests"])
    assert build_command(custom, tmp_path / "x.xml")[:3] == ["pytest", "-x", "tests"]
    assert f"--junitxml={tmp_path / 'x.xml'}" in build_command(custom, tmp_path / "x.xml")


# --------------------------------------------------------------------------- running commands


def test_timeout_kills_the_command_and_its_children(tmp_path: Path) -> None:
    cfg = CategoryConfig(
        name="hangs",
        command=["sh", "-c", "echo started; sleep 60 & echo $! > child.pid; wait"],
        junit_xml="never.xml",
        timeout_s=1,
    )
    started = time.monotonic()
    run = run_category(cfg, base_dir=tmp_path, out_dir=tmp_path / "out", target_url=None)
    elapsed = time.monotonic() - started

    result = evaluate_run(cfg, run)
    assert result.status is Status.ERROR
    assert run.timed_out
    assert "did not finish within 1 s" in result.reason
    assert "started" in run.output_tail
    child = int((tmp_path / "child.pid").read_text())
    assert process_gone(child), "the child `sleep 60` survived the timeout"
    assert elapsed < 1 + 10  # safety bound only, not a speed assertion


def test_processes_left_behind_after_exit_are_stopped(tmp_path: Path) -> None:
    junit = (FIXTURES / "nested_suites.xml").read_text()
    (tmp_path / "report.xml").write_text(junit)
    cfg = CategoryConfig(
        name="leaky",
        command=["sh", "-c", "sleep 60 & echo $! > child.pid; cp report.xml out.xml"],
        junit_xml="out.xml",
        timeout_s=30,
    )
    run = run_category(cfg, base_dir=tmp_path, out_dir=tmp_path / "out", target_url=None)
    assert not run.timed_out and run.exit_code == 0
    assert any("left processes running" in w for w in run.warnings)
    assert process_gone(int((tmp_path / "child.pid").read_text()))
    # The tool's file is copied next to the other evidence.
    assert run.junit_path == tmp_path / "out" / "leaky.junit.xml"
    assert evaluate_run(cfg, run).status is Status.FAIL  # nested_suites has one failure


def test_a_child_that_calls_setsid_is_found_by_its_marker_and_stopped(tmp_path: Path) -> None:
    (tmp_path / "report.xml").write_text(PASSING_JUNIT)
    cfg = CategoryConfig(
        name="escapes",
        # The child leaves the process group the runner kills, and keeps the output pipe.
        command=["sh", "-c", "setsid sh -c 'echo $$ > child.pid; exec sleep 300' & sleep 0.5; cp report.xml out.xml"],
        junit_xml="out.xml",
        timeout_s=30,
    )
    run = run_category(cfg, base_dir=tmp_path, out_dir=tmp_path / "out", target_url=None)
    child = int((tmp_path / "child.pid").read_text())
    try:
        assert process_gone(child), "the setsid child `sleep 300` survived the category"
        assert any("left the command's process group" in w and f"{child} (sleep)" in w for w in run.warnings)
        assert evaluate_run(cfg, run).status is Status.PASS  # the tests passed; the warning says the rest
    finally:
        kill_if_alive(child)


def test_an_interrupt_stops_the_command_and_its_escaped_children(tmp_path: Path) -> None:
    cfg = CategoryConfig(
        name="interrupted",
        command=[
            "sh",
            "-c",
            "sleep 300 & echo $! > child.pid; setsid sh -c 'echo $$ > escaped.pid; exec sleep 300' & wait",
        ],
        junit_xml="never.xml",
        timeout_s=600,
    )

    pid_files = [tmp_path / name for name in ("child.pid", "escaped.pid")]
    with interrupted_once_written(pid_files), pytest.raises(KeyboardInterrupt):
        run_category(cfg, base_dir=tmp_path, out_dir=tmp_path / "out", target_url=None)
    pids = [int(p.read_text()) for p in pid_files]
    try:
        assert all(process_gone(pid) for pid in pids), "a process the category started outlived Ctrl-C"
    finally:
        kill_if_alive(*pids)


def test_command_that_cannot_start_is_error(tmp_path: Path) -> None:
    cfg = CategoryConfig(name="missing", command=["no-such-test-runner-4821"], junit_xml="j.xml")
    run = run_category(cfg, base_dir=tmp_path, out_dir=tmp_path / "out", target_url=None)
    result = evaluate_run(cfg, run)
    assert result.status is Status.ERROR
    assert run.exit_code is None
    assert "could not start" in result.reason and "no-such-test-runner-4821" in result.reason

    bad_cwd = CategoryConfig(name="nocwd", command=["true"], junit_xml="j.xml", cwd="nowhere")
    result = evaluate_run(bad_cwd, run_category(bad_cwd, base_dir=tmp_path, out_dir=tmp_path / "o", target_url=None))
    assert result.status is Status.ERROR and "does not exist" in result.reason


def test_stale_junit_file_is_never_read_as_this_runs_result(tmp_path: Path) -> None:
    # A passing report left by yesterday's run; today the command writes nothing.
    (tmp_path / "junit.xml").write_text('<testsuite name="s"><testcase classname="m" name="t"/></testsuite>')
    cfg = CategoryConfig(name="stale", command=["sh", "-c", "exit 0"], junit_xml="junit.xml")
    result = evaluate_run(cfg, run_category(cfg, base_dir=tmp_path, out_dir=tmp_path / "o", target_url=None))
    assert result.status is Status.ERROR
    assert "not written by this run" in result.reason
    assert (tmp_path / "junit.xml").exists(), "the runner deleted a file it did not create"


PASSING_JUNIT = '<testsuite name="s"><testcase classname="m" name="t"/></testsuite>'


@pytest.mark.parametrize("key", ["junit_xml", "coverage_xml"])
@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.xml", "reports/../../outside.xml"])
def test_report_paths_outside_cwd_are_refused_at_load_unless_allowed(key: str, path: str) -> None:
    raw = {"name": "js", "command": ["npx", "jest"], "junit_xml": "junit.xml", key: path}
    with pytest.raises(ValidationError) as refused:
        CategoryConfig.model_validate(raw)
    assert key in str(refused.value) and "cwd" in str(refused.value)
    allowed = CategoryConfig.model_validate({**raw, "allow_paths_outside_cwd": True})
    assert getattr(allowed, key) == path
    # Harmless relative paths stay valid.
    CategoryConfig.model_validate({**raw, key: "reports/./sub/../out.xml"})


FAILING_JUNIT = (
    '<testsuite name="s"><testcase classname="m" name="ok"/>'
    '<testcase classname="m" name="bad"><failure message="boom"/></testcase></testsuite>'
)


def test_junit_xml_without_a_command_reads_the_existing_report_and_never_deletes_it(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "ci.xml").write_text(PASSING_JUNIT)
    (reports / "broken.xml").write_text(FAILING_JUNIT)
    os.utime(reports / "ci.xml", (1_000_000_000, 1_000_000_000))  # old: written long before this run
    cfg = SuitesConfig(
        categories=[
            CategoryConfig(name="ci", junit_xml="reports/ci.xml"),
            CategoryConfig(name="broken", junit_xml="reports/broken.xml"),
            CategoryConfig(name="gone", junit_xml="reports/gone.xml"),
        ]
    )
    ci, broken, gone = run_suites(cfg, base_dir=tmp_path, out_dir=tmp_path / "out", target_url=None)

    assert ci.status is Status.PASS, ci.reason
    assert ci.warnings == ()  # no exit code to contradict the file: it alone decides
    assert (
        ci.statistic == "1 passed, 0 failed, 0 errors, 0 skipped, 0 flaky in 0.0 s (an existing report, no command run)"
    )
    assert (tmp_path / "out" / "ci.junit.xml").read_text() == PASSING_JUNIT  # the evidence copy
    assert (reports / "ci.xml").read_text() == PASSING_JUNIT, "the runner changed a report it only reads"
    assert (reports / "broken.xml").read_text() == FAILING_JUNIT

    assert broken.status is Status.FAIL and "m::bad" in broken.reason and broken.warnings == ()

    assert gone.status is Status.ERROR
    assert str(tmp_path / "reports" / "gone.xml") in gone.reason and "runs no command" in gone.reason
    assert not (reports / "gone.xml").exists()
    assert [c.status for c in category_claims([ci, broken, gone])] == [Status.PASS, Status.FAIL, Status.ERROR]


def test_an_existing_report_stays_confined_to_cwd_unless_allowed(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="leads out of the category's cwd"):
        CategoryConfig.model_validate({"name": "ci", "junit_xml": "../elsewhere/ci.xml"})
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "ci.xml").write_text(PASSING_JUNIT)
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "ci.xml").symlink_to(tmp_path / "elsewhere" / "ci.xml")
    linked = CategoryConfig(name="ci", junit_xml="ci.xml", cwd="project")
    (refused,) = run_suites(
        SuitesConfig(categories=[linked]), base_dir=tmp_path, out_dir=tmp_path / "o", target_url=None
    )
    assert refused.status is Status.ERROR and "outside the category's cwd" in refused.reason
    allowed = CategoryConfig(name="ci", junit_xml="../elsewhere/ci.xml", cwd="project", allow_paths_outside_cwd=True)
    (read,) = run_suites(
        SuitesConfig(categories=[allowed]), base_dir=tmp_path, out_dir=tmp_path / "o2", target_url=None
    )
    assert read.status is Status.PASS, read.reason


def test_options_of_a_command_are_refused_on_a_category_that_runs_none() -> None:
    with pytest.raises(ValidationError, match="marker, paths and env apply only to a command"):
        CategoryConfig.model_validate({"name": "ci", "junit_xml": "ci.xml", "marker": "slow"})
    assert not CategoryConfig(name="ci", junit_xml="ci.xml").uses_default_command


def test_files_outside_cwd_are_never_deleted_and_stale_ones_never_read(tmp_path: Path) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    junit = outside / "results.xml"
    coverage = outside / "coverage.xml"
    junit.write_text(PASSING_JUNIT)
    coverage.write_text('<coverage lines-valid="1" lines-covered="1"/>')
    project = tmp_path / "project"
    project.mkdir()
    cfg = CategoryConfig(
        name="optin",
        command=["true"],
        junit_xml=str(junit),
        coverage_xml="../precious/coverage.xml",
        cwd="project",
        allow_paths_outside_cwd=True,
    )
    run = run_category(cfg, base_dir=tmp_path, out_dir=tmp_path / "out", target_url=None)
    result = evaluate_run(cfg, run)
    assert junit.read_text() == PASSING_JUNIT and coverage.exists(), "deleted a file it did not create"
    assert result.status is Status.ERROR and "not written by this run" in result.reason
    assert run.coverage_path is None
    assert any("coverage XML" in w and "not written by this run" in w for w in run.warnings)

    # The same files, rewritten by this run, are read (the opt-in allows them).
    writes = f"cp '{junit}' x && mv x '{junit}' && touch ../precious/coverage.xml"
    rewriting = cfg.model_copy(update={"command": ["sh", "-c", writes]})
    again = evaluate_run(
        rewriting, run_category(rewriting, base_dir=tmp_path, out_dir=tmp_path / "out2", target_url=None)
    )
    assert again.status is Status.PASS, again.reason
    assert again.run.coverage_path is not None


def test_a_symlink_out_of_cwd_is_not_followed_without_the_opt_in(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.xml").write_text("")
    project = tmp_path / "project"
    project.mkdir()
    (project / "out.xml").symlink_to(tmp_path / "elsewhere.xml")
    cfg = CategoryConfig(
        name="linked",
        command=["sh", "-c", f"echo '{PASSING_JUNIT}' > out.xml"],
        junit_xml="out.xml",
        cwd="project",
    )
    result = evaluate_run(cfg, run_category(cfg, base_dir=tmp_path, out_dir=tmp_path / "out", target_url=None))
    assert result.status is Status.ERROR
    assert "outside the category's cwd" in result.reason and "allow_paths_outside_cwd" in result.reason
    assert (project / "out.xml").is_symlink()


def test_unreadable_junit_is_error_with_the_location(tmp_path: Path) -> None:
    cfg = CategoryConfig(
        name="broken",
        command=["sh", "-c", f"cp '{FIXTURES / 'malformed.xml'}' out.xml"],
        junit_xml="out.xml",
    )
    result = evaluate_run(cfg, run_category(cfg, base_dir=tmp_path, out_dir=tmp_path / "o", target_url=None))
    assert result.status is Status.ERROR
    assert "line 5, column" in result.reason


def test_exit_zero_with_failures_in_the_xml_is_flagged(tmp_path: Path) -> None:
    cfg = CategoryConfig(
        name="liar",
        command=["sh", "-c", f"cp '{FIXTURES / 'attributes_disagree.xml'}' out.xml; exit 0"],
        junit_xml="out.xml",
    )
    result = evaluate_run(cfg, run_category(cfg, base_dir=tmp_path, out_dir=tmp_path / "o", target_url=None))
    assert result.status is Status.FAIL
    assert any("exit code 0 although" in w for w in result.warnings)
    assert any("tests=10 but 3 counted" in w for w in result.warnings)


def test_one_deeply_nested_junit_fails_its_own_category_only(tmp_path: Path) -> None:
    depth = 50_000
    (tmp_path / "deep.xml").write_bytes(
        b"<testsuites>"
        + b'<testsuite name="s">' * depth
        + b'<testcase name="t"/>'
        + b"</testsuite>" * depth
        + b"</testsuites>"
    )
    (tmp_path / "failing.xml").write_bytes((FIXTURES / "nested_suites.xml").read_bytes())
    (tmp_path / "passing.xml").write_text(PASSING_JUNIT)
    cfg = SuitesConfig.model_validate(
        {
            "categories": [
                {"name": name, "command": ["cp", f"{name}.xml", "out.xml"], "junit_xml": "out.xml"}
                for name in ("failing", "deep", "passing")
            ]
        }
    )
    results = {r.name: r for r in run_suites(cfg, base_dir=tmp_path, out_dir=tmp_path / "out", target_url=None)}
    assert results["deep"].status is Status.ERROR
    assert "nested deeper than 256" in results["deep"].reason
    assert results["failing"].status is Status.FAIL
    assert results["passing"].status is Status.PASS


def test_a_junit_file_above_the_size_cap_is_refused_for_its_category(tmp_path: Path) -> None:
    from stability_lib.suites.junit import MAX_JUNIT_BYTES

    cfg = CategoryConfig(
        name="big", command=["truncate", "-s", str(MAX_JUNIT_BYTES + 1), "out.xml"], junit_xml="out.xml"
    )
    result = evaluate_run(cfg, run_category(cfg, base_dir=tmp_path, out_dir=tmp_path / "out", target_url=None))
    assert result.status is Status.ERROR
    assert f"larger than the {MAX_JUNIT_BYTES}-byte limit" in result.reason
    assert not (tmp_path / "out" / "big.junit.xml").exists()


# --------------------------------------------------------------------------- verdicts (pure)


def test_declared_failures_that_are_not_listed_are_inconclusive_not_pass() -> None:
    report = parse_junit((FIXTURES / "declares_unlisted_failures.xml").read_bytes())
    for exit_code in (0, 1):
        result = judge_category(CUSTOM, fake_run(exit_code=exit_code), report)
        assert result.status is Status.INCONCLUSIVE
        assert "the JUnit XML is inconsistent" in result.reason and "failures=2 but only 0 listed" in result.reason
        assert any("failures=2 but 0 counted" in w for w in result.warnings)
        assert result.to_dict()["declared_unlisted"] == list(report.declared_unlisted)
    # A listed failure still fails the category, whatever the attributes say.
    failing = parse_junit((FIXTURES / "attributes_disagree.xml").read_bytes())
    assert failing.declared_unlisted and judge_category(CUSTOM, fake_run(), failing).status is Status.FAIL


def test_evidence_keeps_exact_counts_but_bounded_detail() -> None:
    huge = "x" * 300_000
    xml = (
        '<testsuite name="s">'
        + f'<testcase classname="{huge}" name="{huge}"><failure message="{huge}">{huge}</failure></testcase>' * 3
        + "".join(f'<testcase classname="m" name="fail{i}"><failure message="no"/></testcase>' for i in range(300))
        + "".join(f'<testcase classname="m" name="ok{i}"/>' for i in range(5000))
        + f'<error message="{huge}"/>'
        + '<error message="crashed"/>' * 149
        + "</testsuite>"
    ).encode()
    report = parse_junit(xml)
    result = judge_category(CUSTOM, fake_run(exit_code=1), report)
    evidence = result.to_dict()
    assert evidence["counts"]["failed"] == 303 and evidence["counts"]["passed"] == 5000
    assert evidence["counts"]["suite_errors"] == 150
    assert len(evidence["failures"]) == 100 and evidence["failures_omitted"] == 203
    assert len(evidence["suite_errors"]) == 100 and evidence["suite_errors_omitted"] == 50
    assert len(evidence["passed_sample"]) == 20 and evidence["passed_omitted"] == 4980
    assert "[truncated" in evidence["failures"][0]["id"]
    size = len(json.dumps(evidence)) + sum(
        len(json.dumps(c.details)) + len(c.statistic) for c in category_claims([result])
    )
    assert size < 1_000_000, f"{size} bytes of evidence from a {len(xml)}-byte file"


def test_nonzero_exit_with_nothing_failed_is_not_a_clean_pass() -> None:
    report = JUnitReport(cases=(case("a", TestOutcome.PASSED),))
    result = judge_category(CUSTOM, fake_run(exit_code=3), report)
    assert result.status is Status.INCONCLUSIVE
    assert any("exit code 3 although" in w for w in result.warnings)

    clean = judge_category(CUSTOM, fake_run(exit_code=0), report)
    assert clean.status is Status.PASS and clean.warnings == ()


def test_zero_tests_and_only_skipped_are_inconclusive() -> None:
    nothing = judge_category(CUSTOM, fake_run(), JUnitReport())
    assert nothing.status is Status.INCONCLUSIVE and "no test ran" in nothing.reason

    skipped = JUnitReport(cases=(case("a", TestOutcome.SKIPPED), case("b", TestOutcome.SKIPPED)))
    only_skipped = judge_category(CUSTOM, fake_run(), skipped)
    assert only_skipped.status is Status.INCONCLUSIVE
    assert "only skipped tests (2)" in only_skipped.reason

    # pytest's "no tests collected" exit 5 is not a disagreement; any other tool's non-zero is.
    pytest_cfg = CategoryConfig(name="auth", marker="auth")
    assert judge_category(pytest_cfg, fake_run(exit_code=5), JUnitReport()).warnings == ()
    assert judge_category(CUSTOM, fake_run(exit_code=5), JUnitReport()).warnings != ()


def test_flaky_tests_make_the_category_inconclusive_and_are_named() -> None:
    report = parse_junit((FIXTURES / "surefire_reruns.xml").read_bytes())
    without_the_broken_one = JUnitReport(cases=tuple(c for c in report.cases if c.name != "lockoutAfterFiveAttempts"))
    result = judge_category(CUSTOM, fake_run(), without_the_broken_one)
    assert result.status is Status.INCONCLUSIVE
    assert "2 flaky" in result.reason
    assert "com.example.auth.LoginTest::rejectsExpiredToken" in result.reason
    assert "com.example.auth.LoginTest::sessionSurvivesRestart" in result.reason

    with_broken = judge_category(CUSTOM, fake_run(exit_code=1), report)
    assert with_broken.status is Status.FAIL
    assert "lockoutAfterFiveAttempts" in with_broken.reason


def test_suite_level_error_fails_the_category() -> None:
    report = parse_junit((FIXTURES / "suite_error.xml").read_bytes())
    result = judge_category(CUSTOM, fake_run(exit_code=1), report)
    assert result.status is Status.FAIL
    assert "1 suites errored: websocket" in result.reason


def test_claims_and_evidence_dict() -> None:
    report = parse_junit((FIXTURES / "pytest.xml").read_bytes())
    slow = tuple(case(f"slow{i}", TestOutcome.PASSED, time_s=float(i)) for i in range(15))
    report = JUnitReport(cases=report.cases + slow + (case("huge", TestOutcome.FAILED, message="y" * 50_000),))
    optional = CategoryConfig(name="auth", command=["tool"], junit_xml="out.xml", required=False)
    result = judge_category(optional, fake_run(exit_code=1), report)
    passing = judge_category(
        CategoryConfig(name="db", marker="db"), fake_run("db"), JUnitReport(cases=(case("a", TestOutcome.PASSED),))
    )

    claims = category_claims([result, passing])
    assert [c.id for c in claims] == ["suites.auth", "suites.db"]
    auth, db = claims
    assert auth.statement == "Test category 'auth' passes"
    assert auth.status is Status.FAIL and auth.required is False
    assert auth.statistic == "18 passed, 2 failed, 1 errors, 2 skipped, 0 flaky in 1.2 s (exit 1)"
    assert auth.evidence[0].file == "auth.junit.xml"
    assert "test_sample::test_fails" in auth.evidence[0].records
    assert db.status is Status.PASS and db.required is True
    assert db.statistic == "1 passed, 0 failed, 0 errors, 0 skipped, 0 flaky in 1.2 s (exit 0)"

    evidence = json.loads(json.dumps(result.to_dict()))  # JSON-serialisable as is
    assert evidence["counts"]["failed"] == 2
    assert {f["id"] for f in evidence["failures"]} == {
        "test_sample::test_fails",
        "test_sample::test_setup_error",
        "m::huge",
    }
    huge = next(f for f in evidence["failures"] if f["id"] == "m::huge")
    assert len(huge["message"]) < 2200
    assert [s["id"] for s in evidence["slowest"][:2]] == ["m::slow14", "m::slow13"]
    assert len(evidence["slowest"]) == 10
    assert evidence["output_tail"] == ["last line"]


def test_diff_against_baseline() -> None:
    baseline = JUnitReport(
        cases=(
            case("stays_green", TestOutcome.PASSED, 1.0),
            case("breaks", TestOutcome.PASSED, 0.2),
            case("gets_fixed", TestOutcome.FAILED, 0.1),
            case("deleted", TestOutcome.PASSED, 0.1),
            case("slower", TestOutcome.PASSED, 2.0),
        ),
        source="baseline.xml",
    )
    current = JUnitReport(
        cases=(
            case("stays_green", TestOutcome.PASSED, 1.1),
            case("breaks", TestOutcome.ERROR, 0.2),
            case("gets_fixed", TestOutcome.PASSED, 0.1),
            case("new_test", TestOutcome.PASSED, 0.1),
            case("slower", TestOutcome.PASSED, 8.0),
        )
    )
    diff = diff_against_baseline(current, baseline)
    assert diff.newly_failing == ("m::breaks",)
    assert diff.newly_passing == ("m::gets_fixed",)
    assert diff.added == ("m::new_test",)
    assert diff.removed == ("m::deleted",)
    assert diff.duration_changes[0].id == "m::slower"
    assert diff.duration_changes[0].ratio == pytest.approx(4.0)
    assert diff.to_dict()["counts"]["newly_failing"] == 1


# --------------------------------------------------------------------------- real pytest runs

PROJECT_INI = """\
[pytest]
markers =
    alpha: passes
    beta: fails
    flaky: fails once, then passes
    gamma: nothing is marked with it
"""

PROJECT_TESTS = """\
import os
from pathlib import Path

import pytest


@pytest.mark.alpha
def test_sees_the_target():
    assert os.environ["STABILITY_TARGET_URL"] == "http://127.0.0.1:9"


@pytest.mark.beta
def test_broken():
    print("token is", os.environ["API_TOKEN"])
    assert 1 + 1 == 3


@pytest.mark.flaky
def test_flaky_once():
    counter = Path(os.environ["FLAKY_COUNTER"])
    runs = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(runs + 1))
    assert runs >= 1, "first attempt fails"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "tests").mkdir(parents=True)
    (root / "pytest.ini").write_text(PROJECT_INI)
    (root / "tests" / "test_things.py").write_text(textwrap.dedent(PROJECT_TESTS))
    return root


def test_real_pytest_categories_pass_fail_and_select_nothing(project: Path, tmp_path: Path) -> None:
    secret = "s3cr3t-token-0d9f"
    env = {"API_TOKEN": secret, "FLAKY_COUNTER": str(tmp_path / "counter"), **NO_PLUGINS}
    out = tmp_path / "out"
    results = {}
    for marker in ("alpha", "beta", "gamma"):
        cfg = CategoryConfig(name=marker, marker=marker, paths=["tests"], env=env, timeout_s=60)
        run = run_category(cfg, base_dir=project, out_dir=out, target_url="http://127.0.0.1:9")
        results[marker] = evaluate_run(cfg, run)

    alpha, beta, gamma = results["alpha"], results["beta"], results["gamma"]
    assert alpha.status is Status.PASS, alpha.reason
    assert alpha.counts["passed"] == 1 and alpha.warnings == ()
    assert beta.status is Status.FAIL
    assert "tests/test_things.py" not in beta.reason  # ids are classname::name
    assert beta.report is not None and beta.report.cases_with(TestOutcome.FAILED)[0].name == "test_broken"
    assert gamma.status is Status.INCONCLUSIVE and gamma.run.exit_code == 5
    assert gamma.warnings == ()  # pytest's exit 5 agrees with "no tests"

    # The secret from env never reaches the evidence, even when a test prints it.
    evidence = json.dumps([r.to_dict() for r in results.values()])
    assert "token is [redacted]" in evidence
    assert secret not in evidence
    assert (out / "beta.junit.xml").is_file() and (out / "beta.output.log").is_file()
    assert not (project / ".pytest_cache").exists()


def test_reruns_tell_flaky_from_broken_and_baseline_is_diffed(project: Path, tmp_path: Path) -> None:
    env = {"API_TOKEN": "unused-token", "FLAKY_COUNTER": str(tmp_path / "counter"), **NO_PLUGINS}
    cfg = SuitesConfig(
        rerun_failures=2,
        categories=[
            CategoryConfig(name="flaky", marker="flaky", paths=["tests"], env=env, timeout_s=60),
            CategoryConfig(name="mixed", marker="flaky or beta or alpha", paths=["tests"], env=env, timeout_s=60),
        ],
    )
    first = run_suites(cfg, base_dir=project, out_dir=tmp_path / "run1", target_url="http://127.0.0.1:9")
    flaky, mixed = first
    assert flaky.status is Status.INCONCLUSIVE
    assert "flaky tests passed only on a rerun: tests.test_things::test_flaky_once" in flaky.reason
    assert flaky.reruns is not None and flaky.reruns.recovered == ("tests.test_things::test_flaky_once",)
    assert flaky.warnings == ()  # exit 1 explained by the first run's failure
    # In "mixed" the flaky test has already passed once; the broken one fails every rerun.
    assert mixed.status is Status.FAIL
    assert mixed.reruns is not None
    assert mixed.reruns.still_failing == ("tests.test_things::test_broken",)
    assert mixed.reruns.attempts == 2
    assert (tmp_path / "run1" / "mixed.rerun2.junit.xml").is_file()

    # The first run's output folder is the next run's baseline.
    again = SuitesConfig(
        baseline_junit_dir=str(tmp_path / "run1"),
        categories=[CategoryConfig(name="mixed", marker="alpha", paths=["tests"], env=env, timeout_s=60)],
    )
    (second,) = run_suites(again, base_dir=project, out_dir=tmp_path / "run2", target_url="http://127.0.0.1:9")
    assert second.status is Status.PASS
    assert second.diff is not None
    assert set(second.diff.removed) == {"tests.test_things::test_broken", "tests.test_things::test_flaky_once"}
    assert second.to_dict()["baseline"]["counts"]["removed"] == 2


def test_disabled_section_runs_nothing(tmp_path: Path) -> None:
    cfg = SuitesConfig(enabled=False, categories=[CategoryConfig(name="x", marker="x")])
    assert run_suites(cfg, base_dir=tmp_path, out_dir=tmp_path / "o", target_url=None) == []


def test_target_url_reaches_a_non_pytest_command(tmp_path: Path) -> None:
    script = (
        f'test "${TARGET_URL_ENV}" = "http://127.0.0.1:8080" && '
        'echo \'<testsuite name="t"><testcase classname="sh" name="url"/></testsuite>\' > r.xml'
    )
    cfg = CategoryConfig(name="shell", command=["sh", "-c", script], junit_xml="r.xml")
    result = evaluate_run(
        cfg, run_category(cfg, base_dir=tmp_path, out_dir=tmp_path / "o", target_url="http://127.0.0.1:8080")
    )
    assert result.status is Status.PASS, result.reason


# --------------------------------------------------------------------------- the bundled sample service


def test_sample_service_suite_passes_healthy_and_fails_auth_bypass(tmp_path: Path) -> None:
    from stability_lib.demo import SUITE_DIR, serve

    categories = [
        CategoryConfig(name=marker, marker=marker, timeout_s=120, env=NO_PLUGINS)
        for marker in ("database", "auth", "websocket", "api")
    ]
    cfg = SuitesConfig(categories=categories)
    with serve(variant="candidate") as url:
        healthy = run_suites(cfg, base_dir=SUITE_DIR, out_dir=tmp_path / "healthy", target_url=url)
    for result in healthy:
        assert result.status is Status.PASS, (result.name, result.reason, result.run.output_tail)
        assert result.counts["passed"] > 0

    auth_only = SuitesConfig(categories=[categories[1]])
    with serve(variant="candidate", faults={"auth_bypass": True}) as url:
        (bypassed,) = run_suites(auth_only, base_dir=SUITE_DIR, out_dir=tmp_path / "bypass", target_url=url)
    assert bypassed.status is Status.FAIL
    assert bypassed.counts["failed"] >= 1
    assert not (SUITE_DIR / ".pytest_cache").exists()


def test_huge_binary_output_is_capped(tmp_path: Path) -> None:
    cfg = CategoryConfig(
        name="noisy",
        command=["sh", "-c", "head -c 6000000 /dev/urandom; seq 1 200; exit 0"],
        junit_xml="none.xml",
    )
    run = run_category(cfg, base_dir=tmp_path, out_dir=tmp_path / "o", target_url=None)
    assert len(run.output_tail) <= 50 and run.output_tail[-1] == "200"
    assert sum(len(line) for line in run.output_tail) <= 16 * 1024
    assert run.log_path is not None and run.log_path.stat().st_size < 5 * 1024 * 1024 + 100
    assert any("output log truncated" in w for w in run.warnings)
    assert evaluate_run(cfg, run).status is Status.ERROR  # and still no JUnit XML


def demo_category(name: str) -> CategoryConfig:
    """A category exactly as params/demo.yaml writes it."""
    from stability_lib.execution.params import load_params

    demo_env = {"DEMO_CANDIDATE_URL": "http://127.0.0.1:1", "DEMO_BASELINE_URL": "http://127.0.0.1:2"}
    demo_env |= {"DEMO_USER_PASSWORD": "x" * 16, "DEMO_BASELINE_DB": "b.db", "DEMO_CANDIDATE_DB": "c.db"}
    params, _ = load_params(Path(__file__).parents[1] / "params" / "demo.yaml", env=demo_env)
    return next(c for c in params.section("suites").categories if c.name == name)


@pytest.mark.slow
def test_generated_api_tests_of_the_demo_find_an_endpoint_that_answers_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stability_lib.demo import serve

    # Not on PATH (no activated virtualenv): found beside the running Python, as for a CI job.
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    cfg = SuitesConfig(categories=[demo_category("generated_api")])
    params_dir = Path(__file__).parents[1] / "params"
    with serve(variant="candidate") as url:
        (healthy,) = run_suites(cfg, base_dir=params_dir, out_dir=tmp_path / "healthy", target_url=url)
    with serve(variant="candidate", faults=["max_length_500"]) as url:
        (faulty,) = run_suites(cfg, base_dir=params_dir, out_dir=tmp_path / "faulty", target_url=url)

    assert healthy.status is Status.PASS, (healthy.reason, healthy.run.output_tail)
    assert healthy.counts["passed"] >= 5  # one test per operation of the sample service's spec
    assert faulty.status is Status.FAIL, (faulty.reason, faulty.run.output_tail)
    assert faulty.reason == "1 tests failed or errored: POST /api/auth/register"
    (failure,) = faulty.to_dict()["failures"]
    assert "Server error" in failure["message"] and "500" in failure["message"]
