"""Rows per kind of record (pure): evidence and summary data, read defensively, one dict per row."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd

__all__ = []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if math.isfinite(value) and float(value).is_integer() else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _claim_rows(run_id: str, claims: Iterable[Any]) -> Iterator[dict[str, Any]]:
    for raw in claims:
        if not isinstance(raw, dict) or "id" not in raw:
            continue
        figure = _dict(raw.get("figure"))
        evidence = [e for e in _list(raw.get("evidence")) if isinstance(e, dict)]
        yield {
            "run_id": run_id,
            "section": _text(raw.get("section")),
            "claim_id": str(raw["id"]),
            "status": _text(raw.get("status")),
            "required": bool(raw.get("required", True)),
            "statement": _text(raw.get("statement")),
            "statistic": _text(raw.get("statistic")),
            "figure_kind": _text(figure.get("kind")),
            "figure_value": _num(figure.get("value")),
            "figure_unit": _text(figure.get("unit")),
            "figure_low": _num(figure.get("low")),
            "figure_high": _num(figure.get("high")),
            "figure_confidence": _num(figure.get("confidence")),
            "figure_k": _int(figure.get("k")),
            "figure_n": _int(figure.get("n")),
            "figure_tolerance": _num(figure.get("tolerance")),
            "figure_baseline_k": _int(figure.get("baseline_k")),
            "figure_baseline_n": _int(figure.get("baseline_n")),
            "figure_test": _text(figure.get("test")),
            "figure_what": _text(figure.get("what")),
            "evidence_file": _text(evidence[0].get("file")) if evidence else None,
        }


def _session_row(
    run_id: str, section: str, side: str, raw: dict[str, Any], repetition: int | None, origin: pd.Timestamp | None
) -> dict[str, Any]:
    outcome = _dict(raw.get("outcome"))
    kind = _text(outcome.get("kind"))
    offset = _num(raw.get("start_offset_s"))
    started_at = origin + pd.Timedelta(seconds=offset) if origin is not None and offset is not None else None
    return {
        "run_id": run_id,
        "section": section,
        "side": side,
        "session_id": _text(raw.get("session_id")),
        "user": _text(raw.get("user")),
        "step": _text(raw.get("step")),
        "repetition": repetition,
        "outcome": kind,
        "outcome_label": _text(outcome.get("label")) or kind,
        "crashed": kind in ("closed_1011", "abnormal_1006") if kind else None,
        "close_code": _int(raw.get("close_code", outcome.get("close_code"))),
        "close_reason": _text(raw.get("close_reason")),
        "start_offset_s": offset,
        "started_at": started_at,
        "connect_s": _num(raw.get("connect_s")),
        "first_event_s": _num(raw.get("first_event_s")),
        "total_s": _num(raw.get("total_s")),
        "events": len(_list(raw.get("event_types"))),
    }


def _timestamp(value: Any) -> pd.Timestamp | None:
    stamp = pd.to_datetime(value, utc=True, errors="coerce", format="ISO8601") if isinstance(value, str) else None
    return None if stamp is None or pd.isna(stamp) else stamp


def _session_rows(run_id: str, section: str, data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if section == "websocket":
        for side in ("candidate", "baseline"):
            soak = _dict(data.get(side))
            origin = _timestamp(soak.get("started_at"))
            for raw in _list(soak.get("records")):
                if isinstance(raw, dict):
                    yield _session_row(run_id, section, side, raw, None, origin)
    elif section == "golden_path":
        origin = _timestamp(data.get("started_at"))
        for run in _list(data.get("runs")):
            run = _dict(run)
            for raw in _list(run.get("ws_sessions")):
                if isinstance(raw, dict):
                    yield _session_row(run_id, section, "candidate", raw, _int(run.get("repetition")), origin)


def _sample_rows(
    run_id: str, section: str, side: str, samples: dict[str, Any], rounds: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    for operation, values in samples.items():
        values = _list(values)
        op_rounds = _list(rounds.get(operation))
        if len(op_rounds) != len(values):
            op_rounds = [None] * len(values)
        for index, (value, round_) in enumerate(zip(values, op_rounds, strict=False)):
            ms = _num(value)
            if ms is None:
                continue
            yield {
                "run_id": run_id,
                "section": section,
                "side": side,
                "operation": str(operation),
                "index": index,
                "round": _int(round_),
                "ms": ms,
            }


def _latency_rows(run_id: str, section: str, data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if section == "performance":
        # ``sample_rounds`` ({side: {operation: [round, ...]}}, parallel to ``samples``) is read when
        # the evidence has it; without it the round of a sample is not recoverable (a golden-path run
        # can give an operation several samples or none), so ``round`` stays empty.
        rounds = _dict(data.get("sample_rounds"))
        for side, samples in _dict(data.get("samples")).items():
            yield from _sample_rows(run_id, section, str(side), _dict(samples), _dict(rounds.get(side)))
    else:
        yield from _sample_rows(run_id, section, "candidate", _dict(data.get("durations_ms")), {})


def _contract_rows(run_id: str, data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for kind in ("openapi", "ws", "db"):
        for raw in _list(_dict(data.get(kind)).get("changes")):
            if not isinstance(raw, dict):
                continue
            yield {
                "run_id": run_id,
                "kind": kind,
                **{c: _text(raw.get(c)) for c in ("level", "rule", "path", "method", "location", "message")},
            }


def _warning_rows(run_id: str, warnings: Iterable[Any]) -> Iterator[dict[str, Any]]:
    for raw in warnings:
        if not isinstance(raw, dict):
            continue
        ref = _dict(raw.get("evidence"))
        yield {
            "run_id": run_id,
            "kind": _text(raw.get("kind")),
            "message": _text(raw.get("message")),
            "section": _text(ref.get("section")),
            "evidence_file": _text(ref.get("file")),
            "records": ",".join(str(r) for r in _list(ref.get("records"))),
        }
