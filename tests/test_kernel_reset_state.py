"""A kernel reused for the next notebook gives it the process state of a kernel of its own: what a
notebook changed in os.environ, the working folder, sys.path, matplotlib's rcParams, the warnings
filters or the views registry does not leak into the next notebook run in the same kernel (a user's
own notebooks, runner.notebooks_dir, may change any of them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.slow

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}

# The state a notebook sees, as JSON. Environment: its names, and the values of the probe variables
# only (the environment may hold secrets: none of its other values is written).
STATE = """\
import json, os, pathlib, sys, warnings
import matplotlib
import stability_lib.report.views as views
def state():
    return {
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "path": list(sys.path),
        "environ names": sorted(os.environ),
        "probes": {name: os.environ.get(name) for name in ("STABILITY_RESET_PROBE", "STABILITY_RESET_GONE", "STABILITY_RESET_ADDED")},
        "rcParams": sorted((k, repr(v)) for k, v in dict(matplotlib.rcParams.copy()).items() if k != "backend"),
        "warnings filters": repr(warnings.filters),
        "views": {name: view.__qualname__ for name, view in sorted(views._VIEWS.items())},
    }
def note(path):
    pathlib.Path(path).write_text(json.dumps(state()))
"""

CHANGE_EVERYTHING = """\
os.environ["STABILITY_RESET_PROBE"] = "changed by the notebook before"
del os.environ["STABILITY_RESET_GONE"]
os.environ["STABILITY_RESET_ADDED"] = "added by the notebook before"
os.makedirs("elsewhere", exist_ok=True)
os.chdir("elsewhere")
sys.path.insert(0, "/nonexistent/put-first-by-the-notebook-before")
del sys.path[-1]
import matplotlib.pyplot as plt
plt.style.use("dark_background")
matplotlib.rcParams["lines.linewidth"] = 7.5
warnings.simplefilter("error")
warnings.filterwarnings("ignore", message="left by the notebook before")
views.register_view("leaked")(lambda result: [])
views._VIEWS["suites"] = lambda result: []
del views._VIEWS["health"]
"""

# Two notebooks in a row on one worker's kernels, as a run's sections: WarmKernels hands the
# second notebook the first one's kernel, reset in between.
TWO_NOTEBOOKS = """\
import pathlib, sys
from stability_lib.execution.kernels import WarmKernels
from stability_lib.execution.notebooks import execute_notebook
t = pathlib.Path(sys.argv[1])
kernels = WarmKernels(t, 1, spare=0)
kernels.expect(2)
try:
    for name in ("changes", "sees"):
        execute_notebook(t / f"{name}.ipynb", t / f"{name}-out.ipynb", {"folder": str(t)}, cwd=t, timeout_s=120, kernels=kernels)
finally:
    kernels.close()
"""


def _notebook(path: Path, *cells: str) -> None:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells = [
        nbformat.v4.new_code_cell('folder = ""', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(STATE),
        *(nbformat.v4.new_code_cell(cell) for cell in cells),
    ]
    nbformat.write(nb, path)


def test_a_reused_kernel_starts_the_next_notebook_with_the_process_state_of_its_warm_up(tmp_path: Path) -> None:
    _notebook(
        tmp_path / "changes.ipynb",
        "note(pathlib.Path(folder) / 'before.json')",
        CHANGE_EVERYTHING,
        "note(pathlib.Path(folder) / 'changed.json')",
    )
    _notebook(tmp_path / "sees.ipynb", "note(pathlib.Path(folder) / 'after.json')")
    env = {**os.environ, "STABILITY_RESET_PROBE": "as the run started", "STABILITY_RESET_GONE": "present"}
    env.pop("STABILITY_RESET_ADDED", None)
    proc = subprocess.run(
        [sys.executable, "-c", TWO_NOTEBOOKS, str(tmp_path)], capture_output=True, text=True, env=env, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    before, changed, after = (
        json.loads((tmp_path / f"{name}.json").read_text()) for name in ("before", "changed", "after")
    )

    assert after["pid"] == before["pid"], "the second notebook did not run in the first one's kernel"
    # The first notebook did change every one of them...
    assert [key for key in before if changed[key] == before[key]] == ["pid"]
    assert changed["probes"] == {
        "STABILITY_RESET_PROBE": "changed by the notebook before",
        "STABILITY_RESET_GONE": None,
        "STABILITY_RESET_ADDED": "added by the notebook before",
    }
    # ...and the next notebook sees none of it.
    assert [key for key in before if after[key] != before[key]] == [], "leaked from the notebook before"
    assert before["probes"] == {
        "STABILITY_RESET_PROBE": "as the run started",
        "STABILITY_RESET_GONE": "present",
        "STABILITY_RESET_ADDED": None,
    }
    assert Path(before["cwd"]).resolve() == tmp_path.resolve()
    assert {"health", "suites"} <= set(before["views"])
