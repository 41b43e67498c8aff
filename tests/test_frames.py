"""load_run / load_runs: real run directories (stored fixtures cut from demo runs) as DataFrames."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from stability_lib.report import frames as _frames
from stability_lib.report.frame_columns import COLUMNS, describe_columns
from stability_lib.report.frames import RunFormatError, load_run, load_runs

RUNS = Path(__file__).parent / "fixtures" / "runs"
FRAMES = ("claims", "sections", "sessions", "latency", "tests", "contract_changes", "warnings")


def _summary(name: str) -> dict:
    return json.loads((RUNS / name / "summary.json").read_text(encoding="utf-8"))


def _copy(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(RUNS / name, tmp_path / name))


def _assert_documented_columns(run) -> None:
    for name in FRAMES:
        frame = getattr(run, name)
        assert list(frame.columns) == list(COLUMNS[name]), name
        for column, (dtype, _) in COLUMNS[name].items():
            assert str(frame[column].dtype) == dtype, (name, column)


def test_pass_run_loads_every_kind_of_record() -> None:
    run = load_run(RUNS / "pass")
    summary = _summary("pass")
    assert run.verdict == "PASS" and run.problems == ()
    _assert_documented_columns(run)
    # Every claim of summary.json, one row each, statuses as written.
    assert list(run.claims.claim_id) == [c["id"] for c in summary["claims"]]
    assert list(run.claims.status) == [c["status"] for c in summary["claims"]]
    assert run.claims.figure_kind.notna().any()  # current schema: structured figures
    # Sessions of the soak on both sides, with outcome, close code, timings and user.
    soak = run.sessions[run.sessions.section == "websocket"]
    assert set(soak.side) == {"candidate", "baseline"}
    ws = json.loads((RUNS / "pass" / "evidence" / "websocket.json").read_text())["data"]
    first = ws["candidate"]["records"][0]
    row = soak[soak.session_id == first["session_id"]].iloc[0]
    assert (row.user, row.outcome, row.close_code, row.connect_s) == (
        first["user"],
        first["outcome"]["kind"],
        first["close_code"],
        first["connect_s"],
    )
    started = pd.Timestamp(ws["candidate"]["started_at"]) + pd.Timedelta(seconds=first["start_offset_s"])
    assert abs(row.started_at - started) < pd.Timedelta(milliseconds=1)
    # Every performance sample on both sides, in order.
    perf = json.loads((RUNS / "pass" / "evidence" / "performance.json").read_text())["data"]["samples"]
    got = run.latency[run.latency.section == "performance"]
    assert len(got) == sum(len(v) for side in perf.values() for v in side.values())
    op = next(iter(perf["baseline"]))
    sel = got[(got.side == "baseline") & (got.operation == op)].sort_values("index")
    assert list(sel.ms) == perf["baseline"][op]
    # Every test case of every copied JUnit file.
    suites = json.loads((RUNS / "pass" / "evidence" / "suites.json").read_text())["data"]["categories"]
    assert len(run.tests) == sum(c["counts"]["total"] for c in suites)
    assert set(run.tests.source) == {"junit"} and set(run.tests.status) == {"passed"}
    assert run.started_at is not None and run.info.verdict.iloc[0] == "PASS"


def test_fail_run_answers_what_failed() -> None:
    run = load_run(RUNS / "fail")
    assert run.verdict == "FAIL"
    failed = set(run.claims[run.claims.status == "FAIL"].claim_id)
    assert {"suites.api", "isolation.no_cross_user_data", "contract.no_breaking_api_changes"} <= failed
    # The failing tests, by category, with their messages.
    bad = run.tests[run.tests.status == "failed"]
    assert len(bad) == 2 and set(bad.category) == {"api"} and bad.message.str.len().gt(0).all()
    # The breaking contract changes behind the contract claim.
    assert len(run.contract_changes) > 0 and set(run.contract_changes.level) == {"ERR"}
    assert run.contract_changes.rule.eq("response-property-removed").all()


def test_crashed_section_loads_with_empty_frames_for_it() -> None:
    run = load_run(RUNS / "crashed-section")
    health = run.sections.set_index("section").loc["health"]
    assert health.status == "ERROR" and "AttributeError" in health.error
    ran = run.claims[run.claims.claim_id == "health.ran"].iloc[0]
    assert ran.status == "ERROR" and "AttributeError" in ran.statistic
    for name in ("sessions", "latency"):
        frame = getattr(run, name)
        assert len(frame) > 0 and not (frame.section == "health").any()
    _assert_documented_columns(run)


def test_section_with_an_error_claim_keeps_its_other_data(tmp_path: Path) -> None:
    run_dir = _copy("fail", tmp_path)
    file = run_dir / "evidence" / "suites.json"
    doc = json.loads(file.read_text())
    doc["status"] = "ERROR"  # as section_status makes it when one category could not start
    doc["claims"][0]["status"] = "ERROR"
    file.write_text(json.dumps(doc))
    run = load_run(run_dir)
    assert run.sections.set_index("section").loc["suites", "status"] == "ERROR"
    assert len(run.tests) == len(load_run(RUNS / "fail").tests) > 0


def test_older_schema_run_loads_without_figures() -> None:
    """Evidence written before claims carried a structured figure (before 926c7af): still schema 1."""
    old, new = load_run(RUNS / "schema1-before-figure"), load_run(RUNS / "pass")
    assert "figure" not in json.dumps(_summary("schema1-before-figure")["claims"])
    assert list(old.claims.claim_id) == list(new.claims.claim_id)
    assert old.claims.filter(like="figure_").isna().all().all()
    assert len(old.sessions) == len(new.sessions) and len(old.latency) == len(new.latency)
    _assert_documented_columns(old)


@pytest.mark.parametrize(("version", "says"), [(2, "newer tool"), (0, "reads 1"), (None, "reads 1")])
def test_another_evidence_schema_version_is_refused_with_the_reason(tmp_path: Path, version, says) -> None:
    run_dir = _copy("pass", tmp_path)
    file = run_dir / "evidence" / "websocket.json"
    doc = json.loads(file.read_text())
    if version is None:
        del doc["schema_version"]
    else:
        doc["schema_version"] = version
    file.write_text(json.dumps(doc))
    with pytest.raises(RunFormatError, match=says) as info:
        load_run(run_dir)
    assert "websocket.json" in str(info.value)


def test_not_a_run_and_oversized_files_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RunFormatError, match="not a run directory"):
        load_run(tmp_path)
    run_dir = _copy("pass", tmp_path)
    monkeypatch.setattr(_frames, "MAX_EVIDENCE_BYTES", 1000)
    with pytest.raises(RunFormatError, match="larger than 1000 bytes"):
        load_run(run_dir)


def test_malformed_evidence_data_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    run_dir = _copy("pass", tmp_path)
    file = run_dir / "evidence" / "websocket.json"
    doc = json.loads(file.read_text())
    doc["data"]["candidate"] = {"records": [{"outcome": "not a mapping", "close_code": "x"}, 7]}
    file.write_text(json.dumps(doc))
    (run_dir / "suites" / "api.junit.xml").write_text("<testsuite><testcase")
    run = load_run(run_dir)
    assert any("api.junit.xml" in p for p in run.problems)
    odd = run.sessions[(run.sessions.section == "websocket") & (run.sessions.side == "candidate")]
    assert len(odd) == 1 and pd.isna(odd.iloc[0].close_code) and pd.isna(odd.iloc[0].outcome)


def test_missing_junit_file_falls_back_to_evidence_lists(tmp_path: Path) -> None:
    run_dir = _copy("fail", tmp_path)
    (run_dir / "suites" / "api.junit.xml").unlink()
    tests = load_run(run_dir).tests
    api = tests[tests.category == "api"]
    assert set(api.source) == {"evidence"} and (api.status == "failed").sum() == 2
    assert set(tests[tests.category != "api"].source) == {"junit"}


def test_load_runs_stacks_runs_oldest_first_and_skips_unreadable(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for name in ("fail", "pass", "crashed-section", "schema1-before-figure"):
        shutil.copytree(RUNS / name, root / name)
    fp = root / "pass" / "fingerprint.json"
    fp.write_text(json.dumps({**json.loads(fp.read_text()), "commit": "abc1234"}))
    bad = shutil.copytree(RUNS / "pass", root / "zz-newer")
    doc = json.loads((bad / "summary.json").read_text())
    (bad / "summary.json").write_text(json.dumps({**doc, "schema_version": 9}))
    (root / "not-a-run").mkdir()
    skipped: list[str] = []
    runs = load_runs(root, on_skip=skipped.append)
    assert len(runs) == 4 and len(runs.skipped) == 1 and "zz-newer" in skipped[0]
    assert runs.runs.started_at.is_monotonic_increasing
    assert list(runs.runs.columns) == list(COLUMNS["runs"])
    by_dir = runs.runs.assign(dir=runs.runs.path.map(lambda p: Path(p).name)).set_index("dir")
    assert by_dir.loc["pass", "target_version"] == "abc1234"
    assert by_dir.loc["fail", "verdict"] == "FAIL" and by_dir.loc["pass", "verdict"] == "PASS"
    assert len(runs.claims) == sum(len(load_run(root / d).claims) for d in by_dir.index)
    assert runs.problems == ()
    shutil.copytree(RUNS / "pass", root / "pass-again")
    assert any("'pass' is used by 2 run directories" in p for p in load_runs(root).problems)
    # The question a history asks: one claim's status in every run.
    per_run = runs.claims[runs.claims.claim_id == "contract.no_breaking_api_changes"].merge(runs.runs, on="run_id")
    assert dict(zip(per_run.path.map(lambda p: Path(p).name), per_run.status, strict=False))["fail"] == "FAIL"


def test_load_runs_on_an_empty_root_has_documented_empty_frames(tmp_path: Path) -> None:
    runs = load_runs(tmp_path)
    assert len(runs) == 0
    for name in FRAMES:
        assert list(getattr(runs, name).columns) == list(COLUMNS[name])


def test_every_column_is_documented() -> None:
    text = describe_columns()
    for name, columns in COLUMNS.items():
        assert f"{name}:" in text
        assert all(column in text and meaning for column, (_, meaning) in columns.items())


def test_load_runs_fills_only_the_frames_asked_for(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for name in ("fail", "pass"):
        shutil.copytree(RUNS / name, root / name)
    # Evidence is not read at all when only summary.json frames are asked for.
    (root / "pass" / "evidence" / "websocket.json").write_text("not json")
    runs = load_runs(root, frames=("claims", "warnings"))
    assert len(runs.runs) == 2 and len(runs.claims) == len(load_run(RUNS / "fail").claims) + len(
        load_run(RUNS / "pass").claims
    )
    assert len(runs.sessions) == 0 and list(runs.sessions.columns) == list(COLUMNS["sessions"])
    assert len(load_runs(root, frames=("latency",)).latency) == len(load_run(RUNS / "fail").latency)
    with pytest.raises(ValueError, match="unknown frame"):
        load_runs(root, frames=("claim",))


def test_the_data_api_is_public_and_loads_pandas_only_when_used() -> None:
    import subprocess
    import sys

    code = (
        "import sys, stability_lib as sl; assert 'pandas' not in sys.modules; "
        f"run = sl.load_run({str(RUNS / 'pass')!r}); assert 'pandas' in sys.modules; print(run.verdict)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "PASS"


def test_a_scratch_run_with_only_evidence_loads(tmp_path: Path) -> None:
    # A section notebook run by hand in JupyterLab writes evidence/ alone (no run.json, no summary).
    shutil.copytree(RUNS / "pass" / "evidence", tmp_path / "scratch" / "evidence")
    run = load_run(tmp_path / "scratch")
    assert run.run_id == "scratch" and run.verdict == ""
    assert set(run.claims.section) == {
        "health",
        "suites",
        "websocket",
        "golden_path",
        "isolation",
        "performance",
        "contract",
    }
    assert len(run.sessions) > 0 and len(run.latency) > 0
    assert "figure_value" in run.describe("claims")
