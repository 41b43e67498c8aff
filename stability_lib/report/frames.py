"""Runs as tidy pandas DataFrames, for investigation in JupyterLab and for history.

``load_run(run_dir)`` reads one run directory into a :class:`Run`: one DataFrame
per kind of record, one row per record, one column per fact. ``load_runs(root)``
reads every run directory under ``root`` into a :class:`Runs` whose frames stack
all runs, each row tagged with its ``run_id``, plus a ``runs`` frame (one row per
run: time, target version, verdict).

What is read, and how
    ``run.json`` (run id, start time), ``summary.json`` (verdict, claims,
    warnings), ``fingerprint.json`` and ``params.yaml`` (target version),
    ``evidence/<section>.json`` (raw data), and the JUnit XML each test category
    copied into ``suites/``. Every file is read with a size cap, JSON with the
    standard parser, YAML with ``yaml.safe_load`` (a data-only loader), JUnit XML
    with the project's defused, streaming reader. Nothing in a run is executed,
    imported or expanded: a run directory is untrusted input.

Schema versions
    ``SUPPORTED_EVIDENCE_VERSIONS`` lists the evidence ``schema_version`` values
    this module reads. Version 1 has two generations: evidence written before
    claims carried a structured figure (before commit 926c7af) loads with every
    ``figure_*`` column empty. A file that declares another version (none
    written before the walking skeleton, or a newer tool's) raises
    :class:`RunFormatError` naming the file and the versions read here: a run
    is loaded whole or refused with a reason, never half-read silently.

A crashed section
    Evidence of a crash (status ERROR, ``error`` set, ``data`` empty) contributes
    no rows to the data frames; a section that is ERROR because one of its claims
    is (a test category that could not start) keeps the rows of its other data; its synthetic ``<section>.ran`` claim (ERROR, the
    error line as statistic) is in ``claims``, and ``sections`` says why.
    A section whose evidence file is missing, unreadable, or whose data has an
    unexpected shape is listed in ``Run.problems`` and contributes no rows.

Columns: each frame's docstring table is in ``COLUMNS`` (``describe_columns()``
prints them); every frame has exactly those columns, in that order, even when
empty, so code written against one run works on any other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.errors import EvidenceError
from ..suites.junit import MAX_JUNIT_BYTES, JUnitParseError, parse_junit
from .frame_columns import COLUMNS, describe_columns
from .frame_rows import (
    _claim_rows,
    _contract_rows,
    _dict,
    _int,
    _latency_rows,
    _list,
    _num,
    _session_rows,
    _text,
    _warning_rows,
)

__all__ = [
    "Run",
    "Runs",
    "RunFormatError",
    "load_run",
    "load_runs",
    "SUPPORTED_EVIDENCE_VERSIONS",
    "SUPPORTED_SUMMARY_VERSIONS",
]

SUPPORTED_EVIDENCE_VERSIONS = frozenset({1})
SUPPORTED_SUMMARY_VERSIONS = frozenset({1})

MAX_EVIDENCE_BYTES = 64 * 1024 * 1024
MAX_SUMMARY_BYTES = 64 * 1024 * 1024
MAX_SMALL_FILE_BYTES = 1024 * 1024  # run.json, fingerprint.json, params.yaml
MAX_RUNS = 10_000  # load_runs refuses a root holding more run directories than this
MAX_PROBLEMS = 100

_EVIDENCE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")

# --------------------------------------------------------------------------- column documentation


def _frame(name: str, rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A frame with exactly the documented columns and dtypes, empty or not."""
    spec = COLUMNS[name]
    df = pd.DataFrame.from_records(list(rows), columns=list(spec))
    plain = {c: dtype for c, (dtype, _) in spec.items() if not dtype.startswith("datetime64")}
    df = df.astype(plain)
    for column, (dtype, _) in spec.items():
        if dtype.startswith("datetime64"):
            # One resolution whatever pandas infers, so stacked runs concatenate without casts.
            df[column] = pd.to_datetime(df[column], utc=True, errors="coerce", format="ISO8601").astype(dtype)
    return df


