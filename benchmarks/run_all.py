"""Run every ``benchmarks/bench_*.py``, one at a time, and store each result.

Run: ``python benchmarks/run_all.py [--only NAME]... [--quick] [--timeout-s 1800]``

Each script prints one JSON line (``_meta.envelope``) and declares two module-level
constants, read here without importing it: ``BENCHMARK`` (the stable key; ``--only``
takes it) and ``QUICK_ARGS`` (its smallest-size options, passed with ``--quick``).
The line is written to ``results/<BENCHMARK>.json`` (atomically, replacing the last
one) with ``"quick"`` added: true when the run was made smaller than the real one, so
it is a smoke test and not a figure to quote. Scripts run sequentially because they
measure: two at once would time each other.

Exit status: 0 if every script ran and no target was missed, 1 otherwise. A failed
run does not replace the stored result of an earlier good run.
"""

from __future__ import annotations

import argparse
import ast
import enum
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DEFAULT_RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_TIMEOUT_S = 1800.0
# The key becomes a file name: keep it to a safe, boring alphabet.
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
_MAX_LINE_CHARS = 1_000_000  # a result line is a few KB; anything bigger is not one


class Outcome(enum.Enum):
    OK = "ok"
    TARGET_MISSED = "target missed"
    FAILED = "FAILED"


@dataclass(frozen=True)
class BenchScript:
    path: Path
    benchmark: str  # stable key, from the script's BENCHMARK constant
    quick_args: tuple[str, ...]  # from the script's QUICK_ARGS constant


@dataclass(frozen=True)
class BenchRun:
    script: BenchScript
    outcome: Outcome
    quick: bool  # the run was made smaller than the real one
    wall_s: float
    target_met: bool | None  # None: no target, or not tested at this size
    has_target: bool
    detail: str  # the script's own summary, or why the run failed
    saved_to: Path | None


def _module_constants(path: Path) -> dict[str, Any]:
    """Top-level ``NAME = <literal>`` assignments of a script, read without running it."""
    constants: dict[str, Any] = {}
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("BENCHMARK", "QUICK_ARGS"):
            constants[target.id] = ast.literal_eval(value)
    return constants


def discover(bench_dir: Path = BENCH_DIR) -> list[BenchScript]:
    scripts = []
    for path in sorted(bench_dir.glob("bench_*.py")):
        constants = _module_constants(path)
        name = constants.get("BENCHMARK")
        if not isinstance(name, str) or not _SAFE_KEY.match(name):
            raise SystemExit(f"{path.name}: needs a module-level BENCHMARK = '<stable key>' ([A-Za-z0-9_.-])")
        quick_args = constants.get("QUICK_ARGS", ())
        if not isinstance(quick_args, tuple) or not all(isinstance(a, str) for a in quick_args):
            raise SystemExit(f"{path.name}: QUICK_ARGS must be a tuple of strings")
        scripts.append(BenchScript(path, name, quick_args))
    names = [s.benchmark for s in scripts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SystemExit(f"two scripts share the key(s) {', '.join(duplicates)}")
    return scripts


def parse_result_line(stdout: str, expected_benchmark: str) -> dict[str, Any]:
    """The envelope on the last non-empty stdout line; ValueError if it is not one."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("printed nothing on stdout")
    if len(lines[-1]) > _MAX_LINE_CHARS:
        raise ValueError(f"last stdout line is {len(lines[-1]):,} characters, not a result")
    try:
        record = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise ValueError(f"last stdout line is not JSON ({exc.msg})") from None
    if not isinstance(record, dict) or not isinstance(record.get("results"), dict):
        raise ValueError("last stdout line is not a benchmark envelope (no 'results' object)")
    if record.get("benchmark") != expected_benchmark:
        raise ValueError(f"reported benchmark {record.get('benchmark')!r}, expected {expected_benchmark!r}")
    return record


def write_atomically(path: Path, record: dict[str, Any]) -> None:
    """Readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            os.fchmod(tmp.fileno(), 0o644)  # mkstemp's 0600 would outlive the rename
            json.dump(record, tmp, indent=2)
            tmp.write("\n")
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def run_one(script: BenchScript, quick: bool, timeout_s: float, results_dir: Path) -> BenchRun:
    made_smaller = quick and bool(script.quick_args)
    cmd = [sys.executable, str(script.path), *(script.quick_args if made_smaller else ())]
    print(f"--> {script.benchmark}: {' '.join([os.path.relpath(script.path, REPO), *cmd[2:]])}", flush=True)

    def failed(why: str, wall_s: float) -> BenchRun:
        return BenchRun(script, Outcome.FAILED, made_smaller, wall_s, None, False, why, None)

    started = time.monotonic()
    try:
        # stderr is inherited: a script's progress and tracebacks show as they happen.
        proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return failed(f"timed out after {timeout_s:g} s", time.monotonic() - started)
    wall_s = time.monotonic() - started
    try:
        record = parse_result_line(proc.stdout, script.benchmark)
    except ValueError as exc:
        return failed(f"exit {proc.returncode}, {exc}", wall_s)

    results = record["results"]
    target_met = results.get("target_met")
    target_met = target_met if isinstance(target_met, bool) else None
    if target_met is False:
        outcome = Outcome.TARGET_MISSED
    elif proc.returncode != 0:
        return failed(f"exit {proc.returncode}: {results.get('summary', '')}", wall_s)
    else:
        outcome = Outcome.OK
    record["quick"] = made_smaller
    saved_to = results_dir / f"{script.benchmark}.json"
    write_atomically(saved_to, record)
    return BenchRun(
        script,
        outcome,
        made_smaller,
        wall_s,
        target_met,
        "target_met" in results,
        str(results.get("summary", "")),
        saved_to,
    )


def summary_table(runs: Sequence[BenchRun]) -> str:
    def target(run: BenchRun) -> str:
        if run.outcome is Outcome.FAILED or not run.has_target:
            return "-"
        return {True: "met", False: "MISSED", None: "not at this size"}[run.target_met]

    rows = [("benchmark", "result", "wall", "target", "summary")]
    for run in runs:
        result = run.outcome.value + (" (quick)" if run.quick and run.outcome is not Outcome.FAILED else "")
        rows.append((run.script.benchmark, result, f"{run.wall_s:.1f} s", target(run), run.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=False)) + "  " + row[4]
        for row in rows
    )


def main(argv: Sequence[str] | None = None) -> int:
    scripts = discover()
    known = [s.benchmark for s in scripts]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=known,
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(known)}",
    )
    parser.add_argument(
        "--quick", action="store_true", help="pass each script its smallest-size options; results are marked quick"
    )
    parser.add_argument("--timeout-s", type=float, default=DEFAULT_TIMEOUT_S, help="per script")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    args = parser.parse_args(argv)

    selected = [s for s in scripts if not args.only or s.benchmark in args.only]
    runs = [run_one(s, args.quick, args.timeout_s, args.results_dir) for s in selected]  # one at a time
    print()
    print(summary_table(runs))
    saved = [run for run in runs if run.saved_to is not None]
    if saved:
        where = os.path.relpath(args.results_dir)
        print(
            f"\nresults written to {where}/"
            + (" (quick runs: smoke tests, not figures to quote)" if any(r.quick for r in saved) else "")
        )
    return 0 if all(run.outcome is Outcome.OK for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
