"""Orchestration of one run: load, parameterize, execute, check, write.

``execute_sections`` runs section notebooks with papermill's Python API in a
small thread pool (each notebook gets its own kernel process). A section that
raises, times out or whose kernel dies is recorded as ERROR evidence; the
others still run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ._errors import RunError
from ._evidence import evidence_path, read_evidence, write_evidence, write_json_atomic
from ._models import SectionResult, Status
from ._params import SECTION_ORDER, Params, load_params
from ._secrets import redact_file, redact_text
from ._section import utc_now

__all__ = [
    "SectionRun",
    "prepare_run_dir",
    "ensure_kernelspec",
    "execute_notebook",
    "execute_sections",
    "notebooks_dir",
    "notebooks_for",
]

Progress = Callable[[str], None]
EXCLUSIVE_SECTIONS = frozenset({"performance"})


def notebooks_dir() -> Path:
    """The section notebooks: ``notebooks/`` beside the package (repo checkout or editable install)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "notebooks", here / "notebooks"):
        if candidate.is_dir():
            return candidate
    raise RunError(f"notebooks folder not found next to {here}")


def notebooks_for(run_dir: Path, params: Params) -> Path:
    """The notebooks a run uses: params' runner.notebooks_dir (relative to the params file) or ours."""
    if params.runner.notebooks_dir:
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        return Path(meta["base_dir"]) / params.runner.notebooks_dir
    return notebooks_dir()


def kernel_name() -> str:
    # Unique per interpreter: a stray global "python3" kernelspec cannot take over.
    digest = hashlib.sha256(sys.prefix.encode()).hexdigest()[:8]
    return f"stability-proof-{digest}"


def ensure_kernelspec() -> str:
    """Install (idempotently) a kernelspec pointing at this interpreter, under sys.prefix."""
    name = kernel_name()
    folder = Path(sys.prefix) / "share" / "jupyter" / "kernels" / name
    spec = {
        # log_level ERROR: every kernel start would otherwise print a harmless TCP warning to the terminal.
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}", "--IPKernelApp.log_level=ERROR"],
        "display_name": f"stability-proof ({sys.prefix})",
        "language": "python",
        "metadata": {"debugger": False},
    }
    target = folder / "kernel.json"
    try:
        current = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        current = None
    if current != spec:
        write_json_atomic(target, spec)  # two runs starting at once never read half a file
    return name


@dataclass(frozen=True)
class SectionRun:
    section: str
    status: Status
    duration_s: float
    notebook: str
    error: str | None = None