# --------------------------------------------------------------------------- the objects


class RunFormatError(EvidenceError):
    """A run directory this version cannot read (missing, not a run, or another schema version)."""


@dataclass(frozen=True, eq=False)
class Run:
    """One run directory as DataFrames (columns: ``COLUMNS`` / ``describe_columns()``).

    ``summary`` is summary.json as read (empty when the run has none); ``problems``
    lists what could not be read and why (the frames hold everything else).
    """

    path: Path
    run_id: str
    started_at: pd.Timestamp | None
    verdict: str
    target_version: str
    summary: dict[str, Any]
    info: pd.DataFrame  # one row: this run's line of Runs.runs
    claims: pd.DataFrame
    sections: pd.DataFrame
    sessions: pd.DataFrame
    latency: pd.DataFrame
    tests: pd.DataFrame
    contract_changes: pd.DataFrame
    warnings: pd.DataFrame
    problems: tuple[str, ...] = ()

    def __repr__(self) -> str:
        counts = ", ".join(f"{name}={len(getattr(self, name))}" for name in _STACKED)
        return f"Run({self.run_id!r}, verdict={self.verdict or '-'}, {counts})"

    def describe(self, frame: str | None = None) -> str:
        """The column tables (name, dtype, meaning) of one frame or of all: ``print(run.describe())``."""
        return describe_columns(frame)


_STACKED = ("claims", "sections", "sessions", "latency", "tests", "contract_changes", "warnings")
_FROM_EVIDENCE = frozenset({"sections", "sessions", "latency", "tests", "contract_changes"})


@dataclass(frozen=True, eq=False)
class Runs:
    """Many runs stacked, oldest first; every frame has ``run_id`` to join on ``runs``."""

    runs: pd.DataFrame
    claims: pd.DataFrame
    sections: pd.DataFrame
    sessions: pd.DataFrame
    latency: pd.DataFrame
    tests: pd.DataFrame
    contract_changes: pd.DataFrame
    warnings: pd.DataFrame
    skipped: tuple[str, ...] = ()  # run directories refused, each with the reason
    problems: tuple[str, ...] = ()  # what could not be read inside the runs loaded, "<run_id>: why"

    def __len__(self) -> int:
        return len(self.runs)

    def __repr__(self) -> str:
        return f"Runs({len(self.runs)} runs, {len(self.skipped)} skipped, claims={len(self.claims)})"


# --------------------------------------------------------------------------- reading, bounded


def _read_capped(path: Path, cap: int) -> bytes:
    if not path.is_file():
        raise RunFormatError(f"{path}: not a regular file")
    with path.open("rb") as fh:
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise RunFormatError(f"{path}: larger than {cap} bytes; not read")
    return data


