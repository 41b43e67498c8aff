"""The Locust file of the scale engine: our User class, and the master's bookkeeping. Locust loads it.

Run only by Locust (``python -m locust -f <this file> --master|--worker ...``): importing it imports
locust, which monkey-patches the process with gevent. Never import it from the library, a notebook
kernel or a test process (``scale.launcher`` starts the processes; nothing else touches this file).

How a soak runs (all coordination goes through Locust's own master/worker messages):

- The master reads the plan (``STABILITY_LOCUST_PLAN``: a JSON file without secrets; the scenario
  keeps its ``${NAME}`` references) and answers each worker's ``stability_plan_request`` with the
  plan, the worker's slot (which test users it sets up) and the seconds left for launching sessions.
- A worker resolves ``${NAME}`` from its own environment, sets its users up (register, login,
  prerequisite steps) through Locust's ``HttpSession``, and leases blocks of session numbers from
  the master (``stability_lease``); each Locust user runs one session at a time: the concurrency is
  the number of Locust users (``-u``). No session starts after the soak's duration.
- Records go back in batches (``stability_records``): every session's ``SessionRecord``, user
  setups, teardown records, and which leased sessions were not started (the duration ran out).
  When its last Locust user ends, a worker undoes its users (soak.finally per user, then teardown; all
  at once, each bounded by ``teardown_timeout_s``) and sends its last batch, marked idle.
  The master appends them to ``records.jsonl`` and, when every leased session is accounted for
  (reported, returned, or lost with a worker that went missing), writes ``summary.json`` and quits.
  Cut at the hard deadline (Locust's ``--run-time``), a live worker's open sessions are recorded as
  ``timeout(deadline)``, as our own engine does; a missing worker's are counted as lost, not judged.
- Both sides quit when the process that started them is gone (no orphan after a SIGKILL).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]
from gevent.event import Event  # type: ignore[import-untyped]
from gevent.pool import Group  # type: ignore[import-untyped]
from locust import User, constant, events, task
from locust.clients import HttpSession
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from stability_lib.probes.env_refs import resolve_env
from stability_lib.probes.http_steps import PreparedUser, new_nonce
from stability_lib.probes.scenario import HttpStep, ScenarioConfig
from stability_lib.probes.sessions import SessionOutcome, SessionRecord
from stability_lib.probes.teardown import TeardownRecord
from stability_lib.scale import gevent_steps as steps
from stability_lib.scale.locust_common import PLAN_ENV, PLAN_WAIT_S, MasterWatch, resources, watch_parent

__all__ = ["StabilitySoakUser", "PLAN_ENV", "resolve_env"]

_FLUSH_S = 0.5  # a worker sends its records at least this often
_FLUSH_RECORDS = 100
_UNDO_JOIN_SLACK_S = 2.0  # past teardown_timeout_s (each user's own bound): a user's undo still running is given up


def _take(pending: list[Any]) -> list[Any]:
    """What ``pending`` holds, emptied in place. A worker's outbox lists are never replaced: a caller that took
    one before a call that waits (``worker.teardown_out.extend(<run_finally_http(...)>)`` looks the list up
    first) still adds to the list the next flush sends. Replacing them lost every undo record that ended
    after a flush of the flusher greenlet, which ticks every ``_FLUSH_S`` while a slow undo step runs."""
    taken = list(pending)
    pending.clear()
    return taken


# ------------------------------------------------------------------------------------------ master


class _Master(MasterWatch):
    """The master's ledger: leases, records, workers, and when the soak is over."""

    def __init__(self, environment: Any, plan: dict[str, Any]) -> None:
        self.env = environment
        self.plan = plan
        out = Path(plan["out_dir"])
        self.records_file = (out / "records.jsonl").open("a", encoding="utf-8")
        self.summary_path = out / "summary.json"
        self.started = time.monotonic()
        self.next_index = 0
        self.slots: dict[str, int] = {}
        self.leased: dict[str, int] = {}
        self.accounted: dict[str, int] = {}  # reported + returned
        self.open: dict[str, set[int]] = {}  # per worker: session numbers leased and not yet accounted for
        self.reported = 0
        self.returned = 0
        self.idle: set[str] = set()
        self.users: list[dict[str, Any]] = []
        self.teardown: list[dict[str, Any]] = []
        self.finished = False
        self.summary: dict[str, Any] = {}
        self.lost_nodes: set[str] = set()
        self.resources: dict[str, dict[str, float]] = {}  # worker slot -> peak memory and CPU time
        self.cpu_before = 0.0

    def seconds_left(self) -> float:
        return max(0.0, float(self.plan["duration_s"]) - (time.monotonic() - self.started))

    def on_plan_request(self, environment: Any, msg: Any, **_: Any) -> None:
        node = msg.node_id
        if not self.slots:
            self.cpu_before = resources()["cpu_s"]
        slot = self.slots.setdefault(node, len(self.slots))
        self.leased.setdefault(node, 0)
        self.accounted.setdefault(node, 0)
        self.open.setdefault(node, set())
        reply = {**self.plan, "slot": slot, "elapsed_s": time.monotonic() - self.started}
        environment.runner.send_message("stability_plan", reply, client_id=node)

    def on_lease(self, environment: Any, msg: Any, **_: Any) -> None:
        node = msg.node_id
        want = int(msg.data.get("want", 1))
        start = self.next_index
        count = 0 if self.seconds_left() <= 0 else max(0, min(want, int(self.plan["sessions"]) - start))
        self.next_index += count
        self.leased[node] = self.leased.get(node, 0) + count
        self.open.setdefault(node, set()).update(range(start, start + count))
        environment.runner.send_message(
            "stability_lease", {"start": start, "count": count, "seconds_left": self.seconds_left()}, client_id=node
        )

    def on_records(self, environment: Any, msg: Any, **_: Any) -> None:
        node, data = msg.node_id, msg.data
        if self.finished:  # after the summary (a worker's last flush racing the quit): not judged
            return
        for rec in data.get("records", ()):
            self.records_file.write(json.dumps({"worker": self.slots.get(node, -1), **rec}) + "\n")
        self.records_file.flush()
        got = len(data.get("records", ()))
        returned = [int(i) for i in data.get("returned", ())]
        self.reported += got
        self.returned += len(returned)
        self.accounted[node] = self.accounted.get(node, 0) + got + len(returned)
        pending = self.open.setdefault(node, set())
        pending.difference_update(returned)
        pending.difference_update(int(r["session_id"].rsplit("-s", 1)[-1]) for r in data.get("records", ()))
        self.users.extend(data.get("users", ()))
        self.teardown.extend(data.get("teardown", ()))
        if data.get("idle"):
            self.idle.add(node)
        if data.get("resources"):
            self.resources[str(self.slots.get(node, -1))] = data["resources"]

    def over(self) -> bool:
        if not self.slots:
            return False
        missing = self.lost_nodes
        for node in self.slots:
            if node in missing:
                continue
            if node not in self.idle or self.accounted.get(node, 0) < self.leased.get(node, 0):
                return False
        return True

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        missing = self.lost_nodes
        lost = {self.slots[n]: len(self.open.get(n, ())) for n in missing if n in self.slots}
        # Sessions a live worker still had open when the soak was cut at its hard deadline: as our own
        # engine records them, timeout(deadline) (the lost worker's sessions are not judged).
        cut = sorted(i for n, pending in self.open.items() if n not in missing for i in pending)
        offset = time.monotonic() - self.started
        for index in cut:
            record = SessionRecord(
                f"{self.plan['run_id']}-s{index:05d}",
                offset,
                SessionOutcome.timeout("deadline"),
                step=self.plan["step"],
            )
            self.records_file.write(json.dumps(record.to_dict()) + "\n")
        summary = {
            "workers_seen": len(self.slots),
            "workers_lost": sorted(lost),
            "sessions_lost": sum(v for v in lost.values() if v > 0),
            "leased": self.next_index,
            "reported": self.reported,
            "returned": self.returned,
            "cancelled_at_deadline": len(cut),
            "stopped_by_duration": self.next_index < int(self.plan["sessions"]) or self.returned > 0,
            "elapsed_s": time.monotonic() - self.started,
            "users": self.users,
            "teardown": self.teardown,
            "locust_stats": self.locust_stats(),
            "resources": {"master": {**resources(), "cpu_s_before_soak": self.cpu_before}, "workers": self.resources},
        }
        self.records_file.close()
        self.summary = summary
        self.write_summary()

    def locust_stats(self) -> dict[str, int]:
        """Locust's own count of the WS sessions and its failures (workers send their stats every few seconds)."""
        stats = self.env.stats.get(self.plan["step"], "WS")
        return {"ws_sessions": int(stats.num_requests), "ws_failures": int(stats.num_failures)}


