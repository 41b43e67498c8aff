"""Export: executed report notebook -> self-contained HTML (nbconvert) -> PDF (headless Chromium).

Field notes: nbconvert's ``webpdf`` needs playwright's own browser download, which is
impossible here; Debian's ``chromium`` prints a page in about a second.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from ..core.errors import ExportError

__all__ = ["export_html", "html_to_pdf", "find_chromium", "external_references", "CHROMIUM_INSTALL_HINT"]

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
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook_path), as_version=4)
    # A notebook's "Dig deeper" part is for JupyterLab, never part of an exported report.
    nb.cells = [c for c in nb.cells if "dig-deeper" not in c.get("metadata", {}).get("tags", [])]
    exporter = HTMLExporter(
        template_name="report",
        extra_template_basedirs=[str(_TEMPLATES)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    css = (_TEMPLATES / "report.css").read_text(encoding="utf-8")
    body, _ = exporter.from_notebook_node(nb, resources={"report_css": css})
    found = external_references(body)
    if found:
        raise ExportError(f"report HTML references the network: {found[:3]}")
    html_path = Path(html_path)
    html_path.write_text(body, encoding="utf-8")
    return html_path


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def html_to_pdf(html_path: str | Path, pdf_path: str | Path, *, timeout_s: float = 120) -> Path:
    chromium = find_chromium()
    if chromium is None:
        raise ExportError(f"Chromium not found; install it with: {CHROMIUM_INSTALL_HINT}")
    html_path, pdf_path = Path(html_path).resolve(), Path(pdf_path).resolve()
    with tempfile.TemporaryDirectory(prefix="stability-chromium-") as profile:
        cmd = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
            # Without these Chromium tries to reach the network at start.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
            f"--user-data-dir={profile}",
            f"--print-to-pdf={pdf_path}",
            html_path.as_uri(),
        ]
        pdf_path.unlink(missing_ok=True)  # a stale PDF must not pass for this one
        # Its own session: on a timeout the whole browser (zygote, renderers) goes, not just the parent.
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            _, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise ExportError(f"Chromium did not print the PDF within {timeout_s:.0f} s") from exc
    if proc.returncode != 0 or not pdf_path.exists() or pdf_path.stat().st_size == 0:
        tail = (stderr or "").strip().splitlines()[-3:]
        raise ExportError(f"Chromium failed to print the PDF (exit {proc.returncode}): {' | '.join(tail)}")
    return pdf_path
