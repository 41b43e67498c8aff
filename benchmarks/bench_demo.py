"""Time `stability demo` from start to exported PDF and show where the time goes.

Run: ``python benchmarks/bench_demo.py [--runs 3]`` (after `make demo` set-up). Each run is two
fresh processes, one after the other: the installed ``stability demo`` timed from outside (the
total, and the CPU of the whole process tree), then ``stability demo`` through this script's
``--child`` mode, which wraps the phases' functions with timers and changes nothing else (its
hooks' imports come before ``main``, so its own total is a little longer). Prints one JSON line
(see _meta.envelope) with the median total of the plain runs and, over the instrumented runs,
the median of every phase:

- ``cli_start``: interpreter start until the benchmark's child runs (the CLI's own imports are
  not in any phase: they happen before ``main``);
- ``services_launch``: the two sample services launched (their sockets bound, not waited for);
  ``services_wait``: how long the run then waited for them to serve, its kernels starting
  meanwhile; ``services_stop``: waiting for them to exit at the end (they were told to shut
  down when the sections ended);
- ``sections``: the whole sections phase; per notebook: ``before_first_cell`` (from the call
  to its first cell: the kernel start, or the wait for a warm kernel), ``imports`` (the
  ``import stability_lib`` + ``open_section`` cell), ``cells`` (the others),
  ``after_last_cell`` (the kernel's shutdown and writing the notebook);
  ``kernel_start`` and ``shutdown`` are launch-to-ready and shutdown of the kernel itself,
  whether or not the notebook waited for them;
- ``summary``, ``report_notebook`` (the report's kernel included), ``html_export``, ``pdf``;
- ``exit``: after the run's last line until the process is gone.

Also counts stderr lines with "KeyboardInterrupt" (kernels interrupted at shutdown printed
one). Exits 1 if a run wrote no summary (it did not run, so the times mean nothing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import REPO, envelope

BENCHMARK = "stability_demo_end_to_end"  # stable key of the results file
QUICK_ARGS: tuple[str, ...] = ("--runs", "1")  # one run instead of three
TARGET_S = 15.0  # issue 19: on an idle machine

# ---------------------------------------------------------------------------------------------
# Child mode: run `stability demo` in this process with timing hooks around the phases.
# ---------------------------------------------------------------------------------------------

_EVENTS: list[dict[str, Any]] = []
_LOCK = threading.Lock()


def _record(what: str, start: float, end: float, **extra: Any) -> None:
    with _LOCK:
        _EVENTS.append({"what": what, "start": start, "end": end, **extra})


def _wrap_sync(owner: Any, name: str, what: str) -> None:
    original = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.time()
        try:
            return original(*args, **kwargs)
        finally:
            _record(what, t0, time.time())

    setattr(owner, name, timed)


def _wrap_async(owner: Any, name: str, what: str, km_of: Any) -> None:
    original = getattr(owner, name)

    async def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.time()
        try:
            return await original(self, *args, **kwargs)
        finally:
            _record(what, t0, time.time(), km=id(km_of(self)))

    setattr(owner, name, timed)


def _time_notebooks(module: Any) -> None:
    original = module.execute_notebook

    def timed(source: Path, output: Path, *args: Any, **kwargs: Any) -> Any:
        t0 = time.time()
        try:
            return original(source, output, *args, **kwargs)
        finally:
            _record("notebook", t0, time.time(), notebook=Path(output).stem)

    module.execute_notebook = timed


def _install_hooks() -> dict[int, str]:
    """Hooks on the public seams the run goes through; returns km id -> notebook name."""
    import nbclient.client
    from jupyter_client.asynchronous.client import AsyncKernelClient
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync

    from stability_lib import _pipeline
    from stability_lib.demo import launch
    from stability_lib.execution import notebooks

    notebook_of_km: dict[int, str] = {}
    _wrap_async(AsyncKernelManager, "start_kernel", "kernel_launch", lambda km: km)
    _wrap_async(AsyncKernelManager, "shutdown_kernel", "kernel_shutdown", lambda km: km)
    _wrap_async(AsyncKernelClient, "wait_for_ready", "kernel_ready", lambda kc: kc.parent)
    original_client = nbclient.client.NotebookClient.async_start_new_kernel_client

    async def named_client(self: Any) -> Any:
        notebook_of_km[id(self.km)] = Path(self.nb.metadata["papermill"]["input_path"]).stem
        return await original_client(self)

    nbclient.client.NotebookClient.async_start_new_kernel_client = named_client
    # papermill calls the sync wrapper, which nbclient built around the original at import.
    nbclient.client.NotebookClient.start_new_kernel_client = run_sync(named_client)
    for name, what in (
        ("execute_sections", "sections"),
        ("summarize_run", "summary"),
        ("export_html", "html_export"),
        ("html_to_pdf", "pdf"),
    ):
        _wrap_sync(_pipeline, name, what)
    for module in (notebooks, _pipeline):  # sections call it from one, the report from the other
        _time_notebooks(module)
    original_services = launch.demo_services

    @contextmanager
    def timed_services(*args: Any, **kwargs: Any) -> Any:
        t0 = time.time()
        with original_services(*args, **kwargs) as services:
            _record("services_launch", t0, time.time())

            def timed_wait() -> None:
                t1 = time.time()
                try:
                    services.wait_ready()
                finally:
                    _record("services_wait", t1, time.time())

            try:
                yield launch.DemoServices(services.env, timed_wait, services.terminate)
            finally:
                t2 = time.time()
        _record("services_stop", t2, time.time())

    launch.demo_services = timed_services
    return notebook_of_km


def _child(events_file: Path, argv: list[str]) -> int:
    _record("cli_start", float(os.environ["BENCH_DEMO_T0"]), time.time())
    notebook_of_km = _install_hooks()
    from stability_lib.cli import main

    try:
        code = main(argv)
    finally:
        for event in _EVENTS:
            if "km" in event:
                event["notebook"] = notebook_of_km.get(event.pop("km"), "?")
        events_file.write_text(json.dumps({"events": _EVENTS, "end": time.time()}))
    return code


# ---------------------------------------------------------------------------------------------
# Parent mode: run the child N times, read its events and the executed notebooks, take medians.
# ---------------------------------------------------------------------------------------------


def _seconds(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _cell_split(notebook: Path) -> dict[str, float]:
    """papermill's per-cell timing: the import cell apart from the rest."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    split = {"imports": 0.0, "cells": 0.0}
    seen_import = False
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("papermill", {})
        if cell["cell_type"] != "code" or meta.get("duration") is None:
            continue
        split.setdefault("first_cell_start", _seconds(meta["start_time"]))
        split["last_cell_end"] = _seconds(meta["end_time"])
        source = "".join(cell["source"])
        if not seen_import and "import stability_lib" in source:
            seen_import = True
            split["imports"] += meta["duration"]
        else:
            split["cells"] += meta["duration"]
    return split


