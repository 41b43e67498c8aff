"""What a section shows: its claims, tables and charts, in a notebook and in the report.

Each view takes a SectionResult and returns a list of displayable parts: HTML
strings (already escaped) and charts: matplotlib figures, or their PNG (``ChartPNG``) when the charts
are kept in a run directory (``report.chart_cache``). ``show`` displays them. The charts themselves
are drawn by ``report.charts`` (its public names are re-exported here).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.models import SectionResult
from .chart_cache import chart_png, charts_kept_in, drawn
from .charts import (
    LOG_SPAN,
    _box_chart,
    _close_code_chart,
    _ecdf_chart,
    _forest_chart,
    _timeline_chart,
    axis_limits,
    axis_scale,
)
from .render import breakable, claims_table_html, esc, machine_text, section_heading_html, section_lead, table
from .sequential_view import sequential_parts

__all__ = ["section_parts", "show", "register_view", "LOG_SPAN", "axis_scale", "axis_limits"]

Part = Any  # str (HTML), matplotlib Figure or ChartPNG
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
        parts.append(
            section_heading_html(result.section, result.status.value, result.duration_s, result.error, skipped=skipped)
        )
    if result.data.get("skipped"):
        parts.append(f"<p>Reason: {esc(result.data.get('reason', 'skipped'))}.</p>")
        return parts
    claims = [c.serialize() for c in result.claims]
    parts.append(section_lead(claims, result.section))
    details: list[Part] = []
    view = _VIEWS.get(result.section)
    if view is not None and result.data:
        try:
            details = view(result)
        except Exception as exc:  # a broken table must not hide the claims
            details = [f'<p class="sp-warning">This section\'s details could not be shown: {esc(exc)}</p>']
    # A sentence, then the picture, then the checks, then the tables behind them.
    charts = [p for p in details if not isinstance(p, str)]
    parts += charts[:1]
    if claims:
        parts.append(claims_table_html(claims))
    parts += [p for p in details if p is not charts[0]] if charts else details
    return parts


def _chart(draw: Callable[..., Any], *args: Any) -> Part:
    """One chart; if it cannot be drawn, a line saying so instead of losing the section's tables."""
    try:
        return drawn(draw, *args)
    except Exception as exc:
        return f'<p class="sp-warning">A chart could not be drawn ({esc(draw.__name__)}): {esc(exc)}</p>'


def show(result: SectionResult, *, heading: bool = True, charts_dir: str | Path | None = None) -> None:
    """Display the section's parts. With ``charts_dir`` (a run's ``charts`` folder), each chart is
    kept there as PNG, or taken from there when the same chart of the same evidence was drawn before
    (the section notebook draws, the report reuses)."""
    from IPython.display import HTML, Image, display

    with charts_kept_in(charts_dir):
        parts = section_parts(result, heading=heading)
    for part in parts:
        if isinstance(part, str):
            display(HTML(part))
        else:
            display(Image(data=chart_png(part), format="png"))


