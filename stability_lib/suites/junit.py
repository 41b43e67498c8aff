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
are refused before anything is expanded (defusedxml), every string kept from
it is size-capped, and it is streamed: memory follows what is kept, not the
element tree, nesting is walked without recursion and capped at ``MAX_NESTING``
levels, and a file of more than ``MAX_TESTCASES`` testcases is refused.
"""

from __future__ import annotations

import enum
import io
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import defusedxml
import defusedxml.ElementTree as SafeET

from ..core.errors import EvidenceError

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
    "MAX_TESTCASES",
    "stream_elements",
]

# A JUnit file bigger than this is not a test report we can honestly summarise.
MAX_JUNIT_BYTES = 64 * 1024 * 1024
MAX_MESSAGE_CHARS = 2048
MAX_NAME_CHARS = 500  # test, class, suite and file names
MAX_LABEL_PARTS = 4  # a nested suite's label shows the first and the last few names
# Real producers nest suites a handful of levels deep; a file nested deeper than
# this is malformed (and walking it could exhaust memory or the stack).
MAX_NESTING = 256
# One record is kept per testcase: this bounds memory whatever the file holds.
MAX_TESTCASES = 200_000
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
        return str(self.value)


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


def stream_elements(
    data: bytes,
    *,
    what: str,
    where: str,
    error: type[EvidenceError],
    keep_children: frozenset[str] = frozenset(),
) -> Iterator[tuple[str, ET.Element, str, list[ET.Element]]]:
    """(event, element, local tag, open ancestors) of a document parsed safely and streamed.

    DTDs, entities and external references are refused (defusedxml raises). Nesting
    deeper than ``MAX_NESTING`` raises ``error``. Once its "end" was handled, an
    element is dropped from its parent (whose attributes stay), unless the parent's
    tag is in ``keep_children``: memory follows what the caller keeps, not the tree.
    """
    open_elems: list[ET.Element] = []
    events = SafeET.iterparse(
        io.BytesIO(data),
        events=("start", "end"),
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )
    for event, elem in events:
        tag = _local(elem.tag)
        if event == "start":
            open_elems.append(elem)
            if len(open_elems) > MAX_NESTING:
                raise error(f"malformed {what}{where}: elements nested deeper than {MAX_NESTING} levels")
            yield event, elem, tag, open_elems
            continue
        open_elems.pop()
        yield event, elem, tag, open_elems
        if open_elems and _local(open_elems[-1].tag) not in keep_children:
            del open_elems[-1][:]


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
    return [pair for props in _children(elem, "properties") for pair in _property_pairs(props)]


def _property_pairs(props: ET.Element) -> list[tuple[str, str]]:
    """(name, value) of each ``property`` in one ``properties`` element."""
    out: list[tuple[str, str]] = []
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


# Elements whose children are read when the element itself ends.
_READ_WITH_CHILDREN = frozenset({"testcase", "properties"})


@dataclass
class _Frame:
    """One open ``testsuite`` (or the root ``testsuites``) while the file streams by."""

    elem: ET.Element
    path: tuple[str, ...]  # suite names from the outermost suite down to this one; () for the root
    tally: _Tally

    def label(self) -> str:
        return f"testsuite '{_label(self.path)}'" if self.path else "testsuites (root)"


class _Reader:
    """Streams the document: each element is read once, then dropped from the tree.

    Memory stays proportional to what is kept (capped strings, one record per
    testcase), not to the element tree, and nesting is walked without recursion.
    """

    def __init__(self, where: str) -> None:
        self.where = where
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

    def read(self, data: bytes) -> None:
        frames: list[_Frame] = []
        events = stream_elements(
            data,
            what="JUnit XML",
            where=self.where,
            error=JUnitParseError,
            keep_children=_READ_WITH_CHILDREN,
        )
        for event, elem, tag, open_elems in events:
            if event == "start":
                if len(open_elems) == 1:
                    if tag not in ("testsuites", "testsuite"):
                        raise JUnitParseError(
                            f"JUnit XML{self.where} has root element <{tag}>, expected <testsuites> or <testsuite>"
                        )
                    path = () if tag == "testsuites" else (self.suite_name(elem, ()),)
                    frames.append(_Frame(elem, path, _Tally()))
                elif tag == "testsuite" and frames and open_elems[-2] is frames[-1].elem:
                    frames.append(_Frame(elem, frames[-1].path + (self.suite_name(elem, frames[-1].path),), _Tally()))
                continue
            if frames and elem is frames[-1].elem:
                frame = frames.pop()
                self.compare(frame.elem, frame.label, frame.tally)
                if frames:
                    frames[-1].tally.add(frame.tally)
            elif frames and open_elems and open_elems[-1] is frames[-1].elem:
                self.read_child(tag, elem, frames[-1])

    @staticmethod
    def suite_name(elem: ET.Element, outer: tuple[str, ...]) -> str:
        return _cap(elem.get("name"), MAX_NAME_CHARS) or f"<unnamed suite #{len(outer)}>"

    def read_child(self, tag: str, elem: ET.Element, frame: _Frame) -> None:
        """A complete element directly under a suite (or under the root testsuites)."""
        if tag == "testcase":
            if len(self.cases) >= MAX_TESTCASES:
                raise JUnitParseError(
                    f"JUnit XML{self.where} lists more than {MAX_TESTCASES} testcases; refused (split the category)"
                )
            # A testcase directly under <testsuites> is not in the schema, but some producers write it.
            case = _read_case(elem, suite=frame.path[-1] if frame.path else "")
            self.cases.append(case)
            frame.tally.tests += 1
            if any(_local(c.tag) == _FINAL_FAILURE for c in elem):
                frame.tally.failures += 1
            if any(_local(c.tag) == _FINAL_ERROR for c in elem):
                frame.tally.errors += 1
            if case.outcome is TestOutcome.SKIPPED:
                frame.tally.skipped += 1
        elif tag in (_FINAL_ERROR, _FINAL_FAILURE) and frame.path:
            self.suite_errors.append(
                SuiteError(
                    suite=_label(frame.path),
                    kind=tag,
                    message=_message_of(elem),
                    detail=_text_of(elem, MAX_DETAIL_CHARS),
                )
            )
            # Producers that write a suite-level error usually count it in the
            # suite's attributes; count it the same way for the comparison.
            if tag == _FINAL_ERROR:
                frame.tally.errors += 1
            else:
                frame.tally.failures += 1
        elif tag == "properties":
            for name, value in _property_pairs(elem):
                if name not in self.properties and len(self.properties) < MAX_PROPERTIES:
                    self.properties[name] = value
        elif tag in ("system-out", "system-err") and elem.text and elem.text.strip():
            kept = self.system_out if tag == "system-out" else self.system_err
            if sum(len(t) for t in kept) <= MAX_REPORT_OUTPUT_CHARS:
                kept.append(elem.text.strip())

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
                disagreements.append(f"{attr}={_cap(raw, 40)!r} is not a number")
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
        raise JUnitParseError(f"JUnit XML{where} is {len(data)} bytes, above the {MAX_JUNIT_BYTES}-byte limit")
    reader = _Reader(where)
    try:
        reader.read(data)
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
        raise JUnitParseError(f"malformed JUnit XML{where} at line {line}, column {column}: {reason}") from None

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
