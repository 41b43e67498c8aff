"""Evidence warnings: an honesty check over all evidence (pure).

The seed of this product was a report saying "Completed in 0.00s" and "100%
success" about runs that executed nothing. These rules look for such tells in
the evidence itself, and each warning names the evidence it comes from.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..core.models import EvidenceRef, SectionResult, Status

__all__ = ["EvidenceWarning", "evidence_warnings", "WARNING_KINDS", "PLAUSIBLE_FLOORS_MS"]

# Field notes: a 100-byte loopback round trip costs about 60 µs with a blocking socket,
# 85 µs through asyncio; HTTP and WebSocket stacks add more. Below these, a figure is a bug.
PLAUSIBLE_FLOORS_MS: dict[str, float] = {
    "http_round_trip": 0.05,
    "ws_round_trip": 0.05,
    "ws_connect": 0.05,
    "step": 0.01,
}
CLOCK_RESOLUTION_MS = time.get_clock_info("monotonic").resolution * 1e3

WARNING_KINDS: dict[str, str] = {
    "implausible_duration": "a duration under the clock's resolution or under a plausible floor for its kind",
    "empty_test_category": "a test category that executed zero tests, only skipped ones, or was deselected",
    "small_sample": "a statistical claim made from fewer samples than params.warnings.min_samples",
    "foreign_baseline": "a baseline from another environment or scenario",
    "local_target_in_shared_environment": "a loopback or private target while params call the environment staging or production",
    "exit_code_disagrees": "a test command whose exit code disagrees with its parsed results",
    "low_coverage": "coverage under the floor set in params",
    "coverage_unchecked": "a coverage floor set in params that no test category's coverage could be checked against",
    "coverage_missing": "a test category whose configured coverage report was not written or not readable",
    "baseline_junit_missing": "a test category whose configured baseline JUnit file is missing or unreadable",
    "junit_counts_disagree": "a JUnit file declares more tests, failures or errors than it lists",
}


@dataclass(frozen=True)
class EvidenceWarning:
    kind: str
    message: str
    evidence: EvidenceRef

    def serialize(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "evidence": self.evidence.serialize()}


def _ref(section: str, *records: str) -> EvidenceRef:
    return EvidenceRef(section, f"evidence/{section}.json", tuple(records))


def _durations(result: SectionResult) -> Iterator[tuple[str, str, float]]:
    """(kind, record id, milliseconds) for every measured duration a section reports."""
    data = result.data
    for s in data.get("samples", []) if result.section == "health" else []:
        if s.get("latency_ms") is not None:
            endpoint = f"endpoints[{s['endpoint_index']}] " if s.get("endpoint_index") is not None else ""
            yield "http_round_trip", f"samples[{endpoint}{s.get('path')}#{s.get('index')}]", float(s["latency_ms"])
    ws = data.get("websocket") if result.section == "health" else None
    if ws and ws.get("round_trip_ms") is not None:
        yield "ws_round_trip", "websocket", float(ws["round_trip_ms"])
    # Probe sections put raw per-operation samples under data["durations_ms"]: {operation: [ms, ...]}.
    for operation, values in (data.get("durations_ms") or {}).items():
        kind = "ws_connect" if "connect" in operation else "step"
        for i, v in enumerate(values or []):
            if v is not None:
                yield kind, f"durations_ms.{operation}[{i}]", float(v)


def _duration_warnings(result: SectionResult) -> list[EvidenceWarning]:
    out = []
    worst: dict[str, tuple[str, float, int]] = {}
    for kind, record, ms in _durations(result):
        floor = max(PLAUSIBLE_FLOORS_MS.get(kind, 0.0), CLOCK_RESOLUTION_MS)
        if not math.isfinite(ms) or ms < floor:
            first, _, count = worst.get(kind, (record, ms, 0))
            worst[kind] = (first, ms, count + 1)
    for kind, (record, ms, count) in worst.items():
        out.append(
            EvidenceWarning(
                "implausible_duration",
                f"{count} {kind.replace('_', ' ')} duration(s) under the plausible floor of "
                f"{PLAUSIBLE_FLOORS_MS.get(kind, 0.0):g} ms (e.g. {ms:g} ms at {record})",
                _ref(result.section, record),
            )
        )
    ran = not result.data.get("skipped") and result.status is not Status.ERROR
    if ran and result.duration_s is not None and result.duration_s <= 0:
        out.append(
            EvidenceWarning(
                "implausible_duration", f"section '{result.section}' reports a duration of 0 s", _ref(result.section)
            )
        )
    return out


def _suite_warnings(result: SectionResult, coverage_floor: float | None) -> list[EvidenceWarning]:
    out = []
    for cat in result.data.get("categories", []):
        name = cat.get("name", "?")
        counts = cat.get("counts", {})
        executed = sum(counts.get(k, 0) for k in ("passed", "failed", "errors", "flaky"))
        if cat.get("status") != "ERROR" and executed == 0:
            what = "only skipped tests" if counts.get("skipped") else "zero tests (none selected, or all deselected)"
            out.append(
                EvidenceWarning(
                    "empty_test_category", f"test category '{name}' executed {what}", _ref(result.section, name)
                )
            )
        for w in cat.get("warnings", []):
            kind = _category_warning_kind(str(w))
            if kind is not None:
                out.append(EvidenceWarning(kind, f"category '{name}': {w}", _ref(result.section, name)))
        for entry in cat.get("declared_unlisted", []):
            out.append(
                EvidenceWarning("junit_counts_disagree", f"category '{name}': {entry}", _ref(result.section, name))
            )
        cov = cat.get("coverage") or {}
        rate = cov.get("line_rate")
        if coverage_floor is not None and rate is not None and rate < coverage_floor:
            out.append(
                EvidenceWarning(
                    "low_coverage",
                    f"category '{name}': line coverage {rate:.1%} is under the floor of {coverage_floor:.1%}",
                    _ref(result.section, name),
                )
            )
    measured = [c for c in result.data.get("categories", []) if (c.get("coverage") or {}).get("line_rate") is not None]
    if coverage_floor is not None and not measured:  # else the floor was set and never checked, without a word
        out.append(
            EvidenceWarning(
                "coverage_unchecked",
                f"warnings.coverage_floor is {coverage_floor:.1%}, but no test category reported line coverage",
                _ref(result.section),
            )
        )
    return out


def _category_warning_kind(text: str) -> str | None:
    """The evidence warning a category's own warning is, when it says the evidence is not what was asked
    for: an exit code that disagrees with the JUnit file, a coverage report or baseline JUnit file that was
    configured and is missing or unreadable. Others (a truncated log) stay on the section's page."""
    if "exit" in text.lower():
        return "exit_code_disagrees"
    if "baseline JUnit" in text:
        return "baseline_junit_missing"
    if "coverage file" in text or "coverage XML" in text:
        return "coverage_missing"
    return None


