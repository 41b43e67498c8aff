"""A section stopped before its end writes evidence that judges what it did; when that judging fails (a bug of
ours), the evidence says so instead of being dropped without a word.

Before, each stopped section wrapped that write in ``contextlib.suppress(Exception)``: a failure there left no
evidence file and nothing said why (the summary only showed the section as missing). Now
``Section.finish_stopped`` writes an INCONCLUSIVE ``<section>.runs_finished`` naming the interrupt and the
failure, with secret values scrubbed like any evidence; the interrupt, not the failure, still goes on.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_golden_interrupt import SCENARIO, section_params

from stability_lib import sections
from stability_lib.execution.section import Section, open_section
from stability_lib.probes import golden as golden_probe
from stability_lib.probes.soak import SoaksSoFar

# The modules, not the section functions that stability_lib.sections exports under the same names.
golden_section = importlib.import_module("stability_lib.sections.golden_path")
websocket_section = importlib.import_module("stability_lib.sections.websocket")

PASSWORD_ENV = "STOPPED_EVIDENCE_TEST_PASSWORD"
PASSWORD = "pw-stopped-evidence-8c41e2"


def _section(tmp_path: Path, name: str, url: str = "http://127.0.0.1:9") -> Section:
    scenario: dict[str, Any] = {**SCENARIO, "users": {**SCENARIO["users"], "password": "${" + PASSWORD_ENV + "}"}}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(section_params(name, url, scenario)))
    return open_section(name, tmp_path / "run", params)


def _written(tmp_path: Path, name: str) -> dict[str, Any]:
    text = (tmp_path / "run" / "evidence" / f"{name}.json").read_text()
    assert PASSWORD not in text
    return dict(json.loads(text))


def _boom(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError(f"judging broke near {PASSWORD}")


def test_a_failure_while_judging_a_stopped_section_is_said_in_its_evidence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    sec = _section(tmp_path, "golden_path")
    sec.finish_stopped(KeyboardInterrupt(), _boom)  # does not raise: the interrupt is what goes on
    written = _written(tmp_path, "golden_path")
    assert written["status"] == "INCONCLUSIVE"
    [claim] = written["claims"]
    assert claim["id"] == "golden_path.runs_finished" and claim["status"] == "INCONCLUSIVE"
    assert claim["statistic"].startswith("stopped by KeyboardInterrupt; what it had done could not be judged")
    assert "RuntimeError: judging broke near" in claim["statistic"]
    assert claim["details"]["stopped_by"] == "KeyboardInterrupt"


def test_a_stopped_section_whose_judging_works_writes_what_it_judged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    sec = _section(tmp_path, "golden_path")
    from stability_lib.core.models import Status

    claim = sec.claim("runs_finished", "The golden-path runs ran to their end", Status.INCONCLUSIVE, "stopped")
    sec.finish_stopped(KeyboardInterrupt(), lambda: sec.finish([claim]))
    assert [c["statistic"] for c in _written(tmp_path, "golden_path")["claims"]] == ["stopped"]


def test_the_golden_path_section_stopped_with_its_judging_broken_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The whole section as a notebook runs it: the runs are interrupted, then judging what they did fails.
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)

    def interrupted(*_args: Any, **_kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(golden_probe, "run_golden_path_sync", interrupted)
    monkeypatch.setattr(golden_section, "golden_so_far", _boom)
    with pytest.raises(KeyboardInterrupt):
        sections.golden_path(_section(tmp_path, "golden_path"))
    [claim] = _written(tmp_path, "golden_path")["claims"]
    assert claim["status"] == "INCONCLUSIVE" and "RuntimeError: judging broke near" in claim["statistic"]


def test_the_websocket_soak_stopped_with_its_judging_broken_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    monkeypatch.setattr(websocket_section, "_candidate_so_far", _boom)
    sec = _section(tmp_path, "websocket")
    scenario = websocket_section._scenario(sec)
    websocket_section._write_stopped(sec, scenario, SoaksSoFar(), KeyboardInterrupt(), sequential=True)
    [claim] = _written(tmp_path, "websocket")["claims"]
    assert claim["id"] == "websocket.runs_finished" and claim["status"] == "INCONCLUSIVE"
    assert "RuntimeError: judging broke near" in claim["statistic"]
