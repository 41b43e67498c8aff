"""HTML fragments of the report (pure: data in, escaped HTML out).

Everything that comes from the target or from test output passes through
``esc`` before it reaches the page; the exported HTML also carries a CSP that
forbids scripts, so an escaped payload stays inert twice over.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

import yaml

from ..core.models import Status

__all__ = [
    "NO_LIVE_TARGET",
    "esc",
    "breakable",
    "section_anchor",
    "claim_anchor",
    "evidence_link",
    "machine_text",
    "status_badge",
    "table",
    "header_html",
    "banner_html",
    "summary_table_html",
    "claims_table_html",
    "warnings_html",
    "not_checked_html",
    "recommendations",
    "recommendations_html",
    "appendix_html",
    "section_heading_html",
    "section_lead",
    "params_rows",
]

SECTION_TITLES: dict[str, str] = {
    "health": "Service health",
    "suites": "Test suites by category",
    "websocket": "WebSocket sessions and close codes",
    "golden_path": "Golden path",
    "isolation": "Multi-user isolation",
    "performance": "Performance against the baseline",
    "contract": "Breaking changes (API contract)",
}

MAX_CELL_CHARS = 2000
# The candidate of a run whose enabled sections all read files (JUnit reports, spec files).
NO_LIVE_TARGET = "no live service: every check read files"
# Identifiers (paths, URLs, check ids) may wrap after these characters, and only there.
_SEPARATORS = re.compile(r"(?<=[/_:?&=,#@-])(?=.)|(?<=\.)(?=\D)")  # not inside a number: "1.05"


def esc(value: Any, limit: int = MAX_CELL_CHARS) -> str:
    text = "" if value is None else str(value)
    if len(text) > limit:
        text = text[:limit] + f"… [{len(text) - limit} more characters]"
    return html.escape(text, quote=True)


def breakable(value: Any, limit: int = MAX_CELL_CHARS) -> str:
    """An identifier (path, URL, id), escaped, with a line-break opportunity after each separator:
    a narrow column wraps it at '/', '.', ':' ... instead of inside a word."""
    text = "" if value is None else str(value)
    if len(text) > limit:
        text = text[:limit] + f"… [{len(text) - limit} more characters]"
    return "<wbr>".join(html.escape(piece, quote=True) for piece in _SEPARATORS.split(text))


def machine_text(value: Any, limit: int = MAX_CELL_CHARS) -> str:
    """Output of a program (a test failure, a traceback): it may hold tokens longer than any column
    (escape sequences, reprs), so it wraps anywhere, in small monospace that reads as machine output."""
    return f'<span class="sp-machine">{breakable(value, limit)}</span>'


def _slug(prefix: str, name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
    if slug != name:  # two ids that differ only in punctuation must not share an anchor
        slug += "-" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:6]
    return f"{prefix}-{slug}"


def section_anchor(section: str) -> str:
    return _slug("section", section)


def claim_anchor(claim_id: str) -> str:
    return _slug("check", claim_id)


def evidence_link(ref: dict[str, Any]) -> str:
    """A relative link to an evidence file inside the run directory (report.html sits at its root).

    Anything that is not a plain relative path inside the run (absolute, '..', a scheme) stays text.
    """
    path = str(ref.get("file") or "")
    records = ref.get("records") or []
    tail = f' <span class="sp-rec">{breakable(", ".join(map(str, records[:3])), 200)}</span>' if records else ""
    parts = path.replace("\\", "/").split("/")
    safe = bool(path) and not path.startswith("/") and ":" not in parts[0] and ".." not in parts and "" not in parts
    if not safe:
        return f'<span class="sp-id">{breakable(path, 300)}</span>{tail}'
    return f'<a class="sp-id" href="{esc(quote(path))}">{breakable(path, 300)}</a>{tail}'


def status_badge(status: str | Status) -> str:
    value = status.value if isinstance(status, Status) else str(status)
    safe = value if value in Status.__members__ else "ERROR"
    return f'<span class="sp-status sp-{safe}">{esc(value)}</span>'


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    raw_columns: Iterable[int] = (),
    widths: Sequence[int | str] | None = None,
    css_class: str = "",
) -> str:
    """An HTML table; cells are escaped except the columns named in raw_columns (our own markup).
    ``widths``: a number is a percentage, a string any CSS width ("9em"); with widths the layout is
    fixed, so a long cell wraps inside its column instead of pushing the table off the page."""
    raw = set(raw_columns)
    cols = (
        "<colgroup>"
        + "".join(
            f'<col style="width:{w}%">' if isinstance(w, (int, float)) else f'<col style="width:{esc(w)}">'
            for w in widths
        )
        + "</colgroup>"
        if widths
        else ""
    )
    classes = " ".join(c for c in (css_class, "sp-fixed" if widths else "") if c)
    head = "".join(f"<th>{breakable(h)}</th>" for h in headers)
    body = []
    for row in rows:
        # Target data (paths, ids, messages) may wrap at separators, never inside a word.
        cells = "".join(f"<td>{cell if i in raw else breakable(cell)}</td>" for i, cell in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headers)}"><em>nothing recorded</em></td></tr>')
    attr = f' class="{classes}"' if classes else ""
    return f"<table{attr}>{cols}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def header_html(summary: dict[str, Any]) -> str:
    targets = summary.get("targets", {})
    rows = [
        ("Change under test", esc(summary.get("title", ""))),
        ("Environment", esc(summary.get("environment", ""))),
        ("Candidate target", breakable(targets.get("candidate") or NO_LIVE_TARGET)),
        ("Baseline target", breakable(targets.get("baseline", "none (no live baseline)"))),
        ("Date (UTC)", esc(summary.get("started_at", ""))),
        ("Tool", esc(f"stability-proof {summary.get('tool_version', '')}")),
        ("Run id", breakable(summary.get("run_id", ""))),
    ]
    meta = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    desc = f"<p>{esc(summary['description'])}</p>" if summary.get("description") else ""
    return f"<h1>Stability proof: {esc(summary.get('title', ''))}</h1>{desc}<table class='sp-facts'>{meta}</table>"


def banner_html(summary: dict[str, Any]) -> str:
    # Not .sp-status: a badge never wraps, a banner's reason must (it clipped in the PDF).
    verdict = summary.get("verdict", "ERROR")
    safe = verdict if verdict in Status.__members__ else "ERROR"
    counts = summary.get("required_counts", {})
    count_text = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return (
        f'<div class="sp-banner sp-{safe}"><span class="sp-verdict">Verdict: {esc(verdict)}</span>'
        f"<small>{esc(summary.get('verdict_reason', ''))}. Required checks: {esc(count_text or 'none')}."
        f" Warnings: {len(summary.get('warnings', []))}.</small></div>"
    )


def _figure_of(claim: dict[str, Any]) -> str:
    from .figures import short_figure

    return short_figure(claim)


def _check_cell(claim: dict[str, Any], *, anchor: bool) -> str:
    """The statement first; the full statistic and evidence below it in small print (a footnote,
    not a column that dominates the page)."""
    ident = f' id="{claim_anchor(claim["id"])}"' if anchor else ""
    href = "" if anchor else f' href="#{claim_anchor(claim["id"])}"'
    statement = f"<a{href}>{esc(claim['statement'])}</a>" if href else esc(claim["statement"])
    info = "" if claim.get("required", True) else ' <span class="sp-info-tag">informative</span>'
    links = ", ".join(evidence_link(e) for e in claim.get("evidence", []))
    detail = esc(claim.get("statistic", ""))
    return (
        f'<div class="sp-check"{ident}>{statement}{info}</div>'
        f'<div class="sp-detail"><span class="sp-id">{breakable(claim["id"], 200)}</span>'
        + (f" · {detail}" if detail else "")
        + (f" · evidence: {links}" if links else "")
        + "</div>"
    )


_CLAIM_WIDTHS: tuple[str, ...] = ("auto", "9.5em", "32%")


def summary_table_html(summary: dict[str, Any]) -> str:
    """Every check, grouped by section (the section is a group row, not a column), each with its
    decisive figure; the full statistic is small print under the statement."""
    claims = summary.get("claims", [])

    def grouped(required: bool) -> str:
        rows: list[str] = []
        sections = dict.fromkeys(c["section"] for c in claims if bool(c.get("required", True)) is required)
        for section in sections:
            title = SECTION_TITLES.get(section, section)
            rows.append(
                f'<tr class="sp-group"><th colspan="3"><a href="#{section_anchor(section)}">{esc(title)}</a></th></tr>'
            )
            for c in claims:
                if c["section"] == section and bool(c.get("required", True)) is required:
                    rows.append(
                        f"<tr><td>{_check_cell(c, anchor=False)}</td><td>{status_badge(c['status'])}</td>"
                        f"<td>{esc(_figure_of(c))}</td></tr>"
                    )
        if not rows:
            rows.append('<tr><td colspan="3"><em>nothing recorded</em></td></tr>')
        cols = "".join(f'<col style="width:{w}">' for w in _CLAIM_WIDTHS)
        return (
            f'<table class="sp-fixed sp-claims"><colgroup>{cols}</colgroup><thead><tr><th>Check</th><th>Status</th>'
            f"<th>Decisive figure</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )

    out = '<h2 id="sp-checks">Summary: checks that decide the verdict</h2>' + grouped(True)
    if any(not c.get("required", True) for c in claims):
        out += "<h3>Informative checks (reported, not deciding)</h3>" + grouped(False)
    return out


def claims_table_html(claims: Iterable[dict[str, Any]]) -> str:
    """A section's checks: statement (anchor of the check), status, decisive figure; details in small print."""
    rows = [(_check_cell(c, anchor=True), status_badge(c["status"]), esc(_figure_of(c))) for c in claims]
    return table(
        ["Check", "Status", "Decisive figure"], rows, raw_columns=(0, 1, 2), widths=_CLAIM_WIDTHS, css_class="sp-claims"
    )


