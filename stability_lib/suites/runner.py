"""Test-suite section: run a team's existing test categories and report them truthfully.

Three layers, in ``suites.config``, ``suites.process`` (with ``suites.process_tree``) and
``suites.judgement``; this module orchestrates (``run_suites``, ``evaluate_run``):

* config (``SuitesConfig``/``CategoryConfig``), validated by pydantic;
* I/O, kept thin: ``run_category`` starts one command in its own session (so a
  timeout kills its children too) with a unique marker in its environment (so
  children that ``setsid`` away are found and stopped too), keeps a capped log
  and the output tail, and copies the JUnit/Cobertura files this run wrote
  (capped; never deleting anything); ``run_suites`` runs every category,
  reruns failing pytest tests when asked, and reads the baseline files;
* pure: ``judge_category`` (the verdict), ``category_claims``,
  ``diff_against_baseline``.

Verdict: a category PASSes only when tests ran and none failed or errored.
No test executed (or only skipped ones) is INCONCLUSIVE, and so are flaky
tests (passed only on a rerun) and a JUnit file that declares more tests,
failures or errors than it lists (the missing outcomes are unknown). A
timeout, a command that could not start or no JUnit XML is ERROR. An exit code that contradicts the XML is a warning (and
a non-zero exit never leaves a clean PASS).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path

from .config import CategoryConfig, CategoryRun, SuitesConfig
from .coverage import MAX_COVERAGE_BYTES, CoverageParseError, CoverageReport, parse_cobertura
from .judgement import _FAILING, CategoryResult, judge_category
from .junit import (
    MAX_JUNIT_BYTES,
    JUnitParseError,
    JUnitReport,
    TestCase,
    TestOutcome,
    parse_junit,
)
from .process import run_category
from .process_tree import CommandsInFlight

__all__ = [
    "evaluate_run",
    "load_junit",
    "run_suites",
    "pytest_node_id",
]


# --------------------------------------------------------------------------- orchestration (I/O)


def _read_capped(path: Path, limit: int) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(limit + 1)


def load_junit(path: Path | None) -> tuple[JUnitReport | None, str | None]:
    if path is None:
        return None, None
    try:
        return parse_junit(_read_capped(path, MAX_JUNIT_BYTES), source=path.name), None
    except JUnitParseError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"cannot read {path.name}: {exc.strerror}"


def _load_coverage(path: Path | None) -> tuple[CoverageReport | None, str | None]:
    if path is None:
        return None, None
    try:
        return parse_cobertura(_read_capped(path, MAX_COVERAGE_BYTES), source=path.name), None
    except CoverageParseError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"cannot read {path.name}: {exc.strerror}"


def pytest_node_id(case: TestCase, search_dirs: Sequence[Path]) -> str | None:
    """Rebuild an absolute pytest node id from an xunit1 testcase, or None.

    ``file`` is relative to pytest's rootdir, which we do not know; the first of
    ``search_dirs`` holding that file is taken as the rootdir.
    """
    if not case.file or not case.file.endswith(".py"):
        return None
    root = next((d for d in search_dirs if (d / case.file).is_file()), None)
    if root is None:
        return None
    module = case.file[: -len(".py")].replace("/", ".").replace("\\", ".")
    parts = [str((root / case.file).resolve())]
    if case.classname.startswith(module + "."):
        parts += case.classname[len(module) + 1 :].split(".")
    elif case.classname != module:
        return None
    parts.append(case.name)
    return "::".join(parts)


def evaluate_run(
    cfg: CategoryConfig,
    run: CategoryRun,
    *,
    rerun_runs: Sequence[CategoryRun] = (),
    not_rerun: Sequence[str] = (),
    baseline: JUnitReport | None = None,
) -> CategoryResult:
    """Read the files a run produced and judge it."""
    report, junit_error = load_junit(run.junit_path)
    coverage, coverage_error = _load_coverage(run.coverage_path)
    rerun_reports = []
    for rerun in rerun_runs:
        rerun_report, _ = load_junit(rerun.junit_path)
        if rerun_report is not None:
            rerun_reports.append(rerun_report)
    return judge_category(
        cfg,
        run,
        report,
        junit_error=junit_error,
        rerun_reports=rerun_reports,
        not_rerun=not_rerun,
        coverage=coverage,
        coverage_error=coverage_error,
        baseline=baseline,
    )


def run_suites(cfg: SuitesConfig, *, base_dir: Path, out_dir: Path, target_url: str | None) -> list[CategoryResult]:
    """Run every category (``cfg.concurrency`` at a time, in order); rerun failing tests if
    configured; diff against a baseline. Results come in the categories' order either way."""
    if not cfg.enabled:
        return []
    base_dir = Path(base_dir)
    if cfg.concurrency == 1 or len(cfg.categories) < 2:
        return [
            _run_and_judge(cfg, c, base_dir=base_dir, out_dir=out_dir, target_url=target_url) for c in cfg.categories
        ]
    in_flight = CommandsInFlight()
    with ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="suites-category") as pool:
        futures = [
            pool.submit(
                _run_and_judge, cfg, c, base_dir=base_dir, out_dir=out_dir, target_url=target_url, in_flight=in_flight
            )
            for c in cfg.categories
        ]
        try:
            # Short waits: Ctrl-C and SIGTERM reach this (main) thread only, between them.
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                for future in done:
                    future.result()  # a failure of ours surfaces now and stops the others
            return [f.result() for f in futures]
        except BaseException:
            # Ctrl-C, SIGTERM or a failure of ours: every running category stops with its whole
            # process tree, none starts; leaving the block waits for the workers to end.
            for future in futures:
                future.cancel()
            in_flight.stop_all()
            raise


