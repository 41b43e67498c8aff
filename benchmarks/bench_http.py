"""Benchmark the HTTP step: client CPU per request of ``run_http_step`` against the bare libraries.

Run: ``python benchmarks/bench_http.py [--requests 3000] [--concurrency 50] [--rounds 5] [--before REF]``

A fast HTTP/1.1 keep-alive server (a bare asyncio protocol that answers every request with the same
small JSON body) runs in a separate process on 127.0.0.1, pinned to the last core when the OS allows
it; this client process is pinned to the first core. Every client runs in this one process (same
imports: like with like), the modes interleaved round by round, and each figure is the median over
the rounds of the client's own CPU time (``resource.getrusage(RUSAGE_SELF)``, user + system) per
request, with ``concurrency`` workers sending ``requests`` GETs in all:

  * ``run_http_step``: the probe's path as the golden path runs it: one client per worker from
    ``new_http_client`` (made inside the measurement, as a round of the golden path makes them), a
    templated GET with the token header, status check, capped and redacted body kept, a JSON
    ``check`` on the body;
  * ``run_http_step_before``: the same with ``probes/http_steps.py`` and ``probes/http_transport.py``
    as they were at git ``--before`` (default ``a766f5a``, before the step went below httpx's client
    layer), loaded from git beside today's (only when git has them): the same-run reference for a
    change to the step, ``ratio_to_before`` in the results;
  * ``run_http_step_httpcore``: the same through httpx's own transport (httpcore over anyio), the
    probe's transport until issue 19;
  * ``httpx_client_per_worker``: bare ``httpx.AsyncClient`` per worker, ``await client.get(url)``;
  * ``httpx_shared_client``: one ``httpx.AsyncClient`` for every worker (pool of ``concurrency``);
  * ``aiohttp_shared_session``: one ``aiohttp.ClientSession`` (only if aiohttp is importable).

Each worker asks for the same URL again and again (its own); ``--fresh-urls`` makes every request's
URL a new one (a counter in the query) for the ``run_http_step*`` modes, which the probe's URL parse
cache cannot help.

Prints one self-describing JSON line (see _meta.envelope); with ``--markdown`` also a table. Exits 1
if ``run_http_step`` misses the target (30% under issue 19's 524 µs per request, measured idle: on a
busy machine every figure is higher, so read the ratios and the load average).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import REPO, envelope  # also puts this checkout on sys.path
from bench_ws_sessions import _pin  # the same pinning as the WebSocket benchmark

BENCHMARK = "http_step"  # stable key of the results file
QUICK_ARGS = ("--requests", "500", "--rounds", "1")  # for run_all.py --quick
ISSUE_US_PER_REQUEST = 524.0  # run_http_step, issue 19
TARGET_US_PER_REQUEST = ISSUE_US_PER_REQUEST * 0.7

# --------------------------------------------------------------------------- server process

_BODY = b'{"id": 7, "status": "ok", "items": [1, 2, 3], "note": "a small JSON body"}'
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(_BODY)).encode()
    + b"\r\n\r\n"
    + _BODY
)


class _HttpProtocol(asyncio.Protocol):
    """Answers every request head (no request bodies: the benchmark sends GETs) with one canned response."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        heads = self.buffer.count(b"\r\n\r\n")
        if heads:
            self.buffer = self.buffer[self.buffer.rfind(b"\r\n\r\n") + 4 :]
            self.transport.write(_RESPONSE * heads)


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    # create_server resolves the host to an IPPROTO_TCP socket, so accepted connections get TCP_NODELAY.
    server = await loop.create_server(_HttpProtocol, "127.0.0.1", 0, backlog=2048)
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- client modes


def _tls_context() -> Any:
    """One TLS context for the bare httpx clients too (the probe shares one): building one per client
    costs 13-16 ms of CPU (field notes), which would measure certifi, not requests."""
    from stability_lib.probes.http_steps import shared_ssl_context

    return shared_ssl_context()


Worker = Callable[[int, int], Awaitable[int]]  # (worker index, requests) -> failures
Mode = Callable[[str, int, int], Coroutine[Any, Any, int]]  # (base URL, concurrency, requests) -> failures

_BEFORE_FILES = ("http_transport", "http_steps")  # the step's own modules, in import order
_options: dict[str, Any] = {"before": "a766f5a", "fresh_urls": False}  # set from the command line


async def _mode_run_http_step(base_url: str, concurrency: int, total: int) -> int:
    from stability_lib.probes import http_steps

    return await _run_http_step(base_url, concurrency, total, http_steps, httpx_transport=False)