def section_lead(claims: Sequence[dict[str, Any]], section: str = "") -> str:
    """One sentence that says what the section established."""
    if not claims:
        # summary.json adds "<section>.evidence" for a section that recorded nothing: this is its anchor.
        return f"<p class='sp-lead' id='{claim_anchor(section + '.evidence')}'>This section recorded no check.</p>"
    required = [c for c in claims if c.get("required", True)]
    passed = sum(1 for c in required if c["status"] == "PASS")
    not_passed = [c for c in required if c["status"] != "PASS"]
    text = f"{passed} of {len(required)} deciding check(s) passed"
    if not_passed:
        text += "; not passed: " + "; ".join(f"{c['statement']} ({c['status']})" for c in not_passed[:4])
        if len(not_passed) > 4:
            text += f"; and {len(not_passed) - 4} more"
    informative = len(claims) - len(required)
    if informative:
        text += f". {informative} informative check(s) shown, not deciding"
    return f"<p class='sp-lead'>{esc(text, 1200)}.</p>"


def section_heading_html(
    section: str, status: str, duration_s: float | None, error: str | None, *, skipped: bool = False
) -> str:
    title = SECTION_TITLES.get(section, section)
    anchor = section_anchor(section)
    if skipped:  # a switched-off section takes a line, not a page
        return (
            f'<h3 id="{anchor}"><span id="{claim_anchor(section + ".evidence")}">{esc(title)}: not checked</span></h3>'
        )
    took = f" in {duration_s:.1f} s" if duration_s else ""
    # The anchor of the check summary.json adds for a crashed section (see _summary.section_claims).
    err = (
        f'<p class="sp-warning" id="{claim_anchor(section + ".ran")}">The section did not complete: '
        f'<span class="sp-mono">{esc(error)}</span></p>'
        if error
        else ""
    )
    return (
        f'<div class="sp-section"><h2 id="{anchor}">{esc(title)} {status_badge(status)}</h2>'
        f'<p class="sp-took"><small>Section ran{esc(took)}.</small></p>{err}</div>'
    )


