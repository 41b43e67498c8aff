"""JUnit XML reader (pure): any producer, parsed safely, counted from the testcases.

JUnit XML has no single schema. This reader accepts what the common producers
write: pytest (xunit1 and xunit2, xfail written as ``skipped``), Maven Surefire
(``flakyFailure``/``flakyError`` for a test that passed on a rerun,
``rerunFailure``/``rerunError`` next to a final failure), and nested
``testsuite`` elements (jest-junit, Gradle, ctest, PHPUnit). Outcomes are
counted from the ``testcase`` elements, each exactly once; a suite's own
``tests``/``failures``/``errors``/``skipped`` attributes are only compared with
those counts and a disagreement becomes a warning, never a number we report.

The file is untrusted input: DTDs, entity declarations and external references
are refused before anything is expanded (defusedxml), and every string kept
from it is size-capped.
"""

from __future__ import annotations

import enum
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import defusedxml
import defusedxml.ElementTree as SafeET

from ._errors import EvidenceError

__all__ = [
    "JUnitParseError",
    "TestOutcome",
    "TestCase",
    "SuiteError",
    "JUnitReport",
    "parse_junit",
    "merge_reports",
    "MAX_JUNIT_BYTES",
    "MAX_NESTING",
    "nesting_exceeds",
]

# A JUnit file bigger than this is not a test report we can honestly summarise.
MAX_JUNIT_BYTES = 64 * 1024 * 1024
MAX_MESSAGE_CHARS = 2048
MAX_NAME_CHARS = 500  # test, class, suite and file names
MAX_LABEL_PARTS = 4  # a nested suite's label shows the first and the last few names
# Real producers nest suites a handful of levels deep; a file nested deeper than
# this is malformed (and walking it could exhaust memory or the stack).
MAX_NESTING = 256
MAX_DETAIL_CHARS = 8192
MAX_CASE_OUTPUT_CHARS = 4096
MAX_REPORT_OUTPUT_CHARS = 64 * 1024
MAX_PROPERTIES = 200
MAX_PROPERTY_VALUE_CHARS = 1024
MAX_WARNINGS = 100

_FINAL_FAILURE = "failure"
_FINAL_ERROR = "error"
_SKIPPED = "skipped"
# Surefire: a test that failed, was rerun and then passed carries flaky*; a test
# that failed every rerun carries rerun* next to its final failure/error.
_RERUN_TAGS = frozenset({"flakyFailure", "flakyError", "rerunFailure", "rerunError"})


class JUnitParseError(EvidenceError):
    """A JUnit XML file is malformed, too large, or uses forbidden XML features."""


