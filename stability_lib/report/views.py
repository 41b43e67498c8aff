"""What a section shows: its claims, tables and charts, in a notebook and in the report.

Each view takes a SectionResult and returns a list of displayable parts: HTML
strings (already escaped) and matplotlib figures. ``show`` displays them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

from ..core.models import SectionResult
from .render import breakable, claims_table_html, esc, machine_text, section_heading_html, section_lead, table
from .sequential_view import sequential_parts

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


def _label(text: object) -> str:
    """A chart label from the target (operation, event or outcome names): '$' must not start math text."""
    return str(text).replace("$", r"\$")


def _chart(draw: Callable[..., Any], *args: Any) -> Part:
    """One chart; if it cannot be drawn, a line saying so instead of losing the section's tables."""
    try:
        return draw(*args)
    except Exception as exc:
        return f'<p class="sp-warning">A chart could not be drawn ({esc(draw.__name__)}): {esc(exc)}</p>'


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


# A log axis only when the data spans more than this factor; below it a log axis hides differences.
LOG_SPAN = 30.0


def _finite(values: Any) -> list[float]:
    out = []
    for v in values:
        if isinstance(v, (int, float)) and math.isfinite(v):
            out.append(float(v))
    return out


def axis_scale(values: Any) -> str:
    """'log' when the positive values span orders of magnitude (LOG_SPAN), else 'linear'."""
    positive = [v for v in _finite(values) if v > 0]
    if len(positive) < 2:
        return "linear"
    return "log" if max(positive) / min(positive) >= LOG_SPAN else "linear"


def axis_limits(values: Any, scale: str, pad: float = 0.08) -> tuple[float, float]:
    """Limits that hold the data with a margin, never a 0 or a 1e-16 end on a log axis."""
    data = _finite(values)
    if scale == "log":
        data = [v for v in data if v > 0]
    if not data:
        return (0.5, 2.0) if scale == "log" else (0.0, 1.0)
    lo, hi = min(data), max(data)
    if scale == "log":
        factor = (hi / lo) ** pad if hi > lo else 1.25
        return lo / factor, hi * factor
    span = hi - lo or (abs(hi) * 0.1 or 1.0)
    return lo - pad * span, hi + pad * span


def _figure(width: float = 7.5, height: float = 3.0):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    return fig, ax


def _close_code_chart(sides: dict[str, dict[str, int]]):
    fig, ax = _figure()
    codes = sorted({c for hist in sides.values() for c in hist}, key=str)
    width = 0.8 / max(1, len(sides))
    for i, (label, hist) in enumerate(sides.items()):
        xs = [j + i * width for j in range(len(codes))]
        ax.bar(xs, [hist.get(c, 0) for c in codes], width=width, label=label)
    ax.set_xticks([j + width * (len(sides) - 1) / 2 for j in range(len(codes))], [_label(c) for c in codes])
    ax.set_xlabel("close code ('none': no close frame, seen by the client as 1006)")
    ax.set_ylabel("sessions")
    counts = [n for hist in sides.values() for n in hist.values() if n]
    if axis_scale(counts) == "log":  # 400 clean closes beside 3 crashes: both must stay visible
        ax.set_yscale("symlog")
    ax.set_title("Close codes")
    ax.legend()
    fig.tight_layout()
    return fig


def _timeline_chart(timeline: list[dict[str, Any]]):
    fig, ax = _figure(height=2.4)
    kinds = sorted({t["outcome"] for t in timeline})
    for k in kinds:
        xs = [t["start_offset_s"] for t in timeline if t["outcome"] == k]
        ax.scatter(xs, [_label(k)] * len(xs), s=8, alpha=0.6, label=_label(k))
    ax.set_xlabel("session start (s since the soak began)")
    ax.set_title("Outcome timeline")
    fig.tight_layout()
    return fig


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
    """Which engine ran the soak: Locust with its workers and achieved rate (nothing for our own engine)."""
    if not isinstance(engine, dict) or engine.get("engine") != "locust":
        return []
    rows = [
        (
            side,
            e.get("workers"),
            e.get("workers_seen"),
            e.get("sessions_seen"),
            f"{float(e.get('rate_per_s') or 0):.1f}",
            e.get("sessions_lost"),
            e.get("note") or "",
        )
        for side, e in (engine.get("sides") or {}).items()
        if isinstance(e, dict)
    ]
    return [
        "<h3>Engine: Locust</h3>"
        + table(
            ["Target", "Workers", "Workers seen", "Sessions seen", "Sessions per second", "Sessions lost", "Note"], rows
        )
    ]


