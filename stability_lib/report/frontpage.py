"""Page 1 of the report: can we ship? (pure: summary.json + run.json data in, escaped HTML out).

A release manager reads this page only. It says, in this order: the verdict and why; what was
tested against what; what failed or could not be decided (first, in full); what was proven, each
with its one decisive figure; what was not checked; and a grid of every check by section, each
square a link to the check on its section page.

The figures are composed from each claim's structured ``figure`` (see ``Figure`` in _models);
a claim from older evidence without one shows the head of its statistic string instead.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .figures import _num, _pct, figure_text, short_figure
from .render import NO_LIVE_TARGET, SECTION_TITLES, breakable, claim_anchor, esc, section_anchor, status_badge

__all__ = [
    "FrontItem",
    "front_items",
    "front_page_html",
    "show_front_page",
    "NOT_DECIDED",
]

NOT_DECIDED = ("FAIL", "ERROR", "INCONCLUSIVE")
_STATUS_ORDER = {"FAIL": 0, "ERROR": 1, "INCONCLUSIVE": 2, "PASS": 3}


@dataclass(frozen=True)
class FrontItem:
    """One line of page 1: a plain statement, its status, its decisive figure, the check it links to."""

    statement: str
    status: str
    figure: str
    section: str
    claim_id: str


def _ratio_line(section: str, claims: list[dict[str, Any]]) -> FrontItem:
    """Several passing ratio checks read as one line: the worst of them decides how close it was."""

    def worst_key(c: dict[str, Any]) -> float:
        f = c["figure"]
        return f.get("high") if _num(f.get("high")) else (f.get("value") if _num(f.get("value")) else -math.inf)

    worst = max(claims, key=worst_key)
    tol = worst["figure"].get("tolerance")
    limit = f" beyond {_pct(tol)}" if _num(tol) else ""
    op = _operation_name(worst)
    return FrontItem(
        statement=f"No slowdown{limit} in {len(claims)} judged operations",
        status="PASS",
        figure=f"slowest: {op} {figure_text(worst['figure'])}",
        section=section,
        claim_id=worst["id"],
    )


_FOLD_AT = 4  # this many passing checks of one section without a structured figure read as one line


def _folded_line(section: str, claims: list[dict[str, Any]], *, all_passed: bool) -> FrontItem:
    """Many like checks (one per test category, say) as one line: each one's name and the head of its statistic."""
    title = SECTION_TITLES.get(section, section)
    heads = "; ".join(f"{_operation_name(c)}: {', '.join(str(c.get('statistic', '')).split(', ')[:2])}" for c in claims)
    return FrontItem(
        statement=f"{'All ' if all_passed else ''}{len(claims)} checks of '{title}' pass",
        status="PASS",
        figure=heads,
        section=section,
        claim_id=claims[0]["id"],
    )


