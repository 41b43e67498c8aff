"""One run from params file to exported report, and the re-render of a stored run.

Readable top to bottom: load, prepare, execute, summarise, render, export.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ._errors import ExportError
from ._evidence import write_json_atomic
from ._export import CHROMIUM_INSTALL_HINT, export_html, find_chromium, html_to_pdf
from ._models import Status
from ._params import LenientEnv, load_params
from ._runner import SectionRun, execute_notebook, execute_sections, notebooks_for, prepare_run_dir
from ._secrets import redact_text, secret_values
from ._section import utc_now
from ._summary import summarize_run

__all__ = ["RunOutcome", "run", "render_report"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunOutcome:
    run_dir: Path
    verdict: Status
    exit_code: int
    html: Path | None
    pdf: Path | None
    summary: Path
    sections: tuple[SectionRun, ...] = ()
    problems: tuple[str, ...] = field(default_factory=tuple)


def run(
    params_file: str | Path,
    *,
    overrides: list[str] | None = None,
    out: str | Path | None = None,
    workers: int | None = None,
    progress: Progress = print,
) -> RunOutcome:
    """Run every enabled section, then render and export the report.

    Raises ParamsError (bad params, missing variable) and ExportError (no Chromium)
    before anything runs: those are "could not run" (exit 3).
    """
    overrides = list(overrides or [])
    params_file = Path(params_file)
    params, raw = load_params(params_file, overrides)
    if find_chromium() is None:
        raise ExportError(f"Chromium not found; install it with: {CHROMIUM_INSTALL_HINT}")
    run_dir = prepare_run_dir(params_file, raw, params, Path(out) if out else None, overrides)
    secrets = secret_values(raw, os.environ)
    log = _Log(run_dir / "run.log", progress, secrets)
    log(f"stability-proof: {params.title} [{params.environment}] -> {run_dir}")
    log(f"target {params.target.base_url}" + (f", baseline {params.baseline.base_url}" if params.baseline else ""))
    t0 = time.monotonic()
    sections = execute_sections(run_dir, params, workers=workers, progress=log, secrets=secrets)
    log(f"sections done in {time.monotonic() - t0:.1f} s")
    outcome = render_report(run_dir, progress=log)
    return RunOutcome(
        outcome.run_dir, outcome.verdict, outcome.exit_code, outcome.html, outcome.pdf, outcome.summary,
        tuple(sections), outcome.problems,
    )


class _Log:
    """Progress to the terminal and to run.log, secret values scrubbed."""

    def __init__(self, path: Path, echo: Progress, secrets: frozenset[str] = frozenset()) -> None:
        self.path, self.echo, self.secrets = path, echo, secrets

    def __call__(self, line: str) -> None:
        line = redact_text(line, self.secrets)
        self.echo(line)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def render_report(run_dir: str | Path, *, progress: Progress = print) -> RunOutcome:
    """Summarise stored evidence, execute the report notebook, export HTML and PDF.

    Touches no target: everything comes from the run directory. A failing report
    notebook falls back to a plain HTML page built from summary.json.
    """
    run_dir = Path(run_dir)
    problems: list[str] = []
    meta_file = run_dir / "run.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if "finished_at" not in meta:  # a re-render keeps the run's own end time
        meta["finished_at"] = utc_now()
        write_json_atomic(meta_file, meta)
    summary = summarize_run(run_dir)
    summary_path = write_json_atomic(run_dir / "summary.json", summary)
    verdict = Status(summary["verdict"])
    t0 = time.monotonic()
    report_nb = run_dir / "notebooks" / "report.ipynb"
    html_path, pdf_path = run_dir / "report.html", run_dir / "report.pdf"
    try:
        params = load_params(run_dir / "params.yaml", env=LenientEnv())[0]
        execute_notebook(
            notebooks_for(run_dir, params) / "report.ipynb",
            report_nb,
            {"run_dir": str(run_dir.resolve()), "params_path": str((run_dir / "params.yaml").resolve())},
            cwd=run_dir,
            timeout_s=params.runner.section_timeout_s,
        )
        export_html(report_nb, html_path)
    except Exception as exc:  # never leave without a report: fall back to summary-only HTML
        problems.append(f"report notebook failed: {type(exc).__name__}: {getattr(exc, 'evalue', exc)}"[:500])
        from ._fallback import fallback_html

        html_path.write_text(fallback_html(summary, problems[-1]), encoding="utf-8")
    pdf: Path | None = None
    try:
        pdf = html_to_pdf(html_path, pdf_path)
    except ExportError as exc:
        problems.append(str(exc))
    progress(f"report rendered in {time.monotonic() - t0:.1f} s")
    exit_code = summary["exit_code"]
    if pdf is None:
        exit_code = 3  # the run could not be completed: no PDF for the stakeholder
    for p in problems:
        progress(f"problem: {p}")
    progress(f"VERDICT: {verdict.value} ({summary['verdict_reason']})")
    progress(f"report: {html_path}")
    if pdf:
        progress(f"pdf:    {pdf}")
    progress(f"summary: {summary_path}")
    return RunOutcome(run_dir, verdict, exit_code, html_path, pdf, summary_path, (), tuple(problems))
