"""The Locust file of the golden path: our User class, and the master's bookkeeping. Locust loads it.

Run only by Locust (``python -m locust -f <this file> --master|--worker ...``): importing it imports
locust, which monkey-patches the process with gevent. Never import it from the library, a notebook
kernel or a test process (``scale.golden_launcher`` starts the processes). On another machine a
worker is ``python -m locust -f <this file> --worker --master-host HOST --master-port PORT``, with the
plan's ``${NAME}`` variables set in its environment.

How the golden path runs (all coordination goes through Locust's own master/worker messages):

- The master reads the plan (``STABILITY_LOCUST_PLAN``: a JSON file without secrets) and answers each
  worker's ``stability_plan_request`` with it. There are as many Locust users as test users (``-u``).
- Each Locust user (a greenlet on some worker) leases one test user at a time from the master
  (``stability_golden_lease``) and runs it as our own engine does (``probes.golden._run_user``):
  setup (register, login, setup steps), the repetitions of the golden steps (each with its own nonce
  and context, its finally steps after it), then the user's teardown and leftovers checks. The records
  go through the same pure code (``probes.golden_records.UserOutcome``), and back to the master as one
  ``stability_golden_outcome`` message per test user, which the master appends to ``outcomes.jsonl``.
- When every leased user is reported (or lost with a worker that went missing), the master writes
  ``summary.json`` and quits. Users a missing worker held are lost, not judged; users a live worker
  still held at the hard deadline are counted as cut, not judged.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]
from gevent.event import AsyncResult, Event  # type: ignore[import-untyped]
from gevent.lock import BoundedSemaphore  # type: ignore[import-untyped]
from locust import User, constant, events, task
from locust.clients import HttpSession
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from stability_lib.probes.env_refs import resolve_env
from stability_lib.probes.golden_records import UserOutcome
from stability_lib.probes.golden_users import LeftoverCheck, http_setup_steps
from stability_lib.probes.http_steps import PreparedUser, UserSetup, new_nonce
from stability_lib.probes.scenario import ScenarioConfig
from stability_lib.probes.soak import SETUP_CONCURRENCY
from stability_lib.probes.teardown import StepRun
from stability_lib.scale import gevent_steps as steps
from stability_lib.scale.locust_common import PLAN_ENV, PLAN_WAIT_S, MasterWatch, resources, watch_parent

__all__ = ["StabilityGoldenUser"]


# ------------------------------------------------------------------------------------------ master


class _Master(MasterWatch):
    """The master's ledger: which test user is leased to which worker, which came back, which were lost."""

    def __init__(self, environment: Any, plan: dict[str, Any]) -> None:
        self.env = environment
        self.plan = plan
        out = Path(plan["out_dir"])
        self.outcomes_file = (out / "outcomes.jsonl").open("a", encoding="utf-8")
        self.leases_file = (out / "leases.jsonl").open("a", encoding="utf-8")  # which worker holds which user
        self.summary_path = out / "summary.json"
        self.started = time.monotonic()
        self.next_user = 0
        self.slots: dict[str, int] = {}
        self.open: dict[str, set[int]] = {}  # per worker: test users leased and not yet reported
        self.reported = 0
        self.idle: set[str] = set()
        self.lost_nodes: set[str] = set()
        self.finished = False
        self.summary: dict[str, Any] = {}
        self.resources: dict[str, dict[str, float]] = {}

    def on_plan_request(self, environment: Any, msg: Any, **_: Any) -> None:
        node = msg.node_id
        slot = self.slots.setdefault(node, len(self.slots))
        self.open.setdefault(node, set())
        environment.runner.send_message("stability_golden_plan", {**self.plan, "slot": slot}, client_id=node)

    def on_lease(self, environment: Any, msg: Any, **_: Any) -> None:
        node = msg.node_id
        index: int | None = None
        if self.next_user < int(self.plan["users"]) and not self.finished:
            index = self.next_user
            self.next_user += 1
            self.open.setdefault(node, set()).add(index)
            self.leases_file.write(json.dumps({"user": index, "worker": self.slots.get(node, -1)}) + "\n")
            self.leases_file.flush()
        reply = {"ticket": msg.data.get("ticket"), "index": index}
        environment.runner.send_message("stability_golden_lease", reply, client_id=node)

    def on_outcome(self, environment: Any, msg: Any, **_: Any) -> None:
        node, data = msg.node_id, msg.data
        if self.finished:  # after the summary (a last message racing the quit): not judged
            return
        outcome = data.get("outcome")
        if outcome is not None:
            self.outcomes_file.write(json.dumps({"worker": self.slots.get(node, -1), **outcome}) + "\n")
            self.outcomes_file.flush()
            self.reported += 1
            self.open.setdefault(node, set()).discard(int(outcome["setup"]["index"]))
        if data.get("idle"):
            self.idle.add(node)
            self.resources[str(self.slots.get(node, -1))] = data.get("resources") or {}

    def over(self) -> bool:
        if not self.slots:
            return False
        live = [n for n in self.slots if n not in self.lost_nodes]
        return all(n in self.idle and not self.open.get(n) for n in live)

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        lost = {self.slots[n]: sorted(self.open.get(n, ())) for n in self.lost_nodes if n in self.slots}
        cut = sorted(i for n, pending in self.open.items() if n not in self.lost_nodes for i in pending)
        self.outcomes_file.close()
        self.leases_file.close()
        self.summary = {
            "workers_seen": len(self.slots),
            "workers_lost": sorted(lost),
            "users_lost": sorted(i for users in lost.values() for i in users),
            "users_cut": cut,  # still running on a live worker at the hard deadline
            "users_leased": self.next_user,
            "reported": self.reported,
            "elapsed_s": self.elapsed_s(),
            "locust_stats": self.locust_stats(),
            "resources": {"master": resources(), "workers": self.resources},
        }
        self.write_summary()

    def locust_stats(self) -> dict[str, int]:
        """Locust's own counts of the golden steps (HTTP and WS) and their failures."""
        total = self.env.stats.total
        return {"requests": int(total.num_requests), "failures": int(total.num_failures)}


