"""Charts are drawn once per run: the report reuses the PNG a section notebook kept for the same
evidence, never one of other evidence; and the cheaper layout is the layout tight_layout made."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import pytest

from stability_lib import SectionResult, Status
from stability_lib.report import charts
from stability_lib.report.chart_cache import ChartPNG, chart_png, charts_kept_in, drawn
from stability_lib.report.views import section_parts

GOLDEN: dict[str, Any] = {
    "durations_ms": {"step:login": [3.0, 4.5, 5.0, 40.0], "ws:agent": [10.0, 12.0, 11.5]},
    "runs": [],
}
# The soak as a section holds it in memory (int close codes) and as the report reads it from JSON.
SOAK_IN_MEMORY = {"ok": 0, "outcome_labels": {}, "close_codes": {1000: 38, None: 2}}


def _soak(aggregate: dict[str, Any]) -> dict[str, Any]:
    agg = {"sessions": 40, "connected": 40, "crashes": 0, "failures": 2, "timeline": [], "latency_s": {}}
    return {"candidate": {"aggregate": {**agg, **aggregate}, "records": []}}


def _charts(parts: list[Any]) -> list[Any]:
    return [p for p in parts if not isinstance(p, str)]


def _no_drawing(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a kept chart was drawn again")


def test_the_report_shows_the_chart_the_section_kept_without_drawing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    section = SectionResult("websocket", Status.PASS, data=_soak(SOAK_IN_MEMORY))
    with charts_kept_in(tmp_path):
        drawn_by_section = _charts(section_parts(section))
    assert len(drawn_by_section) == 2 and all(isinstance(p, ChartPNG) for p in drawn_by_section)
    assert len(list(tmp_path.glob("*.png"))) == 2
    # The report reads the evidence file: JSON, where the close codes are strings.
    from_file = SectionResult("websocket", Status.PASS, data=json.loads(json.dumps(section.data)))
    monkeypatch.setattr(charts, "new_figure", _no_drawing)
    with charts_kept_in(tmp_path):
        shown_by_report = _charts(section_parts(from_file))
    assert [p.png for p in shown_by_report] == [p.png for p in drawn_by_section]


def test_a_kept_chart_is_never_shown_for_other_evidence(tmp_path: Path) -> None:
    before = SectionResult("golden_path", Status.PASS, data=GOLDEN)
    durations = {**GOLDEN["durations_ms"], "step:login": [3.0, 4.5, 5.0, 400.0]}  # one value moved
    after = SectionResult("golden_path", Status.PASS, data={**GOLDEN, "durations_ms": durations})
    with charts_kept_in(tmp_path):
        first = _charts(section_parts(before))[0]
        second = _charts(section_parts(after))[0]
    assert first.png != second.png and len(list(tmp_path.glob("*.png"))) == 2
    assert second.png == chart_png(_charts(section_parts(after))[0])  # what drawing it afresh gives


def test_a_chart_kept_under_another_style_is_drawn_again(tmp_path: Path) -> None:
    """A notebook that changed matplotlib's rcParams keeps charts in its style; a notebook with the
    usual style (the report) draws its own instead of showing those."""
    section = SectionResult("golden_path", Status.PASS, data=GOLDEN)
    with charts_kept_in(tmp_path):
        usual = _charts(section_parts(section))[0]
        with matplotlib.rc_context({"lines.linewidth": 6.0, "axes.facecolor": "black"}):
            styled = _charts(section_parts(section))[0]
        again = _charts(section_parts(section))[0]
    assert styled.png != usual.png and len(list(tmp_path.glob("*.png"))) == 2
    assert again.png == usual.png


def test_a_file_in_the_charts_folder_that_is_not_a_png_is_drawn_again_not_shown(tmp_path: Path) -> None:
    result = SectionResult("golden_path", Status.PASS, data=GOLDEN)
    with charts_kept_in(tmp_path):
        kept = _charts(section_parts(result))[0].png
    (path,) = tmp_path.glob("*.png")
    path.write_bytes(b"<script>alert(1)</script>")
    with charts_kept_in(tmp_path):
        again = _charts(section_parts(result))[0].png
    assert again == kept and path.read_bytes() == kept


def test_a_chart_of_values_json_cannot_hold_is_drawn_and_not_kept(tmp_path: Path) -> None:
    comparison = {
        "operation": "step:x",
        "judged": True,
        "verdict": "NO_REGRESSION",
        "median_ratio": {"ratio": 1.0, "ci_low": math.nan, "ci_high": 1.1},
    }
    with charts_kept_in(tmp_path):
        part = drawn(charts._forest_chart, [comparison], 0.1)
    assert isinstance(part, ChartPNG) and part.png.startswith(b"\x89PNG")
    assert list(tmp_path.glob("*.png")) == []


def test_outside_a_charts_folder_views_return_figures_and_keep_nothing(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    parts = _charts(section_parts(SectionResult("golden_path", Status.PASS, data=GOLDEN)))
    assert len(parts) == 1 and isinstance(parts[0], Figure)


def test_fit_layout_lays_out_as_tight_layout_does_and_draws_the_same_picture() -> None:
    import matplotlib.pyplot as plt

    def draw(fig: Any, axes: Any) -> None:
        for i, ax in enumerate(axes.flat):
            ax.plot([1, 10, 100], [i, 2 * i, 3 * i], label="side")
            ax.set_xscale("log" if i % 2 else "linear")
            ax.set_yticks([0, 2, 4], ["step:a long operation name", "ws:b", "c"])
            ax.set_title(f"operation {i}")
        axes.flat[0].legend()
        fig.suptitle("Latency distributions (ECDF, ms)")

    fig, axes = charts.new_figure(7.5, 3.8, nrows=2, ncols=2, squeeze=False)
    draw(fig, axes)
    charts.fit_layout(fig)
    old, old_axes = plt.subplots(2, 2, figsize=(7.5, 3.8), dpi=charts.CHART_DPI, squeeze=False)
    draw(old, old_axes)
    old.tight_layout()
    assert vars(fig.subplotpars) == pytest.approx(vars(old.subplotpars))
    assert vars(fig.subplotpars) != pytest.approx(vars(charts.new_figure(7.5, 3.8)[0].subplotpars))  # it did move
    assert charts.png_bytes(fig) == charts.png_bytes(old)
    plt.close(old)


def test_latency_panels_name_the_sides_where_there_are_lines_and_say_when_there_are_none() -> None:
    # The first operation has no samples (a step that never ran): before, the legend was asked of its empty
    # panel, so the chart had no legend at all and matplotlib warned "No artists with labels found".
    import warnings

    samples = {"baseline": {"step:b": [1.0, 2.0, 3.0]}, "candidate": {"step:b": [1.5, 2.5]}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = charts._ecdf_chart(samples, ["step:a", "step:b"])
    empty, drawn_panel = fig.axes[0], fig.axes[1]
    assert empty.get_legend() is None
    assert [t.get_text() for t in empty.texts] == ["no samples"]
    legend = drawn_panel.get_legend()
    assert legend is not None and [t.get_text() for t in legend.get_texts()] == ["baseline", "candidate"]
    assert not drawn_panel.texts
