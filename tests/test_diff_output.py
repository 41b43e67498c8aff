"""Output of `stability diff`: each format says what changed, fails at the right level, and stays inert."""

from __future__ import annotations

import copy
import json
import re
from datetime import date
from html.parser import HTMLParser
from typing import Any

import defusedxml.ElementTree as SafeET
import pytest

from stability_lib.contract.diff_output import (
    DEFAULT_FAIL_ON,
    FORMATS,
    exit_code,
    failing_changes,
    format_html,
    format_json,
    format_junit,
    format_text,
    parse_fail_on,
    render,
)
from stability_lib.contract.openapi_diff import Change, Level, diff_openapi
from stability_lib.suites.junit import TestOutcome, parse_junit

TODAY = date(2025, 6, 1)
ERR_CHANGE = Change(Level.ERR, "operation-removed", "/items/{id}", "DELETE", "", "DELETE /items/{id} was removed")
WARN_CHANGE = Change(
    Level.WARN, "request-parameter-removed", "/items", "GET", "parameters/query/q", "query parameter 'q' was removed"
)
INFO_CHANGE = Change(Level.INFO, "operation-added", "/things", "POST", "", "POST /things was added")

# Strings a hostile spec can put in a path, a property name or an enum value.
HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "]]><!--",
    "&amp;&lt;",
    "\x1b[31mred\x1b[0m\x1b]8;;http://evil.example\x07link",
    "nul\x00bell\x07del\x7fc1\x85",
    "rtl\u202eexe.txt",
    "lone\ud800surrogate",
    "line\nbreak\rreturn",
    "\ufffe\uffff",
]


def _spec(prop: str, path: str) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {
            path: {
                "get": {
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {prop: {"type": "string", "enum": [prop]}},
                                    }
                                }
                            },
                        }
                    }
                }
            }
        },
    }


