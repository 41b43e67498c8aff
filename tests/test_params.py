from __future__ import annotations

from pathlib import Path

import pytest

from stability_lib import MissingVariableError, ParamsError, load_params
from stability_lib._params import apply_overrides, redact, resolve_env

MINIMAL = """
title: t
target:
  base_url: ${URL}
sections:
  health:
    samples: 2
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_references_resolve_from_the_environment(tmp_path: Path) -> None:
    params, raw = load_params(write(tmp_path, MINIMAL), env={"URL": "http://127.0.0.1:9"})
    assert params.target.base_url == "http://127.0.0.1:9"
    assert raw["target"]["base_url"] == "${URL}"  # what goes to disk keeps the reference
    assert params.enabled_sections() == ["health"]


def test_missing_variable_is_named_with_its_field(tmp_path: Path) -> None:
    with pytest.raises(MissingVariableError) as err:
        load_params(write(tmp_path, MINIMAL), env={})
    assert "URL" in str(err.value) and "target.base_url" in str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MINIMAL + "colour: blue\n", "colour: unknown key"),
        (MINIMAL.replace("samples: 2", "samples: 2\n    sampels: 3"), "sections.health.sampels: unknown key"),
        (MINIMAL.replace("samples: 2", "samples: many"), "sections.health.samples"),
        (MINIMAL + "  nosuch: {}\n", "sections.nosuch: unknown section"),
    ],
)
def test_wrong_keys_and_types_are_refused_with_the_field_path(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ParamsError) as err:
        load_params(write(tmp_path, text), env={"URL": "http://127.0.0.1:9"})
    assert expected in str(err.value)


def test_overrides_set_nested_values_as_yaml() -> None:
    raw = apply_overrides({"sections": {"health": {"samples": 2}}}, ["sections.health.samples=7", "title=x y"])
    assert raw["sections"]["health"]["samples"] == 7 and raw["title"] == "x y"
    with pytest.raises(ParamsError):
        apply_overrides({}, ["novalue"])


def test_redaction_keeps_references_and_hides_literal_secrets() -> None:
    shown = redact({"auth": {"password": "hunter2", "token": "${TOKEN}"}, "user": "bob"})
    assert shown == {"auth": {"password": "***", "token": "${TOKEN}"}, "user": "bob"}


def test_resolve_env_leaves_non_strings_alone() -> None:
    assert resolve_env({"a": [1, "${X}"], "b": None}, {"X": "y"}) == {"a": [1, "y"], "b": None}


def test_sections_that_act_as_users_need_a_scenario(tmp_path: Path) -> None:
    with pytest.raises(ParamsError) as err:
        load_params(write(tmp_path, MINIMAL + "  websocket: {}\n"), env={"URL": "http://127.0.0.1:9"})
    assert "sections.websocket: needs a 'scenario' block" in str(err.value)
