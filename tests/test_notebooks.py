"""Every notebook also runs by hand, top to bottom, with its default (empty) parameters, and the
section notebooks' "Dig deeper" part runs too, as JupyterLab runs it (batch runs skip it)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nbformat
import pytest
from support import run_cli

from stability_lib.execution.kernels import socket_file_kernel_manager
from stability_lib.execution.notebooks import ensure_kernelspec, execute_notebook, notebooks_dir


def test_the_notebooks_are_what_the_builder_writes() -> None:
    # notebooks/*.ipynb are generated: an edit made to one file only (the builder or a notebook) is caught.
    spec = importlib.util.spec_from_file_location("notebooks_build", notebooks_dir() / "_build.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    built = build.built()
    assert sorted(built) == sorted(p.stem for p in notebooks_dir().glob("*.ipynb"))
    stale = [name for name, text in built.items() if (notebooks_dir() / f"{name}.ipynb").read_text() != text]
    assert stale == [], f"run: python notebooks/_build.py ({', '.join(stale)} differ)"


def test_notebooks_hold_no_outputs_and_a_parameters_cell() -> None:
    for path in sorted(notebooks_dir().glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, path.name
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name
        # The investigation part: every code cell of it is skipped by batch runs (nbclient's tag).
        dig = [c for c in nb.cells if "dig-deeper" in c.metadata.get("tags", [])]
        if path.stem != "report":
            assert any(c.cell_type == "code" for c in dig), path.name
        assert all("skip-execution" in c.metadata["tags"] for c in dig if c.cell_type == "code"), path.name


def _run_as_jupyterlab(source: Path, cwd: Path, timeout_s: float = 300) -> nbformat.NotebookNode:
    """Every cell, tags ignored (no papermill, no skip-execution): what Run All does in JupyterLab."""
    from nbclient import NotebookClient

    nb = nbformat.read(source, as_version=4)
    NotebookClient(
        nb,
        kernel_name=ensure_kernelspec(),
        # Socket files, not TCP ports, as in our runs: a port offered to a kernel can be taken by a
        # parallel test before the kernel binds it (JupyterLab's own choice is not what is tested).
        kernel_manager_class=socket_file_kernel_manager(),
        timeout=timeout_s,
        skip_cells_with_tag="--run-every-cell--",
        resources={"metadata": {"path": str(cwd)}},
    ).execute()
    return nb


@pytest.mark.slow
@pytest.mark.parametrize(
    ("section", "claim"),
    [
        ("health", "health.websocket_echo"),
        pytest.param("suites", "suites.auth", marks=pytest.mark.extended),  # the pipeline runs it too
        ("websocket", "websocket.no_1011_or_1006"),
        ("golden_path", "golden_path.succeeds_for_every_user"),
        ("isolation", "isolation.no_cross_user_data"),
        pytest.param("performance", "performance.step:agent_session", marks=pytest.mark.extended),
        ("contract", "contract.no_breaking_api_changes"),
    ],
)
def test_each_section_notebook_runs_by_hand_against_the_sample_service(
    tmp_path: Path, section: str, claim: str
) -> None:
    nb = _run_as_jupyterlab(notebooks_dir() / f"{section}.ipynb", notebooks_dir())
    # Identifiers carry <wbr> break opportunities at their separators (the report's layout).
    text = json.dumps([c.get("outputs", []) for c in nb.cells]).replace("<wbr>", "")
    assert claim in text and "sp-PASS" in text
    # Dig deeper: the run's DataFrames are shown and every example question produced an answer.
    dig = [c for c in nb.cells if c.cell_type == "code" and "dig-deeper" in c.metadata.get("tags", [])]
    assert len(dig) >= 2
    assert all(c.outputs for c in dig), [c.source[:60] for c in dig if not c.outputs]
    assert not [o for c in dig for o in c.outputs if o.output_type == "error"]
    assert "Run('stability-interactive-" in json.dumps(dig[0].outputs)
    assert "text/html" in json.dumps(dig[0].outputs)  # the claims DataFrame as a table


@pytest.mark.slow
def test_the_report_notebook_runs_by_hand_on_the_newest_run(tmp_path: Path, monkeypatch) -> None:
    # A run under runs/ of a scratch checkout layout: <root>/runs/<run>, notebook cwd <root>/notebooks.
    root = tmp_path / "checkout"
    (root / "notebooks").mkdir(parents=True)
    from test_report import make_run

    run = make_run(root / "runs")
    assert run_cli(["report", str(run)]).returncode == 1
    out = tmp_path / "report.ipynb"
    execute_notebook(notebooks_dir() / "report.ipynb", out, {}, cwd=root / "notebooks", timeout_s=120)
    text = json.dumps([c.get("outputs", []) for c in nbformat.read(out, as_version=4).cells])
    assert "Verdict: FAIL" in text
