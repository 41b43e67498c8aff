"""A planted secret reaches no file, no PDF text and no terminal line of a real run, in any encoding.

The secret holds the characters every encoding changes (``"`` ``\\`` ``&`` ``<`` ``>``) and is
planted where issue 11 found it leaking: a failing pytest assertion of a suites category, the
userinfo and the query string of ``base_url``, the title, the description and ``target.commit``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from support import pdf_text, run_cli
from test_secrets import PLANTED, encodings_of

pytestmark = pytest.mark.slow

LEAKY_TEST = """\
import os


def test_token_is_right():
    token = os.environ["API_TOKEN"]
    print("token is", token)
    assert token == "something else"
"""

PARAMS = """\
title: "Release ${PLANTED}"
description: "Fixes the handling of ${PLANTED}."
target:
  name: candidate
  base_url: "http://probe:${PLANTED_URL}@127.0.0.1:${PORT}/?token=${PLANTED_URL}"
  commit: "${PLANTED}"
sections:
  health:
    samples: 2
    timeout_s: 5
    endpoints:
      - {path: /health, expect_status: 200}
  suites:
    categories:
      - {name: leaky, paths: [test_leaky.py], cwd: suite, timeout_s: 120, env: {API_TOKEN: "${PLANTED}"}}
"""


def leaks(haystack: bytes | str, encodings: dict[str, str]) -> list[str]:
    data = haystack if isinstance(haystack, bytes) else haystack.encode("utf-8", "surrogateescape")
    return [form for form, encoded in encodings.items() if encoded.encode() in data]


def test_a_planted_secret_appears_in_no_encoding_anywhere(tmp_path: Path, candidate_url: str) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_leaky.py").write_text(LEAKY_TEST)
    params = tmp_path / "p.yaml"
    params.write_text(PARAMS)
    out = tmp_path / "run"
    env = {"PLANTED": PLANTED, "PLANTED_URL": quote(PLANTED, safe=""), "PORT": str(urlsplit(candidate_url).port)}
    proc = run_cli(["run", str(params), "--out", str(out)], env=env)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # the planted test really failed
    suites_evidence = (out / "evidence" / "suites.json").read_text()
    assert "[redacted]" in suites_evidence  # the secret was there to leak, and was scrubbed

    encodings = encodings_of(PLANTED)
    found: dict[str, list[str]] = {}
    terminal = leaks(proc.stdout + proc.stderr, encodings)
    if terminal:
        found["<terminal>"] = terminal
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        in_file = leaks(path.read_bytes(), encodings)
        if in_file:
            found[str(path.relative_to(out))] = in_file
    pdf = leaks(pdf_text(out / "report.pdf"), encodings)
    raw_pdf_text = subprocess.run(["pdftotext", str(out / "report.pdf"), "-"], capture_output=True, text=True).stdout
    pdf += [form for form in leaks(raw_pdf_text, encodings) if form not in pdf]
    if pdf:
        found["<report.pdf text>"] = pdf
    assert found == {}, "\n".join(f"{where}: {', '.join(forms)}" for where, forms in found.items())
