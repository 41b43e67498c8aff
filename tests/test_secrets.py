"""A secret from the environment reaches no file of a run, even through a failing test's output."""

from __future__ import annotations

import base64
import html
import json
import re
import subprocess
from pathlib import Path
from urllib.parse import quote, quote_plus
from xml.sax.saxutils import escape as xml_escape

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from support import run_cli

from stability_lib.execution.secrets import REDACTED, display_url, redact_file, redact_obj, redact_text, secret_values

SECRET = "tok-Secret-5e1f0a9c"


def test_secret_values_are_the_resolved_references_outside_addresses() -> None:
    raw = {
        "target": {"base_url": "${URL}"},
        "scenario": {"users": {"password": "${PW}"}},
        "sections": {"suites": {"categories": [{"env": {"K": "${KEY}", "N": "${SHORT}"}}]}},
    }
    env = {"URL": "http://127.0.0.1:1", "PW": "hunter22", "KEY": "abcd-1234", "SHORT": "1"}
    assert secret_values(raw, env) == {"hunter22", "abcd-1234"}
    assert redact_obj({"a": ["x hunter22 y"]}, frozenset({"hunter22"})) == {"a": ["x [redacted] y"]}


@pytest.mark.slow
def test_a_failing_test_that_prints_the_secret_leaks_nothing(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_leaky.py").write_text(
        "import os\n\n"
        "def test_token_is_right():\n"
        "    token = os.environ['API_TOKEN']\n"
        "    print('token is', token)\n"
        "    assert token == 'something else'\n"
    )
    params = tmp_path / "p.yaml"
    params.write_text(
        "title: secrets\n"
        "target: {base_url: 'http://127.0.0.1:9'}\n"
        "sections:\n"
        "  suites:\n"
        "    categories:\n"
        "      - {name: leaky, paths: [test_leaky.py], cwd: suite, env: {API_TOKEN: '${MY_TOKEN}'}}\n"
    )
    out = tmp_path / "run"
    proc = run_cli(["run", str(params), "--out", str(out)], env={"MY_TOKEN": SECRET})
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the test really failed
    assert SECRET not in proc.stdout + proc.stderr
    evidence = json.loads((out / "evidence" / "suites.json").read_text())
    assert "[redacted]" in json.dumps(evidence)  # the secret was there to leak, and was scrubbed
    for path in (p for p in out.rglob("*") if p.is_file()):
        assert SECRET.encode() not in path.read_bytes(), f"secret in {path.relative_to(out)}"
    pdf = subprocess.run(["pdftotext", str(out / "report.pdf"), "-"], capture_output=True, text=True).stdout
    assert SECRET not in pdf


# --- every common encoding (issue 11, item 2a) -------------------------------------------------

PLANTED = 's3cr3t"Pl4nted\\XYZ&<>'


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text)


