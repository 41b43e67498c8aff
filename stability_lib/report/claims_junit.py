"""claims.junit.xml: every claim of a run as a JUnit testcase, for CI test-report views (pure).

Jenkins, GitLab and GitHub show JUnit XML next to the unit tests; writing the proof in
that form puts each check, its status and its decisive figure there too.

Structure (the common Jenkins JUnit schema: ``testsuites`` > ``testsuite`` > ``testcase``)
    One ``testsuite`` per report section, in the order the summary lists them, with
    ``tests``/``failures``/``errors``/``skipped`` counted from its testcases and ``time``
    the section's duration in seconds. One ``testcase`` per claim: ``classname`` is the
    section, ``name`` the claim id (``<section>.<check>``, stable across runs), ``time``
    0 (a claim has no duration of its own). The root ``testsuites`` carries the totals.

The status rule (one outcome element per testcase, none for PASS)
    ============  ===============  =====================================================
    claim status  element          why
    ============  ===============  =====================================================
    PASS          (none)           the check ran and could have failed, and did not
    FAIL          ``<failure>``    the check ran and found the change unsafe
    ERROR         ``<error>``      the check itself could not run (our failure, or the
                                   section crashed): not a finding about the service
    INCONCLUSIVE  ``<skipped>``    the check ran but the evidence cannot decide it (too
                                   few samples, no baseline, ...): nothing was proven
    ============  ===============  =====================================================

    INCONCLUSIVE is ``skipped`` rather than ``error`` so that a dashboard separates
    "could not decide" from "broke while checking"; a required INCONCLUSIVE claim still
    makes the run's verdict INCONCLUSIVE (exit 2), which the CI job sees in the exit code.
    Each outcome element has ``type`` set to the claim status and ``message`` =
    ``"<STATUS>: <statistic> [evidence: <file>, ...]"``; its text repeats the statement,
    the statistic and every evidence reference with its record ids.

Per testcase, ``system-out`` (one ``key: value`` line each)
    ``required`` ("true": the claim decides the verdict; "false": informative only),
    ``status``, ``statement``, ``statistic`` and ``evidence`` (comma-separated files). Not
    pytest's testcase ``properties``: the Jenkins xUnit schema (junit-10.xsd) allows none in a
    testcase, and pytest's default xunit2 family leaves them out for that reason. Each
    testsuite carries the run's ``run_id`` and ``verdict`` as properties (allowed there). The
    root ``testsuites`` has ``tests``/``failures``/``errors``/``time`` only: junit-10.xsd
    declares no ``skipped`` there (each testsuite has its own).

Text is inert: every string is escaped by the XML serializer, characters XML 1.0 cannot
hold (control characters, lone surrogates, U+FFFE/U+FFFF) are written as visible
``\\xNN``/``\\uNNNN`` escapes, and long strings are capped (``MAX_TEXT_CHARS``) so that the
tool's own reader (``suites.junit.parse_junit``) reads back every testcase, name and status.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["claims_junit_xml", "CLAIMS_JUNIT_FILE", "OUTCOME_ELEMENT"]

CLAIMS_JUNIT_FILE = "claims.junit.xml"

# Claim status -> JUnit outcome element (None: a passed testcase has none).
OUTCOME_ELEMENT: dict[str, str | None] = {"PASS": None, "FAIL": "failure", "ERROR": "error", "INCONCLUSIVE": "skipped"}

MAX_NAME_CHARS = 400  # the reader keeps 500 of a name
MAX_MESSAGE_CHARS = 2000  # the reader keeps 2048 of a message
MAX_TEXT_CHARS = 8000  # the reader keeps 8192 of an outcome element's text
MAX_OUTPUT_CHARS = 4000  # the reader keeps 4096 of a testcase's system-out

# Everything XML 1.0 cannot carry: C0 controls but tab/newline/CR, surrogates, U+FFFE/U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _xml_text(value: Any, limit: int) -> str:
    text = "" if value is None else str(value)
    text = _NOT_XML.sub(_visible, text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _evidence_refs(claim: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    refs = claim.get("evidence")
    return [e for e in refs if isinstance(e, Mapping)] if isinstance(refs, list) else []


def _message(status: str, claim: Mapping[str, Any]) -> str:
    files = [str(e.get("file", "")) for e in _evidence_refs(claim) if e.get("file")]
    where = f" [evidence: {', '.join(files)}]" if files else ""
    return f"{status}: {claim.get('statistic') or 'no statistic recorded'}{where}"


def _body(claim: Mapping[str, Any]) -> str:
    lines = [f"statement: {claim.get('statement', '')}", f"statistic: {claim.get('statistic', '')}"]
    for ref in _evidence_refs(claim):
        records = ref.get("records") or []
        listed = f" (records: {', '.join(map(str, records))})" if records else ""
        lines.append(f"evidence: {ref.get('file', '')}{listed}")
    return "\n".join(lines)


def _case_output(claim: Mapping[str, Any], status: str) -> str:
    """The testcase's system-out: one ``key: value`` line each (CI views show it beside the case)."""
    files = ", ".join(str(e.get("file", "")) for e in _evidence_refs(claim))
    lines = [
        f"required: {'true' if claim.get('required', True) else 'false'}",
        f"status: {status}",
        f"statement: {claim.get('statement', '')}",
        f"statistic: {claim.get('statistic', '')}",
        f"evidence: {files}",
    ]
    return "\n".join(line.replace("\n", " ") for line in lines)


