"""Health paths and headers are refused at params time when they would leave the target or crash a section.

A health ``path`` that is a URL (``http://other:18602/abs``), ``//host`` or ``@host`` sent the check, and
``target.auth``, to another host, and the claim PASSed for a host that is not the target. A header
name with a space, a value with a line break or a non-ASCII character, or a NUL in a path, passed
validation and then failed inside the HTTP library in the middle of the section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from stability_lib import ParamsError, load_params
from stability_lib.probes.config import HealthEndpoint, HealthWebSocket, TargetAuth

REPO = Path(__file__).resolve().parents[1]
SECRET = "s3cr3t-H34der-v4lue"
URL = "http://127.0.0.1:9"


def params_doc(health: dict[str, Any], auth: dict[str, Any] | None = None) -> dict[str, Any]:
    target: dict[str, Any] = {"base_url": "${URL}"}
    if auth is not None:
        target["auth"] = auth
    return {"title": "t", "environment": "local", "target": target, "sections": {"health": health}}


def refusal(tmp_path: Path, doc: dict[str, Any], env: dict[str, str] | None = None) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ParamsError) as err:
        load_params(path, env={"URL": URL, **(env or {})})
    message = str(err.value)
    assert "\n" not in message and "\r" not in message, message
    return message


BAD_PATHS = [
    "http://127.0.0.1:18602/abs",  # another port: another service
    "https://evil.example/health",
    "HTTP://evil.example/health",
    "ws://evil.example/ws",
    "//evil.example/health",  # scheme-relative
    "///evil.example/health",
    "@evil.example/health",  # base + path would read as user info @ another host
    "health",  # relative: not from the target's root
    "",
    "/\\evil.example/health",
    "\\\\evil.example\\health",
    "/health\\..\\admin",
    "/he alth",
    "/health ",
    "/health\t",
    "/health\r\nX-Injected: 1",
    "/health\n",
    "/hea\x00lth",
    "/hea\x7flth",
    "/health\u2028",
    "/health\u00a0",
]

GOOD_PATHS = [
    "/",
    "/health",
    "/api/v1/health?probe=1&x=%20",
    "/sant\u00e9",
    "/%2F%2Fevil.example",
    "/a/../b",
    "/x#frag",
]


@pytest.mark.parametrize("path", BAD_PATHS, ids=repr)
def test_a_health_path_that_is_not_a_path_on_the_target_is_refused(tmp_path: Path, path: str) -> None:
    message = refusal(tmp_path, params_doc({"endpoints": [{"path": "/ok"}, {"path": path}]}))
    assert "sections.health.endpoints.1.path" in message, message
    assert "single '/'" in message or "backslash" in message or "whitespace" in message, message
    with pytest.raises(ValidationError):
        HealthEndpoint(path=path)


@pytest.mark.parametrize("path", BAD_PATHS, ids=repr)
def test_a_health_websocket_path_that_is_not_a_path_on_the_target_is_refused(tmp_path: Path, path: str) -> None:
    message = refusal(tmp_path, params_doc({"endpoints": [], "websocket": {"path": path}}))
    assert "sections.health.websocket.path" in message, message
    with pytest.raises(ValidationError):
        HealthWebSocket(path=path)


@pytest.mark.parametrize("path", GOOD_PATHS)
def test_paths_on_the_target_are_accepted(tmp_path: Path, path: str) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(yaml.safe_dump(params_doc({"endpoints": [{"path": path}], "websocket": {"path": path}})))
    params, _ = load_params(file, env={"URL": URL})
    assert params.sections["health"].endpoints[0].path == path


def test_a_path_from_the_environment_is_checked_and_not_echoed(tmp_path: Path) -> None:
    message = refusal(tmp_path, params_doc({"endpoints": [{"path": "${P}"}]}), env={"P": f"http://{SECRET}.example/x"})
    assert "sections.health.endpoints.0.path" in message and SECRET not in message


def test_the_health_websocket_url_stays_on_the_target() -> None:
    """What the refused forms did: ``base + path`` with ``@host`` put another host in the URL."""
    from urllib.parse import urlsplit

    from stability_lib.probes.config import TargetConfig

    target = TargetConfig(base_url="http://127.0.0.1:8000")
    assert urlsplit(target.websocket_url("@evil.example/ws")).hostname == "evil.example"  # why it is refused
    assert urlsplit(target.websocket_url(HealthWebSocket(path="/ws").path)).hostname == "127.0.0.1"


# --------------------------------------------------------------------------- headers

BAD_NAMES = ["X Token", "X-Token ", "X:Token", "", "T\u00f6ken", "X-Token\r\nX-Evil", "X\x00"]
BAD_VALUES = [
    f"{SECRET}\n",  # the usual one: a trailing newline in the environment variable
    f"{SECRET}\r\nX-Injected: 1",
    f"{SECRET}\x00",
    f"{SECRET}\u00e9",
    f"Bearer {SECRET}\u2013",
    f"{SECRET}\x01",
    f"{SECRET}\x7f",
    f" {SECRET}",
    f"{SECRET} ",
]
GOOD_VALUES = ["", "Bearer abc.def-ghi_jkl~", 'a "quoted", \\ value; x=1', "a\tb", SECRET]

HEADER_FIELDS = [
    ("target.auth.headers", lambda h: params_doc({"endpoints": [{"path": "/health"}]}, auth={"headers": h})),
    ("sections.health.endpoints.0.headers", lambda h: params_doc({"endpoints": [{"path": "/health", "headers": h}]})),
    (
        "sections.health.websocket.headers",
        lambda h: params_doc({"endpoints": [], "websocket": {"path": "/ws", "headers": h}}),
    ),
]


@pytest.mark.parametrize(("field", "make"), HEADER_FIELDS, ids=[f for f, _ in HEADER_FIELDS])
@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_a_header_name_http_cannot_carry_is_refused(tmp_path: Path, field: str, make: Any, name: str) -> None:
    message = refusal(tmp_path, make({name: "v"}))
    assert field in message and "not a valid HTTP header name" in message, message


@pytest.mark.parametrize(("field", "make"), HEADER_FIELDS, ids=[f for f, _ in HEADER_FIELDS])
@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
def test_a_header_value_http_cannot_carry_is_refused_without_echoing_it(
    tmp_path: Path, field: str, make: Any, value: str
) -> None:
    message = refusal(tmp_path, make({"X-Token": "${TOK}"}), env={"TOK": value})
    assert field in message and "header X-Token" in message, message
    assert SECRET not in message


@pytest.mark.parametrize(("field", "make"), HEADER_FIELDS, ids=[f for f, _ in HEADER_FIELDS])
@pytest.mark.parametrize("value", GOOD_VALUES, ids=repr)
def test_header_values_http_carries_are_accepted(tmp_path: Path, field: str, make: Any, value: str) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(yaml.safe_dump(make({"X-Token": "${TOK}", "x_custom.Header!": "v"})))
    load_params(file, env={"URL": URL, "TOK": value})


def test_a_stored_run_rereads_its_target_auth_unchecked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``stability report`` re-reads params with unset variables as markers: the run itself was checked."""
    from stability_lib.execution.params import LenientEnv

    monkeypatch.delenv("TOK", raising=False)
    file = tmp_path / "p.yaml"
    file.write_text(yaml.safe_dump(params_doc({"endpoints": [{"path": "/h"}]}, auth={"headers": {"X-T": "${TOK}"}})))
    params, _ = load_params(file, env=LenientEnv())
    assert params.target.auth.headers == {"X-T": "<TOK not set>"}
    assert TargetAuth.model_validate({"headers": {"X-T": "a\nb"}}, context={"rereading": True}).headers