async def _mode_run_http_step_httpcore(base_url: str, concurrency: int, total: int) -> int:
    from stability_lib.probes import http_steps

    return await _run_http_step(base_url, concurrency, total, http_steps, httpx_transport=True)


async def _mode_run_http_step_before(base_url: str, concurrency: int, total: int) -> int:
    return await _run_http_step(base_url, concurrency, total, _before_modules(), httpx_transport=False)


def _git_source(name: str) -> str | None:
    ref, path = _options["before"], f"stability_lib/probes/{name}.py"
    shown = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=REPO, capture_output=True, text=True)
    return shown.stdout if shown.returncode == 0 else None


@functools.cache
def _before_modules() -> types.ModuleType:
    """``probes.http_steps`` and ``probes.http_transport`` as they were at ``--before``, beside today's.

    The other probe modules they import are today's: only these two files differ between the modes.
    """
    modules: dict[str, types.ModuleType] = {}
    for name in _BEFORE_FILES:
        source = _git_source(name)
        assert source is not None
        source = source.replace("from .http_transport import", "from ._before_http_transport import")
        full = f"stability_lib.probes._before_{name}"
        module = types.ModuleType(full)
        module.__package__ = "stability_lib.probes"
        sys.modules[full] = module
        exec(compile(source, f"{_options['before']}:{name}.py", "exec"), module.__dict__)  # noqa: S102
        modules[name] = module
    return modules["http_steps"]


async def _run_http_step(
    base_url: str, concurrency: int, total: int, http_steps: types.ModuleType, *, httpx_transport: bool
) -> int:
    import httpx

    from stability_lib.probes.scenario import AuthConfig, HttpStep

    new_http_client, run_http_step = http_steps.new_http_client, http_steps.run_http_step
    fresh = "&n={repetition}" if _options["fresh_urls"] else ""
    step = HttpStep(
        name="get_item",
        method="GET",
        path="/api/items/{user_index}?run={run_id}" + fresh,
        headers={"X-Request-Id": "{nonce}"},
        expect_status=[200],
        check={"status": "ok"},
    )
    auth = AuthConfig()
    token = "tok-" + "x" * 28

    async def worker(index: int, count: int) -> int:
        failures = 0
        context: dict[str, Any] = {
            "user_index": index,
            "run_id": "bench",
            "nonce": f"nonce-{index:032x}",
            "token": token,
        }
        transport = httpx.AsyncHTTPTransport(verify=_tls_context()) if httpx_transport else None
        # (no transport argument at all by default: the script also measures checkouts from before it existed)
        with_transport: dict[str, Any] = {"transport": transport} if transport is not None else {}
        async with new_http_client(base_url, **with_transport) as client:
            for n in range(count):
                if fresh:
                    context["repetition"] = n
                result, _captured = await run_http_step(
                    client, step, step.name, context, auth=auth, token=token, secrets=(token,), capture_bytes=2048
                )
                failures += not result.ok
        return failures

    return await _spread(worker, concurrency, total)


async def _mode_httpx_per_worker(base_url: str, concurrency: int, total: int) -> int:
    import httpx

    tls = _tls_context()

    async def worker(index: int, count: int) -> int:
        failures = 0
        async with httpx.AsyncClient(base_url=base_url, trust_env=False, verify=tls) as client:
            for _ in range(count):
                response = await client.get(f"/api/items/{index}")
                failures += response.status_code != 200
        return failures

    return await _spread(worker, concurrency, total)


async def _mode_httpx_shared(base_url: str, concurrency: int, total: int) -> int:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, trust_env=False, limits=limits, verify=_tls_context()) as client:

        async def worker(index: int, count: int) -> int:
            failures = 0
            for _ in range(count):
                response = await client.get(f"/api/items/{index}")
                failures += response.status_code != 200
            return failures

        return await _spread(worker, concurrency, total)


async def _mode_aiohttp_shared(base_url: str, concurrency: int, total: int) -> int:
    import aiohttp  # type: ignore[import-not-found]

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base_url=base_url, connector=connector) as session:

        async def worker(index: int, count: int) -> int:
            failures = 0
            for _ in range(count):
                async with session.get(f"/api/items/{index}") as response:
                    await response.read()
                    failures += response.status != 200
            return failures

        return await _spread(worker, concurrency, total)


