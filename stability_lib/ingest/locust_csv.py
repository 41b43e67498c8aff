"""Locust's CSV files (``locust --csv PREFIX``), parsed. Pure: text in, records out.

``PREFIX_stats.csv`` has one row per request name (and an ``Aggregated`` total): request and
failure counts, min and max, and the percentiles 50% ... 100%. Locust keeps no samples: it rounds
each response time (to 1 ms under 100 ms, 10 ms under 1 s, 100 ms under 10 s, 1 s above) into a
histogram, and the p-th percentile is the rounded latency of rank ``floor(n * p) + 1`` (locust
``calculate_response_time_percentile``). ``PREFIX_failures.csv`` groups failed requests by
error, ``PREFIX_exceptions.csv`` the exceptions of the locustfile itself, and
``PREFIX_stats_history.csv`` holds snapshots over time (read for its totals only).
``locust --json-file NAME`` writes, at exit, the whole histogram of rounded response times per
name (``parse_locust_json``): every order statistic, so the median can be judged too.
Locust rewrites these files once a second and not again at exit, so the last second of a run
may be missing from them.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .records import FailureRecord, IngestError, LoadRun, QuantilePoint, RequestStats, ScriptError, clip

__all__ = [
    "LOCUST_LIMITS",
    "LocustHistory",
    "locust_half_width",
    "parse_locust_stats",
    "parse_locust_failures",
    "parse_locust_exceptions",
    "parse_locust_history",
    "parse_locust_json",
    "locust_run",
]

MAX_ROWS = 20_000  # request names (or history rows) in one file
_PERCENT = re.compile(r"^(\d{1,3}(?:\.\d{1,6})?)%$")
_STATS_COLUMNS = ("Type", "Name", "Request Count", "Failure Count", "Min Response Time", "Max Response Time")
LOCUST_LIMITS = (
    "Locust CSV files hold no latency samples, only percentiles of latencies rounded to 1 ms under 100 ms "
    "(10 ms under 1 s): the median ratio and its bootstrap interval cannot be computed from them.",
    "Locust rewrites its CSV files once a second and not again at exit: the last second of a run may be "
    "missing from them.",
)


def locust_half_width(rounded_ms: float) -> float:
    """How far a latency Locust reports as ``rounded_ms`` may be from the measured one."""
    if rounded_ms < 100:
        return 0.5
    if rounded_ms < 1000:
        return 5.0
    if rounded_ms < 10_000:
        return 50.0
    return 500.0


def _rows(text: str, what: str, required: tuple[str, ...]) -> tuple[list[str], list[list[str]]]:
    if "\x00" in text:
        raise IngestError(f"{what}: not a text file (NUL byte)")
    reader = csv.reader(text.splitlines())
    try:
        header = next(reader)
    except StopIteration:
        raise IngestError(f"{what}: the file is empty (no header line)") from None
    except csv.Error as exc:
        raise IngestError(f"{what}: not CSV ({exc})") from None
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise IngestError(f"{what}: no column {', '.join(repr(m) for m in missing)}; is this a Locust CSV file?")
    rows: list[list[str]] = []
    try:
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise IngestError(f"{what}: line {line_no} has {len(row)} fields, the header {len(header)}")
            rows.append(row)
            if len(rows) > MAX_ROWS:
                raise IngestError(f"{what}: more than {MAX_ROWS} rows")
    except csv.Error as exc:
        raise IngestError(f"{what}: not CSV ({exc})") from None
    return header, rows


def _count(value: str, what: str, column: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise IngestError(f"{what}: {column} {clip(value)[:40]!r} is not a whole number") from None
    if number < 0:
        raise IngestError(f"{what}: {column} {number} is negative")
    return number


def _ms(value: str, what: str, column: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        raise IngestError(f"{what}: {column} {clip(value)[:40]!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise IngestError(f"{what}: {column} {number} is not a latency")
    return number


def _level(text: str) -> float:
    """0.999 for "99.9": the float nearest the decimal, as Locust's own literal is."""
    return float(Decimal(text) / 100)


def _rank(n: int, level: float) -> int:
    """Rank (1-based) of the latency Locust reports at ``level``: int(n * level) + 1, at most n."""
    return max(1, min(n, int(n * level) + 1))


