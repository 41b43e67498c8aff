"""Trends across stored runs: a real change in a check's figure is marked at the run where it
starts, noise and a single odd run are not; `stability history` writes the trends report."""

from __future__ import annotations

import json
import random
from pathlib import Path

import nbformat
import pytest
from history_runs import PASS_RUN, make_history_runs
from support import pdf_text, run_cli

from stability_lib.execution.notebooks import execute_notebook, notebooks_dir
from stability_lib.report.history import detect_steps, load_history

SLOWED = "performance.step:agent_session"


def test_a_slowdown_from_run_8_of_12_is_marked_at_run_8_and_nothing_else(tmp_path: Path) -> None:
    make_history_runs(tmp_path, PASS_RUN, n=12, slow_from=8)
    history = load_history(tmp_path)
    assert history.run_ids[7] == "r008"
    assert [(c.claim_id, i) for c, i, _ in history.steps] == [(SLOWED, 7)]
    (check, _, step) = history.steps[0]
    assert step.before == pytest.approx(1.0, abs=0.05) and step.after == pytest.approx(1.3, abs=0.06)
    assert step.p_value < 0.01
    # The check's status moved with its figure, run by run, and every run is in the series.
    assert check.statuses[:7] == ("PASS",) * 7 and set(check.statuses[7:]) == {"FAIL"}
    assert all(v is not None for v in check.values)


def test_without_a_change_no_run_is_marked(tmp_path: Path) -> None:
    make_history_runs(tmp_path, PASS_RUN, n=12, slow_from=None)
    assert load_history(tmp_path).steps == []


def test_a_check_missing_from_some_runs_keeps_its_run_numbers(tmp_path: Path) -> None:
    make_history_runs(tmp_path, PASS_RUN, n=12, slow_from=8, drop={SLOWED: (2, 3)})
    history = load_history(tmp_path)
    check = next(c for c in history.checks if c.claim_id == SLOWED)
    assert check.statuses[1] is None and check.statuses[2] is None
    assert [i for i, _ in check.steps] == [7]  # run 8, counted over every run, not over the series


def test_detect_steps_finds_a_shift_where_it_starts() -> None:
    rng = random.Random(3)
    values = [100 + rng.gauss(0, 3) for _ in range(15)] + [120 + rng.gauss(0, 3) for _ in range(15)]
    steps = detect_steps(values)
    assert [s.position for s in steps] == [15]
    assert steps[0].after > steps[0].before


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("constant", [0.0] * 20),
        ("noise", [100 + random.Random(5).gauss(0, 5) for _ in range(40)]),
        ("one odd run at the end", [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.01, 0.99, 1.0, 1.0, 3.0]),
        ("one odd run in the middle", [1.0, 1.01, 0.99, 1.0, 1.02, 3.0, 0.98, 1.0, 1.01, 0.99, 1.0, 1.0]),
        (
            "real but smaller than 5%",
            [1.00 + 0.001 * (i % 3) for i in range(10)] + [1.02 + 0.001 * (i % 3) for i in range(10)],
        ),
        ("three runs after a change", [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.01, 0.99, 1.5, 1.5, 1.5]),
        ("too few runs", [1.0, 1.0, 2.0]),
    ],
)
def test_detect_steps_marks_nothing_it_cannot_show(name: str, values: list[float]) -> None:
    assert detect_steps(values) == [], name


def test_detect_steps_is_deterministic() -> None:
    values = [1.0] * 7 + [1.3] * 5
    assert detect_steps(values) == detect_steps(values)


def test_an_empty_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    from stability_lib.core.errors import StabilityError

    with pytest.raises(StabilityError, match="no run directories"):
        load_history(tmp_path)


@pytest.mark.slow
def test_stability_history_writes_a_trends_report_that_marks_run_8(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_history_runs(runs, PASS_RUN, n=12, slow_from=8)
    out = tmp_path / "trends"
    done = run_cli(["history", str(runs), "--out", str(out)])
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""  # no kernel noise, no warnings
    html = (out / "history.html").read_text(encoding="utf-8")
    assert "1 real change(s) in a figure" in html
    assert "starting at run 8 (r008" in html
    text = " ".join(pdf_text(out / "history.pdf").split())
    assert "starting at run 8 (r008" in text
    assert "<script" not in html.lower()


@pytest.mark.slow
def test_history_notebook_in_a_kernel_marks_run_8(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_history_runs(runs, PASS_RUN, n=12, slow_from=8)
    out = tmp_path / "history.ipynb"
    execute_notebook(notebooks_dir() / "history.ipynb", out, {"runs_dir": str(runs)}, cwd=tmp_path, timeout_s=300)
    text = json.dumps([c.get("outputs", []) for c in nbformat.read(out, as_version=4).cells])
    assert "starting at run 8 (r008" in text and "image/png" in text


def test_midranks_share_ties_as_scipy_does() -> None:
    import numpy as np
    from scipy.stats import rankdata

    from stability_lib.report.history import _midranks

    rng = np.random.default_rng(1)
    for _ in range(100):
        x = rng.integers(0, 5, size=int(rng.integers(1, 30))).astype(float)
        assert np.allclose(_midranks(x), rankdata(x))


@pytest.mark.parametrize(("factor", "banner"), [(1.3, "sp-FAIL"), (0.7, "sp-INCONCLUSIVE")])
def test_the_banner_is_red_only_when_a_figure_got_worse(tmp_path: Path, factor: float, banner: str) -> None:
    from stability_lib.report.history import history_parts

    make_history_runs(tmp_path, PASS_RUN, n=12, slow_from=8, factor=factor)
    import matplotlib.pyplot as plt

    parts = history_parts(load_history(tmp_path))
    plt.close("all")  # the parts hold the charts: closed here, as show_history closes each shown
    first = parts[0]
    assert f'sp-banner {banner}"' in first and "1 real change(s)" in first