def _one_run(run_no: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out, events_file = Path(tmp) / "run", Path(tmp) / "events.json"
        env = {**os.environ, "BENCH_DEMO_T0": repr(time.time())}
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(events_file), "demo", "--out", str(out)],
            cwd=REPO,
            capture_output=True,
            text=True,
            env=env,
        )
        total = time.monotonic() - t0
        ended = time.time()
        summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
        record = json.loads(events_file.read_text()) if events_file.exists() else {"events": [], "end": ended}
        notebooks = {p.stem: _cell_split(p) for p in (out / "notebooks").glob("*.ipynb")} if out.exists() else {}
        terminal_noise = [line for line in proc.stderr.splitlines() if "KeyboardInterrupt" in line]
    phases: dict[str, float] = {"total": total}
    per_notebook: dict[str, dict[str, float]] = {name: dict(split) for name, split in notebooks.items()}
    launches: dict[str, float] = {}
    for event in record["events"]:
        seconds = event["end"] - event["start"]
        if event["what"] == "notebook":
            slot = per_notebook.setdefault(event["notebook"], {})
            slot["notebook"] = seconds
            if "first_cell_start" in slot:  # on the notebook's own critical path
                slot["before_first_cell"] = slot.pop("first_cell_start") - event["start"]
                slot["after_last_cell"] = event["end"] - slot.pop("last_cell_end")
            if event["notebook"] == "report":
                phases["report_notebook"] = seconds
        elif event["what"].startswith("kernel_"):
            slot = per_notebook.setdefault(event.get("notebook", "?"), {})
            if event["what"] == "kernel_launch":
                launches[event.get("notebook", "?")] = event["start"]
            elif event["what"] == "kernel_ready":
                start = launches.get(event.get("notebook", "?"), event["start"])
                slot["kernel_start"] = event["end"] - start
            else:
                slot["shutdown"] = slot.get("shutdown", 0.0) + seconds
        else:
            phases[event["what"]] = phases.get(event["what"], 0.0) + seconds
    phases["exit"] = ended - record["end"]
    print(f"run {run_no}: {total:.1f} s, verdict {summary.get('verdict')}, exit {proc.returncode}", file=sys.stderr)
    return {
        "exit_code": proc.returncode,
        "verdict": summary.get("verdict"),
        "phases": phases,
        "notebooks": per_notebook,
        "keyboardinterrupt_lines": len(terminal_noise),
    }


