"""The report a release manager reads (issue 15): page 1 answers "can we ship?", and no table or
banner cuts, overflows or breaks a word, in the HTML and at A4 print width, in real Chromium.

Runs are made from evidence files alone (`stability report RUN_DIR`), with claims built by the
real statistics (their structured figures included); the demo report comes from a real demo run.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from support import run_cli

from stability_lib import Claim, EvidenceRef, SectionResult, Status
from stability_lib.core.verdict import section_status
from stability_lib.execution.evidence import write_evidence, write_json_atomic
from stability_lib.report.export import find_chromium
from stability_lib.report.frontpage import front_items
from stability_lib.report.pdf_printer import CHROMIUM_FLAGS
from stability_lib.stats.fixes import compare_failure_rates
from stability_lib.stats.performance import compare_samples
from stability_lib.stats.rates import rate_estimate

pytestmark = pytest.mark.slow

# The demo report was 22 A4 pages before issue 15 (24 with a slow machine's INCONCLUSIVE performance
# section); after it, 15 on that same run. The bound leaves room for a longer failure list, not for a regression.
DEMO_PAGES_BEFORE = 22
DEMO_PAGES_MAX = 17

# A4 minus the @page margins (13 mm each side) at 96 px per inch: the width a printed page lays out at.
PRINT_WIDTH_PX = round((210 - 26) / 25.4 * 96)

PARAMS = """title: "Chat backend: fix for WebSocket sessions closed with 1011"
description: "The candidate build fixes WebSocket sessions that died with close code 1011."
environment: local
target: {base_url: "http://127.0.0.1:9"}
baseline: {base_url: "http://127.0.0.1:10"}
sections:
  health: {samples: 5}
  websocket: {}
  golden_path: {}
  performance: {}
scenario:
  users: {password: "${NOT_NEEDED_TO_RENDER}"}
  golden_path:
    steps: [{kind: http, name: ping, method: GET, path: /health}]
