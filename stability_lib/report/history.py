"""Trends across stored runs: each check's status and decisive figure run by run, and the steps in a
figure that are statistically real (``stability history`` and notebooks/history.ipynb).

Pure part: :func:`build_history` (the frames of ``load_runs`` in, a :class:`History` out, with the
steps :func:`detect_steps` finds) and the HTML fragments. Thin shell: :func:`show_history`
displays the page in a notebook (notebooks/history.ipynb); :func:`write_history` draws the same page
in this process and exports it to HTML and PDF with the main report's template and style.

Which change in a figure is real (step detection, ``STEP_RULE_TEXT``) is decided in
``report.history_steps``; its names are re-exported here.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .history_steps import (
    ALPHA,
    MAX_STEPS,
    MIN_RELATIVE_CHANGE,
    MIN_SERIES,
    PERMUTATIONS,
    SEED,
    STEP_RULE_TEXT,
    Step,
    detect_steps,
)
from .history_steps import _midranks as _midranks  # tests import it from here

__all__ = [
    "Step",
    "CheckTrend",
    "History",
    "detect_steps",
    "build_history",
    "history_parts",
    "show_history",
    "write_history",
    "history_notebook",
    "load_history",
    "default_runs_dir",
    "step_sentence",
    "STEP_RULE_TEXT",
    "ALPHA",
    "PERMUTATIONS",
    "MIN_RELATIVE_CHANGE",
    "MAX_STEPS",
    "MIN_SERIES",
    "SEED",
]


_STATUS_ORDER = ("FAIL", "ERROR", "INCONCLUSIVE", "PASS")
_SECTIONS = ("health", "suites", "websocket", "golden_path", "isolation", "performance", "contract")


@dataclass(frozen=True)
class CheckTrend:
    """One check across runs (lists are parallel to ``History.run_ids``; None: not in that run)."""

    claim_id: str
    section: str
    statement: str
    required: bool
    kind: str  # ratio, rate, count or "" (no figure)
    what: str
    statuses: tuple[str | None, ...]
    values: tuple[float | None, ...]
    lows: tuple[float | None, ...]
    highs: tuple[float | None, ...]
    baselines: tuple[float | None, ...]  # the baseline's rate (rate claims comparing both sides)
    tolerance: float | None
    figures: tuple[str, ...]  # the figure in words, per run ("" when none)
    steps: tuple[tuple[int, Step], ...] = ()  # (run index, step)

    @property
    def latest_status(self) -> str | None:
        return next((s for s in reversed(self.statuses) if s), None)


@dataclass(frozen=True)
class History:
    run_ids: tuple[str, ...]
    started: tuple[str, ...]
    versions: tuple[str, ...]
    verdicts: tuple[str, ...]
    checks: tuple[CheckTrend, ...]
    skipped: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    title: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def steps(self) -> list[tuple[CheckTrend, int, Step]]:
        return [(c, i, s) for c in self.checks for i, s in c.steps]


# --------------------------------------------------------------------------- trends from frames (pure)


def _finite(x: Any) -> float | None:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _figure_dict(row: Any) -> dict[str, Any]:
    """A claims-frame row back to the figure dict the report's wording reads."""
    fig: dict[str, Any] = {}
    for column, key in (
        ("figure_kind", "kind"),
        ("figure_value", "value"),
        ("figure_low", "low"),
        ("figure_high", "high"),
        ("figure_confidence", "confidence"),
        ("figure_k", "k"),
        ("figure_n", "n"),
        ("figure_tolerance", "tolerance"),
        ("figure_baseline_k", "baseline_k"),
        ("figure_baseline_n", "baseline_n"),
        ("figure_what", "what"),
    ):
        value = row.get(column)
        if value is None or (not isinstance(value, str) and _is_na(value)):
            continue
        fig[key] = int(value) if key in ("k", "n", "baseline_k", "baseline_n") else value
    return fig if fig.get("kind") else {}


