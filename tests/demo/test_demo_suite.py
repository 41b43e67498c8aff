"""The service's own pytest suite: green on the healthy build, red on the faults it should catch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stability_lib.demo import SUITE_DIR, SUITE_TARGET_ENV_VAR, serve

RUN_TIMEOUT_S = 60.0


def run_suite(url: str | None, *args: str, junit: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != SUITE_TARGET_ENV_VAR}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # the suite needs no plugin; loading ours costs ~2.4 s a run
    if url is not None:
        env[SUITE_TARGET_ENV_VAR] = url
    command = [sys.executable, "-m", "pytest", *args]
    if junit is not None:
        command.append(f"--junitxml={junit}")
    return subprocess.run(command, cwd=SUITE_DIR, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def test_every_category_passes_against_the_candidate(tmp_path: Path) -> None:
    junit = tmp_path / "out.xml"
    with serve(variant="candidate") as url:
        result = run_suite(url, junit=junit)
    assert result.returncode == 0, result.stdout + result.stderr
    xml = junit.read_text()
    assert 'failures="0"' in xml and 'errors="0"' in xml and 'skipped="0"' in xml
    for marker in ("database", "auth", "websocket", "api"):
        assert f"test_{marker}" in xml


@pytest.mark.parametrize(
    ("faults", "marker"),
    [
        (["auth_bypass"], "auth"),
        (["api_break=field_removed"], "api"),
        (["api_break=param_required"], "api"),
        (["api_break=endpoint_removed"], "api"),
    ],
)
def test_a_category_fails_against_its_fault(faults: list[str], marker: str) -> None:
    with serve(faults=faults) as url:
        caught = run_suite(url, "-m", marker)
        others = run_suite(url, "-m", f"not {marker} and not database")
    assert caught.returncode == 1, caught.stdout
    assert "failed" in caught.stdout
    # the fault is specific: the unrelated categories stay green
    assert others.returncode == 0, others.stdout


def test_without_a_target_everything_is_skipped_with_a_reason() -> None:
    result = run_suite(None, "-rs")
    assert result.returncode == 0
    assert "skipped" in result.stdout and "passed" not in result.stdout
    assert f"{SUITE_TARGET_ENV_VAR} is not set" in result.stdout
