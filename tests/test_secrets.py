"""A secret from the environment reaches no file of a run, even through a failing test's output."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from stability_lib._secrets import redact_obj, secret_values

from support import run_cli

SECRET = "tok-Secret-5e1f0a9c"


def test_secret_values_are_the_resolved_references_outside_addresses() -> None:
    raw = {"target": {"base_url": "${URL}"}, "scenario": {"users": {"password": "${PW}"}},
           "sections": {"suites": {"categories": [{"env": {"K": "${KEY}", "N": "${SHORT}"}}]}}}
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
