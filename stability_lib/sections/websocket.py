"""The websocket section: probe or run, judge, write evidence."""

from __future__ import annotations

from ..core.models import Claim, SectionResult, Status
from ..execution.section import Section
from ._common import _scenario


def websocket(sec: Section) -> SectionResult:
    from ..probes.engine import run_soak_sync
    from ..stats.inference import compare_failure_rates

    if not sec.enabled:
        return sec.skip("switched off in params")
    scenario, target = _scenario(sec), sec.params.target
    candidate = run_soak_sync(target.base_url, scenario, ws_base_url=target.ws_base_url)
    claims = list(candidate.claims(sec.name))
    records = candidate.records
    data: dict = {
        "candidate": candidate.to_dict(),
        "durations_ms": {
            "ws_connect": [r.connect_s * 1e3 for r in records if r.connect_s is not None],
            "ws_first_event": [r.first_event_s * 1e3 for r in records if r.first_event_s is not None],
        },
    }
    if sec.config.expect_fix:
        baseline_target = sec.params.baseline
        if baseline_target is None:
            claims.append(
                sec.claim(
                    "fix_works",
                    "The 1011/1006 fix works (fewer crash closes than the baseline)",
                    Status.INCONCLUSIVE,
                    "no baseline target in params to compare with",
                )
            )
        else:
            baseline = run_soak_sync(baseline_target.base_url, scenario, ws_base_url=baseline_target.ws_base_url)
            data["baseline"] = baseline.to_dict()
            b, c = baseline.aggregate, candidate.aggregate
            # Over sessions seen to their end: a candidate that hangs must not "fix" its crashes.
            fix = compare_failure_rates(
                b.crashes, b.observed, c.crashes, c.observed, scenario.tolerated_failure_rate, scenario.confidence
            )
            status = fix.status.status
            data["fix"] = fix.serialize()
            claims.append(
                Claim(
                    id=f"{sec.name}.fix_works",
                    section=sec.name,
                    statement="The fix works: fewer sessions close with 1011/1006 than on the baseline",
                    status=status,
                    statistic=fix.describe(),
                    details={"n": [b.observed, c.observed]},
                    figure=fix.figure(),
                )
            )
    return sec.finish(claims, data)
