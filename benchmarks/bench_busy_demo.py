"""The demo's A/B performance verdict on a busy machine (issue 14): N clean runs and N runs with a
slowdown on the candidate, each while two CPU-burning processes run beside it.

Run: ``python benchmarks/bench_busy_demo.py [--runs 10] [--full] [--fault slow=agent_reporting:20]``.
By default only the performance section runs (the claim under test; the other sections would only
add minutes of unrelated work per run); ``--full`` runs the whole demo. Records per run: the exit
code, the verdict of every judged performance operation, the rounds and samples per side it took,
the performance section's time against its budget, and the wall time. Prints one JSON line (see
_meta.envelope); ``--markdown`` also prints the table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import REPO, envelope

BENCHMARK = "busy_demo_ab"
QUICK_ARGS: tuple[str, ...] = ("--runs", "1")
SLOW_FAULT = "slow=agent_reporting:20"
OTHER_SECTIONS = ("health", "suites", "websocket", "golden_path", "isolation", "contract")
BURNER = "while True:\n    pass\n"
PARAMS: str | None = None  # --params: another params file than params/demo.yaml


def start_burners(count: int) -> list[subprocess.Popen[bytes]]:
    """CPU-bound processes beside the demo (stopped by ``stop_burners``, by their own pids)."""
    return [subprocess.Popen([sys.executable, "-c", BURNER]) for _ in range(count)]


def stop_burners(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _stop(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def one_run(out: Path, fault: str | None, full: bool) -> dict[str, Any]:
    args = [sys.executable, "-m", "stability_lib.cli", "demo", "--out", str(out)]
    if fault:
        args += ["--fault", fault]
    if not full:
        for name in OTHER_SECTIONS:
            args += ["--set", f"sections.{name}.enabled=false"]
    if PARAMS:
        args += ["--params", PARAMS]
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the kernels import this checkout's stability_lib
    t0 = time.monotonic()
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    m = re.search(r"^\s+performance\s+\w+\s+([\d.]+) s", proc.stdout, re.MULTILINE)
    run: dict[str, Any] = {
        "exit_code": proc.returncode,
        "wall_s": round(wall, 1),
        "performance_s": float(m.group(1)) if m else None,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    evidence = out / "evidence" / "performance.json"
    if not evidence.exists():
        run["error"] = (proc.stderr or proc.stdout)[-500:]
        return run
    data = json.loads(evidence.read_text())["data"]
    seq = data.get("sequential") or {}
    run["verdict"] = (
        json.loads((out / "summary.json").read_text()).get("verdict") if (out / "summary.json").exists() else None
    )
    run["sample_rounds"] = seq.get("sample_rounds")
    run["sampling_s"] = seq.get("elapsed_s")
    run["max_seconds"] = seq.get("max_seconds")
    run["operations"] = {
        c["operation"]: {
            "verdict": c["verdict"],
            "n": max(c["sequential"]["looks"][-1]["n_baseline"] or 0, c["sequential"]["looks"][-1]["n_candidate"])
            if c.get("sequential") and c["sequential"]["looks"]
            else c["n_candidate"],
            "interval": [c["median_ratio"].get("ci_low"), c["median_ratio"].get("ci_high")],
            "stop": (c.get("sequential") or {}).get("stop_text"),
        }
        for c in data.get("comparisons", [])
        if c.get("judged")
    }
    taken = max((len(v) for v in data.get("samples", {}).get("candidate", {}).values()), default=0)
    run["samples_per_side"] = taken
    run["samples_per_side_per_s"] = round(taken / run["sampling_s"], 2) if run.get("sampling_s") else None
    return run


def tally(runs: list[dict[str, Any]]) -> dict[str, Any]:
    verdicts = [r.get("verdict") for r in runs]
    regressions = [
        sorted(op for op, v in r.get("operations", {}).items() if v["verdict"] == "REGRESSION") for r in runs
    ]
    walls = sorted(r["wall_s"] for r in runs)
    perf = sorted(r["performance_s"] for r in runs if r.get("performance_s") is not None)
    return {
        "runs": len(runs),
        "verdicts": {v: verdicts.count(v) for v in sorted({str(v) for v in verdicts})},
        "runs_with_a_regression": sum(1 for r in regressions if r),
        "regressed_operations": regressions,
        "wall_s_median": walls[len(walls) // 2] if walls else None,
        "wall_s_max": walls[-1] if walls else None,
        "performance_s_median": perf[len(perf) // 2] if perf else None,
        "performance_s_max": perf[-1] if perf else None,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| run | candidate | exit | verdict | per judged operation: verdict (n per side) | rounds | samples/side/s "
        "| perf. section s | wall s | load 1m |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, runs in (("clean", result["clean"]["runs_detail"]), ("slow", result["slow"]["runs_detail"])):
        for i, r in enumerate(runs, 1):
            ops = "; ".join(
                f"{op} {v['verdict'].replace('_', ' ')} ({v['n']})" for op, v in r.get("operations", {}).items()
            )
            lines.append(
                f"| {i} | {label} | {r['exit_code']} | {r.get('verdict')} | {ops or r.get('error', '')[:80]} | "
                f"{r.get('sample_rounds')} | {r.get('samples_per_side_per_s')} | {r.get('performance_s')} | "
                f"{r['wall_s']} | {r['load_avg_1m']} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per arm (clean, slowed)")
    parser.add_argument("--burners", type=int, default=2)
    parser.add_argument("--fault", default=SLOW_FAULT)
    parser.add_argument("--full", action="store_true", help="the whole demo, not only the performance section")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--params", default=None, help="params file (default: the demo's)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop)  # a stopped benchmark still stops its burners (finally below)
    global PARAMS
    PARAMS = args.params
    burners = start_burners(args.burners)
    arms: dict[str, list[dict[str, Any]]] = {"clean": [], "slow": []}
    try:
        time.sleep(2)  # let the load settle in
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.runs):  # interleaved: drift over the benchmark hits both arms alike
                for arm, fault in (("clean", None), ("slow", args.fault)):
                    arms[arm].append(one_run(Path(tmp) / f"{arm}{i}", fault, args.full))
                    print(f"{arm} {i + 1}: {json.dumps(arms[arm][-1])}", file=sys.stderr, flush=True)
    finally:
        stop_burners(burners)
    result = {
        "summary": "",
        "burners": args.burners,
        "fault": args.fault,
        "sections": "all" if args.full else "performance",
        "clean": {**tally(arms["clean"]), "runs_detail": arms["clean"]},
        "slow": {**tally(arms["slow"]), "runs_detail": arms["slow"]},
    }
    c, s = result["clean"], result["slow"]
    result["summary"] = (
        f"clean: {c['verdicts']} ({c['runs_with_a_regression']} with a REGRESSION); "
        f"{args.fault}: {s['verdicts']} ({s['runs_with_a_regression']} with a REGRESSION); "
        f"performance section max {max(filter(None, [c['performance_s_max'], s['performance_s_max']]), default=None)} s"
    )
    if args.markdown:
        print(markdown(result))
    print(json.dumps(envelope(BENCHMARK, result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
