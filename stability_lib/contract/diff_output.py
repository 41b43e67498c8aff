"""Output of a breaking-change diff, for ``stability diff`` (pure: strings in, strings out).

A diff result is the list of ``Change`` that ``contract.openapi_diff.diff_openapi`` returns.
Four formats render it: ``text`` (a terminal), ``json`` (machines), ``junit`` (CI
test reports: one testcase per change) and ``html`` (a page for people). Every
string in a change can come from an untrusted spec (a path, a property name, an
enum value), so each format makes it inert: control and bidirectional-override
characters are shown as ``\\xNN``/``\\uNNNN`` escapes in text, JUnit and HTML
(terminal escape sequences, invalid XML, Trojan-Source reordering), HTML is
escaped and has no script and no reference to anything outside itself, and JSON
keeps the exact strings, escaped by the encoder.

Exit codes follow oasdiff's ``--fail-on`` (its BREAKING-CHANGES.md): with a
level, the command exits 1 when any change is at or above it (``--fail-on ERR``:
any ERR; ``--fail-on WARN``: any WARN or ERR; ``INFO``: any change at all) and 0
otherwise; with no level it always exits 0. Levels order ERR > WARN > INFO.
Exit codes 2 and 3 (could not compare) belong to the command, not to a result.
"""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from typing import Any

from .openapi_diff import Change, Level, count_levels

__all__ = [
    "DEFAULT_FAIL_ON",
    "FAIL_ON_CHOICES",
    "FORMATS",
    "parse_fail_on",
    "failing_changes",
    "exit_code",
    "format_text",
    "format_json",
    "format_junit",
    "format_html",
    "render",
]

FAIL_ON_CHOICES = ("ERR", "WARN", "INFO")
# "No breaking changes" in oasdiff's sense covers WARN (possibly breaking) too.
DEFAULT_FAIL_ON = Level.WARN
_RANK = {Level.ERR: 3, Level.WARN: 2, Level.INFO: 1}
_BIDI = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C))


def parse_fail_on(value: str | Level | None) -> Level | None:
    """``"err"``/``"WARN"``/``Level.INFO``/``None`` -> a Level (or None: never fail). ValueError otherwise."""
    if value is None or isinstance(value, Level):
        return value
    text = str(value).strip().upper()
    if text not in FAIL_ON_CHOICES:
        raise ValueError(f"--fail-on must be one of {', '.join(FAIL_ON_CHOICES)} (got {value!r})")
    return Level(text)


def failing_changes(changes: Sequence[Change], fail_on: str | Level | None) -> list[Change]:
    """The changes at or above ``fail_on`` (none when ``fail_on`` is None)."""
    level = parse_fail_on(fail_on)
    if level is None:
        return []
    return [c for c in changes if _RANK[c.level] >= _RANK[level]]


def exit_code(changes: Sequence[Change], fail_on: str | Level | None) -> int:
    """oasdiff's ``--fail-on``: 1 when any change is at or above the level, else 0 (always 0 without one)."""
    return 1 if failing_changes(changes, fail_on) else 0


