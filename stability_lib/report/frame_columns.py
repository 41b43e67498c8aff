"""The documented columns of every frame of a run (name -> dtype, meaning), which load_run builds."""

from __future__ import annotations

__all__ = [
    "COLUMNS",
    "describe_columns",
]


# {frame: {column: (dtype, meaning)}}: the single source for dtypes, order and docs.
COLUMNS: dict[str, dict[str, tuple[str, str]]] = {
    "claims": {
        "run_id": ("string", "the run the claim belongs to"),
        "section": ("string", "report section that made the claim (health, websocket, suites, ...)"),
        "claim_id": ("string", "stable id '<section>.<check>', the same across runs"),
        "status": ("string", "PASS, FAIL, INCONCLUSIVE or ERROR"),
        "required": ("boolean", "True when the claim decides the verdict, False when informative"),
        "statement": ("string", "plain-language statement the check tested"),
        "statistic": ("string", "the figure that decided it, as the report prints it"),
        "figure_kind": ("string", "rate, ratio or count; empty for claims without a structured figure"),
        "figure_value": ("float64", "the decisive number (rate 0..1, ratio candidate/baseline, or count)"),
        "figure_unit": ("string", "unit of figure_value, when it has one"),
        "figure_low": ("float64", "lower end of the interval at figure_confidence"),
        "figure_high": ("float64", "upper end of the interval (one-sided bound for a rate with k == 0)"),
        "figure_confidence": ("float64", "confidence level of the interval (0.95 = 95%)"),
        "figure_k": ("Int64", "events counted (failed sessions, leaks, failed tests)"),
        "figure_n": ("Int64", "out of how many"),
        "figure_tolerance": ("float64", "limit the check judged against"),
        "figure_baseline_k": ("Int64", "the baseline's event count, for a candidate-versus-baseline claim"),
        "figure_baseline_n": ("Int64", "the baseline's total"),
        "figure_test": ("string", "statistical test or method behind the figure"),
        "figure_what": ("string", "what figure_k counts, in words"),
        "evidence_file": ("string", "first evidence file, relative to the run directory"),
    },
    "sections": {
        "run_id": ("string", "the run"),
        "section": ("string", "section name"),
        "status": ("string", "PASS, FAIL, INCONCLUSIVE or ERROR (ERROR: the section itself crashed)"),
        "error": ("string", "first line of the crash, when status is ERROR"),
        "skipped": ("boolean", "True when the section skipped itself (switched off, or nothing to do)"),
        "duration_s": ("float64", "wall-clock seconds the section took"),
        "started_at": ("datetime64[ns, UTC]", "when the section started"),
    },
    "sessions": {
        "run_id": ("string", "the run"),
        "section": ("string", "websocket (the soak) or golden_path (sessions inside golden-path runs)"),
        "side": ("string", "candidate or baseline: which target the session ran against"),
        "session_id": ("string", "id of the session within its run"),
        "user": ("string", "test user that opened the session"),
        "step": ("string", "scenario step the session belongs to"),
        "repetition": ("Int64", "golden-path repetition (empty for soak sessions)"),
        "outcome": ("string", "ok, closed_1011, abnormal_1006, closed_other, timeout, handshake_rejected, ..."),
        "outcome_label": ("string", "outcome with its detail, e.g. closed_other(1000), timeout(chat:final)"),
        "crashed": ("boolean", "closed with 1011 or dropped without a close frame (1006)"),
        "close_code": ("Int64", "WebSocket close code received, when the connection closed"),
        "close_reason": ("string", "close reason text sent by the server (capped)"),
        "start_offset_s": (
            "float64",
            "seconds from the start of the soak (or golden-path run) to this session's start",
        ),
        "started_at": (
            "datetime64[ns, UTC]",
            "wall-clock start: the probe's recorded start (whole seconds) plus start_offset_s",
        ),
        "connect_s": ("float64", "opening handshake, seconds"),
        "first_event_s": ("float64", "message sent to first event received, seconds"),
        "total_s": ("float64", "message sent to last event or close, seconds"),
        "events": ("Int64", "events received"),
    },
    "latency": {
        "run_id": ("string", "the run"),
        "section": ("string", "section that measured it (performance: interleaved A/B samples)"),
        "side": ("string", "candidate or baseline"),
        "operation": ("string", "what was timed: step:<name>, <ws step>:connect, <ws step>:first_event, ..."),
        "index": ("Int64", "position of the sample among this side's samples of this operation (0-based)"),
        "round": (
            "Int64",
            "A/B round the sample was taken in (performance; empty when the evidence does not record it)",
        ),
        "ms": ("float64", "duration in milliseconds"),
    },
    "tests": {
        "run_id": ("string", "the run"),
        "category": ("string", "test category from params (unit, integration, e2e, ...)"),
        "test_id": ("string", "'classname::name', stable across runs"),
        "classname": ("string", "JUnit classname"),
        "name": ("string", "JUnit test name"),
        "status": ("string", "passed, failed, error, skipped or flaky (failed, then passed on a rerun)"),
        "duration_s": ("float64", "seconds the test took (first run)"),
        "message": ("string", "why it failed, errored or was skipped (capped)"),
        "source": (
            "string",
            "junit: every test case from the copied JUnit file; evidence: only the capped lists in the evidence (file missing)",
        ),
    },
    "contract_changes": {
        "run_id": ("string", "the run"),
        "kind": ("string", "openapi, ws (WebSocket message schema) or db (database schema)"),
        "level": ("string", "ERR (breaking), WARN (possibly breaking) or INFO (compatible), by the diff rules"),
        "rule": ("string", "the diff rule that fired"),
        "path": ("string", "API path (openapi), event type (ws) or table (db)"),
        "method": ("string", "HTTP method (openapi)"),
        "location": ("string", "where in the spec or schema"),
        "message": ("string", "what changed, in words"),
    },
    "warnings": {
        "run_id": ("string", "the run"),
        "kind": ("string", "warning kind (implausible_duration, small_sample, foreign_baseline, ...)"),
        "message": ("string", "what looks wrong about the evidence"),
        "section": ("string", "section whose evidence it concerns"),
        "evidence_file": ("string", "evidence file, relative to the run directory"),
        "records": ("string", "record ids in that file, comma-separated"),
    },
    "runs": {
        "run_id": ("string", "run id (the run directory's name unless run.json says otherwise)"),
        "started_at": ("datetime64[ns, UTC]", "when the run started"),
        "finished_at": ("datetime64[ns, UTC]", "when the run finished (empty: interrupted before the summary)"),
        "target_version": ("string", "target commit or version (fingerprint.json, else params target.commit)"),
        "target": ("string", "candidate base URL"),
        "baseline": ("string", "baseline base URL, when there was one"),
        "environment": ("string", "environment named in params"),
        "verdict": ("string", "PASS, FAIL, INCONCLUSIVE or ERROR; empty when the run has no summary.json"),
        "exit_code": ("Int64", "exit code the verdict maps to"),
        "tool_version": ("string", "stability-proof version that made the run"),
        "path": ("string", "the run directory"),
    },
}


def describe_columns(frame: str | None = None) -> str:
    """The column tables as text: one frame, or all of them."""
    names = [frame] if frame else list(COLUMNS)
    lines: list[str] = []
    for name in names:
        lines.append(f"{name}:")
        width = max(len(c) for c in COLUMNS[name])
        for column, (dtype, meaning) in COLUMNS[name].items():
            lines.append(f"  {column:<{width}}  {dtype:<20}  {meaning}")
    return "\n".join(lines)
