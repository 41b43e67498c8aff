"""The params files we ship are valid: what a user copies must run."""

from __future__ import annotations

from pathlib import Path

import pytest

from stability_lib import load_params

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["demo.yaml", "staging.example.yaml"])
def test_shipped_params_validate(name: str) -> None:
    env = {
        k: "http://127.0.0.1:1" if k.endswith("URL") else "placeholder-secret"
        for k in (
            "DEMO_CANDIDATE_URL",
            "DEMO_BASELINE_URL",
            "DEMO_USER_PASSWORD",
            "STAGING_URL",
            "STAGING_BASELINE_URL",
            "STAGING_TEST_PASSWORD",
            "STAGING_API_KEY",
            "DEMO_CANDIDATE_DB",
            "DEMO_BASELINE_DB",
        )
    }
    params, _ = load_params(REPO / "params" / name, env=env)
    assert params.enabled_sections()
    assert params.scenario is not None