# Everything _inert escapes, as one character class: one C-speed scan of each value, where a
# Python loop over every character took most of `stability diff` on a 5 MB spec pair.
_UNSAFE = re.compile(
    "[\\x00-\\x1f\\x7f-\\x9f\\ud800-\\udfff\\ufffe\\uffff" + "".join(f"\\u{ord(c):04x}" for c in sorted(_BIDI)) + "]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x20 or 0x7F <= code <= 0x9F else f"\\u{code:04x}"


def _inert(value: Any) -> str:
    """One line of text with nothing a terminal, an XML parser or a bidi renderer would act on."""
    return _UNSAFE.sub(_escape, str(value))


def _ordered(changes: Sequence[Change]) -> list[Change]:
    # Most severe first; the diff's own order within a level.
    return sorted(changes, key=lambda c: -_RANK[c.level])


def _where(c: Change) -> str:
    return " ".join(part for part in (c.method, c.path) if part) or "(document)"


def _summary(changes: Sequence[Change], fail_on: Level | None) -> str:
    counts = count_levels(changes)
    head = f"{len(changes)} change(s): {counts['ERR']} ERR, {counts['WARN']} WARN, {counts['INFO']} INFO"
    if fail_on is None:
        return f"{head}. No --fail-on level: the exit code is 0."
    failing = failing_changes(changes, fail_on)
    levels = [lvl.value for lvl in Level if counts[lvl.value] and _RANK[lvl] >= _RANK[fail_on]]
    if failing:
        return f"{head}. FAIL: {len(failing)} change(s) at or above --fail-on {fail_on.value} ({', '.join(levels)})."
    return f"{head}. PASS: no change at or above --fail-on {fail_on.value}."


def _title(base: str, revision: str) -> str:
    return f"API diff: {_inert(base or 'base')} -> {_inert(revision or 'revision')}"


def format_text(
    changes: Sequence[Change], *, fail_on: str | Level | None = DEFAULT_FAIL_ON, base: str = "", revision: str = ""
) -> str:
    level = parse_fail_on(fail_on)
    lines = [_title(base, revision), _summary(changes, level)]
    for c in _ordered(changes):
        lines.append("")
        lines.append(f"{c.level.value:<4} {_inert(c.rule)}  {_inert(_where(c))}")
        lines.append(f"     {_inert(c.message)}")
        if c.location:
            lines.append(f"     at {_inert(c.location)}")
    return "\n".join(lines) + "\n"


def format_json(
    changes: Sequence[Change], *, fail_on: str | Level | None = DEFAULT_FAIL_ON, base: str = "", revision: str = ""
) -> str:
    level = parse_fail_on(fail_on)
    failing = failing_changes(changes, level)
    doc = {
        "base": base,
        "revision": revision,
        "fail_on": level.value if level else None,
        "exit_code": 1 if failing else 0,
        "failing_levels": sorted({c.level.value for c in failing}, key=lambda v: -_RANK[Level(v)]),
        "counts": count_levels(changes),
        "changes": [c.serialize() for c in _ordered(changes)],
    }
    # ensure_ascii: control characters and lone surrogates from a spec stay valid JSON text.
    return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"


def format_junit(
    changes: Sequence[Change], *, fail_on: str | Level | None = DEFAULT_FAIL_ON, base: str = "", revision: str = ""
) -> str:
    """One testsuite: a verdict testcase, then one testcase per change, failing at or above ``fail_on``.

    The verdict testcase ("no change at or above LEVEL") keeps the suite from being
    empty when the specs agree, and fails exactly when the command exits 1.
    """
    level = parse_fail_on(fail_on)
    failing = {id(c) for c in failing_changes(changes, level)}
    suite_name = "stability diff"
    root = ET.Element("testsuites", {"name": suite_name})
    suite = ET.SubElement(root, "testsuite", {"name": suite_name})
    props = ET.SubElement(suite, "properties")
    for name, value in (("base", base), ("revision", revision), ("fail_on", level.value if level else "none")):
        ET.SubElement(props, "property", {"name": name, "value": _inert(value)})

    verdict = ET.SubElement(
        suite,
        "testcase",
        {"classname": "openapi-diff", "name": f"no change at or above {level.value}" if level else "diff completed"},
    )
    if failing:
        ET.SubElement(verdict, "failure", {"type": "breaking", "message": _inert(_summary(changes, level))})
    seen: dict[tuple[str, str], int] = {}
    for c in _ordered(changes):
        classname = f"openapi-diff.{_inert(c.rule)}"
        name = f"{c.level.value} {_inert(_where(c))} {_inert(c.location)}".rstrip()
        n = seen.get((classname, name), 0)
        seen[(classname, name)] = n + 1
        if n:  # CI tools merge testcases with the same identity
            name = f"{name} (#{n + 1})"
        case = ET.SubElement(suite, "testcase", {"classname": classname, "name": name})
        if id(c) in failing:
            failure = ET.SubElement(case, "failure", {"type": c.level.value, "message": _inert(c.message)})
            failure.text = f"{c.level.value} {_inert(c.rule)}: {_inert(c.message)}"
        else:
            ET.SubElement(case, "system-out").text = f"{c.level.value} {_inert(c.rule)}: {_inert(c.message)}"
    n_failures = sum(1 for case in suite.iter("testcase") if case.find("failure") is not None)
    n_tests = len(changes) + 1
    for elem in (root, suite):
        elem.set("tests", str(n_tests))
        elem.set("failures", str(n_failures))
        elem.set("errors", "0")
    suite.set("skipped", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#1a1a1a}
h1{font-size:1.3em}
.verdict{font-weight:600;padding:.5em .8em;border-radius:4px;display:inline-block}
.verdict.fail{background:#fde2e1;color:#8a1c13}.verdict.pass{background:#e3f4e1;color:#1d5e1a}
table{border-collapse:collapse;width:100%;margin-top:1em;table-layout:fixed}
th,td{border-bottom:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f4f4f4}
td.ERR{color:#8a1c13;font-weight:600}td.WARN{color:#7a5300;font-weight:600}td.INFO{color:#555}
code{font-size:.92em}
"""


def format_html(
    changes: Sequence[Change], *, fail_on: str | Level | None = DEFAULT_FAIL_ON, base: str = "", revision: str = ""
) -> str:
    """A self-contained page: inline CSS, no script, no external reference (CSP forbids both)."""
    level = parse_fail_on(fail_on)

    def esc(value: Any) -> str:
        return html.escape(_inert(value), quote=True)

    failed = bool(failing_changes(changes, level))
    rows = "\n".join(
        "<tr>"
        f'<td class="{c.level.value}">{c.level.value}</td>'
        f"<td><code>{esc(c.rule)}</code></td>"
        f"<td>{esc(_where(c))}</td>"
        f"<td><code>{esc(c.location)}</code></td>"
        f"<td>{esc(c.message)}</td>"
        "</tr>"
        for c in _ordered(changes)
    )
    table = (
        '<table><colgroup><col style="width:5em"><col style="width:18%"><col style="width:20%">'
        '<col style="width:20%"><col></colgroup>'
        "<thead><tr><th>Level</th><th>Rule</th><th>Operation</th><th>Location</th><th>Change</th></tr></thead>"
        f"<tbody>\n{rows}\n</tbody></table>"
        if changes
        else "<p>No differences a client could notice.</p>"
    )
    title = esc(_title(base, revision))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="referrer" content="no-referrer">'
        f"<title>{title}</title><style>{_CSS}</style></head>\n"
        f"<body><h1>{title}</h1>\n"
        f'<p class="verdict {"fail" if failed else "pass"}">{esc(_summary(changes, level))}</p>\n'
        f"{table}\n</body></html>\n"
    )


Formatter = Callable[..., str]
FORMATS: dict[str, Formatter] = {
    "text": format_text,
    "json": format_json,
    "junit": format_junit,
    "html": format_html,
}


def render(
    fmt: str,
    changes: Sequence[Change],
    *,
    fail_on: str | Level | None = DEFAULT_FAIL_ON,
    base: str = "",
    revision: str = "",
) -> str:
    """The diff in format ``fmt`` (one of FORMATS). ValueError for an unknown format."""
    try:
        formatter = FORMATS[fmt]
    except KeyError:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})") from None
    return formatter(changes, fail_on=fail_on, base=base, revision=revision)
