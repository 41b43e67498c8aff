from __future__ import annotations

import pytest

from stability_lib import Claim, Status, overall_status, section_status

P, F, I, E = Status.PASS, Status.FAIL, Status.INCONCLUSIVE, Status.ERROR


def claims(*statuses: Status, required: bool = True) -> list[Claim]:
    return [Claim(f"s.c{i}", "s", "statement", s, required=required) for i, s in enumerate(statuses)]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ((P, P), P),
        ((P, F), F),
        ((F, E), F),
        ((P, I), I),
        ((P, E), I),  # ERROR counts as not passed
        ((), I),  # no evidence is never PASS
        ((I,), I),
    ],
)
def test_overall_verdict_rules(statuses: tuple[Status, ...], expected: Status) -> None:
    assert overall_status(claims(*statuses)) is expected


def test_informative_claims_never_decide() -> None:
    assert overall_status(claims(P) + claims(F, required=False)) is P
    assert overall_status(claims(F, required=False)) is I


@pytest.mark.parametrize(("statuses", "expected"), [((P, P), P), ((P, F), F), ((P, E), E), ((P, I), I), ((), I)])
def test_section_status(statuses: tuple[Status, ...], expected: Status) -> None:
    assert section_status(claims(*statuses)) is expected
