"""JUnit XML reader: every dialect counted from its testcases, hostile files refused."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stability_lib.core.errors import EvidenceError
from stability_lib.suites.junit import (
    MAX_TESTCASES,
    JUnitParseError,
    JUnitReport,
    TestCase,
    TestOutcome,
    merge_reports,
    parse_junit,
)

FIXTURES = Path(__file__).parent / "fixtures" / "junit"


def load(name: str) -> JUnitReport:
    return parse_junit((FIXTURES / name).read_bytes(), source=name)


def by_name(report: JUnitReport) -> dict[str, TestCase]:
    return {c.name: c for c in report.cases}


def test_pytest_report_counts_xfail_as_skipped_and_keeps_messages() -> None:
    report = load("pytest.xml")

    assert report.counts() == {
        "total": 7,
        "passed": 3,
        "failed": 1,
        "errors": 1,
        "skipped": 2,
        "flaky": 0,
        "suite_errors": 0,
    }
    assert report.warnings == ()  # pytest's own attributes agree with its testcases
    cases = by_name(report)
    assert cases["test_fails"].outcome is TestOutcome.FAILED
    assert cases["test_fails"].message.startswith("AssertionError: one is not two")
    assert "test_sample.py:7" in cases["test_fails"].detail
    assert cases["test_setup_error"].outcome is TestOutcome.ERROR
    assert "database fixture could not connect" in cases["test_setup_error"].message
    assert cases["test_xfail"].outcome is TestOutcome.SKIPPED
    assert cases["test_xfail"].expected_failure
    assert not cases["test_skipped"].expected_failure
    assert cases["test_skipped"].message == "needs a GPU"
    login = cases["test_login[alice]"]
    assert login.id == "test_sample.TestLogin::test_login[alice]"
    assert login.properties == (("user", "alice"),)
    assert report.executed == 5


def test_surefire_flaky_and_rerun_failures() -> None:
    report = load("surefire_reruns.xml")

    assert report.counts() == {
        "total": 5,
        "passed": 1,
        "failed": 1,
        "errors": 0,
        "skipped": 1,
        "flaky": 2,
        "suite_errors": 0,
    }
    cases = by_name(report)
    # Passed after a rerun: flaky, never silently green.
    assert cases["rejectsExpiredToken"].outcome is TestOutcome.FLAKY
    assert cases["rejectsExpiredToken"].message == "expected:<401> but was:<200>"
    assert cases["rejectsExpiredToken"].time_s == pytest.approx(1204.5)  # "1,204.5"
    assert cases["sessionSurvivesRestart"].outcome is TestOutcome.FLAKY
    assert cases["sessionSurvivesRestart"].reruns == 2
    # Failed every rerun and finally: broken, not flaky.
    assert cases["lockoutAfterFiveAttempts"].outcome is TestOutcome.FAILED
    assert cases["lockoutAfterFiveAttempts"].reruns == 2
    assert report.properties["java.version"] == "17.0.9"
    assert report.warnings == ()


def test_nested_suites_count_each_testcase_once() -> None:
    report = load("nested_suites.xml")

    assert report.counts() == {
        "total": 6,
        "passed": 4,
        "failed": 1,
        "errors": 0,
        "skipped": 1,
        "flaky": 0,
        "suite_errors": 0,
    }
    cases = by_name(report)
    assert cases["partial refund"].suite == "api/orders/refunds"
    assert cases["rejects a duplicate email"].message == "Expected 409, received 500"
    assert cases["paginates"].system_out == "GET /users?page=2 200"
    assert report.properties == {"ci.job": "1234"}
    assert "jest finished" in report.system_out
    # Every level's attributes count its subtree, so none disagrees.
    assert report.warnings == ()


def test_error_directly_under_a_suite_is_a_suite_error() -> None:
    report = load("suite_error.xml")

    assert report.total == 2 and report.passed == 2
    assert len(report.suite_errors) == 1
    error = report.suite_errors[0]
    assert (error.suite, error.kind, error.message) == (
        "websocket",
        "error",
        "test binary exited with signal 11",
    )
    assert "Segmentation fault" in error.detail
    assert "SIGSEGV" in report.system_err
    assert report.counts()["suite_errors"] == 1
    assert report.warnings == ()


def test_attributes_that_disagree_are_a_warning_and_elements_win() -> None:
    report = load("attributes_disagree.xml")

    assert (report.total, report.passed, report.failed, report.skipped) == (3, 1, 1, 1)
    assert len(report.warnings) == 1
    warning = report.warnings[0]
    assert "payments" in warning
    assert "tests=10 but 3 counted" in warning
    assert "failures=0 but 1 counted" in warning
    assert "skipped=0 but 1 counted" in warning
    assert "errors" not in warning.split("(", 1)[1]  # errors agreed: not named


def test_billion_laughs_is_refused_without_expansion() -> None:
    data = (FIXTURES / "billion_laughs.xml").read_bytes()
    with pytest.raises(JUnitParseError) as caught:
        parse_junit(data, source="billion_laughs.xml")
    assert isinstance(caught.value, EvidenceError)
    assert "DTD" in str(caught.value)
    assert "lollol" not in str(caught.value)
    assert len(str(caught.value)) < 300


def test_external_entity_is_refused_and_the_file_is_never_read(tmp_path: Path) -> None:
    marker = "SECRET-MARKER-7f3a9c"
    secret = tmp_path / "secret.txt"
    secret.write_text(marker)
    data = (
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE testsuite [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
        '<testsuite name="x" tests="1"><testcase classname="a" name="b">'
        '<failure message="&xxe;">&xxe;</failure></testcase></testsuite>\n'
    ).encode()
    with pytest.raises(JUnitParseError) as caught:
        parse_junit(data)
    assert marker not in str(caught.value)
    assert marker not in repr(caught.value.args)
    assert caught.value.__cause__ is None  # nothing from the parser's state carried along


def test_parameter_entity_without_doctype_content_is_refused() -> None:
    data = b'<!DOCTYPE testsuite SYSTEM "http://127.0.0.1:9/evil.dtd"><testsuite/>'
    with pytest.raises(JUnitParseError, match="DTD"):
        parse_junit(data)


def test_malformed_file_names_line_and_column() -> None:
    with pytest.raises(JUnitParseError) as caught:
        load("malformed.xml")
    text = str(caught.value)
    assert "malformed.xml" in text
    assert "line 5, column" in text
    assert "mismatched tag" in text


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "line 1, column 0"),
        (b"not xml at all", "line 1, column 0"),
        (b"<html><body>502 Bad Gateway</body></html>", "root element <html>"),
    ],
)
def test_other_unreadable_inputs_are_parse_errors(data: bytes, expected: str) -> None:
    with pytest.raises(JUnitParseError, match=expected):
        parse_junit(data)


def test_empty_suite_is_zero_tests_not_an_error() -> None:
    report = parse_junit(b'<testsuites><testsuite name="pytest" tests="0"/></testsuites>')
    assert report.total == 0 and report.executed == 0 and report.warnings == ()


def test_namespaced_elements_and_huge_messages_are_capped() -> None:
    huge = "x" * 100_000
    data = (
        '<t:testsuite xmlns:t="urn:example" name="s">'
        f'<t:testcase classname="c" name="n"><t:failure message="{huge}">{huge}</t:failure></t:testcase>'
        "</t:testsuite>"
    ).encode()
    case = parse_junit(data).cases[0]
    assert case.outcome is TestOutcome.FAILED
    assert len(case.message) < 2200 and "truncated" in case.message
    assert len(case.detail) < 8300


def test_failure_and_teardown_error_on_one_testcase_is_failed_and_mentions_both() -> None:
    data = (
        b'<testsuite name="pytest" tests="1" failures="1" errors="1">'
        b'<testcase classname="m" name="t"><failure message="assert 1 == 2"/>'
        b'<error message="failed on teardown"/></testcase></testsuite>'
    )
    report = parse_junit(data)
    assert report.failed == 1 and report.errors == 0
    assert "failed on teardown" in report.cases[0].message
    assert report.warnings == ()  # pytest counts it in both attributes, so do we


def test_rerun_results_turn_recovered_failures_into_flaky() -> None:
    first = parse_junit(
        b'<testsuite name="s"><testcase classname="m" name="a"><failure message="boom"/></testcase>'
        b'<testcase classname="m" name="b"><error message="db down"/></testcase>'
        b'<testcase classname="m" name="c"/></testsuite>'
    )
    rerun = parse_junit(
        b'<testsuite name="s"><testcase classname="m" name="a"/>'
        b'<testcase classname="m" name="b"><error message="db down"/></testcase></testsuite>'
    )
    merged = merge_reports(first, [rerun])
    outcomes = {c.name: (c.outcome, c.reruns) for c in merged.cases}
    assert outcomes == {
        "a": (TestOutcome.FLAKY, 1),
        "b": (TestOutcome.ERROR, 1),
        "c": (TestOutcome.PASSED, 0),
    }
    assert merged.cases[0].message == "boom"  # why it was flaky stays visible


def nested(depth: int, tag: bytes = b"testsuite", leaf: bytes = b'<testcase name="t"/>') -> bytes:
    return b"<testsuites>" + (b'<%s name="s">' % tag) * depth + leaf + b"</%s>" % tag * depth + b"</testsuites>"


def test_deeply_nested_suites_are_a_parse_error_not_a_recursion_error() -> None:
    with pytest.raises(JUnitParseError, match=r"malformed JUnit XML in deep.xml: elements nested deeper than 256"):
        parse_junit(nested(50_000), source="deep.xml")
    # Real nesting, a few hundred levels deep at most, is read and counted once.
    report = parse_junit(nested(200))
    assert report.total == 1 and report.passed == 1 and report.warnings == ()


def test_declared_failures_that_are_not_listed_are_recorded() -> None:
    report = parse_junit((FIXTURES / "declares_unlisted_failures.xml").read_bytes())
    assert (report.total, report.passed, report.failed) == (3, 3, 0)
    assert report.declared_unlisted == (
        "testsuite 'checkout' declares tests=5 but only 3 listed, failures=2 but only 0 listed",
    )
    assert any("failures=2 but 0 counted" in w for w in report.warnings)
    # More elements than declared, or fewer skips, hide no outcome.
    extra = b'<testsuite name="s" tests="1" skipped="3"><testcase name="a"/><testcase name="b"/></testsuite>'
    assert parse_junit(extra).declared_unlisted == ()


def test_every_kept_string_is_capped_and_marked() -> None:
    huge = "n" * 1_000_000
    data = (
        f'<testsuite name="{huge}"><testcase classname="{huge}" name="{huge}" file="{huge}">'
        f'<failure message="{huge}">{huge}</failure><system-out>{huge}</system-out></testcase>'
        f'<error message="{huge}"/></testsuite>'
    ).encode()
    report = parse_junit(data)
    (case,) = report.cases
    for text in (case.name, case.classname, case.file, case.suite, report.suite_errors[0].suite):
        assert len(text) < 600 and "[truncated" in text
    for text in (case.message, case.detail, case.system_out, report.suite_errors[0].message):
        assert len(text) < 9000 and "[truncated" in text
    assert len("".join(report.warnings)) < 5000


@pytest.mark.slow
def test_a_file_of_millions_of_testcases_is_refused_in_bounded_memory() -> None:
    # 64 MiB of minimal testcases held as an element tree took 2 GB; streamed and capped, it is refused.
    script = textwrap.dedent(
        """
        import resource
        from stability_lib.suites.junit import MAX_JUNIT_BYTES, JUnitParseError, parse_junit
        data = b"<testsuite>" + b"<testcase/>" * ((MAX_JUNIT_BYTES - 100) // 11) + b"</testsuite>"
        try:
            parse_junit(data, source="huge.xml")
        except JUnitParseError as exc:
            print(exc)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    message, peak_mib = done.stdout.strip().splitlines()
    assert message == f"JUnit XML in huge.xml lists more than {MAX_TESTCASES} testcases; refused (split the category)"
    # About 300 MiB alone; up to 551 MiB was seen beside a parallel test worker. The old tree took 2 GB.
    assert int(peak_mib) < 768, f"peak RSS {peak_mib} MiB"