def _hostile_changes() -> list[Change]:
    """A real diff whose every string field carries hostile text, plus hand-made ones for the rest."""
    changes: list[Change] = []
    for i, text in enumerate(HOSTILE):
        old = _spec(text, f"/p{i}/{text}")
        new = copy.deepcopy(old)
        schema = new["paths"][f"/p{i}/{text}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        schema["properties"][text]["type"] = "integer"  # response-type-changed (ERR), with the name in the message
        schema["properties"][text]["enum"].append(text + "2")  # response-enum-value-added (WARN)
        changes.extend(diff_openapi(old, new, today=TODAY))
        changes.append(Change(Level.INFO, text, text, text, text, text))
    assert {c.level for c in changes} == set(Level)
    return changes


# ------------------------------------------------------------------ exit codes (oasdiff --fail-on)

EXIT_TABLE = [
    # (changes, fail_on, exit code)
    ([], None, 0),
    ([], "ERR", 0),
    ([], "WARN", 0),
    ([], "INFO", 0),
    ([INFO_CHANGE], "ERR", 0),
    ([INFO_CHANGE], "WARN", 0),
    ([INFO_CHANGE], "INFO", 1),
    ([WARN_CHANGE, INFO_CHANGE], "ERR", 0),
    ([WARN_CHANGE, INFO_CHANGE], "WARN", 1),
    ([WARN_CHANGE, INFO_CHANGE], "INFO", 1),
    ([ERR_CHANGE], "ERR", 1),
    ([ERR_CHANGE], "WARN", 1),
    ([ERR_CHANGE], "INFO", 1),
    ([ERR_CHANGE, WARN_CHANGE, INFO_CHANGE], None, 0),
]


@pytest.mark.parametrize(("changes", "fail_on", "code"), EXIT_TABLE)
def test_exit_code_follows_oasdiff_fail_on(changes: list[Change], fail_on: str | None, code: int) -> None:
    assert exit_code(changes, fail_on) == code
    assert exit_code(changes, parse_fail_on(fail_on)) == code
    # Every format says the same: JSON's exit code, JUnit's failing verdict testcase.
    assert json.loads(format_json(changes, fail_on=fail_on))["exit_code"] == code
    report = parse_junit(format_junit(changes, fail_on=fail_on).encode())
    verdict = report.cases[0]
    assert verdict.outcome is (TestOutcome.FAILED if code else TestOutcome.PASSED)


def test_fail_on_is_parsed_case_insensitively_and_rejects_anything_else() -> None:
    assert parse_fail_on("err") is Level.ERR
    assert parse_fail_on(" Warn ") is Level.WARN
    assert parse_fail_on(None) is None
    assert DEFAULT_FAIL_ON is Level.WARN  # "no breaking changes" includes possibly-breaking ones
    for bad in ("", "error", "CRITICAL", "1"):
        with pytest.raises(ValueError, match="--fail-on"):
            parse_fail_on(bad)


def test_failing_changes_are_those_at_or_above_the_level() -> None:
    assert failing_changes([ERR_CHANGE, WARN_CHANGE, INFO_CHANGE], "ERR") == [ERR_CHANGE]
    assert failing_changes([ERR_CHANGE, WARN_CHANGE, INFO_CHANGE], "WARN") == [ERR_CHANGE, WARN_CHANGE]
    assert failing_changes([ERR_CHANGE, WARN_CHANGE, INFO_CHANGE], "INFO") == [ERR_CHANGE, WARN_CHANGE, INFO_CHANGE]
    assert failing_changes([ERR_CHANGE, WARN_CHANGE, INFO_CHANGE], None) == []


# ------------------------------------------------------------------ each format


def test_text_lists_every_change_most_severe_first_with_the_verdict() -> None:
    out = format_text([INFO_CHANGE, WARN_CHANGE, ERR_CHANGE], fail_on="WARN", base="v1.yaml", revision="v2.yaml")
    assert out.splitlines()[0] == "API diff: v1.yaml -> v2.yaml"
    assert "3 change(s): 1 ERR, 1 WARN, 1 INFO. FAIL: 2 change(s) at or above --fail-on WARN (ERR, WARN)." in out
    assert out.index("operation-removed") < out.index("request-parameter-removed") < out.index("operation-added")
    assert "DELETE /items/{id}" in out and "at parameters/query/q" in out
    assert "PASS: no change at or above --fail-on ERR." in format_text([WARN_CHANGE, INFO_CHANGE], fail_on="ERR")
    assert "0 change(s)" in format_text([], fail_on="ERR")


def test_json_round_trips_every_change() -> None:
    doc = json.loads(format_json([INFO_CHANGE, WARN_CHANGE, ERR_CHANGE], fail_on="ERR", base="a", revision="b"))
    assert doc["base"] == "a" and doc["revision"] == "b" and doc["fail_on"] == "ERR"
    assert doc["counts"] == {"ERR": 1, "WARN": 1, "INFO": 1}
    assert doc["failing_levels"] == ["ERR"]
    assert doc["changes"] == [ERR_CHANGE.serialize(), WARN_CHANGE.serialize(), INFO_CHANGE.serialize()]
    assert json.loads(format_json([ERR_CHANGE, WARN_CHANGE], fail_on="WARN"))["failing_levels"] == ["ERR", "WARN"]
    assert json.loads(format_json([ERR_CHANGE], fail_on=None))["fail_on"] is None


def test_junit_has_one_testcase_per_change_failing_at_or_above_the_level() -> None:
    xml = format_junit([INFO_CHANGE, WARN_CHANGE, ERR_CHANGE, ERR_CHANGE], fail_on="WARN", base="a", revision="b")
    report = parse_junit(xml.encode(), source="diff.xml")
    assert not report.warnings and not report.declared_unlisted  # counts in attributes agree with the cases
    outcomes = [(c.classname, c.outcome) for c in report.cases]
    assert outcomes == [
        ("openapi-diff", TestOutcome.FAILED),
        ("openapi-diff.operation-removed", TestOutcome.FAILED),
        ("openapi-diff.operation-removed", TestOutcome.FAILED),
        ("openapi-diff.request-parameter-removed", TestOutcome.FAILED),
        ("openapi-diff.operation-added", TestOutcome.PASSED),
    ]
    assert len({c.id for c in report.cases}) == len(report.cases)  # duplicates get distinct names
    assert report.cases[1].message == ERR_CHANGE.message
    assert report.properties["fail_on"] == "WARN"
    only_err = parse_junit(format_junit([INFO_CHANGE, WARN_CHANGE, ERR_CHANGE], fail_on="ERR").encode())
    assert [c.outcome for c in only_err.cases].count(TestOutcome.FAILED) == 2  # verdict + the ERR


def test_junit_of_no_changes_is_one_passing_testcase() -> None:
    report = parse_junit(format_junit([], fail_on="WARN").encode())
    assert [(c.name, c.outcome) for c in report.cases] == [("no change at or above WARN", TestOutcome.PASSED)]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_a_table_of_changes_with_the_verdict() -> None:
    page = format_html([INFO_CHANGE, WARN_CHANGE, ERR_CHANGE], fail_on="ERR", base="a.yaml", revision="b.yaml")
    parser = _Tags()
    parser.feed(page)
    text = "".join(parser.text)
    assert "API diff: a.yaml -> b.yaml" in text
    assert "FAIL: 1 change(s) at or above --fail-on ERR (ERR)." in text
    assert page.count("<tr>") == 4  # header + 3 changes
    assert 'class="verdict fail"' in page
    assert 'class="verdict pass"' in format_html([INFO_CHANGE], fail_on="ERR")
    assert "No differences a client could notice." in format_html([], fail_on="ERR")


# ------------------------------------------------------------------ hostile strings


def test_hostile_strings_are_inert_in_text() -> None:
    out = format_text(_hostile_changes(), fail_on="WARN")
    out.encode("utf-8")  # no lone surrogate
    for line in out.splitlines():
        assert not re.search(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]", line), line
    assert "\\x1b[31mred" in out and "rtl\\u202eexe" in out and "lone\\ud800surrogate" in out


def test_hostile_strings_round_trip_exactly_in_json() -> None:
    changes = _hostile_changes()
    out = format_json(changes, fail_on="WARN")
    assert out.isascii()
    assert json.loads(out)["changes"] == [
        c.serialize() for c in sorted(changes, key=lambda c: ["ERR", "WARN", "INFO"].index(c.level.value))
    ]


def test_hostile_strings_leave_junit_well_formed_and_readable() -> None:
    changes = _hostile_changes()
    xml = format_junit(changes, fail_on="WARN")
    data = xml.encode("utf-8")
    SafeET.fromstring(data)  # well-formed XML 1.0: no control character, no surrogate, no injected markup
    report = parse_junit(data)
    assert len(report.cases) == len(changes) + 1
    failed = [c for c in report.cases if c.outcome is TestOutcome.FAILED]
    assert len(failed) == 1 + sum(1 for c in changes if c.level is not Level.INFO)
    names = " ".join(c.name + c.message + c.classname for c in report.cases)
    assert "<script>alert(1)</script>" in names  # shown as text, not dropped
    assert "\x1b" not in names and "\x00" not in names


def test_hostile_strings_are_escaped_in_html_which_has_no_script_and_no_network() -> None:
    page = format_html(_hostile_changes(), fail_on="WARN", base="<b>base</b>", revision="javascript:alert(1)")
    page.encode("utf-8")
    parser = _Tags()
    parser.feed(page)
    allowed = {
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "h1",
        "p",
        "table",
        "colgroup",
        "col",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "code",
    }
    assert parser.tags <= allowed
    assert {name for name, _ in parser.attrs} <= {"lang", "charset", "http-equiv", "content", "name", "class", "style"}
    lowered = page.lower()
    for needle in ("<script", "<img", "<!--", "<![cdata["):  # markup only: hostile text is escaped
        assert needle not in lowered, needle
    assert not any("http" in (value or "").lower() or "url(" in (value or "") for _, value in parser.attrs)
    style = lowered[lowered.index("<style>") : lowered.index("</style>")]
    assert "url(" not in style and "@import" not in style
    assert "default-src 'none'" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\ud800-\udfff]", page)


