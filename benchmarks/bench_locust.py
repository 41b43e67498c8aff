"""The Locust engine (2 local workers) against our own engine: the same soak, the same machine.

Run: ``python benchmarks/bench_locust.py [--sessions 1000] [--concurrency 20] [--rounds 2]``

The sample service runs in its own process (``python -m stability_lib.demo``), so the figures are the
load generators' alone. Each round runs the demo's agent session soak (register, login, create a
thread per user; then ``--sessions`` WebSocket sessions of 7 events) once on each engine, in
alternating order (A B, B A, ...):

* ``own``: ``probes.soak.run_soak_sync`` in a fresh process (asyncio, one process);
* ``locust``: ``scale.launcher.run_locust_soak`` with 2 local workers (a master and 2 worker
  processes on gevent; the figures come from the workers' and the master's own ``getrusage``).

Reported per engine (median of the rounds): sessions per second of the soak (wall time: what a user
gets, on this shared machine), client CPU seconds per 1,000 sessions (all of the engine's processes;
measured, unlike wall time, about the same beside other load), the same without start-up (Locust:
the processes' CPU before the soak's first user setup is left out; own: measured around the soak),
and peak RSS per process (MiB). The
load average is in the envelope: read every figure with it.

Prints one self-describing JSON line (see _meta.envelope).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import REPO, envelope  # also puts this checkout on sys.path

BENCHMARK = "locust_engine"
QUICK_ARGS: tuple[str, ...] = ("--sessions", "300", "--rounds", "1")
PASSWORD_ENV = "BENCH_LOCUST_PASSWORD"

OWN_ENGINE = """
import json, os, sys, time
from stability_lib.execution.params import resolve_env
from stability_lib.probes.engine import run_soak_sync
from stability_lib.probes.scenario import ScenarioConfig
raw = json.loads(sys.argv[1])
scenario = ScenarioConfig.model_validate(resolve_env(raw, os.environ, "scenario"))
cpu0 = time.process_time()
result = run_soak_sync(sys.argv[2], scenario)
# VmHWM: ru_maxrss would include this process's parent's peak (Linux folds it in across exec).
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({
    "sessions": result.aggregate.sessions, "ok": result.aggregate.ok, "soak_s": result.duration_s,
    "cpu_s": time.process_time() - cpu0, "max_rss_mib": hwm / 1024,
}))
"""


def scenario(sessions: int, concurrency: int) -> dict[str, Any]:
    import yaml

    raw = yaml.safe_load((REPO / "params" / "demo.yaml").read_text())["scenario"]
    raw["users"]["password"] = "${" + PASSWORD_ENV + "}"
    raw["soak"] = {**raw["soak"], "sessions": sessions, "concurrency": concurrency, "duration_s": 600}
    return raw


def start_service() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "stability_lib.demo", "--variant", "candidate", "--seed", "1"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit(f"the sample service did not start: {url!r}")
    return proc, url


def own_round(raw: dict[str, Any], url: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", OWN_ENGINE, json.dumps(raw), url], capture_output=True, text=True, cwd=REPO, check=True
    )
    got = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "sessions": got["sessions"],
        "ok": got["ok"],
        "rate_per_s": got["sessions"] / got["soak_s"],
        "cpu_s_per_1000": 1000 * got["cpu_s"] / max(1, got["sessions"]),
        "soak_cpu_s_per_1000": 1000 * got["cpu_s"] / max(1, got["sessions"]),  # measured around the soak only
        "peak_rss_mib_per_process": round(got["max_rss_mib"], 1),
        "processes": 1,
    }


def locust_round(raw: dict[str, Any], url: str, workers: int) -> dict[str, Any]:
    from stability_lib.execution.params import resolve_env
    from stability_lib.probes.scenario import ScenarioConfig
    from stability_lib.scale.launcher import LocustSettings, run_locust_soak

    with tempfile.TemporaryDirectory(prefix="bench-locust-") as tmp:
        done = run_locust_soak(
            scenario=ScenarioConfig.model_validate(resolve_env(raw, os.environ, "scenario")),
            raw_scenario=raw,
            base_url=url,
            raw_base_url=url,
            raw_ws_base_url=None,
            out_dir=Path(tmp),
            settings=LocustSettings(workers=workers),
        )
    res = done.run.resources
    worker_res = list((res.get("workers") or {}).values())
    every = [*worker_res, res.get("master") or {}]
    cpu = sum(float(p.get("cpu_s", 0.0)) for p in every)
    soak_cpu = sum(float(p.get("cpu_s", 0.0)) - float(p.get("cpu_s_before_soak", 0.0)) for p in every)
    sessions = done.soak.aggregate.sessions
    return {
        "sessions": sessions,
        "ok": done.soak.aggregate.ok,
        "rate_per_s": done.run.rate_per_s,
        "cpu_s_per_1000": 1000 * cpu / max(1, sessions),
        "soak_cpu_s_per_1000": 1000 * soak_cpu / max(1, sessions),
        "peak_rss_mib_per_process": max((float(w["max_rss_mib"]) for w in worker_res), default=0.0),
        "master_peak_rss_mib": float((res.get("master") or {}).get("max_rss_mib", 0.0)),
        "processes": 1 + workers,
        "workers_seen": done.run.workers_seen,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault(PASSWORD_ENV, "bench-locust-pw-4711")
    raw = scenario(args.sessions, args.concurrency)
    service, url = start_service()
    rounds: dict[str, list[dict[str, Any]]] = {"own": [], "locust": []}
    load: list[list[float]] = []
    try:
        for i in range(args.rounds):
            order = ["own", "locust"] if i % 2 == 0 else ["locust", "own"]
            for engine in order:
                load.append([round(x, 2) for x in os.getloadavg()])
                got = own_round(raw, url) if engine == "own" else locust_round(raw, url, args.workers)
                rounds[engine].append(got)
                print(engine, json.dumps(got), file=sys.stderr)
    finally:
        service.terminate()
        service.wait(timeout=10)

    def median(engine: str, key: str) -> float:
        return round(statistics.median(r[key] for r in rounds[engine]), 2)

    summary = {
        engine: {
            key: median(engine, key)
            for key in ("rate_per_s", "cpu_s_per_1000", "soak_cpu_s_per_1000", "peak_rss_mib_per_process")
            if rounds[engine]
        }
        for engine in rounds
    }
    result = {
        "sessions": args.sessions,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "rounds": rounds,
        "median": summary,
        "load_avg_at_each_start": load,
        "elapsed_note": "rate: sessions / soak time (wall); cpu: all processes of the engine; service in its own process",
        "ok": all(r["ok"] == r["sessions"] == args.sessions for rs in rounds.values() for r in rs),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(json.dumps(envelope(BENCHMARK, result)))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