"""


def _claim(
    section: str, check: str, statement: str, status: Status, statistic: str, figure=None, *, required: bool = True
) -> Claim:
    return Claim(
        f"{section}.{check}",
        section,
        statement,
        status,
        statistic,
        required,
        (EvidenceRef(section, f"evidence/{section}.json"),),
        figure=figure,
    )


def _perf(op: str, factor: float, n: int, seed: int, *, required: bool = True) -> tuple[Claim, dict]:
    rng = np.random.default_rng(seed)
    a = rng.lognormal(np.log(12.0), 0.08, n)
    b = rng.lognormal(np.log(12.0 * factor), 0.08, n)
    cmp = compare_samples(
        a, b, tolerance=0.1, resamples=2000, seed=0, min_samples=20, unit="ms", confidence=0.9875 if required else 0.95
    )
    statistic = cmp.describe() + ("; interval Bonferroni-adjusted over 4 judged operations" if required else "")
    claim = _claim(
        "performance",
        op,
        f"'{op}' is no more than 10% slower than the baseline (median)",
        cmp.verdict.status,
        statistic if required else "informative only: not selected; " + statistic,
        cmp.figure(),
        required=required,
    )
    return claim, {"operation": op, "judged": required, **cmp.serialize()}, a.tolist(), b.tolist()


def make_run(root: Path, kind: str) -> Path:
    """A run directory as `stability run` leaves it before the report: PASS, FAIL or INCONCLUSIVE."""
    run = root / kind
    (run / "notebooks").mkdir(parents=True)
    (run / "params.yaml").write_text(PARAMS)
    write_json_atomic(
        run / "run.json",
        {
            "run_id": f"layout-{kind.lower()}",
            "base_dir": str(root),
            "started_at": "2026-11-30T09:00:00+00:00",
            "tool_version": "test",
            "params_file": str(run / "params.yaml"),
            "commit": "3f9c2ab",
            "targets": {
                "candidate": "http://127.0.0.1:9/api/v2/chat-backend_candidate",
                "baseline": "http://127.0.0.1:10/api/v2/chat-backend_baseline",
            },
        },
    )
    fail = kind == "FAIL"
    health_bad = 2 if fail else 0
    health = _claim(
        "health",
        "http.health",
        "GET /health answers 200 with keys status, version",
        Status.FAIL if fail else Status.PASS,
        f"{5 - health_bad} of 5 requests as expected"
        + ("; first problem: timeout(execute:exec_long_running_query)" if fail else ""),
        rate_estimate(health_bad, 5).figure("requests not as expected") if fail else None,
    )
    write_evidence(run, SectionResult("health", health.status, claims=(health,), duration_s=1.0))

    crashes = 15 if fail else 0
    crash_est = rate_estimate(crashes, 400)
    fix = compare_failure_rates(18, 400, crashes, 400, 0.01)
    ws_claims = (
        _claim(
            "websocket",
            "no_1011_or_1006",
            "No session closed with 1011 or dropped (1006)",
            Status.FAIL if fail else Status.PASS,
            f"{crashes} of 400 sessions closed with 1011/1006 ({crash_est.describe()})",
            crash_est.figure("sessions closed with 1011/1006", tolerance=0.01),
        ),
        _claim(
            "websocket",
            "fix_works",
            "The fix works: fewer sessions close with 1011/1006 than on the baseline",
            fix.status.status,
            fix.describe(),
            fix.figure(),
        ),
    )
    write_evidence(run, SectionResult("websocket", section_status(list(ws_claims)), claims=ws_claims, duration_s=30.0))

    golden = _claim(
        "golden_path",
        "succeeds_for_every_user",
        "Golden path succeeds for every user",
        Status.PASS,
        "20 of 20 runs succeeded (4 users; failure rate 95% upper bound 13.91%)",
        rate_estimate(0, 20).figure("runs failed"),
    )
    write_evidence(
        run,
        SectionResult(
            "golden_path",
            Status.PASS,
            claims=(golden,),
            duration_s=10.0,
            data={
                "durations_ms": {"step:auth.login": [400.0, 420.0, 410.0], "agent_session:agent#1": [12.0, 14.0, 13.0]},
                "runs": [],
            },
        ),
    )

    factor, n = {"PASS": (1.0, 60), "FAIL": (1.5, 60), "INCONCLUSIVE": (1.08, 21)}[kind]
    perf = [
        _perf("agent_session:agent#1", 1.0 if kind == "PASS" else factor, n, 1),
        _perf("step:create_thread", factor, n, 2),
        _perf("step:list_messages", 1.0, n, 3),
        _perf("agent_session:connect", 1.02, n, 4, required=False),
    ]
    perf_claims = tuple(p[0] for p in perf)
    samples = {
        "baseline": {p[1]["operation"]: p[2] for p in perf},
        "candidate": {p[1]["operation"]: p[3] for p in perf},
    }
    write_evidence(
        run,
        SectionResult(
            "performance",
            section_status(list(perf_claims)),
            claims=perf_claims,
            duration_s=40.0,
            data={
                "comparisons": [p[1] for p in perf],
                "tolerance": 0.1,
                "samples": samples,
                "baseline_source": "live target http://127.0.0.1:10, interleaved A/B",
            },
        ),
    )
    return run


def _render(run: Path, expected_exit: int) -> Path:
    proc = run_cli(["report", str(run)])
    assert proc.returncode == expected_exit, proc.stdout[-2000:] + proc.stderr[-2000:]
    return run


KINDS = (("PASS", 0), ("FAIL", 1), ("INCONCLUSIVE", 2))


@pytest.fixture(scope="module")
def runs(shared_dir: Path) -> dict[str, Path]:
    """The three rendered runs, made once per session and only read by the tests (both workers)."""
    from conftest import built_once

    def build(root: Path) -> None:
        for kind, code in KINDS:
            _render(make_run(root, kind), code)

    root = built_once(shared_dir, "layout-runs", build)
    return {kind: root / kind for kind, _ in KINDS}


# ---------------------------------------------------------------- layout, measured in Chromium

# Injected into a test copy only: the real report forbids scripts by CSP.
LAYOUT_PROBE = r"""
<script>
(function () {
  const bad = [];
  const say = (what, el, text) => bad.push(what + ": " + (el.className || el.tagName) + ": " + (text || el.textContent).trim().slice(0, 90));
  const boxes = document.querySelectorAll("table td, table th, .sp-banner, .sp-banner *");
  for (const el of boxes) {
    if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1) say("overflows (" + el.scrollWidth + ">" + el.clientWidth + ")", el);
  }
  for (const t of document.querySelectorAll("table")) {
    const outer = t.parentElement.getBoundingClientRect(), r = t.getBoundingClientRect();
    if (r.right > outer.right + 1) say("table wider than its box", t, t.rows[0] ? t.rows[0].textContent : "");
  }
  for (const b of document.querySelectorAll("td .sp-status, th .sp-status")) {
    const cell = b.closest("td, th"), c = cell.getBoundingClientRect(), r = b.getBoundingClientRect();
    if (r.right > c.right + 0.5 || r.left < c.left - 0.5) say("badge outside its cell", b);
  }
  // Each run of text between spaces (and between <wbr> break points) must sit on one line,
  // inside its cell or banner.
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let node;
  while ((node = walker.nextNode())) {
    const box = node.parentElement && node.parentElement.closest("td, th, .sp-banner");
    if (!box) continue;
    const limit = box.getBoundingClientRect();
    // A line may break at a space or after a hyphen ("one-|sided"), never inside a run of letters.
    const words = /[^\s\-\u2010-\u2014]+/g;
    let m;
    while ((m = words.exec(node.data))) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const rects = [...range.getClientRects()].filter((x) => x.width > 0);
      // Program output (.sp-machine: a test's failure message) may wrap anywhere; it must still fit.
      const machine = node.parentElement.closest(".sp-machine");
      if (!machine && new Set(rects.map((x) => Math.round(x.bottom))).size > 1) say("word broken inside", box, m[0]);
      if (rects.some((x) => x.right > limit.right + 0.5)) say("text past its box", box, m[0]);
    }
  }
  const out = document.createElement("pre");
  out.id = "layout-probe";
  out.textContent = JSON.stringify(bad);
  document.body.appendChild(out);
})();
</script>
"""


def layout_defects(html_path: Path, width: int, *, print_media: bool) -> list[str]:
    html = html_path.read_text(encoding="utf-8")
    html = re.sub(r"<meta[^>]*Content-Security-Policy[^>]*>", "", html)
    if print_media:  # lay out as on paper: the print rules apply, at the printed page's width
        html = html.replace("@media print", "@media all")
    probe = html_path.with_name(f"layout-probe-{width}.html")
    probe.write_text(html.replace("</body>", LAYOUT_PROBE + "</body>"), encoding="utf-8")
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [
                find_chromium(),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},1200",
                "--dump-dom",
                probe.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    probe.unlink()
    found = re.search(r'<pre id="layout-probe">(.*?)</pre>', dom, re.S)
    assert found, "the layout probe did not run: " + dom[-500:]
    import html as html_lib

    return json.loads(html_lib.unescape(found.group(1)))


@pytest.mark.parametrize("kind", ["FAIL", "INCONCLUSIVE"])
@pytest.mark.parametrize(("width", "print_media"), [(PRINT_WIDTH_PX, True), (1200, False)])
def test_no_cell_or_banner_overflows_and_no_word_breaks(
    runs: dict[str, Path], kind: str, width: int, print_media: bool
) -> None:
    assert layout_defects(runs[kind] / "report.html", width, print_media=print_media) == []


@pytest.mark.perf  # reads the session's demo run (conftest), made in the serial phase
@pytest.mark.parametrize(("width", "print_media"), [(PRINT_WIDTH_PX, True), (1200, False)])
def test_demo_report_has_no_layout_defect(demo_run: Path, width: int, print_media: bool) -> None:
    assert layout_defects(demo_run / "report.html", width, print_media=print_media) == []


def test_the_probe_sees_a_broken_word_and_an_overflowing_badge(tmp_path: Path) -> None:
    """The layout test can fail: a narrow column that breaks a word, and a badge wider than its cell."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<html><body><table style='table-layout:fixed;width:300px'><colgroup><col style='width:40px'><col></colgroup>"
        "<tr><td style='overflow-wrap:anywhere'>Performance</td><td>x</td></tr>"
        "<tr><td><span class='sp-status' style='white-space:nowrap'>INCONCLUSIVE</span></td><td>y</td></tr></table></body></html>"
    )
    found = " | ".join(layout_defects(page, 800, print_media=False))
    assert "word broken inside" in found and "badge outside its cell" in found