def warnings_html(warnings: Sequence[dict[str, Any]]) -> str:
    if not warnings:
        return (
            '<h2 id="sp-findings">Evidence warnings</h2><p>No evidence warning was raised by the honesty checks '
            "(listed in the appendix).</p>"
        )
    items = "".join(
        f'<div class="sp-warning"><b>{esc(w["kind"])}</b>: {esc(w["message"])} '
        f"<small>({esc(w['evidence']['section'])}: {evidence_link(w['evidence'])})</small></div>"
        for w in warnings
    )
    return f'<h2 id="sp-findings">Evidence warnings ({len(warnings)})</h2>{items}'


_CLAIM_REASON = re.compile(r"^(\S+) \((INCONCLUSIVE|ERROR)\): ")


def not_checked_html(not_checked: Sequence[dict[str, Any]]) -> str:
    if not not_checked:
        return "<h2>What was not checked</h2><p>Every section ran and every check had data.</p>"
    rows = []
    for n in not_checked:
        reason = str(n.get("reason", ""))
        found = _CLAIM_REASON.match(reason)
        if found:  # an open check: link to it, its statistic is on its section page already
            cell = f'<a href="#{claim_anchor(found.group(1))}">{breakable(found.group(1), 300)}</a> ({esc(found.group(2))})'
        else:
            cell = esc(reason)
        rows.append((esc(SECTION_TITLES.get(n["section"], n["section"])), cell))
    return "<h2>What was not checked</h2>" + table(["Section", "Why"], rows, raw_columns=(0, 1), widths=(30, 70))


