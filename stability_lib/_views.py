"""What a section shows: its claims, tables and charts, in a notebook and in the report.

Each view takes a SectionResult and returns a list of displayable parts: HTML
strings (already escaped) and matplotlib figures. ``show`` displays them.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from ._models import SectionResult
from ._report import claims_table_html, esc, json_block, section_heading_html, table

__all__ = ["section_parts", "show", "register_view"]

Part = Any  # str (HTML) or matplotlib Figure
View = Callable[[SectionResult], list[Part]]
_VIEWS: dict[str, View] = {}


def register_view(section: str) -> Callable[[View], View]:
    def deco(fn: View) -> View:
        _VIEWS[section] = fn
        return fn

    return deco


def section_parts(result: SectionResult, *, heading: bool = True) -> list[Part]:
    parts: list[Part] = []
    if heading:
        skipped = bool(result.data.get("skipped"))
        parts.append(section_heading_html(result.section, result.status.value, result.duration_s, result.error, skipped=skipped))
    if result.data.get("skipped"):
        parts.append(f"<p>Reason: {esc(result.data.get('reason', 'skipped'))}.</p>")
        return parts
    if result.claims:
        parts.append(claims_table_html(c.serialize() for c in result.claims))
    view = _VIEWS.get(result.section)
    if view is not None and result.data:
        try:
            parts += view(result)
        except Exception as exc:  # a broken chart must not hide the claims
            parts.append(f'<p class="sp-warning">This section\'s charts could not be drawn: {esc(exc)}</p>')
    return parts


def show(result: SectionResult, *, heading: bool = True) -> None:
    import matplotlib.pyplot as plt
    from IPython.display import HTML, display

    for part in section_parts(result, heading=heading):
        if isinstance(part, str):
            display(HTML(part))
        else:
            display(part)
            plt.close(part)


def _fmt_ms(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "–"


@register_view("health")
def _health_view(result: SectionResult) -> list[Part]:
    samples = result.data.get("samples", [])
    by_path: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        by_path.setdefault(s["path"], []).append(s)
    rows = []
    for path, items in by_path.items():
        lat = [s["latency_ms"] for s in items if s["latency_ms"] is not None]
        statuses = sorted({str(s["status"]) for s in items})
        errors = sorted({s["error"] for s in items if s["error"]})
        rows.append(
            (path, len(items), ", ".join(statuses), _fmt_ms(lat), f"{max(lat):.1f}" if lat else "–", "; ".join(errors)[:300])
        )
    parts: list[Part] = [
        "<h3>HTTP endpoints</h3>"
        + table(["Path", "Requests", "Status codes", "Median ms", "Max ms", "Errors"], rows)
    ]
    ws = result.data.get("websocket")
    if ws:
        parts.append("<h3>WebSocket echo</h3>" + table(list(ws.keys()), [list(ws.values())]))
    return parts


def raw_data_part(result: SectionResult, limit: int = 3000) -> str:
    return "<details><summary>Raw evidence (excerpt)</summary>" + json_block(result.data, limit) + "</details>"


@register_view("suites")
def _suites_view(result: SectionResult) -> list[Part]:
    cats = result.data.get("categories", [])
    rows = []
    for c in cats:
        n = c.get("counts", {})
        rows.append((c["name"], c["status"], n.get("passed", 0), n.get("failed", 0), n.get("errors", 0),
                     n.get("skipped", 0), n.get("flaky", 0), f"{c.get('duration_s', 0):.1f} s", c.get("exit_code")))
    parts: list[Part] = [
        "<h3>Categories</h3>"
        + table(["Category", "Status", "Passed", "Failed", "Errors", "Skipped", "Flaky", "Duration", "Exit"], rows)
    ]
    failures = [(c["name"], f.get("id") or f.get("name"), f.get("outcome"), f.get("message", ""))
                for c in cats for f in c.get("failures", []) + c.get("flaky", [])]
    if failures:
        parts.append("<h3>Failures (message excerpts)</h3>" + table(["Category", "Test", "Outcome", "Message"], failures[:50]))
    slow = sorted(((c["name"], s.get("id") or s.get("name"), s.get("time_s", 0.0)) for c in cats for s in c.get("slowest", [])),
                  key=lambda r: -(r[2] or 0))[:10]
    if slow:
        parts.append("<h3>Slowest tests</h3>" + table(["Category", "Test", "Seconds"], [(a, b, f"{t:.3f}") for a, b, t in slow]))
    diffs = [(c["name"], d["counts"]["newly_failing"], d["counts"]["newly_passing"], d["counts"]["added"], d["counts"]["removed"],
              ", ".join(d["newly_failing"][:5])) for c in cats if (d := c.get("baseline"))]
    if diffs:
        parts.append("<h3>Against the baseline run</h3>"
                     + table(["Category", "Newly failing", "Newly passing", "Added", "Removed", "First newly failing"], diffs))
    cov = [(c["name"], c["coverage"].get("statistic", "")) for c in cats if c.get("coverage")]
    if cov:
        parts.append("<h3>Coverage</h3>" + table(["Category", "Coverage"], cov))
    warns = [(c["name"], w) for c in cats for w in c.get("warnings", [])]
    if warns:
        parts.append("<h3>Runner warnings</h3>" + table(["Category", "Warning"], warns))
    return parts