def _fmt_ms(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "–"


@register_view("health")
def _health_view(result: SectionResult) -> list[Part]:
    samples = result.data.get("samples", [])
    # One row per configured endpoint (its index; older evidence: method and path), so the same path
    # checked twice (right and wrong token) or with GET and HEAD is not one row of mixed statuses.
    by_endpoint: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for s in samples:
        key = (s["endpoint_index"],) if s.get("endpoint_index") is not None else (s.get("method", "GET"), s["path"])
        by_endpoint.setdefault(key, []).append(s)
    per_path = Counter(items[0]["path"] for items in by_endpoint.values())
    rows = []
    for items in by_endpoint.values():
        first = items[0]
        path = first["path"]
        if per_path[path] > 1:  # named apart: method, and the endpoint's place in params
            where = f" (endpoints[{first['endpoint_index']}])" if first.get("endpoint_index") is not None else ""
            path = f"{first.get('method', 'GET')} {path}{where}"
        lat = [s["latency_ms"] for s in items if s["latency_ms"] is not None]
        statuses = sorted({str(s["status"]) for s in items})
        errors = sorted({s["error"] for s in items if s["error"]})
        rows.append(
            (
                path,
                len(items),
                ", ".join(statuses),
                _fmt_ms(lat),
                f"{max(lat):.1f}" if lat else "–",
                "; ".join(errors)[:300],
            )
        )
    parts: list[Part] = [
        "<h3>HTTP endpoints</h3>" + table(["Path", "Requests", "Status codes", "Median ms", "Max ms", "Errors"], rows)
    ]
    ws = result.data.get("websocket")
    if ws:
        # One row per field: a row of ten narrow columns cut its headers.
        parts.append("<h3>WebSocket echo</h3>" + table(["Field", "Value"], list(ws.items()), widths=(30, 70)))
    return parts


@register_view("suites")
def _suites_view(result: SectionResult) -> list[Part]:
    cats = result.data.get("categories", [])
    rows = []
    for c in cats:
        n = c.get("counts", {})
        rows.append(
            (
                c["name"],
                c["status"],
                n.get("passed", 0),
                n.get("failed", 0),
                n.get("errors", 0),
                n.get("skipped", 0),
                n.get("flaky", 0),
                f"{c.get('duration_s', 0):.1f} s",
                c.get("exit_code"),
            )
        )
    parts: list[Part] = [
        "<h3>Categories</h3>"
        + table(
            ["Category", "Status", "Passed", "Failed", "Errors", "Skipped", "Flaky", "Duration", "Exit"],
            rows,
            widths=(20, 14, 9, 9, 9, 9, 9, 12, 9),
            css_class="sp-numbers",
        )
    ]
    failures = [
        (
            breakable(c["name"]),
            breakable(f.get("id") or f.get("name")),
            breakable(f.get("outcome")),
            machine_text(f.get("message", "")),
        )
        for c in cats
        for f in c.get("failures", []) + c.get("flaky", [])
    ]
    if failures:
        parts.append(
            "<h3>Failures (message excerpts)</h3>"
            + table(
                ["Category", "Test", "Outcome", "Message"],
                failures[:50],
                raw_columns=(0, 1, 2, 3),
                widths=(12, 27, 12, 49),
            )
        )
    slow = sorted(
        ((c["name"], s.get("id") or s.get("name"), s.get("time_s", 0.0)) for c in cats for s in c.get("slowest", [])),
        key=lambda r: -(r[2] or 0),
    )[:10]
    if slow:
        parts.append(
            "<h3>Slowest tests</h3>"
            + table(["Category", "Test", "Seconds"], [(a, b, f"{t:.3f}") for a, b, t in slow], widths=(20, 66, 14))
        )
    diffs = [
        (
            c["name"],
            d["counts"]["newly_failing"],
            d["counts"]["newly_passing"],
            d["counts"]["added"],
            d["counts"]["removed"],
            ", ".join(d["newly_failing"][:5]),
        )
        for c in cats
        if (d := c.get("baseline"))
    ]
    if diffs:
        parts.append(
            "<h3>Against the baseline run</h3>"
            + table(["Category", "Newly failing", "Newly passing", "Added", "Removed", "First newly failing"], diffs)
        )
    cov = [(c["name"], c["coverage"].get("statistic", "")) for c in cats if c.get("coverage")]
    if cov:
        parts.append("<h3>Coverage</h3>" + table(["Category", "Coverage"], cov))
    warns = [(c["name"], w) for c in cats for w in c.get("warnings", [])]
    if warns:
        parts.append("<h3>Runner warnings</h3>" + table(["Category", "Warning"], warns))
    return parts


@register_view("websocket")
def _websocket_view(result: SectionResult) -> list[Part]:
    sides = {k: result.data[k] for k in ("baseline", "candidate") if k in result.data}
    parts: list[Part] = []
    rows = []
    for label, soak in sides.items():
        agg = soak["aggregate"]
        rows.append(
            (
                label,
                agg["sessions"],
                agg["connected"],
                agg["ok"],
                agg["crashes"],
                agg["failures"],
                ", ".join(f"{k}: {v}" for k, v in agg["outcome_labels"].items()),
            )
        )
    parts.append(
        "<h3>Sessions</h3>"
        + table(["Target", "Sessions", "Connected", "OK", "1011/1006", "Any failure", "Outcomes"], rows)
    )
    parts += _engine_parts(result.data.get("engine"))
    parts.append(_chart(_close_code_chart, {label: soak["aggregate"]["close_codes"] for label, soak in sides.items()}))
    if "candidate" in sides:
        parts.append(_chart(_timeline_chart, sides["candidate"]["aggregate"]["timeline"]))
        lat = sides["candidate"]["aggregate"]["latency_s"]
        lat_rows = [
            (k, v.get("n"), *(f"{(v.get(q) or 0) * 1e3:.2f}" for q in ("p50", "p95", "max"))) for k, v in lat.items()
        ]
        parts.append("<h3>Candidate session latency (ms)</h3>" + table(["Measure", "n", "p50", "p95", "max"], lat_rows))
    closes = [
        (r["session_id"], r["outcome"].get("label", ""), r["close_code"], r["close_reason"])
        for r in sides.get("candidate", {}).get("records", [])
        if r["outcome"].get("kind") != "ok"
    ][:20]
    if closes:
        parts.append(
            "<h3>Failed sessions (first 20; reasons as sent by the server)</h3>"
            + table(["Session", "Outcome", "Close code", "Reason"], closes)
        )
    parts += _conversation_soak_parts(result.data.get("conversation_soak"))
    parts += sequential_parts(result)
    return parts


def _conversation_soak_parts(soak: Any) -> list[Part]:
    """scenario.conversation_soak: messages by status, latency of correct replies, failure reasons."""
    if not isinstance(soak, dict):
        return []
    counts = soak.get("messages_by_status") or {}
    lat = [float(v) for v in soak.get("latency_ms_sample") or []]
    cuts = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) >= 2 else lat * 99
    quantiles = [f"{cuts[q - 1]:.2f}" if cuts else "" for q in (50, 90, 99)]
    rows = [
        (
            soak.get("sessions_planned"),
            soak.get("messages_planned"),
            *(counts.get(k, 0) for k in sorted(counts)),
            len(lat),
            *quantiles,
            f"{float(soak.get('duration_s') or 0):.1f}",
        )
    ]
    heads = ["Sessions", "Messages planned", *sorted(counts), "Latencies kept", "p50 ms", "p90 ms", "p99 ms", "Seconds"]
    parts: list[Part] = ["<h3>Conversation soak (many messages per session)</h3>" + table(heads, rows)]
    reasons = sorted((soak.get("failure_reasons") or {}).items(), key=lambda kv: -kv[1])[:20]
    if reasons:
        parts.append("<h3>Conversation soak: why messages failed</h3>" + table(["Reason", "Messages"], reasons))
    return parts