class TestOutcome(str, enum.Enum):
    """Final outcome of one test case."""

    __test__ = False  # not a pytest test class, despite the name

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"
    FLAKY = "flaky"  # failed at least once, passed on a rerun

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TestCase:
    """One ``testcase`` element, reduced to what a report needs."""

    __test__ = False

    classname: str
    name: str
    time_s: float
    outcome: TestOutcome
    message: str = ""  # why it failed/errored/was skipped/was flaky (capped)
    suite: str = ""  # name of the innermost enclosing testsuite
    detail: str = ""  # traceback or element text of the deciding element (capped)
    reruns: int = 0  # number of rerun attempts recorded (Surefire, or our own reruns)
    expected_failure: bool = False  # pytest xfail (reported as skipped)
    file: str = ""
    line: int | None = None
    system_out: str = ""
    system_err: str = ""
    properties: tuple[tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        """Stable identity across runs: ``classname::name``."""
        return f"{self.classname}::{self.name}" if self.classname else self.name


@dataclass(frozen=True)
class SuiteError:
    """An ``error``/``failure`` element directly under a testsuite (no testcase).

    Producers write these when a whole suite could not run (an import error, a
    crashed fixture, a test binary that died): it must count against the suite.
    """

    suite: str
    kind: str  # "error" or "failure"
    message: str
    detail: str = ""


@dataclass(frozen=True)
class JUnitReport:
    """Everything read from one JUnit XML file."""

    cases: tuple[TestCase, ...] = ()
    suite_errors: tuple[SuiteError, ...] = ()
    warnings: tuple[str, ...] = ()
    properties: dict[str, str] = field(default_factory=dict)
    system_out: str = ""
    system_err: str = ""
    source: str = ""
    # Statements where a suite declares more tests/failures/errors than its
    # elements list: outcomes the file claims but does not show.
    declared_unlisted: tuple[str, ...] = ()

    def count(self, outcome: TestOutcome) -> int:
        return sum(1 for c in self.cases if c.outcome is outcome)

    @property
    def total(self) -> int:
        return len(self.cases)

    @property
    def passed(self) -> int:
        return self.count(TestOutcome.PASSED)

    @property
    def failed(self) -> int:
        return self.count(TestOutcome.FAILED)

    @property
    def errors(self) -> int:
        return self.count(TestOutcome.ERROR)

    @property
    def skipped(self) -> int:
        return self.count(TestOutcome.SKIPPED)

    @property
    def flaky(self) -> int:
        return self.count(TestOutcome.FLAKY)

    @property
    def executed(self) -> int:
        """Tests that actually ran to an outcome (not skipped)."""
        return self.total - self.skipped

    def counts(self) -> dict[str, int]:
        return {
            "total": self.total,
            "passed": self.passed,
            "failed": self.failed,
            "errors": self.errors,
            "skipped": self.skipped,
            "flaky": self.flaky,
            "suite_errors": len(self.suite_errors),
        }

    def cases_with(self, *outcomes: TestOutcome) -> tuple[TestCase, ...]:
        return tuple(c for c in self.cases if c.outcome in outcomes)


# --------------------------------------------------------------------------- helpers


def _cap(text: str | None, limit: int) -> str:
    if not text:
        return ""
    if len(text) <= limit:
        return text
    return text[:limit] + f"... [truncated {len(text) - limit} chars]"


def _local(tag: Any) -> str:
    """Tag name without an XML namespace (``{ns}testcase`` -> ``testcase``)."""
    if not isinstance(tag, str):  # comments and processing instructions
        return ""
    return tag.rsplit("}", 1)[-1]


def nesting_exceeds(root: ET.Element, limit: int) -> bool:
    """Whether any element lies more than ``limit`` levels deep (iterative: no recursion)."""
    stack: list[tuple[ET.Element, int]] = [(root, 1)]
    while stack:
        elem, depth = stack.pop()
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in elem)
    return False


def _label(path: tuple[str, ...]) -> str:
    """``outer / ... / inner`` for a nested suite, bounded whatever the depth."""
    if len(path) > MAX_LABEL_PARTS:
        path = (path[0], "...", *path[-(MAX_LABEL_PARTS - 1) :])
    return " / ".join(path)


def _children(elem: ET.Element, tag: str) -> list[ET.Element]:
    return [child for child in elem if _local(child.tag) == tag]


def _parse_time(raw: str | None) -> float:
    # Locale-formatted times: "1,234.5" (a thousands separator) or "1,5" (a decimal comma).
    if not raw:
        return 0.0
    text = raw.strip()
    text = text.replace(",", "") if "." in text or text.count(",") > 1 else text.replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) and value >= 0 else 0.0


