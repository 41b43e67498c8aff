"""Issue 19: kernels started ahead of their notebooks, killed once their notebook is done, and
never interrupted on the way out (a SIGINT at shutdown printed "[IPKernelApp] ERROR |
KeyboardInterrupt caught in kernel." on the user's terminal in some runs)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest
from support import run_cli
from test_cli_hardening import marked
from test_pipeline import HEALTH_ONLY

pytestmark = pytest.mark.slow

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def test_a_kernel_is_not_interrupted_when_its_notebook_is_done(tmp_path: Path) -> None:
    # jupyter_client SIGINTs a kernel before it shuts it down. A kernel handling a message then
    # logs the KeyboardInterrupt to the terminal (stderr); an idle one ignores it, so here the
    # kernel's idle handler notes it in a file instead.
    marker = tmp_path / "got-sigint"
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells = [
        nbformat.v4.new_code_cell('marker = ""', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import pathlib\n"
            "def note(*_):\n"
            "    pathlib.Path(marker).write_text('SIGINT')\n"
            "get_ipython().kernel.saved_sigint_handler = note  # ipykernel's SIGINT handler between messages"
        ),
    ]
    source = tmp_path / "nb.ipynb"
    nbformat.write(nb, source)
    script = (
        "import sys, pathlib\n"
        "from stability_lib.execution.notebooks import execute_notebook\n"
        "t = pathlib.Path(sys.argv[1])\n"
        "execute_notebook(t / 'nb.ipynb', t / 'out.ipynb', {'marker': sys.argv[2]}, cwd=t, timeout_s=60)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(marker)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    time.sleep(1.0)  # a graceful shutdown gives the kernel up to a second to run its handler
    assert not marker.exists()
    assert "KeyboardInterrupt" not in proc.stderr


def _run_with_first_cells(
    tmp_path: Path,
    repo: Path,
    candidate_url: str,
    first_cells: dict[str, str],
    *,
    runner: str = "",
    last_cell: str = "",
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A run of the health and suites sections (a trivial suite) and the report, each notebook
    beginning with its cell of ``first_cells``; suites ends with ``last_cell``. Asserts that no
    kernel outlived it and that none printed a KeyboardInterrupt."""
    nb_dir = tmp_path / "notebooks"
    shutil.copytree(repo / "notebooks", nb_dir)
    for name, code in first_cells.items():
        nb = nbformat.read(nb_dir / f"{name}.ipynb", as_version=4)
        nb.cells.insert(0, nbformat.v4.new_code_cell(code))
        if name == "suites" and last_cell:
            nb.cells.append(nbformat.v4.new_code_cell(last_cell))
        nbformat.write(nb, nb_dir / f"{name}.ipynb")
    params = tmp_path / "p.yaml"
    params.write_text(
        HEALTH_ONLY
        + '  suites:\n    categories: [{name: none, command: ["true"], junit_xml: none.xml}]\n'
        + "runner:\n  notebooks_dir: notebooks\n"
        + runner
    )
    token = uuid.uuid4().hex
    out = tmp_path / "run"
    proc = run_cli(
        ["run", str(params), "--out", str(out)], env={"TARGET_URL": candidate_url, "STABILITY_TEST_MARKER": token}
    )
    assert (out / "summary.json").exists(), proc.stdout + proc.stderr
    assert "KeyboardInterrupt" not in proc.stderr
    assert marked(token) == {}, "a kernel outlived the run"
    return out, proc


NOTEBOOKS = ("health", "suites", "report")


def test_notebooks_run_in_kernels_warmed_up_ahead_and_none_outlives_the_run(
    tmp_path: Path, candidate_url: str, repo: Path
) -> None:
    # Each notebook notes, before any cell of its own imports it, whether the package is loaded.
    probes = {
        name: f"import json, pathlib, sys\npathlib.Path('warm-{name}.json').write_text(json.dumps('stability_lib' in sys.modules))"
        for name in NOTEBOOKS
    }
    out, _ = _run_with_first_cells(tmp_path, repo, candidate_url, probes)
    warm = {name: json.loads((out / f"warm-{name}.json").read_text()) for name in NOTEBOOKS}
    assert warm == {"health": True, "suites": True, "report": True}


