from __future__ import annotations

import json
from pathlib import Path

import pytest

from stability_lib import Claim, EvidenceError, SectionResult, Status
from stability_lib.execution.baseline import fingerprint_differences, load_baseline, save_baseline
from stability_lib.execution.evidence import read_evidence, write_evidence


def result() -> SectionResult:
    claim = Claim("health.x", "health", "s", Status.PASS, "1 of 1", details={"nan": float("nan")})
    return SectionResult("health", Status.PASS, claims=(claim,), data={"values": [1.5, float("inf")]})


def test_round_trip_and_no_temporary_files_left(tmp_path: Path) -> None:
    path = write_evidence(tmp_path, result())
    back = read_evidence(path)
    assert back.claims[0].id == "health.x" and back.status is Status.PASS
    assert json.loads(path.read_text())["data"]["values"] == [1.5, None]  # JSON has no Infinity
    assert [p.name for p in path.parent.iterdir()] == ["health.json"]


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    path = write_evidence(tmp_path, result())
    doc = json.loads(path.read_text())
    doc["schema_version"] = 99
    path.write_text(json.dumps(doc))
    with pytest.raises(EvidenceError, match="schema_version"):
        read_evidence(path)


def test_baseline_save_and_load(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_evidence(run, result())
    (run / "params.yaml").write_text("title: t\n")
    saved = save_baseline(run, "v1", store=tmp_path / "store")
    loaded = load_baseline("v1", store=tmp_path / "store")
    assert loaded.path == saved.resolve() and "health" in loaded.evidence
    assert load_baseline(run, store=tmp_path / "none").evidence["health"].status is Status.PASS
    with pytest.raises(EvidenceError):
        load_baseline("missing", store=tmp_path / "store")


def test_fingerprint_differences_name_what_changed() -> None:
    a = {"host": "a", "python": "3.11.7", "packages": {"numpy": "2.0"}, "scenario_hash": "x"}
    b = {"host": "b", "python": "3.11.7", "packages": {"numpy": "2.1"}, "scenario_hash": "x"}
    diffs = fingerprint_differences(a, b)
    assert any("host" in d for d in diffs) and any("numpy" in d for d in diffs)
    assert fingerprint_differences(a, dict(a)) == []


def test_a_section_keeps_the_figure_of_the_claims_it_adopts(tmp_path: Path) -> None:
    # The front page shows each claim's decisive figure: it must survive the section's adopt().
    from stability_lib.core.models import Figure
    from stability_lib.execution.params import validate_params
    from stability_lib.execution.section import Section

    params = validate_params({"title": "t", "environment": "local", "target": {"base_url": "http://127.0.0.1:1"}})
    section = Section("health", tmp_path, params, tmp_path)
    figure = Figure(kind="rate", k=0, n=20, high=0.14)
    claim = Claim("health.x", "health", "s", Status.PASS, "0 of 20", figure=figure)
    result = section.finish([claim])
    assert result.claims[0].figure == figure
    assert read_evidence(tmp_path / "evidence" / "health.json").claims[0].figure == figure
