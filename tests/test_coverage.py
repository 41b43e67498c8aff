"""Cobertura reader: counts from the line elements, hostile files refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from stability_lib.core.errors import EvidenceError
from stability_lib.suites.coverage import CoverageParseError, parse_cobertura

FIXTURES = Path(__file__).parent / "fixtures" / "coverage"


def test_coveragepy_report_lines_and_branches() -> None:
    report = parse_cobertura((FIXTURES / "coveragepy.xml").read_bytes(), source="coveragepy.xml")

    assert (report.lines_covered, report.lines_valid) == (6, 8)
    assert report.line_rate == pytest.approx(0.75)
    assert (report.branches_covered, report.branches_valid) == (3, 4)
    assert report.branch_rate == pytest.approx(0.75)
    assert {f.filename: (f.lines_covered, f.lines_valid) for f in report.files} == {
        "auth.py": (4, 5),
        "db.py": (2, 3),
    }
    assert report.warnings == ()
    assert report.statistic == "75.0% of lines (6/8), 75.0% of branches (3/4)"
    assert report.to_dict()["lines_valid"] == 8


def test_root_counts_that_disagree_with_lines_are_a_warning() -> None:
    report = parse_cobertura((FIXTURES / "summary_disagrees.xml").read_bytes())

    assert (report.lines_covered, report.lines_valid) == (2, 3)
    assert report.branch_rate is None  # no branch data recorded at all
    assert len(report.warnings) == 1
    assert "99/100" in report.warnings[0] and "2/3" in report.warnings[0]


def test_summary_only_file_uses_root_counts() -> None:
    report = parse_cobertura(b'<coverage lines-valid="10" lines-covered="4" line-rate="0.4"/>')
    assert (report.lines_covered, report.lines_valid, report.line_rate) == (4, 10, 0.4)


def test_no_measurable_lines_has_no_rate() -> None:
    report = parse_cobertura(b"<coverage><packages/></coverage>")
    assert report.line_rate is None
    assert report.statistic == "no measurable lines"


def test_entities_are_refused(tmp_path: Path) -> None:
    marker = "COVERAGE-MARKER-51b2"
    secret = tmp_path / "secret.txt"
    secret.write_text(marker)
    data = (f'<!DOCTYPE coverage [<!ENTITY x SYSTEM "file://{secret}">]><coverage line-rate="&x;"/>').encode()
    with pytest.raises(CoverageParseError) as caught:
        parse_cobertura(data)
    assert isinstance(caught.value, EvidenceError)
    assert marker not in str(caught.value)


def test_malformed_and_wrong_root() -> None:
    with pytest.raises(CoverageParseError, match=r"line 2, column \d+"):
        parse_cobertura(b"<coverage>\n<packages></coverage>")
    with pytest.raises(CoverageParseError, match="root element <testsuite>"):
        parse_cobertura(b"<testsuite/>")


def test_deeply_nested_coverage_is_a_parse_error() -> None:
    depth = 50_000
    data = b"<coverage>" + b"<packages>" * depth + b"</packages>" * depth + b"</coverage>"
    with pytest.raises(CoverageParseError, match="malformed coverage XML in deep.xml: elements nested deeper than 256"):
        parse_cobertura(data, source="deep.xml")


@pytest.mark.parametrize(
    "root", ['<coverage lines-covered="10" lines-valid="5"/>', '<coverage lines-covered="-1" lines-valid="5"/>']
)
def test_impossible_root_counts_are_refused(root: str) -> None:
    # 10 of 5 lines would be a 200% line rate: no measurement can say that.
    with pytest.raises(CoverageParseError, match="impossible counts"):
        parse_cobertura(root.encode())
