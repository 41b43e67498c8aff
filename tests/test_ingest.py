"""Ingest: Locust CSV and k6 files of runs made elsewhere, parsed with exact counts and judged
against a baseline run's files (tests/fixtures/ingest: made by the real tools, see its README)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pytest

from stability_lib.core.models import Status
from stability_lib.core.verdict import section_status
from stability_lib.ingest.config import ExternalPerformanceConfig
from stability_lib.ingest.files import external_performance_claims, read_capped
from stability_lib.ingest.judge import judge_external
from stability_lib.ingest.k6 import maybe_gunzip, parse_k6_log, parse_k6_points, parse_k6_summary
from stability_lib.ingest.locust_csv import (
    locust_run,
    parse_locust_exceptions,
    parse_locust_failures,
    parse_locust_history,
    parse_locust_stats,
)
from stability_lib.ingest.records import IngestError, LoadRun, RequestStats

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"
LOCUST = FIXTURES / "locust"
K6 = FIXTURES / "k6"
ROUND_NAMES = ("GET /api/threads", "GET /api/threads/[missing]", "GET /health", "POST /api/threads")
JUDGED = ["GET /health", "GET /api/threads", "POST /api/threads"]  # not the deliberate 404
# Locust: 2 users x 150 rounds of the four round requests; one register and one login each; the 404 always fails.
LOCUST_COUNTS = {
    "GET /api/threads": (300, 0),
    "GET /api/threads/[missing]": (300, 300),
    "GET /health": (300, 0),
    "POST /api/threads": (300, 0),
    "login": (2, 0),
    "register": (2, 0),
}


def _counts(run: LoadRun) -> dict[str, tuple[int, int]]:
    return {r.name: (r.requests, r.failures) for r in run.requests}


def _by_id(claims: list) -> dict[str, object]:
    return {c.id.removeprefix("performance.external."): c for c in claims}


def _cfg(**kw: object) -> ExternalPerformanceConfig:
    return ExternalPerformanceConfig.model_validate(kw)


# ---------------------------------------------------------------- Locust CSV, real files


@pytest.mark.parametrize("prefix", ["baseline", "candidate_slow", "candidate_errors"])
def test_locust_stats_exact_counts(prefix: str) -> None:
    requests, aggregated = parse_locust_stats((LOCUST / f"{prefix}_stats.csv").read_text())
    assert {r.name: (r.requests, r.failures) for r in requests} == LOCUST_COUNTS
    assert aggregated is not None and (aggregated.requests, aggregated.failures) == (1204, 300)
    failures = parse_locust_failures((LOCUST / f"{prefix}_failures.csv").read_text())
    assert [(f.name, f.occurrences) for f in failures] == [("GET /api/threads/[missing]", 300)]
    assert "404 Client Error" in failures[0].error
    history = parse_locust_history((LOCUST / f"{prefix}_stats_history.csv").read_text())
    assert (history.last_total_requests, history.last_total_failures) == (1204, 300)
    assert set(ROUND_NAMES) <= set(history.names)


def test_locust_exceptions_counted() -> None:
    assert parse_locust_exceptions((LOCUST / "baseline_exceptions.csv").read_text()) == ()
    errors = parse_locust_exceptions((LOCUST / "candidate_errors_exceptions.csv").read_text())
    # raised after rounds 10, 20 ... 150 of each of 2 users, grouped by traceback
    assert sum(e.count for e in errors) == 30
    assert errors[0].message == "fixture: scripted error after round 10"


def test_locust_percentile_ranks_follow_locust() -> None:
    requests, _ = parse_locust_stats((LOCUST / "baseline_stats.csv").read_text())
    health = next(r for r in requests if r.name == "GET /health")
    by_level = {p.level: p for p in health.quantiles}
    # locust: the rounded latency of rank floor(n * p) + 1; min and max measured
    assert (by_level[0.5].rank_low, by_level[0.95].rank_low, by_level[1.0].rank_low) == (151, 286, 300)
    assert by_level[0.5].half_width == 0.5 and by_level[0.0].half_width == 0.0


# ---------------------------------------------------------------- k6, real files


@pytest.mark.parametrize("name", ["baseline", "candidate_slow", "candidate_errors"])
def test_k6_points_exact_counts(name: str) -> None:
    run = parse_k6_points((K6 / f"{name}.points.json.gz").read_bytes(), name)
    # 2 VUs x 100 iterations of four requests; each VU registers and logs in once
    assert _counts(run) == {
        "GET /api/threads": (200, 0),
        "GET /api/threads/[missing]": (200, 200),
        "GET /health": (200, 0),
        "POST /api/threads": (200, 0),
        "login": (2, 0),
        "register": (2, 0),
    }
    assert all(len(r.samples or ()) == r.requests for r in run.requests)
    assert run.iterations == 200 and run.dropped_iterations == 0
    checks = {c.name: (c.passes, c.fails) for c in run.checks or ()}
    expected = {"missing thread answers 404": (200, 0)}
    if name == "candidate_errors":
        expected["missing thread is found"] = (0, 200)
    assert checks == expected
    assert run.script_errors is None  # the points cannot tell


def test_k6_console_counts_exceptions_and_interruptions() -> None:
    clean = parse_k6_log((K6 / "baseline.console.txt").read_text())
    assert clean.errors == () and clean.interrupted_iterations == 0
    errors = parse_k6_log((K6 / "candidate_errors.console.txt").read_text())
    # iterations 9, 19 ... 99 of each of 2 VUs
    assert sum(e.count for e in errors.errors) == 20 and errors.interrupted_iterations == 0
    assert all(e.message.startswith("Error: fixture: scripted error in iteration") for e in errors.errors)
    assert parse_k6_log((K6 / "interrupted.console.txt").read_text()).interrupted_iterations == 2


def test_k6_log_formats() -> None:
    text = (
        'time="2026-12-01T04:08:17Z" level=error msg="Error: boom\\n\\tat default (file:///s.js:45:11(111))\\n" '
        "executor=per-vu-iterations scenario=fixture source=stacktrace\n"
        'time="2026-12-01T04:08:17Z" level=error msg="thresholds on metrics \'checks\' have been crossed"\n'
    )
    parsed = parse_k6_log(text)
    assert [(e.message, e.count) for e in parsed.errors] == [("Error: boom", 1)]
    assert parsed.interrupted_iterations is None  # no progress line: unknown, not zero
    # --log-output=file=FILE --log-format=json, as k6 1.1.0 wrote it
    line = (
        '{"executor":"per-vu-iterations","level":"error","msg":"Error: fixture: scripted error in iteration 9\\n'
        '\\tat default (file:///k6_script.js:48:11(121))\\n","scenario":"fixture","source":"stacktrace",'
        '"time":"2026-12-01T04:09:06Z"}\n'
    )
    assert [e.count for e in parse_k6_log(line * 3).errors] == [3]


@pytest.mark.parametrize("kind", ["summary_export", "handle_summary"])
def test_k6_summary_both_shapes(kind: str) -> None:
    run = parse_k6_summary((K6 / f"candidate_errors.{kind}.json").read_text(), kind)
    assert _counts(run) == {"all requests": (804, 200)}
    assert run.iterations == 200 and run.dropped_iterations == 0
    assert {c.name.lstrip(":"): (c.passes, c.fails) for c in run.checks or ()} == {
        "missing thread answers 404": (200, 0),
        "missing thread is found": (0, 200),
    }
    # Both thresholds passed, in either shape (--summary-export writes false for a passed one).
    assert {(t.metric, t.expression, t.ok) for t in run.thresholds} == {
        ("http_req_failed", "rate<0.5", True),
        ("checks", "rate>0.4", True),
    }
    levels = {p.level for p in run.requests[0].quantiles}
    assert {0.0, 0.5, 0.9, 0.95, 0.99, 1.0} <= levels


def test_k6_summary_crossed_threshold_is_read_in_both_shapes() -> None:
    legacy = {"metrics": {"checks": {"passes": 1, "fails": 9, "value": 0.1, "thresholds": {"rate>0.9": True}}}}
    modern = {
        "metrics": {
            "checks": {"type": "rate", "values": {"passes": 1, "fails": 9}, "thresholds": {"rate>0.9": {"ok": False}}}
        }
    }
    for doc in (legacy, modern):
        run = parse_k6_summary(json.dumps(doc))
        assert [t.ok for t in run.thresholds] == [False]
        claims = _by_id(judge_external(run, None, _cfg(format="k6_summary", candidate="x"))[0])
        assert claims["thresholds"].status is Status.FAIL


# ---------------------------------------------------------------- claims on the real files


def test_locust_slow_candidate_fails_on_latency() -> None:
    cfg = _cfg(format="locust_csv", candidate="locust/candidate_slow", baseline="locust/baseline", requests=JUDGED)
    claims, data = external_performance_claims(cfg, FIXTURES)
    by_id = _by_id(claims)
    # POST /api/threads was slowed by 100 ms: its p95 interval lies above 1.10
    slow = by_id["latency.POST /api/threads"]
    assert slow.status is Status.FAIL, slow.statistic
    assert "REGRESSION" in slow.statistic and "percentiles only" in slow.statistic
    assert slow.figure is not None and slow.figure.low > 1.1
    assert by_id["script"].status is Status.PASS
    assert section_status(claims) is Status.FAIL
    assert data["candidate"]["requests"][0]["requests"] == 300
    assert data["candidate_extra"]["history"]["last_total_requests"] == 1204


def test_locust_script_exceptions_fail() -> None:
    cfg = _cfg(
        format="locust_csv",
        candidate="locust/candidate_errors",
        baseline="locust/baseline",
        requests=JUDGED,
        tolerance=2.0,
        tolerated_failure_rate=0.05,
    )
    claims, _ = external_performance_claims(cfg, FIXTURES)
    by_id = _by_id(claims)
    assert all(by_id[f"failures.{n}"].status is Status.PASS for n in JUDGED)
    assert by_id["script"].status is Status.FAIL
    assert "30 exceptions" in by_id["script"].statistic
    assert section_status(claims) is Status.FAIL


def test_failed_requests_fail() -> None:
    cfg = _cfg(format="locust_csv", candidate="locust/baseline", baseline="locust/baseline")
    by_id = _by_id(external_performance_claims(cfg, FIXTURES)[0])
    missing = by_id["failures.GET /api/threads/[missing]"]
    assert missing.status is Status.FAIL
    assert missing.figure is not None and (missing.figure.k, missing.figure.n) == (300, 300)


def test_k6_points_judged_by_the_sample_rule() -> None:
    slow = _cfg(format="k6_json", candidate="k6/candidate_slow.points.json.gz", baseline="k6/baseline.points.json.gz")
    by_id = _by_id(external_performance_claims(slow.model_copy(update={"requests": JUDGED}), FIXTURES)[0])
    post = by_id["latency.POST /api/threads"]
    assert post.status is Status.FAIL and "bootstrap" in post.figure.test
    same = slow.model_copy(
        update={
            "candidate": "k6/baseline.points.json.gz",
            "requests": JUDGED,
            "candidate_log": "k6/baseline.console.txt",
            "tolerance": 0.5,  # the same samples: ratio 1, within an interval as wide as the noise
        }
    )
    claims = external_performance_claims(same, FIXTURES)[0]
    by_id = _by_id(claims)
    assert all(by_id[f"latency.{n}"].status is Status.PASS for n in JUDGED)
    assert by_id["script"].status is Status.PASS  # the log is there and shows no exception


def test_k6_summary_thresholds_passed_while_script_threw_is_not_a_pass() -> None:
    """The summary says both thresholds held; the script threw 20 times and 200 checks failed."""
    for kind in ("summary_export", "handle_summary"):
        cfg = _cfg(
            format="k6_summary",
            candidate=f"k6/candidate_errors.{kind}.json",
            baseline=f"k6/baseline.{kind}.json",
            tolerated_failure_rate=0.5,  # even with the 404s tolerated
        )
        claims = external_performance_claims(cfg, FIXTURES)[0]
        by_id = _by_id(claims)
        assert by_id["thresholds"].status is Status.PASS and not by_id["thresholds"].required
        assert by_id["script"].status is Status.FAIL
        assert "200 of 400 checks failed" in by_id["script"].statistic
        assert section_status(claims) is Status.FAIL
        with_log = cfg.model_copy(update={"candidate_log": "k6/candidate_errors.console.txt"})
        assert "20 exceptions" in _by_id(external_performance_claims(with_log, FIXTURES)[0])["script"].statistic


def test_k6_summary_without_log_cannot_pass() -> None:
    """Clean checks and held thresholds, but no log: whether the script threw is unknown."""
    cfg = _cfg(
        format="k6_summary",
        candidate="k6/baseline.handle_summary.json",
        baseline="k6/baseline.summary_export.json",
        tolerated_failure_rate=0.5,
    )
    claims = external_performance_claims(cfg, FIXTURES)[0]
    script = _by_id(claims)["script"]
    assert script.status is Status.INCONCLUSIVE and "log" in script.statistic
    assert section_status(claims) is not Status.PASS
    logged = cfg.model_copy(update={"candidate_log": "k6/baseline.console.txt"})
    assert _by_id(external_performance_claims(logged, FIXTURES)[0])["script"].status is Status.PASS


def test_failure_rate_higher_than_baseline_fails() -> None:
    def run(failures: int) -> LoadRun:
        return LoadRun("locust", "x", (RequestStats("GET /a", "GET", 2000, failures),), script_errors=())

    cfg = _cfg(format="locust_csv", candidate="x", tolerated_failure_rate=0.05)
    worse = _by_id(judge_external(run(40), run(2), cfg)[0])["failures.GET /a"]
    # 2.0% is within the tolerated 5% by its own bound, but 40 vs 2 of 2000 is significantly worse
    assert worse.status is Status.FAIL and "significantly more often" in worse.statistic
    same = _by_id(judge_external(run(2), run(2), cfg)[0])["failures.GET /a"]
    assert same.status is Status.PASS
    over = _by_id(judge_external(run(400), None, cfg)[0])["failures.GET /a"]
    assert over.status is Status.FAIL  # 20% against a tolerated 5%


# ---------------------------------------------------------------- no evidence, bad input


def test_zero_requests_is_inconclusive(tmp_path: Path) -> None:
    header = (LOCUST / "baseline_stats.csv").read_text().splitlines()[0]
    (tmp_path / "empty_stats.csv").write_text(header + "\n,Aggregated,0,0,0,0.0,0,0,0,0.0,0.0" + ",N/A" * 11 + "\n")
    (tmp_path / "empty_exceptions.csv").write_text("Count,Message,Traceback,Nodes\n")
    (tmp_path / "nothing.json").write_bytes(b"")
    for cfg in (
        _cfg(format="locust_csv", candidate="empty", baseline="empty"),
        _cfg(format="k6_json", candidate="nothing.json", baseline="nothing.json"),
    ):
        claims = external_performance_claims(cfg, tmp_path)[0]
        assert _by_id(claims)["evidence"].status is Status.INCONCLUSIVE
        assert section_status(claims) is Status.INCONCLUSIVE


def test_unreadable_files_are_inconclusive_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "bad_stats.csv").write_text("this is,not\nlocust,output\n")
    (tmp_path / "big.json").write_bytes(b"{}" * 1024)
    (tmp_path / "other.json").write_text('{"a": 1}')
    os.mkfifo(tmp_path / "fifo.json")
    cases = {
        "missing": _cfg(format="locust_csv", candidate="nowhere"),
        "format": _cfg(format="locust_csv", candidate="bad"),
        "size": _cfg(format="k6_summary", candidate="big.json", max_file_bytes=1024),
        "fifo": _cfg(format="k6_summary", candidate="fifo.json"),
        "json": _cfg(format="k6_summary", candidate="big.json"),
        "summary": _cfg(format="k6_summary", candidate="other.json"),
    }
    reasons = {
        "missing": "no such file",
        "format": "no column",
        "size": "more than the 1024",
        "fifo": "not a regular",
        "json": "not JSON",
        "summary": "no 'metrics'",
    }
    for case, cfg in cases.items():
        claims, data = external_performance_claims(cfg, tmp_path)
        assert [c.status for c in claims] == [Status.INCONCLUSIVE], case
        assert reasons[case] in claims[0].statistic


def test_unreadable_baseline_still_judges_the_candidate(tmp_path: Path) -> None:
    cfg = _cfg(format="locust_csv", candidate=str(LOCUST / "candidate_errors"), baseline="nowhere")
    by_id = _by_id(external_performance_claims(cfg, tmp_path)[0])
    assert by_id["baseline_files"].status is Status.INCONCLUSIVE
    assert "could not be read" in by_id["baseline"].statistic
    assert by_id["script"].status is Status.FAIL


def test_gzip_is_decompressed_within_its_cap() -> None:
    bomb = gzip.compress(b"\n" * 200_000)
    assert len(maybe_gunzip(bomb, "x", cap=200_000)) == 200_000
    with pytest.raises(IngestError, match="decompressed"):
        maybe_gunzip(bomb, "x", cap=100_000)


def test_read_capped_refuses_a_file_over_the_cap(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 2048)
    assert len(read_capped(tmp_path / "f", 2048)) == 2048
    with pytest.raises(IngestError, match="more than"):
        read_capped(tmp_path / "f", 2047)


def test_names_stay_data() -> None:
    text = (LOCUST / "baseline_stats.csv").read_text().replace("GET /health", "<script>alert(1)</script>")
    run = locust_run("x", text, exceptions_text="Count,Message,Traceback,Nodes\n")
    assert "<script>alert(1)</script>" in _counts(run)
    long = text.replace("<script>alert(1)</script>", "n" * 5000)
    assert max(len(r.name) for r in locust_run("x", long).requests) == 500


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("Type,Name,Request Count,Failure Count,Min Response Time,Max Response Time,50%\nGET,a,1\n", "fields"),
        (
            "Type,Name,Request Count,Failure Count,Min Response Time,Max Response Time,50%\nGET,a,1,2,1,1,1\n",
            "failures in",
        ),
        ("Type,Name,Request Count,Failure Count,Min Response Time,Max Response Time,50%\nGET,a,x,0,1,1,1\n", "whole"),
        (
            "Type,Name,Request Count,Failure Count,Min Response Time,Max Response Time,50%\nGET,a,1,0,1,1,nan\n",
            "latency",
        ),
        ("Type,Name,Request Count,Failure Count,Min Response Time,Max Response Time\n", "percentile"),
    ],
)
def test_bad_locust_stats_are_refused(text: str, message: str) -> None:
    with pytest.raises(IngestError, match=message):
        parse_locust_stats(text)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"type":"Point","metric":"http_req_duration","data":{"value":1}}\nnot json\n{}\n', "not JSON"),
        (b'{"type":"Other"}\n', "not a k6"),
        (b'{"type":"Point","metric":"http_req_duration","data":{"value":"1"}}\n', "not a number"),
        (b"\x1f\x8bnot gzip", "gzip"),
    ],
)
def test_bad_k6_points_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(IngestError, match=message):
        parse_k6_points(data)


def test_k6_points_cut_last_line_is_left_out() -> None:
    full = gzip.decompress((K6 / "baseline.points.json.gz").read_bytes())
    cut = full[: len(full) - len(full.split(b"\n")[-2]) // 2 - 1]  # half of the last record
    run = parse_k6_points(cut)
    assert any("cut off" in lim for lim in run.limits)


def test_a_request_name_the_candidate_lost_is_not_passed_over() -> None:
    def run(*names: str) -> LoadRun:
        return LoadRun("locust", "x", tuple(RequestStats(n, "GET", 100, 0) for n in names), script_errors=())

    cfg = _cfg(format="locust_csv", candidate="x")
    lost = _by_id(judge_external(run("GET /a"), run("GET /a", "GET /b"), cfg)[0])["latency.GET /b"]
    assert lost.status is Status.INCONCLUSIVE and "the candidate none" in lost.statistic


def test_report_rows_show_counts_and_verdicts() -> None:
    from stability_lib.ingest.view_rows import EXTERNAL_TABLE_HEADERS, external_table_rows

    cfg = _cfg(format="locust_csv", candidate="locust/candidate_slow", baseline="locust/baseline", requests=JUDGED)
    rows = {r[0]: r for r in external_table_rows(external_performance_claims(cfg, FIXTURES)[1])}
    assert all(len(r) == len(EXTERNAL_TABLE_HEADERS) for r in rows.values())
    post = rows["POST /api/threads"]
    assert post[1:4] == ("yes", "300 / 300", "0 / 0") and post[-1] == "REGRESSION"
    assert rows["GET /api/threads/[missing]"][1:4] == ("no", "300 / 300", "300 / 300")
    k6 = _cfg(format="k6_json", candidate="k6/candidate_slow.points.json.gz", baseline="k6/baseline.points.json.gz")
    rows = {r[0]: r for r in external_table_rows(external_performance_claims(k6, FIXTURES)[1])}
    assert rows["POST /api/threads"][6] == "median, bootstrap" and rows["POST /api/threads"][-1] == "REGRESSION"


def test_k6_without_failed_metric_cannot_show_failures() -> None:
    """k6 before 0.31 wrote no http_req_failed: no failure recorded is not zero failures."""
    line = {"type": "Point", "metric": "http_req_duration", "data": {"value": 5.0, "tags": {"name": "GET /a"}}}
    run = parse_k6_points(("\n".join([json.dumps(line)] * 30) + "\n").encode())
    assert _counts(run) == {"GET /a": (30, 0)} and not run.failures_recorded
    claim = _by_id(judge_external(run, None, _cfg(format="k6_json", candidate="x"))[0])["failures.GET /a"]
    assert claim.status is Status.INCONCLUSIVE and "http_req_failed" in claim.statistic
    summary = parse_k6_summary(json.dumps({"metrics": {"http_reqs": {"count": 30}, "http_req_duration": {"med": 5}}}))
    assert not summary.failures_recorded


def test_k6_dropped_iterations_fail_the_script_claim() -> None:
    """A real k6 run cut by maxDuration: 4 iterations never started (2 interrupted mid-way, which
    k6 writes nowhere but its console). No request was made: nothing to judge, and not a pass."""
    cfg = _cfg(format="k6_summary", candidate="k6/interrupted.summary_export.json")
    claims, data = external_performance_claims(cfg, FIXTURES)
    by_id = _by_id(claims)
    assert data["candidate"]["iterations"] == 4 and data["candidate"]["dropped_iterations"] == 4
    assert by_id["script"].status is Status.FAIL and "4 iterations dropped" in by_id["script"].statistic
    assert by_id["evidence"].status is Status.INCONCLUSIVE
    with_console = cfg.model_copy(update={"candidate_log": "k6/interrupted.console.txt"})
    script = _by_id(external_performance_claims(with_console, FIXTURES)[0])["script"]
    assert "2 iterations interrupted mid-way" in script.statistic


def test_k6_interruptions_unknown_without_the_console(tmp_path: Path) -> None:
    """A --log-output file shows exceptions but not interrupted iterations: no pass on it."""
    (tmp_path / "k6.log").write_text("")  # a clean JSON log: no exception, no progress line
    shutil.copy(K6 / "baseline.handle_summary.json", tmp_path / "summary.json")
    cfg = _cfg(format="k6_summary", candidate="summary.json", candidate_log="k6.log")
    script = _by_id(external_performance_claims(cfg, tmp_path)[0])["script"]
    assert script.status is Status.INCONCLUSIVE and "console" in script.statistic
    (tmp_path / "k6.log").write_text("running (1.0s), 0/2 VUs, 4 complete and 1 interrupted iterations\n")
    script = _by_id(external_performance_claims(cfg, tmp_path)[0])["script"]
    assert script.status is Status.FAIL and "1 iterations interrupted" in script.statistic


@pytest.mark.parametrize("prefix", ["baseline", "candidate_slow", "candidate_errors"])
def test_locust_json_histogram_exact_counts(prefix: str) -> None:
    from stability_lib.ingest.locust_csv import parse_locust_json

    run = parse_locust_json((LOCUST / f"{prefix}.json").read_text(), prefix)
    assert _counts(run) == LOCUST_COUNTS
    for stats in run.requests:  # the buckets hold every request's rounded latency, rank by rank
        buckets = stats.quantiles[1:-1]
        assert stats.histogram and buckets[0].rank_low == 1 and buckets[-1].rank_high == stats.requests
        assert all(a.rank_high + 1 == b.rank_low for a, b in zip(buckets, buckets[1:], strict=False))
    # The CSV of the same run reports the same percentiles (Locust computes both from this histogram).
    csv_requests, _ = parse_locust_stats((LOCUST / f"{prefix}_stats.csv").read_text())
    for stats in csv_requests:
        from_json = next(r for r in run.requests if r.name == stats.name).serialize()["percentiles"]
        from_csv = stats.serialize()["percentiles"]
        assert {k: from_csv[k] for k in from_json} == from_json


def test_locust_json_judges_the_median() -> None:
    cfg = _cfg(
        format="locust_json",
        candidate="locust/candidate_slow.json",
        baseline="locust/baseline.json",
        requests=JUDGED,
        candidate_log="locust/candidate_slow_exceptions.csv",
    )
    by_id = _by_id(external_performance_claims(cfg, FIXTURES)[0])
    post = by_id["latency.POST /api/threads"]
    assert post.status is Status.FAIL and "(median)" in post.statement and post.figure.what == "median"
    assert by_id["script"].status is Status.PASS
    no_log = _by_id(external_performance_claims(cfg.model_copy(update={"candidate_log": None}), FIXTURES)[0])
    assert no_log["script"].status is Status.INCONCLUSIVE
    errors = cfg.model_copy(
        update={
            "candidate": "locust/candidate_errors.json",
            "candidate_log": "locust/candidate_errors_exceptions.csv",
        }
    )
    assert _by_id(external_performance_claims(errors, FIXTURES)[0])["script"].status is Status.FAIL
