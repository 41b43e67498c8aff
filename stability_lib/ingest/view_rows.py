"""Rows for the report's table of an ingested run (``data["external"]`` of the performance
section), as plain values: the report escapes them. Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["EXTERNAL_TABLE_HEADERS", "external_table_rows"]

EXTERNAL_TABLE_HEADERS = [
    "Request",
    "Judged",
    "Requests (A/B)",
    "Failed (A/B)",
    "Median ms (A/B)",
    "Ratio [interval]",
    "Rule",
    "Verdict",
]


def _fmt(x: Any) -> str:
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return f"{x:.3g}"
    return "–"


def _median(entry: Mapping[str, Any] | None) -> Any:
    if not entry:
        return None
    return (entry.get("percentiles") or {}).get("50%")


def external_table_rows(external: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """One row per request name of the candidate (then names only the baseline made)."""
    cand = {r["name"]: r for r in (external.get("candidate") or {}).get("requests", [])}
    base = {r["name"]: r for r in ((external.get("baseline") or {}).get("requests", []))}
    comparisons = {c.get("name"): c for c in external.get("comparisons", [])}
    judged = set(external.get("judged", []))
    rows: list[tuple[str, ...]] = []
    for name in [*cand, *(n for n in base if n not in cand)]:
        c, b, cmp = cand.get(name), base.get(name), comparisons.get(name, {})
        if str(cmp.get("rule", "")).startswith("median ratio"):  # samples: the bootstrap rule
            r = cmp["median_ratio"]
            ratio = f"{_fmt(r.get('ratio'))} [{_fmt(r.get('ci_low'))}, {_fmt(r.get('ci_high'))}]"
            medians = f"{_fmt(cmp.get('median_baseline'))} / {_fmt(cmp.get('median_candidate'))}"
            rule = "median, bootstrap"
        elif cmp:
            ratio = f"{_fmt(cmp.get('ratio'))} [{_fmt(cmp.get('ratio_low'))}, {_fmt(cmp.get('ratio_high'))}]"
            medians = f"{_fmt(_median(b))} / {_fmt(_median(c))}"
            rule = f"p{100 * float(cmp.get('quantile', 0.95)):g}, percentile bounds"
        else:
            ratio, medians, rule = "–", f"{_fmt(_median(b))} / {_fmt(_median(c))}", ""
        rows.append(
            (
                name,
                "yes" if name in judged else "no",
                f"{b['requests'] if b else '–'} / {c['requests'] if c else '–'}",
                f"{b['failures'] if b else '–'} / {c['failures'] if c else '–'}",
                medians,
                ratio,
                rule,
                str(cmp.get("verdict", "")).replace("_", " "),
            )
        )
    return rows