def _is_na(value: Any) -> bool:
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def build_history(runs: Any, *, title: str = "") -> History:
    """Per check, its status and figure in every run of ``runs`` (a ``load_runs`` result), with steps."""
    from .figures import figure_text

    run_ids = tuple(str(r) for r in runs.runs["run_id"])
    index = {r: i for i, r in enumerate(run_ids)}
    n = len(run_ids)
    claims = runs.claims
    order: dict[str, int] = {}
    for claim_id in reversed(list(claims["claim_id"])):  # the latest run's order wins, then older ones
        order.setdefault(claim_id, len(order))
    records: dict[str, dict[int, dict[str, Any]]] = {}
    meta: dict[str, dict[str, Any]] = {}
    for row in claims.to_dict("records"):
        at = index.get(str(row["run_id"]))
        if at is None:
            continue
        records.setdefault(row["claim_id"], {})[at] = row
        meta[row["claim_id"]] = row  # rows come oldest first: the latest run's row stays
    checks: list[CheckTrend] = []

    def sort_key(claim_id: str) -> tuple[int, int]:
        section = str(meta[claim_id].get("section") or "")
        return (_SECTIONS.index(section) if section in _SECTIONS else len(_SECTIONS), -order[claim_id])

    for claim_id in sorted(records, key=sort_key):
        per_run = records[claim_id]
        latest = meta[claim_id]
        figs = [_figure_dict(per_run[i]) if i in per_run else {} for i in range(n)]
        values = tuple(_finite(f.get("value")) if f else None for f in figs)
        baselines: list[float | None] = []
        for f in figs:
            bk, bn = f.get("baseline_k"), f.get("baseline_n")
            baselines.append(bk / bn if isinstance(bk, int) and isinstance(bn, int) and bn > 0 else None)
        kinds = [f.get("kind", "") for f in figs if f]
        present = [(i, v) for i, v in enumerate(values) if v is not None]
        steps = detect_steps([v for _, v in present]) if len(present) >= MIN_SERIES else []
        tolerances = [_finite(f.get("tolerance")) for f in figs if f and f.get("tolerance") is not None]
        checks.append(
            CheckTrend(
                claim_id=claim_id,
                section=str(latest.get("section") or ""),
                statement=str(latest.get("statement") or ""),
                required=bool(latest.get("required")),
                kind=kinds[-1] if kinds else "",
                what=str(figs[-1].get("what", "") if figs[-1] else (latest.get("figure_what") or "")),
                statuses=tuple(str(per_run[i]["status"]) if i in per_run else None for i in range(n)),
                values=values,
                lows=tuple(_finite(f.get("low")) if f else None for f in figs),
                highs=tuple(_finite(f.get("high")) if f else None for f in figs),
                baselines=tuple(baselines),
                tolerance=tolerances[-1] if tolerances else None,
                figures=tuple(figure_text(f) if f else "" for f in figs),
                steps=tuple((present[s.position][0], s) for s in steps),
            )
        )
    info = runs.runs
    return History(
        run_ids=run_ids,
        started=tuple("" if _is_na(t) else str(t)[:16].replace("T", " ") for t in info["started_at"]),
        versions=tuple("" if _is_na(v) else str(v) for v in info["target_version"]),
        verdicts=tuple("" if _is_na(v) else str(v) for v in info["verdict"]),
        checks=tuple(checks),
        skipped=tuple(runs.skipped),
        problems=tuple(runs.problems),
        title=title,
    )


# --------------------------------------------------------------------------- the page (pure HTML + charts)


def _run_label(history: History, i: int) -> str:
    version = f", version {history.versions[i]}" if history.versions[i] else ""
    return f"run {i + 1} ({history.run_ids[i]}{version})"


def _fmt(value: float, kind: str) -> str:
    if kind == "ratio":
        return f"{value:.2f}×"
    if kind == "rate":
        return f"{100 * value:.2f}%".replace(".00%", "%")
    return f"{value:g}"


def step_sentence(history: History, check: CheckTrend, run_index: int, step: Step) -> str:
    """e.g. "median rose from 1.00× to 1.31× (worse), starting at run 8 (r08); p = 0.004"."""
    direction = "rose" if step.after > step.before else "fell"
    judgement = "worse" if step.after > step.before else "better"  # every figure: higher is worse
    what = check.what or "figure"
    return (
        f"{what} {direction} from {_fmt(step.before, check.kind)} to {_fmt(step.after, check.kind)} "
        f"({judgement}), starting at {_run_label(history, run_index)}; permutation p = {step.p_value:.3f}"
    )


