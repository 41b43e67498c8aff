"""An interrupt that lands as a run begins: once run.json exists, the run records the interruption
(the partial run says INCONCLUSIVE, and the interrupt names its folder); before that, no half-made run
folder is left behind. Both in-process, with the interrupt raised at a chosen point (no timing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_pipeline import FILES_ONLY

from stability_lib import _pipeline
from stability_lib.execution import baseline, notebooks


def _files_only(tmp_path: Path) -> Path:
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "ci.xml").write_text('<testsuite name="s"><testcase classname="m" name="t"/></testsuite>')
    spec = {"openapi": "3.0.3", "info": {"title": "s", "version": "1"}, "paths": {}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    params = tmp_path / "files.yaml"
    params.write_text(FILES_ONLY)
    return params


def test_an_interrupt_at_the_runs_first_line_is_recorded_in_its_folder(tmp_path: Path) -> None:
    def progress(line: str) -> None:
        if line.startswith("stability-proof:"):  # the first line, written once run.json exists
            raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt) as caught:
        _pipeline.run(_files_only(tmp_path), out=out, pdf=False, progress=progress)
    assert getattr(caught.value, "run_dir", None) == out.resolve()  # the CLI names the partial run
    meta = json.loads((out / "run.json").read_text())
    assert "interrupted" in meta
    assert json.loads((out / "summary.json").read_text())["verdict"] == "INCONCLUSIVE"


@pytest.mark.parametrize("out_exists", [False, True], ids=["new folder", "empty --out folder"])
def test_an_interrupt_before_run_json_leaves_no_half_made_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out_exists: bool
) -> None:
    def interrupted(*_args: Any, **_kw: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(baseline, "fingerprint", interrupted)  # written before run.json
    out = tmp_path / "run"
    if out_exists:
        out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        notebooks.prepare_run_dir(_files_only(tmp_path), {}, _params(tmp_path), out, [])
    assert out.exists() == out_exists and not (out.exists() and any(out.iterdir()))


def _params(tmp_path: Path) -> Any:
    from stability_lib.execution.params import load_params

    return load_params(tmp_path / "files.yaml", [])[0]