# ---------------------------------------------------------------- page 1 of the PDF


def page_one(pdf: Path) -> str:
    text = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    return " ".join(text.split())


@pytest.mark.parametrize("kind", ["PASS", "FAIL", "INCONCLUSIVE"])
def test_page_one_says_the_verdict_what_is_open_and_the_decisive_figures(runs: dict[str, Path], kind: str) -> None:
    summary = json.loads((runs[kind] / "summary.json").read_text())
    assert summary["verdict"] == kind
    text = page_one(runs[kind] / "report.pdf")
    assert f"Verdict: {kind}" in text
    open_items, proven, _ = front_items(summary)
    required_open = [c for c in summary["claims"] if c["required"] and c["status"] != "PASS"]
    assert len(open_items) == len(required_open) and (kind == "PASS") is (not required_open)
    for claim in required_open:
        assert " ".join(claim["statement"].split()) in text, claim["statement"]
    for item in [*open_items, *proven]:
        assert " ".join(item.figure.split()) in text, item.figure
    assert "3f9c2ab" in text  # the commit under test
    assert "All checks at a glance" in text and "Performance against the baseline" in text  # the grid fits too
    if kind == "PASS":  # the headline figures, as a release manager reads them
        assert "1011/1006 closes fell from 18 of 400 (4.5%) on the baseline to 0 of 400 (upper bound 0.75%)" in text
        assert re.search(r"median \d\.\d\d× baseline, 98\.75% interval \d\.\d\d–\d\.\d\d \(limit 1\.10×\)", text)