_master: _Master | None = None


# ------------------------------------------------------------------------------------------ worker


class _Worker:
    """One worker's state, shared by its Locust users (greenlets: no locks needed)."""

    def __init__(self, environment: Any) -> None:
        self.env = environment
        self.plan: dict[str, Any] | None = None
        self.plan_ready = Event()
        self.lease_ready = Event()
        self.lease: dict[str, Any] | None = None
        self.leasing = False
        self.queue: list[int] = []
        self.exhausted = False
        self.deadline = float("inf")
        self.run_start_ns = 0
        self.scenario: ScenarioConfig | None = None
        self.users: list[PreparedUser] = []
        self.setup_done = Event()
        self.setting_up = False
        self.undo_started = False  # the users' undo runs once per worker, whatever Locust users start later
        self.active = 0
        self.outbox: list[dict[str, Any]] = []
        self.users_out: list[dict[str, Any]] = []
        self.teardown_out: list[dict[str, Any]] = []
        self.returned: list[int] = []
        self.turn = 0
        self.base_url = ""
        self.cpu_before = 0.0
        self.ws_base_url: str | None = None

    def exhausted_or_failed(self) -> bool:
        return self.exhausted or not self.users

    def on_plan(self, environment: Any, msg: Any, **_: Any) -> None:
        self.plan = msg.data
        self.run_start_ns = time.monotonic_ns() - int(float(msg.data["elapsed_s"]) * 1e9)
        self.plan_ready.set()

    def on_lease(self, environment: Any, msg: Any, **_: Any) -> None:
        self.lease = msg.data
        self.lease_ready.set()

    def ensure_setup(self) -> None:
        """The first user of this worker asks for the plan and sets the worker's test users up."""
        if self.setup_done.is_set():
            return
        if self.setting_up:
            self.setup_done.wait()
            return
        self.setting_up = True
        self.cpu_before = resources()["cpu_s"]  # imports and start-up: the soak's own CPU is the rest
        try:
            self.env.runner.send_message("stability_plan_request", {})
            if not self.plan_ready.wait(PLAN_WAIT_S) or self.plan is None:
                raise RuntimeError("no plan from the master")
            plan = self.plan
            scenario = ScenarioConfig.model_validate(resolve_env(plan["scenario"], os.environ, "scenario"))
            self.base_url = str(resolve_env(plan["base_url"], os.environ, "target.base_url"))
            ws_base = plan.get("ws_base_url")
            self.ws_base_url = None if ws_base is None else str(resolve_env(ws_base, os.environ, "target.ws_base_url"))
            self.scenario = scenario
            prerequisites = scenario.soak_user_setup()  # scenario.setup, then soak.setup per user
            names = scenario.users.usernames(plan["run_id"])
            mine = [(i, n) for i, n in enumerate(names) if i % int(plan["workers"]) == int(plan["slot"])]
            client = self.http_client()
            prepared = [steps.prepare_user(client, scenario, i, n, plan["run_id"], prerequisites) for i, n in mine]
            self.users = [u for u in prepared if u.setup.ok]
            self.users_out.extend(u.setup.to_dict() for u in prepared)
        finally:
            self.setup_done.set()

    def http_client(self) -> HttpSession:
        assert self.plan is not None
        client = HttpSession(self.base_url, self.env.events.request, None)
        client.trust_env = False  # a probe measures the service directly, never through a proxy
        return client

    def next_session(self) -> int | None:
        """The next session number of this worker, leasing a block from the master when the queue is empty."""
        while not self.queue:
            if self.exhausted:
                return None
            if self.leasing:
                self.lease_ready.wait()
                continue
            self.leasing = True
            self.lease_ready.clear()
            self.lease = None
            try:
                assert self.plan is not None
                want = max(1, int(self.plan["lease"]))
                self.env.runner.send_message("stability_lease", {"want": want})
                if not self.lease_ready.wait(PLAN_WAIT_S) or self.lease is None:
                    self.exhausted = True
                    return None
                lease = self.lease
                self.deadline = time.monotonic() + float(lease["seconds_left"])
                if int(lease["count"]) == 0:
                    self.exhausted = True
                self.queue.extend(range(int(lease["start"]), int(lease["start"]) + int(lease["count"])))
            finally:
                self.leasing = False
                self.lease_ready.set()
        if time.monotonic() >= self.deadline:  # the duration ran out: give the rest back unstarted
            self.returned.extend(self.queue)
            self.queue.clear()
            self.exhausted = True
            return None
        return self.queue.pop(0)

    def flush(self, idle: bool = False) -> None:
        if not (self.outbox or self.users_out or self.teardown_out or self.returned or idle):
            return
        data = {
            "resources": {**resources(), "cpu_s_before_soak": self.cpu_before} if idle else None,
            "records": _take(self.outbox),
            "users": _take(self.users_out),
            "teardown": _take(self.teardown_out),
            "returned": _take(self.returned),
            "idle": idle,
        }
        self.env.runner.send_message("stability_records", data)

    def flusher(self) -> None:
        while True:
            gevent.sleep(_FLUSH_S)
            self.flush()

    def add_teardown(self, records: list[TeardownRecord]) -> None:
        """Undo records of a unit that ended, into the outbox (the next flush sends them)."""
        self.teardown_out.extend(t.to_dict() for t in records)

    def per_user_teardown(self) -> None:
        """Once per worker: each user's undo (soak.finally per user, then teardown), all users at once as on our
        own engine, each bounded by ``teardown_timeout_s`` (the launcher's hard deadline budgets it once), its
        records into the outbox as soon as it ends: a worker stopped at the deadline still sends those."""
        if self.undo_started or self.scenario is None or self.plan is None:  # done, or the setup never got far
            return
        self.undo_started = True
        scenario, run_id = self.scenario, str(self.plan["run_id"])
        undo = [s for s in scenario.soak_user_undo() if isinstance(s, HttpStep)]  # the launcher refuses ws
        if not undo:
            return

        def one(user: PreparedUser) -> None:
            context = user.context(run_id, nonce=new_nonce())
            client = self.http_client()
            self.add_teardown(
                steps.run_finally_http(client, scenario, user, undo, context, unit="user", index=user.setup.index)
            )

        group = Group()
        try:
            for user in self.users:
                group.spawn(one, user)
            group.join(timeout=scenario.teardown_timeout_s + _UNDO_JOIN_SLACK_S)
        finally:  # past every bound, or this greenlet killed (Locust quit): what has not ended stays owed
            group.kill(block=False)