RACING_PORTS = (
    "import socket, sys, pathlib\n"
    "import jupyter_client.connect as connect\n"
    "from stability_lib.execution.notebooks import execute_notebook\n"
    "chosen = connect.write_connection_file\n"
    "taken = []\n"
    "def another_process_takes_the_port(*args, **kwargs):\n"
    "    fname, cfg = chosen(*args, **kwargs)\n"
    "    if cfg.get('transport') == 'tcp':  # the port was free when chosen, and is not any more\n"
    "        s = socket.socket(); s.bind((cfg['ip'], cfg['shell_port'])); s.listen(); taken.append(s)\n"
    "    return fname, cfg\n"
    "connect.write_connection_file = another_process_takes_the_port\n"
    "t = pathlib.Path(sys.argv[1])\n"
    "execute_notebook(t / 'nb.ipynb', t / 'out.ipynb', {}, cwd=t, timeout_s=60)\n"
)


def test_a_kernel_starts_when_another_process_takes_a_port_it_was_offered(tmp_path: Path) -> None:
    # jupyter_client picks a TCP port by binding and releasing it; on a busy machine another
    # process can take it before the kernel binds it, and the kernel died at start ("Kernel died
    # before replying to kernel_info", seen in CI). Our kernels use socket files instead.
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells = [nbformat.v4.new_code_cell("print('ran', 6 * 7)")]
    nbformat.write(nb, tmp_path / "nb.ipynb")
    proc = subprocess.run(
        [sys.executable, "-c", RACING_PORTS, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ran 42" in json.dumps(nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs)


def test_a_notebook_runs_in_a_process_whose_earlier_run_stopped_every_kernel(tmp_path: Path) -> None:
    # An interrupted or failed run stops every kernel (and kills any that start while it stops). A
    # report rendered later in the same process (a notebook, a test) got its kernel killed at start.
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells = [nbformat.v4.new_code_cell("print('ran', 6 * 7)")]
    nbformat.write(nb, tmp_path / "nb.ipynb")
    script = (
        "import sys, pathlib\n"
        "from stability_lib.execution.notebooks import execute_notebook, stop_all_kernels\n"
        "stop_all_kernels()  # what a run's failure path does\n"
        "t = pathlib.Path(sys.argv[1])\n"
        "execute_notebook(t / 'nb.ipynb', t / 'out.ipynb', {}, cwd=t, timeout_s=60)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ran 42" in json.dumps(nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs)


def test_a_kernel_is_reused_with_an_empty_namespace_and_not_after_a_failed_notebook(
    tmp_path: Path, candidate_url: str, repo: Path
) -> None:
    # One worker: health, then suites, then the report, in that order. Each notebook notes its
    # kernel's pid and the names a notebook before it left behind; suites then fails on purpose.
    probes = {
        name: "import json, os, pathlib\n"
        f"pathlib.Path('kernel-{name}.json').write_text(json.dumps("
        "[os.getpid(), sorted(k for k in globals() if k.startswith('left_by_'))]))\n"
        f"left_by_{name} = 1"
        for name in NOTEBOOKS
    }
    out, _ = _run_with_first_cells(
        tmp_path,
        repo,
        candidate_url,
        probes,
        runner="  workers: 1\n",
        last_cell="raise RuntimeError('this notebook fails at its end')",
    )
    seen = {name: json.loads((out / f"kernel-{name}.json").read_text()) for name in NOTEBOOKS}
    assert seen["suites"][0] == seen["health"][0], "the health notebook's kernel was not reused"
    assert seen["suites"][1] == [], "a name of the notebook before was still defined"
    assert seen["report"][0] != seen["suites"][0], "a kernel whose notebook failed was reused"
    assert seen["report"][1] == []
    assert json.loads((out / "evidence" / "suites.json").read_text())["status"] == "ERROR"