def _read_json(path: Path, cap: int) -> Any:
    try:
        return json.loads(_read_capped(path, cap).decode("utf-8"))
    except OSError as exc:
        raise RunFormatError(f"{path}: unreadable: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise RunFormatError(f"{path}: not valid JSON: {str(exc)[:200]}") from None
    except RecursionError:
        raise RunFormatError(f"{path}: JSON nested too deeply") from None


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(_read_capped(path, MAX_SMALL_FILE_BYTES).decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RunFormatError, RecursionError):
        return None  # params only supply the target version, which has other sources


# --------------------------------------------------------------------------- rows per kind (pure)


_JUNIT_STATUS = {"passed": "passed", "failed": "failed", "error": "error", "skipped": "skipped", "flaky": "flaky"}


def _test_rows(run_id: str, run_dir: Path, data: dict[str, Any], problems: list[str]) -> Iterator[dict[str, Any]]:
    for cat in _list(data.get("categories")):
        cat = _dict(cat)
        category = _text(cat.get("name"))
        recovered = set(_list(_dict(cat.get("reruns")).get("recovered_flaky")))
        junit_name = cat.get("junit_file")
        cases = None
        if isinstance(junit_name, str) and _EVIDENCE_NAME.match(junit_name):
            path = run_dir / "suites" / junit_name
            try:
                cases = parse_junit(_read_capped(path, MAX_JUNIT_BYTES), source=junit_name).cases
            except (RunFormatError, JUnitParseError, OSError) as exc:
                problems.append(f"suites/{junit_name}: {str(exc)[:200]}")
        if cases is not None:
            for c in cases:
                status = "flaky" if c.id in recovered else _JUNIT_STATUS[c.outcome.value]
                yield {
                    "run_id": run_id,
                    "category": category,
                    "test_id": c.id,
                    "classname": c.classname,
                    "name": c.name,
                    "status": status,
                    "duration_s": c.time_s,
                    "message": c.message,
                    "source": "junit",
                }
            continue
        # No JUnit file in the run: only the capped lists the evidence kept.
        listed = [("failed", f) for f in _list(cat.get("failures"))] + [("flaky", f) for f in _list(cat.get("flaky"))]
        for status, raw in listed:
            raw = _dict(raw)
            test_id = _text(raw.get("id")) or "::".join(filter(None, (raw.get("classname"), raw.get("name"))))
            yield {
                "run_id": run_id,
                "category": category,
                "test_id": test_id,
                "classname": _text(raw.get("classname")),
                "name": _text(raw.get("name")),
                "status": _text(raw.get("outcome")) if status == "failed" and raw.get("outcome") else status,
                "duration_s": _num(raw.get("time_s")),
                "message": _text(raw.get("message")),
                "source": "evidence",
            }
        for test_id in _list(cat.get("passed_sample")):
            yield {
                "run_id": run_id,
                "category": category,
                "test_id": str(test_id),
                "status": "passed",
                "source": "evidence",
            }


# --------------------------------------------------------------------------- one run


def _evidence(path: Path) -> dict[str, Any]:
    raw = _read_json(path, MAX_EVIDENCE_BYTES)
    if not isinstance(raw, dict):
        raise RunFormatError(f"{path}: not an evidence document (a JSON object)")
    version = raw.get("schema_version")
    if version not in SUPPORTED_EVIDENCE_VERSIONS:
        raise RunFormatError(
            f"{path}: evidence schema_version {version!r}; this version of stability-proof reads "
            f"{', '.join(map(str, sorted(SUPPORTED_EVIDENCE_VERSIONS)))}"
            + (
                " (written by a newer tool: upgrade to read it)"
                if isinstance(version, int) and version > max(SUPPORTED_EVIDENCE_VERSIONS)
                else ""
            )
        )
    return raw


@dataclass(frozen=True)
class _RunRows:
    """One run read, before any DataFrame is built (load_runs builds each frame once for all runs)."""

    path: Path
    run_id: str
    summary: dict[str, Any]
    target_version: str
    rows: dict[str, list[dict[str, Any]]]
    problems: tuple[str, ...]


def _read_run(path: Path, frames: frozenset[str] = frozenset(_STACKED)) -> _RunRows:
    if not path.is_dir():
        raise RunFormatError(f"{path}: not a directory")
    has_meta = (path / "run.json").is_file()
    has_summary = (path / "summary.json").is_file()
    # A notebook run by hand writes only evidence/ (a scratch run directory): still a run to look at.
    has_evidence = (path / "evidence").is_dir() and any((path / "evidence").glob("*.json"))
    if not has_meta and not has_summary and not has_evidence:
        raise RunFormatError(f"{path}: not a run directory (no run.json, summary.json or evidence/)")
    meta = _dict(_read_json(path / "run.json", MAX_SMALL_FILE_BYTES)) if has_meta else {}
    summary = _dict(_read_json(path / "summary.json", MAX_SUMMARY_BYTES)) if has_summary else {}
    if summary and summary.get("schema_version") not in SUPPORTED_SUMMARY_VERSIONS:
        raise RunFormatError(
            f"{path / 'summary.json'}: summary schema_version {summary.get('schema_version')!r}; "
            f"this version reads {', '.join(map(str, sorted(SUPPORTED_SUMMARY_VERSIONS)))}"
        )
    run_id = str(summary.get("run_id") or meta.get("run_id") or path.name)
    problems: list[str] = []

    evidence: dict[str, dict[str, Any]] = {}
    folder = path / "evidence"
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    # Claims and warnings come from summary.json: a history that wants only those skips the evidence.
    if summary and not frames & _FROM_EVIDENCE:
        files = []
    for file in files:
        if _EVIDENCE_NAME.match(file.name):
            evidence[file.stem] = _evidence(file)  # another schema version refuses the whole run

    fingerprint: dict[str, Any] = {}
    if (path / "fingerprint.json").is_file():
        try:
            fingerprint = _dict(_read_json(path / "fingerprint.json", MAX_SMALL_FILE_BYTES))
        except RunFormatError as exc:
            problems.append(str(exc))
    target_version = _text(fingerprint.get("commit")) or ""
    if "commit" not in fingerprint and (path / "params.yaml").is_file():
        # The fingerprint copies params' target.commit; params are parsed only when it is missing.
        target_version = _text(_dict(_dict(_read_yaml(path / "params.yaml")).get("target")).get("commit")) or ""

    claims_raw = summary.get("claims") if summary else [c for e in evidence.values() for c in _list(e.get("claims"))]
    section_rows = []
    sessions: list[dict[str, Any]] = []
    latency: list[dict[str, Any]] = []
    tests: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    for name, ev in evidence.items():
        data = _dict(ev.get("data"))
        error = _text(ev.get("error"))
        section_rows.append(
            {
                "run_id": run_id,
                "section": name,
                "status": _text(ev.get("status")),
                "error": error.splitlines()[0][:300] if error else None,
                "skipped": bool(data.get("skipped")),
                "duration_s": _num(ev.get("duration_s")),
                "started_at": ev.get("started_at") or None,
            }
        )
        if data.get("skipped"):
            continue  # a skipped section measured nothing
        # Status alone decides nothing: a section is ERROR too when one of its claims is (a test
        # category that could not start), and its other data is real. A crash leaves ``data`` empty.
        try:
            if "sessions" in frames:
                sessions += _session_rows(run_id, name, data)
            if "latency" in frames:
                latency += _latency_rows(run_id, name, data)
            if name == "suites" and "tests" in frames:
                tests += _test_rows(run_id, path, data, problems)
            if name == "contract" and "contract_changes" in frames:
                changes += _contract_rows(run_id, data)
        except (TypeError, ValueError, AttributeError) as exc:  # a shape we do not know: say so
            problems.append(f"evidence/{name}.json: unexpected data shape ({type(exc).__name__}: {str(exc)[:200]})")
    for s in _list(summary.get("sections")):
        s = _dict(s)
        if s.get("section") not in evidence and s.get("status") == "ERROR":
            problems.append(f"section {s.get('section')}: {s.get('error') or 'no evidence file'}")
            section_rows.append(
                {
                    "run_id": run_id,
                    "section": s.get("section"),
                    "status": "ERROR",
                    "error": _text(s.get("error")),
                    "skipped": False,
                }
            )

    targets = _dict(summary.get("targets") or meta.get("targets"))
    info = {
        "run_id": run_id,
        "started_at": summary.get("started_at") or meta.get("started_at") or None,
        "finished_at": summary.get("finished_at") or meta.get("finished_at") or None,
        "target_version": target_version or None,
        "target": _text(targets.get("candidate")),
        "baseline": _text(targets.get("baseline")),
        "environment": _text(summary.get("environment") or meta.get("environment")),
        "verdict": _text(summary.get("verdict")),
        "exit_code": _int(summary.get("exit_code")),
        "tool_version": _text(summary.get("tool_version") or meta.get("tool_version")),
        "path": str(path),
    }
    rows = {
        "runs": [info],
        "claims": list(_claim_rows(run_id, _list(claims_raw))),
        "sections": section_rows,
        "sessions": sessions,
        "latency": latency,
        "tests": tests,
        "contract_changes": changes,
        "warnings": list(_warning_rows(run_id, _list(summary.get("warnings")))),
    }
    return _RunRows(path, run_id, summary, target_version, rows, tuple(problems[:MAX_PROBLEMS]))


def load_run(run_dir: str | Path) -> Run:
    """Read one run directory into DataFrames (see the module docstring for what is read and how).

    Raises :class:`RunFormatError` when ``run_dir`` is not a run directory or holds evidence of a
    schema version this module does not read; anything smaller is listed in ``Run.problems``.
    """
    read = _read_run(Path(run_dir))
    info = _frame("runs", read.rows["runs"])
    started = info["started_at"].iloc[0]
    return Run(
        path=read.path,
        run_id=read.run_id,
        started_at=None if pd.isna(started) else started,
        verdict=str(read.summary.get("verdict") or ""),
        target_version=read.target_version,
        summary=read.summary,
        info=info,
        **{name: _frame(name, read.rows[name]) for name in _STACKED},
        problems=read.problems,
    )


# --------------------------------------------------------------------------- many runs


def _is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "run.json").is_file() or (path / "summary.json").is_file())


