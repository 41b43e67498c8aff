"""summary.json: the verdict and every claim, machine-readable (pure apart from reading inputs).

``build_summary`` is pure over (run metadata, params, evidence); ``summarize_run``
reads those from a run directory.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from ..core.models import Claim, EvidenceRef, SectionResult, Status
from ..core.verdict import exit_code_for, overall_status
from ..execution.evidence import read_all_evidence
from ..execution.params import SECTION_ORDER, LenientEnv, Params, load_params
from .evidence_warnings import EvidenceWarning, evidence_warnings

__all__ = ["build_summary", "summarize_run", "section_claims", "SUMMARY_SCHEMA_VERSION"]

SUMMARY_SCHEMA_VERSION = 1


def section_claims(params: Params, result: SectionResult) -> list[Claim]:
    """A section's claims, plus a synthetic one when it crashed or established nothing:
    a crashed section must never leave the run looking like a PASS."""
    name = result.section

    def synthetic(check: str, statement: str, status: Status, statistic: str) -> list[Claim]:
        claim_id = f"{name}.{check}"
        return [
            *result.claims,
            Claim(
                claim_id,
                name,
                statement,
                status,
                statistic,
                params.is_required(claim_id),
                (EvidenceRef(name, f"evidence/{name}.json"),),
            ),
        ]

    if result.status is Status.ERROR and not any(c.status is Status.ERROR for c in result.claims):
        error = (result.error or "unknown error").splitlines()[0][:300]
        return synthetic("ran", f"Section '{name}' ran to completion", Status.ERROR, error)
    if result.data.get("skipped"):
        if not params.sections[name].enabled:
            return list(result.claims)
        # Enabled in params, yet the section skipped itself: it checked nothing.
        reason = f"enabled in params but skipped: {result.data.get('reason', '')}"
        return synthetic("evidence", f"Section '{name}' produced at least one check", Status.INCONCLUSIVE, reason)
    if not result.claims:
        return synthetic(
            "evidence",
            f"Section '{name}' produced at least one check",
            Status.INCONCLUSIVE,
            "the section recorded no check",
        )
    return list(result.claims)


def build_summary(meta: dict[str, Any], params: Params, evidence: dict[str, SectionResult]) -> dict[str, Any]:
    claims: list[Claim] = []
    sections = []
    not_checked = []
    for name in SECTION_ORDER:
        result = evidence.get(name)
        if result is None:
            if params.sections[name].enabled:
                result = SectionResult(name, Status.ERROR, error="no evidence file was written")
            else:
                not_checked.append({"section": name, "reason": "switched off in params"})
                continue
        if result.data.get("skipped"):
            not_checked.append({"section": name, "reason": result.data.get("reason", "skipped")})
        mine = section_claims(params, result)
        claims += mine
        for c in mine:
            if c.required and c.status in (Status.INCONCLUSIVE, Status.ERROR):
                not_checked.append(
                    {"section": name, "reason": f"{c.id} ({c.status.value}): {c.statistic or 'no data'}"}
                )
        sections.append(
            {
                "section": name,
                "status": result.status.value,
                "duration_s": result.duration_s,
                "error": result.error,
                "skipped": bool(result.data.get("skipped")),
                "claims": len(mine),
            }
        )
    warnings: list[EvidenceWarning] = evidence_warnings(params, evidence, meta.get("targets"))
    verdict = overall_status(claims)
    verdict_reason = _verdict_reason(verdict, claims)
    if warnings and params.warnings.fail_run and verdict is not Status.FAIL:
        verdict = Status.FAIL
        verdict_reason = f"{len(warnings)} evidence warning(s) and params say warnings fail the run"
    interrupted = meta.get("interrupted")
    if interrupted:
        # Stopped by a signal: what did not finish was not checked. A FAIL found before stays a FAIL.
        signal_name = interrupted.get("signal", "a signal") if isinstance(interrupted, dict) else "a signal"
        if verdict is not Status.FAIL:
            verdict = Status.INCONCLUSIVE
        verdict_reason = f"run interrupted by {signal_name} before every section finished; {verdict_reason}"
    counts = Counter(c.status.value for c in claims if c.required)
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "run_id": meta.get("run_id", ""),
        "title": params.title,
        "description": params.description,
        "environment": params.environment,
        "tool_version": meta.get("tool_version", ""),
        "started_at": meta.get("started_at", ""),
        "finished_at": meta.get("finished_at", ""),
        "targets": meta.get("targets")
        or {
            "candidate": params.target.base_url,
            **({"baseline": params.baseline.base_url} if params.baseline else {}),
        },
        "verdict": verdict.value,
        "verdict_reason": verdict_reason,
        "exit_code": exit_code_for(verdict),
        "interrupted": meta.get("interrupted"),
        "required_counts": {s.value: counts.get(s.value, 0) for s in Status},
        "sections": sections,
        "claims": [c.serialize() for c in claims],
        "warnings": [w.serialize() for w in warnings],
        "not_checked": not_checked,
    }


def _verdict_reason(verdict: Status, claims: list[Claim]) -> str:
    required = [c for c in claims if c.required]
    if not required:
        return "no required check produced evidence"
    failing = [c.id for c in required if c.status is Status.FAIL]
    if verdict is Status.FAIL:
        return f"{len(failing)} required check(s) failed: {', '.join(failing[:6])}"
    if verdict is Status.PASS:
        return f"all {len(required)} required checks passed"
    open_ = [f"{c.id} ({c.status.value})" for c in required if c.status is not Status.PASS]
    return f"{len(open_)} required check(s) not passed: {', '.join(open_[:6])}"


def summarize_run(run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    params, _ = load_params(run_dir / "params.yaml", env=LenientEnv())
    return build_summary(meta, params, read_all_evidence(run_dir))
