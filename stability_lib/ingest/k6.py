"""k6's outputs, parsed. Pure: bytes or text in, records out.

* ``k6 run --out json=FILE`` (FILE or FILE.gz): one JSON object a line, ``{"type": "Metric" |
  "Point", "metric": NAME, "data": {...}}``; a Point has ``time``, ``value`` (ms for times) and
  ``tags`` (``name``, ``method``, ``status``, ``check`` ...). Every request gives one point of
  ``http_req_duration`` and one of ``http_req_failed`` (1 = failed): every latency is there.
* the end-of-test summary: ``--summary-export=FILE`` (the legacy shape: flat metric values, and
  thresholds as ``{expression: true}`` when the threshold was CROSSED, k6 issue #1498) or
  ``JSON.stringify(data)`` in ``handleSummary`` (``metrics.X.values``, thresholds as
  ``{"ok": bool}``). Only aggregates: per request name only where the script defined
  submetrics (``http_req_duration{name:X}``), and percentiles, not samples (k6 interpolates
  between the two neighbouring sorted latencies).
* the console (``k6 run ... 2>&1 | tee FILE``) or log (``--log-output=file=FILE``, text or
  ``--log-format=json``): the ONLY place where k6 (1.1.0, checked) records an exception thrown by
  the script; neither the JSON points nor the summary do, and a summary may say every threshold
  passed while the script threw. Iterations interrupted mid-way appear only on the console's
  progress line ("N complete and M interrupted iterations"), not in a --log-output file.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .records import (
    CheckResult,
    IngestError,
    LoadRun,
    QuantilePoint,
    RequestStats,
    ScriptError,
    ThresholdResult,
    clip,
)

__all__ = [
    "ALL_REQUESTS",
    "K6_INTERRUPTED_LIMIT",
    "MAX_DECOMPRESSED_BYTES",
    "MAX_POINTS",
    "maybe_gunzip",
    "parse_k6_points",
    "parse_k6_summary",
    "K6Log",
    "parse_k6_log",
]

ALL_REQUESTS = "all requests"  # the name of k6's unfiltered http_req_duration in a summary
MAX_DECOMPRESSED_BYTES = 512 * 1024 * 1024
MAX_POINTS = 5_000_000
MAX_NAMES = 20_000
_NO_LOG = (
    "No k6 log given: k6 records exceptions thrown by the script only in its log or console, so whether it "
    "threw is unknown."
)
K6_INTERRUPTED_LIMIT = (
    "k6 writes iterations interrupted mid-way (by maxDuration or a graceful stop) only to its console "
    "(give `k6 run ... 2>&1 | tee FILE` as the log); iterations it never started are in dropped_iterations."
)
_NO_FAILED_METRIC = "No http_req_failed metric (k6 before 0.31 has none): which requests failed is not recorded."
_SUBMETRIC = re.compile(r"^([a-z_]+)\{(.*)\}$")
_PERCENTILE = re.compile(r"^p\((\d{1,3}(?:\.\d{1,6})?)\)$")
_PROGRESS = re.compile(r"\d+ complete and (\d+) interrupted iterations")
_LOGFMT = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def maybe_gunzip(data: bytes, what: str, cap: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """``data`` itself, or its gzip content when it starts with the gzip magic (k6 writes
    FILE.gz compressed), decompressed to at most ``cap`` bytes."""
    if not data.startswith(b"\x1f\x8b"):
        return data
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, cap + 1)
    except zlib.error as exc:
        raise IngestError(f"{what}: not a valid gzip file ({exc})") from None
    if len(out) > cap:
        raise IngestError(f"{what}: more than {cap} bytes once decompressed")
    return out


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise IngestError(f"{what}: {clip(repr(value))[:60]} is not a number")
    return float(value)


def _tags(data: dict[str, Any]) -> dict[str, str]:
    tags = data.get("tags")
    return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {}


def _request_name(tags: dict[str, str]) -> str:
    return clip(tags.get("name") or tags.get("url") or "(no name tag)")


def parse_k6_points(data: bytes, source: str = "k6.json") -> LoadRun:
    """Every request's latency and outcome, per ``name`` tag (the URL when untagged), from k6's
    ``--out json`` file (plain or gzip). Checks and dropped iterations come along; whether the
    script threw is unknown here (its log says: ``parse_k6_log``)."""
    text = maybe_gunzip(data, source).decode("utf-8", errors="replace")
    durations: dict[str, list[float]] = {}
    methods: dict[str, str] = {}
    requests: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    checks: dict[str, list[int]] = {}
    iterations = dropped = 0
    points = 0
    lines = text.split("\n")
    limits: list[str] = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply for the parser
            if line_no == len(lines):  # the last line, cut: k6 was stopped while writing
                limits.append(f"the last line ({line_no}) of {source} is cut off and was left out")
                continue
            raise IngestError(f"{source}: line {line_no} is not JSON; is this k6 --out json output?") from None
        if not isinstance(record, dict) or record.get("type") not in ("Metric", "Point"):
            raise IngestError(f"{source}: line {line_no} is not a k6 Metric or Point")
        if record["type"] != "Point":
            continue
        points += 1
        if points > MAX_POINTS:
            raise IngestError(f"{source}: more than {MAX_POINTS} points")
        body = record.get("data")
        if not isinstance(body, dict):
            raise IngestError(f"{source}: line {line_no} has no data")
        metric = record.get("metric")
        value = _number(body.get("value"), f"{source} line {line_no}")
        tags = _tags(body)
        if metric == "http_req_duration":
            name = _request_name(tags)
            if name not in durations and len(durations) >= MAX_NAMES:
                raise IngestError(f"{source}: more than {MAX_NAMES} request names")
            durations.setdefault(name, []).append(value)
            methods.setdefault(name, clip(tags.get("method", "")))
        elif metric == "http_req_failed":
            name = _request_name(tags)
            requests[name] += 1
            failed[name] += 1 if value != 0 else 0
        elif metric == "checks":
            tally = checks.setdefault(clip(tags.get("check", "(unnamed check)")), [0, 0])
            tally[0 if value != 0 else 1] += 1
        elif metric == "iterations":
            iterations += int(value)
        elif metric == "dropped_iterations":
            dropped += int(value)
    recorded = bool(requests) or not durations
    if not recorded:
        limits.append(_NO_FAILED_METRIC)
    names = sorted(set(durations) | set(requests))
    stats = tuple(
        RequestStats(
            name=name,
            method=methods.get(name, ""),
            requests=max(requests[name], len(durations.get(name, []))),
            failures=failed[name],
            samples=tuple(durations.get(name, [])),
        )
        for name in names
    )
    return LoadRun(
        tool="k6",
        source=source,
        requests=stats,
        script_errors=None,
        checks=tuple(CheckResult(name, passes, fails) for name, (passes, fails) in sorted(checks.items())),
        iterations=iterations,
        dropped_iterations=dropped,
        limits=(*limits, _NO_LOG, K6_INTERRUPTED_LIMIT),
        failures_recorded=recorded,
    )


# ---------------------------------------------------------------- the end-of-test summary


def _metric_values(raw: Any, handle_summary: bool) -> dict[str, Any]:
    if not isinstance(raw, dict):
        return {}
    if handle_summary:
        values = raw.get("values")
        return values if isinstance(values, dict) else {}
    return raw


def _thresholds(metric: str, raw: Any, handle_summary: bool) -> list[ThresholdResult]:
    found = raw.get("thresholds") if isinstance(raw, dict) else None
    if not isinstance(found, dict):
        return []
    out = []
    for expression, verdict in found.items():
        if handle_summary:
            ok = verdict.get("ok") if isinstance(verdict, dict) else None
        else:
            # --summary-export writes true for a CROSSED threshold (k6 issue #1498, kept as is).
            ok = (not verdict) if isinstance(verdict, bool) else None
        if not isinstance(ok, bool):
            raise IngestError(f"threshold {clip(expression)[:80]!r} of {metric}: no pass/fail value")
        out.append(ThresholdResult(metric=clip(metric), expression=clip(expression), ok=ok))
    return out


def _checks(group: Any, depth: int = 0) -> list[CheckResult]:
    if not isinstance(group, dict) or depth > 50:
        return []
    raw = group.get("checks")
    items = raw.values() if isinstance(raw, dict) else raw if isinstance(raw, list) else []
    out = []
    for check in items:
        if isinstance(check, dict):
            passes, fails = check.get("passes", 0), check.get("fails", 0)
            if not (isinstance(passes, int) and isinstance(fails, int) and passes >= 0 and fails >= 0):
                raise IngestError(f"check {clip(check.get('name', ''))[:80]!r}: passes/fails are not counts")
            out.append(CheckResult(name=clip(check.get("path") or check.get("name", "")), passes=passes, fails=fails))
    groups = group.get("groups")
    children = groups.values() if isinstance(groups, dict) else groups if isinstance(groups, list) else []
    for child in children:
        out.extend(_checks(child, depth + 1))
    return out


def _summary_points(values: dict[str, Any], n: int, what: str) -> tuple[QuantilePoint, ...]:
    """Percentiles of a trend k6 summarised over ``n`` latencies. k6 interpolates at position
    p * (n - 1) of the sorted latencies (0-based): between ranks floor and ceil of it, plus one."""
    points: list[QuantilePoint] = []
    for key, raw in values.items():
        if key == "med":
            level = 0.5
        elif key in ("min", "max"):
            level = 0.0 if key == "min" else 1.0
        elif m := _PERCENTILE.match(str(key)):
            level = float(m.group(1)) / 100.0
        else:
            continue
        if not 0.0 <= level <= 1.0:
            continue
        value = _number(raw, f"{what} {key}")
        position = level * (n - 1)
        points.append(QuantilePoint(level, value, math.floor(position) + 1, math.ceil(position) + 1))
    return tuple(sorted(points, key=lambda p: p.level))


def _submetric_name(key: str) -> tuple[str, str] | None:
    """("http_req_duration", "X") for ``http_req_duration{name:X}``; (metric, ALL_REQUESTS) for
    the plain metric; None for a submetric on other tags (a subset, not a request name)."""
    m = _SUBMETRIC.match(key)
    if m is None:
        return key, ALL_REQUESTS
    tag, _, value = m.group(2).partition(":")
    if tag.strip() != "name" or "," in m.group(2):
        return None
    return m.group(1), clip(value.strip())


def parse_k6_summary(text: str, source: str = "summary.json") -> LoadRun:
    """The end-of-test summary (``--summary-export`` or ``handleSummary`` JSON): all requests
    (and each ``{name:X}`` submetric) with counts and percentiles, checks, thresholds."""
    try:
        doc = json.loads(text)
    except ValueError:
        raise IngestError(f"{source}: not JSON") from None
    except RecursionError:
        raise IngestError(f"{source}: not JSON (nested too deeply)") from None
    metrics = doc.get("metrics") if isinstance(doc, dict) else None
    if not isinstance(metrics, dict):
        raise IngestError(f"{source}: no 'metrics' object; is this a k6 end-of-test summary?")
    handle_summary = any(isinstance(m, dict) and "values" in m for m in metrics.values())
    counts: dict[str, int] = {}
    failed: dict[str, tuple[int, int]] = {}
    trends: dict[str, dict[str, Any]] = {}
    thresholds: list[ThresholdResult] = []
    for key, raw in metrics.items():
        thresholds.extend(_thresholds(str(key), raw, handle_summary))
        parsed = _submetric_name(str(key))
        if parsed is None:
            continue
        metric, name = parsed
        values = _metric_values(raw, handle_summary)
        if metric == "http_reqs" and "count" in values:
            counts[name] = int(_number(values["count"], f"{source} {key}.count"))
        elif metric == "http_req_failed":
            # A rate's "passes" counts non-zero values: here, failed requests.
            bad, good = values.get("passes", 0), values.get("fails", 0)
            if not (isinstance(bad, int) and isinstance(good, int) and bad >= 0 and good >= 0):
                raise IngestError(f"{source}: {key} passes/fails are not counts")
            failed[name] = (bad, bad + good)
        elif metric == "http_req_duration":
            trends[name] = values
    limits = [
        "A k6 summary holds percentiles of all requests (and of {name:...} submetrics), not samples: "
        "the median ratio and its bootstrap interval cannot be computed from it.",
        _NO_LOG,
        K6_INTERRUPTED_LIMIT,
    ]
    if ALL_REQUESTS not in failed and (trends or counts):
        limits.append(_NO_FAILED_METRIC)
    stats: list[RequestStats] = []
    for name in sorted(set(trends) | set(failed) | set(counts)):
        n = counts.get(name, failed.get(name, (0, 0))[1])
        if name != ALL_REQUESTS and name not in counts and name not in failed:
            limits.append(f"{name!r}: no request count in the summary (no http_reqs{{name:...}}); left out")
            continue
        bad = failed.get(name, (0, n))[0]
        if bad > n:
            raise IngestError(f"{source}: {name!r} has {bad} failed requests of {n}")
        points = _summary_points(trends.get(name, {}), n, f"{source} {name}") if n > 0 else ()
        stats.append(RequestStats(name=name, method="", requests=n, failures=bad, quantiles=points))
    iterations = metrics.get("iterations")
    dropped = metrics.get("dropped_iterations")
    iter_values = _metric_values(iterations, handle_summary)
    drop_values = _metric_values(dropped, handle_summary)
    return LoadRun(
        tool="k6",
        source=source,
        requests=tuple(stats),
        script_errors=None,
        checks=tuple(_checks(doc.get("root_group"))),
        thresholds=tuple(thresholds),
        iterations=int(_number(iter_values["count"], "iterations")) if "count" in iter_values else None,
        dropped_iterations=int(_number(drop_values["count"], "dropped_iterations")) if "count" in drop_values else 0,
        limits=tuple(limits),
        failures_recorded=ALL_REQUESTS in failed or not (trends or counts),
    )


# ---------------------------------------------------------------- the log


def _log_fields(line: str) -> dict[str, str]:
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply for the parser
            return {}
        return {str(k): str(v) for k, v in record.items()} if isinstance(record, dict) else {}
    fields = {}
    for key, value in _LOGFMT.findall(line):
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                value = value.strip('"')
        fields[key] = str(value)
    return fields


@dataclass(frozen=True)
class K6Log:
    """What k6's log or console output shows: the script's exceptions, and how many iterations
    were interrupted mid-way (None when the text has no progress line: a --log-output file)."""

    errors: tuple[ScriptError, ...]
    interrupted_iterations: int | None


def parse_k6_log(text: str) -> K6Log:
    """Exceptions thrown by the script: k6 logs each as ``level=error`` with ``source=stacktrace``
    (JSON or text log format), grouped by the first line of the message. Interrupted iterations:
    the last progress line of the console ("N complete and M interrupted iterations")."""
    found: Counter[str] = Counter()
    interrupted: int | None = None
    for line in text.splitlines():
        progress = _PROGRESS.search(line)
        if progress is not None:
            interrupted = int(progress.group(1))
            continue
        fields = _log_fields(line.strip())
        if fields.get("level") == "error" and fields.get("source") == "stacktrace":
            message = fields.get("msg", "").strip().split("\n", 1)[0]
            found[clip(message)] += 1
    errors = tuple(ScriptError(message=m, count=c) for m, c in sorted(found.items()))
    return K6Log(errors=errors, interrupted_iterations=interrupted)