def load_runs(
    root: str | Path, *, frames: Iterable[str] = _STACKED, on_skip: Callable[[str], None] | None = None
) -> Runs:
    """Every run directory directly under ``root`` (or ``root`` itself if it is one), oldest first.

    ``frames`` names the frames to fill (the others are empty, with their columns): a history
    over many runs that needs only ``("claims", "warnings")`` reads summary.json alone, and
    ``("claims", "latency")`` skips building sessions and tests. ``runs`` is always filled.

    A directory that cannot be read (another schema version, malformed files) is left out and
    named in ``Runs.skipped`` with the reason (and passed to ``on_skip``); it never stops the rest.
    """
    root = Path(root)
    wanted = frozenset(frames)
    if unknown := wanted - set(_STACKED):
        raise ValueError(f"unknown frame(s) {sorted(unknown)}; known: {', '.join(_STACKED)}")
    if not root.is_dir():
        raise RunFormatError(f"{root}: not a directory")
    candidates = [root] if _is_run_dir(root) else sorted(p for p in root.iterdir() if _is_run_dir(p))
    if len(candidates) > MAX_RUNS:
        raise RunFormatError(f"{root}: {len(candidates)} run directories, more than the {MAX_RUNS} read at once")
    loaded: list[_RunRows] = []
    skipped: list[str] = []
    for candidate in candidates:
        try:
            loaded.append(_read_run(candidate, wanted))
        except RunFormatError as exc:
            skipped.append(str(exc))
            if on_skip is not None:
                on_skip(str(exc))
    runs = _frame("runs", [r.rows["runs"][0] for r in loaded])
    # Oldest first by start time; runs without one go last, in directory order.
    positions = list(runs.sort_values("started_at", kind="stable", na_position="last").index)
    runs = runs.loc[positions].reset_index(drop=True)
    loaded = [loaded[i] for i in positions]
    counts = runs.run_id.value_counts()
    repeated = [
        f"run id {run_id!r} is used by {n} run directories: frames join on run_id"
        for run_id, n in counts[counts > 1].items()
    ]
    return Runs(
        runs=runs,
        **{name: _frame(name, [row for r in loaded for row in r.rows[name]]) for name in _STACKED},
        skipped=tuple(skipped),
        problems=(*repeated, *(f"{r.run_id}: {p}" for r in loaded for p in r.problems))[:MAX_PROBLEMS],
    )
