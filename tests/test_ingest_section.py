"""The performance section judges ingested Locust/k6 files when params name them (no live target)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stability_lib.core.errors import ParamsError
from stability_lib.core.models import Status
from stability_lib.execution.params import load_params, sections_needing_target
from stability_lib.execution.section import open_section
from stability_lib.sections.performance import performance

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"
OTHERS_OFF = "\n".join(
    f"  {name}: {{enabled: false}}"
    for name in ("health", "suites", "websocket", "golden_path", "isolation", "contract")
)


def _params(tmp_path: Path, external: str) -> Path:
    shutil.copytree(FIXTURES / "locust", tmp_path / "locust")
    shutil.copytree(FIXTURES / "k6", tmp_path / "k6")
    path = tmp_path / "params.yaml"
    path.write_text(f"title: ingested\nsections:\n{OTHERS_OFF}\n  performance:\n    external:\n{external}")
    return path


def test_section_fails_a_slow_locust_candidate_without_a_live_target(tmp_path: Path) -> None:
    params = _params(
        tmp_path,
        "      format: locust_csv\n      candidate: locust/candidate_slow\n      baseline: locust/baseline\n"
        '      requests: ["GET /health", "GET /api/threads", "POST /api/threads"]\n',
    )
    assert sections_needing_target(load_params(params)[0].sections) == []
    result = performance(open_section("performance", tmp_path / "run", params))
    assert result.status is Status.FAIL
    failed = [c.id for c in result.claims if c.status is Status.FAIL]
    assert failed == ["performance.external.latency.POST /api/threads"]
    assert result.data["external"]["candidate"]["total_requests"] == 1204


def test_section_does_not_pass_a_k6_summary_whose_script_threw(tmp_path: Path) -> None:
    params = _params(
        tmp_path,
        "      format: k6_summary\n      candidate: k6/candidate_errors.summary_export.json\n"
        "      baseline: k6/baseline.summary_export.json\n      tolerated_failure_rate: 0.5\n",
    )
    result = performance(open_section("performance", tmp_path / "run", params))
    assert result.status is Status.FAIL
    script = next(c for c in result.claims if c.id == "performance.external.script")
    assert script.status is Status.FAIL


def _refused(tmp_path: Path, performance_yaml: str) -> str:
    """The one-line refusal of params whose performance section is ``performance_yaml`` (4-space indented)."""
    path = tmp_path / "params.yaml"
    path.write_text(f"title: ingested\nsections:\n{OTHERS_OFF}\n  performance:\n{performance_yaml}")
    with pytest.raises(ParamsError) as refused:
        load_params(path)
    return str(refused.value)


def test_a_sampling_setting_beside_external_is_refused_not_ignored(tmp_path: Path) -> None:
    # tolerance 2% beside external was accepted and the files were judged at external's 10%.
    message = _refused(
        tmp_path,
        "    tolerance: 0.02\n    external: {format: locust_csv, candidate: locust/candidate, baseline: locust/baseline}\n",
    )
    assert "tolerance does not apply with external" in message


def test_a_log_for_locust_csv_is_refused_it_reads_its_own_exceptions_file(tmp_path: Path) -> None:
    message = _refused(
        tmp_path, "    external: {format: locust_csv, candidate: locust/candidate, candidate_log: out.log}\n"
    )
    assert "candidate_log: locust_csv reads the run's PREFIX_exceptions.csv" in message
