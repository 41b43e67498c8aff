from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest

from stability_lib import Claim, SectionResult, Status
from stability_lib.core.models import Figure
from stability_lib.report.figures import figure_text
from stability_lib.report.frontpage import front_page_html
from stability_lib.report.render import breakable, evidence_link, params_rows
from stability_lib.report.views import _engine_parts, _forest_chart, axis_limits, axis_scale, section_parts
from stability_lib.stats.fixes import compare_failure_rates
from stability_lib.stats.rates import rate_estimate


def test_operation_names_from_the_target_are_not_parsed_as_math() -> None:
    data = {"durations_ms": {r"ws:$\foo$#1": [1.0, 2.0, 3.0], "step:$x^2$": [4.0, 5.0]}, "runs": []}
    parts = section_parts(SectionResult("golden_path", Status.PASS, data=data, duration_s=1.0))
    html = "".join(p for p in parts if isinstance(p, str))
    assert "could not" not in html
    assert r"ws:$\foo$#1" in html.replace("<wbr>", "")  # the table still lists it, escaped text
    assert any(not isinstance(p, str) for p in parts)  # and the chart was drawn


def _comparison(op: str, ratio: float, low: float, high: float) -> dict:
    return {
        "operation": op,
        "judged": True,
        "verdict": "NO_REGRESSION",
        "median_ratio": {"ratio": ratio, "ci_low": low, "ci_high": high},
    }


def test_ratio_axis_is_linear_and_fits_the_data_when_ratios_are_close() -> None:
    import matplotlib.pyplot as plt

    fig = _forest_chart([_comparison("a", 0.99, 0.98, 1.01), _comparison("b", 1.02, 0.97, 1.05)], 0.1)
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    assert ax.get_xscale() == "linear" and 0.9 < low < 0.98 and 1.1 < high < 1.2
    plt.close(fig)


def test_a_degenerate_interval_end_does_not_squash_the_ratio_axis() -> None:
    """On another service a bound of ~1e-16 made the log axis run from 1e-16 to 1."""
    import matplotlib.pyplot as plt

    fig = _forest_chart([_comparison("a", 0.5, 1e-16, 0.9), _comparison("b", 1.0, 0.95, 1.05)], 0.1)
    low, _high = fig.axes[0].get_xlim()
    assert low > 0.04
    plt.close(fig)


@pytest.mark.parametrize(
    ("values", "scale"), [([10.0, 12.0, 14.0], "linear"), ([0.2, 400.0], "log"), ([0.0, 5.0], "linear"), ([], "linear")]
)
def test_log_axis_only_when_the_data_spans_orders_of_magnitude(values: list[float], scale: str) -> None:
    assert axis_scale(values) == scale
    low, high = axis_limits(values, scale)
    assert low < high and (scale == "linear" or low > 0)


def test_claims_from_old_evidence_load_and_new_figures_round_trip() -> None:
    old = {"id": "websocket.fix_works", "section": "websocket", "statement": "s", "status": "PASS", "statistic": "x"}
    assert Claim.parse(old).figure is None and "figure" not in Claim.parse(old).serialize()
    figure = compare_failure_rates(18, 400, 0, 400, 0.01).figure()
    claim = Claim("websocket.fix_works", "websocket", "s", Status.PASS, "x", figure=figure)
    again = Claim.parse(claim.serialize())
    assert again.figure == figure and again.serialize()["figure"]["baseline_k"] == 18
    assert Figure.parse({"kind": "rate", "k": 1, "n": 2, "added_later": True}).k == 1  # unknown keys ignored


def test_figures_read_as_plain_sentences() -> None:
    fix = compare_failure_rates(18, 400, 0, 400, 0.01).figure().serialize()
    assert figure_text(fix).startswith(
        "1011/1006 closes fell from 18 of 400 (4.5%) on the baseline to 0 of 400 (upper bound 0.75%)"
    )
    ratio = {
        "kind": "ratio",
        "value": 0.99,
        "low": 0.98,
        "high": 1.01,
        "confidence": 0.9875,
        "tolerance": 0.1,
        "what": "median",
    }
    assert figure_text(ratio) == "median 0.99× baseline, 98.75% interval 0.98–1.01 (limit 1.10×)"
    assert figure_text(rate_estimate(3, 60).figure("runs failed").serialize()).startswith(
        "3 of 60 runs failed (5%, 95% interval"
    )
    assert figure_text(None) == "" and figure_text({"kind": "rate", "k": 0, "n": 0}) == "no data"


