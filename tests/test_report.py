"""The report a stakeholder reads, rendered from evidence files alone (`stability report`)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest
from support import pdf_text, run_cli

from stability_lib import Claim, EvidenceRef, SectionResult, Status
from stability_lib.execution.evidence import write_evidence, write_json_atomic
from stability_lib.report.export import find_chromium
from stability_lib.report.pdf_printer import CHROMIUM_FLAGS

pytestmark = pytest.mark.slow

PAYLOAD = "<script>document.body.setAttribute('data-pwned','1')</script><img src=x onerror=\"document.body.setAttribute('data-pwned','2')\">"

PARAMS = """title: "Report rendering"
environment: local
target: {base_url: "http://127.0.0.1:9"}
sections:
  health: {samples: 1}
  golden_path: {}
  isolation: {users: 2}
  contract: {}
scenario:
  users: {password: "${NOT_NEEDED_TO_RENDER}"}
  golden_path:
    steps: [{kind: http, name: ping, method: GET, path: /health}]
"""


def claim(section: str, check: str, status: Status, statistic: str) -> Claim:
    return Claim(
        f"{section}.{check}",
        section,
        f"{section} {check} holds",
        status,
        statistic,
        evidence=(EvidenceRef(section, f"evidence/{section}.json"),),
    )


def make_run(root: Path) -> Path:
    run = root / "run"
    (run / "notebooks").mkdir(parents=True)
    (run / "params.yaml").write_text(PARAMS)
    write_json_atomic(
        run / "run.json",
        {
            "run_id": "synthetic",
            "base_dir": str(root),
            "started_at": "2026-11-26T00:00:00+00:00",
            "tool_version": "test",
            "params_file": str(run / "params.yaml"),
        },
    )
    sample = {
        "path": "/health",
        "index": 0,
        "status": 500,
        "latency_ms": 1.2,
        "error": None,
        "missing_keys": [],
        "body_excerpt": PAYLOAD,
    }
    write_evidence(
        run,
        SectionResult(
            "health",
            Status.FAIL,
            claims=(claim("health", "http", Status.FAIL, "0 of 1; body " + PAYLOAD),),
            data={"samples": [sample], "websocket": None},
            duration_s=1.0,
        ),
    )
    write_evidence(
        run,
        SectionResult(
            "golden_path",
            Status.PASS,
            claims=(claim("golden_path", "success", Status.PASS, "40 of 40"),),
            duration_s=2.0,
        ),
    )
    write_evidence(
        run,
        SectionResult(
            "isolation",
            Status.INCONCLUSIVE,
            claims=(claim("isolation", "no_leak", Status.INCONCLUSIVE, "1 user only"),),
            duration_s=1.0,
        ),
    )
    write_evidence(run, SectionResult("contract", Status.ERROR, error="RuntimeError: " + PAYLOAD, duration_s=0.5))
    return run


@pytest.fixture(scope="module")
def rendered(shared_dir: Path) -> Path:
    """The rendered run, made once per session and only read by the tests (both workers)."""
    from conftest import built_once

    def build(root: Path) -> None:
        proc = run_cli(["report", str(make_run(root))])
        assert proc.returncode == 1, proc.stdout + proc.stderr  # a required FAIL

    return built_once(shared_dir, "report-run", build) / "run"


def test_every_status_reaches_html_pdf_and_summary(rendered: Path) -> None:
    summary = json.loads((rendered / "summary.json").read_text())
    statuses = {c["id"]: c["status"] for c in summary["claims"]}
    assert statuses == {
        "health.http": "FAIL",
        "golden_path.success": "PASS",
        "isolation.no_leak": "INCONCLUSIVE",
        "contract.ran": "ERROR",
    }
    assert summary["verdict"] == "FAIL"
    html = (rendered / "report.html").read_text()
    text = pdf_text(rendered / "report.pdf")
    for status in ("PASS", "FAIL", "INCONCLUSIVE", "ERROR"):
        assert f"sp-{status}" in html and status in text
    assert "Page 1 of" in text  # page numbers from CSS @page


def test_untrusted_payload_is_escaped_and_inert(rendered: Path) -> None:
    html = (rendered / "report.html").read_text()
    assert "<script>document.body" not in html and "<img src=x" not in html
    assert "&lt;script&gt;document.body" in html
    chromium = find_chromium()
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--dump-dom",
                (rendered / "report.html").resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    assert "<body" in dom and 'data-pwned="' not in dom


def test_first_page_is_not_blank(rendered: Path, tmp_path: Path) -> None:
    subprocess.run(
        ["pdftoppm", "-r", "30", "-f", "1", "-l", "1", "-png", str(rendered / "report.pdf"), str(tmp_path / "p")],
        check=True,
    )
    png = next(tmp_path.glob("p*.png"))
    from matplotlib import image

    pixels = image.imread(str(png))
    assert pixels.std() > 0.05  # text and a verdict banner, not a white page