def _base64_middles(secret: str) -> list[str]:
    """The part of base64(prefix + secret + suffix) that the secret alone fixes, for prefixes of
    0, 1 and 2 bytes (all three alignments), standard and urlsafe."""
    out = []
    for prefix in (b"", b"u", b"us"):
        encoded = base64.b64encode(prefix + secret.encode() + b"!").decode()
        fixed = encoded[(len(prefix) + 2) // 3 * 4 : (len(prefix) + len(secret.encode())) // 3 * 4]
        out += [fixed, fixed.replace("+", "-").replace("/", "_")]
    return [f for f in out if len(f) >= 8]


def encodings_of(secret: str) -> dict[str, str]:
    """Each common way a program writes ``secret``, built here with the standard library only."""
    python_repr = repr(secret)[1:-1]
    double_quoted = secret.replace("\\", "\\\\").replace('"', '\\"')
    forms = {
        "raw": secret,
        "repr": python_repr,
        "repr (double quotes)": double_quoted,
        "json": json.dumps(secret)[1:-1],
        "json of repr": json.dumps(python_repr)[1:-1],
        "json of json": json.dumps(json.dumps(secret))[1:-1],
        "html": html.escape(secret),
        "html of repr": html.escape(python_repr),
        "xml text": xml_escape(secret),
        "xml attribute": xml_escape(secret, {'"': "&quot;"}),
        "decimal entities": xml_escape(secret, {'"': "&#34;", "'": "&#39;"}),
        "hex entities": xml_escape(secret, {'"': "&#x22;", "'": "&#x27;"}),
        "html escaped twice": html.escape(html.escape(secret)),
        "xml of json of repr": xml_escape(json.dumps(python_repr)[1:-1]),
        "url quote": quote(secret, safe=""),
        "url quote_plus": quote_plus(secret),
        "url quote, lower hex": _lower_hex(quote(secret, safe="")),
        "url quote_plus, lower hex": _lower_hex(quote_plus(secret)),
        "url of repr": quote(python_repr, safe=""),
        "base64": base64.b64encode(secret.encode()).decode(),
        "base64 urlsafe": base64.urlsafe_b64encode(secret.encode()).decode(),
    }
    for i, middle in enumerate(_base64_middles(secret)):
        forms[f"base64 inside a longer value #{i}"] = middle
    return forms


ENCODINGS = encodings_of(PLANTED)


def test_the_planted_secret_really_has_distinct_encodings() -> None:
    assert len(set(ENCODINGS.values())) >= 18  # the test below covers many forms, not one form many times


@pytest.mark.parametrize("form", sorted(ENCODINGS))
def test_every_encoding_of_a_secret_is_redacted_in_text_objects_and_files(form: str, tmp_path: Path) -> None:
    encoded = ENCODINGS[form]
    secrets = frozenset({PLANTED})
    text = f"AssertionError: assert '{encoded}' == 'x'\n"
    assert encoded not in redact_text(text, secrets)
    assert encoded not in str(redact_obj({"message": [text], text: 1}, secrets))
    path = tmp_path / "kept.xml"
    path.write_bytes(b"\xff\xfe not utf-8 \x80 " + text.encode())
    assert redact_file(path, secrets)
    kept = path.read_bytes()
    assert encoded.encode() not in kept and kept.startswith(b"\xff\xfe not utf-8 \x80 ")  # other bytes stay


@pytest.mark.parametrize("prefix", [b"", b"u", b"us", b"user:", b"Basic "])
def test_a_secret_inside_a_longer_base64_value_is_redacted(prefix: bytes) -> None:
    header = "Authorization: Basic " + base64.b64encode(prefix + PLANTED.encode() + b"@host").decode()
    shown = redact_text(header, [PLANTED])
    assert "[redacted]" in shown
    for middle in _base64_middles(PLANTED):
        assert middle not in shown


def test_short_values_and_unrelated_text_are_left_alone() -> None:
    ordinary = "user pw1 logged in; image cHcxMg abc" + base64.b64encode(bytes(range(256))).decode()
    assert redact_text(ordinary, ["pw12"]) == ordinary  # base64 fragments under 8 characters are not used
    assert secret_values({"a": "${X}"}, {"X": "abc"}) == frozenset()  # under MIN_SECRET_CHARS
    assert redact_text("x pw12 y", ["pw12"]) == "x [redacted] y"


def test_the_longest_secret_goes_first() -> None:
    assert redact_text("key=abcd-1234-efgh", ["abcd", "abcd-1234-efgh"]) == "key=[redacted]"


# --- what is secret (items 2b, 2c) --------------------------------------------------------------


def test_only_scheme_host_port_and_path_of_an_address_are_not_secret() -> None:
    raw = {
        "title": "Release ${TITLE_TOKEN}",
        "description": "${DESC}",
        "target": {
            "name": "${NAME}",
            "base_url": "https://${USER}:${PASS}@${HOST}:${PORT}/${PREFIX}/v1?api_key=${KEY}#${FRAG}",
            "ws_base_url": "wss://${HOST}/ws?token=${WS_TOKEN}",
            "commit": "${COMMIT}",
        },
        "baseline": {"base_url": "${WHOLE_URL}"},
    }
    env = {
        "TITLE_TOKEN": "title-token",
        "DESC": "description-secret",
        "NAME": "name-secret",
        "USER": "user-secret",
        "PASS": "pass-secret",
        "HOST": "host.example",
        "PORT": "8443",
        "PREFIX": "api-prefix",
        "KEY": "key-secret",
        "FRAG": "frag-secret",
        "WS_TOKEN": "ws-token",
        "COMMIT": "3f2a9c1d",
        "WHOLE_URL": "https://bob:whole-pass@base.example/p?sig=whole-sig",
    }
    found = secret_values(raw, env)
    assert found == {
        "title-token",
        "description-secret",
        "name-secret",
        "user-secret",
        "pass-secret",
        "key-secret",
        "frag-secret",
        "ws-token",
        "3f2a9c1d",
        "https://bob:whole-pass@base.example/p?sig=whole-sig",
        "whole-pass",
        "whole-sig",
    }


def test_a_reference_that_smuggles_userinfo_through_the_host_is_secret() -> None:
    raw = {"target": {"base_url": "http://${HOST}/"}}
    found = secret_values(raw, {"HOST": "admin:hunter22@host.example"})
    assert found == {"admin:hunter22@host.example", "admin", "hunter22"}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p%40ss@h.example:8443/a/b?x=1&tok=abc#frag", "https://***@h.example:8443/a/b?x=***&tok=***#***"),
        ("http://127.0.0.1:9/", "http://127.0.0.1:9/"),
        ("wss://ws.example/ws?token", "wss://ws.example/ws?***"),
        ("http://[::1", "http://***"),
    ],
)
def test_display_url_hides_userinfo_query_values_and_fragment(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_the_fingerprint_keeps_the_address_but_not_its_credentials() -> None:
    from stability_lib.execution.baseline import fingerprint

    fp = fingerprint({}, "https://probe:hunter22@h.example:8443/api?key=k-123456", None)
    assert fp["target_url"] == "https://***@h.example:8443/api?key=***" and fp["target_host"] == "h.example"


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=4, max_size=24))
def test_any_secret_is_redacted_in_every_encoding(secret: str) -> None:
    for form, encoded in encodings_of(secret).items():
        text = f"<<{encoded}>>"
        assume(encoded not in f"<<{REDACTED}>>")
        assert encoded not in redact_text(text, [secret]), form