def _plain_run(run_no: int) -> dict[str, Any]:
    """The command as a user runs it (the installed ``stability`` script), timed from outside: the
    figure the target is about. The instrumented runs import their hooks' modules before ``main``,
    which delays the services' start: their totals are a little longer."""
    stability = Path(sys.executable).with_name("stability")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        before = os.times()
        t0 = time.monotonic()
        proc = subprocess.run([str(stability), "demo", "--out", str(out)], cwd=REPO, capture_output=True, text=True)
        total = time.monotonic() - t0
        after = os.times()
        summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    print(f"plain run {run_no}: {total:.1f} s, {cpu:.1f} CPU-s, verdict {summary.get('verdict')}", file=sys.stderr)
    return {"total": total, "cpu_s": cpu, "verdict": summary.get("verdict"), "exit_code": proc.returncode}


def _median_of(runs: list[dict[str, Any]], *path: str) -> float | None:
    values = []
    for run in runs:
        node: Any = run
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, (int, float)):
            values.append(float(node))
    return round(statistics.median(values), 2) if values else None


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        return _child(Path(sys.argv[2]), sys.argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs, plain = [], []
    for i in range(args.runs):  # interleaved: a change of load hits both kinds alike
        plain.append(_plain_run(i + 1))
        runs.append(_one_run(i + 1))
    phase_names = sorted({name for run in runs for name in run["phases"]})
    notebook_names = sorted({name for run in runs for name in run["notebooks"]})
    phases = {name: _median_of(runs, "phases", name) for name in phase_names}
    notebooks = {
        name: {
            part: _median_of(runs, "notebooks", name, part)
            for part in (
                "notebook",
                "before_first_cell",
                "imports",
                "cells",
                "after_last_cell",
                "kernel_start",
                "shutdown",
            )
        }
        for name in notebook_names
    }
    total = round(statistics.median(run["total"] for run in plain), 2)
    ok = all(run["verdict"] for run in runs + plain)
    result = {
        "summary": (
            f"median of {len(plain)}: {total:.1f} s, {statistics.median(run['cpu_s'] for run in plain):.1f} CPU-s "
            f"(instrumented runs: {phases['total']:.1f} s; sections {phases.get('sections')} s, report notebook "
            f"{phases.get('report_notebook')} s, HTML {phases.get('html_export')} s, PDF {phases.get('pdf')} s)"
        ),
        "runs": len(plain),
        "totals_s": [round(run["total"], 2) for run in plain],
        "cpu_s": [round(run["cpu_s"], 2) for run in plain],
        "instrumented_totals_s": [round(run["phases"]["total"], 2) for run in runs],
        "verdicts": [run["verdict"] for run in plain + runs],
        "exit_codes": [run["exit_code"] for run in plain + runs],
        "total_s": total,
        "target_s": TARGET_S,
        "target_met": total <= TARGET_S if ok and len(runs) >= 3 else None,
        "phases_s": phases,
        "notebooks_s": notebooks,
        "keyboardinterrupt_lines_on_stderr": [run["keyboardinterrupt_lines"] for run in runs],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(envelope(BENCHMARK, result)))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
