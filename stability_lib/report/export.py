"""Export: executed report notebook -> self-contained HTML (nbconvert) -> PDF (headless Chromium).

Field notes: nbconvert's ``webpdf`` needs playwright's own browser download, which is
impossible here; Debian's ``chromium`` prints a page in about a second (``pdf_printer``).
"""

from __future__ import annotations

import functools
import re
import shutil
import threading
from importlib import resources
from pathlib import Path
from typing import Any

from ..core.errors import ExportError
from .pdf_printer import PdfPrinter, start_pdf_printer

__all__ = [
    "export_html",
    "html_to_pdf",
    "find_chromium",
    "external_references",
    "start_pdf_printer",
    "warm_html_export",
    "PdfPrinter",
    "CHROMIUM_INSTALL_HINT",
]

CHROMIUM_INSTALL_HINT = "apt-get install -y --no-install-recommends chromium"
_TEMPLATES = Path(str(resources.files("stability_lib") / "templates"))

# script/link/img/iframe/... pointing at the network: an offline report must have none.
_EXTERNAL = re.compile(
    r"<(script|link|img|iframe|source|video|audio|embed|object)\b[^>]*?\b(src|href|data)\s*=\s*[\"']?\s*(https?:)?//",
    re.IGNORECASE,
)


def external_references(html: str) -> list[str]:
    return [m.group(0)[:200] for m in _EXTERNAL.finditer(html)]


def export_html(notebook_path: str | Path, html_path: str | Path) -> Path:
    import nbformat

    nb = nbformat.read(str(notebook_path), as_version=4)
    # A notebook's "Dig deeper" part is for JupyterLab, never part of an exported report.
    nb.cells = [c for c in nb.cells if "dig-deeper" not in c.get("metadata", {}).get("tags", [])]
    body = _to_html(nb)
    found = external_references(body)
    if found:
        raise ExportError(f"report HTML references the network: {found[:3]}")
    html_path = Path(html_path)
    html_path.write_text(body, encoding="utf-8")
    return html_path


def warm_html_export() -> None:
    """Pay ahead what the first export in a process costs beyond the export itself (about 0.3 s of
    CPU: nbconvert's lazy imports, its templates compiled, the selectors of its HTML post-pass), e.g.
    in a thread while the report notebook runs; the export then reuses the same exporter."""
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    data = {"text/html": "<p>warm-up</p>", "image/png": _ONE_PIXEL_PNG, "text/plain": "warm-up"}
    try:
        _to_html(new_notebook(cells=[new_code_cell("", outputs=[new_output("display_data", data=data)])]))
    except Exception:  # only a head start, never a traceback from a thread: the export reports what is wrong
        return


_ONE_PIXEL_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
_EXPORT_LOCK = threading.Lock()  # one exporter, one export at a time (the warm-up may still be running)


@functools.cache
def _exporter() -> Any:
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name="report",
        extra_template_basedirs=[str(_TEMPLATES)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )


def _to_html(nb: Any) -> str:
    css = (_TEMPLATES / "report.css").read_text(encoding="utf-8")
    with _EXPORT_LOCK:
        body, _ = _exporter().from_notebook_node(nb, resources={"report_css": css})
    return str(body)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def html_to_pdf(
    html_path: str | Path, pdf_path: str | Path, *, timeout_s: float = 120, printer: PdfPrinter | None = None
) -> Path:
    """Print the HTML file to PDF. With ``printer`` (``start_pdf_printer()`` called ahead, e.g. before
    the report notebook runs, so that the browser's start-up overlaps it), that browser prints and
    stays open for its owner to close; without, one is started for this page and closed."""
    if printer is not None:
        return printer.print_pdf(html_path, pdf_path, timeout_s=timeout_s)
    with start_pdf_printer() as own:
        return own.print_pdf(html_path, pdf_path, timeout_s=timeout_s)
