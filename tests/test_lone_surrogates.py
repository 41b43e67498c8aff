"""A lone surrogate from a service (``"\\ud800"`` in a JSON string) reaches the report as U+FFFD, never a crash.

``json.loads`` turns ``"\\ud800"`` into a Python string that cannot be written as UTF-8. Before, it went from a
response body into a claim's statistic; the notebook could not display it (the section ended as ERROR), the
report could not be written, and the run ended with exit 3 and an empty report.html although summary.json said
FAIL (found from outside). Now evidence strings are made encodable where evidence is made and read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support import QuietHandler, http_server, run_cli

from stability_lib.core.models import Status
from stability_lib.execution.evidence import encodable, read_evidence
from stability_lib.execution.section import open_section

LONE = "\ud800"
BODY = b'{"status": "bad \\ud800 value", "id": "\\udfff"}'


def test_encodable_replaces_lone_surrogates_in_every_string_and_keeps_the_rest() -> None:
    value = {"a": [f"x{LONE}y", ("ok", 1.5)], f"k{LONE}": None, "emoji": "\U0001f600"}
    assert encodable(value) == {"a": ["x\ufffdy", ("ok", 1.5)], "k\ufffd": None, "emoji": "\U0001f600"}
    json.dumps(encodable(value), ensure_ascii=False).encode("utf-8")  # writable


def test_a_claim_with_a_lone_surrogate_is_written_and_read_back(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"title": "t", "target": {"base_url": "http://127.0.0.1:9"}}))
    sec = open_section("health", tmp_path / "run", params)
    claim = sec.claim("http.x", "answers", Status.FAIL, f"expected ok, got bad {LONE} value")
    result = sec.finish([claim], {"excerpt": f"{LONE}"})
    assert result.claims[0].statistic == "expected ok, got bad \ufffd value"  # what the notebook displays
    back = read_evidence(tmp_path / "run" / "evidence" / "health.json")
    assert back.claims[0].statistic == "expected ok, got bad \ufffd value"


def test_evidence_written_by_another_writer_with_an_escaped_lone_surrogate_is_read_encodable(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"title": "t", "target": {"base_url": "http://127.0.0.1:9"}}))
    sec = open_section("health", tmp_path / "run", params)
    sec.finish([sec.claim("http.x", "answers", Status.FAIL, "PLACEHOLDER")])
    path = tmp_path / "run" / "evidence" / "health.json"
    path.write_text(path.read_text().replace("PLACEHOLDER", "\\ud800"))
    assert read_evidence(path).claims[0].statistic == "\ufffd"


class _Bad(QuietHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.reply(200, BODY)


@pytest.fixture
def bad_service() -> Iterator[str]:
    with http_server(_Bad) as url:
        yield url


@pytest.mark.slow
def test_a_health_check_on_a_body_with_a_lone_surrogate_fails_and_the_report_is_written(
    tmp_path: Path, bad_service: str
) -> None:
    params = tmp_path / "params.yaml"
    endpoint = {"path": "/status", "check": {"status": "ok"}}
    params.write_text(
        yaml.safe_dump(
            {
                "title": "lone surrogate",
                "target": {"base_url": bad_service},
                "sections": {"health": {"samples": 1, "endpoints": [endpoint]}},
            }
        )
    )
    out = tmp_path / "run"
    done = run_cli(["run", str(params), "--out", str(out), "--no-pdf"], timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr  # before: 3, "could not run: UnicodeEncodeError"
    assert "could not run" not in done.stderr
    summary = json.loads((out / "summary.json").read_text())
    [claim] = [c for c in summary["claims"] if c["id"].startswith("health.http")]
    assert claim["status"] == "FAIL" and "\ufffd" in claim["statistic"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "lone surrogate" in html and "health.http" in html  # the report, not an empty file
