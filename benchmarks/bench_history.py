"""Benchmark: `stability history` over 100 stored runs (copies of a stored run, seeded noise in
their figures, one check slowed from run 60), from the command to the exported PDF.

Prints one self-describing JSON line (see _meta.envelope). The budget is 10 s for 100 runs on
this project's 2-core machines; exits 1 if it was missed.

    python benchmarks/bench_history.py [--runs 100] [--source RUN_DIR] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import REPO, envelope

sys.path.insert(0, str(REPO / "tests"))
from history_runs import PASS_RUN, make_history_runs

BENCHMARK = "history"  # stable key of the results file
QUICK_ARGS = ("--runs", "12")  # smallest run, for run_all.py --quick
BUDGET_S = 10.0
BUDGET_RUNS = 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=BUDGET_RUNS)
    parser.add_argument("--source", type=Path, default=PASS_RUN, help="stored run to copy (whole, evidence too)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    times: list[float] = []
    cpu: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        root = Path(tmp) / "runs"
        make_history_runs(root, args.source, n=args.runs, slow_from=max(2, int(args.runs * 0.6)), whole=True)
        size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        stability = Path(sys.executable).with_name("stability")
        for i in range(args.repeats):
            out = Path(tmp) / f"out{i}"
            t0 = time.perf_counter()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            done = subprocess.run(
                [str(stability), "history", str(root), "--out", str(out)], capture_output=True, text=True
            )
            times.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            # CPU of the command and everything it started (Chromium too): on a shared machine the
            # wall time measures the other work; on an idle 2-core machine it is about this.
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
        html = (out / "history.html").read_text(encoding="utf-8")
        marked = f"starting at run {max(2, int(args.runs * 0.6))} (" in html
    seconds = statistics.median(times)
    met = seconds <= BUDGET_S if args.runs >= BUDGET_RUNS else None
    print(
        json.dumps(
            envelope(
                BENCHMARK,
                {
                    "runs": args.runs,
                    "run_dir_bytes_total": size,
                    "source": str(args.source),
                    "seconds_median": round(seconds, 2),
                    "seconds": [round(t, 2) for t in times],
                    "cpu_seconds": [round(t, 2) for t in cpu],
                    "step_marked": marked,
                    "budget_s": BUDGET_S,
                    "budget_met": met,
                },
            )
        )
    )
    return 0 if met is not False and marked else 1


if __name__ == "__main__":
    raise SystemExit(main())
