"""One kernel's life, measured alone: start to ready, ``import stability_lib``, and shutdown
(jupyter_client's graceful default against the immediate kill the runner uses).

Run: ``python benchmarks/bench_kernels.py [--repeats 5]``. Prints one JSON line (see
_meta.envelope) with the median of each step over fresh kernels of the runner's kernelspec,
graceful and immediate shutdowns interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import envelope

BENCHMARK = "kernel_lifecycle"
QUICK_ARGS: tuple[str, ...] = ("--repeats", "1")


async def _one(cwd: Path, graceful: bool) -> dict[str, float]:
    from jupyter_client.manager import AsyncKernelManager

    from stability_lib.execution.notebooks import ensure_kernelspec

    km = AsyncKernelManager(kernel_name=ensure_kernelspec())
    t0 = time.monotonic()
    await km.start_kernel(cwd=str(cwd), extra_arguments=["--HistoryManager.hist_file=:memory:"])
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=60)
    t1 = time.monotonic()
    reply = await kc.execute_interactive("import stability_lib", timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    t2 = time.monotonic()
    kc.stop_channels()
    await km.shutdown_kernel(now=not graceful)
    t3 = time.monotonic()
    return {"start_to_ready_s": t1 - t0, "import_s": t2 - t1, "shutdown_s": t3 - t2}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"graceful": [], "immediate": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for mode in runs:  # interleaved: the machine's load hits both alike
                runs[mode].append(asyncio.run(_one(Path(tmp), graceful=mode == "graceful")))

    def median(mode: str, key: str) -> float:
        return round(statistics.median(r[key] for r in runs[mode]), 3)

    both = runs["graceful"] + runs["immediate"]
    result = {
        "summary": (
            f"start to ready {statistics.median(r['start_to_ready_s'] for r in both):.2f} s, "
            f"import stability_lib {statistics.median(r['import_s'] for r in both):.2f} s, shutdown graceful "
            f"{median('graceful', 'shutdown_s'):.2f} s vs immediate {median('immediate', 'shutdown_s'):.2f} s"
        ),
        "repeats": args.repeats,
        "start_to_ready_s": round(statistics.median(r["start_to_ready_s"] for r in both), 3),
        "import_stability_lib_s": round(statistics.median(r["import_s"] for r in both), 3),
        "shutdown_graceful_s": median("graceful", "shutdown_s"),
        "shutdown_immediate_s": median("immediate", "shutdown_s"),
        "raw": runs,
    }
    print(json.dumps(envelope(BENCHMARK, result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
