"""Benchmark the conversation soak: round trips per client core, every message's latency recorded (issue 19).

Run: ``python benchmarks/bench_conversation_soak.py [--connections 50 500] [--messages 100000] [--reps 3]``

A fast echo server runs in a separate process on 127.0.0.1 (uvloop when installed, websockets'
sans-I/O handshake, then hand-written frame echo: the server is not the limit), pinned to the last
core; every client runs in its own process pinned to the first core, and the arms are interleaved
(one of each per repetition, order rotated), medians reported. Arms, 100-byte JSON echo
(``{"id": ..., "type": "echo", "text": 60 x "x"}``), one request in flight per connection:

* ``soak_asyncio`` / ``soak_uvloop``: ``run_conversation_soak`` (correlated by id, a content check on
  every reply, latency of every message in arrays) on the default loop and on uvloop;
* ``bare_websockets``: the websockets asyncio client, one coroutine per connection
  (send, recv, ``json.loads``, id compared, latency appended), same imports (numpy) as the soak;
* ``artillery``: Artillery's ws engine (``benchmarks/artillery/echo.yml``, send + match, which waits
  for each echo; it records no per-message latency). Optional: ``npm install`` in
  ``benchmarks/artillery`` first. Its CPU is the difference of a full and a small run (same
  connections), so Node's start-up is not counted against it.

Round trips per client core = correct replies / client CPU seconds (user + system, ``getrusage``).
Prints one self-describing JSON line (``_meta.envelope``); the target is 1.2x Artillery at 50 and 500.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import envelope  # also puts this checkout on sys.path

BENCHMARK = "conversation_soak"
QUICK_ARGS = ("--connections", "50", "--messages", "5000", "--reps", "1")
TARGET_RATIO = 1.2
HERE = Path(__file__).resolve().parent
ARTILLERY_DIR = HERE / "artillery"
TEXT = "x" * 60  # {"id":"1-1","type":"echo","text":"xxx..."}: about 100 bytes


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})


# --------------------------------------------------------------------------- echo server process


def _serve() -> None:
    import socket
    import struct

    from websockets.http11 import Request
    from websockets.server import ServerProtocol
    from websockets.speedups import apply_mask

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.ws: ServerProtocol | None = ServerProtocol()
            self.buf = bytearray()

        def data_received(self, data: bytes) -> None:
            if self.ws is not None:  # the opening handshake, by the library
                self.ws.receive_data(data)
                for event in self.ws.events_received():
                    if isinstance(event, Request):
                        self.ws.send_response(self.ws.accept(event))
                        self.transport.write(b"".join(self.ws.data_to_send()))
                        self.ws = None
                return
            buf = self.buf
            buf += data
            out: list[bytes] = []
            pos, n = 0, len(buf)
            while n - pos >= 2:
                b0, length, head = buf[pos], buf[pos + 1] & 0x7F, pos + 2
                if length == 126:
                    if n - head < 2:
                        break
                    length, head = struct.unpack_from("!H", buf, head)[0], head + 2
                elif length == 127:
                    if n - head < 8:
                        break
                    length, head = struct.unpack_from("!Q", buf, head)[0], head + 8
                if n - head < 4 + length:
                    break
                payload = apply_mask(bytes(buf[head + 4 : head + 4 + length]), bytes(buf[head : head + 4]))
                pos = head + 4 + length
                opcode = b0 & 0x0F
                if opcode == 8:  # close: answer it and hang up
                    out.append(b"\x88\x02" + (payload[:2] or b"\x03\xe8"))
                    self.transport.write(b"".join(out))
                    self.transport.close()
                    return
                if opcode == 10:
                    continue
                if opcode == 9:
                    b0 = 0x8A
                if length < 126:
                    out.append(bytes((b0, length)))
                elif length < 65536:
                    out.append(bytes((b0, 126)) + struct.pack("!H", length))
                else:
                    out.append(bytes((b0, 127)) + struct.pack("!Q", length))
                out.append(payload)
            del buf[:pos]
            if out:
                self.transport.write(b"".join(out))

    async def main() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY: field notes
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(4096)
        server = await asyncio.get_running_loop().create_server(Echo, sock=sock)
        print(sock.getsockname()[1], flush=True)
        async with server:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


# --------------------------------------------------------------------------- client arms (one process each)


def _arm_soak(port: int, connections: int, messages: int, uv: bool) -> dict[str, Any]:
    import numpy  # noqa: F401 - the library imports it anyway; stated so the arms compare like with like

    from stability_lib.probes.conversation_soak import run_conversation_soak_sync
    from stability_lib.probes.conversation_soak_results import summarize_conversation_soak
    from stability_lib.probes.conversation_spec import ConversationSoakConfig

    config = ConversationSoakConfig.model_validate(
        {
            "send": {"id": "{msg_id}", "type": "echo", "text": TEXT},
            "correlate": {"id": "{msg_id}"},
            "check": {"type": "echo", "text": TEXT},
            "sessions": connections,
            "concurrency": connections,
            "messages_per_session": max(1, messages // connections),
            "duration_s": 600,
            "connect_timeout_s": 60,
            "allow_over_caps": True,
        }
    )
    cpu0 = _cpu_self()
    result = run_conversation_soak_sync(f"ws://127.0.0.1:{port}/", config, use_uvloop=uv)
    cpu = _cpu_self() - cpu0
    summary = summarize_conversation_soak(result)
    return {
        "ok": summary.messages_ok,
        "failed": summary.messages_failed,
        "cpu_s": cpu,
        "wall_s": result.duration_s,
        "latencies_recorded": int(result.latency_s.size),
        "p50_ms": summary.latency_ms.get("p50"),
        "p99_ms": summary.latency_ms.get("p99"),
    }


def _arm_bare(port: int, connections: int, messages: int) -> dict[str, Any]:
    import numpy  # noqa: F401 - same imports as the soak arm
    from websockets.asyncio.client import connect

    per = max(1, messages // connections)
    latencies: list[float] = []
    wrong = 0

    async def one(index: int) -> None:
        nonlocal wrong
        ws = await connect(f"ws://127.0.0.1:{port}/", proxy=None, compression=None, open_timeout=60)
        for seq in range(1, per + 1):
            msg_id = f"{index}-{seq}"
            sent = time.perf_counter()
            await ws.send(json.dumps({"id": msg_id, "type": "echo", "text": TEXT}))
            reply = json.loads(await ws.recv())
            if reply.get("id") == msg_id and reply.get("text") == TEXT:
                latencies.append(time.perf_counter() - sent)
            else:
                wrong += 1
        await ws.close()

    async def main() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(connections)))
        return time.perf_counter() - started

    cpu0 = _cpu_self()
    wall = asyncio.run(main())
    return {"ok": len(latencies), "failed": wrong, "cpu_s": _cpu_self() - cpu0, "wall_s": wall}


def _client(args: argparse.Namespace) -> int:
    _pin(args.client_cpu)
    if args.arm == "bare_websockets":
        out = _arm_bare(args.port, args.connections_one, args.messages)
    else:
        out = _arm_soak(args.port, args.connections_one, args.messages, uv=args.arm == "soak_uvloop")
    print(json.dumps(out))
    return 0


# --------------------------------------------------------------------------- artillery


def _artillery_bin() -> Path | None:
    path = ARTILLERY_DIR / "node_modules" / ".bin" / "artillery"
    return path if path.exists() and shutil.which("node") else None


def _artillery_once(port: int, connections: int, loops: int, client_cpu: int, workdir: Path) -> tuple[float, int]:
    import yaml

    scenario = yaml.safe_load((ARTILLERY_DIR / "echo.yml").read_text())
    scenario["config"]["target"] = f"ws://127.0.0.1:{port}/"
    scenario["config"]["phases"] = [{"duration": 1, "arrivalCount": connections}]
    scenario["scenarios"][0]["flow"][0]["loop"][0]["send"]["payload"]["text"] = TEXT
    scenario["scenarios"][0]["flow"][0]["count"] = loops
    path = workdir / f"echo_{connections}_{loops}.yml"
    path.write_text(yaml.safe_dump(scenario))
    report = workdir / "report.json"
    cpu0 = _cpu_children()
    run = subprocess.run(
        ["taskset", "-c", str(client_cpu), str(_artillery_bin()), "run", "--output", str(report), str(path)],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "ARTILLERY_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"},
    )
    cpu = _cpu_children() - cpu0
    if run.returncode != 0:
        raise RuntimeError(f"artillery failed: {run.stderr[-500:]}")
    counters = json.loads(report.read_text())["aggregate"]["counters"]
    return cpu, int(counters.get("websocket.messages_received", 0))


def _arm_artillery(port: int, connections: int, messages: int, client_cpu: int) -> dict[str, Any]:
    loops = max(1, messages // connections)
    small = max(1, loops // 10)
    with tempfile.TemporaryDirectory() as tmp:
        cpu_full, got_full = _artillery_once(port, connections, loops, client_cpu, Path(tmp))
        cpu_small, got_small = _artillery_once(port, connections, small, client_cpu, Path(tmp))
    return {
        "ok": got_full - got_small,
        "failed": connections * loops - got_full,
        "cpu_s": cpu_full - cpu_small,
        "cpu_full_run_s": cpu_full,
        "wall_s": None,
    }


# --------------------------------------------------------------------------- orchestration


def _run_arm(arm: str, port: int, connections: int, messages: int, client_cpu: int) -> dict[str, Any]:
    if arm == "artillery":
        out = _arm_artillery(port, connections, messages, client_cpu)
    else:
        run = subprocess.run(
            [
                sys.executable,
                __file__,
                "--client",
                arm,
                "--port",
                str(port),
                "--connections-one",
                str(connections),
                "--messages",
                str(messages),
                "--client-cpu",
                str(client_cpu),
            ],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if run.returncode != 0:
            raise RuntimeError(f"{arm} failed: {run.stderr[-800:]}")
        out = json.loads(run.stdout.strip().splitlines()[-1])
    out["roundtrips_per_cpu_s"] = out["ok"] / out["cpu_s"] if out["cpu_s"] > 0 else None
    out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--messages", type=int, default=100_000, help="round trips per run")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--arms", nargs="+", default=["soak_asyncio", "soak_uvloop", "bare_websockets", "artillery"])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--connections-one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client-cpu", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    if args.serve:
        if len(cpus) > 1:
            _pin(cpus[-1])
        _serve()
        return 0
    if args.client:
        args.arm = args.client
        return _client(args)

    arms = [a for a in args.arms if a != "artillery" or _artillery_bin() is not None]
    skipped = sorted(set(args.arms) - set(arms))
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        for rep in range(args.reps):
            for connections in args.connections:
                order = arms[rep % len(arms) :] + arms[: rep % len(arms)]  # rotated: no arm always first
                for arm in order:
                    out = _run_arm(arm, port, connections, args.messages, cpus[0])
                    runs.setdefault(str(connections), {}).setdefault(arm, []).append(out)
                    print(f"# rep {rep} conns {connections} {arm}: {json.dumps(out)}", file=sys.stderr, flush=True)
    finally:
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()

    figures: dict[str, Any] = {}
    met: list[bool] = []
    for connections, by_arm in runs.items():
        medians = {
            arm: statistics.median(r["roundtrips_per_cpu_s"] for r in rs if r["roundtrips_per_cpu_s"])
            for arm, rs in by_arm.items()
            if any(r["roundtrips_per_cpu_s"] for r in rs)
        }
        row: dict[str, Any] = {f"{arm}_roundtrips_per_cpu_s": round(v) for arm, v in medians.items()}
        row["loads_1m"] = sorted({r["load_avg_1m"] for rs in by_arm.values() for r in rs})
        for arm in ("soak_asyncio", "soak_uvloop"):
            for ref in ("artillery", "bare_websockets"):
                if arm in medians and ref in medians:
                    row[f"{arm}_vs_{ref}"] = round(medians[arm] / medians[ref], 2)
        if "artillery" in medians and "soak_asyncio" in medians:
            met.append(medians["soak_asyncio"] / medians["artillery"] >= TARGET_RATIO)
        row["runs"] = by_arm
        figures[connections] = row
    target_met = all(met) if met and len(met) == 2 else None
    summary = "; ".join(
        f"{c} connections: soak {row.get('soak_asyncio_roundtrips_per_cpu_s', 'n/a')} round trips/CPU-s "
        f"({row.get('soak_asyncio_vs_artillery', 'n/a')}x Artillery, "
        f"{row.get('soak_asyncio_vs_bare_websockets', 'n/a')}x bare websockets)"
        for c, row in figures.items()
    )
    results = {
        "summary": summary,
        "params": {"connections": args.connections, "messages": args.messages, "reps": args.reps, "arms": arms},
        "skipped_arms": skipped,
        "client_cpu": cpus[0],
        "figures": figures,
        "target": f"soak round trips per client core >= {TARGET_RATIO}x Artillery's ws engine at 50 and 500",
        "target_met": target_met,
    }
    print(json.dumps(envelope(BENCHMARK, results)))
    return 1 if target_met is False else 0


if __name__ == "__main__":
    raise SystemExit(main())
