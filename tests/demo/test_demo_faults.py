"""Fault specifications: parsing from strings, the environment syntax and dicts; variants."""

from __future__ import annotations

import dataclasses

import pytest

from stability_lib.core.errors import ParamsError
from stability_lib.demo import VARIANTS, ApiBreak, Faults, FaultSpecError, SlowOperation, variant_faults
from stability_lib.demo._faults import split_fault_text


def test_command_line_items_build_every_fault() -> None:
    faults = Faults.parse(
        [
            "ws_1011_rate=0.05",
            "ws_drop_rate=0.1",
            "slow=login:50",
            "slow=agent_reporting:20",
            "leak_rate=0.2",
            "api_break=field_removed",
            "api_break=endpoint_removed",
            "auth_bypass",
            "max_length_500",
            "seed=7",
        ]
    )
    assert faults.ws_1011_rate == 0.05
    assert faults.ws_drop_rate == 0.1
    assert faults.delay_ms(SlowOperation.LOGIN) == 50
    assert faults.delay_ms(SlowOperation.AGENT_REPORTING) == 20
    assert faults.delay_ms(SlowOperation.THREAD_CREATE) == 0
    assert faults.leak_rate == 0.2
    assert faults.api_breaks == {ApiBreak.FIELD_REMOVED, ApiBreak.ENDPOINT_REMOVED}
    assert faults.auth_bypass
    assert faults.max_length_500
    assert faults.seed == 7
    assert not faults.is_healthy


def test_environment_text_uses_semicolons_and_newlines() -> None:
    assert split_fault_text(" ws_1011_rate=0.05; slow=login:50\nauth_bypass ;") == [
        "ws_1011_rate=0.05",
        "slow=login:50",
        "auth_bypass",
    ]
    assert Faults.parse("ws_1011_rate=0.05;slow=login:50") == Faults.parse(["ws_1011_rate=0.05", "slow=login:50"])


def test_later_items_win_and_api_breaks_accumulate() -> None:
    faults = Faults.parse(["slow=login:50", "slow=login:10", "api_break=param_required", "auth_bypass=false"])
    assert faults.delay_ms(SlowOperation.LOGIN) == 10
    assert faults.api_breaks == {ApiBreak.PARAM_REQUIRED}
    assert not faults.auth_bypass


def test_dict_form_matches_string_form() -> None:
    from_dict = Faults.from_dict(
        {
            "ws_1011_rate": 0.05,
            "slow": {"login": 50, "thread_create": 5},
            "api_break": ["field_removed", "param_required"],
            "auth_bypass": True,
            "leak_rate": 1,
            "seed": 3,
        }
    )
    from_strings = Faults.parse(
        "ws_1011_rate=0.05;slow=login:50;slow=thread_create:5;api_break=field_removed;"
        "api_break=param_required;auth_bypass;leak_rate=1;seed=3"
    )
    assert from_dict == from_strings
    assert Faults.from_dict({"slow": ["login:50"], "api_break": "field_removed"}) == Faults.parse(
        ["slow=login:50", "api_break=field_removed"]
    )


@pytest.mark.parametrize(
    "faults",
    [
        *VARIANTS.values(),
        Faults.parse("ws_drop_rate=0.5;slow=message_store:12.5;api_break=endpoint_removed;auth_bypass;seed=9"),
        Faults.parse("max_length_500=true"),
    ],
)
def test_specs_round_trip(faults: Faults) -> None:
    assert Faults.parse(faults.to_specs()) == faults


@pytest.mark.parametrize(
    "spec",
    [
        "no_such_fault=1",
        "ws_1011_rate=1.5",
        "ws_1011_rate=-0.1",
        "leak_rate=nan",
        "ws_drop_rate=abc",
        "slow=login",
        "slow=teleport:50",
        "slow=login:-5",
        "slow=login:inf",
        "api_break=everything",
        "auth_bypass=maybe",
        "seed=x",
    ],
)
def test_invalid_items_are_params_errors(spec: str) -> None:
    with pytest.raises(FaultSpecError) as error:
        Faults.parse([spec])
    assert isinstance(error.value, ParamsError)


@pytest.mark.parametrize(
    "raw",
    [{"auth_bypass": "yes"}, {"ws_1011_rate": True}, {"slow": 5}, {"api_break": [1]}, {"leak_rate": None}],
)
def test_invalid_dicts_are_params_errors(raw: dict[str, object]) -> None:
    with pytest.raises(FaultSpecError):
        Faults.from_dict(raw)


def test_explicit_faults_compose_on_top_of_a_variant() -> None:
    baseline = variant_faults("baseline")
    assert baseline.ws_1011_rate == 0.05
    composed = Faults.parse(["slow=login:50"], base=baseline)
    assert composed.ws_1011_rate == 0.05 and composed.delay_ms(SlowOperation.LOGIN) == 50
    # an explicit zero switches a variant's fault off
    assert Faults.parse(["ws_1011_rate=0"], base=baseline).is_healthy
    # a Faults value overlays: its active faults are added
    overlaid = Faults.coerce(Faults(auth_bypass=True), base=baseline)
    assert overlaid.auth_bypass and overlaid.ws_1011_rate == 0.05


def test_variants_say_what_changed() -> None:
    assert variant_faults("candidate").is_healthy
    assert variant_faults("baseline") == Faults(ws_1011_rate=0.05)
    regressed = variant_faults("regressed")
    assert regressed.slow_ms and regressed.api_breaks and regressed.leak_rate > 0
    assert regressed.ws_1011_rate == 0 and not regressed.auth_bypass
    with pytest.raises(FaultSpecError):
        variant_faults("nightly")


def test_faults_are_immutable_values() -> None:
    faults = Faults()
    with pytest.raises(dataclasses.FrozenInstanceError):
        faults.ws_1011_rate = 1.0  # type: ignore[misc]
    assert hash(Faults.parse("slow=login:5")) == hash(Faults.parse("slow=login:5"))
