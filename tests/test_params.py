from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stability_lib import MissingVariableError, ParamsError, load_params
from stability_lib.execution.params import apply_overrides, read_raw, redact, resolve_env

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


def test_redaction_shows_settings_and_references_after_an_auth_scheme() -> None:
    # Found reading a real run's appendix: ws_token_via: '***' (the value is "header") and the target's
    # Authorization: "token ${JUPYTER_TOKEN}" hidden, though the README says references are shown.
    auth = {
        "ws_token_via": "header",
        "token_path": "access_token",
        "headers": {"Authorization": "token ${JUPYTER_TOKEN}", "X-Api-Key": "${KEY}"},
        "token": "Bearer ${A}",
        "password": "Bearer hunter2",  # a literal after a scheme is still hidden
        "api_key": "${A} and more",
    }
    assert redact({"auth": auth}) == {
        "auth": {
            "ws_token_via": "header",
            "token_path": "access_token",
            "headers": {"Authorization": "token ${JUPYTER_TOKEN}", "X-Api-Key": "${KEY}"},
            "token": "Bearer ${A}",
            "password": "***",
            "api_key": "***",
        }
    }


def test_a_stored_baseline_for_a_switched_off_performance_section_is_refused(tmp_path: Path) -> None:
    # `stability run params.yaml --baseline v2` with performance off: the baseline was dropped without a word.
    text = MINIMAL + "  performance: {enabled: false, stored_baseline: v2}\n"
    with pytest.raises(ParamsError) as err:
        load_params(write(tmp_path, text), env={"URL": "http://127.0.0.1:9"})
    assert "sections.performance.stored_baseline (stability run --baseline) is set, but the performance" in str(
        err.value
    )
    # Without a performance block, --baseline switches the section on; the scenario it needs is named as such.
    with pytest.raises(ParamsError) as err:
        load_params(write(tmp_path, MINIMAL + "  performance: {stored_baseline: v2}\n"), env={"URL": "http://x:9"})
    assert "sections.performance (it compares with the baseline given by --baseline): needs a 'scenario'" in str(
        err.value
    )


def test_resolve_env_leaves_non_strings_alone() -> None:
    assert resolve_env({"a": [1, "${X}"], "b": None}, {"X": "y"}) == {"a": [1, "y"], "b": None}


def test_sections_that_act_as_users_need_a_scenario(tmp_path: Path) -> None:
    with pytest.raises(ParamsError) as err:
        load_params(write(tmp_path, MINIMAL + "  websocket: {}\n"), env={"URL": "http://127.0.0.1:9"})
    assert "sections.websocket: needs a 'scenario' block" in str(err.value)


# --- bounded, one-line refusals (issue 11, items 3, 8, 10) --------------------------------------

ALIAS_BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


def one_line_error(tmp_path: Path, text: str | bytes, env: dict[str, str] | None = None) -> str:
    path = tmp_path / "p.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    with pytest.raises(ParamsError) as err:
        load_params(path, env={"URL": "http://127.0.0.1:9", **(env or {})})
    message = str(err.value)
    assert "\n" not in message and len(message) < 600, message
    return message


def test_an_alias_bomb_is_refused_before_anything_expands_it(tmp_path: Path) -> None:
    # 9**9 strings once expanded; refused from the node graph's memoised size.
    message = one_line_error(tmp_path, MINIMAL + ALIAS_BOMB)
    assert "aliases expand to more than" in message and "line" in message


def test_an_alias_bomb_in_a_set_value_is_refused_too() -> None:
    bomb = "{" + ALIAS_BOMB.replace("\n", ", ").rstrip(", ") + "}"
    with pytest.raises(ParamsError, match="aliases expand"):
        apply_overrides({}, [f"scenario={bomb}"])


def test_a_few_anchors_and_merge_keys_stay_allowed(tmp_path: Path) -> None:
    data = read_raw(write(tmp_path, MINIMAL + "x-step: &step {path: /health}\nx2: {<<: *step, path: /other}\n"))
    assert data["x2"] == {"path": "/other"} and data["x-step"] == {"path": "/health"}


def test_a_self_referring_alias_is_refused(tmp_path: Path) -> None:
    assert "refers to the node that contains it" in one_line_error(tmp_path, MINIMAL + "loop: &l [*l]\n")


def test_a_params_file_over_one_mib_is_refused(tmp_path: Path) -> None:
    assert "larger than 1024 KiB" in one_line_error(tmp_path, MINIMAL + "# " + "x" * (1 << 20) + "\n")


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ParamsError, match="not a regular file"):
        load_params(fifo, env={})