def _engine_parts(engine: Any) -> list[Part]:
    """Which engine ran the soak or the golden path: Locust with its workers and achieved rate (nothing for
    our own engine). The soak counts sessions; the golden path counts golden runs and the users it lost."""
    if not isinstance(engine, dict) or engine.get("engine") != "locust":
        return []
    sides = [(side, e) for side, e in (engine.get("sides") or {}).items() if isinstance(e, dict)]
    golden = any("runs_seen" in e for _, e in sides)
    unit, lost = ("Golden runs", "users_lost") if golden else ("Sessions", "sessions_lost")
    rows = [
        (
            side,
            e.get("workers"),
            e.get("workers_seen"),
            e.get("runs_seen" if golden else "sessions_seen"),
            f"{float(e.get('rate_per_s') or 0):.1f}",
            e.get(lost),
            e.get("note") or "",
        )
        for side, e in sides
    ]
    headers = ["Target", "Workers", "Workers seen", f"{unit} seen", f"{unit} per second"]
    headers += ["Users lost" if golden else "Sessions lost", "Note"]
    return ["<h3>Engine: Locust</h3>" + table(headers, rows)]


@register_view("golden_path")
def _golden_view(result: SectionResult) -> list[Part]:
    durations = result.data.get("durations_ms", {})
    parts: list[Part] = _engine_parts(result.data.get("engine"))
    rows = [
        (op, len(v), f"{statistics.median(v):.2f}", f"{sorted(v)[int(0.95 * (len(v) - 1))]:.2f}", f"{max(v):.2f}")
        for op, v in sorted(durations.items())
        if v
    ]
    parts.append(
        "<h3>Step durations (ms, all users and repetitions)</h3>" + table(["Operation", "n", "p50", "p95", "max"], rows)
    )
    if durations:
        parts.append(_chart(_box_chart, durations, "Step latency distributions"))
    failed = [
        (breakable(r["user"]), r["repetition"], breakable(r["failed_step"]), machine_text(r["failure"]))
        for r in result.data.get("runs", [])
        if not r["ok"]
    ]
    if failed:
        parts.append(
            "<h3>Failed runs</h3>"
            + table(
                ["User", "Repetition", "Step", "Failure"],
                failed[:30],
                raw_columns=(0, 1, 2, 3),
                widths=(18, 10, 20, 52),
            )
        )
    return parts


@register_view("isolation")
def _isolation_view(result: SectionResult) -> list[Part]:
    iso = result.data.get("isolation", {})
    parts: list[Part] = [
        *_engine_parts(result.data.get("engine")),
        f"<p>{esc(iso.get('explanation', ''))}</p>",
        "<h3>Own data seen by each user</h3>"
        + table(["User", "Own nonces seen"], sorted(iso.get("own_seen", {}).items())),
    ]
    leaks = [
        (leak["viewer"], leak["owner"], leak["step"], leak["where"], leak["count"]) for leak in iso.get("leaks", [])
    ]
    if leaks:
        parts.append(
            "<h3>Leaks: a user saw another user's data</h3>"
            + table(["Viewer", "Owner", "Step", "Where", "Times"], leaks)
        )
    return parts


