"""Time `stability demo` from start to exported PDF and show where the time goes.

Run: ``python benchmarks/bench_demo.py`` (after `make demo` set-up). Prints one JSON line
(see _meta.envelope): total wall time, each section's notebook time (kernel start
included), the time of the sections phase and of the report (report notebook + HTML +
PDF). Exits 1 if the demo wrote no summary (it did not run, so the times mean nothing).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import REPO, envelope

BENCHMARK = "stability_demo_end_to_end"  # stable key of the results file
QUICK_ARGS: tuple[str, ...] = ()  # the demo has no smaller size: --quick runs it in full


def kernel_start_s() -> float:
    """One kernel start to ready, measured alone (a part of every section's time)."""
    from jupyter_client.manager import start_new_kernel

    from stability_lib.execution.notebooks import ensure_kernelspec

    t0 = time.monotonic()
    km, kc = start_new_kernel(kernel_name=ensure_kernelspec())
    elapsed = time.monotonic() - t0
    kc.stop_channels()
    km.shutdown_kernel(now=True)
    return elapsed


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "stability_lib.cli", "demo", "--out", str(out)],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        total = time.monotonic() - t0
        sections = {}
        for line in proc.stdout.splitlines():
            m = re.match(r"\s+(\w+)\s+(PASS|FAIL|INCONCLUSIVE|ERROR)\s+([\d.]+) s", line)
            if m:
                sections[m.group(1)] = {"status": m.group(2), "seconds": float(m.group(3))}
        phase = re.search(r"sections done in ([\d.]+) s", proc.stdout)
        report = re.search(r"report rendered in ([\d.]+) s", proc.stdout)
        run_summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    phase_s = float(phase.group(1)) if phase else None
    report_s = float(report.group(1)) if report else None
    result = {
        "summary": (
            f"verdict {run_summary.get('verdict')} in {total:.1f} s "
            f"(sections {phase_s} s, report and export {report_s} s)"
        ),
        "exit_code": proc.returncode,
        "verdict": run_summary.get("verdict"),
        "total_s": round(total, 2),
        "sections_phase_s": phase_s,
        "report_and_export_s": report_s,
        "sections": sections,
        "kernel_start_s": round(kernel_start_s(), 2),
    }
    print(json.dumps(envelope(BENCHMARK, result)))
    return 0 if run_summary else 1


if __name__ == "__main__":
    raise SystemExit(main())