def _parse_line(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _message_of(elem: ET.Element) -> str:
    """The ``message`` attribute, else the first non-empty line of the text."""
    message = elem.get("message")
    if message:
        return _cap(message, MAX_MESSAGE_CHARS)
    for line in (elem.text or "").splitlines():
        if line.strip():
            return _cap(line.strip(), MAX_MESSAGE_CHARS)
    kind = elem.get("type")
    return _cap(kind, MAX_MESSAGE_CHARS) if kind else ""


def _text_of(elem: ET.Element | None, limit: int) -> str:
    if elem is None:
        return ""
    return _cap((elem.text or "").strip(), limit)


def _properties_of(elem: ET.Element) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for props in _children(elem, "properties"):
        for prop in _children(props, "property"):
            name = prop.get("name")
            if name is None:
                continue
            value = prop.get("value")
            if value is None:  # some producers put the value in the text
                value = prop.text or ""
            out.append((_cap(name, MAX_NAME_CHARS), _cap(value, MAX_PROPERTY_VALUE_CHARS)))
    return out


def _read_case(elem: ET.Element, suite: str) -> TestCase:
    by_tag: dict[str, list[ET.Element]] = {}
    for child in elem:
        by_tag.setdefault(_local(child.tag), []).append(child)
    failures = by_tag.get(_FINAL_FAILURE, [])
    errors = by_tag.get(_FINAL_ERROR, [])
    skipped = by_tag.get(_SKIPPED, [])
    reruns = [c for tag in _RERUN_TAGS for c in by_tag.get(tag, [])]

    expected_failure = False
    deciding: ET.Element | None = None
    if failures:
        # A final failure wins over rerun records: failed every time is broken, not flaky.
        outcome, deciding = TestOutcome.FAILED, failures[0]
    elif errors:
        outcome, deciding = TestOutcome.ERROR, errors[0]
    elif skipped:
        outcome, deciding = TestOutcome.SKIPPED, skipped[0]
        expected_failure = (deciding.get("type") or "") == "pytest.xfail"
    elif reruns:
        outcome, deciding = TestOutcome.FLAKY, reruns[0]
    else:
        outcome = TestOutcome.PASSED

    message = _message_of(deciding) if deciding is not None else ""
    if failures and errors:
        # pytest writes both when a test fails and its teardown errors too.
        message = _cap(f"{message} (also error: {_message_of(errors[0])})", MAX_MESSAGE_CHARS)
    out_elems = by_tag.get("system-out", [])
    err_elems = by_tag.get("system-err", [])
    return TestCase(
        classname=_cap(elem.get("classname") or elem.get("class") or "", MAX_NAME_CHARS),
        name=_cap(elem.get("name") or "", MAX_NAME_CHARS),
        time_s=_parse_time(elem.get("time")),
        outcome=outcome,
        message=message,
        suite=suite,
        detail=_text_of(deciding, MAX_DETAIL_CHARS),
        reruns=len(reruns),
        expected_failure=expected_failure,
        file=_cap(elem.get("file") or "", MAX_NAME_CHARS),
        line=_parse_line(elem.get("line")),
        system_out=_text_of(out_elems[0] if out_elems else None, MAX_CASE_OUTPUT_CHARS),
        system_err=_text_of(err_elems[0] if err_elems else None, MAX_CASE_OUTPUT_CHARS),
        properties=tuple(_properties_of(elem)),
    )


# Declared but unlisted tests, failures or errors hide outcomes; unlisted skips hide nothing.
_UNLISTED_MATTERS = ("tests", "failures", "errors")


@dataclass
class _Tally:
    """Element counts for one suite subtree, to compare with its attributes."""

    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0

    def add(self, other: _Tally) -> None:
        self.tests += other.tests
        self.failures += other.failures
        self.errors += other.errors
        self.skipped += other.skipped


@dataclass
class _Frame:
    """One open testsuite during the walk."""

    elem: ET.Element
    path: tuple[str, ...]  # suite names from the outermost suite down to this one
    tally: _Tally
    children: Iterator[ET.Element]


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.cases: list[TestCase] = []
        self.suite_errors: list[SuiteError] = []
        self.warnings: list[str] = []
        self.properties: dict[str, str] = {}
        self.system_out: list[str] = []
        self.system_err: list[str] = []
        self.declared_unlisted: list[str] = []

    def warn(self, text: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(text)
        elif len(self.warnings) == MAX_WARNINGS:
            self.warnings.append("further warnings omitted")

    def keep_suite_level(self, elem: ET.Element) -> None:
        for name, value in _properties_of(elem):
            if name not in self.properties and len(self.properties) < MAX_PROPERTIES:
                self.properties[name] = value
        for out in _children(elem, "system-out"):
            if out.text and out.text.strip():
                self.system_out.append(out.text.strip())
        for err in _children(elem, "system-err"):
            if err.text and err.text.strip():
                self.system_err.append(err.text.strip())

    def read_suite(self, top: ET.Element, path: tuple[str, ...]) -> _Tally:
        """Read a testsuite and every suite nested in it, without recursion."""
        frames = [self.open_suite(top, path)]
        while True:
            frame = frames[-1]
            child = next(frame.children, None)
            if child is None:
                frames.pop()
                self.compare(frame.elem, lambda f=frame: f"testsuite '{_label(f.path)}'", frame.tally)
                if not frames:
                    return frame.tally
                frames[-1].tally.add(frame.tally)
                continue
            tag = _local(child.tag)
            if tag == "testcase":
                self.read_testcase(child, frame)
            elif tag == "testsuite":
                frames.append(self.open_suite(child, frame.path))
            elif tag in (_FINAL_ERROR, _FINAL_FAILURE):
                self.suite_errors.append(
                    SuiteError(
                        suite=_label(frame.path),
                        kind=tag,
                        message=_message_of(child),
                        detail=_text_of(child, MAX_DETAIL_CHARS),
                    )
                )
                # Producers that write a suite-level error usually count it in the
                # suite's attributes; count it the same way for the comparison.
                if tag == _FINAL_ERROR:
                    frame.tally.errors += 1
                else:
                    frame.tally.failures += 1

    def open_suite(self, elem: ET.Element, outer: tuple[str, ...]) -> _Frame:
        name = _cap(elem.get("name"), MAX_NAME_CHARS) or f"<unnamed suite #{len(outer)}>"
        self.keep_suite_level(elem)
        return _Frame(elem=elem, path=outer + (name,), tally=_Tally(), children=iter(elem))

    def read_testcase(self, elem: ET.Element, frame: _Frame) -> None:
        case = _read_case(elem, suite=frame.path[-1])
        self.cases.append(case)
        frame.tally.tests += 1
        if any(_local(c.tag) == _FINAL_FAILURE for c in elem):
            frame.tally.failures += 1
        if any(_local(c.tag) == _FINAL_ERROR for c in elem):
            frame.tally.errors += 1
        if case.outcome is TestOutcome.SKIPPED:
            frame.tally.skipped += 1

    def compare(self, elem: ET.Element, what: Callable[[], str], tally: _Tally) -> None:
        """Compare a suite's declared counts with its elements (``what`` names it, built lazily)."""
        disagreements: list[str] = []
        unlisted: list[str] = []
        for attr, counted in (
            ("tests", tally.tests),
            ("failures", tally.failures),
            ("errors", tally.errors),
            ("skipped", tally.skipped),
        ):
            raw = elem.get(attr)
            if raw is None:
                continue
            try:
                declared = int(raw.strip())
            except ValueError:
                disagreements.append(f"{attr}={raw!r} is not a number")
                continue
            if declared != counted:
                disagreements.append(f"{attr}={declared} but {counted} counted")
            if declared > counted and attr in _UNLISTED_MATTERS:
                unlisted.append(f"{attr}={declared} but only {counted} listed")
        if unlisted and len(self.declared_unlisted) < MAX_WARNINGS:
            self.declared_unlisted.append(f"{what()} declares {', '.join(unlisted)}")
        if disagreements:
            self.warn(
                f"{what()}: attributes disagree with its testcase elements "
                f"({'; '.join(disagreements)}); the element counts are used"
            )


def parse_junit(data: bytes, *, source: str = "") -> JUnitReport:
    """Read one JUnit XML document. Raises ``JUnitParseError`` on anything unreadable."""
    where = f" in {source}" if source else ""
    if len(data) > MAX_JUNIT_BYTES:
        raise JUnitParseError(
            f"JUnit XML{where} is {len(data)} bytes, above the {MAX_JUNIT_BYTES}-byte limit"
        )
    try:
        root = SafeET.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except defusedxml.DTDForbidden as exc:
        raise JUnitParseError(
            f"JUnit XML{where} declares a DTD (<!DOCTYPE {exc.name}>); refused unread "
            "because DTDs can expand entities or fetch external files"
        ) from None
    except defusedxml.DefusedXmlException as exc:
        raise JUnitParseError(f"JUnit XML{where} uses a forbidden XML feature: {exc}") from None
    except ET.ParseError as exc:
        line, column = exc.position
        reason = str(exc).split(":", 1)[0]
        raise JUnitParseError(
            f"malformed JUnit XML{where} at line {line}, column {column}: {reason}"
        ) from None

    if nesting_exceeds(root, MAX_NESTING):
        raise JUnitParseError(
            f"malformed JUnit XML{where}: elements nested deeper than {MAX_NESTING} levels"
        )
    reader = _Reader(source)
    root_tag = _local(root.tag)
    if root_tag == "testsuites":
        reader.keep_suite_level(root)
        total = _Tally()
        for child in root:
            tag = _local(child.tag)
            if tag == "testsuite":
                total.add(reader.read_suite(child, ()))
            elif tag == "testcase":
                # Not in the schema, but some producers write it; count it, don't drop it.
                reader.cases.append(_read_case(child, suite=""))
                total.tests += 1
        reader.compare(root, lambda: "testsuites (root)", total)
    elif root_tag == "testsuite":
        reader.read_suite(root, ())
    else:
        raise JUnitParseError(
            f"JUnit XML{where} has root element <{root_tag}>, expected <testsuites> or <testsuite>"
        )

    return JUnitReport(
        cases=tuple(reader.cases),
        suite_errors=tuple(reader.suite_errors),
        warnings=tuple(reader.warnings),
        properties=reader.properties,
        system_out=_cap("\n".join(reader.system_out), MAX_REPORT_OUTPUT_CHARS),
        system_err=_cap("\n".join(reader.system_err), MAX_REPORT_OUTPUT_CHARS),
        source=source,
        declared_unlisted=tuple(reader.declared_unlisted),
    )


def merge_reports(first: JUnitReport, reruns: Iterable[JUnitReport]) -> JUnitReport:
    """Apply rerun results: a failed/errored test that passed on any rerun becomes FLAKY.

    Tests that failed every rerun stay failed (broken, not flaky), with the
    number of reruns recorded. Tests not in a rerun are unchanged.
    """
    rerun_list = list(reruns)
    if not rerun_list:
        return first
    attempts: dict[str, int] = {}
    passed_on_rerun: set[str] = set()
    for report in rerun_list:
        for case in report.cases:
            attempts[case.id] = attempts.get(case.id, 0) + 1
            if case.outcome in (TestOutcome.PASSED, TestOutcome.FLAKY):
                passed_on_rerun.add(case.id)
    merged: list[TestCase] = []
    for case in first.cases:
        if case.outcome in (TestOutcome.FAILED, TestOutcome.ERROR) and case.id in attempts:
            tries = case.reruns + attempts[case.id]
            if case.id in passed_on_rerun:
                merged.append(replace(case, outcome=TestOutcome.FLAKY, reruns=tries))
            else:
                merged.append(replace(case, reruns=tries))
        else:
            merged.append(case)
    warnings = list(first.warnings)
    for report in rerun_list:
        warnings.extend(f"rerun: {w}" for w in report.warnings)
    return replace(first, cases=tuple(merged), warnings=tuple(warnings[: MAX_WARNINGS + 1]))