def recommendations(summary: dict[str, Any]) -> list[str]:
    """Derived from the findings: each failing, errored or open required check, and each warning."""
    out: list[str] = []
    for c in summary.get("claims", []):
        hint = c.get("details", {}).get("recommendation")
        figure = _figure_of(c)  # the short figure: the full statistic is on the check's section page
        if c["status"] == "FAIL":
            out.append(hint or f"Do not ship until this is fixed: {c['statement']} failed ({figure}).")
        elif c["status"] == "ERROR":
            out.append(f"Repair the measurement: {c['statement']} could not be established ({figure}).")
        elif c["status"] == "INCONCLUSIVE" and c.get("required", True):
            out.append(hint or f"Collect more evidence for: {c['statement']} ({figure}).")
    for w in summary.get("warnings", []):
        out.append(f"Review the evidence behind a warning ({w['kind']}): {w['message']}")
    if not out and summary.get("verdict") == "PASS":
        out.append("No action required by this evidence. Keep this run as the baseline for the next change.")
    return out


def recommendations_html(summary: dict[str, Any]) -> str:
    items = "".join(f"<li>{esc(r)}</li>" for r in recommendations(summary))
    return f"<h2>Recommendations</h2><ol>{items}</ol>"


_PARAM_VALUE_CHARS = 600


def params_rows(redacted_params: dict[str, Any]) -> list[tuple[str, str]]:
    """Params as (key, value) rows two levels deep, each value in compact one-line YAML.

    The redacted params go in; nothing here looks at values, so a redacted "***" stays "***".
    """
    rows: list[tuple[str, str]] = []

    def flow(value: Any) -> str:
        text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip()
        text = text[:-4].strip() if text.endswith("\n...") else text.removesuffix("...").strip()
        if len(text) > _PARAM_VALUE_CHARS:
            text = text[: _PARAM_VALUE_CHARS - 1] + "… (in full in params.yaml)"
        return text

    for key, value in (redacted_params or {}).items():
        if isinstance(value, dict) and value:
            for sub, inner in value.items():
                rows.append((f"{key}.{sub}", flow(inner)))
        else:
            rows.append((str(key), flow(value)))
    return rows


def appendix_html(
    redacted_params: dict[str, Any],
    versions: dict[str, str],
    commands: Sequence[str],
    rules: Sequence[tuple[str, str]],
) -> str:
    params = "".join(
        f'<tr><th><span class="sp-id">{breakable(k, 200)}</span></th><td><code class="sp-id">{breakable(v)}</code></td></tr>'
        for k, v in params_rows(redacted_params)
    )
    versions_text = " · ".join(f"{name} {version}" for name, version in sorted(versions.items()))
    return (
        '<div class="sp-section"><h2 id="sp-appendix">Appendix</h2>'
        "<h3>Params (secrets redacted: ${NAME} references are shown, never their values; "
        'the file: <a class="sp-id" href="params.yaml">params.yaml</a>)</h3>'
        '<table class="sp-fixed sp-params"><colgroup><col style="width:24%"><col></colgroup>'
        f"<tbody>{params or '<tr><td colspan=2><em>none</em></td></tr>'}</tbody></table>"
        "<h3>Statistical and verdict rules</h3>"
        + table(["Rule", "Definition"], rules, widths=(20, 80), css_class="sp-rules")
        + "<h3>Commands run</h3>"
        + (
            "".join(f'<div class="sp-id sp-command">{breakable(c, 5_000)}</div>' for c in commands[:200])
            if commands
            else "<p>none</p>"
        )
        + f'<h3>Package versions</h3><p class="sp-versions">{esc(versions_text)}</p>'
        + "</div>"
    )