def _fold_clean_counts(section: str, claims: list[dict[str, Any]], into: list[FrontItem]) -> list[dict[str, Any]]:
    """Passing checks that each counted 0 of the same thing (requests not as expected, say) read as one
    line with the total; returns the claims left to list one by one."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for c in claims:
        fig = c.get("figure") or {}
        if (
            fig.get("kind") in ("count", "rate")
            and fig.get("k") == 0
            and isinstance(fig.get("n"), int)
            and fig.get("baseline_k") is None
            and fig.get("what")
        ):
            groups.setdefault(str(fig["what"]), []).append(c)
    folded = {id(c) for group in groups.values() if len(group) > 2 for c in group}
    for what, group in groups.items():
        if len(group) > 2:
            total = sum(c["figure"]["n"] for c in group)
            into.append(
                FrontItem(
                    "; ".join(c["statement"] for c in group), "PASS", f"0 of {total} {what}", section, group[0]["id"]
                )
            )
    return [c for c in claims if id(c) not in folded]


def _operation_name(claim: dict[str, Any]) -> str:
    prefix = f"{claim['section']}."
    return claim["id"][len(prefix) :] if claim["id"].startswith(prefix) else claim["id"]


def front_items(summary: dict[str, Any]) -> tuple[list[FrontItem], list[FrontItem], list[FrontItem]]:
    """(not decided, proven, informative not passed), from required and informative claims.

    Every required claim that is not PASS is listed on its own; passing ratio checks of one
    section fold into one line with the slowest operation's figure.
    """
    claims = summary.get("claims", [])
    required = [c for c in claims if c.get("required", True)]
    open_items = [
        FrontItem(c["statement"], c["status"], short_figure(c), c["section"], c["id"])
        for c in sorted(required, key=lambda c: _STATUS_ORDER.get(c["status"], 1))
        if c["status"] != "PASS"
    ]
    proven: list[FrontItem] = []
    by_section: dict[str, list[dict[str, Any]]] = {}
    for c in required:
        if c["status"] == "PASS":
            by_section.setdefault(c["section"], []).append(c)
    for section, passed in by_section.items():
        ratios = [c for c in passed if (c.get("figure") or {}).get("kind") == "ratio"]
        if len(ratios) > 1:
            proven.append(_ratio_line(section, ratios))
        rest = [c for c in passed if not (len(ratios) > 1 and c in ratios)]
        rest = _fold_clean_counts(section, rest, proven)
        bare = [c for c in rest if not c.get("figure")]
        if len(bare) >= _FOLD_AT:
            proven.append(
                _folded_line(
                    section, bare, all_passed=len(passed) == sum(1 for c in required if c["section"] == section)
                )
            )
            rest = [c for c in rest if c.get("figure")]
        proven += [FrontItem(c["statement"], "PASS", short_figure(c), section, c["id"]) for c in rest]
    informative = [
        FrontItem(c["statement"], c["status"], short_figure(c), c["section"], c["id"])
        for c in claims
        if not c.get("required", True) and c["status"] != "PASS"
    ]
    return open_items, proven, informative


def _item_html(item: FrontItem, *, badge: bool, name_section: bool = False) -> str:
    figure = f' <span class="sp-fig">— {esc(item.figure)}</span>' if item.figure else ""
    mark = status_badge(item.status) + " " if badge else ""
    where = f"{SECTION_TITLES.get(item.section, item.section)}: " if name_section else ""
    return f'<li>{mark}{esc(where)}<a href="#{claim_anchor(item.claim_id)}">{esc(item.statement)}</a>{figure}</li>'


def _items_html(items: Sequence[FrontItem], *, badge: bool) -> str:
    """The list's lines; a statement that several sections make (teardown, leftovers) names its section."""
    seen = Counter(i.statement for i in items)
    return "".join(_item_html(i, badge=badge, name_section=seen[i.statement] > 1) for i in items)


def _banner_reason(reason: str) -> str:
    """The verdict's reason without its list of check ids: page 1 lists those checks in full below."""
    return re.sub(r"(check\(s\) (?:failed|not passed)): [^;]*$", r"\1 (listed below)", reason)