def parse_locust_stats(text: str, what: str = "stats.csv") -> tuple[tuple[RequestStats, ...], RequestStats | None]:
    """Per request name (and the Aggregated row, apart) of ``PREFIX_stats.csv``."""
    header, rows = _rows(text, what, _STATS_COLUMNS)
    index = {h: i for i, h in enumerate(header)}
    levels = [(h, _level(m.group(1))) for h in header if (m := _PERCENT.match(h))]
    if not levels:
        raise IngestError(f"{what}: no percentile columns (50%, 95% ...)")
    out: list[RequestStats] = []
    aggregated: RequestStats | None = None
    seen: set[tuple[str, str]] = set()
    for row in rows:
        method, name = clip(row[index["Type"]].strip()), clip(row[index["Name"]])
        n = _count(row[index["Request Count"]], what, "Request Count")
        k = _count(row[index["Failure Count"]], what, "Failure Count")
        if k > n:
            raise IngestError(f"{what}: {name!r} has {k} failures in {n} requests")
        points: list[QuantilePoint] = []
        if n > 0:
            low_ms = _ms(row[index["Min Response Time"]], what, "Min Response Time")
            high_ms = _ms(row[index["Max Response Time"]], what, "Max Response Time")
            points.append(QuantilePoint(0.0, low_ms, 1, 1))  # min and max are measured, not rounded
            for column, level in levels:
                value = _ms(row[index[column]], what, column)
                rank = _rank(n, level)
                points.append(QuantilePoint(level, value, rank, rank, locust_half_width(value)))
            points.append(QuantilePoint(1.0, high_ms, n, n))
        stats = RequestStats(name=name, method=method, requests=n, failures=k, quantiles=tuple(points))
        if method == "" and name == "Aggregated":
            aggregated = stats
            continue
        if (method, name) in seen:
            raise IngestError(f"{what}: {method} {name!r} appears twice")
        seen.add((method, name))
        out.append(stats)
    return tuple(out), aggregated


def parse_locust_failures(text: str, what: str = "failures.csv") -> tuple[FailureRecord, ...]:
    header, rows = _rows(text, what, ("Method", "Name", "Error", "Occurrences"))
    index = {h: i for i, h in enumerate(header)}
    return tuple(
        FailureRecord(
            method=clip(row[index["Method"]]),
            name=clip(row[index["Name"]]),
            error=clip(row[index["Error"]]),
            occurrences=_count(row[index["Occurrences"]], what, "Occurrences"),
        )
        for row in rows
    )


def parse_locust_exceptions(text: str, what: str = "exceptions.csv") -> tuple[ScriptError, ...]:
    """Exceptions raised by the locustfile (grouped by traceback: ``Count`` each)."""
    header, rows = _rows(text, what, ("Count", "Message"))
    index = {h: i for i, h in enumerate(header)}
    return tuple(
        ScriptError(message=clip(row[index["Message"]]), count=_count(row[index["Count"]], what, "Count"))
        for row in rows
    )


@dataclass(frozen=True)
class LocustHistory:
    """``PREFIX_stats_history.csv`` in brief: snapshots, names seen, and the last totals."""

    snapshots: int
    names: tuple[str, ...]
    last_total_requests: int
    last_total_failures: int

    def serialize(self) -> dict[str, Any]:
        return {
            "snapshots": self.snapshots,
            "names": list(self.names),
            "last_total_requests": self.last_total_requests,
            "last_total_failures": self.last_total_failures,
        }


def parse_locust_history(text: str, what: str = "stats_history.csv") -> LocustHistory:
    header, rows = _rows(text, what, ("Timestamp", "Name", "Total Request Count", "Total Failure Count"))
    index = {h: i for i, h in enumerate(header)}
    names: list[str] = []
    last = (0, 0)
    snapshots = 0
    for row in rows:
        name = clip(row[index["Name"]])
        if name == "Aggregated":
            snapshots += 1
            last = (
                _count(row[index["Total Request Count"]], what, "Total Request Count"),
                _count(row[index["Total Failure Count"]], what, "Total Failure Count"),
            )
        elif name not in names:
            names.append(name)
    return LocustHistory(snapshots, tuple(names), last[0], last[1])


