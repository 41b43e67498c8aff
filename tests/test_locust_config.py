"""The Locust engine's settings and seams, without starting Locust (fast): the command line options
become params, wrong settings are refused with a reason, the report names the engine, and our
processes never import locust or gevent (gevent monkey-patches whatever imports it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from stability_lib.cli import _engine_overrides, _parser
from stability_lib.probes.config import GoldenPathSectionConfig, WebSocketSectionConfig
from stability_lib.report import views


def test_the_engine_options_become_params_of_the_websocket_and_golden_path_sections() -> None:
    args = _parser().parse_args(
        ["run", "p.yaml", "--engine", "locust", "--locust-workers", "3", "--locust-master-bind", "0.0.0.0:5557"]
        + ["--expect-workers", "5"]
    )
    assert _engine_overrides(args, ["websocket"]) == [
        'sections.websocket.engine="locust"',
        "sections.websocket.locust_workers=3",
        'sections.websocket.locust_master_bind="0.0.0.0:5557"',
        "sections.websocket.expect_workers=5",
    ]
    assert _engine_overrides(args, ["websocket", "golden_path"])[:2] == [
        'sections.websocket.engine="locust"',
        'sections.golden_path.engine="locust"',
    ]
    assert _engine_overrides(_parser().parse_args(["run", "p.yaml"])) == []


@pytest.mark.parametrize("config", [WebSocketSectionConfig, GoldenPathSectionConfig])
@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"locust_workers": 3, "expect_workers": 2}, "counts the local workers too"),
        ({"locust_workers": 0}, "at least one worker"),
        ({"locust_master_bind": "5557"}, "HOST:PORT"),
        ({"locust_master_bind": "host:99999"}, "HOST:PORT"),
    ],
)
def test_impossible_locust_settings_are_refused(config: type, settings: dict, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        config(engine="locust", **settings)


def test_remote_workers_only_are_allowed() -> None:
    cfg = WebSocketSectionConfig(engine="locust", locust_workers=0, expect_workers=4)
    assert cfg.expect_workers == 4


def test_the_report_names_the_engine_its_workers_rate_and_losses() -> None:
    engine = {
        "engine": "locust",
        "sides": {
            "candidate": {
                "workers": 2,
                "workers_seen": 2,
                "sessions_seen": 963,
                "rate_per_s": 71.25,
                "sessions_lost": 37,
                "note": "1 worker(s) lost mid-run; 37 sessions leased to them never reported",
            }
        },
    }
    html = "".join(str(p) for p in views._engine_parts(engine))
    assert "Engine: Locust" in html and "71.2" in html and "963" in html and "37 sessions leased" in html
    assert views._engine_parts(None) == [] and views._engine_parts({"engine": "own"}) == []


def test_our_processes_never_import_locust_or_gevent() -> None:
    code = (
        "import sys, json, stability_lib, stability_lib.scale.launcher, stability_lib.sections.websocket, "
        "stability_lib.scale.golden_launcher, stability_lib.sections.golden_path, stability_lib.cli\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_the_engine_options_do_not_switch_on_a_soak_the_params_lack(tmp_path) -> None:
    from stability_lib.cli import main

    params = tmp_path / "health.yaml"
    params.write_text("title: t\ntarget: {base_url: 'http://127.0.0.1:9'}\nsections:\n  health: {}\n")
    assert main(["run", str(params), "--engine", "locust", "--out", str(tmp_path / "run")]) == 3
    assert not (tmp_path / "run").exists()