def _facts(
    summary: dict[str, Any], meta: dict[str, Any], fingerprint: dict[str, Any] | None, baseline_source: str
) -> str:
    targets = summary.get("targets") or meta.get("targets") or {}
    labels = meta.get("target_labels") or {}
    candidate_label = labels.get("candidate")
    label_commit = candidate_label.get("commit") if isinstance(candidate_label, dict) else None
    commit = meta.get("commit") or (fingerprint or {}).get("commit") or label_commit
    version = meta.get("candidate_version") or meta.get("version")
    baseline = _labelled(labels.get("baseline"), "baseline", targets.get("baseline") or "")
    if baseline_source:
        baseline = f"{baseline} ({baseline_source})" if baseline else baseline_source
    candidate = _labelled(labels.get("candidate"), "candidate", targets.get("candidate") or NO_LIVE_TARGET)
    rows = [
        ("Change", summary.get("description") or summary.get("title", "")),  # the title is the page's heading
        ("Candidate", candidate),
        ("Against", baseline or "no baseline (checks against fixed limits only)"),
        ("Commit", commit or "not recorded"),
        ("Version", version or ""),
        (
            "Run",
            f"{summary.get('run_id', '')} · {summary.get('environment', '')} · {summary.get('started_at', '')}"
            f" · stability-proof {summary.get('tool_version', '')}",
        ),
    ]
    body = "".join(
        f"<tr><th>{esc(k)}</th><td>{breakable(v) if k in ('Candidate', 'Against') else esc(v)}</td></tr>"
        for k, v in rows
        if v
    )
    return f'<table class="sp-facts"><colgroup><col style="width:6.5em"><col></colgroup><tbody>{body}</tbody></table>'


def _labelled(label: Any, default_name: str, where: str) -> str:
    """``v2.3.1 · commit 3f2a9c1 · https://...``: the side's name (when params gave one of its own), its
    commit (the candidate's is on its own row), then where it was reached."""
    label = label if isinstance(label, dict) else {}
    name = str(label.get("name") or "")
    parts = [name] if name and name != default_name else []
    if default_name == "baseline" and label.get("commit"):
        parts.append(f"commit {label['commit']}")
    return " · ".join([*parts, where]) if where else " · ".join(parts)


def _grid(summary: dict[str, Any]) -> str:
    claims = summary.get("claims", [])
    order = [s["section"] for s in summary.get("sections", [])]
    order += [c["section"] for c in claims if c["section"] not in order]
    rows = []
    for section in dict.fromkeys(order):
        mine = [c for c in claims if c["section"] == section]
        if not mine:
            continue
        status = next((s["status"] for s in summary.get("sections", []) if s["section"] == section), None)
        counts = {s: sum(1 for c in mine if c["status"] == s) for s in ("PASS", "FAIL", "INCONCLUSIVE", "ERROR")}
        squares = "".join(
            f'<a class="sp-sq sp-{c["status"] if c["status"] in _STATUS_ORDER else "ERROR"}'
            f'{"" if c.get("required", True) else " sp-info"}" href="#{claim_anchor(c["id"])}" '
            f'title="{esc(c["statement"])}: {esc(c["status"])}"></a>'
            for c in sorted(mine, key=lambda c: _STATUS_ORDER.get(c["status"], 1))
        )
        count_cells = "".join(
            f'<td class="sp-n{" sp-" + s if counts[s] else ""}">{counts[s] or "·"}</td>' for s in counts
        )
        rows.append(
            f'<tr><th><a href="#{section_anchor(section)}">{esc(SECTION_TITLES.get(section, section))}</a></th>'
            f"<td>{status_badge(status or 'ERROR')}</td>{count_cells}<td>{squares}</td></tr>"
        )
    head = (
        "<thead><tr><th>Section</th><th>Status</th><th>Pass</th><th>Fail</th><th>Open</th><th>Error</th>"
        "<th>Checks (hollow: informative)</th></tr></thead>"
    )
    cols = (
        '<colgroup><col style="width:35%"><col style="width:10.5em"><col style="width:3.6em">'
        '<col style="width:3.6em"><col style="width:3.8em"><col style="width:3.8em"><col></colgroup>'
    )
    return f'<table class="sp-grid">{cols}{head}<tbody>{"".join(rows)}</tbody></table>'


def _toc(summary: dict[str, Any]) -> str:
    sections = [s["section"] for s in summary.get("sections", []) if not s.get("skipped")]
    links = [f'<a href="#{section_anchor(s)}">{esc(SECTION_TITLES.get(s, s))}</a>' for s in sections]
    links += ['<a href="#sp-findings">Findings</a>', '<a href="#sp-appendix">Appendix</a>']
    return f'<nav class="sp-toc"><b>Contents</b>: {" · ".join(links)}</nav>'


