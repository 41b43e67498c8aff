"""The HTML export reuses one exporter (warmed ahead while the report notebook runs): what it writes
does not depend on the warm-up, nor on what was exported before."""

from __future__ import annotations

import threading
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from stability_lib.report.export import export_html, warm_html_export

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


def _notebook(path: Path, html: str, *, dig_deeper: bool = False) -> Path:
    cells = [new_code_cell("", outputs=[new_output("display_data", data={"text/html": html, "image/png": PNG})])]
    if dig_deeper:
        cells.append(
            new_code_cell("", metadata={"tags": ["dig-deeper"]}, outputs=[new_output("stream", text="investigation")])
        )
    nbformat.write(new_notebook(cells=cells), path)
    return path


def test_an_export_is_the_same_warmed_or_not_and_after_other_exports(tmp_path: Path) -> None:
    first = _notebook(tmp_path / "a.ipynb", "<p>Verdict: PASS &lt;script&gt;</p>", dig_deeper=True)
    other = _notebook(tmp_path / "b.ipynb", '<table class="sp-numbers"><tr><td>other run</td></tr></table>')
    before = export_html(first, tmp_path / "a1.html").read_text()
    warmer = threading.Thread(target=warm_html_export)
    warmer.start()  # as the pipeline does: an export may begin while the warm-up runs
    export_html(other, tmp_path / "b.html")
    warmer.join()
    after = export_html(first, tmp_path / "a2.html").read_text()
    assert after == before
    assert "Verdict: PASS &lt;script&gt;" in after and "other run" not in after
    assert "investigation" not in after  # the dig-deeper cells stay out
    assert "other run" in (tmp_path / "b.html").read_text()