_master: _Master | None = None


# ------------------------------------------------------------------------------------------ worker


class _Worker:
    """One worker's state, shared by its Locust users (greenlets: no locks needed)."""

    def __init__(self, environment: Any) -> None:
        self.env = environment
        self.plan: dict[str, Any] | None = None
        self.plan_ready = Event()
        self.asked = False
        self.scenario: ScenarioConfig | None = None
        self.base_url = ""
        self.ws_base_url: str | None = None
        self.run_start_ns = time.monotonic_ns()
        self.tickets: dict[int, AsyncResult] = {}
        self.next_ticket = 0
        self.active = 0
        self.done = False
        self.setup_slots = BoundedSemaphore(SETUP_CONCURRENCY)

    def on_plan(self, environment: Any, msg: Any, **_: Any) -> None:
        self.plan = msg.data
        self.plan_ready.set()

    def on_lease(self, environment: Any, msg: Any, **_: Any) -> None:
        waiting = self.tickets.pop(int(msg.data.get("ticket", -1)), None)
        if waiting is not None:
            waiting.set(msg.data.get("index"))

    def ensure_plan(self) -> None:
        """The first Locust user of this worker asks the master for the plan; the others wait for it."""
        if not self.asked:
            self.asked = True
            self.env.runner.send_message("stability_plan_request", {})
        if not self.plan_ready.wait(PLAN_WAIT_S) or self.plan is None:
            raise RuntimeError("no plan from the master")
        if self.scenario is None:
            plan = self.plan
            self.base_url = str(resolve_env(plan["base_url"], os.environ, "target.base_url"))
            ws_base = plan.get("ws_base_url")
            self.ws_base_url = None if ws_base is None else str(resolve_env(ws_base, os.environ, "target.ws_base_url"))
            self.scenario = ScenarioConfig.model_validate(resolve_env(plan["scenario"], os.environ, "scenario"))

    def lease(self) -> int | None:
        """The next test user to run (None: every user is taken, or the master does not answer)."""
        ticket = self.next_ticket
        self.next_ticket += 1
        answer = AsyncResult()
        self.tickets[ticket] = answer
        self.env.runner.send_message("stability_golden_lease", {"ticket": ticket})
        try:
            index = answer.get(timeout=PLAN_WAIT_S)
        except gevent.Timeout:
            self.tickets.pop(ticket, None)
            return None
        return None if index is None else int(index)

    def http_client(self) -> HttpSession:
        client = HttpSession(self.base_url, self.env.events.request, None)
        client.trust_env = False  # a probe measures the service directly, never through a proxy
        return client

    def send(self, outcome: dict[str, Any] | None, idle: bool = False) -> None:
        data = {"outcome": outcome, "idle": idle, "resources": resources() if idle else None}
        self.env.runner.send_message("stability_golden_outcome", data)


_worker: _Worker | None = None


def _engine_failure(worker: _Worker, index: int, exc: Exception) -> dict[str, Any]:
    """A test user this worker could not run (a bug of ours): its runs fail at "setup", never a silent gap."""
    scenario, plan = worker.scenario, worker.plan
    name = f"user {index}"
    if scenario is not None and plan is not None:
        name = scenario.users.usernames(str(plan["run_id"]))[index]
    out = UserOutcome(UserSetup(index, name, False, f"locust engine: {type(exc).__name__}: {exc}"[:300]))
    out.setup_failed(scenario.golden_path.repetitions if scenario is not None else 1)
    return out.to_dict()


