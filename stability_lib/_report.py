"""HTML fragments of the report (pure: data in, escaped HTML out).

Everything that comes from the target or from test output passes through
``esc`` before it reaches the page; the exported HTML also carries a CSP that
forbids scripts, so an escaped payload stays inert twice over.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from typing import Any

import yaml

from ._models import Status

__all__ = [
    "esc",
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


def esc(value: Any, limit: int = MAX_CELL_CHARS) -> str:
    text = "" if value is None else str(value)
    if len(text) > limit:
        text = text[:limit] + f"… [{len(text) - limit} more characters]"
    return html.escape(text, quote=True)


def status_badge(status: str | Status) -> str:
    value = status.value if isinstance(status, Status) else str(status)
    safe = value if value in Status.__members__ else "ERROR"
    return f'<span class="sp-status sp-{safe}">{esc(value)}</span>'


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    raw_columns: Iterable[int] = (),
    widths: Sequence[int] | None = None,
) -> str:
    """An HTML table; cells are escaped except the columns named in raw_columns (our own markup).
    ``widths`` are column widths in percent."""
    raw = set(raw_columns)
    cols = "<colgroup>" + "".join(f'<col style="width:{w}%">' for w in widths) + "</colgroup>" if widths else ""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(f"<td>{cell if i in raw else esc(cell)}</td>" for i, cell in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headers)}"><em>nothing recorded</em></td></tr>')
    return f"<table>{cols}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def header_html(summary: dict[str, Any]) -> str:
    targets = summary.get("targets", {})
    rows = [
        ("Change under test", summary.get("title", "")),
        ("Environment", summary.get("environment", "")),
        ("Candidate target", targets.get("candidate", "")),
        ("Baseline target", targets.get("baseline", "none (no live baseline)")),
        ("Date (UTC)", summary.get("started_at", "")),
        ("Tool", f"stability-proof {summary.get('tool_version', '')}"),
        ("Run id", summary.get("run_id", "")),
    ]
    meta = "".join(f"<tr><td><b>{esc(k)}</b></td><td>{esc(v)}</td></tr>" for k, v in rows)
    desc = f"<p>{esc(summary['description'])}</p>" if summary.get("description") else ""
    return f"<h1>Stability proof: {esc(summary.get('title', ''))}</h1>{desc}<table class='sp-meta'>{meta}</table>"


def banner_html(summary: dict[str, Any]) -> str:
    verdict = summary.get("verdict", "ERROR")
    counts = summary.get("required_counts", {})
    count_text = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return (
        f'<div class="sp-banner sp-status sp-{esc(verdict)}">Verdict: {esc(verdict)}'
        f"<small>{esc(summary.get('verdict_reason', ''))}. Required checks: {esc(count_text or 'none')}."
        f" Warnings: {len(summary.get('warnings', []))}.</small></div>"
    )


def summary_table_html(summary: dict[str, Any]) -> str:
    def rows(required: bool) -> list[tuple[str, ...]]:
        return [
            (
                SECTION_TITLES.get(c["section"], c["section"]),
                c["statement"],
                status_badge(c["status"]),
                c.get("statistic", ""),
                ", ".join(e["file"] for e in c.get("evidence", [])),
            )
            for c in summary.get("claims", [])
            if bool(c.get("required", True)) is required
        ]

    headers = ["Category", "Check", "Status", "Statistic", "Evidence"]
    widths = (13, 24, 11, 40, 12)
    out = "<h2>Summary: checks that decide the verdict</h2>" + table(headers, rows(True), raw_columns=(2,), widths=widths)
    informative = rows(False)
    if informative:
        out += "<h3>Informative checks (reported, not deciding)</h3>" + table(
            headers, informative, raw_columns=(2,), widths=widths
        )
    return out


def claims_table_html(claims: Iterable[dict[str, Any]]) -> str:
    rows = [
        (c["id"], c["statement"], status_badge(c["status"]), c.get("statistic", ""), "yes" if c.get("required", True) else "no")
        for c in claims
    ]
    return table(["Check id", "Claim", "Status", "Statistic", "Required"], rows, raw_columns=(2,), widths=(17, 22, 11, 43, 7))


def section_heading_html(
    section: str, status: str, duration_s: float | None, error: str | None, *, skipped: bool = False
) -> str:
    title = SECTION_TITLES.get(section, section)
    if skipped:  # a switched-off section takes a line, not a page
        return f"<h3>{esc(title)}: not checked</h3>"
    took = f" in {duration_s:.1f} s" if duration_s else ""
    err = f'<p class="sp-warning">The section did not complete: <span class="sp-mono">{esc(error)}</span></p>' if error else ""
    return f'<div class="sp-section"><h2>{esc(title)} {status_badge(status)}</h2><p><small>Section ran{esc(took)}.</small></p>{err}</div>'


def warnings_html(warnings: Sequence[dict[str, Any]]) -> str:
    if not warnings:
        return "<h2>Evidence warnings</h2><p>No evidence warning was raised by the honesty checks (listed in the appendix).</p>"
    items = "".join(
        f'<div class="sp-warning"><b>{esc(w["kind"])}</b>: {esc(w["message"])} '
        f'<small>({esc(w["evidence"]["section"])}: {esc(w["evidence"]["file"])})</small></div>'
        for w in warnings
    )
    return f"<h2>Evidence warnings ({len(warnings)})</h2>{items}"


def not_checked_html(not_checked: Sequence[dict[str, Any]]) -> str:
    if not not_checked:
        return "<h2>What was not checked</h2><p>Every section ran and every check had data.</p>"
    rows = [(SECTION_TITLES.get(n["section"], n["section"]), n["reason"]) for n in not_checked]
    return "<h2>What was not checked</h2>" + table(["Section", "Why"], rows)


def recommendations(summary: dict[str, Any]) -> list[str]:
    """Derived from the findings: each failing, errored or open required check, and each warning."""
    out: list[str] = []
    for c in summary.get("claims", []):
        hint = c.get("details", {}).get("recommendation")
        if c["status"] == "FAIL":
            out.append(hint or f"Do not ship until this is fixed: {c['statement']} failed ({c.get('statistic', '')}).")
        elif c["status"] == "ERROR":
            out.append(f"Repair the measurement: {c['statement']} could not be established ({c.get('statistic', '')}).")
        elif c["status"] == "INCONCLUSIVE" and c.get("required", True):
            out.append(hint or f"Collect more evidence for: {c['statement']} ({c.get('statistic', '')}).")
    for w in summary.get("warnings", []):
        out.append(f"Review the evidence behind a warning ({w['kind']}): {w['message']}")
    if not out and summary.get("verdict") == "PASS":
        out.append("No action required by this evidence. Keep this run as the baseline for the next change.")
    return out


def recommendations_html(summary: dict[str, Any]) -> str:
    items = "".join(f"<li>{esc(r)}</li>" for r in recommendations(summary))
    return f"<h2>Recommendations</h2><ol>{items}</ol>"


def appendix_html(
    redacted_params: dict[str, Any],
    versions: dict[str, str],
    commands: Sequence[str],
    rules: Sequence[tuple[str, str]],
) -> str:
    params_text = yaml.safe_dump(redacted_params, sort_keys=False, width=100)
    version_rows = sorted(versions.items())
    return (
        '<div class="sp-section"><h2>Appendix</h2>'
        "<h3>Params (secrets redacted: ${NAME} references are shown, never their values)</h3>"
        f'<pre class="sp-mono">{esc(params_text, 100_000)}</pre>'
        "<h3>Statistical and verdict rules</h3>"
        + table(["Rule", "Definition"], rules)
        + "<h3>Commands run</h3>"
        + (f'<pre class="sp-mono">{esc(chr(10).join(commands), 50_000)}</pre>' if commands else "<p>none</p>")
        + "<h3>Package versions</h3>"
        + table(["Package", "Version"], version_rows)
        + "</div>"
    )
