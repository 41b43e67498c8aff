"""What an interrupted WebSocket soak may still claim, without a service: only what ENDED before the interrupt.

Before, on Ctrl-C the section judged the candidate's rates over the rounds that ended PLUS the round still
running, and kept them when they already failed. That round is biased towards failure: the sessions the cancel
cut leave no record, while the short failed ones (1011 closes, refused connects: in ``stability demo`` the same
terminal Ctrl-C stopped the sample services) had already ended. A soak of healthy rounds interrupted this way
came out FAIL. Now, in rounds, a rate FAILs only on the rounds that ended (their confidence sequences replayed);
without rounds (the fixed-sample rule holds only for the whole sample) only when the candidate's soak ended.

Also here: ``SoaksSoFar`` keeps a round that ended whatever line of its bookkeeping an interrupt lands on
(before, ``running`` was cleared before the result was appended: a SIGINT between the two lost the round).
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml
from test_golden_interrupt import section_params
from test_soak_interrupt import SOAK_SCENARIO

from stability_lib.execution.section import open_section
from stability_lib.probes.scenario import ScenarioConfig
from stability_lib.probes.sessions import OutcomeKind, SessionOutcome, SessionRecord
from stability_lib.probes.soak import SoakProgress, SoakResult, SoaksSoFar

ws_section = importlib.import_module("stability_lib.sections.websocket")  # the package exports the function
SCENARIO = ScenarioConfig.model_validate({**SOAK_SCENARIO, "soak": {**SOAK_SCENARIO["soak"], "sessions": 500}})
STARTED_AT = "2026-01-01T12:00:00+00:00"
OK = SessionOutcome.ok()
CLOSED_1011 = SessionOutcome(OutcomeKind.CLOSED_1011, close_code=1011)
REFUSED = SessionOutcome.connect_error("refused")


def records(start: int, *outcomes: SessionOutcome) -> list[SessionRecord]:
    """Sessions in this order, one per outcome, starting 0.01 s apart."""
    return [
        SessionRecord(f"run-s{start + i:05d}", (start + i) / 100, outcome, user="u", step="agent_session")
        for i, outcome in enumerate(outcomes)
    ]


def ended_round(*outcomes: SessionOutcome) -> Callable[[SoakProgress], SoakResult]:
    def run(progress: SoakProgress) -> SoakResult:
        progress.run_id, progress.step, progress.started_at = "run", "agent_session", STARTED_AT
        progress.records.extend(records(0, *outcomes))
        return progress.result(SCENARIO)

    return run


def cut_round(*outcomes: SessionOutcome) -> Callable[[SoakProgress], SoakResult]:
    """A round the interrupt cuts: the sessions in ``outcomes`` had ended, then Ctrl-C."""

    def run(progress: SoakProgress) -> SoakResult:
        progress.run_id, progress.step, progress.started_at = "run", "agent_session", STARTED_AT
        progress.records.extend(records(0, *outcomes))
        raise KeyboardInterrupt

    return run


def written_after_interrupt(
    tmp_path: Path, rounds: list[tuple[str, Callable[[SoakProgress], SoakResult]]], *, sequential: bool
) -> dict[str, Any]:
    """The websocket section's evidence once ``rounds`` ran in order, the last one interrupted."""
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(section_params("websocket", "http://127.0.0.1:9", SOAK_SCENARIO)))
    sec = open_section("websocket", tmp_path / "run", params)
    so_far = SoaksSoFar()
    for side, run in rounds[:-1]:
        so_far.soak(side, SCENARIO, run)
    side, last = rounds[-1]
    with pytest.raises(KeyboardInterrupt) as stopped:
        so_far.soak(side, SCENARIO, last)
    ws_section._write_stopped(sec, SCENARIO, so_far, stopped.value, sequential=sequential)
    return json.loads((tmp_path / "run" / "evidence" / "websocket.json").read_text())


def claims_of(written: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in written["claims"]}


RATE_CLAIMS = {"websocket.no_1011_or_1006", "websocket.sessions_complete"}


@pytest.mark.parametrize("sequential", [True, False], ids=["rounds", "fixed"])
def test_refused_connects_in_the_round_the_interrupt_cut_are_no_fail(tmp_path: Path, sequential: bool) -> None:
    # `stability demo` and a terminal Ctrl-C: the services stopped, the running round's last sessions were
    # refused (they end at once), the open ones were cancelled (no record). Before: sessions_complete FAIL.
    rounds = [("candidate", ended_round(*[OK] * 100)), ("candidate", cut_round(*[OK] * 20, *[REFUSED] * 40))]
    if not sequential:
        rounds = rounds[1:]
    written = written_after_interrupt(tmp_path, rounds, sequential=sequential)
    claims = claims_of(written)
    assert not RATE_CLAIMS & set(claims), claims.keys()
    assert written["status"] != "FAIL"
    stopped = claims["websocket.runs_finished"]
    assert stopped["status"] == "INCONCLUSIVE"
    ended = 160 if sequential else 60
    assert stopped["statistic"].startswith(f"stopped by KeyboardInterrupt after {ended} candidate sessions ended")
    assert stopped["details"]["candidate_soak_cut_short"] is True
    assert stopped["details"]["rates_judged_on_sessions"] == (100 if sequential else 0)
    assert written["data"]["candidate"]["aggregate"]["sessions"] == ended  # what ended is still evidence


@pytest.mark.parametrize("sequential", [True, False], ids=["rounds", "fixed"])
def test_1011_closes_only_in_the_round_the_interrupt_cut_are_no_fail(tmp_path: Path, sequential: bool) -> None:
    rounds = [("candidate", ended_round(*[OK] * 100)), ("candidate", cut_round(*[CLOSED_1011] * 30))]
    written = written_after_interrupt(tmp_path, rounds if sequential else rounds[1:], sequential=sequential)
    assert not RATE_CLAIMS & set(claims_of(written))
    assert written["status"] != "FAIL"