def run_user(worker: _Worker, index: int, environment: Any) -> UserOutcome:
    """One test user's golden runs on gevent: ``probes.golden._run_user``'s twin (same records, same order)."""
    scenario, plan = worker.scenario, worker.plan
    assert scenario is not None and plan is not None
    run_id = str(plan["run_id"])
    golden = scenario.golden_path
    client = worker.http_client()  # one per test user: its cookies
    with worker.setup_slots:  # registration and login of many users at once would be a load test of its own
        username = scenario.users.usernames(run_id)[index]
        user = steps.prepare_user(client, scenario, index, username, run_id, http_setup_steps(scenario))
    out = UserOutcome(user.setup)
    out.setup_taken(user.setup.steps)
    if not user.setup.ok:
        out.setup_failed(golden.repetitions)
        return out

    def step_run(step: Any, context: dict[str, Any], capture_bytes: int) -> StepRun:
        run = steps.run_step(
            client,
            step,
            context,
            base_url=worker.base_url,
            ws_base_url=worker.ws_base_url,
            scenario=scenario,
            user=user,
            run_id=run_id,
            run_start_ns=worker.run_start_ns,
            capture_bytes=capture_bytes,
        )
        if run.ws is not None:  # HTTP steps are counted by Locust's HttpSession; a WS step here
            environment.events.request.fire(
                request_type="WS",
                name=step.name,
                response_time=run.duration_s * 1000,
                response_length=0,
                exception=None if run.ok else RuntimeError(run.why),
                context={},
            )
        return run

    for rep in range(golden.repetitions):
        nonce = new_nonce()
        context: dict[str, Any] = user.context(
            run_id, nonce=nonce, repetition=rep, session_id=f"{run_id}-u{index}-r{rep}"
        )
        repetition = out.repetition(rep, nonce)
        try:
            for step in golden.steps:
                run = step_run(step, context, scenario.max_capture_bytes)
                context.update(run.captured)
                if not repetition.took(step.name, run.ok, run.why, run.duration_s, run.http, run.ws):
                    break
        finally:  # after every repetition, pass, fail or a killed greenlet: undo what it created
            out.teardown.extend(
                steps.run_finally_http(
                    client, scenario, user, golden.finally_steps, context, unit="golden_run", index=rep
                )
            )
        repetition.close()
    _finish_user(out, user, scenario, run_id, client, step_run)
    return out


def _finish_user(
    out: UserOutcome, user: PreparedUser, scenario: ScenarioConfig, run_id: str, client: Any, step_run: Any
) -> None:
    """Per user, once, at the very end: teardown, then the leftovers checks (``golden_users.finish_user``)."""
    index = user.setup.index
    context = user.context(run_id, nonce=new_nonce(), session_id=f"{run_id}-u{index}-end")
    out.teardown.extend(
        steps.run_finally_http(client, scenario, user, scenario.teardown, context, unit="user", index=index)
    )
    for check in scenario.leftovers:
        run = step_run(check, context, 0)
        out.leftovers.append(LeftoverCheck(user.setup.username, check.name, run.ok, run.why))


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    global _master, _worker
    gevent.spawn(watch_parent)
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        plan = json.loads(Path(os.environ[PLAN_ENV]).read_text(encoding="utf-8"))
        _master = _Master(environment, plan)
        runner.register_message("stability_plan_request", _master.on_plan_request)
        runner.register_message("stability_golden_lease", _master.on_lease)
        runner.register_message("stability_golden_outcome", _master.on_outcome)
        gevent.spawn(_master.watch)
    elif isinstance(runner, WorkerRunner):
        _worker = _Worker(environment)
        runner.register_message("stability_golden_plan", _worker.on_plan)
        runner.register_message("stability_golden_lease", _worker.on_lease)


@events.quitting.add_listener
def _on_quitting(environment: Any, **_: Any) -> None:
    if _master is not None:
        _master.on_quitting()


class StabilityGoldenUser(User):
    """One Locust user of the golden path: takes test users from the master, one at a time, and runs each."""

    wait_time = constant(0)

    @task
    def golden(self) -> None:
        worker = _worker
        if worker is None:  # a local (non-distributed) run is not supported: the master keeps the ledger
            raise StopUser()
        worker.active += 1
        try:
            worker.ensure_plan()
            while (index := worker.lease()) is not None:
                try:
                    outcome = run_user(worker, index, self.environment).to_dict()
                except Exception as exc:  # noqa: BLE001 - a bug of ours: a failed user, never a silent gap
                    outcome = _engine_failure(worker, index, exc)
                worker.send(outcome)
            worker.done = True
        except Exception:  # noqa: BLE001 - no plan from the master: this worker runs nothing
            worker.done = True
        finally:
            worker.active -= 1
            if worker.active == 0 and worker.done:
                worker.send(None, idle=True)
        raise StopUser()  # never run again: Locust would otherwise call the task in a loop