def test_summary_json_carries_structured_figures(runs: dict[str, Path]) -> None:
    claims = {c["id"]: c for c in json.loads((runs["FAIL"] / "summary.json").read_text())["claims"]}
    fix = claims["websocket.fix_works"]["figure"]
    assert fix["kind"] == "rate" and (fix["k"], fix["n"], fix["baseline_k"], fix["baseline_n"]) == (15, 400, 18, 400)
    assert fix["test"].startswith("Fisher")
    perf = claims["performance.step:create_thread"]
    assert perf["status"] == "FAIL" and perf["figure"]["kind"] == "ratio" and perf["figure"]["low"] > 1.1
    assert (
        "figure" not in claims["golden_path.succeeds_for_every_user"]
        or claims["golden_path.succeeds_for_every_user"]["figure"]["n"] == 20
    )


def test_html_links_checks_to_sections_and_evidence_to_run_files(runs: dict[str, Path]) -> None:
    html = (runs["FAIL"] / "report.html").read_text()
    anchors = set(re.findall(r'id="([^"]+)"', html))
    links = re.findall(r'href="#([^"]+)"', html)
    assert links and not [link for link in links if link not in anchors]  # every link lands somewhere
    assert 'href="#section-performance"' in html and '<nav class="sp-toc">' in html
    files = set(re.findall(r'href="(evidence/[^"#]+)"', html))
    assert "evidence/websocket.json" in files and all((runs["FAIL"] / f).exists() for f in files)
    assert "<script" not in html.lower() and "http://127.0.0.1:9/api" in re.sub(r"<wbr/?>", "", html)


@pytest.mark.perf  # reads the session's demo run (conftest), made in the serial phase
def test_demo_page_one_holds_the_verdict_every_open_check_and_the_grid(demo_run: Path) -> None:
    summary = json.loads((demo_run / "summary.json").read_text())
    text = page_one(demo_run / "report.pdf")
    assert f"Verdict: {summary['verdict']}" in text and "All checks at a glance" in text
    open_items, proven, _ = front_items(summary)
    for item in [*open_items, *proven]:
        assert " ".join(item.statement.split()) in text and " ".join(item.figure.split()) in text, item


@pytest.mark.perf  # reads the session's demo run (conftest), made in the serial phase
def test_demo_report_is_shorter_and_keeps_every_check(demo_run: Path) -> None:
    info = subprocess.run(["pdfinfo", str(demo_run / "report.pdf")], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    assert pages <= DEMO_PAGES_MAX < DEMO_PAGES_BEFORE, pages
    import html as html_lib

    text = html_lib.unescape(re.sub(r"<wbr/?>", "", (demo_run / "report.html").read_text()))
    summary = json.loads((demo_run / "summary.json").read_text())
    for claim in summary["claims"]:  # no evidence dropped: every statistic is still in the HTML
        assert claim["statistic"][:120] in text, claim["id"]


def test_a_statement_several_sections_make_names_its_section_on_page_one() -> None:
    # Found reading a real run's report: "What the probe created was deleted again" three times in the
    # "Proven" list, with nothing to tell the golden path's from the soak's or the performance section's.
    from stability_lib.report.frontpage import front_page_html

    def claim(section: str, check: str, statement: str, status: str = "PASS") -> dict[str, object]:
        return {"id": f"{section}.{check}", "section": section, "statement": statement, "status": status}

    deleted = "What the probe created was deleted again"
    summary = {
        "title": "t",
        "verdict": "FAIL",
        "claims": [
            claim("golden_path", "teardown.steps_succeeded", deleted),
            claim("websocket", "teardown.steps_succeeded", deleted),
            claim("performance", "teardown.steps_succeeded", deleted, "FAIL"),
            claim("health", "http.api", "GET /api answers as expected"),
        ],
    }
    html = front_page_html(summary)
    assert html.count("Golden path: <a") == 1 and html.count("WebSocket sessions and close codes: <a") == 1
    assert "Service health:" not in html  # a statement of one section stays as it is
    assert "Performance against the baseline: <a" not in html  # alone in its list (not decided)


def test_every_rule_of_the_appendix_fits_its_cell_whole() -> None:
    # Found reading a real run's report: the three sequential rules shared one cell, ran together
    # ("...judges.Sequential failure-rate rule") and were cut ("… [916 more characters]").
    from stability_lib.report.render import MAX_CELL_CHARS
    from stability_lib.report.reportbook import _rules

    for name, text in _rules():
        assert len(text) <= MAX_CELL_CHARS, name
        assert "\n\n" not in text, name
