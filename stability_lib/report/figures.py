"""A claim's figure in words (page 1 and the checks tables): pure formatting of evidence values."""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = [
    "figure_text",
    "short_figure",
]


_SHORT_STATISTIC_CHARS = 140


def _pct(x: float | None) -> str:
    """A proportion for a reader: 4.5%, 0.75%, 0.0031% (a tiny bound never prints as 0)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    p = 100.0 * x
    if p == 0:
        return "0%"
    if abs(p) < 0.01:
        return f"{p:.2g}%"
    if abs(p) < 10:
        return f"{p:.2f}".rstrip("0").rstrip(".") + "%"
    return f"{p:.1f}".rstrip("0").rstrip(".") + "%"


def _conf(fig: dict[str, Any]) -> str:
    c = fig.get("confidence")
    if not isinstance(c, (int, float)):
        return ""
    c = 100.0 * c
    return (f"{c:.0f}%" if abs(c - round(c)) < 1e-9 else f"{c:.4g}%") + " "


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not (isinstance(x, float) and math.isnan(x))


def figure_text(fig: dict[str, Any] | None) -> str:
    """The decisive figure in plain words, e.g. "median 0.99× baseline, interval 0.98–1.01 (limit 1.10×)"
    or "from 18 of 400 (4.5%) on the baseline to 0 of 400 (95% upper bound 0.75%)". Empty if unknown."""
    if not isinstance(fig, dict):
        return ""
    kind = fig.get("kind")
    what = str(fig.get("what") or "")
    k, n = fig.get("k"), fig.get("n")
    if kind == "ratio":
        value = fig.get("value")
        if not _num(value):
            return "no ratio could be computed"
        text = f"{what or 'median'} {value:.2f}× baseline"
        if _num(fig.get("low")) and _num(fig.get("high")):
            text += f", {_conf(fig)}interval {fig['low']:.2f}–{fig['high']:.2f}"
        if _num(fig.get("tolerance")):
            text += f" (limit {1 + fig['tolerance']:.2f}×)"
        return text
    if kind == "rate" and isinstance(k, int) and isinstance(n, int):
        if n == 0:
            return f"no data ({what})" if what else "no data"
        if k == 0:
            how = f"upper bound {_pct(fig['high'])}" if _num(fig.get("high")) else ""
        else:
            how = _pct(k / n) + (
                f", {_conf(fig)}interval {_pct(fig['low'])}–{_pct(fig['high'])}"
                if _num(fig.get("low")) and _num(fig.get("high"))
                else ""
            )
        bk, bn = fig.get("baseline_k"), fig.get("baseline_n")
        if isinstance(bk, int) and isinstance(bn, int) and bn > 0:
            change = "fell" if k / n < bk / bn else ("rose" if k / n > bk / bn else "stayed")
            text = (
                f"{what} {change} from {bk} of {bn} ({_pct(bk / bn)}) on the baseline to {k} of {n}"
                + (f" ({how})" if how else "")
            ).strip()
        else:
            text = f"{k} of {n} {what}".replace("  ", " ").strip() + (f" ({how})" if how else "")
        if _num(fig.get("tolerance")):
            text += f"; tolerated {_pct(fig['tolerance'])}"
        return text
    if kind == "count" and isinstance(k, int):
        return f"{k} of {n} {what}".strip() if isinstance(n, int) else f"{k} {what}".strip()
    return ""


def short_figure(claim: dict[str, Any]) -> str:
    """The claim's figure in words, or the head of its statistic for evidence without a figure."""
    text = figure_text(claim.get("figure"))
    if text:
        return text
    stat = re.sub(r"^informative only: [^;]*; ", "", str(claim.get("statistic") or ""))
    head = re.split(r";\s|\s\(", stat, maxsplit=1)[0].strip()
    if len(head) > _SHORT_STATISTIC_CHARS:
        head = head[: _SHORT_STATISTIC_CHARS - 1].rstrip() + "…"
    return head