_COLORS = {"PASS": "#15803d", "FAIL": "#b91c1c", "INCONCLUSIVE": "#d4a106", "ERROR": "#6b21a8"}


def status_grid_chart(history: History) -> Any:
    """Checks (rows) across runs (columns), coloured by status; a real step is outlined."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Rectangle

    from .charts import fit_layout, new_figure

    codes = {"PASS": 1, "INCONCLUSIVE": 2, "FAIL": 3, "ERROR": 4}
    n_runs, n_checks = len(history.run_ids), len(history.checks)
    grid = [[codes.get(s or "", 0) for s in c.statuses] for c in history.checks]
    fig, ax = new_figure(7.5, 0.19 * n_checks + 1.1)
    cmap = ListedColormap(["#ffffff", _COLORS["PASS"], _COLORS["INCONCLUSIVE"], _COLORS["FAIL"], _COLORS["ERROR"]])
    ax.imshow(grid or [[0]], aspect="auto", cmap=cmap, vmin=0, vmax=4, interpolation="nearest")
    for row, check in enumerate(history.checks):
        for run_index, _ in check.steps:
            ax.add_patch(Rectangle((run_index - 0.5, row - 0.5), 1, 1, fill=False, lw=1.6, ec="#111"))
    ax.set_yticks(range(n_checks), [c.claim_id.replace("$", r"\$") for c in history.checks], fontsize=7)
    stride = max(1, math.ceil(n_runs / 25))
    ax.set_xticks(range(0, n_runs, stride), [str(i + 1) for i in range(0, n_runs, stride)], fontsize=7)
    ax.set_xlabel("run (oldest first); white: check not in that run; outlined: a real step starts", fontsize=8)
    ax.set_title("Status of every check across runs", fontsize=10)
    fit_layout(fig)
    return fig


def trend_chart(history: History, check: CheckTrend) -> Any:
    """One check's figure across runs: value and interval, tolerance, baseline, steps."""
    from .charts import axis_limits, axis_scale, new_figure

    fig, ax = new_figure(7.5, 2.1)
    xs = [i + 1 for i, v in enumerate(check.values) if v is not None]
    ys = [v for v in check.values if v is not None]
    colors = [_COLORS.get(check.statuses[i] or "", "#555") for i, v in enumerate(check.values) if v is not None]
    bars = [
        (i + 1, lo, hi, _COLORS.get(check.statuses[i] or "", "#555"))
        for i, (v, lo, hi) in enumerate(zip(check.values, check.lows, check.highs, strict=True))
        if v is not None and lo is not None and hi is not None and (check.kind != "rate" or v > 0 or lo > 0)
    ]
    # One collection per kind of mark: a hundred runs draw as fast as ten.
    if bars:
        ax.vlines(
            [b[0] for b in bars],
            [b[1] for b in bars],
            [b[2] for b in bars],
            colors=[b[3] for b in bars],
            lw=1,
            alpha=0.5,
        )
    ax.scatter(xs, ys, s=10, c=colors, zorder=3)
    ax.plot(xs, ys, color="#888", lw=0.6, zorder=0)
    extra: list[float] = []
    if check.kind == "ratio":
        ax.axhline(1.0, color="#555", lw=0.8, label="baseline (1.0×)")
        extra.append(1.0)
        if check.tolerance is not None:
            ax.axhline(1 + check.tolerance, color="#b91c1c", ls="--", lw=0.8, label=f"limit {1 + check.tolerance:.2f}×")
            extra.append(1 + check.tolerance)
    elif check.tolerance is not None:
        ax.axhline(check.tolerance, color="#b91c1c", ls="--", lw=0.8, label="tolerated")
        extra.append(check.tolerance)
    base = [(i + 1, b) for i, b in enumerate(check.baselines) if b is not None]
    if base:
        ax.plot([x for x, _ in base], [b for _, b in base], "s", ms=3, color="#2563eb", label="baseline")
        extra += [b for _, b in base]
    for run_index, _ in check.steps:
        ax.axvline(run_index + 0.5, color="#111", ls=":", lw=1.2)
        ax.annotate(
            f"step: run {run_index + 1}", (run_index + 0.6, 1), xycoords=("data", "axes fraction"), va="top", fontsize=8
        )
    values = ys + extra
    scale = axis_scale(values) if check.kind == "ratio" else "linear"
    ax.set_yscale(scale)
    low, high = axis_limits(values, scale)
    if check.kind in ("rate", "count"):
        low = min(low, 0.0) if low > -1 else low
    ax.set_ylim(low, high)
    ax.set_xlim(0.5, len(check.values) + 0.5)
    ax.set_title(check.claim_id.replace("$", r"\$"), fontsize=9, loc="left")
    ax.tick_params(labelsize=7)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", frameon=False)
    fig.subplots_adjust(left=0.08, right=0.99, top=0.87, bottom=0.13)  # fixed margins: tight_layout per chart costs
    return fig