def front_page_html(
    summary: dict[str, Any],
    meta: dict[str, Any] | None = None,
    fingerprint: dict[str, Any] | None = None,
    *,
    baseline_source: str = "",
) -> str:
    """Page 1: verdict, what was tested against what, not decided (first), proven, not checked, grid."""
    meta = meta or {}
    verdict = summary.get("verdict", "ERROR")
    verdict_class = verdict if verdict in _STATUS_ORDER else "ERROR"
    counts = summary.get("required_counts", {})
    count_text = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "none"
    open_items, proven, informative = front_items(summary)
    warnings = summary.get("warnings", [])
    parts = [
        f'<div class="sp-front"><h1>Stability proof: {esc(summary.get("title", ""))}</h1>',
        _toc(summary),
        f'<div class="sp-banner sp-{verdict_class}"><span class="sp-verdict">Verdict: {esc(verdict)}</span>'
        f"<small>{esc(_banner_reason(str(summary.get('verdict_reason', ''))))}. Required checks: {esc(count_text)}."
        f" Evidence warnings: {len(warnings)}.</small></div>",
        _facts(summary, meta, fingerprint, baseline_source),
    ]
    if open_items:
        parts.append(
            f"<h2>Failed or not decided ({len(open_items)})</h2><ul class='sp-list'>"
            + _items_html(open_items, badge=True)
            + "</ul>"
        )
    if warnings:
        parts.append(
            "<p class='sp-warning'>"
            + esc(f"{len(warnings)} evidence warning(s): ")
            + "; ".join(esc(w.get("message", ""), 160) for w in warnings[:3])
            + (" …" if len(warnings) > 3 else "")
            + ' (<a href="#sp-findings">Findings</a>)</p>'
        )
    n_required = sum(1 for c in summary.get("claims", []) if c.get("required", True))
    n_passed = counts.get("PASS", 0)
    if proven:
        parts.append(
            f"<h2>Proven ({n_passed} of {n_required} required checks)</h2><ul class='sp-list sp-proven'>"
            + _items_html(proven, badge=False)
            + "</ul>"
        )
    else:
        parts.append("<h2>Proven</h2><p>Nothing: no required check passed.</p>")
    not_checked = [
        n
        for n in summary.get("not_checked", [])
        if not re.match(r"^\S+ \((INCONCLUSIVE|ERROR)\):", str(n.get("reason", "")))
    ]
    notes = [f"{SECTION_TITLES.get(n['section'], n['section'])}: {n.get('reason', '')}" for n in not_checked]
    if informative:
        where = ", ".join(
            f"{SECTION_TITLES.get(s, s)}: {n}" for s, n in Counter(i.section for i in informative).items()
        )
        notes.append(f"{len(informative)} informative check(s) did not pass; they do not decide ({where})")
    parts.append(
        "<h2>Not checked</h2>"
        + (
            "<ul class='sp-list'>" + "".join(f"<li>{esc(n, 400)}</li>" for n in notes) + "</ul>"
            if notes
            else "<p>Every enabled section ran; nothing was switched off.</p>"
        )
    )
    parts.append("<h2>All checks at a glance</h2>" + _grid(summary) + "</div>")
    return "".join(parts)


def show_front_page(report: Any) -> None:
    """Display page 1 in the report notebook (the thin shell: reads fingerprint.json if present)."""
    import json

    from IPython.display import HTML, display

    run_dir = Path(report.run_dir)
    fingerprint = None
    try:
        fingerprint = json.loads((run_dir / "fingerprint.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        fingerprint = None
    perf = getattr(report, "evidence", {}).get("performance")
    source = str(perf.data.get("baseline_source", "")) if perf is not None and isinstance(perf.data, dict) else ""
    display(HTML(front_page_html(report.summary, report.meta, fingerprint, baseline_source=source)))