def test_in_rounds_a_fail_on_the_rounds_that_ended_is_kept_judged_on_them_alone(tmp_path: Path) -> None:
    # Two rounds ended with 1011 closes (a FAIL by their confidence sequences); the cut round's healthy
    # sessions neither add to it nor take from it.
    rounds = [
        ("candidate", ended_round(*[CLOSED_1011] * 10, *[OK] * 10)),
        ("candidate", ended_round(*[CLOSED_1011] * 10, *[OK] * 10)),
        ("candidate", cut_round(*[OK] * 50)),
    ]
    written = written_after_interrupt(tmp_path, rounds, sequential=True)
    claims = claims_of(written)
    crash = claims["websocket.no_1011_or_1006"]
    assert crash["status"] == "FAIL" and written["status"] == "FAIL"
    assert crash["figure"]["n"] <= 40  # a look at the ended rounds, not at the 90 sessions
    assert crash["details"]["sequential"]
    stopped = claims["websocket.runs_finished"]
    assert "judged only on the 2 rounds that ended before it (40 sessions)" in stopped["statistic"]
    assert written["data"]["candidate"]["aggregate"]["sessions"] == 90


def test_in_rounds_a_candidate_round_that_ended_while_the_baseline_ran_is_judged(tmp_path: Path) -> None:
    rounds = [("candidate", ended_round(*[CLOSED_1011] * 20)), ("baseline", cut_round(*[OK] * 5))]
    written = written_after_interrupt(tmp_path, rounds, sequential=True)
    claims = claims_of(written)
    assert claims["websocket.no_1011_or_1006"]["status"] == "FAIL"
    assert claims["websocket.runs_finished"]["details"]["candidate_soak_cut_short"] is False
    assert set(written["data"]) == {"candidate", "baseline"}


def test_without_rounds_a_fail_is_kept_only_when_the_candidates_soak_ended(tmp_path: Path) -> None:
    # The candidate's whole fixed sample ended (all 1011), the baseline's soak was cut: its FAIL stands.
    rounds = [("candidate", ended_round(*[CLOSED_1011] * 20, *[OK] * 80)), ("baseline", cut_round(*[OK] * 5))]
    written = written_after_interrupt(tmp_path, rounds, sequential=False)
    claims = claims_of(written)
    crash = claims["websocket.no_1011_or_1006"]
    assert crash["status"] == "FAIL" and "sequential" not in crash["details"]
    stopped = claims["websocket.runs_finished"]["statistic"]
    assert "rates judged on the candidate's soak, which had ended (100 sessions)" in stopped


def test_a_rate_that_passes_on_what_ended_is_never_kept(tmp_path: Path) -> None:
    rounds = [("candidate", ended_round(*[OK] * 100)), ("candidate", ended_round(*[OK] * 100))]
    rounds.append(("candidate", cut_round(*[OK] * 10)))
    written = written_after_interrupt(tmp_path, rounds, sequential=True)
    assert set(claims_of(written)) == {"websocket.runs_finished", "websocket.teardown.steps_succeeded"}


# --------------------------------------------------------------------------- SoaksSoFar's bookkeeping


def _lines_after_the_run(method: Callable[..., Any]) -> list[int]:
    """The line numbers of ``method``'s statements after the one that runs the soak (``run(progress)``)."""
    source, first = inspect.getsourcelines(method)
    at = next(i for i, line in enumerate(source) if "= run(progress)" in line)
    return [
        first + i
        for i, line in enumerate(source)
        if i > at and line.strip() and not line.strip().startswith(("#", '"'))
    ]


@pytest.mark.parametrize("line", _lines_after_the_run(SoaksSoFar.soak))
def test_an_interrupt_on_any_line_after_a_round_ended_keeps_that_round_once(line: int) -> None:
    # A SIGINT is handled between two bytecodes: raised here (a trace function) just before `line` runs.
    code = SoaksSoFar.soak.__code__

    def local(frame: FrameType, event: str, _arg: Any) -> Any:
        if event == "line" and frame.f_lineno == line:
            raise KeyboardInterrupt
        return local

    def calls(frame: FrameType, event: str, _arg: Any) -> Any:
        return local if event == "call" and frame.f_code is code else None

    so_far = SoaksSoFar()
    before = sys.gettrace()
    sys.settrace(calls)
    try:
        with pytest.raises(KeyboardInterrupt):
            so_far.soak("candidate", SCENARIO, ended_round(*[CLOSED_1011] * 3, *[OK] * 7))
    finally:
        sys.settrace(before)
    results, offsets = so_far.results("candidate")
    assert [len(r.records) for r in results] == [10] and len(offsets) == 1  # neither lost nor counted twice
    ended, _ = so_far.results("candidate", running=False)
    assert len(ended) == (0 if so_far.cut_short("candidate") else 1)


def test_in_rounds_an_interrupt_in_the_first_round_judges_nothing_and_says_so(tmp_path: Path) -> None:
    written = written_after_interrupt(tmp_path, [("candidate", cut_round(*[CLOSED_1011] * 30))], sequential=True)
    claims = claims_of(written)
    assert set(claims) == {"websocket.runs_finished", "websocket.teardown.steps_succeeded"}
    stopped = claims["websocket.runs_finished"]
    assert stopped["statistic"].startswith("stopped by KeyboardInterrupt after 30 candidate sessions ended: no round")
    assert stopped["details"]["candidate_rounds_ended"] == 0
