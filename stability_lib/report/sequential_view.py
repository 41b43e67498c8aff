"""The path to a sequential verdict: one small chart per claim of the interval narrowing round by
round, with the tolerance band and the stop reason (issue 14).

``sequential_parts(result)`` reads the section's evidence (performance: ``comparisons[].sequential``;
websocket: ``sequential.claims``) and returns displayable parts like the section views: HTML strings
(escaped) and a chart (a matplotlib figure; its PNG inside ``chart_cache.charts_kept_in``). Nothing
sequential in the evidence: no parts.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

from ..core.models import SectionResult
from .chart_cache import drawn
from .render import esc

__all__ = ["sequential_parts", "sequential_claims"]

Part = Any  # str (HTML) or matplotlib Figure
_MAX_CHARTS = 6  # a family of many operations shows its first six; the table lists every one
_COLORS = {
    "NO_REGRESSION": "#15803d",
    "PASS": "#15803d",
    "FIXED": "#15803d",
    "REGRESSION": "#b91c1c",
    "FAIL": "#b91c1c",
    "NOT_FIXED": "#b91c1c",
}
_LABELS = {
    "performance": "candidate / baseline (median paired ratio)",
    "failure_rate": "failure rate",
    "fix": "candidate 1011/1006 rate",
}


def sequential_claims(result: SectionResult) -> list[tuple[str, dict[str, Any]]]:
    """(title, serialized SequentialResult) for every sequential claim in the section's evidence."""
    data = result.data or {}
    found: list[tuple[str, dict[str, Any]]] = []
    for c in data.get("comparisons", []):
        if c.get("judged", True) and isinstance(c.get("sequential"), dict):
            found.append((str(c.get("operation", "")), c["sequential"]))
    seq = data.get("sequential")
    if isinstance(seq, dict):
        for name, entry in (seq.get("claims") or {}).items():
            if isinstance(entry, dict) and entry.get("looks") is not None:
                found.append((str(name), entry))
    return found


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def _draw(ax: Any, title: str, seq: dict[str, Any]) -> None:
    looks = seq.get("looks") or []
    rate = seq.get("claim") != "performance"
    xs = [max(lk.get("n_candidate") or 0, lk.get("n_baseline") or 0) for lk in looks]
    # Not bounded yet: a ratio's 0 or infinity, a rate's 0 or 1 come from the data being too few.
    lows = [v if v is not None and (v > 0 or rate) else None for v in (_finite(lk.get("low")) for lk in looks)]
    highs = [v if v is not None and (rate or v < 1e6) else None for v in (_finite(lk.get("high")) for lk in looks)]
    est = [_finite(lk.get("estimate")) for lk in looks]
    threshold = float(seq.get("threshold", 1.0))
    color = _COLORS.get(str(seq.get("verdict")), "#a16207")
    refs = [_finite(lk.get(k)) for lk in looks for k in ("reference_low", "reference_high")]
    if rate:
        known = [v for v in (*highs, *est, *refs, threshold) if v is not None]
        floor, ceiling = 0.0, max(known) * 1.08
    else:
        # Zoomed on the last interval, the estimates and the band: earlier, wider intervals run
        # off the chart (they are wider than shown), so the narrowing at the end stays readable.
        last_low = next((v for v in reversed(lows) if v is not None), 1.0)
        last_high = next((v for v in reversed(highs) if v is not None), threshold)
        known = [v for v in (*est, last_low, last_high, threshold, 1.0) if v is not None]
        floor, ceiling = min(known) / 1.15, max(known) * 1.15
    lo_line = [lo if lo is not None else floor for lo in lows]
    hi_line = [hi if hi is not None else ceiling for hi in highs]
    ax.vlines(xs, lo_line, hi_line, color=color, lw=2.2, alpha=0.75)
    pts = [(x, e) for x, e in zip(xs, est, strict=True) if e is not None]
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o", ms=2.5, color="#111")
    if not rate:
        ax.axhline(1.0, color="#555", lw=0.6)
    ax.axhline(threshold, color="#b91c1c", ls="--", lw=0.8)
    ax.axhspan(floor, threshold, color="#15803d", alpha=0.06)
    for ref in ("reference_low", "reference_high"):  # the baseline's range, for "the fix works"
        vals = [(x, _finite(lk.get(ref))) for x, lk in zip(xs, looks, strict=True)]
        vals = [(x, v) for x, v in vals if v is not None]
        if vals:
            ax.plot([v[0] for v in vals], [v[1] for v in vals], color="#555", lw=0.8, ls=":")
    ax.set_ylim(floor, ceiling)
    ax.set_xlim(0, (max(xs) if xs else 1) * 1.05 + 1)
    stop = str(seq.get("stop_text", ""))
    label = str(title).replace("$", r"\$")
    ax.set_title("\n".join([label, *textwrap.wrap(stop.replace("$", r"\$"), 60)]), fontsize=7.5)
    ax.tick_params(labelsize=7)
    ax.set_xlabel("sessions" if rate else "samples per side", fontsize=7)


def _chart(items: list[tuple[str, dict[str, Any]]]) -> Any:
    from .charts import fit_layout, new_figure

    cols = min(2, len(items))
    rows = (len(items) + cols - 1) // cols
    fig, axes = new_figure(7.5, 1.9 * rows + 0.4, nrows=rows, ncols=cols, squeeze=False)
    for ax, (title, seq) in zip(axes.flat, items, strict=False):
        _draw(ax, title, seq)
    for ax in list(axes.flat)[len(items) :]:
        ax.set_visible(False)
    fig.suptitle("Sequential sampling: the interval after each round, against the tolerance (dashed)", fontsize=9)
    fit_layout(fig)
    return fig


def sequential_parts(result: SectionResult) -> list[Part]:
    """A chart of the interval narrowing round by round per sequential claim, and one line per claim
    saying how it stopped (decided at round k / budget reached, with what more would be needed)."""
    items = sequential_claims(result)
    if not items:
        return []
    parts: list[Part] = []
    try:
        parts.append(drawn(_chart, items[:_MAX_CHARTS]))
    except Exception as exc:  # a chart that cannot be drawn must not hide the stop reasons
        parts.append(f'<p class="sp-warning">The sequential chart could not be drawn: {esc(exc)}</p>')
    lines = []
    for title, seq in items:
        verdict = str(seq.get("verdict", "")).replace("_", " ")
        text = f"{title}: {verdict}, {seq.get('stop_text', '')}"
        if seq.get("needed"):
            text += f"; about {seq['needed']} would settle it"
        lines.append(f"<li>{esc(text)}</li>")
    parts.append("<h3>How sampling stopped</h3><ul>" + "".join(lines) + "</ul>")
    return parts
