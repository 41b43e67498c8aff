"""One run from params file to exported report, and the re-render of a stored run.

Readable top to bottom: load, prepare, execute, summarise, render, export.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .core.errors import ExportError, RunError, StabilityError
from .core.models import Status
from .execution.evidence import write_json_atomic, write_text_atomic
from .execution.notebooks import (
    SectionRun,
    execute_notebook,
    execute_sections,
    interrupt_signal,
    notebooks_for,
    prepare_run_dir,
    stop_all_kernels,
)
from .execution.params import LenientEnv, Params, load_params
from .execution.secrets import redact_file, redact_obj, redact_text, secret_values
from .execution.section import utc_now
from .report.claims_junit import CLAIMS_JUNIT_FILE, claims_junit_xml
from .report.export import CHROMIUM_INSTALL_HINT, export_html, find_chromium, html_to_pdf, warm_html_export
from .report.pdf_printer import PdfPrinter, start_pdf_printer
from .report.summary import summarize_run

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
    pdf: bool = True,
    progress: Progress = print,
    before_sections: Callable[[], None] | None = None,
    after_sections: Callable[[], None] | None = None,
) -> RunOutcome:
    """Run every enabled section, then render and export the report (``pdf=False``: HTML only,
    and no Chromium needed).

    ``before_sections``: called once the kernels are starting, before the first section runs
    (a target still booting is waited for there, while the kernels start); a StabilityError it
    raises ends the run before any section ran, and the run directory is removed.
    ``after_sections``: called once every section is done, before the report (it touches no
    target: the targets can shut down while it renders).

    Raises ParamsError (bad params, missing variable) and ExportError (no Chromium)
    before anything runs: those are "could not run" (exit 3). Once the run directory
    exists, any other failure of ours is a RunError whose traceback is in run.log.
    On SIGINT/SIGTERM/SIGHUP (KeyboardInterrupt) every kernel is killed, the unfinished
    sections are ERROR evidence, run.json records the interruption and summary.json
    says INCONCLUSIVE; the KeyboardInterrupt is re-raised with ``run_dir`` set on it.
    """
    overrides = list(overrides or [])
    params_file = Path(params_file)
    params, raw = load_params(params_file, overrides)
    if pdf and find_chromium() is None:
        raise ExportError(f"Chromium not found; install it with: {CHROMIUM_INSTALL_HINT}")
    secrets = secret_values(raw, os.environ)
    run_dir = prepare_run_dir(params_file, raw, params, Path(out) if out else None, overrides, secrets)
    log = _Log(run_dir / "run.log", progress, secrets)
    with _failures_logged(run_dir, secrets):
        t0 = time.monotonic()
        not_ready: list[StabilityError] = []

        def targets_ready() -> None:
            if before_sections is not None:
                try:
                    before_sections()
                except StabilityError as exc:
                    not_ready.append(exc)
                    raise

        try:  # from the first line on: run.json exists, an interrupt is recorded in it
            log(f"stability-proof: {params.title} [{params.environment}] -> {run_dir}")
            target = (
                params.target.base_url if params.has_live_target else "none (no enabled section needs a live target)"
            )
            log(f"target {target}" + (f", baseline {params.baseline.base_url}" if params.baseline else ""))
            sections = execute_sections(
                run_dir, params, workers=workers, progress=log, secrets=secrets, before_first=targets_ready
            )
        except KeyboardInterrupt as exc:
            _record_interruption(run_dir, interrupt_signal(exc), secrets, log)
            raise
        except StabilityError as exc:
            if exc in not_ready:  # nothing ran: no run directory to mistake for a run
                stop_all_kernels()  # first: a kernel still starting in it must not see it vanish
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        log(f"sections done in {time.monotonic() - t0:.1f} s")
        if after_sections is not None:
            after_sections()
        outcome = render_report(run_dir, pdf=pdf, progress=log)
    return RunOutcome(
        outcome.run_dir,
        outcome.verdict,
        outcome.exit_code,
        outcome.html,
        outcome.pdf,
        outcome.summary,
        tuple(sections),
        outcome.problems,
    )


class _Log:
    """Progress to the terminal and to run.log, secret values scrubbed. A run.log that cannot be
    written (a full disk) costs the log, not the run: the terminal still gets every line."""

    def __init__(self, path: Path, echo: Progress, secrets: frozenset[str] = frozenset()) -> None:
        self.path, self.echo, self.secrets = path, echo, secrets
        self.broken = False

    def __call__(self, line: str) -> None:
        line = redact_text(line, self.secrets)
        self.echo(line)
        self.write(line + "\n")

    def write(self, text: str) -> None:
        """Append to run.log only (tracebacks: for whoever debugs, not for the terminal)."""
        if self.broken:
            return
        try:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(redact_text(text, self.secrets))
        except OSError as exc:
            self.broken = True
            self.echo(f"warning: run.log can no longer be written: {exc.strerror or exc}")


@contextmanager
def _failures_logged(run_dir: Path, secrets: frozenset[str]) -> Iterator[None]:
    """Inside a run directory: an interrupt kills every kernel on its way out; an unexpected
    exception leaves its traceback in run.log and becomes one redacted line (a RunError)."""
    try:
        yield
    except KeyboardInterrupt as exc:
        stop_all_kernels()
        exc.run_dir = run_dir  # type: ignore[attr-defined]  # the CLI names the partial run
        raise
    except StabilityError:
        raise
    except Exception as exc:
        stop_all_kernels()
        _Log(run_dir / "run.log", lambda line: None, secrets).write("".join(traceback.format_exception(exc)))
        if isinstance(exc, OSError) and exc.strerror:  # a full disk: say so plainly
            text = f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
        else:
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        message = (redact_text(text, secrets).splitlines() or [""])[0][:300]
        raise RunError(f"{message} (traceback in {run_dir / 'run.log'})") from None


def _record_interruption(run_dir: Path, signal_name: str, secrets: frozenset[str], log: _Log) -> None:
    """run.json says the run was interrupted, and summary.json says INCONCLUSIVE (never a stale verdict)."""
    try:
        meta = _read_meta(run_dir)
        meta["interrupted"] = {"signal": signal_name, "at": utc_now()}
        meta.setdefault("finished_at", utc_now())
        write_json_atomic(run_dir / "run.json", meta)
        (run_dir / "summary.json").unlink(missing_ok=True)
        write_json_atomic(run_dir / "summary.json", redact_obj(summarize_run(run_dir), secrets))
    except Exception as exc:  # interrupted and the disk is gone too: the exit code still says so
        log.write(f"could not record the interruption: {type(exc).__name__}: {exc}\n")
    log(
        f"interrupted by {signal_name}: every process the run started is stopped; "
        f"`stability report {run_dir}` renders what was found (INCONCLUSIVE)"
    )


def _read_meta(run_dir: Path) -> dict[str, Any]:
    try:
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise RunError(f"{run_dir / 'run.json'} is unreadable: {exc}"[:300]) from None
    if not isinstance(meta, dict):
        raise RunError(f"{run_dir / 'run.json'} is not a run description (a JSON object)")
    return meta


def _stored_params(run_dir: Path) -> tuple[Params, dict[str, Any]]:
    try:
        return load_params(run_dir / "params.yaml", env=LenientEnv())
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise RunError(f"{run_dir / 'params.yaml'} is unreadable: {type(exc).__name__}: {exc}"[:300]) from None


def render_report(run_dir: str | Path, *, pdf: bool = True, progress: Progress = print) -> RunOutcome:
    """Summarise stored evidence, execute the report notebook, export HTML and (unless ``pdf`` is
    False) PDF; without a PDF asked for, a missing Chromium costs nothing.

    Touches no target: everything comes from the run directory. A failing report
    notebook falls back to a plain HTML page built from summary.json. The previous
    summary.json, report.html and report.pdf are removed first: a re-render that
    fails must not leave an old verdict looking current.
    """
    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise RunError(f"no run directory at {run_dir}")
    meta_file = run_dir / "run.json"
    if not meta_file.is_file():
        raise RunError(f"{run_dir} is not a run directory (no run.json)")
    for stale in ("summary.json", CLAIMS_JUNIT_FILE, "report.html", "report.pdf"):
        try:
            (run_dir / stale).unlink(missing_ok=True)
        except OSError as exc:
            raise RunError(f"cannot replace {run_dir / stale}: {exc.strerror or exc}") from None
    meta = _read_meta(run_dir)
    params, raw = _stored_params(run_dir)
    secrets = secret_values(raw, os.environ)
    with _failures_logged(run_dir, secrets):
        return _render(run_dir, meta, params, secrets, lambda line: progress(redact_text(line, secrets)), pdf=pdf)


def _render(
    run_dir: Path, meta: dict[str, Any], params: Params, secrets: frozenset[str], progress: Progress, *, pdf: bool
) -> RunOutcome:
    printer = _start_pdf_printer() if pdf else None
    try:
        return _render_with(run_dir, meta, params, secrets, progress, pdf=pdf, printer=printer)
    finally:
        if printer is not None:
            printer.close()  # Chromium runs in a session of its own: only this stops it on Ctrl-C


def _start_pdf_printer() -> PdfPrinter | None:
    """A browser starting now, so its start-up (about 1 s) overlaps the summary and the report notebook;
    the nbconvert exporter warms up alongside. None without Chromium: html_to_pdf then says so."""
    threading.Thread(target=warm_html_export, name="stability-warm-export", daemon=True).start()
    try:
        return start_pdf_printer()
    except ExportError:
        return None


def _render_with(
    run_dir: Path,
    meta: dict[str, Any],
    params: Params,
    secrets: frozenset[str],
    progress: Progress,
    *,
    pdf: bool,
    printer: PdfPrinter | None,
) -> RunOutcome:
    problems: list[str] = []
    meta_file = run_dir / "run.json"
    if "finished_at" not in meta:  # a re-render keeps the run's own end time
        meta["finished_at"] = utc_now()
        write_json_atomic(meta_file, meta)
    summary = redact_obj(summarize_run(run_dir), secrets)
    summary_path = write_json_atomic(run_dir / "summary.json", summary)
    # The claims as test cases, for CI test-report views (Jenkins, GitLab, GitHub).
    write_text_atomic(run_dir / CLAIMS_JUNIT_FILE, claims_junit_xml(summary))
    verdict = Status(summary["verdict"])
    t0 = time.monotonic()
    report_nb = run_dir / "notebooks" / "report.ipynb"
    html_path, pdf_path = run_dir / "report.html", run_dir / "report.pdf"
    try:
        execute_notebook(
            notebooks_for(run_dir, params) / "report.ipynb",
            report_nb,
            {"run_dir": str(run_dir), "params_path": str(run_dir / "params.yaml")},
            cwd=run_dir,
            timeout_s=params.runner.section_timeout_s,
        )
        redact_file(report_nb, secrets)  # before export: the HTML and PDF come from it
        export_html(report_nb, html_path)
    except Exception as exc:  # never leave without a report: fall back to summary-only HTML
        redact_file(report_nb, secrets)
        problems.append(
            redact_text(f"report notebook failed: {type(exc).__name__}: {getattr(exc, 'evalue', exc)}", secrets)[:500]
        )
        from .report.fallback import fallback_html

        html_path.write_text(fallback_html(summary, problems[-1]), encoding="utf-8")
    redact_file(html_path, secrets)
    pdf_file: Path | None = None
    if pdf:
        try:
            pdf_file = html_to_pdf(html_path, pdf_path, printer=printer)
        except ExportError as exc:
            problems.append(str(exc))
    progress(f"report rendered in {time.monotonic() - t0:.1f} s")
    exit_code = summary["exit_code"]
    if pdf and pdf_file is None:
        exit_code = 3  # the run could not be completed: no PDF for the stakeholder
    for p in problems:
        progress(f"problem: {p}")
    progress(f"VERDICT: {verdict.value} ({summary['verdict_reason']})")
    progress(f"report: {html_path}")
    if pdf_file:
        progress(f"pdf:    {pdf_file}")
    progress(f"summary: {summary_path}")
    return RunOutcome(run_dir, verdict, exit_code, html_path, pdf_file, summary_path, (), tuple(problems))