@pytest.mark.parametrize(("field", "length"), [("title", 301), ("description", 20_001)])
def test_title_and_description_have_a_length_cap(tmp_path: Path, field: str, length: int) -> None:
    text = MINIMAL.replace("title: t", "title: t\ndescription: " + "y" * length)
    if field == "title":
        text = MINIMAL.replace("title: t", "title: " + "y" * length)
    assert f"{field}: String should have at most" in one_line_error(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        (b"title: caf\xe9\n", {}, "not UTF-8 text (byte 10, line 1)"),
        ("title: t\nx: " + "[" * 100_000 + "]" * 100_000 + "\n", {}, "nested deeper than 64 levels"),
        ("title: t\nx: " + "[" * 70 + "]" * 70 + "\n", {}, "nested deeper than 64 levels"),
        (MINIMAL.replace("${URL}", "http://[::1"), {}, "target.base_url: Value error, not a valid URL"),
        (
            MINIMAL.replace("${URL}", "http://${HOST}:8080/"),
            {"HOST": "[::1"},
            "target.base_url: Value error, not a valid URL",
        ),
        (
            MINIMAL.replace("${URL}", "http://h:${PORT}/"),
            {"PORT": "s3cret-port"},
            "target.base_url: Value error, not a valid URL",
        ),
        (MINIMAL.replace("title: t", "title: a\ntitle: b"), {}, "duplicate key 'title' at line 3"),
        (MINIMAL.replace("samples: 2", "samples: 2\n    samples: 3"), {}, "duplicate key 'samples' at line 8"),
        (
            MINIMAL.replace("${URL}", "ftp://127.0.0.1/"),
            {},
            "target.base_url: Value error, the scheme must be http:// or https://",
        ),
        (MINIMAL.replace("${URL}", "ws://127.0.0.1/"), {}, "target.base_url: Value error, the scheme must be http://"),
        (MINIMAL.replace("${URL}", "127.0.0.1:9"), {}, "target.base_url: Value error, the scheme must be"),
        (MINIMAL.replace("${URL}", "http:///path"), {}, "target.base_url: Value error, the URL has no host"),
        (
            MINIMAL.replace("  base_url: ${URL}", "  base_url: ${URL}\n  ws_base_url: http://127.0.0.1/"),
            {},
            "target.ws_base_url: Value error, the scheme must be ws:// or wss://",
        ),
    ],
)
def test_bad_params_give_one_line_that_names_the_field(
    tmp_path: Path, text: str | bytes, env: dict[str, str], expected: str
) -> None:
    message = one_line_error(tmp_path, text, env)
    assert expected in message
    assert "s3cret-port" not in message  # a value from the environment is never echoed


def test_ws_and_wss_are_accepted_for_ws_base_url(tmp_path: Path) -> None:
    text = MINIMAL.replace("  base_url: ${URL}", "  base_url: HTTPS://h.example\n  ws_base_url: wss://ws.example/x")
    params, _ = load_params(write(tmp_path, text), env={})
    assert params.target.ws_base_url == "wss://ws.example/x"