def _sample_warnings(result: SectionResult, min_samples: int) -> list[EvidenceWarning]:
    out = []
    for claim in result.claims:
        details = claim.details if isinstance(claim.details, dict) else {}
        n = details.get("n")
        if n is None and isinstance(details.get("estimate"), dict):  # rate claims carry a RateEstimate
            n = details["estimate"].get("n")
        if n is None:
            continue
        n_values = [int(x) for x in (n if isinstance(n, (list, tuple)) else [n]) if x is not None]
        if claim.status is not Status.INCONCLUSIVE and n_values and min(n_values) < min_samples:
            out.append(
                EvidenceWarning(
                    "small_sample",
                    f"{claim.id} is {claim.status.value} on {min(n_values)} samples (fewer than {min_samples})",
                    _ref(result.section, claim.id),
                )
            )
    return out


def _baseline_warnings(result: SectionResult) -> list[EvidenceWarning]:
    diffs = result.data.get("baseline_differences") or []
    if not diffs:
        return []
    return [
        EvidenceWarning(
            "foreign_baseline",
            "the baseline comes from another environment or scenario: " + "; ".join(map(str, diffs[:5])),
            _ref(result.section, "baseline_differences"),
        )
    ]


def _is_local(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host in {"localhost", ""} or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local


def _target_warnings(params: Any, targets: dict[str, str]) -> list[EvidenceWarning]:
    if params.environment not in ("staging", "production"):
        return []
    out = []
    for label, url in targets.items():
        if url and _is_local(url):  # an empty address: the run had no live target to judge
            out.append(
                EvidenceWarning(
                    "local_target_in_shared_environment",
                    f"params call the environment '{params.environment}' but the {label} is {url}",
                    EvidenceRef("run", "run.json", (label,)),
                )
            )
    return out


def evidence_warnings(
    params: Any, evidence: dict[str, SectionResult], targets: dict[str, str] | None = None
) -> list[EvidenceWarning]:
    """``targets``: the addresses the run really probed (run.json), when known; a re-render on
    another machine must not judge unresolved references instead."""
    if targets is None:
        targets = {"candidate": params.target.base_url}
        if params.baseline:
            targets["baseline"] = params.baseline.base_url
    out = _target_warnings(params, targets)
    for result in evidence.values():
        out += _duration_warnings(result)
        out += _sample_warnings(result, params.warnings.min_samples)
        out += _baseline_warnings(result)
        if result.section == "suites":
            out += _suite_warnings(result, params.warnings.coverage_floor)
    return out