def _histogram_points(buckets: dict[float, int], low_ms: float, high_ms: float) -> tuple[QuantilePoint, ...]:
    """Every order statistic, by bucket: the latencies of ranks c+1 .. c+k lie within the bucket."""
    n = sum(buckets.values())
    points = [QuantilePoint(0.0, low_ms, 1, 1)]
    seen = 0
    for value in sorted(buckets):
        count = buckets[value]
        points.append(QuantilePoint((seen + count) / n, value, seen + 1, seen + count, locust_half_width(value)))
        seen += count
    points.append(QuantilePoint(1.0, high_ms, n, n))
    return tuple(points)


def parse_locust_json(text: str, source: str = "locust.json") -> LoadRun:
    """``locust --json-file NAME`` (NAME.json, written at exit): per request name the counts and
    the whole histogram of rounded response times, so every order statistic is known to within
    Locust's rounding. Exceptions of the locustfile are not in it (``_exceptions.csv`` is)."""
    try:
        doc = json.loads(text)
    except ValueError:
        raise IngestError(f"{source}: not JSON") from None
    except RecursionError:
        raise IngestError(f"{source}: not JSON (nested too deeply)") from None
    if not isinstance(doc, list):
        raise IngestError(f"{source}: not a list of request stats; is this locust --json-file output?")
    if len(doc) > MAX_ROWS:
        raise IngestError(f"{source}: more than {MAX_ROWS} request names")
    out: list[RequestStats] = []
    for i, entry in enumerate(doc):
        if not isinstance(entry, dict) or not isinstance(entry.get("response_times"), dict):
            raise IngestError(f"{source}: entry {i} has no response_times; is this locust --json-file output?")
        name, method = clip(entry.get("name", "")), clip(entry.get("method") or "")
        n = _count(str(entry.get("num_requests", "")), source, f"{name!r} num_requests")
        k = _count(str(entry.get("num_failures", "")), source, f"{name!r} num_failures")
        if k > n:
            raise IngestError(f"{source}: {name!r} has {k} failures in {n} requests")
        buckets: dict[float, int] = {}
        for key, count in entry["response_times"].items():
            value = _ms(str(key), source, f"{name!r} response time")
            buckets[value] = buckets.get(value, 0) + _count(str(count), source, f"{name!r} bucket count")
            if len(buckets) > MAX_ROWS:
                raise IngestError(f"{source}: {name!r} has more than {MAX_ROWS} histogram buckets")
        timed = sum(buckets.values())
        if timed > n:
            raise IngestError(f"{source}: {name!r} has {timed} response times for {n} requests")
        points: tuple[QuantilePoint, ...] = ()
        if timed:
            low_ms = _ms(str(entry.get("min_response_time")), source, f"{name!r} min_response_time")
            high_ms = _ms(str(entry.get("max_response_time")), source, f"{name!r} max_response_time")
            points = _histogram_points(buckets, low_ms, high_ms)
        out.append(RequestStats(name, method, timed if timed else n, k, quantiles=points, histogram=bool(timed)))
    return LoadRun(
        tool="locust",
        source=source,
        requests=tuple(out),
        script_errors=None,
        limits=(
            "Locust rounds response times (to 1 ms under 100 ms, 10 ms under 1 s) before its histogram: "
            "every order statistic is known to within that rounding, not exactly.",
            "No exceptions file: whether the locustfile raised is unknown (give the run's "
            "PREFIX_exceptions.csv as the log).",
        ),
    )


def locust_run(
    source: str,
    stats_text: str,
    failures_text: str | None = None,
    exceptions_text: str | None = None,
) -> LoadRun:
    """One Locust run from its CSV texts. Without the exceptions file, whether the locustfile
    raised is unknown (``script_errors`` None), not zero."""
    requests, _aggregated = parse_locust_stats(stats_text, f"{source}_stats.csv")
    failures = parse_locust_failures(failures_text, f"{source}_failures.csv") if failures_text is not None else ()
    errors = (
        parse_locust_exceptions(exceptions_text, f"{source}_exceptions.csv") if exceptions_text is not None else None
    )
    limits: tuple[str, ...] = LOCUST_LIMITS
    if errors is None:
        limits += ("No exceptions file: whether the locustfile raised is unknown.",)
    return LoadRun(
        tool="locust",
        source=source,
        requests=requests,
        failures=failures,
        script_errors=errors,
        limits=limits,
    )