# --------------------------------------------------------------------------- through the command


CLI_CASES = [
    ("absolute-url-path", params_doc({"endpoints": [{"path": "http://127.0.0.1:18602/abs"}]}), {}, "endpoints.0.path"),
    (
        "scheme-relative-ws-path",
        params_doc({"endpoints": [], "websocket": {"path": "//evil.example/ws"}}),
        {},
        "websocket.path",
    ),
    ("nul-in-path", params_doc({"endpoints": [{"path": "/a\x00b"}]}), {}, "endpoints.0.path"),
    (
        "header-name-with-space",
        params_doc({"endpoints": [{"path": "/h"}]}, auth={"headers": {"X Token": "${TOK}"}}),
        {"TOK": SECRET},
        "target.auth.headers",
    ),
    (
        "header-value-newline",
        params_doc({"endpoints": [{"path": "/h", "headers": {"X-Token": "${TOK}"}}]}),
        {"TOK": SECRET + "\n"},
        "endpoints.0.headers",
    ),
    (
        "header-value-non-ascii",
        params_doc({"endpoints": [{"path": "/h"}]}, auth={"headers": {"X-Token": "${TOK}"}}),
        {"TOK": SECRET + "\u00e9"},
        "target.auth.headers",
    ),
]


@pytest.mark.parametrize(("case", "doc", "env", "field"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_the_command_refuses_with_one_line_and_exit_3(
    tmp_path: Path, case: str, doc: dict[str, Any], env: dict[str, str], field: str
) -> None:
    from support import run_cli

    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc))
    proc = run_cli(["run", str(path), "--out", str(tmp_path / "run")], env={"URL": URL, **env}, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert field in lines[0], lines[0]
    assert SECRET not in proc.stdout + proc.stderr
    assert not list(tmp_path.glob("run/notebooks/*.ipynb")), "a section ran"


# --------------------------------------------------------------------------- what we ship


class _Placeholders(dict[str, str]):
    """Every ``${NAME}``: an address for ``*_URL``, a printable token otherwise."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return "http://127.0.0.1:1" if key.endswith("URL") else "placeholder-Secret-0123"


SHIPPED = sorted(p.relative_to(REPO) for p in [*REPO.glob("params/*.yaml"), *REPO.glob("params/examples/*.yaml")])


def test_the_shipped_files_are_found() -> None:
    assert len(SHIPPED) >= 4


@pytest.mark.parametrize("name", SHIPPED, ids=str)
def test_the_shipped_params_still_validate(name: Path) -> None:
    params, _ = load_params(REPO / name, env=_Placeholders())
    assert params.sections["health"].enabled
