"""The PDF printer: a Chromium started ahead prints the same PDF as ``--print-to-pdf``, prints again
when asked, and leaves no process running; what it cannot print is an ExportError, never a page."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from stability_lib.core.errors import ExportError
from stability_lib.report.export import find_chromium, html_to_pdf, start_pdf_printer
from stability_lib.report.pdf_printer import CHROMIUM_FLAGS

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="needs Chromium")

PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>
@page { size: A4; margin: 12mm; @bottom-right { content: "Page " counter(page) " of " counter(pages); } }
.box { height: 265mm; border: 2px solid #b91c1c; background: #fee2e2; }
</style></head><body><h1>Verdict: PASS &lt;script&gt;</h1><div class="box">first</div><p>second page</p></body></html>"""


def _pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def _pixels(pdf: Path, folder: Path) -> list[bytes]:
    """Every page as a small PNG: colours and backgrounds, not only the text."""
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(pdf), str(folder / pdf.stem)], check=True)
    return [png.read_bytes() for png in sorted(folder.glob(f"{pdf.stem}-*.png"))]


def _pages(pdf: Path) -> str:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return next(line for line in info.splitlines() if line.startswith(("Pages", "Page size")))


def _running_in_session(sid: int) -> list[int]:
    """Processes of the session still running (zombies left to PID 1 do not run)."""
    running = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            running.append(int(entry))
    return running


@pytest.fixture
def page(tmp_path: Path) -> Path:
    path = tmp_path / "page.html"
    path.write_text(PAGE, encoding="utf-8")
    return path


def test_the_printer_prints_what_print_to_pdf_prints(page: Path, tmp_path: Path) -> None:
    printed = html_to_pdf(page, tmp_path / "printed.pdf")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [find_chromium() or "", *CHROMIUM_FLAGS, "--no-pdf-header-footer", f"--user-data-dir={profile}"]
            + [f"--print-to-pdf={tmp_path / 'oneshot.pdf'}", page.as_uri()],
            capture_output=True,
            timeout=120,
            check=True,
        )
    assert _pdf_text(printed) == _pdf_text(tmp_path / "oneshot.pdf")
    assert _pages(printed) == _pages(tmp_path / "oneshot.pdf")
    assert _pixels(printed, tmp_path) == _pixels(tmp_path / "oneshot.pdf", tmp_path)
    assert "Page 2 of 2" in _pdf_text(printed) and "<script>" in _pdf_text(printed)  # escaped text, shown


def test_a_printer_started_ahead_prints_twice_and_leaves_nothing_running(page: Path, tmp_path: Path) -> None:
    printer = start_pdf_printer()
    session = printer._proc.pid
    with printer:
        first = html_to_pdf(page, tmp_path / "a.pdf", printer=printer)
        page.write_text(PAGE.replace("Verdict: PASS", "Verdict: FAIL"), encoding="utf-8")
        second = html_to_pdf(page, tmp_path / "b.pdf", printer=printer)
        assert _running_in_session(session)
    assert "Verdict: PASS" in _pdf_text(first) and "Verdict: FAIL" in _pdf_text(second)
    assert _running_in_session(session) == []


def test_a_missing_page_is_an_error_not_a_printed_error_page(tmp_path: Path) -> None:
    stale = tmp_path / "report.pdf"
    stale.write_bytes(b"%PDF- an older report")
    printer = start_pdf_printer()
    with pytest.raises(ExportError, match="ERR_FILE_NOT_FOUND"):
        printer.print_pdf(tmp_path / "missing.html", stale)
    assert not stale.exists()  # a stale PDF must not pass for this one
    assert _running_in_session(printer._proc.pid) == []  # a failed printer is gone


def test_a_print_past_its_deadline_is_an_error_and_stops_the_browser(page: Path, tmp_path: Path) -> None:
    printer = start_pdf_printer()
    with pytest.raises(ExportError, match="did not print the PDF within"):
        printer.print_pdf(page, tmp_path / "late.pdf", timeout_s=0.0)
    assert _running_in_session(printer._proc.pid) == []