@pytest.mark.slow
@pytest.mark.parametrize(
    "text",
    [
        b"title: caf\xe9\n",
        ("title: t\nx: " + "[" * 100_000 + "]" * 100_000).encode(),
        MINIMAL.replace("${URL}", "http://[::1").encode(),
        (MINIMAL + ALIAS_BOMB).encode(),
    ],
    ids=["not-utf8", "deep-list", "bad-ipv6", "alias-bomb"],
)
def test_the_command_says_one_line_and_exits_3_for_bad_params(tmp_path: Path, text: bytes) -> None:
    from support import run_cli

    path = tmp_path / "p.yaml"
    path.write_bytes(text)
    proc = run_cli(["run", str(path), "--out", str(tmp_path / "run")], env={"URL": "http://127.0.0.1:9"}, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_stored_run_rereads_its_params_without_the_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stability_lib.execution.params import LenientEnv

    monkeypatch.delenv("URL", raising=False)  # `stability report` in another shell: the address is not checked again
    params, _ = load_params(write(tmp_path, MINIMAL), env=LenientEnv())
    assert params.target.base_url == "<URL not set>"


YAML_PIECES = st.sampled_from(
    [
        "title: t\n",
        "target:\n",
        "  base_url: ",
        "${URL}",
        "http://[::1",
        "&a ",
        "*a",
        "[",
        "]",
        "{",
        "}",
        "- ",
        ": ",
        "\n",
        "  ",
        "'",
        '"',
        "\\",
        "<<: ",
        "!!python/object ",
        "\t",
        "\xe9",
        "sections: {health: {samples: 2}}\n",
        "x",
        "9",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(YAML_PIECES, max_size=40), encoding=st.sampled_from(["utf-8", "latin-1"]))
def test_any_params_text_loads_or_gives_one_params_error_line(tmp_path: Path, pieces: list[str], encoding: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes("".join(pieces).encode(encoding))
    try:
        load_params(path, env={"URL": "http://127.0.0.1:9"})
    except ParamsError as exc:
        assert "\n" not in str(exc)  # noqa: PT017 (it may load or refuse: both are fine, refusing in one line)


def test_a_key_with_a_line_break_or_of_any_length_stays_in_one_short_line(tmp_path: Path) -> None:
    message = one_line_error(tmp_path, MINIMAL + '"bad\\nkey": 1\n' + "k" * 1000 + ": 2\n")
    assert "bad\\nkey: unknown key" in message


def test_many_errors_are_counted_not_all_listed(tmp_path: Path) -> None:
    message = one_line_error(tmp_path, MINIMAL + "".join(f"unknown{i}: 1\n" for i in range(50)))
    assert "unknown0: unknown key" in message and "and 45 more" in message


@pytest.mark.parametrize(
    ("base_url", "ws_base_url", "expected"),
    [
        ("http://127.0.0.1:8000", None, "ws://127.0.0.1:8000/ws/echo"),
        ("https://staging.example.com/", None, "wss://staging.example.com/ws/echo"),
        ("http://127.0.0.1:8000", "ws://127.0.0.1:9000/", "ws://127.0.0.1:9000/ws/echo"),
    ],
)
def test_websocket_url_is_derived_from_the_target(base_url: str, ws_base_url: str | None, expected: str) -> None:
    # The health echo and every WebSocket step build their address here.
    from stability_lib.execution.params import TargetConfig

    target = TargetConfig(base_url=base_url, ws_base_url=ws_base_url)
    assert target.websocket_url("/ws/echo") == expected


# --- target optional when no enabled section needs a live service (issue 16) --------------------

FILES_ONLY = """
title: files only
sections:
  suites:
    categories:
      - {name: ci, junit_xml: reports/ci.xml}
  contract:
    baseline_spec: {file: old.json}
    candidate_spec: {file: new.json}
"""


def test_target_may_be_left_out_when_every_enabled_section_works_from_files(tmp_path: Path) -> None:
    params, _ = load_params(write(tmp_path, FILES_ONLY), env={})
    assert not params.has_live_target and params.target.base_url == ""
    assert params.enabled_sections() == ["suites", "contract"]
    with_null = load_params(write(tmp_path, FILES_ONLY + "target: null\n"), env={})[0]
    assert not with_null.has_live_target


@pytest.mark.parametrize(
    ("extra", "needing"),
    [
        ("  health: {samples: 1}\n", "health"),
        ("  suites:\n    categories: [{name: unit, marker: unit}]\n", "suites"),  # a command runs
        ("  contract: {}\n", "contract"),  # the candidate's spec is fetched from the target
    ],
)
def test_target_is_required_by_name_when_an_enabled_section_needs_it(tmp_path: Path, extra: str, needing: str) -> None:
    text = "title: t\nsections:\n" + extra
    with pytest.raises(ParamsError) as err:
        load_params(write(tmp_path, text), env={})
    assert f"target: required by the enabled sections {needing} " in str(err.value)
    params, _ = load_params(write(tmp_path, text + "target: {base_url: 'http://127.0.0.1:9'}\n"), env={})
    assert params.has_live_target


@pytest.mark.parametrize("token", ["abc123literal", "${TOKEN}x"])
def test_a_literal_static_token_is_refused_naming_the_field(tmp_path: Path, token: str) -> None:
    text = (
        "title: t\ntarget: {base_url: 'http://127.0.0.1:1'}\n"
        f"scenario:\n  users:\n    count: 1\n    credentials: [{{name: a, token: '{token}'}}]\n"
    )
    with pytest.raises(ParamsError, match=r"scenario.users.credentials.0.token: write it as \$\{NAME\}"):
        load_params(write(tmp_path, text), env={"TOKEN": "t"})


def test_the_soak_can_be_switched_to_a_fixed_sample_and_its_rounds_sized() -> None:
    from pydantic import ValidationError

    from stability_lib.probes.config import WebSocketSectionConfig

    ws = WebSocketSectionConfig.model_validate({"sequential": False, "round_sessions": 50})
    assert ws.sequential is False and ws.round_sessions == 50
    assert WebSocketSectionConfig().sequential is True
    with pytest.raises(ValidationError):
        WebSocketSectionConfig.model_validate({"round_sessions": 0})


@pytest.mark.parametrize("rounds", [{"round_sessions": 50}, {"sequential": True}], ids=["round_sessions", "sequential"])
def test_soak_rounds_beside_the_locust_engine_are_refused_not_ignored(rounds: dict[str, object]) -> None:
    # Locust runs one fixed sample per side: rounds asked for there were accepted and silently ignored.
    from pydantic import ValidationError

    from stability_lib.probes.config import WebSocketSectionConfig

    with pytest.raises(ValidationError, match=f"{next(iter(rounds))} does not apply with engine: locust"):
        WebSocketSectionConfig.model_validate({"engine": "locust", **rounds})
    assert WebSocketSectionConfig.model_validate({"engine": "locust", "sequential": False}).engine == "locust"
    assert WebSocketSectionConfig.model_validate({"engine": "locust"}).engine == "locust"