def _varies(check: CheckTrend) -> bool:
    present = {v for v in check.values if v is not None}
    return len(present) > 1 or bool(check.steps)


def history_parts(history: History) -> list[Any]:
    """The trends page: HTML strings (escaped) and matplotlib figures, in reading order."""
    from .render import breakable, esc, status_badge, table

    n = len(history.run_ids)
    steps = history.steps
    parts: list[Any] = []
    verdicts = {v: history.verdicts.count(v) for v in _STATUS_ORDER if history.verdicts.count(v)}
    span = f"{history.started[0]} to {history.started[-1]} UTC" if n else ""
    head = [
        f'<div class="sp-front"><h1>Stability trends{": " + esc(history.title) if history.title else ""}</h1>',
        f"<p class='sp-lead'>{n} runs, oldest first ({esc(span)}); verdicts: "
        + esc(", ".join(f"{k} {v}" for k, v in verdicts.items()) or "none")
        + (f"; {len(history.skipped)} run directories could not be read (listed below)" if history.skipped else "")
        + ".</p>",
    ]
    # Red when a figure got worse (every figure: higher is worse), amber when every change is a gain.
    worse = any(step.after > step.before for _, _, step in steps)
    kind = "FAIL" if worse else ("INCONCLUSIVE" if steps else "PASS")
    head.append(
        f'<div class="sp-banner sp-{kind}"><span class="sp-verdict">'
        + (f"{len(steps)} real change(s) in a figure" if steps else "No statistically real change in any figure")
        + f"</span><small>{esc(STEP_RULE_TEXT)}</small></div>"
    )
    if steps:
        head.append(
            "<h2>Real changes</h2><ul class='sp-list'>"
            + "".join(
                f"<li>{status_badge(c.statuses[i] or 'ERROR')} <b>{esc(c.statement)}</b> "
                f"<span class='sp-id'>{breakable(c.claim_id)}</span>: {esc(step_sentence(history, c, i, s))}</li>"
                for c, i, s in steps
            )
            + "</ul>"
        )
    parts.append("".join(head) + "</div>")
    if history.checks:
        parts.append(status_grid_chart(history))
    rows = []
    for c in history.checks:
        counts = {s: c.statuses.count(s) for s in _STATUS_ORDER if c.statuses.count(s)}
        latest = next((i for i in range(n - 1, -1, -1) if c.statuses[i]), None)
        figure = c.figures[latest] if latest is not None else ""
        step_text = "; ".join(f"run {i + 1}" for i, _ in c.steps) or "–"
        rows.append(
            [
                f"<span class='sp-check'>{esc(c.statement)}</span>{'' if c.required else ' <span class=sp-info-tag>info</span>'}"
                f"<div class='sp-detail sp-id'>{breakable(c.claim_id)}</div>",
                status_badge(c.latest_status or "ERROR"),
                esc(", ".join(f"{v} {k}" for k, v in counts.items())),
                esc(figure or "no figure"),
                esc(step_text),
            ]
        )
    parts.append(
        "<h2>Every check: status now, over all runs, latest figure</h2>"
        + table(
            ["Check", "Now", "Across runs", "Latest decisive figure", "Step at"],
            rows,
            raw_columns=range(5),
            widths=[34, "8.5em", 16, 30, "6em"],
        )
    )
    charted = [c for c in history.checks if _varies(c)]
    if charted:
        parts.append(
            '<div class="sp-section"><h2>Figures across runs</h2><p class="sp-lead">Each check whose figure '
            "changed: the value per run (coloured by status) with its interval, the limit it was judged "
            "against, the baseline, and any real step (dotted line).</p></div>"
        )
        parts += [trend_chart(history, c) for c in charted]
    run_rows = [
        [
            str(i + 1),
            f"<span class='sp-id'>{breakable(history.run_ids[i])}</span>",
            esc(history.started[i]),
            esc(history.versions[i] or "–"),
            status_badge(history.verdicts[i]) if history.verdicts[i] else "–",
        ]
        for i in range(n)
    ]
    tail = '<div class="sp-section"><h2>Runs</h2>' + table(
        ["#", "Run", "Started (UTC)", "Target version", "Verdict"], run_rows, raw_columns=range(5)
    )
    if history.skipped or history.problems:
        tail += (
            "<h3>Not read</h3><ul class='sp-list'>"
            + "".join(f"<li>{esc(p, 400)}</li>" for p in (*history.skipped, *history.problems)[:50])
            + "</ul>"
        )
    parts.append(tail + "</div>")
    return parts


