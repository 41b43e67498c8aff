"""End to end: the real `stability` command, real kernels, real Chromium, the real sample service."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from support import pdf_text, run_cli

from stability_lib.report.export import external_references

pytestmark = pytest.mark.slow

HEALTH_ONLY = """
title: "Health only"
environment: local
target:
  base_url: ${TARGET_URL}
sections:
  health:
    samples: 2
    timeout_s: 2
    endpoints:
      - {path: /health, expect_status: 200, json_keys: [status]}
    websocket: {path: /ws/echo}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def notebooks_with_a_raise(tmp_path: Path, repo: Path, notebook: str, index: int | None, message: str) -> Path:
    """A copy of our notebooks in which ``notebook`` raises ``message`` at cell ``index`` (None: at the end)."""
    import shutil

    import nbformat

    nb_dir = tmp_path / "notebooks"
    shutil.copytree(repo / "notebooks", nb_dir)
    nb = nbformat.read(nb_dir / notebook, as_version=4)
    cell = nbformat.v4.new_code_cell(f"raise RuntimeError({message!r})")
    nb.cells.insert(len(nb.cells) if index is None else index, cell)
    nbformat.write(nb, nb_dir / notebook)
    return nb_dir


def test_health_run_against_the_sample_service_passes_with_an_offline_report(
    tmp_path: Path, candidate_url: str
) -> None:
    params = tmp_path / "health.yaml"
    params.write_text(HEALTH_ONLY)
    out = tmp_path / "run"
    proc = run_cli(["run", str(params), "--out", str(out)], env={"TARGET_URL": candidate_url})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "PASS"
    assert {c["id"] for c in summary["claims"]} >= {"health.http.health", "health.websocket_echo"}
    html = (out / "report.html").read_text()
    assert "health.http.health" in html and "health.websocket_echo" in html  # page layout: test_report*.py
    assert 'class="jp-InputArea' not in html and "open_report" not in html  # no code cells
    assert external_references(html) == []
    assert not re.search(r"<script[^>]+src=", html)
    assert "Verdict: PASS" in pdf_text(out / "report.pdf")
    # progress: one line per section with its status, then the verdict and paths
    assert re.search(r"health\s+PASS", proc.stdout) and "VERDICT: PASS" in proc.stdout and "report.pdf" in proc.stdout


