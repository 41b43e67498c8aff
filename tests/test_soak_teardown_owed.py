"""A soak's teardown claim is never PASS while a user set up has no complete undo record.

Found against jupyter_server with the Locust engine: the workers send their users' undo records in their last
message, which the master may not wait for; with two users set up and one undo record in, the claim said PASS
("1 teardown steps ran and succeeded"), and with none "no teardown step ran (nothing was created to undo)",
though both users had created a kernel. The claim now counts, per soak, each user whose setup held with fewer
undo records than the soak's undo steps (soak.finally per user, then teardown), whichever engine ran it.
"""

from __future__ import annotations

from stability_lib.core.models import Status
from stability_lib.probes.http_steps import UserSetup
from stability_lib.probes.sessions import aggregate_sessions
from stability_lib.probes.soak import SoakResult
from stability_lib.probes.teardown import TeardownRecord


def _result(records: tuple[TeardownRecord, ...], undo_steps: int = 1) -> SoakResult:
    users = (UserSetup(0, "probe-a", True), UserSetup(1, "probe-b", True), UserSetup(2, "probe-c", False, "401"))
    return SoakResult(
        run_id="r1",
        step="execute",
        started_at="2026-12-02T00:00:00+00:00",
        duration_s=1.0,
        sessions_planned=0,
        concurrency=1,
        stopped_by_duration=False,
        cancelled_at_deadline=0,
        users=users,
        records=(),
        aggregate=aggregate_sessions([]),
        tolerated_rate=0.01,
        confidence=0.95,
        teardown=records,
        teardown_configured=True,
        user_undo_steps=undo_steps,
    )


def _undo(user: str, index: int) -> TeardownRecord:
    return TeardownRecord("user", user, index, "delete_session", True)


def test_a_user_without_its_undo_record_keeps_the_claim_from_pass() -> None:
    [claim] = _result((_undo("probe-a", 0),)).teardown_claims()
    assert claim.status is Status.INCONCLUSIVE, claim  # before: PASS, "1 teardown steps ran and succeeded"
    assert [(u["unit"], u["user"]) for u in claim.details["unfinished"]] == [("user", "probe-b")]


def test_no_undo_record_at_all_is_not_called_nothing_to_undo() -> None:
    [claim] = _result(()).teardown_claims()
    assert claim.status is Status.INCONCLUSIVE
    assert "nothing was created" not in claim.statistic and "may still be on the target" in claim.statistic


def test_every_user_set_up_with_its_record_passes_and_a_failed_setup_owes_nothing() -> None:
    [claim] = _result((_undo("probe-a", 0), _undo("probe-b", 1))).teardown_claims()
    assert claim.status is Status.PASS, claim
