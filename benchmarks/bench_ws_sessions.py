"""Benchmark the WebSocket probe: many sessions held at once, and round trips per core.

Run: ``python benchmarks/bench_ws_sessions.py [--sessions 1000] [--hold-s 2] [--roundtrips 20000]``

A scripted server runs in a separate process on 127.0.0.1 (pinned to the last core
when the OS allows it); this client process is pinned to the first core. Measured:
  * ``soak_*``: ``run_soak`` with N sessions at concurrency N against a server that
    answers each message only after ``hold_s``, so all N sessions are open at once
    (the library's own code path: auth-free scenario, templating, event
    expectations, records, aggregation);
  * ``peak_rss_mb``: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of this process
    after the soak (target: 1,000 sessions held in under 500 MB);
  * ``roundtrips_per_s``: 100-byte echo round trips over 50 open connections with the
    same client settings as the probe (websockets asyncio client), one client core.
Prints one self-describing JSON line (see _meta.envelope); exits 1 if the target was
measured and missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import envelope  # also puts this checkout on sys.path

BENCHMARK = "ws_sessions"  # stable key of the results file
QUICK_ARGS = ("--sessions", "50", "--hold-s", "0.5", "--roundtrips", "2000")  # for run_all.py --quick
TARGET_SESSIONS = 1000
TARGET_RSS_MB = 500.0


# --------------------------------------------------------------------------- server process


async def _serve(hold_s: float) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def handler(ws: ServerConnection) -> None:
        if ws.request.path.startswith("/echo"):
            async for message in ws:
                await ws.send(message)
            return
        message = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "agent_started"}))
        await asyncio.sleep(hold_s)  # keep every session open at once
        await ws.send(json.dumps({"type": "final_response", "content": message.get("content", "")}))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, backlog=2048, compression=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin


def _pin(cpu: int) -> int | None:
    if not hasattr(os, "sched_setaffinity"):
        return None
    try:
        os.sched_setaffinity(0, {cpu})
        return cpu
    except OSError:
        return None


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# --------------------------------------------------------------------------- client measurements


async def _roundtrips(port: int, connections: int, total: int) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    payload = "x" * 100
    per_conn = max(1, total // connections)
    latencies: list[int] = []

    async def one(ws: Any) -> None:
        for _ in range(per_conn):
            t0 = time.perf_counter_ns()
            await ws.send(payload)
            await ws.recv()
            latencies.append(time.perf_counter_ns() - t0)

    sockets = [await connect(f"ws://127.0.0.1:{port}/echo", proxy=None, max_size=1 << 20) for _ in range(connections)]
    started = time.perf_counter()
    await asyncio.gather(*(one(ws) for ws in sockets))
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(ws.close() for ws in sockets))
    latencies.sort()
    return {
        "roundtrip_connections": connections,
        "roundtrips": len(latencies),
        "roundtrips_per_s": round(len(latencies) / elapsed, 1),
        "roundtrip_p50_ms": round(latencies[len(latencies) // 2] / 1e6, 3),
        "roundtrip_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] / 1e6, 3),
    }


async def _soak(port: int, sessions: int, hold_s: float) -> dict[str, Any]:
    from stability_lib.probes.engine import run_soak
    from stability_lib.probes.scenario import ScenarioConfig

    scenario = ScenarioConfig.model_validate(
        {
            "users": {"password": "unused-in-this-benchmark", "count": 1},
            "golden_path": {
                "steps": [
                    {
                        "kind": "ws",
                        "name": "hold",
                        "path": "/hold",
                        "send": {"type": "user_message", "content": "hello {nonce}"},
                        "expect": ["agent_started"],
                        "end_event": "final_response",
                        "event_timeout_s": hold_s + 30,
                        "timeout_s": hold_s + 60,
                    }
                ]
            },
            "soak": {
                "sessions": sessions,
                "concurrency": sessions,
                "duration_s": 120,
                "connect_timeout_s": 30,
                "allow_over_caps": sessions > 200,
            },
        }
    )
    rss_before = _rss_mb()
    started = time.perf_counter()
    result = await run_soak(f"http://127.0.0.1:{port}", scenario)
    elapsed = time.perf_counter() - started
    agg = result.aggregate
    return {
        "soak_sessions": agg.sessions,
        "soak_ok": agg.ok,
        "soak_outcomes": agg.outcome_labels,
        "soak_wall_s": round(elapsed, 3),
        "soak_hold_s": hold_s,
        "soak_connect_p50_ms": round(1000 * agg.latency_s["connect"].get("p50", float("nan")), 3),
        "soak_connect_p99_ms": round(1000 * agg.latency_s["connect"].get("p99", float("nan")), 3),
        "rss_before_soak_mb": round(rss_before, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=TARGET_SESSIONS)
    parser.add_argument("--hold-s", type=float, default=2.0)
    parser.add_argument("--roundtrips", type=int, default=20_000)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if args.serve:
        if len(cpus) > 1:
            _pin(cpus[-1])
        asyncio.run(_serve(args.hold_s))
        return 0

    import websockets

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--hold-s", str(args.hold_s)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        client_cpu = _pin(cpus[0]) if len(cpus) > 1 else None
        figures: dict[str, Any] = {}
        figures.update(asyncio.run(_soak(port, args.sessions, args.hold_s)))
        figures["peak_rss_mb"] = round(_rss_mb(), 1)
        figures.update(asyncio.run(_roundtrips(port, 50, args.roundtrips)))
    finally:
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    # A run smaller than the target size says nothing about the target: None, not False.
    target_met = (
        figures["soak_ok"] >= TARGET_SESSIONS and figures["peak_rss_mb"] < TARGET_RSS_MB
        if args.sessions >= TARGET_SESSIONS
        else None
    )
    results = {
        "summary": (
            f"{figures['soak_ok']} of {figures['soak_sessions']} sessions held at once, "
            f"peak RSS {figures['peak_rss_mb']:g} MB; "
            f"{figures['roundtrips_per_s']:,.0f} round trips/s over 50 connections"
        ),
        "params": {"sessions": args.sessions, "hold_s": args.hold_s, "roundtrips": args.roundtrips},
        "client_cpu": client_cpu,
        "libraries": {"websockets": websockets.__version__},
        "figures": figures,
        "target": f"{TARGET_SESSIONS} sessions held in under {TARGET_RSS_MB:g} MB",
        "target_met": target_met,
    }
    print(json.dumps(envelope(BENCHMARK, results)))
    return 1 if target_met is False else 0


if __name__ == "__main__":
    raise SystemExit(main())