_worker: _Worker | None = None


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    global _master, _worker
    gevent.spawn(watch_parent)
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        plan = json.loads(Path(os.environ[PLAN_ENV]).read_text(encoding="utf-8"))
        _master = _Master(environment, plan)
        runner.register_message("stability_plan_request", _master.on_plan_request)
        runner.register_message("stability_lease", _master.on_lease)
        runner.register_message("stability_records", _master.on_records)
        gevent.spawn(_master.watch)
    elif isinstance(runner, WorkerRunner):
        _worker = _Worker(environment)
        runner.register_message("stability_plan", _worker.on_plan)
        runner.register_message("stability_lease", _worker.on_lease)
        gevent.spawn(_worker.flusher)


@events.quitting.add_listener
def _on_quitting(environment: Any, **_: Any) -> None:
    if _master is not None:
        _master.on_quitting()


class StabilitySoakUser(User):
    """One concurrency slot of the params soak: runs one session at a time until the worker's leases run out."""

    wait_time = constant(0)

    @task
    def soak(self) -> None:
        worker = _worker
        if worker is None:  # a local (non-distributed) run is not supported: the master keeps the ledger
            raise StopUser()
        worker.active += 1
        try:
            try:
                worker.ensure_setup()
            except Exception as exc:  # noqa: BLE001 - no plan, a variable not set here: this worker runs nothing
                worker.users = []
                worker.users_out.append(
                    {"index": -1, "username": "", "ok": False, "error": f"worker: {exc}"[:300], "steps": []}
                )
            while worker.users:
                index = worker.next_session()
                if index is None:
                    break
                try:
                    self._one_session(worker, index)
                except Exception as exc:  # noqa: BLE001 - a bug of ours: a failed session, never a silent gap
                    worker.outbox.append(self._engine_failure(worker, index, exc).to_dict())
        finally:
            worker.active -= 1
            if worker.active == 0 and worker.exhausted_or_failed():
                try:
                    worker.per_user_teardown()
                finally:
                    worker.flush(idle=True)
        raise StopUser()  # never run again: Locust would otherwise call the task in a loop

    @staticmethod
    def _engine_failure(worker: _Worker, index: int, exc: Exception) -> SessionRecord:
        assert worker.plan is not None
        return SessionRecord(
            f"{worker.plan['run_id']}-s{index:05d}",
            (time.monotonic_ns() - worker.run_start_ns) / 1e9,
            SessionOutcome.connect_error(f"locust engine: {type(exc).__name__}"),
            step=str(worker.plan["step"]),
        )

    def _one_session(self, worker: _Worker, index: int) -> None:
        scenario, plan = worker.scenario, worker.plan
        assert scenario is not None and plan is not None
        step = scenario.soak_step()
        assert step is not None
        soak = scenario.soak
        user = worker.users[worker.turn % len(worker.users)]
        worker.turn += 1
        run_id = plan["run_id"]
        session_id = f"{run_id}-s{index:05d}"
        context = user.context(run_id, nonce=new_nonce(), session_id=session_id)
        captured: dict[str, Any] = {}
        client = (
            worker.http_client() if soak.setup_scope == "per_session" and (soak.setup or soak.finally_steps) else None
        )
        started_ns = time.monotonic_ns()
        record: SessionRecord | None = None
        try:
            if client is not None:
                for setup_step in soak.setup or ():
                    assert isinstance(setup_step, HttpStep)
                    res, got = steps.run_http_step(
                        client,
                        setup_step,
                        setup_step.name,
                        {**context, **captured},
                        scenario=scenario,
                        token=user.token,
                        secrets=user.secrets,
                        capture_bytes=0,
                    )
                    if not res.ok:
                        refused = res.status is None and res.error == "ConnectionError"
                        why = "refused" if refused else f"setup {setup_step.name}: {res.error}"[:120]
                        offset = (started_ns - worker.run_start_ns) / 1e9
                        record = SessionRecord(
                            session_id,
                            offset,
                            SessionOutcome.connect_error(why),
                            user=user.setup.username,
                            step=step.name,
                        )
                        break
                    captured.update(got)
            if record is None:
                record = steps.run_ws_session(
                    base_url=worker.base_url,
                    ws_base_url=worker.ws_base_url,
                    step=step,
                    context={**context, **captured},
                    scenario=scenario,
                    user=user,
                    session_id=session_id,
                    run_id=run_id,
                    run_start_ns=worker.run_start_ns,
                    captured_into=captured,
                )
        finally:
            if client is not None and soak.finally_steps:
                worker.add_teardown(
                    steps.run_finally_http(
                        client,
                        scenario,
                        user,
                        soak.finally_steps,
                        {**context, **captured},
                        unit="soak_session",
                        index=index,
                    )
                )
        outcome = record.outcome
        self.environment.events.request.fire(
            request_type="WS",
            name=step.name,
            response_time=(time.monotonic_ns() - started_ns) / 1e6,
            response_length=0,
            exception=None if outcome.is_ok else RuntimeError(outcome.label),
            context={},
        )
        worker.outbox.append(record.to_dict())
        if len(worker.outbox) >= _FLUSH_RECORDS:
            worker.flush()