# --- the start of a secret where an excerpt was cut ---------------------------------------------
# Text capped before it was scrubbed keeps the start of a secret, which the whole-secret pattern no longer
# matches: a health body excerpt (the first 512 bytes of a body that echoed a token) kept "Zk8QwErTyU" of
# it, a JUnit failure message cut at 2,048 characters kept "Zk8QwErT". Found from outside; each case below
# failed before.
CUT_SECRET = "Zk8QwErTyUiOpLkJhGfDsA"


@pytest.mark.parametrize(
    "text",
    [
        "echo: " + CUT_SECRET[:10],  # the end of a capped body
        '{"echo": "' + CUT_SECRET[:10] + '"}',  # the same inside a serialized record
        "B" * 20 + CUT_SECRET[:8] + "... [truncated 14 chars]",  # a JUnit excerpt's marker
        "x " + CUT_SECRET[:7] + "…[15 more chars]",  # cap_text's marker
        "<td>" + CUT_SECRET[:12] + "</td>",  # in HTML
        CUT_SECRET[:4],  # the shortest start that counts
    ],
)
def test_the_start_of_a_secret_where_an_excerpt_was_cut_is_redacted(text: str) -> None:
    redacted = redact_text(text, {CUT_SECRET})
    assert CUT_SECRET[:4] not in redacted
    assert REDACTED in redacted


@pytest.mark.parametrize(
    "text",
    [
        CUT_SECRET[:10] + " and more words",  # not where a cut ends: ordinary text
        CUT_SECRET[:3],  # shorter than any secret is allowed to be
        "zk8qwertyu",  # another case
    ],
)
def test_text_that_only_shares_a_start_with_a_secret_elsewhere_stays(text: str) -> None:
    assert redact_text(text, {CUT_SECRET}) == text


def test_a_junit_failure_cut_in_its_secret_keeps_none_of_it_in_the_evidence() -> None:
    from stability_lib.suites.judgement import FAILURE_EXCERPT_CHARS, _excerpt
    from stability_lib.suites.junit import TestCase, TestOutcome

    message = "B" * (FAILURE_EXCERPT_CHARS - 8) + CUT_SECRET
    case = TestCase("tests.test_api", "test_token", 0.1, TestOutcome.FAILED, message=message)
    stored = redact_obj({"excerpt": _excerpt(case)}, frozenset({CUT_SECRET}))
    assert CUT_SECRET[:4] not in json.dumps(stored)
