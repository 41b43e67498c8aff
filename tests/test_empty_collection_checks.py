"""A ``*`` check on an empty array or object reaches no element: it fails, saying which collection is empty.

``{"deps.*.status": "up"}`` on ``{"deps": []}`` and ``{"deps.*": "up"}`` on ``{"deps": {}}`` passed: "every
element holds" is true of no element, so a service that lost its whole list passed a check written to
catch a single bad entry. Zero elements now fail every check that asks something of an element. A
check that says no element may have something (``exists: false``, ``not_contains``, ``not_empty: false``:
the conditions a missing value meets) still holds on none, as the params examples' leftovers checks
(``data.sessions.*.label: {not_contains: "probe-{run_id}"}``: nothing of ours left) rely on; such a check
still fails on an element that has what it forbids.

The same rule holds wherever checks are judged: HTTP steps and health endpoints (``check_body``), the
conversation machine's ``check`` items, and the conversation soak's per-reply checks.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from stability_lib.core.models import Status
from stability_lib.probes.config import HealthConfig, HealthEndpoint, TargetConfig
from stability_lib.probes.conversation import Conversation, ConversationOutcomeKind, Frame
from stability_lib.probes.conversation_soak_model import MessageLog, MessageStatus, SessionLedger, SoakPlan
from stability_lib.probes.conversation_spec import ConversationSoakConfig
from stability_lib.probes.health import health_claims, run_health
from stability_lib.probes.message_checks import check_body
from stability_lib.probes.scenario import WsStep


def test_the_reported_cases_fail_naming_the_empty_collection() -> None:
    assert check_body({"deps.*.status": "up"}, {"deps": []}, {}) == (
        "check deps.*.status: no element to check (deps is empty)"
    )
    assert check_body({"deps.*": "up"}, {"deps": {}}, {}) == "check deps.*: no element to check (deps is empty)"
    # ... and pass when there is something to check and all of it holds
    assert check_body({"deps.*.status": "up"}, {"deps": [{"status": "up"}, {"status": "up"}]}, {}) == ""
    assert check_body({"deps.*": "up"}, {"deps": {"db": "up"}}, {}) == ""
    # A missing collection is not the empty case: the branch stops, and that failed before as it fails now.
    assert check_body({"deps.*.status": "up"}, {}, {}) == "check deps.*.status: expected up, got absent"
    assert check_body({"deps.*.status": {"exists": True}}, {"deps": [{}]}, {}) == (
        'check deps.*.status: expected {"exists": true}, got absent'
    )


# Every operator that asks something of an element: (condition, an element for which it holds).
ASKING = [
    ("up", "up"),
    ({"one_of": ["up", "ok"]}, "ok"),
    ({"contains": "u"}, "up"),
    ({"regex": "u."}, "up"),
    ({"type": "string"}, "up"),
    ({"gte": 1}, 2),
    ({"lte": 3}, 2),
    ({"count": 1}, ["x"]),
    ({"min_count": 1}, ["x"]),
    ({"max_count": 1}, ["x"]),
    ({"not_empty": True}, "up"),
    ({"exists": True}, "up"),
]


@pytest.mark.parametrize(("cond", "element"), ASKING, ids=[json.dumps(c) for c, _ in ASKING])
@pytest.mark.parametrize("empty", [[], {}], ids=["array", "object"])
def test_every_check_that_asks_something_of_an_element_fails_on_none(cond: Any, element: Any, empty: Any) -> None:
    why = check_body({"deps.*.status": cond}, {"deps": empty}, {})
    assert why == "check deps.*.status: no element to check (deps is empty)"
    assert check_body({"deps.*.status": cond}, {"deps": [{"status": element}]}, {}) == ""


# The conditions a missing value meets: each says no element may have something. (condition, an element
# that has it: the check fails on that element, so it is not a check that cannot fail.)
FORBIDDING = [
    ({"exists": False}, "up"),
    ({"not_contains": "probe-r1"}, "probe-r1 n1"),
    ({"not_empty": False}, "up"),
]


@pytest.mark.parametrize(("cond", "offending"), FORBIDDING, ids=[json.dumps(c) for c, _ in FORBIDDING])
def test_on_none_a_check_that_no_element_may_have_something_holds_and_the_others_fail(
    cond: Any, offending: Any
) -> None:
    # The leftovers pattern: nothing of ours is left when the list is empty ...
    assert check_body({"sessions.*.label": cond}, {"sessions": []}, {}) == ""
    # ... and it fails on an element that has what it forbids: it can fail.
    assert check_body({"sessions.*.label": cond}, {"sessions": [{"label": offending}]}, {}).startswith(
        "check sessions.*.label: expected"
    )
    # Next to it, a check asking something of every session still needs a session to ask.
    both = {"sessions.*.label": cond, "sessions.*.id": {"not_empty": True}}
    assert check_body(both, {"sessions": []}, {}) == "check sessions.*.id: no element to check (sessions is empty)"


def test_nested_and_top_level_wildcards_name_where_they_ran_out() -> None:
    body = {"groups": [{"deps": []}, {"deps": {}}]}
    assert check_body({"groups.*.deps.*.status": "up"}, body, {}) == (
        "check groups.*.deps.*.status: no element to check (every groups.*.deps is empty)"
    )
    assert check_body({"*.status": "up"}, [], {}) == "check *.status: no element to check (the top level is empty)"
    # One group with an element to check is something checked: the check holds there.
    one_checked = {"groups": [{"deps": []}, {"deps": [{"status": "up"}]}]}
    assert check_body({"groups.*.deps.*.status": "up"}, one_checked, {}) == ""


def test_a_health_endpoint_whose_list_is_empty_fails() -> None:
    bodies = {"/health": {"deps": [{"name": "db", "status": "up"}]}, "/empty": {"deps": []}}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=bodies[request.url.path]))
    cfg = HealthConfig(
        samples=1,
        endpoints=[
            HealthEndpoint.model_validate({"path": "/health", "check": {"deps.*.status": "up"}}),
            HealthEndpoint.model_validate({"path": "/empty", "check": {"deps.*.status": "up"}}),
        ],
    )
    data = run_health(TargetConfig(base_url="http://127.0.0.1:9"), cfg, transport=transport)
    claims = {c.id: c for c in health_claims(cfg, data)}
    assert claims["health.http.health"].status is Status.PASS
    empty = claims["health.http.empty"]
    assert empty.status is Status.FAIL and "no element to check (deps is empty)" in empty.statistic


def test_a_conversation_check_on_an_empty_list_is_a_content_mismatch() -> None:
    raw = {
        "kind": "ws",
        "name": "list",
        "path": "/ws",
        "conversation": [
            {"send": {"type": "list"}},
            {"expect": {"match": {"type": "items"}, "check": {"items.*.ok": True}}},
        ],
        "timeout_s": 5,
    }

    def outcome(message: dict[str, Any]) -> Any:
        conv = Conversation(WsStep.model_validate(raw), {}, ids={})
        conv.start(0.0)
        conv.receive(Frame("text", json.dumps(message)), 0.1)
        return conv.outcome

    assert outcome({"type": "items", "items": [{"ok": True}]}).kind is ConversationOutcomeKind.OK
    empty = outcome({"type": "items", "items": []})
    assert empty.kind is ConversationOutcomeKind.CONTENT_MISMATCH and empty.path == "items.*.ok"
    assert empty.got == "no element to check (items is empty)"


def test_a_conversation_soak_reply_with_an_empty_list_is_a_content_mismatch() -> None:
    cfg = ConversationSoakConfig.model_validate(
        {
            "send": {"id": "{msg_id}"},
            "correlate": {"id": "{msg_id}"},
            "check": {"deps.*.status": "up", "gone.*.label": {"not_contains": "probe"}},
            "sessions": 1,
            "messages_per_session": 2,
            "in_flight": 2,
        }
    )
    log = MessageLog()
    ledger = SessionLedger(SoakPlan(cfg), 0, log, origin=0.0)
    first, second = (json.loads(ledger.request(1.0)) for _ in range(2))
    ledger.receive_text(json.dumps({"id": first["id"], "deps": [{"status": "up"}], "gone": []}), 1.5)
    ledger.receive_text(json.dumps({"id": second["id"], "deps": [], "gone": []}), 1.5)
    assert list(log.status) == [MessageStatus.OK, MessageStatus.CONTENT_MISMATCH]
    (failure,) = log.examples
    assert failure.reason == "content_mismatch(deps.*.status)"
    assert failure.got == "no element to check (deps is empty)"