def prepare_run_dir(
    params_file: Path, raw: dict[str, Any], params: Params, out: Path | None, overrides: list[str]
) -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    # Absolute from here on: nothing later may depend on the process's working directory.
    run_dir = (out if out is not None else Path("runs") / f"{stamp}-{params_file.stem}").resolve()
    if run_dir.exists() and any(run_dir.iterdir()):
        raise RunError(f"run directory {run_dir} exists and is not empty")
    (run_dir / "evidence").mkdir(parents=True, exist_ok=True)
    (run_dir / "notebooks").mkdir(exist_ok=True)
    # The raw params keep ${NAME} references: the secret values never reach the disk.
    (run_dir / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    from . import __version__

    write_json_atomic(
        run_dir / "run.json",
        {
            "run_id": run_dir.resolve().name,
            "params_file": str(params_file.resolve()),
            "base_dir": str(params_file.resolve().parent),
            "invocation_dir": str(Path.cwd()),  # where relative CLI arguments (baselines/) were meant
            "overrides": [o.split("=", 1)[0] + "=…" for o in overrides],
            "started_at": utc_now(),
            "tool_version": __version__,
            "title": params.title,
            "environment": params.environment,
            # What was really probed: a re-render elsewhere must not judge unresolved references.
            "targets": {
                "candidate": params.target.base_url,
                **({"baseline": params.baseline.base_url} if params.baseline else {}),
            },
        },
    )
    from ._baseline import FINGERPRINT_FILE, fingerprint

    write_json_atomic(run_dir / FINGERPRINT_FILE, fingerprint(raw, params.target.base_url, params.target.commit))
    return run_dir


def execute_notebook(
    source: Path, output: Path, parameters: dict[str, Any], *, cwd: Path, timeout_s: float
) -> None:
    import papermill

    papermill.execute_notebook(
        str(source),
        str(output),
        parameters=parameters,
        kernel_name=ensure_kernelspec(),
        progress_bar=False,
        log_output=False,
        execution_timeout=timeout_s,
        request_save_on_cell_execute=False,
        # Not papermill's cwd=: that os.chdir()s this whole process, and notebooks run in
        # threads. nbclient starts the kernel in resources' metadata path instead.
        resources={"metadata": {"path": str(cwd)}},
    )


def _error_result(
    section: str, error: str, started_at: str, duration_s: float, existing: Path | None = None
) -> SectionResult:
    """ERROR evidence; claims the section already wrote before it crashed are kept (a FAIL found
    before a later cell broke is still a FAIL)."""
    claims: tuple = ()
    data: dict[str, Any] = {}
    if existing is not None and existing.exists():
        try:
            previous = read_evidence(existing)
            claims, data = previous.claims, previous.data
        except Exception:  # unreadable evidence is no evidence
            pass
    return SectionResult(
        section=section,
        status=Status.ERROR,
        claims=claims,
        data=data,
        error=error,
        started_at=started_at,
        finished_at=utc_now(),
        duration_s=round(duration_s, 3),
    )


def _short_error(exc: BaseException) -> str:
    # papermill's PapermillExecutionError carries the notebook's own exception.
    ename = getattr(exc, "ename", None)
    evalue = getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {evalue}"[:2000]
    return f"{type(exc).__name__}: {exc}"[:2000]


def run_section_notebook(
    section: str, run_dir: Path, params: Params, nb_dir: Path, secrets: frozenset[str] = frozenset()
) -> SectionRun:
    started_at, t0 = utc_now(), time.monotonic()
    output = run_dir / "notebooks" / f"{section}.ipynb"
    evidence = evidence_path(run_dir, section)
    error: str | None = None
    try:
        execute_notebook(
            nb_dir / f"{section}.ipynb",
            output,
            {"run_dir": str(run_dir.resolve()), "params_path": str((run_dir / "params.yaml").resolve())},
            cwd=run_dir,
            timeout_s=params.runner.section_timeout_s,
        )
    except Exception as exc:  # the notebook's failure is a finding about our run, never a silent pass
        error = _short_error(exc)
        if not isinstance(exc, RunError) and not getattr(exc, "ename", None):
            error += "\n" + "".join(traceback.format_exception_only(type(exc), exc))[-500:]
    duration = time.monotonic() - t0
    redact_file(output, secrets)  # tracebacks and outputs in the executed notebook
    if error is not None:
        error = redact_text(error, secrets)
    if error is None and not evidence.exists():
        error = "the notebook finished without writing its evidence file"
    if error is not None:
        write_evidence(run_dir, _error_result(section, error, started_at, duration, evidence))
        return SectionRun(section, Status.ERROR, duration, str(output), error)
    try:
        status = read_evidence(evidence).status
    except Exception as exc:
        write_evidence(run_dir, _error_result(section, _short_error(exc), started_at, duration))
        return SectionRun(section, Status.ERROR, duration, str(output), _short_error(exc))
    return SectionRun(section, status, duration, str(output))


def write_skipped(section: str, run_dir: Path, reason: str) -> SectionRun:
    now = utc_now()
    write_evidence(
        run_dir,
        SectionResult(
            section=section,
            status=Status.INCONCLUSIVE,
            data={"skipped": True, "reason": reason},
            started_at=now,
            finished_at=now,
            duration_s=0.0,
        ),
    )
    return SectionRun(section, Status.INCONCLUSIVE, 0.0, "", None)


def execute_sections(
    run_dir: Path,
    params: Params,
    *,
    nb_dir: Path | None = None,
    workers: int | None = None,
    progress: Progress = lambda line: None,
    secrets: frozenset[str] = frozenset(),
) -> list[SectionRun]:
    nb_dir = nb_dir or notebooks_for(run_dir, params)
    enabled = params.enabled_sections()
    runs: dict[str, SectionRun] = {}
    for name in SECTION_ORDER:
        if name not in enabled:
            runs[name] = write_skipped(name, run_dir, "switched off in params")
    ensure_kernelspec()

    def one(name: str) -> SectionRun:
        result = run_section_notebook(name, run_dir, params, nb_dir, secrets)
        suffix = f"  ({result.error.splitlines()[0][:120]})" if result.error else ""
        progress(f"  {name:<12} {result.status.value:<12} {result.duration_s:6.1f} s{suffix}")
        return result

    # Performance is measured alone: our own probes must not be the load that slows the target.
    shared = [name for name in enabled if name not in EXCLUSIVE_SECTIONS]
    with ThreadPoolExecutor(max_workers=workers or params.runner.workers) as pool:
        for result in pool.map(one, shared):
            runs[result.section] = result
    for name in enabled:
        if name in EXCLUSIVE_SECTIONS:
            runs[name] = one(name)
    return [runs[name] for name in SECTION_ORDER]
