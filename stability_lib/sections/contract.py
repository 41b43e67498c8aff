"""The contract section: probe or run, judge, write evidence."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.models import SectionResult
from ..execution.section import Section

if TYPE_CHECKING:
    from ..execution.params import TargetConfig
    from ..probes.scenario import ScenarioConfig
from ._common import _with_users


def _observed_events(target: TargetConfig, scenario: ScenarioConfig) -> tuple[list[dict[str, Any]], str]:
    """A short golden path (1 user, 2 repetitions) whose WebSocket events feed the message-contract diff, and
    why there are none when its runs failed."""
    from ..probes.golden import run_golden_path_sync
    from ..probes.message_checks import parse_json

    small = _with_users(scenario, 1, 2)
    result = run_golden_path_sync(target.base_url, small, ws_base_url=target.ws_base_url)
    # Only runs that succeeded: a side that answers every message with an error event must not
    # define its message contract by those errors.
    good = {(r.user, r.repetition) for r in result.runs if r.ok}
    events = []
    for s in result.sightings:
        if not s.where.startswith("ws event") or (s.viewer, s.repetition) not in good:
            continue
        event, why = parse_json(s.text)
        if why:
            continue  # capped, not JSON or nested too deeply: not evidence of a schema
        if isinstance(event, dict):
            events.append(event)
    failed = [r for r in result.runs if not r.ok]
    note = ""
    if not events and failed:  # said, else "0 events observed" reads as a target that sends none
        first = failed[0]
        note = f"{len(failed)} of {len(result.runs)} golden runs failed (first: {first.failed_step}: {first.failure})"[
            :300
        ]
    return events, note


def contract(sec: Section) -> SectionResult:
    from ..contract.section import run_contract

    if not sec.enabled:
        return sec.skip("switched off in params")
    cfg, params = sec.config, sec.params
    baseline_events = candidate_events = None
    notes = []
    # Events come from live targets only: a spec-file-only run has none to probe.
    if cfg.compare_ws_events and params.has_live_target and params.scenario is not None and params.baseline is not None:
        baseline_events, baseline_note = _observed_events(params.baseline, params.scenario.on_side("baseline"))
        candidate_events, candidate_note = _observed_events(params.target, params.scenario)
        notes = [
            f"{side}: {note}" for side, note in (("baseline", baseline_note), ("candidate", candidate_note)) if note
        ]
    result = run_contract(
        cfg,
        baseline_url=params.baseline.base_url if params.baseline else None,
        candidate_url=params.target.base_url,
        base_dir=sec.base_dir,
        baseline_events=baseline_events,
        candidate_events=candidate_events,
        baseline_auth=_auth(params.baseline),
        candidate_auth=_auth(params.target),
        ws_note="; ".join(notes),
    )
    return sec.finish(result.claims(), result.to_dict())


def _auth(target: TargetConfig | None) -> tuple[dict[str, str], dict[str, str]]:
    """The target's auth headers and query parameters, for its spec fetch."""
    auth = getattr(target, "auth", None)
    return (dict(auth.headers), dict(auth.query)) if auth is not None else ({}, {})
