"""The report phase starts Chromium ahead (its start-up overlaps the report notebook); a SIGTERM or Ctrl-C
while the report renders must still stop it: it runs in a process group of its own, so no terminal signal
reaches it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import nbformat
import pytest
from support import STABILITY
from test_cli_hardening import marked
from test_pipeline import HEALTH_ONLY

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_the_report_renders_stops_the_browser_started_for_the_pdf(
    tmp_path: Path, candidate_url: str, repo: Path, sig: signal.Signals
) -> None:
    nb_dir = tmp_path / "notebooks"
    shutil.copytree(repo / "notebooks", nb_dir)
    report = nbformat.read(nb_dir / "report.ipynb", as_version=4)
    report.cells.insert(
        1, nbformat.v4.new_code_cell("import pathlib, time\npathlib.Path('rendering').touch()\ntime.sleep(60)")
    )
    nbformat.write(report, nb_dir / "report.ipynb")
    params = tmp_path / "p.yaml"
    params.write_text(HEALTH_ONLY + "runner:\n  notebooks_dir: notebooks\n")
    token = uuid.uuid4().hex
    out = tmp_path / "run"
    env = {**os.environ, "TARGET_URL": candidate_url, "STABILITY_TEST_MARKER": token}
    proc = subprocess.Popen(
        [*STABILITY, "run", str(params), "--out", str(out)],
        env=env,
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The report notebook is sleeping, and the browser for the PDF has been started beside it.
        while proc.poll() is None and not (
            (out / "rendering").exists() and any("chrom" in " ".join(argv) for argv in marked(token).values())
        ):
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        _stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, stderr[-2000:]
    assert marked(token) == {}, "a process the run started outlived it"