# ------------------------------------------------------------------ wiring


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_render_dispatches_each_format(fmt: str) -> None:
    assert render(fmt, [ERR_CHANGE], fail_on="ERR", base="a", revision="b") == FORMATS[fmt](
        [ERR_CHANGE], fail_on="ERR", base="a", revision="b"
    )


def test_render_rejects_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="--format"):
        render("pdf", [ERR_CHANGE])


def test_a_swagger_2_pair_goes_from_files_to_a_failing_junit_in_the_wiring_a_command_uses() -> None:
    from pathlib import Path

    import yaml

    from stability_lib.contract.swagger2 import as_openapi3

    base = yaml.safe_load(
        (Path(__file__).parent / "fixtures" / "swagger2" / "petstore.json").read_text(encoding="utf-8")
    )
    revision = copy.deepcopy(base)
    del revision["paths"]["/store/order/{orderId}"]["delete"]
    changes = diff_openapi(as_openapi3(base), as_openapi3(revision), today=TODAY)
    assert [(c.rule, c.level) for c in changes] == [("operation-removed", Level.ERR)]
    report = parse_junit(render("junit", changes, fail_on="ERR", base="petstore.json", revision="edited").encode())
    assert [c.outcome for c in report.cases] == [TestOutcome.FAILED, TestOutcome.FAILED]
    assert exit_code(changes, "ERR") == 1