def test_unreachable_service_fails_and_still_writes_the_report(tmp_path: Path) -> None:
    params = tmp_path / "health.yaml"
    params.write_text(HEALTH_ONLY)
    out = tmp_path / "run"
    proc = run_cli(["run", str(params), "--out", str(out)], env={"TARGET_URL": f"http://127.0.0.1:{free_port()}"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "FAIL"
    evidence = json.loads((out / "evidence" / "health.json").read_text())
    assert any("ConnectError" in (s["error"] or "") for s in evidence["data"]["samples"])
    assert (out / "report.html").exists() and "FAIL" in pdf_text(out / "report.pdf")
    # The claims as JUnit for CI test views: the failing check is a failure there too.
    from stability_lib.suites.junit import parse_junit

    claims = parse_junit((out / "claims.junit.xml").read_bytes())
    assert claims.total == len(summary["claims"]) and claims.failed >= 1


@pytest.mark.parametrize(
    ("extra", "env", "expected"),
    [
        ("colour: blue\n", {"TARGET_URL": "http://127.0.0.1:1"}, "colour: unknown key"),
        ("", {}, "TARGET_URL"),
    ],
)
def test_bad_params_cannot_run(tmp_path: Path, extra: str, env: dict[str, str], expected: str, monkeypatch) -> None:
    monkeypatch.delenv("TARGET_URL", raising=False)
    params = tmp_path / "bad.yaml"
    params.write_text(HEALTH_ONLY + extra)
    proc = run_cli(["run", str(params), "--out", str(tmp_path / "run")], env=env)
    assert proc.returncode == 3
    assert expected in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_a_section_that_raises_is_error_and_the_others_still_run(
    tmp_path: Path, candidate_url: str, repo: Path
) -> None:
    notebooks_with_a_raise(tmp_path, repo, "suites.ipynb", 3, "section exploded on purpose")
    params = tmp_path / "p.yaml"
    params.write_text(
        HEALTH_ONLY
        + '  suites:\n    categories: [{name: none, command: ["true"], junit_xml: none.xml}]\n'
        + "runner:\n  notebooks_dir: notebooks\n"
    )
    out = tmp_path / "run"
    # --no-pdf: the PDF path is the health run's test; this one is about the sections.
    proc = run_cli(["run", str(params), "--out", str(out), "--no-pdf"], env={"TARGET_URL": candidate_url})
    summary = json.loads((out / "summary.json").read_text())
    sections = {s["section"]: s for s in summary["sections"]}
    assert sections["suites"]["status"] == "ERROR"
    assert "section exploded on purpose" in sections["suites"]["error"]
    assert sections["health"]["status"] == "PASS"  # the other section still ran
    assert summary["verdict"] == "INCONCLUSIVE" and proc.returncode == 2
    assert "section exploded on purpose" in (out / "report.html").read_text()


def test_a_stray_python3_kernelspec_cannot_take_over(tmp_path: Path, candidate_url: str, monkeypatch) -> None:
    stray = tmp_path / "jupyter" / "kernels" / "python3"
    stray.mkdir(parents=True)
    (stray / "kernel.json").write_text(
        json.dumps(
            {
                "argv": ["/nonexistent/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "stray",
                "language": "python",
            }
        )
    )
    # The trap is armed: with this JUPYTER_PATH, "python3" resolves to a dead interpreter.
    from jupyter_client.kernelspec import KernelSpecManager

    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == "/nonexistent/bin/python3"
    params = tmp_path / "health.yaml"
    params.write_text(HEALTH_ONLY)
    out = tmp_path / "run"
    proc = run_cli(["run", str(params), "--out", str(out), "--no-pdf"], env={"TARGET_URL": candidate_url})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((out / "summary.json").read_text())["verdict"] == "PASS"


def test_a_section_that_breaks_after_its_findings_keeps_them(tmp_path: Path, repo: Path) -> None:
    notebooks_with_a_raise(tmp_path, repo, "health.ipynb", None, "chart cell broke")
    params = tmp_path / "p.yaml"
    params.write_text(HEALTH_ONLY + "runner:\n  notebooks_dir: notebooks\n")
    out = tmp_path / "run"
    proc = run_cli(
        ["run", str(params), "--out", str(out), "--no-pdf"], env={"TARGET_URL": f"http://127.0.0.1:{free_port()}"}
    )
    summary = json.loads((out / "summary.json").read_text())
    statuses = {c["id"]: c["status"] for c in summary["claims"]}
    assert statuses["health.http.health"] == "FAIL" and statuses["health.ran"] == "ERROR"
    assert summary["verdict"] == "FAIL" and proc.returncode == 1  # the finding survives the crash


def test_without_chromium_the_run_cannot_be_made_and_says_how_to_fix_it(tmp_path: Path) -> None:
    import sys

    params = tmp_path / "health.yaml"
    params.write_text(HEALTH_ONLY)
    proc = run_cli(
        ["run", str(params), "--out", str(tmp_path / "run")],
        env={"TARGET_URL": "http://127.0.0.1:1", "PATH": str(Path(sys.executable).parent)},
    )
    assert proc.returncode == 3
    assert "apt-get install -y --no-install-recommends chromium" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_broken_report_notebook_still_yields_a_report_with_the_verdict(
    tmp_path: Path, candidate_url: str, repo: Path
) -> None:
    notebooks_with_a_raise(tmp_path, repo, "report.ipynb", 2, "report notebook broke")
    params = tmp_path / "p.yaml"
    params.write_text(HEALTH_ONLY + "runner:\n  notebooks_dir: notebooks\n")
    out = tmp_path / "run"
    proc = run_cli(["run", str(params), "--out", str(out)], env={"TARGET_URL": candidate_url})
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the verdict stands; the page says what broke
    assert "problem: report notebook failed" in proc.stdout
    html = (out / "report.html").read_text()
    assert "could not be rendered" in html and "report notebook broke" in html and "Verdict: PASS" in html
    assert "Verdict: PASS" in pdf_text(out / "report.pdf")


def test_the_default_run_directory_is_relative_to_where_the_command_ran(tmp_path: Path, candidate_url: str) -> None:
    # Two notebooks run at once in threads: nothing may change the process's working directory
    # (papermill's cwd= does, and left relative run paths pointing nowhere).
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_slow.py").write_text("import time\n\ndef test_slow():\n    time.sleep(3)\n")
    params = tmp_path / "p.yaml"
    params.write_text(HEALTH_ONLY + "  suites:\n    categories: [{name: slow, paths: [test_slow.py], cwd: suite}]\n")
    proc = run_cli(["run", str(params), "--no-pdf"], env={"TARGET_URL": candidate_url}, cwd=tmp_path)
    runs = list((tmp_path / "runs").glob("*-p"))
    assert len(runs) == 1, proc.stdout + proc.stderr
    assert (runs[0] / "summary.json").exists() and (runs[0] / "report.html").exists()
    assert proc.returncode == 0, proc.stdout + proc.stderr


FILES_ONLY = """
title: "JUnit and spec files only"
environment: ci
sections:
  suites:
    categories:
      - {name: ci, junit_xml: reports/ci.xml}
  contract:
    baseline_spec: {file: spec.json}
    candidate_spec: {file: spec.json}
"""


def test_a_files_only_run_needs_no_target_and_with_no_pdf_no_chromium(tmp_path: Path) -> None:
    import sys

    (tmp_path / "reports").mkdir()
    report = '<testsuite name="s"><testcase classname="m" name="t"/></testsuite>'
    (tmp_path / "reports" / "ci.xml").write_text(report)
    spec = {"openapi": "3.0.3", "info": {"title": "s", "version": "1"}}
    spec["paths"] = {"/items": {"get": {"responses": {"200": {"description": "ok"}}}}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    params = tmp_path / "files.yaml"
    params.write_text(FILES_ONLY)
    out = tmp_path / "run"
    no_chromium = {"PATH": str(Path(sys.executable).parent)}  # as in the test without Chromium above
    proc = run_cli(["run", str(params), "--out", str(out), "--no-pdf"], env=no_chromium)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "PASS"
    assert {c["id"]: c["status"] for c in summary["claims"]} == {
        "suites.ci": "PASS",
        "contract.no_breaking_api_changes": "PASS",
    }
    assert (out / "report.html").is_file() and not (out / "report.pdf").exists()
    assert "target none" in proc.stdout and "pdf:" not in proc.stdout
    assert (tmp_path / "reports" / "ci.xml").read_text() == report  # read, never deleted
    # Without --no-pdf, the missing Chromium stops the run before anything runs.
    assert run_cli(["run", str(params), "--out", str(tmp_path / "r2")], env=no_chromium).returncode == 3
    assert not (tmp_path / "r2").exists()


def test_format_html_is_no_pdf_and_pdf_stays_the_default() -> None:
    from stability_lib.cli import _parser

    def fmt(*extra: str) -> str:
        return _parser().parse_args(["run", "p.yaml", *extra]).report_format

    assert (fmt(), fmt("--format", "html"), fmt("--no-pdf"), fmt("--format", "pdf")) == ("pdf", "html", "html", "pdf")
