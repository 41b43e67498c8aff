"""A plain report page built from summary.json alone, for when the report notebook failed."""

from __future__ import annotations

from typing import Any

from .render import (
    banner_html,
    esc,
    header_html,
    not_checked_html,
    recommendations_html,
    summary_table_html,
    warnings_html,
)

__all__ = ["fallback_html"]


def fallback_html(summary: dict[str, Any], problem: str) -> str:
    from importlib import resources

    css = (resources.files("stability_lib") / "templates" / "report.css").read_text(encoding="utf-8")
    body = (
        header_html(summary)
        + f'<p class="sp-warning"><b>The full report could not be rendered</b>: <span class="sp-mono">{esc(problem)}</span>. '
        "This page is built from summary.json only.</p>"
        + banner_html(summary)
        + summary_table_html(summary)
        + warnings_html(summary.get("warnings", []))
        + not_checked_html(summary.get("not_checked", []))
        + recommendations_html(summary)
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
        f"<title>{esc(summary.get('title', 'report'))}</title><style>{css}</style></head>"
        f'<body><div class="jp-Notebook"><div class="jp-OutputArea-output">{body}</div></div></body></html>'
    )