async def _spread(worker: Worker, concurrency: int, total: int) -> int:
    counts = [total // concurrency + (1 if i < total % concurrency else 0) for i in range(concurrency)]
    return sum(await asyncio.gather(*(worker(i, n) for i, n in enumerate(counts))))


def _modes() -> dict[str, Mode]:
    modes: dict[str, Mode] = {"run_http_step": _mode_run_http_step}
    if all(_git_source(name) is not None for name in _BEFORE_FILES):  # a checkout with its history
        modes["run_http_step_before"] = _mode_run_http_step_before
    modes |= {
        "run_http_step_httpcore": _mode_run_http_step_httpcore,
        "httpx_client_per_worker": _mode_httpx_per_worker,
        "httpx_shared_client": _mode_httpx_shared,
    }
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        pass
    else:
        modes["aiohttp_shared_session"] = _mode_aiohttp_shared
    return modes


def _measure(mode: Mode, base_url: str, concurrency: int, total: int) -> dict[str, Any]:
    cpu0, wall0 = _cpu_s(), time.perf_counter()
    failures = asyncio.run(mode(base_url, concurrency, total))
    cpu, wall = _cpu_s() - cpu0, time.perf_counter() - wall0
    return {"cpu_us_per_request": cpu / total * 1e6, "requests_per_s": total / wall, "failures": failures}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per mode and round")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; figures are medians")
    parser.add_argument("--only", nargs="*", default=None, help="mode names to run (default: all available)")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table to stderr")
    parser.add_argument("--before", default=_options["before"], help="git ref of run_http_step_before's code")
    parser.add_argument("--fresh-urls", action="store_true", help="a new URL for every run_http_step request")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    _options.update(before=args.before, fresh_urls=args.fresh_urls)
    if args.serve:
        _pin((os.cpu_count() or 1) - 1)
        asyncio.run(_serve())
        return 0

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        client_cpu = _pin(0)
        base_url = f"http://127.0.0.1:{port}"
        modes = {k: v for k, v in _modes().items() if args.only is None or k in args.only}
        for mode in modes.values():  # warm-up: each mode's imports and one-off setup (a TLS context, old code) first
            _measure(mode, base_url, args.concurrency, 200)
        load_before = os.getloadavg()
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in modes}
        for rnd in range(args.rounds):
            order = list(modes) if rnd % 2 == 0 else list(reversed(modes))
            for name in order:
                runs[name].append(_measure(modes[name], base_url, args.concurrency, args.requests))
        load_after = os.getloadavg()
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=10)

    results: dict[str, Any] = {
        "requests_per_round": args.requests,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "client_cpu": client_cpu,
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in load_after],
        "issue_us_per_request": ISSUE_US_PER_REQUEST,
        "target_us_per_request": TARGET_US_PER_REQUEST,
        "before_ref": _options["before"] if "run_http_step_before" in runs else None,
        "fresh_urls": args.fresh_urls,
        "modes": {},
    }
    for name, measured in runs.items():
        cpu = [m["cpu_us_per_request"] for m in measured]
        results["modes"][name] = {
            "cpu_us_per_request_median": round(statistics.median(cpu), 1),
            "cpu_us_per_request": [round(x, 1) for x in cpu],
            "requests_per_s_median": round(statistics.median(m["requests_per_s"] for m in measured)),
            "failures": sum(m["failures"] for m in measured),
        }
    step = results["modes"].get("run_http_step")
    reference = results["modes"].get("run_http_step_httpcore")
    if step is not None and reference is not None:  # the same step through httpx's own transport, same run
        results["ratio_to_httpcore_transport"] = round(
            step["cpu_us_per_request_median"] / reference["cpu_us_per_request_median"], 3
        )
    before = runs.get("run_http_step_before")
    if step is not None and before is not None:  # the step's code at --before, same run: medians, then per round
        results["ratio_to_before"] = round(
            step["cpu_us_per_request_median"] / results["modes"]["run_http_step_before"]["cpu_us_per_request_median"], 3
        )
        paired = zip(runs["run_http_step"], before, strict=True)
        per_round = [now["cpu_us_per_request"] / then["cpu_us_per_request"] for now, then in paired]
        results["ratio_to_before_per_round"] = [round(r, 3) for r in per_round]
        results["ratio_to_before_median_of_rounds"] = round(statistics.median(per_round), 3)
    results["target_met"] = None if step is None else step["cpu_us_per_request_median"] <= TARGET_US_PER_REQUEST
    if args.markdown:
        print("| client | CPU µs/request (median) | per round | req/s (median) | failures |", file=sys.stderr)
        print("|---|---|---|---|---|", file=sys.stderr)
        for name, m in results["modes"].items():
            rounds = ", ".join(f"{x:.0f}" for x in m["cpu_us_per_request"])
            print(
                f"| {name} | {m['cpu_us_per_request_median']:.0f} | {rounds} | {m['requests_per_s_median']} "
                f"| {m['failures']} |",
                file=sys.stderr,
            )
    print(json.dumps(envelope(BENCHMARK, results)))
    return 1 if results["target_met"] is False else 0


if __name__ == "__main__":
    sys.exit(main())
