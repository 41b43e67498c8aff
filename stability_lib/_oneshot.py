"""One-check commands that need no target, no notebook and no Chromium: ``diff`` and ``junit``.

``stability diff BASE REVISION``: the OpenAPI (or Swagger 2.0) breaking-change diff of two specs,
each a file, an http(s) URL or a git ``REF:PATH``, printed as text, JSON, JUnit or HTML, with
oasdiff's ``--fail-on`` exit codes (0 nothing at or above the level, 1 otherwise, 3 could not run).

``stability junit FILE_OR_DIR...``: existing JUnit XML from any producer counted and judged by
the same rules as the suites section (one category per file), optionally against a baseline
folder of ``<name>.xml`` files; exit code by verdict (0 PASS, 1 FAIL, 2 INCONCLUSIVE).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .contract.diff_output import exit_code, render
from .contract.openapi_diff import diff_openapi
from .contract.spec_source import MAX_SPEC_BYTES, fetch_spec, load_spec_file, load_spec_git
from .core.errors import ParamsError
from .core.verdict import EXIT_CODES
from .execution.params import ENV_REFERENCE
from .suites.config import CategoryConfig, CategoryRun
from .suites.judgement import CategoryResult, category_claims, judge_category
from .suites.junit import JUnitReport
from .suites.runner import MAX_JUNIT_BYTES, load_junit

__all__ = ["diff_command", "junit_command", "resolve_header"]

_GIT_SPEC = re.compile(r"^(?P<ref>[^:\s]+):(?P<path>[^:\s]+)$")


def resolve_header(text: str, env: dict[str, str] | os._Environ[str]) -> tuple[str, str]:
    """``NAME=value`` with ``${VAR}`` references resolved from the environment (values are data)."""
    name, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z0-9-]{1,100}", name.strip()):
        raise ParamsError("--header must be NAME=VALUE with a header name of letters, digits and '-'")
    missing = [ref for ref in ENV_REFERENCE.findall(value) if ref not in env]
    if missing:
        raise ParamsError(f"--header {name.strip()}: environment variable {missing[0]} is not set")
    return name.strip(), ENV_REFERENCE.sub(lambda m: env[m.group(1)], value)


def _load(source: str, *, repo: Path, headers: dict[str, str]) -> dict[str, Any]:
    if source.startswith(("http://", "https://")):
        return fetch_spec(source, headers=headers)[0]
    path = Path(source)
    if path.exists():
        return load_spec_file(path, max_bytes=MAX_SPEC_BYTES)[0]
    git = _GIT_SPEC.match(source)
    if git:
        return load_spec_git(repo, git["ref"], git["path"])[0]
    raise ParamsError(f"{source}: no such file, not an http(s) URL, and not a git REF:PATH")


def diff_command(
    base: str, revision: str, *, fail_on: str, fmt: str, repo: Path, headers: Sequence[str], out: TextIO = sys.stdout
) -> int:
    """Print the diff of two specs; return the exit code (StabilityError: could not run)."""
    resolved = dict(resolve_header(h, os.environ) for h in headers)
    old = _load(base, repo=repo, headers=resolved)
    new = _load(revision, repo=repo, headers=resolved)
    changes = diff_openapi(old, new)
    out.write(render(fmt, changes, fail_on=fail_on, base=base, revision=revision))
    return exit_code(changes, fail_on)


@dataclass(frozen=True)
class _JUnitFile:
    name: str
    path: Path


def _junit_files(inputs: Sequence[Path]) -> list[_JUnitFile]:
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            files += sorted(p for p in item.rglob("*.xml") if p.is_file())
        elif item.is_file():
            files.append(item)
        else:
            raise ParamsError(f"{item}: no such file or folder")
    if not files:
        raise ParamsError("no JUnit XML files found (a folder is searched for *.xml)")
    seen: dict[str, int] = {}
    out = []
    for path in files:
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem)[:60] or "junit"
        seen[stem] = seen.get(stem, 0) + 1
        out.append(_JUnitFile(stem if seen[stem] == 1 else f"{stem}.{seen[stem]}", path))
    return out


def judge_junit_file(
    name: str, report: JUnitReport | None, error: str | None, baseline: JUnitReport | None
) -> CategoryResult:
    """One file judged as a category of the suites section would be (pure): a category that
    reads an existing report, so only the file decides (no exit code to compare)."""
    run = CategoryRun(
        name=name,
        argv=(),
        cwd=".",
        exit_code=None,
        duration_s=0.0,
        output_tail=(),
        junit_path=None,
        junit_expected_at=name,
        ran_command=False,
    )
    cfg = CategoryConfig(name=name, junit_xml=f"{name}.xml")
    return judge_category(cfg, run, report, junit_error=error, baseline=baseline)


def junit_command(inputs: Sequence[Path], *, baseline_dir: Path | None, out: TextIO = sys.stdout) -> int:
    """Print one line per file and the verdict; return the exit code by verdict."""
    from .core.verdict import overall_status

    if baseline_dir is not None and not baseline_dir.is_dir():  # else no file was compared, without a word
        raise ParamsError(f"--baseline {baseline_dir}: no such folder")
    results: list[CategoryResult] = []
    not_compared: list[str] = []
    for item in _junit_files(inputs):
        report, error = load_junit(item.path)
        baseline = None
        if baseline_dir is not None and (baseline_dir / item.path.name).is_file():
            baseline, _ = load_junit(baseline_dir / item.path.name)
        elif baseline_dir is not None:
            not_compared.append(item.path.name)
        results.append(judge_junit_file(item.name, report, error, baseline))
    width = max(len(r.name) for r in results)
    for r in results:
        c = r.counts
        out.write(
            f"{r.name:<{width}}  {r.status.value:<12} {c['passed']:>6} passed {c['failed']:>5} failed "
            f"{c['errors']:>5} errors {c['skipped']:>5} skipped  {r.reason}\n"
        )
        if r.diff is not None and r.diff.newly_failing:
            out.write(f"{'':<{width}}  newly failing since the baseline: {', '.join(r.diff.newly_failing[:5])}\n")
        for warning in r.warnings:
            out.write(f"{'':<{width}}  warning: {warning}\n")
    if not_compared:
        out.write(f"not compared: {', '.join(not_compared)} (no file of that name in {baseline_dir})\n")
    verdict = overall_status(category_claims(results))
    out.write(f"VERDICT: {verdict.value} ({len(results)} files, at most {MAX_JUNIT_BYTES} bytes each)\n")
    return EXIT_CODES[verdict]
