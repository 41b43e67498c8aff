"""Test-suite categories run at once (``suites.concurrency``): they really overlap, never more than
N at a time; a timeout or an interrupt still stops every process tree; the results are the
sequential run's.

Overlap is shown by the order of events the commands log themselves (each waits, bounded, for
the other to have started), never by durations.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from test_suites import (  # noqa: F401 (project: a fixture)
    NO_PLUGINS,
    PASSING_JUNIT,
    interrupted_once_written,
    kill_if_alive,
    process_gone,
    project,
)

from stability_lib.core.models import Status
from stability_lib.execution.notebooks import TEARDOWN_GRACE_S
from stability_lib.suites.config import CategoryConfig, SuitesConfig
from stability_lib.suites.runner import run_suites

# Long enough for any loaded machine; a category that waits this long for its partner failed the test.
WAIT_BOUND_S = 30


def logging_category(name: str, *, wait_for: tuple[str, ...] = (), timeout_s: float = 60) -> CategoryConfig:
    """A category that logs "start NAME" and "end NAME" to events.log and passes; with ``wait_for``
    it first waits (bounded) until those categories have started, and fails if they never do."""
    waits = "".join(
        f"i=0; while [ ! -e {other}.started ] && [ $i -lt {WAIT_BOUND_S * 20} ]; do sleep 0.05; i=$((i+1)); done; "
        f"[ -e {other}.started ] || exit 1; "
        for other in wait_for
    )
    script = f"echo start {name} >> events.log; touch {name}.started; {waits}echo end {name} >> events.log; "
    script += f"cp report.xml {name}.xml"
    return CategoryConfig(name=name, command=["sh", "-c", script], junit_xml=f"{name}.xml", timeout_s=timeout_s)


def events(folder: Path) -> list[str]:
    return (folder / "events.log").read_text().splitlines()


def most_running_at_once(log: list[str]) -> int:
    running = peak = 0
    for line in log:
        running += 1 if line.startswith("start ") else -1
        peak = max(peak, running)
    return peak


def test_concurrency_is_validated_and_concurrent_categories_must_write_apart() -> None:
    one = {"name": "a", "command": ["tool"], "junit_xml": "out.xml"}
    two = {"name": "b", "command": ["tool"], "junit_xml": "out.xml"}
    assert SuitesConfig.model_validate({"categories": [one]}).concurrency == 1  # default: one after the other
    for bad in (0, 9):
        with pytest.raises(ValidationError):
            SuitesConfig.model_validate({"categories": [one], "concurrency": bad})
    # One after the other, two categories may write the same file (each reads its own, fresh one).
    SuitesConfig.model_validate({"categories": [one, two]})
    with pytest.raises(ValidationError) as refused:
        SuitesConfig.model_validate({"categories": [one, two], "concurrency": 2})
    assert "'a' and 'b' both write 'out.xml'" in str(refused.value)
    # Different folders, different files; reading an existing report writes nothing.
    elsewhere = {**two, "cwd": "other"}
    reader = {"name": "c", "junit_xml": "out.xml"}
    SuitesConfig.model_validate({"categories": [one, elsewhere, reader], "concurrency": 2})


def test_categories_run_at_once_never_more_than_the_concurrency(tmp_path: Path) -> None:
    (tmp_path / "report.xml").write_text(PASSING_JUNIT)
    cfg = SuitesConfig(
        concurrency=2,
        categories=[
            logging_category("a", wait_for=("b",)),  # a and b can only pass if they run at once
            logging_category("b", wait_for=("a",)),
            logging_category("c"),
            logging_category("d"),
        ],
    )
    results = run_suites(cfg, base_dir=tmp_path, out_dir=tmp_path / "out", target_url=None)

    assert [r.name for r in results] == ["a", "b", "c", "d"]  # the categories' order, however they ended
    assert all(r.status is Status.PASS for r in results), [(r.name, r.reason) for r in results]
    log = events(tmp_path)
    assert set(log[:2]) == {"start a", "start b"}
    assert most_running_at_once(log) == 2
    for name in "abcd":  # each category's own files, as when run alone
        assert (tmp_path / "out" / f"{name}.junit.xml").is_file()
        assert (tmp_path / "out" / f"{name}.output.log").is_file()


def test_by_default_categories_run_one_after_the_other(tmp_path: Path) -> None:
    (tmp_path / "report.xml").write_text(PASSING_JUNIT)
    cfg = SuitesConfig(categories=[logging_category(name) for name in "abc"])
    results = run_suites(cfg, base_dir=tmp_path, out_dir=tmp_path / "out", target_url=None)
    assert all(r.status is Status.PASS for r in results)
    assert events(tmp_path) == ["start a", "end a", "start b", "end b", "start c", "end c"]


def test_a_timeout_stops_its_own_tree_while_the_other_category_runs_on(tmp_path: Path) -> None:
    (tmp_path / "report.xml").write_text(PASSING_JUNIT)
    hangs = CategoryConfig(
        name="hangs",
        command=["sh", "-c", "sleep 300 & echo $! > child.pid; touch hangs.started; wait"],
        junit_xml="never.xml",
        timeout_s=1,
    )
    # "outlives" passes only if it sees the other category's child running, then stopped, while it
    # still runs itself (one after the other, the child is gone before it starts).
    alive = "alive() { [ -e /proc/$1 ] && ! grep -q '^[0-9]* ([^)]*) Z' /proc/$1/stat; }; "
    bounded = f"i=0; while {{condition}} && [ $i -lt {WAIT_BOUND_S * 20} ]; do sleep 0.05; i=$((i+1)); done; "
    outlives = CategoryConfig(
        name="outlives",
        command=[
            "sh",
            "-c",
            alive
            + bounded.format(condition="[ ! -s child.pid ]")
            + "alive $(cat child.pid) || exit 1; "
            + bounded.format(condition="alive $(cat child.pid)")
            + "alive $(cat child.pid) && exit 1; cp report.xml out.xml",
        ],
        junit_xml="out.xml",
        timeout_s=WAIT_BOUND_S * 3,
    )
    cfg = SuitesConfig(concurrency=2, categories=[hangs, outlives])
    try:
        timed_out, outlived = run_suites(cfg, base_dir=tmp_path, out_dir=tmp_path / "out", target_url=None)
        assert timed_out.status is Status.ERROR and timed_out.run.timed_out
        assert outlived.status is Status.PASS, (outlived.reason, outlived.run.output_tail)
        assert process_gone(int((tmp_path / "child.pid").read_text()))
    finally:
        if (tmp_path / "child.pid").is_file():
            kill_if_alive(int((tmp_path / "child.pid").read_text()))


def test_an_interrupt_stops_every_running_category_and_starts_no_other(tmp_path: Path) -> None:
    def hanging(name: str) -> CategoryConfig:
        script = (
            f"sleep 300 & echo $! > {name}.child.pid; "
            f"setsid sh -c 'echo $$ > {name}.escaped.pid; exec sleep 300' & wait"
        )
        return CategoryConfig(name=name, command=["sh", "-c", script], junit_xml=f"{name}.xml", timeout_s=600)

    never = CategoryConfig(name="queued", command=["sh", "-c", "touch queued.started"], junit_xml="q.xml")
    cfg = SuitesConfig(concurrency=2, categories=[hanging("a"), hanging("b"), never])
    pid_files = [tmp_path / f"{name}.{kind}.pid" for name in "ab" for kind in ("child", "escaped")]

    # Ctrl-C lands in the main thread once both categories have their children running.
    with interrupted_once_written(pid_files), pytest.raises(KeyboardInterrupt):
        run_suites(cfg, base_dir=tmp_path, out_dir=tmp_path / "out", target_url=None)
    pids = [int(p.read_text()) for p in pid_files]
    try:
        assert all(process_gone(pid) for pid in pids), "a process a category started outlived Ctrl-C"
        assert not (tmp_path / "queued.started").exists(), "a category started after Ctrl-C"
    finally:
        kill_if_alive(*pids)


# A section's kernel running run_suites; SIGINT (the kernel's interrupt) makes it stop every category.
SUITES_KERNEL = """\
import signal, sys
from pathlib import Path
from stability_lib.suites.config import CategoryConfig, SuitesConfig
from stability_lib.suites.runner import run_suites