def _sections_in_order(summary: Mapping[str, Any], claims: list[Mapping[str, Any]]) -> list[str]:
    order = [str(s.get("section")) for s in summary.get("sections", []) if isinstance(s, Mapping)]
    for claim in claims:
        if str(claim.get("section", "")) not in order:
            order.append(str(claim.get("section", "")))
    return order


def _seconds(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else 0.0


def _add_properties(parent: ET.Element, pairs: Iterable[tuple[str, Any]]) -> None:
    props = ET.SubElement(parent, "properties")
    for name, value in pairs:
        ET.SubElement(props, "property", name=name, value=_xml_text(value, MAX_MESSAGE_CHARS))


def claims_junit_xml(summary: Mapping[str, Any]) -> str:
    """summary.json (as a dict) -> the text of claims.junit.xml (see the module docstring)."""
    claims = [c for c in summary.get("claims", []) if isinstance(c, Mapping)]
    durations = {
        str(s.get("section")): _seconds(s.get("duration_s"))
        for s in summary.get("sections", [])
        if isinstance(s, Mapping)
    }
    root = ET.Element("testsuites", name=_xml_text(summary.get("title") or "stability-proof claims", MAX_NAME_CHARS))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for section in _sections_in_order(summary, claims):
        mine = [c for c in claims if str(c.get("section", "")) == section]
        if not mine:
            continue
        counts = {"tests": len(mine), "failures": 0, "errors": 0, "skipped": 0}
        suite = ET.Element("testsuite", name=_xml_text(section, MAX_NAME_CHARS))
        _add_properties(suite, [("run_id", summary.get("run_id", "")), ("verdict", summary.get("verdict", ""))])
        for claim in mine:
            status = str(claim.get("status", "ERROR"))
            element = OUTCOME_ELEMENT.get(status, "error")  # an unknown status is not a pass
            case = ET.SubElement(
                suite,
                "testcase",
                classname=_xml_text(section, MAX_NAME_CHARS),
                name=_xml_text(claim.get("id", ""), MAX_NAME_CHARS),
                time="0.000",
            )
            if element is not None:
                counts[{"failure": "failures", "error": "errors", "skipped": "skipped"}[element]] += 1
                outcome = ET.SubElement(
                    case,
                    element,
                    type=_xml_text(status, 40),
                    message=_xml_text(_message(status, claim), MAX_MESSAGE_CHARS),
                )
                outcome.text = _xml_text(_body(claim), MAX_TEXT_CHARS)
            # Not testcase <properties>: junit-10.xsd (Jenkins xUnit) allows none there.
            ET.SubElement(case, "system-out").text = _xml_text(_case_output(claim, status), MAX_OUTPUT_CHARS)
        seconds = durations.get(section, 0.0)
        total_time += seconds
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", f"{seconds:.3f}")
        if summary.get("started_at"):
            suite.set("timestamp", _xml_text(summary["started_at"], 40))
        root.append(suite)
    for key in ("tests", "failures", "errors"):  # junit-10.xsd declares no "skipped" on testsuites
        root.set(key, str(totals[key]))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