def _box_chart(samples: dict[str, list[float]], title: str):
    names = [k for k, v in samples.items() if v]
    fig, ax = _figure(height=0.32 * len(names) + 1.0)
    ax.boxplot([samples[n] for n in names], orientation="horizontal", showfliers=True, flierprops={"markersize": 2})
    ax.set_yticks(range(1, len(names) + 1), [_label(n) for n in names])
    values = [v for n in names for v in samples[n]]
    scale = axis_scale(values)
    ax.set_xscale(scale)
    ax.set_xlim(*axis_limits(values, scale))
    ax.set_xlabel("milliseconds" + (" (log scale)" if scale == "log" else ""))
    ax.set_title(title)
    fig.tight_layout()
    return fig


@register_view("golden_path")
def _golden_view(result: SectionResult) -> list[Part]:
    durations = result.data.get("durations_ms", {})
    parts: list[Part] = []
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


def _forest_chart(comparisons: list[dict[str, Any]], tolerance: float):
    rows = [c for c in comparisons if _finite([c["median_ratio"]["ratio"]])]
    fig, ax = _figure(height=0.3 * len(rows) + 1.3)
    for i, c in enumerate(rows):
        r = c["median_ratio"]
        color = {"REGRESSION": "#b91c1c", "NO_REGRESSION": "#15803d"}.get(c["verdict"], "#a16207")
        lo, hi = r["ci_low"] or r["ratio"], r["ci_high"] or r["ratio"]
        ax.plot([lo, hi], [i, i], color=color, lw=2)
        ax.plot([r["ratio"]], [i], "o", color=color, alpha=1.0 if c.get("judged", True) else 0.4)
    points = [c["median_ratio"]["ratio"] for c in rows]
    # Interval ends count for the axis only within 10x of the points: a degenerate bound
    # (a median of ~0 ms on one side) must not squash every point against one edge.
    ends = [
        e
        for c in rows
        for e in _finite([c["median_ratio"]["ci_low"], c["median_ratio"]["ci_high"]])
        if min(points) / 10 <= e <= max(points) * 10
    ]
    values = [*points, *ends, 1.0, 1 + tolerance]
    scale = axis_scale(values)
    ax.set_xscale(scale)
    lo, hi = axis_limits(values, scale)
    ax.set_xlim(lo, hi)
    ax.axvline(1.0, color="#555", lw=0.8)
    ax.axvspan(lo, 1 + tolerance, color="#15803d", alpha=0.06)
    ax.axvline(1 + tolerance, color="#b91c1c", ls="--", lw=0.8, label=f"tolerance {tolerance:.0%}")
    ax.set_yticks(
        range(len(rows)), [_label(c["operation"]) + ("" if c.get("judged", True) else " (info)") for c in rows]
    )
    ax.set_xlabel("candidate / baseline median, with its interval" + (" (log scale)" if scale == "log" else ""))
    ax.set_title("Performance: ratio per operation")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def _ecdf_chart(samples: dict[str, dict[str, list[float]]], ops: list[str]):
    import matplotlib.pyplot as plt
    import numpy as np

    cols = 2
    rows_n = max(1, (len(ops) + cols - 1) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(7.5, 1.9 * rows_n), dpi=100, squeeze=False)
    for ax, op in zip(axes.flat, ops, strict=False):
        values: list[float] = []
        for side in ("baseline", "candidate"):
            v = np.sort(np.asarray(samples.get(side, {}).get(op, []), dtype=float))
            if v.size:
                ax.step(v, np.arange(1, v.size + 1) / v.size, where="post", label=side)
                values += v.tolist()
        scale = axis_scale(values)
        ax.set_xscale(scale)
        ax.set_xlim(*axis_limits(values, scale))
        ax.set_title(_label(op) + (" (log x)" if scale == "log" else ""), fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(ops) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Latency distributions (ECDF, ms)", fontsize=10)
    fig.tight_layout()
    return fig


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
    sources = [
        (side, (api.get(side) or {}).get("origin", ""), (api.get(side) or {}).get("error") or "")
        for side in ("baseline", "candidate")
    ]
    parts.append("<h3>Specs compared</h3>" + table(["Side", "Source", "Error"], sources))
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