def test_front_page_puts_what_failed_first_and_escapes_target_text() -> None:
    payload = "<img src=x onerror=alert(1)>"
    summary = {
        "title": payload,
        "verdict": "FAIL",
        "verdict_reason": "1 required check(s) failed: a.b",
        "required_counts": {"PASS": 1, "FAIL": 1},
        "targets": {"candidate": "http://127.0.0.1:1/x"},
        "sections": [{"section": "health", "status": "FAIL"}],
        "claims": [
            {
                "id": "health.ok",
                "section": "health",
                "statement": "It answers",
                "status": "PASS",
                "statistic": "5 of 5",
            },
            {
                "id": "health.bad",
                "section": "health",
                "statement": "It answers " + payload,
                "status": "FAIL",
                "statistic": "0 of 5",
            },
        ],
        "not_checked": [{"section": "contract", "reason": "switched off in params"}],
    }
    html = front_page_html(summary, {"commit": "abc123"})
    assert "<img" not in html and "&lt;img" in html
    assert (
        html.index("Failed or not decided")
        < html.index("Proven")
        < html.index("Not checked")
        < html.index("All checks")
    )
    assert "abc123" in html and "switched off in params" in html and "(listed below)" in html


def test_front_page_names_what_was_compared_with_what() -> None:
    # target.name and baseline.name/.commit were accepted in params and shown nowhere on page 1.
    summary = {
        "title": "t",
        "verdict": "PASS",
        "verdict_reason": "all",
        "targets": {"candidate": "http://127.0.0.1:1", "baseline": "http://127.0.0.1:2"},
        "claims": [],
    }
    labels = {
        "candidate": {"name": "v2.3.1 <rc1>", "commit": "3f2a9c1"},
        "baseline": {"name": "v2.3.0", "commit": "77e0d1b"},
    }
    html = front_page_html(summary, {"target_labels": labels})
    assert "v2.3.1 &lt;rc1&gt; · http:" in html and "<th>Commit</th><td>3f2a9c1</td>" in html
    assert "v2.3.0 · commit 77e0d1b · http:" in html
    plain = front_page_html(summary, {"target_labels": {"candidate": {"name": "candidate", "commit": None}}})
    assert "candidate ·" not in plain and "not recorded" in plain  # the default label says nothing


def test_identifiers_wrap_at_separators_and_evidence_links_stay_in_the_run() -> None:
    assert breakable("evidence/health.json") == "evidence/<wbr>health.<wbr>json"
    assert breakable("ratio 1.05") == "ratio 1.05"
    assert 'href="evidence/health.json"' in evidence_link({"file": "evidence/health.json"})
    for unsafe in ("/etc/passwd", "../x.json", "http://example.com/x", "javascript:alert(1)"):
        assert "href" not in evidence_link({"file": unsafe})


def test_params_are_condensed_rows_and_redacted_values_stay_redacted() -> None:
    rows = dict(params_rows({"title": "t", "scenario": {"users": {"password": "***", "prefix": "demo"}}}))
    assert rows["title"] == "t" and "***" in rows["scenario.users"] and "\n" not in rows["scenario.users"]


def test_the_engine_table_counts_golden_runs_and_lost_users_for_the_golden_path_and_sessions_for_the_soak() -> None:
    def engine(**side: object) -> dict:
        return {
            "engine": "locust",
            "sides": {"candidate": {"workers": 2, "workers_seen": 2, "rate_per_s": 3.5, **side}},
        }

    golden = SectionResult(
        "golden_path",
        Status.INCONCLUSIVE,
        data={"engine": engine(runs_seen=18, users_lost=1, note="1 user lost with worker w2"), "runs": []},
    )
    html = "".join(str(p) for p in section_parts(golden))
    assert "Engine: Locust" in html and "Golden runs seen" in html and "Users lost" in html
    assert "<td>18</td>" in html and "1 user lost with worker w2" in html
    assert "Sessions seen" not in html
    html = "".join(str(p) for p in _engine_parts(engine(sessions_seen=1000, sessions_lost=0)))  # the soak's
    assert "Sessions seen" in html and "Sessions lost" in html and "<td>1000</td>" in html