signal.signal(signal.SIGINT, signal.default_int_handler)
folder, names = Path(sys.argv[1]), sys.argv[2:]
# Every process of a category ignores SIGTERM: its leader, a child in its group, and a child that
# left the group (setsid) but carries the category's marker.
script = (
    "trap '' TERM; echo $$ > {name}.leader.pid; sleep 300 & echo $! > {name}.child.pid; "
    "setsid sh -c 'echo $$ > {name}.escaped.pid; exec sleep 300' & wait"
)
categories = [
    CategoryConfig(name=name, command=["sh", "-c", script.format(name=name)], junit_xml=f"{name}.xml", timeout_s=600)
    for name in names
]
try:
    run_suites(SuitesConfig(concurrency=len(names), categories=categories), base_dir=folder, out_dir=folder / "out",
               target_url=None)
except KeyboardInterrupt:
    sys.exit(3)
"""


def test_trees_that_ignore_sigterm_are_all_stopped_within_the_kernels_teardown_grace(tmp_path: Path) -> None:
    """Five categories at once (as params/demo.yaml runs them), every process ignoring SIGTERM: after
    the interrupt, the kernel that runs them is killed once TEARDOWN_GRACE_S has passed (as the
    runner does); by then no process of any category may be left, escaped ones included."""
    names = ["a", "b", "c", "d", "e"]
    pid_files = [tmp_path / f"{name}.{kind}.pid" for name in names for kind in ("leader", "child", "escaped")]
    with (tmp_path / "kernel.log").open("wb") as log:
        kernel = subprocess.Popen(
            [sys.executable, "-c", SUITES_KERNEL, str(tmp_path), *names],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + WAIT_BOUND_S  # a bound on waiting for the trees to start
        while not all(f.is_file() and f.read_text().strip() for f in pid_files):
            assert kernel.poll() is None and time.monotonic() < deadline, "the categories never all started"
            time.sleep(0.05)
        pids = [int(f.read_text()) for f in pid_files]
        kernel.send_signal(signal.SIGINT)
        try:
            kernel.wait(timeout=TEARDOWN_GRACE_S)
        except subprocess.TimeoutExpired:
            kernel.kill()  # what the runner does to a kernel still busy after the grace
            kernel.wait()
        left = [pid for pid in pids if not process_gone(pid)]  # a SIGKILLed one may take a moment to end
        assert left == [], f"still running after the kernel's teardown grace: {left} of {pids}"
    finally:
        if kernel.poll() is None:
            kernel.kill()
            kernel.wait()
        kill_if_alive(*(int(f.read_text()) for f in pid_files if f.is_file() and f.read_text().strip()))


def test_results_with_concurrency_are_the_sequential_results(project: Path, tmp_path: Path) -> None:  # noqa: F811
    def outcome(concurrency: int, run: str) -> list[tuple[object, ...]]:
        env = {"API_TOKEN": "unused-token", "FLAKY_COUNTER": str(tmp_path / f"counter-{run}"), **NO_PLUGINS}
        cfg = SuitesConfig(
            concurrency=concurrency,
            rerun_failures=1,
            categories=[
                CategoryConfig(name=marker, marker=marker, paths=["tests"], env=env, timeout_s=60)
                for marker in ("alpha", "beta", "flaky", "gamma")
            ],
        )
        results = run_suites(cfg, base_dir=project, out_dir=tmp_path / run, target_url="http://127.0.0.1:9")
        return [
            (r.name, r.status, r.reason, r.counts, r.run.exit_code, r.warnings, r.reruns and r.reruns.recovered)
            for r in results
        ]

    sequential = outcome(1, "sequential")
    assert [row[1] for row in sequential] == [Status.PASS, Status.FAIL, Status.INCONCLUSIVE, Status.INCONCLUSIVE]
    assert outcome(4, "concurrent") == sequential
