"""The WebSocket probe engine's own cost against the bare ``websockets`` client, in the same run.

Run: ``python benchmarks/bench_engine.py [--rounds 5] [--loop asyncio|uvloop] [--held 10000]``

A WebSocket server runs in a separate process (pinned to the last core when the OS allows
it, on uvloop when installed so the server is rarely the limit); this client process is
pinned to the first core and imports the engine before anything runs, so both sides below
have the same process imports (numpy and the rest change malloc's behaviour: field notes).
What is measured is the client's CPU time (``time.process_time``), not wall time: on a
shared machine wall time measures the neighbours.

* ``short``: one session = open, send one JSON message, receive ``agent_started`` and
  ``final_response``, close. CPU per session, at 50 and 500 concurrent.
* ``stream``: one message, 201 events back (``agent_started``, 199 ``token``,
  ``final_response``). Events per CPU-second, at 50 and 500 concurrent.

Each figure is ``run_soak`` (the engine: scenario, templating, expectations, records,
aggregation) against a bare client doing the same exchange with the same settings
(``compression=None``, JSON parse of every event), in interleaved rounds
(A B, B A, ...), median of the rounds. ``--held N`` measures instead the peak RSS of a
fresh process holding N sessions open at once (server releases them when all N are open),
bare and engine, each in its own process with the same imports.

Prints one self-describing JSON line (see _meta.envelope); exits 1 if a target was missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import gc
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import envelope  # also puts this checkout on sys.path
from bench_ws_sessions import _pin  # the same pinning as the sessions benchmark

BENCHMARK = "ws_engine"
QUICK_ARGS = ("--rounds", "2", "--scale", "0.25")
TARGET_SHORT_RATIO = 1.1  # engine CPU per short session / bare, at most
TARGET_STREAM_RATIO = 0.8  # engine events per CPU-second / bare, at least
TARGET_HELD_MB = 300.0
STREAM_TOKENS = 199  # + agent_started + final_response = 201 events


# --------------------------------------------------------------------------- server process


async def _serve() -> None:
    from websockets.asyncio.server import ServerConnection, serve

    held: dict[str, Any] = {"n": 0, "event": asyncio.Event(), "want": 0}
    started = json.dumps({"type": "agent_started"})
    token = json.dumps({"type": "token", "content": "x" * 40})

    async def handler(ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        message = json.loads(await ws.recv())
        final = json.dumps({"type": "final_response", "content": message.get("content", "")})
        await ws.send(started)
        if path.startswith("/stream"):
            for _ in range(STREAM_TOKENS):
                await ws.send(token)
        elif path.startswith("/hold"):
            want = int(path.rsplit("/", 1)[1])
            if held["want"] != want or held["event"].is_set():  # a new batch
                held.update(n=0, want=want, event=asyncio.Event())
            event = held["event"]
            held["n"] += 1
            if held["n"] >= want:
                event.set()
            with contextlib.suppress(TimeoutError):  # a client that never came: release the others
                await asyncio.wait_for(event.wait(), 300)
        await ws.send(final)
        await ws.wait_closed()

    async with serve(
        handler, "127.0.0.1", 0, backlog=4096, compression=None, ping_interval=None, open_timeout=300
    ) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def _run(coro: Coroutine[Any, Any, Any], loop: str) -> Any:
    with asyncio.Runner(loop_factory=_loop_factory(loop)) as runner:
        return runner.run(coro)


# --------------------------------------------------------------------------- the two clients


async def _bare(port: int, kind: str, sessions: int, concurrency: int) -> int:
    """The same exchange with the bare websockets client; returns the sessions that ended well."""
    from websockets.asyncio.client import connect

    url = f"ws://127.0.0.1:{port}/{'stream' if kind == 'conv' else kind}"
    next_index = 0
    ok = 0

    async def worker() -> None:
        nonlocal next_index, ok
        while next_index < sessions:
            next_index += 1
            async with connect(url, compression=None, proxy=None, max_size=1 << 20, open_timeout=120) as ws:
                await ws.send(json.dumps({"type": "user_message", "content": f"hello nonce-{uuid.uuid4().hex}"}))
                while True:
                    if json.loads(await ws.recv()).get("type") == "final_response":
                        ok += 1
                        break

    await asyncio.gather(*(worker() for _ in range(min(concurrency, sessions))))
    return ok


OLD_FORM: dict[str, Any] = {
    "kind": "ws",
    "send": {"type": "user_message", "content": "hello {nonce}"},
    "expect": ["agent_started"],
    "end_event": "final_response",
    "event_timeout_s": 400,
    "timeout_s": 600,
}
# The same exchange as a conversation (the sans-I/O machine of probes.conversation reads every frame).
CONVERSATION: dict[str, Any] = {
    "kind": "ws",
    "name": "conv",
    "path": "/stream",
    "conversation": [
        {"send": {"type": "user_message", "content": "hello {nonce}"}},
        {"expect": {"match": {"type": "agent_started"}, "timeout_s": 400}},
        {"expect": {"match": {"type": "final_response"}, "timeout_s": 400}},
    ],
    "ignore": [{"match": {"type": "token"}}],
    "timeout_s": 600,
}


@functools.cache  # params are validated once, before the measured round (_cpu_round)
def _scenario(kind: str, sessions: int, concurrency: int) -> Any:
    from stability_lib.probes.scenario import ScenarioConfig

    return ScenarioConfig.model_validate(
        {
            "users": {"password": "unused-in-this-benchmark", "count": 1},
            "golden_path": {
                "steps": [CONVERSATION if kind == "conv" else {**OLD_FORM, "name": kind, "path": f"/{kind}"}]
            },
            "soak": {
                "sessions": sessions,
                "concurrency": concurrency,
                "duration_s": 600,
                "connect_timeout_s": 120,
                "allow_over_caps": True,
            },
        }
    )


async def _engine(port: int, kind: str, sessions: int, concurrency: int) -> int:
    from stability_lib.probes.engine import run_soak

    result = await run_soak(f"http://127.0.0.1:{port}", _scenario(kind, sessions, concurrency))
    return result.aggregate.ok


CLIENTS = {"bare": _bare, "engine": _engine}


def _cpu_round(client: str, port: int, kind: str, sessions: int, concurrency: int, loop: str) -> tuple[float, int]:
    if client == "engine":
        _scenario(kind, sessions, concurrency)
    # Every round starts from an empty young generation and no pending full collection: otherwise a
    # full collection (about 50 ms with numpy and scipy loaded) falls into whichever round reaches
    # the threshold, whatever that round's client did (rounds varied by 15-20% on an idle machine).
    gc.collect()
    cpu0 = time.process_time()
    ok = _run(CLIENTS[client](port, kind, sessions, concurrency), loop)
    return time.process_time() - cpu0, ok


def _cpu_figures(port: int, loop: str, rounds: int, scale: float, only: str = "") -> dict[str, Any]:
    plan = [  # kind, concurrency, sessions per round
        ("short", 50, int(2000 * scale)),
        ("short", 500, int(2000 * scale)),
        ("stream", 50, int(400 * scale)),
        ("stream", 500, int(1000 * scale)),
        ("conv", 50, int(400 * scale)),  # the stream as a conversation: informative, no target of its own
    ]
    out: dict[str, Any] = {}
    for kind, concurrency, sessions in plan:
        if not f"{kind}_{concurrency}".startswith(only):
            continue
        _cpu_round("bare", port, kind, min(sessions, 100), min(concurrency, 100), loop)  # warm up
        _cpu_round("engine", port, kind, min(sessions, 100), min(concurrency, 100), loop)
        cpu: dict[str, list[float]] = {"bare": [], "engine": []}
        for r in range(rounds):
            order = ("bare", "engine") if r % 2 == 0 else ("engine", "bare")
            for client in order:
                spent, ok = _cpu_round(client, port, kind, sessions, concurrency, loop)
                if ok != sessions:
                    raise SystemExit(f"{client} {kind}@{concurrency}: {ok} of {sessions} sessions ok")
                cpu[client].append(spent)
        key = f"{kind}_{concurrency}"
        if kind == "short":
            per = {c: [1000 * s / sessions for s in v] for c, v in cpu.items()}  # ms of CPU per session
            bare, engine = statistics.median(per["bare"]), statistics.median(per["engine"])
            out[key] = {
                "unit": "ms CPU per session (lower is better)",
                "bare": round(bare, 4),
                "engine": round(engine, 4),
                "ratio": round(engine / bare, 3),
                "target": f"ratio <= {TARGET_SHORT_RATIO}",
                "met": engine / bare <= TARGET_SHORT_RATIO,
                "rounds": {c: [round(x, 4) for x in v] for c, v in per.items()},
                "sessions_per_round": sessions,
            }
        else:
            events = sessions * (STREAM_TOKENS + 2)
            per = {c: [events / s for s in v] for c, v in cpu.items()}  # events per CPU-second
            bare, engine = statistics.median(per["bare"]), statistics.median(per["engine"])
            out[key] = {
                "unit": "events per CPU-second (higher is better)",
                "bare": round(bare),
                "engine": round(engine),
                "ratio": round(engine / bare, 3),
                "target": f"ratio >= {TARGET_STREAM_RATIO}" if kind == "stream" else "none (informative)",
                "met": engine / bare >= TARGET_STREAM_RATIO if kind == "stream" else None,
                "rounds": {c: [round(x) for x in v] for c, v in per.items()},
                "sessions_per_round": sessions,
            }
        print(f"# {key}: {json.dumps({k: out[key][k] for k in ('bare', 'engine', 'ratio')})}", file=sys.stderr)
    return out


def _profile(port: int, loop: str, kind: str, concurrency: int, sessions: int, client: str) -> None:
    for warm in CLIENTS:  # imports and first-use caches (scipy comes in with the engine's counting) stay out
        _cpu_round(warm, port, kind, min(sessions, 100), min(concurrency, 100), loop)
    _scenario(kind, sessions, concurrency)
    gc.collect()
    profiler = cProfile.Profile()
    profiler.enable()
    _run(CLIENTS[client](port, kind, sessions, concurrency), loop)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stderr)
    stats.sort_stats("tottime").print_stats(35)
    stats.sort_stats("cumtime").print_stats("stability_lib|httpx|uuid|pydantic", 40)


# --------------------------------------------------------------------------- held sessions (memory)


def _current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _held_child(port: int, client: str, sessions: int, loop: str) -> dict[str, Any]:
    import stability_lib.probes.engine  # noqa: F401 - the same imports on both sides

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sampled = {"max_mb": 0.0, "stats_loaded_mb": -1.0}
    done = threading.Event()

    def sample() -> None:  # RSS while the sessions are open, and when the counting (scipy) came in
        while not done.wait(0.1):
            rss = _current_rss_mb()
            if "scipy" in sys.modules and sampled["stats_loaded_mb"] < 0:
                sampled["stats_loaded_mb"] = rss
            if "scipy" not in sys.modules:
                sampled["max_mb"] = max(sampled["max_mb"], rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    ok = _run(CLIENTS[client](port, f"hold/{sessions}", sessions, sessions), loop)
    done.set()
    sampler.join()
    return {
        "rss_while_held_mb": round(sampled["max_mb"], 1),
        "rss_when_counting_started_mb": round(sampled["stats_loaded_mb"], 1),
        "client": client,
        "sessions": sessions,
        "ok": ok,
        "rss_before_mb": round(rss0, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "wall_s": round(time.perf_counter() - t0, 2),
    }


def _held(port: int, sessions: int, loop: str, soak_gc: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for client in ("bare", "engine"):
        cmd = [sys.executable, __file__, "--held-child", client, "--held", str(sessions), "--port", str(port)]
        cmd += ["--loop", loop, "--soak-gc", soak_gc]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise SystemExit(f"held {client}: {done.stderr[-2000:]}")
        out[client] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"# held {client}: {out[client]}", file=sys.stderr)
    engine, bare = out["engine"], out["bare"]
    out["per_session_kb"] = {
        c: round(1024 * (out[c]["peak_rss_mb"] - out[c]["rss_before_mb"]) / sessions, 1) for c in ("bare", "engine")
    }
    out["target"] = f"{sessions} sessions held in under {TARGET_HELD_MB:g} MB"
    out["met"] = engine["ok"] == sessions and engine["peak_rss_mb"] < TARGET_HELD_MB and bare["ok"] == sessions
    return out


# --------------------------------------------------------------------------- main


def _soak_gc(choice: str) -> Any:
    """The engine's soak module with its garbage-collector setting as ``--soak-gc`` says."""
    import stability_lib.probes.soak as soak_module

    if choice in ("default", "freeze-only"):  # the threshold stays CPython's
        soak_module.SOAK_GC_THRESHOLD0 = 0
    if choice in ("freeze", "freeze-only"):
        soak_module.SOAK_GC_FREEZE = True
    return soak_module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="sessions per round, as a fraction of the default")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--held", type=int, default=0, help="measure N sessions held at once (memory) instead")
    parser.add_argument("--only", default="", help="e.g. short_50: run the CPU plan's rows whose key starts so")
    parser.add_argument(
        "--soak-gc",
        choices=("as-shipped", "default", "freeze", "freeze-only"),
        default="as-shipped",
        help="the engine's garbage-collector setting during a soak: as shipped, CPython's default, + gc.freeze(), "
        "or gc.freeze() at the default threshold",
    )
    parser.add_argument("--profile", default="", help="KIND:CONCURRENCY:SESSIONS:CLIENT, cProfile to stderr")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--held-child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if args.serve:
        if len(cpus) > 1:
            _pin(cpus[-1])
        try:
            import uvloop

            uvloop.run(_serve())
        except ImportError:
            asyncio.run(_serve())
        return 0
    soak_module = _soak_gc(args.soak_gc)
    if args.held_child:
        if len(cpus) > 1:
            _pin(cpus[0])
        print(json.dumps(_held_child(args.port, args.held_child, args.held, args.loop)))
        return 0

    import websockets

    import stability_lib.probes.engine  # noqa: F401 - imported before any round: same imports for both clients

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    load_before = os.getloadavg()
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        client_cpu = _pin(cpus[0]) if len(cpus) > 1 else None
        if args.profile:
            kind, conc, n, client = args.profile.split(":")
            _profile(port, args.loop, kind, int(conc), int(n), client)
            return 0
        if args.held:
            figures = {"held": _held(port, args.held, args.loop, args.soak_gc)}
            met = [figures["held"]["met"]]
        else:
            figures = _cpu_figures(port, args.loop, args.rounds, args.scale, args.only)
            met = [v["met"] for v in figures.values() if v["met"] is not None]
    finally:
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    results = {
        "summary": "; ".join(
            f"{k}: engine/bare {v['ratio']}" if "ratio" in v else f"{k}: {v['engine']['peak_rss_mb']} MB"
            for k, v in figures.items()
        ),
        "params": {
            "rounds": args.rounds,
            "scale": args.scale,
            "loop": args.loop,
            "held": args.held,
            "soak_gc": args.soak_gc,
            "gc_threshold_in_soak": [soak_module.SOAK_GC_THRESHOLD0, soak_module.SOAK_GC_FREEZE],
        },
        "client_cpu": client_cpu,
        "load_avg_before": [round(x, 2) for x in load_before],
        "libraries": {"websockets": websockets.__version__},
        "figures": figures,
        "target_met": all(met),
    }
    print(json.dumps(envelope(BENCHMARK, results)))
    return 0 if all(met) else 1


if __name__ == "__main__":
    raise SystemExit(main())
