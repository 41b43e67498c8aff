"""Verdict rules (pure).

Overall: FAIL if any required claim fails; PASS only if every required claim
passes and there is at least one; otherwise INCONCLUSIVE. ERROR counts as "not
passed": it makes the run INCONCLUSIVE unless something required failed.
Informative (non-required) claims never change the verdict.
"""

from __future__ import annotations

from collections.abc import Iterable

from .models import Claim, Status

__all__ = ["overall_status", "section_status", "EXIT_CODES", "exit_code_for"]

EXIT_CODES: dict[Status, int] = {
    Status.PASS: 0,
    Status.FAIL: 1,
    Status.INCONCLUSIVE: 2,
    Status.ERROR: 2,
}
EXIT_COULD_NOT_RUN = 3


def overall_status(claims: Iterable[Claim]) -> Status:
    required = [c.status for c in claims if c.required]
    if any(s is Status.FAIL for s in required):
        return Status.FAIL
    if required and all(s is Status.PASS for s in required):
        return Status.PASS
    # No required claim at all is "no evidence": never PASS.
    return Status.INCONCLUSIVE


def section_status(claims: Iterable[Claim]) -> Status:
    """A section's status from its claims; ERROR only comes from a crash or an ERROR claim."""
    claims = list(claims)
    statuses = [c.status for c in claims if c.required] or [c.status for c in claims]
    if any(s is Status.FAIL for s in statuses):
        return Status.FAIL
    if any(s is Status.ERROR for s in statuses):
        return Status.ERROR
    if statuses and all(s is Status.PASS for s in statuses):
        return Status.PASS
    return Status.INCONCLUSIVE


def exit_code_for(status: Status) -> int:
    return EXIT_CODES[status]
