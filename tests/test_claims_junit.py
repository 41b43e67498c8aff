"""claims.junit.xml: one testcase per claim, the documented status rule, inert text, and an exact
round trip through the tool's own JUnit reader."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import defusedxml.ElementTree as SafeET
import pytest

from stability_lib.report.claims_junit import OUTCOME_ELEMENT, claims_junit_xml
from stability_lib.suites.junit import TestOutcome, parse_junit

RUNS = Path(__file__).parent / "fixtures" / "runs"
# The documented rule, written out here so that a change to the module's table fails a test.
RULE = {"PASS": None, "FAIL": "failure", "ERROR": "error", "INCONCLUSIVE": "skipped"}
READ_AS = {
    "PASS": TestOutcome.PASSED,
    "FAIL": TestOutcome.FAILED,
    "ERROR": TestOutcome.ERROR,
    "INCONCLUSIVE": TestOutcome.SKIPPED,
}
# The Jenkins xUnit plugin's junit-10.xsd, element by element: the attributes each element may carry
# (those it requires), the children it may hold, and the pattern of its time attributes.
XSD_ATTRIBUTES = {
    "testsuites": {"name", "time", "tests", "failures", "errors"},
    "testsuite": {
        "name",
        "tests",
        "failures",
        "errors",
        "group",
        "time",
        "skipped",
        "timestamp",
        "hostname",
        "id",
        "package",
        "file",
        "log",
        "url",
    },
    "testcase": {"name", "time", "classname", "group"},
    "properties": set(),
    "property": {"name", "value"},
    "failure": {"type", "message"},
    "error": {"type", "message"},
    "skipped": {"type", "message"},
    "system-out": set(),
    "system-err": set(),
}
XSD_REQUIRED = {
    "testsuite": {"name", "tests", "failures", "errors"},
    "testcase": {"name"},
    "property": {"name", "value"},
}
XSD_CHILDREN = {
    "testsuites": {"testsuite"},
    "testsuite": {"testsuite", "properties", "testcase", "system-out", "system-err"},
    "testcase": {
        "skipped",
        "error",
        "failure",
        "rerunFailure",
        "rerunError",
        "flakyFailure",
        "flakyError",
        "system-out",
        "system-err",
    },
    "properties": {"property"},
}
SUREFIRE_TIME = re.compile(r"(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?")


def _check_xsd(element) -> None:
    """The element and everything under it as junit-10.xsd allows (no validator is installed)."""
    tag = element.tag
    assert tag in XSD_ATTRIBUTES, tag
    assert set(element.attrib) <= XSD_ATTRIBUTES[tag], (tag, set(element.attrib) - XSD_ATTRIBUTES[tag])
    assert XSD_REQUIRED.get(tag, set()) <= set(element.attrib), tag
    if tag in ("testsuites", "testsuite") and "time" in element.attrib:
        assert SUREFIRE_TIME.fullmatch(element.get("time")), element.get("time")
    for child in element:
        assert child.tag in XSD_CHILDREN.get(tag, set()), (tag, child.tag)
        _check_xsd(child)


def _case_output(case) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in case.system_out.splitlines())


def _claim(id_: str, status: str, **extra) -> dict:
    section = id_.split(".", 1)[0]
    return {
        "id": id_,
        "section": section,
        "statement": f"statement of {id_}",
        "status": status,
        "statistic": f"statistic of {id_}",
        "required": True,
        "evidence": [{"section": section, "file": f"evidence/{section}.json", "records": ["r1"]}],
        "details": {},
        **extra,
    }


def _summary(*claims: dict) -> dict:
    sections = sorted({c["section"] for c in claims})
    return {
        "schema_version": 1,
        "run_id": "r-1",
        "title": "t",
        "verdict": "FAIL",
        "started_at": "2026-12-01T00:00:00+00:00",
        "sections": [{"section": s, "status": "PASS", "duration_s": 1.5} for s in sections],
        "claims": list(claims),
    }


def _check_structure(xml: str) -> None:
    root = SafeET.fromstring(xml.encode("utf-8"))
    assert root.tag == "testsuites"
    _check_xsd(root)
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for suite in root:
        assert suite.tag == "testsuite" and suite.get("name")
        cases = suite.findall("testcase")
        counted = {"tests": len(cases), "failures": 0, "errors": 0, "skipped": 0}
        for case in cases:
            assert case.get("classname") == suite.get("name") and case.get("name")
            float(case.get("time"))
            kids = [c.tag for c in case]
            outcomes = [k for k in kids if k in ("failure", "error", "skipped")]
            assert len(outcomes) <= 1
            for k in outcomes:
                counted[{"failure": "failures", "error": "errors", "skipped": "skipped"}[k]] += 1
        for key, value in counted.items():
            assert int(suite.get(key)) == value, key
            totals[key] += value
        assert float(suite.get("time")) >= 0
    for key in ("tests", "failures", "errors"):
        assert int(root.get(key)) == totals[key], key
    float(root.get("time"))


def test_each_status_becomes_its_documented_element() -> None:
    summary = _summary(
        _claim("a.pass", "PASS"),
        _claim("a.fail", "FAIL"),
        _claim("b.error", "ERROR"),
        _claim("b.open", "INCONCLUSIVE", required=False),
    )
    xml = claims_junit_xml(summary)
    _check_structure(xml)
    root = SafeET.fromstring(xml.encode())
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(cases) == {"a.pass", "a.fail", "b.error", "b.open"}
    for name, status in (("a.pass", "PASS"), ("a.fail", "FAIL"), ("b.error", "ERROR"), ("b.open", "INCONCLUSIVE")):
        element = RULE[status]
        outcome = [c for c in cases[name] if c.tag != "system-out"]
        assert [c.tag for c in outcome] == ([element] if element else [])
        if element:
            assert outcome[0].get("type") == status
            assert outcome[0].get("message") == f"{status}: statistic of {name} [evidence: evidence/{name[0]}.json]"
            assert "records: r1" in outcome[0].text
    read = {c.name: _case_output(c) for c in parse_junit(xml.encode()).cases}
    assert read["b.open"]["required"] == "false" and read["b.open"]["status"] == "INCONCLUSIVE"
    assert read["a.fail"]["required"] == "true" and read["a.fail"]["statistic"] == "statistic of a.fail"
    assert root.get("time") == "3.000"


def test_module_table_is_the_documented_rule() -> None:
    assert OUTCOME_ELEMENT == RULE


def test_unknown_status_is_never_a_pass() -> None:
    xml = claims_junit_xml(_summary(_claim("a.odd", "MAYBE")))
    assert parse_junit(xml.encode()).errors == 1


def test_no_claims_is_an_empty_valid_document() -> None:
    xml = claims_junit_xml({"claims": []})
    _check_structure(xml)
    assert parse_junit(xml.encode()).total == 0


HOSTILE = "<script>alert(1)</script> & \"q\" 'a' ]]> \x00\x07\x1b\x0b \ud800 \ufffe end"


def test_hostile_claim_text_stays_inert_and_readable() -> None:
    claim = _claim("sec.x", "FAIL", statement=HOSTILE, statistic=HOSTILE, id="sec.<b>]]>\x01")
    claim["evidence"][0]["file"] = "evidence/<x>&.json"
    xml = claims_junit_xml(_summary(claim))
    _check_structure(xml)
    assert "<script>" not in xml and "<b>" not in xml
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]", xml)
    case = parse_junit(xml.encode()).cases[0]
    assert case.name == "sec.<b>]]>\\x01" and case.outcome is TestOutcome.FAILED
    assert "<script>alert(1)</script>" in case.message and "]]>" in case.message
    assert "\\x00\\x07\\x1b\\x0b \\ud800 \\ufffe end" in case.message
    assert "evidence/<x>&.json" in case.message
    assert _case_output(case)["statement"].startswith("<script>")


def test_long_text_is_capped_and_still_reads_back() -> None:
    xml = claims_junit_xml(_summary(_claim("s.long", "ERROR", statistic="x" * 100_000, id="s." + "n" * 5000)))
    case = parse_junit(xml.encode()).cases[0]
    assert case.outcome is TestOutcome.ERROR and len(case.message) <= 2048 and case.name.startswith("s.nnn")


def test_writer_does_not_change_the_summary() -> None:
    summary = _summary(_claim("a.fail", "FAIL"))
    before = copy.deepcopy(summary)
    claims_junit_xml(summary)
    assert summary == before


@pytest.mark.parametrize("run", ["pass", "fail", "crashed-section", "schema1-before-figure"])
def test_real_run_round_trips_through_the_tools_reader_with_exact_counts(run: str) -> None:
    summary = json.loads((RUNS / run / "summary.json").read_text(encoding="utf-8"))
    xml = claims_junit_xml(summary)
    _check_structure(xml)
    report = parse_junit(xml.encode("utf-8"), source="claims.junit.xml")
    assert report.warnings == () and report.declared_unlisted == () and report.suite_errors == ()
    claims = summary["claims"]
    assert report.total == len(claims)
    expected = {o: sum(1 for c in claims if READ_AS[c["status"]] is o) for o in TestOutcome}
    assert {o: report.count(o) for o in TestOutcome} == expected
    assert [(c.classname, c.name, c.outcome) for c in report.cases] == [
        (c["section"], c["id"], READ_AS[c["status"]]) for c in claims
    ]
    assert [_case_output(c)["required"] for c in report.cases] == ["true" if c["required"] else "false" for c in claims]
    for case, claim in zip(report.cases, claims, strict=False):
        if case.outcome is not TestOutcome.PASSED:
            assert claim["statistic"] in case.message
            assert claim["evidence"][0]["file"] in case.message