@register_view("performance")
def _performance_view(result: SectionResult) -> list[Part]:
    comparisons = result.data.get("comparisons", [])
    tolerance = result.data.get("tolerance", 0.1)
    external = result.data.get("external")
    if external:  # runs made elsewhere (Locust, k6): their files were judged
        from ..ingest.view_rows import EXTERNAL_TABLE_HEADERS, external_table_rows

        sides = {s: (external.get(s) or {}).get("source", "none") for s in ("candidate", "baseline")}
        return [
            f"<p>Ingested {esc(external.get('format', ''))} files: candidate {esc(sides['candidate'])}, "
            f"baseline {esc(sides['baseline'])}.</p>",
            "<h3>Requests per name</h3>"
            + table(
                EXTERNAL_TABLE_HEADERS,
                external_table_rows(external),
                widths=(18, 7, 10, 10, 11, 15, 13, 16),
                css_class="sp-numbers",
            ),
        ]
    parts: list[Part] = [f"<p>Baseline: {esc(result.data.get('baseline_source', 'none'))}.</p>"]
    if not comparisons:
        return parts
    parts.append(_chart(_forest_chart, comparisons, tolerance))
    rows = []
    for c in comparisons:
        r = c["median_ratio"]
        fmt = lambda x: "–" if x is None else f"{x:.2f}"  # noqa: E731
        rows.append(
            (
                c["operation"],
                "yes" if c.get("judged", True) else "no",
                f"{c['n_baseline']}/{c['n_candidate']}",
                fmt(c["median_baseline"]),
                fmt(c["median_candidate"]),
                f"{fmt(r['ratio'])} [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]",
                fmt(c["mannwhitney_p_two_sided"]),
                str(c["verdict"]).replace("_", " "),
                c.get("samples_needed") or "",
            )
        )
    parts.append(
        "<h3>Figures behind each verdict (ms)</h3>"
        + table(
            [
                "Operation",
                "Judged",
                "n (A/B)",
                "Median A",
                "Median B",
                "Ratio [CI]",
                "Mann-Whitney p",
                "Verdict",
                "Samples needed",
            ],
            rows,
            widths=(18, 8, 8, 8, 8, 14, 9, 15, 12),
            css_class="sp-numbers",
        )
    )
    judged = [c["operation"] for c in comparisons if c.get("judged", True)][:6]
    if judged:
        parts.append(_chart(_ecdf_chart, result.data.get("samples", {}), judged))
    parts += sequential_parts(result)
    return parts


def _changes_table(title: str, listing: dict[str, Any]) -> str:
    if not listing.get("ran"):
        return f"<h3>{esc(title)}</h3><p>Not compared.</p>"
    counts = listing.get("counts") or {}
    order = {"ERR": 0, "WARN": 1, "INFO": 2}
    changes = sorted(listing.get("changes", []), key=lambda c: order.get(c.get("level"), 3))
    rows = [
        (
            c.get("level"),
            c.get("rule"),
            f"{c.get('method') or ''} {c.get('path') or ''}".strip(),
            c.get("location", ""),
            c.get("message", ""),
        )
        for c in changes[:200]
    ]
    head = f"<h3>{esc(title)}: " + ", ".join(f"{n} {esc(k)}" for k, n in counts.items()) + "</h3>"
    return head + table(["Level", "Rule", "Operation", "Location", "Change"], rows, widths=(7, 18, 20, 20, 35))


@register_view("contract")
def _contract_view(result: SectionResult) -> list[Part]:
    data = result.data
    parts: list[Part] = []
    api = data.get("openapi", {})
    sources = []
    for side in ("baseline", "candidate"):
        spec = api.get(side) or {}
        notes = list(spec.get("notes") or [])  # e.g. the target's auth left behind at a redirect
        if spec.get("converted_from"):  # the diff's locations do not exist in the user's file as written
            notes.append(
                f"{spec['converted_from']}, compared in its OpenAPI 3.0 form: locations name that form "
                "(a response schema is under responses/<status>/content/<media type>/schema)"
            )
        sources.append((side, spec.get("origin", ""), spec.get("error") or "", "; ".join(notes)))
    parts.append("<h3>Specs compared</h3>" + table(["Side", "Source", "Error", "Notes"], sources))
    parts.append(_changes_table(f"HTTP API ({api.get('operations_compared', 0)} operations compared)", api))
    if "ws" in data:
        parts.append(
            _changes_table(
                f"WebSocket messages ({data['ws'].get('baseline_events', 0)} / {data['ws'].get('candidate_events', 0)} events observed)",
                data["ws"],
            )
        )
    if "database" in data:
        parts.append(_changes_table("Database schema", data["database"]))
    return parts