def _run_and_judge(
    cfg: SuitesConfig,
    category: CategoryConfig,
    *,
    base_dir: Path,
    out_dir: Path,
    target_url: str | None,
    in_flight: CommandsInFlight | None = None,
) -> CategoryResult:
    """One category: its run, its reruns of failing tests, its baseline diff, its judgement."""
    run = run_category(category, base_dir=base_dir, out_dir=out_dir, target_url=target_url, in_flight=in_flight)
    report, _ = load_junit(run.junit_path)
    rerun_runs: list[CategoryRun] = []
    not_rerun: list[str] = []
    failing = report.cases_with(*_FAILING) if report else ()
    if cfg.rerun_failures and failing and category.uses_default_command and not run.timed_out:
        cwd = (base_dir / category.cwd).resolve()
        search = [cwd, *[(cwd / p) for p in category.paths if (cwd / p).is_dir()], *cwd.parents]
        pending: dict[str, str] = {}
        for case in failing:
            node = pytest_node_id(case, search)
            if node is None:
                not_rerun.append(case.id)
            else:
                pending[case.id] = node
        for attempt in range(1, cfg.rerun_failures + 1):
            if not pending:
                break
            rerun = run_category(
                category,
                base_dir=base_dir,
                out_dir=out_dir,
                target_url=target_url,
                select=sorted(pending.values()),
                attempt=attempt,
                in_flight=in_flight,
            )
            rerun_runs.append(rerun)
            rerun_report, _ = load_junit(rerun.junit_path)
            if rerun_report is None:
                break
            passed = {c.id for c in rerun_report.cases if c.outcome is TestOutcome.PASSED}
            pending = {i: n for i, n in pending.items() if i not in passed}
    elif cfg.rerun_failures and failing:
        # Only our own pytest command can be narrowed to chosen node ids.
        not_rerun = [c.id for c in failing]
    baseline = None
    base_warning = None
    if cfg.baseline_junit_dir is not None:
        base_file = base_dir / cfg.baseline_junit_dir / f"{category.name}.junit.xml"
        if base_file.is_file():
            baseline, error = load_junit(base_file)
            if error:
                base_warning = f"baseline JUnit unreadable: {error}"
        else:
            base_warning = f"no baseline JUnit file {base_file.name} in {cfg.baseline_junit_dir}"
    result = evaluate_run(category, run, rerun_runs=rerun_runs, not_rerun=not_rerun, baseline=baseline)
    if base_warning:
        result = replace(result, warnings=result.warnings + (base_warning,))
    return result
