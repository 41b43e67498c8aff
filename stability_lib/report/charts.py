"""The matplotlib charts of the section views (``report.views``): close codes and the outcome
timeline of a WebSocket soak, step latency boxes of the golden path, the performance forest plot
and ECDFs, and the axis choice they share (``axis_scale``: log only when the data spans
``LOG_SPAN``; ``axis_limits``: a margin, never a zero end on a log axis), also used by the trends
page. Each function takes plain evidence values and returns a figure; matplotlib is imported lazily.

Figures are made outside pyplot (``new_figure``) and laid out by ``fit_layout``: cheaper to draw
(see there), and nothing is left for a notebook's inline backend to show a second time."""

from __future__ import annotations

import io
import math
from typing import Any

__all__ = [
    "LOG_SPAN",
    "axis_scale",
    "axis_limits",
    "new_figure",
    "fit_layout",
    "png_bytes",
]

CHART_DPI = 100


def _label(text: object) -> str:
    """A chart label from the target (operation, event or outcome names): '$' must not start math text."""
    return str(text).replace("$", r"\$")


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


def new_figure(
    width: float = 7.5, height: float = 3.0, *, nrows: int = 1, ncols: int = 1, squeeze: bool = True
) -> tuple[Any, Any]:
    """A figure on its own Agg canvas, outside pyplot: no figure manager to close, no pyplot import
    (nor the inline backend's) needed to draw it, freed with its last reference."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=CHART_DPI)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def fit_layout(fig: Any) -> None:
    """The layout of ``fig.tight_layout()`` at half its cost, and none added to the drawing.

    ``tight_layout`` measures every axis twice (its default rect (0, 0, 1, 1) makes a second pass that
    gives the same margins) and leaves a placeholder layout engine on the figure, which makes savefig
    draw the whole figure once more before drawing it. Together most of a chart's CPU."""
    from matplotlib.layout_engine import TightLayoutEngine

    # rect=None: one pass (the stubs say tuple; the engine takes None as get_tight_layout_figure does).
    TightLayoutEngine(rect=None).execute(fig)  # type: ignore[arg-type]


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG at the charts' DPI: one draw (``fit_layout`` did the layout)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=CHART_DPI)
    return buffer.getvalue()


def _close_code_chart(sides: dict[str, dict[str, int]]):
    fig, ax = new_figure()
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
    fit_layout(fig)
    return fig


def _timeline_chart(timeline: list[dict[str, Any]]):
    fig, ax = new_figure(height=2.4)
    kinds = sorted({t["outcome"] for t in timeline})
    for k in kinds:
        xs = [t["start_offset_s"] for t in timeline if t["outcome"] == k]
        ax.scatter(xs, [_label(k)] * len(xs), s=8, alpha=0.6, label=_label(k))
    ax.set_xlabel("session start (s since the soak began)")
    ax.set_title("Outcome timeline")
    fit_layout(fig)
    return fig


def _box_chart(samples: dict[str, list[float]], title: str):
    names = [k for k, v in samples.items() if v]
    fig, ax = new_figure(height=0.32 * len(names) + 1.0)
    ax.boxplot([samples[n] for n in names], orientation="horizontal", showfliers=True, flierprops={"markersize": 2})
    ax.set_yticks(range(1, len(names) + 1), [_label(n) for n in names])
    values = [v for n in names for v in samples[n]]
    scale = axis_scale(values)
    ax.set_xscale(scale)
    ax.set_xlim(*axis_limits(values, scale))
    ax.set_xlabel("milliseconds" + (" (log scale)" if scale == "log" else ""))
    ax.set_title(title)
    fit_layout(fig)
    return fig


def _forest_chart(comparisons: list[dict[str, Any]], tolerance: float):
    rows = [c for c in comparisons if _finite([c["median_ratio"]["ratio"]])]
    fig, ax = new_figure(height=0.3 * len(rows) + 1.3)
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
    fit_layout(fig)
    return fig


def _ecdf_chart(samples: dict[str, dict[str, list[float]]], ops: list[str]):
    import numpy as np

    cols = 2
    rows_n = max(1, (len(ops) + cols - 1) // cols)
    fig, axes = new_figure(7.5, 1.9 * rows_n, nrows=rows_n, ncols=cols, squeeze=False)
    legend_on = None  # the first panel with a line: an operation without samples has none to name
    for ax, op in zip(axes.flat, ops, strict=False):
        values: list[float] = []
        for side in ("baseline", "candidate"):
            v = np.sort(np.asarray(samples.get(side, {}).get(op, []), dtype=float))
            if v.size:
                ax.step(v, np.arange(1, v.size + 1) / v.size, where="post", label=side)
                values += v.tolist()
        if not values:
            ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes, fontsize=8)
        elif legend_on is None:
            legend_on = ax
        scale = axis_scale(values)
        ax.set_xscale(scale)
        ax.set_xlim(*axis_limits(values, scale))
        ax.set_title(_label(op) + (" (log x)" if scale == "log" else ""), fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(ops) :]:
        ax.set_visible(False)
    if legend_on is not None:
        legend_on.legend(fontsize=7)
    fig.suptitle("Latency distributions (ECDF, ms)", fontsize=10)
    fit_layout(fig)
    return fig