# --------------------------------------------------------------------------- the shell


def default_runs_dir() -> Path:
    """runs/ here, else ../runs (a notebook opened in notebooks/ of a checkout)."""
    for candidate in (Path("runs"), Path("..") / "runs"):
        if candidate.is_dir():
            return candidate
    return Path("runs")


def load_history(runs_dir: str | Path) -> History:
    """``load_runs`` (summary.json only: claims and warnings) -> :class:`History`."""
    from ..core.errors import RunError
    from .frames import load_runs

    runs = load_runs(runs_dir, frames=("claims", "warnings"))
    if len(runs) == 0:
        why = f"; {len(runs.skipped)} could not be read: {runs.skipped[0]}" if runs.skipped else ""
        raise RunError(f"no run directories under {runs_dir}{why}")
    return build_history(runs)


def show_history(runs_dir: str | Path) -> History:
    """Display the trends page in a notebook; returns the History for further questions."""
    from IPython.display import HTML, Image, display

    from .chart_cache import chart_png

    history = load_history(runs_dir)
    for part in history_parts(history):
        if isinstance(part, str):
            display(HTML(part))
        else:
            display(Image(data=chart_png(part), format="png"))
    return history


def history_notebook(history: History) -> Any:
    """The trends page as a notebook whose cells hold only outputs (HTML, PNG): exported with the
    report's template, it is the page history.ipynb shows, made without starting a kernel."""
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from .chart_cache import chart_png

    cells = []
    for part in history_parts(history):
        if isinstance(part, str):
            data = {"text/html": part, "text/plain": "(trends)"}
        else:
            data = {"image/png": base64.b64encode(chart_png(part)).decode(), "text/plain": "(chart)"}
        cells.append(new_code_cell("", outputs=[new_output("display_data", data=data)]))
    return new_notebook(
        cells=cells,
        metadata={
            "title": "Stability trends",
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        },
    )


def write_history(runs_dir: str | Path, out_dir: str | Path | None = None) -> tuple[Path, Path]:
    """The trends report over ``runs_dir``: history.ipynb (outputs only), history.html and
    history.pdf in ``out_dir`` (default ``<runs_dir>/history``). The same page as
    notebooks/history.ipynb, drawn in this process: a kernel start would double the time.
    Raises StabilityError subclasses with one-line reasons."""
    import nbformat

    from ..core.errors import RunError
    from .export import export_html, html_to_pdf

    runs_dir = Path(runs_dir).resolve()
    if not runs_dir.is_dir():
        raise RunError(f"{runs_dir}: not a directory of runs")
    history = load_history(runs_dir)
    out = Path(out_dir).resolve() if out_dir is not None else runs_dir / "history"
    out.mkdir(parents=True, exist_ok=True)
    notebook = out / "history.ipynb"
    nbformat.write(history_notebook(history), notebook)
    html = export_html(notebook, out / "history.html")
    return html, html_to_pdf(html, out / "history.pdf")
